//! Prometheus metrics: the `metrics` facade, recorded by the Prometheus
//! exporter and rendered at `/metrics` (or on `METRICS_ADDR`).
//!
//! Labels stay bounded: event names and error codes the server itself
//! defines, limiter names, provider and model names from the configuration —
//! never ids or client strings. The names below are the whole catalogue (the
//! README lists them).

use std::{
    sync::{LazyLock, OnceLock},
    time::Duration,
};

use ::metrics::{Counter, counter, gauge, histogram};
use dashmap::DashMap;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const SOCKETS_CONNECTED: &str = "switchboard_sockets_connected";
pub const SOCKET_CONNECTS: &str = "switchboard_socket_connects_total";
pub const SOCKET_DISCONNECTS: &str = "switchboard_socket_disconnects_total";
pub const EVENTS_RECEIVED: &str = "switchboard_socket_events_received_total";
pub const EVENTS_SENT: &str = "switchboard_socket_events_sent_total";
pub const ERRORS: &str = "switchboard_errors_total";
pub const REFUSALS: &str = "switchboard_refusals_total";
pub const HANDOFFS: &str = "switchboard_livechat_handoffs_total";
pub const AI_STREAMS_ACTIVE: &str = "switchboard_ai_streams_active";
pub const AI_REQUESTS: &str = "switchboard_ai_requests_total";
pub const AI_REQUEST_SECONDS: &str = "switchboard_ai_request_seconds";
pub const AI_TOKENS: &str = "switchboard_ai_tokens_total";
pub const AI_ANONYMOUS_TOKENS: &str = "switchboard_ai_anonymous_tokens_total";
pub const LIVECHAT_BATCH_ROWS: &str = "switchboard_livechat_batch_rows";
pub const LIVECHAT_COMMIT_SECONDS: &str = "switchboard_livechat_commit_seconds";
pub const DB_STATEMENT_SECONDS: &str = "switchboard_db_statement_seconds";

/// Seconds, from a millisecond to a minute (AI calls, commits).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Rows of one live-chat commit, up to `LIVECHAT_BATCH_MAX_ROWS`' default.
const ROWS_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls, as when tests start
/// several servers in one process, get the same one).
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(LIVECHAT_BATCH_ROWS.to_owned()),
                    ROWS_BUCKETS,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder was installed first");
        }
        handle
    })
}

/// `GET /metrics`: the Prometheus text exposition of every metric.
pub async fn exposition() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        install().render(),
    )
}

/// A router serving `/metrics` alone.
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new().route("/metrics", axum::routing::get(exposition))
}

/// Drains histogram buckets the exporter keeps; called now and then.
pub fn upkeep() {
    install().run_upkeep();
}

pub fn socket_connected() {
    counter!(SOCKET_CONNECTS).increment(1);
    gauge!(SOCKETS_CONNECTED).increment(1.0);
}

pub fn socket_disconnected() {
    counter!(SOCKET_DISCONNECTS).increment(1);
    gauge!(SOCKETS_CONNECTED).decrement(1.0);
}

pub fn event_received(event: &'static str) {
    static HANDLES: LazyLock<DashMap<&'static str, Counter>> = LazyLock::new(DashMap::new);
    count_event(&HANDLES, EVENTS_RECEIVED, event);
}

/// The server sent `event` (a broadcast to a room counts once).
pub fn event_sent(event: &'static str) {
    static HANDLES: LazyLock<DashMap<&'static str, Counter>> = LazyLock::new(DashMap::new);
    count_event(&HANDLES, EVENTS_SENT, event);
}

/// Counts `event` in the family `name`, through a handle kept per event: a
/// labelled counter's lookup in the recorder's registry costs about as much
/// as a small event's own work. Event names are the server's constants, so
/// `handles` stays small. Handles are kept only once the recorder is
/// installed; before, they would be no-ops for good.
fn count_event(handles: &DashMap<&'static str, Counter>, name: &'static str, event: &'static str) {
    if HANDLE.get().is_none() {
        counter!(name, "event" => event).increment(1);
        return;
    }
    if let Some(counter) = handles.get(event) {
        counter.increment(1);
        return;
    }
    let counter = counter!(name, "event" => event);
    counter.increment(1);
    handles.insert(event, counter);
}

/// An error answered to a client, by code and by how it went out (`http`, `socket`).
pub fn error_answered(code: &'static str, via: &'static str) {
    counter!(ERRORS, "code" => code, "via" => via).increment(1);
}

/// A limiter refused a request: `api`, `ai`, `login`, `socket_events`,
/// `connections`, `quota`.
pub fn refused(limiter: &'static str) {
    counter!(REFUSALS, "limiter" => limiter).increment(1);
}

pub fn handed_off() {
    counter!(HANDOFFS).increment(1);
}

pub fn ai_stream_started() {
    gauge!(AI_STREAMS_ACTIVE).increment(1.0);
}

pub fn ai_stream_ended() {
    gauge!(AI_STREAMS_ACTIVE).decrement(1.0);
}

/// One call to a provider: how long until it answered (or failed) and how.
pub fn ai_request(provider: &'static str, model: &str, outcome: &'static str, took: Duration) {
    let model = model.to_owned();
    counter!(AI_REQUESTS, "provider" => provider, "model" => model.clone(), "outcome" => outcome)
        .increment(1);
    histogram!(AI_REQUEST_SECONDS, "provider" => provider, "model" => model)
        .record(took.as_secs_f64());
}

pub fn ai_tokens(provider: &'static str, model: &str, tokens: u64) {
    counter!(AI_TOKENS, "provider" => provider, "model" => model.to_owned()).increment(tokens);
}

/// Tokens charged to anonymous callers' budgets (reported or estimated).
pub fn ai_anonymous_tokens(tokens: u64) {
    counter!(AI_ANONYMOUS_TOKENS).increment(tokens);
}

pub fn livechat_commit(rows: usize, took: Duration) {
    histogram!(LIVECHAT_BATCH_ROWS).record(rows as f64);
    histogram!(LIVECHAT_COMMIT_SECONDS).record(took.as_secs_f64());
}

/// One statement through the connection pool: its kind (the SQL's first
/// word: `select`, `insert`, `update`, `delete`, else `other`), whether it
/// failed, and how long it took.
pub fn db_statement(sql: &str, failed: bool, took: Duration) {
    let first = sql.split_whitespace().next().unwrap_or("");
    let kind = ["select", "insert", "update", "delete"]
        .into_iter()
        .find(|kind| first.eq_ignore_ascii_case(kind))
        .unwrap_or("other");
    let outcome = if failed { "error" } else { "ok" };
    histogram!(DB_STATEMENT_SECONDS, "kind" => kind, "outcome" => outcome)
        .record(took.as_secs_f64());
}
