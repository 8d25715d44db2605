//! A local OpenAI-compatible server for tests, examples and benchmarks; no test
//! reaches a real provider.
//!
//! It answers `POST /v1/chat/completions`, streaming (SSE) or not. What it does
//! is steered by directives inside the last user message, so any client (a Rust
//! test, a JS test through the server, a benchmark) can script it:
//!
//! | directive | effect |
//! |---|---|
//! | `[[mock:reply]]TEXT[[/mock:reply]]` | answer TEXT (default: `Mock reply: <the message>`) |
//! | `[[mock:words=N]]` | answer N words (`w1 w2 …`) |
//! | `[[mock:status=N]]` | fail with HTTP N and an OpenAI error body |
//! | `[[mock:fail-first=N]]` | fail the first N requests carrying this message with 503 |
//! | `[[mock:first-byte-delay=MS]]` | wait before sending the response headers |
//! | `[[mock:delay=MS]]` | wait between two chunks |
//! | `[[mock:cut=N]]` | send N chunks, then break the connection |
//! | `[[mock:hang]]` | send one chunk, then nothing until the client goes away |
//! | `[[mock:stamp]]` | each word is the time it is sent, in µs since the Unix epoch (for latency measurements) |
//! | `[[mock:no-schema]]` | refuse `response_format: json_schema` with 400, as providers without structured output do |
//!
//! `POST /v1/chatkit/sessions` issues ChatKit sessions (workflow `wf_fail`
//! fails with 500). Streams send one word a chunk, then a usage chunk when asked for. Every request
//! is recorded; `GET /__mock/requests` and `GET /__mock/stats` show them, and
//! `stats.aborted` counts streams the client closed before their end.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
    routing::{get, post},
};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// One request as the mock saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct MockStats {
    pub requests: usize,
    pub completed: usize,
    pub aborted: usize,
}

#[derive(Default)]
struct MockState {
    requests: Mutex<Vec<RecordedRequest>>,
    failures_served: Mutex<HashMap<String, usize>>,
    completed: AtomicUsize,
    aborted: AtomicUsize,
}

/// A running mock; it stops when dropped.
pub struct MockAi {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: JoinHandle<()>,
}

impl MockAi {
    /// Starts the mock on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("a valid address")).await
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let state = Arc::new(MockState::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/chat/completions", post(chat_completions))
            .route("/v1/chatkit/sessions", post(chatkit_session))
            .route("/__mock/requests", get(list_requests))
            .route("/__mock/stats", get(stats))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "mock AI server stopped");
            }
        });
        Ok(Self { addr, state, task })
    }

    /// The base URL to configure as `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    pub fn stats(&self) -> MockStats {
        self.state.stats()
    }
}

impl Drop for MockAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockState {
    /// Keeps a request for inspection; returns how many there are now.
    fn record(&self, path: &str, headers: &HeaderMap, body: &Value) -> usize {
        let mut requests = lock(&self.requests);
        requests.push(RecordedRequest {
            path: path.to_owned(),
            headers: headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        value.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body: body.clone(),
        });
        requests.len()
    }

    fn stats(&self) -> MockStats {
        MockStats {
            requests: lock(&self.requests).len(),
            completed: self.completed.load(Ordering::SeqCst),
            aborted: self.aborted.load(Ordering::SeqCst),
        }
    }
}

/// The mock's locks guard plain data; a poisoned one is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn list_requests(State(state): State<Arc<MockState>>) -> Json<Vec<RecordedRequest>> {
    Json(lock(&state.requests).clone())
}

async fn stats(State(state): State<Arc<MockState>>) -> Json<MockStats> {
    Json(state.stats())
}

/// A ChatKit session; a workflow id of `wf_fail` fails with 500.
async fn chatkit_session(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let count = state.record("/v1/chatkit/sessions", &headers, &body);
    if body["workflow"]["id"] == "wf_fail" {
        return error_response(500);
    }
    Json(json!({
        "id": format!("cksess_{count}"),
        "object": "chatkit.session",
        "client_secret": format!("ek_mock_{count}"),
        "expires_at": 1_900_000_000 + count,
        "user": body["user"],
    }))
    .into_response()
}

/// The directives found in a message.
#[derive(Debug, Default, PartialEq)]
struct Script {
    reply: Option<String>,
    words: Option<usize>,
    status: Option<u16>,
    fail_first: Option<usize>,
    first_byte_delay: Duration,
    delay: Duration,
    cut_after: Option<usize>,
    hang: bool,
    stamp: bool,
    no_schema: bool,
}

impl Script {
    fn parse(message: &str) -> Self {
        let mut script = Script::default();
        if let Some((_, rest)) = message.split_once("[[mock:reply]]") {
            let text = rest.split("[[/mock:reply]]").next().unwrap_or(rest);
            script.reply = Some(text.to_owned());
        }
        for directive in message.split("[[mock:").skip(1) {
            let Some((body, _)) = directive.split_once("]]") else {
                continue;
            };
            let (name, value) = body.split_once('=').unwrap_or((body, ""));
            let number = value.trim().parse::<u64>().ok();
            match (name.trim(), number) {
                ("words", Some(n)) => script.words = Some(n as usize),
                ("status", Some(n)) => script.status = u16::try_from(n).ok(),
                ("fail-first", Some(n)) => script.fail_first = Some(n as usize),
                ("first-byte-delay", Some(ms)) => {
                    script.first_byte_delay = Duration::from_millis(ms)
                }
                ("delay", Some(ms)) => script.delay = Duration::from_millis(ms),
                ("cut", Some(n)) => script.cut_after = Some(n as usize),
                ("hang", _) => script.hang = true,
                ("stamp", _) => script.stamp = true,
                ("no-schema", _) => script.no_schema = true,
                _ => {}
            }
        }
        script
    }

