//! Tokens a user spent on AI routes on one UTC day.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "quota_usage")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i32,
    /// `YYYY-MM-DD`, UTC.
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: String,
    pub tokens_used: i64,
    /// While set and in the future (ms since the epoch), one node is running
    /// an AI call for this user: the lease that serialises a user's calls
    /// across nodes.
    pub busy_until_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
