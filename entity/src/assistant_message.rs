//! A message of an assistant conversation. `seq` orders messages; `id` is the
//! public id (`messageId` on the wire).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "assistant_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i32,
    #[sea_orm(unique)]
    pub id: String,
    pub conversation_id: String,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// `complete`, or for replies `streaming`, `stopped`, `failed`, `interrupted`
    /// (the server stopped while generating it).
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The node generating a `streaming` reply; another node marks it
    /// `interrupted` once this one stops beating its heartbeat.
    pub node_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
