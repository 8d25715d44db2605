//! A resume builder's state, kept across reconnects (and restarts) by its
//! `resumeId` until it expires after the socket left.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "resume_sessions")]
pub struct Model {
    /// The `resumeId` clients send back in `auth: {resumeId}`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub resume_data: Option<Json>,
    /// Both sides of the conversation: `[{role, content}]`.
    pub history: Json,
    pub updated_at: DateTimeUtc,
    /// When the last socket holding it left; `None` while one is connected.
    pub disconnected_at: Option<DateTimeUtc>,
    /// The node its socket is connected to; when that node dies, another one
    /// starts the expiry clock.
    pub node_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
