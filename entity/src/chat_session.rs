//! A live-chat conversation between a widget visitor and the support side.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_sessions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The widget's own id for the conversation; also its room name.
    #[sea_orm(unique)]
    pub session_id: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_active: DateTimeUtc,
    /// While true the AI does not answer; an admin hands the session back.
    pub handed_off_to_admin: bool,
    /// Set while the AI is answering the session; one left after a crash is retried.
    pub ai_reply_pending_at: Option<DateTimeUtc>,
    /// The node generating that answer; another node retries it once this one
    /// stops beating its heartbeat.
    pub ai_reply_node: Option<String>,
    /// The node holding the session's newest visitor socket; left set when
    /// that node dies without saying its socket went.
    pub visitor_node: Option<String>,
    /// While no visitor socket is connected: the newest message of the session
    /// when the last one went. The next visitor socket is sent the replies after it.
    pub visitor_away_after: Option<i32>,
    /// The ids of the visitor sockets that replies go to, separated by spaces.
    pub visitor_sockets: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
