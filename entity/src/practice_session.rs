//! A practice session of the AI coach app, owned by one user.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "practice_sessions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub feature_type: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub duration_seconds: Option<i32>,
    pub score: Option<f64>,
    pub transcript: Option<String>,
    pub feedback_json: Option<Json>,
    pub clarity: Option<f64>,
    pub pace: Option<f64>,
    pub confidence: Option<f64>,
    pub tone: Option<f64>,
    pub completed: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
