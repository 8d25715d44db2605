//! The AI's feedback on a practice session (one per session, replaced when
//! generated again).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "feedback")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: i32,
    pub user_id: i32,
    pub score: f64,
    pub communication: String,
    pub content: String,
    pub body_language: String,
    pub highlights: Json,
    pub action_items: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
