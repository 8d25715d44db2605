//! Where an admin's live-chat console is: the node holding the user's newest
//! admin socket and, once none is connected, the newest live-chat message
//! when the last one went. The user's next admin socket is sent what came
//! after it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "console_presence")]
pub struct Model {
    /// `users.id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i32,
    pub node: Option<String>,
    pub away_after: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
