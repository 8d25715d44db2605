//! Resume-builder state and model calls. A socket's [`ResumeSession`] holds the
//! resume JSON and both sides of the conversation; every change is written
//! through to `resume_sessions`, so a client that reconnects with its
//! `resumeId` (even after a restart) gets it back until it expires.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{resume_result, resume_session};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard, mpsc};

use super::schema;
use crate::{
    ai::{AiError, ChatMessage, ChatRequest, OutputFormat, Payer, Role},
    cluster::{NodeId, nodes},
    error::{AppError, AppResult},
    state::AppState,
};

/// Turns of the conversation the model sees, and that are kept at most.
const TURNS_IN_PROMPT: usize = 20;
const TURNS_KEPT: usize = 100;

const PARSE_PROMPT: &str = "You turn the text of a resume into JSON. Answer with one JSON object with \
exactly these keys: Name, Title, Location, Email, Phone, Summary (strings); \"Contact Information\" \
{Address, Email, Phone, LinkedIn, GitHub}; Skills (an object mapping a category to an array of \
strings); Experience [{Position, Company, Location, Duration, Dates, Description, \
Responsibilities[]}]; Education [{Degree, Field, Institution, Dates}]; Projects [{Title, Role, \
Technologies[], Description[]}]; Awards []. Use empty strings and arrays for what the text does \
not say; never invent facts.";

const CHAT_PROMPT: &str = "You are a resume-writing assistant. Help the user improve their resume: \
answer questions, suggest better wording, fill gaps. When you change the resume, put the changed \
top-level keys, in the same JSON shape, in a ```json fenced block in your answer.";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Default)]
pub struct ResumeState {
    pub resume: Option<Value>,
    pub history: Vec<Turn>,
    /// When this copy was last read from or written to the database.
    saved_at: Option<DateTime<Utc>>,
}

impl ResumeState {
    fn of_row(row: resume_session::Model) -> Self {
        Self {
            resume: row.resume_data,
            history: serde_json::from_value(row.history).unwrap_or_default(),
            saved_at: Some(row.updated_at),
        }
    }
}

/// One socket's resume session. Cloning shares it.
#[derive(Clone)]
pub struct ResumeSession {
    pub id: String,
    state: Arc<Mutex<ResumeState>>,
    answers: Arc<Mutex<mpsc::Receiver<String>>>,
    answer_sender: mpsc::Sender<String>,
}

/// Answers kept while no preview asks for them; more are dropped.
const WAITING_ANSWERS: usize = 16;

impl ResumeSession {
    fn new(id: String, state: ResumeState) -> Self {
        let (answer_sender, answers) = mpsc::channel(WAITING_ANSWERS);
        Self {
            id,
            state: Arc::new(Mutex::new(state)),
            answers: Arc::new(Mutex::new(answers)),
            answer_sender,
        }
    }

    /// A new, empty session with a fresh id.
    pub fn fresh() -> Self {
        Self::new(uuid::Uuid::new_v4().to_string(), ResumeState::default())
    }

    /// The session's state, for one operation at a time, as last saved: a
    /// socket that went may still have been working on the session (on this
    /// node or another) after its client came back on a new one.
    pub async fn lock(&self, app: &AppState) -> AppResult<MutexGuard<'_, ResumeState>> {
        let mut state = self.state.lock().await;
        let saved = resume_session::Entity::find_by_id(self.id.clone())
            .one(&app.db)
            .await?;
        if let Some(row) = saved
            && state.saved_at.is_none_or(|at| row.updated_at > at)
        {
            *state = ResumeState::of_row(row);
        }
        Ok(state)
    }

    /// Hands a `user_response` to a waiting `preview_resume`.
    pub fn answer(&self, value: String) {
        let _ = self.answer_sender.try_send(value);
    }

    /// The next answer, or `None` after `timeout`. Answers given before the
    /// question was asked are dropped first.
    pub async fn next_answer(&self, timeout: Duration, drop_stale: bool) -> Option<String> {
        let mut answers = self.answers.lock().await;
        if drop_stale {
            while answers.try_recv().is_ok() {}
        }
        tokio::time::timeout(timeout, answers.recv())
            .await
            .ok()
            .flatten()
    }
}

