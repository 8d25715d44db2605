//! The AI coach app: practice sessions, analytics events and the AI calls
//! behind `/api/gemini/*`. Every query is scoped to its owner: another user's
//! rows answer 404, as if they did not exist.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{analytics_event, feedback as feedback_row, practice_session};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    feedback::{self, Feedback},
    quota::{self, QuotaView},
};
use crate::{
    ai::{AiError, ChatMessage, ChatModel, ChatRequest, OutputFormat, Payer, ProviderName, Role},
    error::{AppError, AppResult},
    state::AppState,
    timefmt::iso8601,
};

const MAX_PROMPT_CHARS: usize = 20_000;
const COACH_PROMPT: &str =
    "You are an encouraging communication coach. Give concrete, practical advice.";
const FEEDBACK_PROMPT: &str = "You review a communication practice session. Answer with one JSON object: \
{\"score\": number 0-100, \"communication\": string, \"content\": string, \"bodyLanguage\": string, \
\"highlights\": [strings], \"actionItems\": [strings]}.";

/// Asks for feedback as structured output; a provider that refuses the schema
/// (400) is asked again for a plain JSON object.
async fn ask_for_feedback(
    state: &AppState,
    payer: &Payer,
    model: &Arc<dyn ChatModel>,
    mut request: ChatRequest,
) -> AppResult<(Feedback, i64)> {
    request.output = feedback::output_format();
    let first = state.ai_budget.admit(payer)?;
    let completion = match first.complete(model.as_ref(), request.clone()).await {
        Err(AiError::Upstream { status: 400, .. }) => {
            request.output = OutputFormat::JsonObject;
            state
                .ai_budget
                .admit(payer)?
                .complete(model.as_ref(), request)
                .await?
        }
        other => other?,
    };
    let tokens = i64::from(completion.usage.total());
    Ok((feedback::parse(&completion.text)?, tokens))
}

fn session_not_found() -> AppError {
    AppError::not_found("SESSION_NOT_FOUND", "Session not found")
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PracticeSession)]
pub struct SessionView {
    pub id: i32,
    pub user_id: i32,
    pub feature_type: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub duration_seconds: Option<i32>,
    pub score: Option<f64>,
    pub transcript: Option<String>,
    pub feedback_json: Option<Value>,
    pub clarity: Option<f64>,
    pub pace: Option<f64>,
    pub confidence: Option<f64>,
    pub tone: Option<f64>,
    pub completed: bool,
    #[serde(serialize_with = "iso8601")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "iso8601")]
    pub updated_at: DateTime<Utc>,
}

impl From<practice_session::Model> for SessionView {
    fn from(row: practice_session::Model) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            feature_type: row.feature_type,
            title: row.title,
            description: row.description,
            duration_seconds: row.duration_seconds,
            score: row.score,
            transcript: row.transcript,
            feedback_json: row.feedback_json,
            clarity: row.clarity,
            pace: row.pace,
            confidence: row.confidence,
            tone: row.tone,
            completed: row.completed,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn feature_type(value: &str) -> AppResult<&str> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 50 {
        return Err(AppError::invalid("featureType must be 1 to 50 characters"));
    }
    Ok(value)
}

pub async fn create_session(
    db: &DatabaseConnection,
    user_id: i32,
    kind: &str,
    title: Option<String>,
    description: Option<String>,
) -> AppResult<SessionView> {
    let now = Utc::now();
    Ok(practice_session::ActiveModel {
        user_id: Set(user_id),
        feature_type: Set(feature_type(kind)?.to_owned()),
        title: Set(title),
        description: Set(description),
        completed: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?
    .into())
}

async fn owned_session(
    db: &DatabaseConnection,
    user_id: i32,
    id: i32,
) -> AppResult<practice_session::Model> {
    practice_session::Entity::find_by_id(id)
        .filter(practice_session::Column::UserId.eq(user_id))
        .one(db)
        .await?
        .ok_or_else(session_not_found)
}

pub async fn get_session(db: &DatabaseConnection, user_id: i32, id: i32) -> AppResult<SessionView> {
    owned_session(db, user_id, id).await.map(SessionView::from)
}

/// What `PATCH /api/sessions/:id` may change; absent fields stay.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionChange {
    pub duration_seconds: Option<i32>,
    pub score: Option<f64>,
    pub transcript: Option<String>,
    pub feedback_json: Option<Value>,
    pub clarity: Option<f64>,
    pub pace: Option<f64>,
    pub confidence: Option<f64>,
    pub tone: Option<f64>,
    pub completed: Option<bool>,
    pub title: Option<String>,
    pub description: Option<String>,
}