    fn answer(&self, message: &str) -> String {
        if let Some(reply) = &self.reply {
            return reply.clone();
        }
        if let Some(words) = self.words {
            return (1..=words)
                .map(|i| format!("w{i}"))
                .collect::<Vec<_>>()
                .join(" ");
        }
        let plain = strip_directives(message);
        format!("Mock reply: {}", plain.trim())
    }
}

fn strip_directives(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("[[mock:") {
        out.push_str(&rest[..start]);
        rest = match rest[start..].find("]]") {
            Some(end) => &rest[start + end + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn error_response(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error": {
        "message": format!("mock failure {}", status.as_u16()),
        "type": "server_error",
        "param": null,
        "code": null,
    }});
    (status, Json(body)).into_response()
}

async fn chat_completions(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.record("/v1/chat/completions", &headers, &body);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(message_text)
        .unwrap_or_default();
    let script = Script::parse(&last_user);

    tokio::time::sleep(script.first_byte_delay).await;
    if let Some(status) = script.status {
        return error_response(status);
    }
    if script.no_schema && body["response_format"]["type"] == "json_schema" {
        return error_response(400);
    }
    if let Some(failures) = script.fail_first {
        let mut served = lock(&state.failures_served);
        let count = served.entry(last_user.clone()).or_default();
        if *count < failures {
            *count += 1;
            return error_response(503);
        }
    }

    let answer = script.answer(&last_user);
    let prompt_chars: usize = messages.iter().map(|m| message_text(m).len()).sum();
    let usage = json!({
        "prompt_tokens": prompt_chars.div_ceil(4),
        "completion_tokens": answer.split_whitespace().count(),
        "total_tokens": prompt_chars.div_ceil(4) + answer.split_whitespace().count(),
    });
    let model = body["model"].as_str().unwrap_or("mock-model").to_owned();

    if body["stream"].as_bool() != Some(true) {
        state.completed.fetch_add(1, Ordering::SeqCst);
        return Json(json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": answer },
                "finish_reason": "stop",
            }],
            "usage": usage,
        }))
        .into_response();
    }

    let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
    Sse::new(sse_stream(
        state,
        script,
        answer,
        model,
        include_usage.then_some(usage),
    ))
    .into_response()
}

/// Counts the stream as aborted when it is dropped before its end.
struct StreamGuard {
    state: Arc<MockState>,
    finished: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.finished {
            &self.state.completed
        } else {
            &self.state.aborted
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

fn chunk(model: &str, delta: Value, usage: Option<&Value>) -> Event {
    let choices = if delta.is_null() {
        json!([])
    } else {
        json!([{ "index": 0, "delta": delta, "finish_reason": null }])
    };
    let body = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
        "usage": usage,
    });
    Event::default().data(body.to_string())
}

fn sse_stream(
    state: Arc<MockState>,
    script: Script,
    answer: String,
    model: String,
    usage: Option<Value>,
) -> impl Stream<Item = Result<Event, std::io::Error>> {
    let words: Vec<String> = answer.split_inclusive(' ').map(str::to_owned).collect();
    let guard = StreamGuard {
        state,
        finished: false,
    };
    futures::stream::unfold((0usize, guard), move |(index, guard)| {
        let words = words.clone();
        let model = model.clone();
        let usage = usage.clone();
        let delay = script.delay;
        let cut_after = script.cut_after;
        let hang = script.hang;
        let stamp = script.stamp;
        async move {
            if index == usize::MAX {
                return None;
            }
            if index > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if cut_after == Some(index) {
                // Let the chunks before the cut reach the client first: the
                // connection is aborted with whatever is still buffered.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Some((
                    Err(std::io::Error::other("mock cut the stream")),
                    (usize::MAX, guard),
                ));
            }
            if hang && index == 1 {
                futures::future::pending::<()>().await;
            }
            let event = match index.cmp(&words.len()) {
                std::cmp::Ordering::Less if stamp => chunk(
                    &model,
                    json!({ "content": format!("{} ", now_micros()) }),
                    None,
                ),
                std::cmp::Ordering::Less => chunk(&model, json!({ "content": words[index] }), None),
                std::cmp::Ordering::Equal => match &usage {
                    Some(usage) => chunk(&model, Value::Null, Some(usage)),
                    None => return done(guard),
                },
                std::cmp::Ordering::Greater => return done(guard),
            };
            Some((Ok(event), (index + 1, guard)))
        }
    })
    .fuse()
}

fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros())
}

fn done(mut guard: StreamGuard) -> Option<(Result<Event, std::io::Error>, (usize, StreamGuard))> {
    guard.finished = true;
    Some((Ok(Event::default().data("[DONE]")), (usize::MAX, guard)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directives() {
        let script = Script::parse(
            "hi [[mock:delay=20]] [[mock:cut=3]] [[mock:reply]]{\"a\":[1]}[[/mock:reply]]",
        );
        assert_eq!(script.delay, Duration::from_millis(20));
        assert_eq!(script.cut_after, Some(3));
        assert_eq!(script.reply.as_deref(), Some("{\"a\":[1]}"));
        assert_eq!(strip_directives("a [[mock:hang]]b"), "a b");
    }
}