fn valid_resume_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The session named by `requested` when it exists and has not expired; else a
/// new one with a fresh id (clients cannot choose ids, so one cannot be guessed
/// into someone else's resume).
pub async fn open(state: &AppState, requested: Option<&str>) -> AppResult<ResumeSession> {
    let ttl = chrono::Duration::seconds(
        i64::try_from(state.config.resume_state_ttl_secs).unwrap_or(i64::MAX / 2),
    );
    if let Some(id) = requested.filter(|id| valid_resume_id(id))
        && let Some(row) = resume_session::Entity::find_by_id(id.to_owned())
            .one(&state.db)
            .await?
    {
        let expired = row
            .disconnected_at
            .is_some_and(|left| left + ttl < Utc::now());
        if expired {
            resume_session::Entity::delete_by_id(id.to_owned())
                .exec(&state.db)
                .await?;
        } else {
            resume_session::Entity::update_many()
                .col_expr(
                    resume_session::Column::DisconnectedAt,
                    sea_orm::sea_query::Expr::value(Option::<chrono::DateTime<Utc>>::None),
                )
                .col_expr(
                    resume_session::Column::NodeId,
                    sea_orm::sea_query::Expr::value(state.cluster.node().as_str()),
                )
                .filter(resume_session::Column::Id.eq(id))
                .exec(&state.db)
                .await?;
            return Ok(ResumeSession::new(row.id.clone(), ResumeState::of_row(row)));
        }
    }
    Ok(ResumeSession::fresh())
}

/// Writes the session's state through to the database; this node holds it.
pub async fn save(app: &AppState, id: &str, state: &mut ResumeState) -> AppResult<()> {
    let now = Utc::now();
    let row = resume_session::ActiveModel {
        id: Set(id.to_owned()),
        resume_data: Set(state.resume.clone()),
        history: Set(serde_json::to_value(&state.history).unwrap_or(Value::Array(Vec::new()))),
        updated_at: Set(now),
        disconnected_at: Set(None),
        node_id: Set(Some(app.cluster.node().to_string())),
    };
    resume_session::Entity::insert(row)
        .on_conflict(
            OnConflict::column(resume_session::Column::Id)
                .update_columns([
                    resume_session::Column::ResumeData,
                    resume_session::Column::History,
                    resume_session::Column::UpdatedAt,
                    resume_session::Column::DisconnectedAt,
                    resume_session::Column::NodeId,
                ])
                .to_owned(),
        )
        .exec(&app.db)
        .await?;
    state.saved_at = Some(now);
    Ok(())
}

/// Keeps an answer of session `id` whose socket went before it was ready;
/// its id, to [`take_result`] it.
pub async fn keep_result(
    db: &DatabaseConnection,
    id: &str,
    event: &str,
    payload: Value,
) -> AppResult<i32> {
    let row = resume_result::ActiveModel {
        resume_id: Set(id.to_owned()),
        event: Set(event.to_owned()),
        payload: Set(payload),
        created_at: Set(Utc::now()),
        ..Default::default()
    };
    Ok(resume_result::Entity::insert(row)
        .exec(db)
        .await?
        .last_insert_id)
}

/// The answers kept for session `id`, oldest first.
pub async fn kept_results(
    db: &DatabaseConnection,
    id: &str,
) -> AppResult<Vec<resume_result::Model>> {
    Ok(resume_result::Entity::find()
        .filter(resume_result::Column::ResumeId.eq(id))
        .order_by_asc(resume_result::Column::Id)
        .all(db)
        .await?)
}