pub async fn update_session(
    db: &DatabaseConnection,
    user_id: i32,
    id: i32,
    change: SessionChange,
) -> AppResult<SessionView> {
    if change.duration_seconds.is_some_and(|d| d < 0) {
        return Err(AppError::invalid("durationSeconds must not be negative"));
    }
    let metrics = [
        change.score,
        change.clarity,
        change.pace,
        change.confidence,
        change.tone,
    ];
    if metrics.iter().flatten().any(|m| !m.is_finite()) {
        return Err(AppError::invalid("scores must be numbers"));
    }
    let mut row: practice_session::ActiveModel = owned_session(db, user_id, id).await?.into();
    macro_rules! apply {
        ($($field:ident),*) => {$(
            if let Some(value) = change.$field {
                row.$field = Set(Some(value));
            }
        )*};
    }
    apply!(
        duration_seconds,
        score,
        transcript,
        feedback_json,
        clarity,
        pace,
        confidence,
        tone,
        title,
        description
    );
    if let Some(completed) = change.completed {
        row.completed = Set(completed);
    }
    row.updated_at = Set(Utc::now());
    Ok(row.update(db).await?.into())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionPage {
    pub sessions: Vec<SessionView>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

pub async fn list_sessions(
    db: &DatabaseConnection,
    user_id: i32,
    kind: Option<&str>,
    limit: u64,
    offset: u64,
) -> AppResult<SessionPage> {
    let limit = limit.clamp(1, 100);
    let mut query =
        practice_session::Entity::find().filter(practice_session::Column::UserId.eq(user_id));
    if let Some(kind) = kind {
        query = query.filter(practice_session::Column::FeatureType.eq(kind));
    }
    let total = query.clone().count(db).await?;
    let sessions = query
        .order_by_desc(practice_session::Column::CreatedAt)
        .order_by_desc(practice_session::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?
        .into_iter()
        .map(SessionView::from)
        .collect();
    Ok(SessionPage {
        sessions,
        total,
        limit,
        offset,
    })
}

pub async fn record_event(
    db: &DatabaseConnection,
    user_id: i32,
    event_type: &str,
    metadata: Value,
) -> AppResult<Value> {
    let event_type = event_type.trim();
    if event_type.is_empty() || event_type.chars().count() > 100 {
        return Err(AppError::invalid("eventType must be 1 to 100 characters"));
    }
    if !(metadata.is_object() || metadata.is_null()) {
        return Err(AppError::invalid("metadata must be an object"));
    }
    let metadata = if metadata.is_null() {
        json!({})
    } else {
        metadata
    };
    let row = analytics_event::ActiveModel {
        user_id: Set(user_id),
        event_type: Set(event_type.to_owned()),
        metadata: Set(metadata),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(json!({
        "id": row.id,
        "userId": row.user_id,
        "eventType": row.event_type,
        "metadata": row.metadata,
        "createdAt": row.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }))
}

pub async fn stats(db: &DatabaseConnection, user_id: i32) -> AppResult<Value> {
    let sessions = practice_session::Entity::find()
        .filter(practice_session::Column::UserId.eq(user_id))
        .all(db)
        .await?;
    let completed = sessions.iter().filter(|s| s.completed).count();
    let scores: Vec<f64> = sessions.iter().filter_map(|s| s.score).collect();
    let average = if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    Ok(
        json!({ "totalSessions": sessions.len(), "completedSessions": completed, "averageScore": average }),
    )
}

pub async fn adoption(db: &DatabaseConnection, user_id: i32) -> AppResult<Value> {
    let counts: Vec<(String, i64)> = practice_session::Entity::find()
        .select_only()
        .column(practice_session::Column::FeatureType)
        .column_as(practice_session::Column::Id.count(), "count")
        .filter(practice_session::Column::UserId.eq(user_id))
        .group_by(practice_session::Column::FeatureType)
        .into_tuple()
        .all(db)
        .await?;
    Ok(Value::Object(
        counts
            .into_iter()
            .map(|(kind, count)| (kind, json!(count)))
            .collect(),
    ))
}

/// One turn of `conversationHistory`: `{role, content}`, `{role, text}` or
/// Gemini's `{role, parts: [{text}]}`; role `model` means the assistant.
fn history_turn(turn: &Value) -> Option<ChatMessage> {
    let role = match turn.get("role")?.as_str()? {
        "user" => Role::User,
        "model" | "assistant" => Role::Assistant,
        _ => return None,
    };
    let text = match (turn.get("content"), turn.get("text"), turn.get("parts")) {
        (Some(Value::String(text)), _, _) | (_, Some(Value::String(text)), _) => text.clone(),
        (_, _, Some(Value::Array(parts))) => parts
            .iter()
            .filter_map(|p| p.get("text")?.as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => return None,
    };
    Some(ChatMessage::new(role, text))
}

/// `POST /api/gemini/process`: Gemini when it is configured, else the default provider.
pub async fn process(
    state: &AppState,
    user_id: i32,
    prompt: &str,
    feature: Option<&str>,
    history: &[Value],
) -> AppResult<(String, i64, QuotaView)> {
    let prompt = prompt.trim();
    if prompt.is_empty() || prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(AppError::invalid(format!(
            "prompt must be 1 to {MAX_PROMPT_CHARS} characters"
        )));
    }
    let mut messages = vec![ChatMessage::new(
        Role::System,
        match feature {
            Some(feature) => format!("{COACH_PROMPT} The user is practising: {feature}."),
            None => COACH_PROMPT.to_owned(),
        },
    )];
    messages.extend(history.iter().filter_map(history_turn));
    messages.push(ChatMessage::new(Role::User, prompt));
    let model = state.ai.get_or_default(ProviderName::Gemini).clone();
    let ((response, tokens), quota) = quota::within_quota(state, user_id, async {
        let permit = state.ai_budget.admit(&Payer::User(user_id))?;
        let completion = permit
            .complete(model.as_ref(), ChatRequest::new(messages))
            .await?;
        let tokens = i64::from(completion.usage.total());
        Ok(((completion.text, tokens), tokens))
    })
    .await?;
    Ok((response, tokens, quota))
}

/// Generates, validates and saves the feedback for one of the user's sessions.
pub async fn generate_feedback(
    state: &AppState,
    user_id: i32,
    session_id: i32,
) -> AppResult<Value> {
    let session = owned_session(&state.db, user_id, session_id).await?;
    let details = json!({
        "featureType": session.feature_type,
        "title": session.title,
        "durationSeconds": session.duration_seconds,
        "metrics": { "clarity": session.clarity, "pace": session.pace, "confidence": session.confidence, "tone": session.tone },
    });
    let transcript = session.transcript.clone().unwrap_or_default();
    let request = ChatRequest::new(vec![
        ChatMessage::new(Role::System, FEEDBACK_PROMPT),
        ChatMessage::new(
            Role::User,
            format!("Session: {details}\nTranscript:\n{transcript}"),
        ),
    ]);
    let model = state.ai.get_or_default(ProviderName::Gemini).clone();
    let (feedback, _) = quota::within_quota(state, user_id, async {
        let (feedback, tokens) =
            ask_for_feedback(state, &Payer::User(user_id), &model, request).await?;
        Ok((feedback, tokens))
    })
    .await?;
    let row = feedback_row::ActiveModel {
        session_id: Set(session.id),
        user_id: Set(user_id),
        score: Set(feedback.score),
        communication: Set(feedback.communication.clone()),
        content: Set(feedback.content.clone()),
        body_language: Set(feedback.body_language.clone()),
        highlights: Set(json!(feedback.highlights)),
        action_items: Set(json!(feedback.action_items)),
        created_at: Set(Utc::now()),
    };
    feedback_row::Entity::insert(row)
        .on_conflict(
            OnConflict::column(feedback_row::Column::SessionId)
                .update_columns([
                    feedback_row::Column::Score,
                    feedback_row::Column::Communication,
                    feedback_row::Column::Content,
                    feedback_row::Column::BodyLanguage,
                    feedback_row::Column::Highlights,
                    feedback_row::Column::ActionItems,
                    feedback_row::Column::CreatedAt,
                ])
                .to_owned(),
        )
        .exec(&state.db)
        .await?;
    let mut saved = serde_json::to_value(&feedback).unwrap_or_default();
    if let Some(fields) = saved.as_object_mut() {
        fields.insert("sessionId".into(), json!(session.id));
    }
    let mut session: practice_session::ActiveModel = session.into();
    session.feedback_json = Set(Some(saved.clone()));
    session.updated_at = Set(Utc::now());
    session.update(&state.db).await?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::history_turn;
    use crate::proptest_json::any_json;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_history_turn_is_a_message_or_skipped(turn in any_json()) {
            if let Some(message) = history_turn(&turn) {
                prop_assert!(matches!(message.role, crate::ai::Role::User | crate::ai::Role::Assistant));
            }
        }
    }
}
