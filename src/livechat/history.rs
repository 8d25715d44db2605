//! What the live-chat routes read: the session list, a session with its
//! messages, a session's messages after an id; and marking a message read.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{chat_message, chat_session};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;

use super::domain::{MessageView, SessionId, session_not_found};
use crate::{
    error::{AppError, AppResult},
    timefmt::iso8601,
};

/// Sessions one list answers at most (the most recently active).
const SESSION_LIST_LIMIT: u64 = 500;

/// A session as clients see it, with some or all of its messages.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LiveChatSession)]
pub struct SessionView {
    pub id: i32,
    pub session_id: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    #[serde(serialize_with = "iso8601")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "iso8601")]
    pub last_active: DateTime<Utc>,
    pub handed_off_to_admin: bool,
    pub messages: Vec<MessageView>,
    /// The visitor's messages no admin has marked read (in the session list only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
}

impl SessionView {
    fn new(session: chat_session::Model, messages: Vec<MessageView>) -> Self {
        Self {
            id: session.id,
            session_id: session.session_id,
            ip_address: session.ip_address,
            user_agent: session.user_agent,
            created_at: session.created_at,
            last_active: session.last_active,
            handed_off_to_admin: session.handed_off_to_admin,
            messages,
            unread_count: None,
        }
    }
}

async fn find_session(
    db: &DatabaseConnection,
    session: &SessionId,
) -> AppResult<Option<chat_session::Model>> {
    Ok(chat_session::Entity::find()
        .filter(chat_session::Column::SessionId.eq(session.as_str()))
        .one(db)
        .await?)
}

/// Sessions, most recently active first, each with only its newest message.
pub async fn list_sessions(db: &DatabaseConnection) -> AppResult<Vec<SessionView>> {
    let sessions = chat_session::Entity::find()
        .order_by_desc(chat_session::Column::LastActive)
        .order_by_desc(chat_session::Column::Id)
        .limit(SESSION_LIST_LIMIT)
        .all(db)
        .await?;
    let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    let mut newest: HashMap<String, MessageView> =
        crate::store::newest_per_group::<chat_message::Entity>(
            db,
            chat_message::Column::SessionId,
            chat_message::Column::Id,
            Condition::all().add(chat_message::Column::SessionId.is_in(ids.clone())),
        )
        .await?
        .into_iter()
        .map(|row| (row.session_id.clone(), MessageView::from(row)))
        .collect();
    let unread: HashMap<String, i64> = chat_message::Entity::find()
        .select_only()
        .column(chat_message::Column::SessionId)
        .column_as(chat_message::Column::Id.count(), "unread")
        .filter(chat_message::Column::SessionId.is_in(ids))
        .filter(chat_message::Column::IsRead.eq(false))
        .filter(chat_message::Column::SenderType.eq("user"))
        .group_by(chat_message::Column::SessionId)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(sessions
        .into_iter()
        .map(|session| {
            let messages = newest.remove(&session.session_id).into_iter().collect();
            let unread_count = unread.get(&session.session_id).copied().unwrap_or(0);
            SessionView {
                unread_count: Some(unread_count),
                ..SessionView::new(session, messages)
            }
        })
        .collect())
}

/// A session's messages, oldest first; only those after `after` when given.
pub async fn messages(
    db: &DatabaseConnection,
    session: &SessionId,
    after: Option<i32>,
) -> AppResult<Vec<MessageView>> {
    let mut query =
        chat_message::Entity::find().filter(chat_message::Column::SessionId.eq(session.as_str()));
    if let Some(after) = after {
        query = query.filter(chat_message::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(chat_message::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(MessageView::from)
        .collect())
}

pub async fn session_with_messages(
    db: &DatabaseConnection,
    session: &SessionId,
) -> AppResult<SessionView> {
    let row = find_session(db, session)
        .await?
        .ok_or_else(session_not_found)?;
    let messages = messages(db, session, None).await?;
    Ok(SessionView::new(row, messages))
}

pub async fn mark_read(db: &DatabaseConnection, id: i32) -> AppResult<MessageView> {
    let row = chat_message::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("MESSAGE_NOT_FOUND", "Message not found"))?;
    let mut row: chat_message::ActiveModel = row.into();
    row.is_read = Set(true);
    Ok(row.update(db).await?.into())
}