/// Takes a kept answer for delivery: `true` for exactly one taker, on any node.
pub async fn take_result(db: &DatabaseConnection, kept: i32) -> AppResult<bool> {
    Ok(resume_result::Entity::delete_by_id(kept)
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Starts the session's expiry clock: its socket on `node` left (unless the
/// client already came back on another node).
pub async fn release(db: &DatabaseConnection, node: &NodeId, id: &str) -> AppResult<()> {
    resume_session::Entity::update_many()
        .col_expr(
            resume_session::Column::DisconnectedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(resume_session::Column::Id.eq(id))
        .filter(resume_session::Column::NodeId.eq(node.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Starts the expiry clock of the sessions held by a node that stopped or
/// died: no socket outlives its node.
pub async fn release_orphans(db: &DatabaseConnection) -> AppResult<u64> {
    let released = resume_session::Entity::update_many()
        .col_expr(
            resume_session::Column::DisconnectedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(resume_session::Column::DisconnectedAt.is_null())
        .filter(nodes::orphaned(resume_session::Column::NodeId))
        .exec(db)
        .await?;
    Ok(released.rows_affected)
}

/// Drops sessions whose socket left more than `ttl` ago, and answers kept
/// that long.
pub async fn sweep(db: &DatabaseConnection, ttl: Duration) -> AppResult<u64> {
    let cutoff = Utc::now() - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let deleted = resume_session::Entity::delete_many()
        .filter(resume_session::Column::DisconnectedAt.lt(cutoff))
        .exec(db)
        .await?;
    resume_result::Entity::delete_many()
        .filter(resume_result::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

/// Raw resume text → resume JSON, through the model's JSON output mode.
pub async fn parse_resume(state: &AppState, payer: &Payer, raw_text: &str) -> AppResult<Value> {
    let raw_text = raw_text.trim();
    if raw_text.is_empty() {
        return Err(AppError::invalid("rawResumeText is required"));
    }
    let limit = state.config.resume_max_text_chars;
    if raw_text.chars().count() > limit {
        return Err(AppError::invalid(format!(
            "rawResumeText is longer than {limit} characters"
        )));
    }
    let mut request = ChatRequest::new(vec![
        ChatMessage::new(Role::System, PARSE_PROMPT),
        ChatMessage::new(Role::User, raw_text),
    ]);
    request.output = OutputFormat::JsonObject;
    request.temperature = Some(0.0);
    let completion = state
        .ai_budget
        .admit(payer)?
        .complete(state.ai.default_model().as_ref(), request)
        .await?;
    let parsed: Value = serde_json::from_str(schema::strip_code_fence(&completion.text))
        .map_err(|_| AppError::Ai(AiError::InvalidOutput("the answer is not JSON".to_owned())))?;
    schema::normalize(&parsed).ok_or_else(|| {
        AppError::Ai(AiError::InvalidOutput(
            "the answer is not a JSON object".to_owned(),
        ))
    })
}

/// The request for a chat turn: the instructions, the resume so far, the
/// recent conversation, and the new message.
pub fn chat_request(state: &ResumeState, message: &str) -> ChatRequest {
    let resume = state.resume.clone().unwrap_or_else(schema::skeleton);
    let mut messages = vec![ChatMessage::new(
        Role::System,
        format!("{CHAT_PROMPT}\n\nThe resume so far:\n{resume}"),
    )];
    let recent = state.history.len().saturating_sub(TURNS_IN_PROMPT);
    messages.extend(state.history[recent..].iter().map(|turn| {
        let role = if turn.role == "user" {
            Role::User
        } else {
            Role::Assistant
        };
        ChatMessage::new(role, turn.content.clone())
    }));
    messages.push(ChatMessage::new(Role::User, message));
    ChatRequest::new(messages)
}

/// Records a finished chat turn; a fenced ```json block in the answer updates
/// the resume. Returns whether it did.
pub fn record_turn(state: &mut ResumeState, message: &str, answer: &str) -> bool {
    state.history.push(Turn {
        role: "user".to_owned(),
        content: message.to_owned(),
    });
    state.history.push(Turn {
        role: "assistant".to_owned(),
        content: answer.to_owned(),
    });
    let excess = state.history.len().saturating_sub(TURNS_KEPT);
    state.history.drain(..excess);
    let Some(update) = schema::fenced_json(answer) else {
        return false;
    };
    match schema::merge(state.resume.as_ref(), &update) {
        Some(merged) => {
            state.resume = Some(merged);
            true
        }
        None => false,
    }
}
