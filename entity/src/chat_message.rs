//! One message of a live-chat session. The auto-increment id orders messages
//! and serves `?after=<id>`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// `chat_sessions.session_id`.
    pub session_id: String,
    pub message: String,
    /// `user`, `admin` or `ai`.
    pub sender_type: String,
    pub timestamp: DateTimeUtc,
    pub is_read: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
