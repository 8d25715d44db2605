//! A resume-builder answer (`upload_resume_done`, …) that finished after its
//! socket went, kept for the session's next socket.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "resume_results")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// `resume_sessions.id`.
    pub resume_id: String,
    /// The event it travels as.
    pub event: String,
    pub payload: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
