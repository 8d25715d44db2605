//! Liveness: `GET /api/health` (database, adapter and AI state included) and
//! the socket event `health`, which acknowledges at once and serves as a
//! round-trip probe. Readiness: `GET /api/ready`, 503 while the database or
//! the adapter's backplane cannot be reached.
//!
//! The health report keeps every field the contract names for everyone, but
//! its details (node id, database backend, provider, model, memory) only for
//! this machine and admins: to a stranger they say which software to attack
//! and where.

use std::time::Duration;

use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::{StatusCode, request::Parts},
    response::IntoResponse,
};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    ai::ProviderName,
    auth::optional_user,
    cluster::AdapterKind,
    error::AppResult,
    http::ClientIp,
    socket::{EventContext, EventTable, NoPayload},
    state::AppState,
    store,
};

/// How long the health route waits for the database: a load balancer's probe
/// gets a 503 within about two seconds, not a time-out.
const DATABASE_PROBE: Duration = Duration::from_millis(1500);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct HealthReport {
    status: &'static str,
    timestamp: String,
    version: &'static str,
    /// Seconds since start-up.
    uptime: f64,
    memory: MemoryReport,
    database: DatabaseReport,
    adapter: AdapterReport,
    ai: AiReport,
}

/// The Socket.IO adapter and this node's id.
#[derive(Serialize, ToSchema)]
struct AdapterReport {
    /// `connected`, or `unreachable` while the other nodes cannot be reached.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<AdapterKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MemoryReport {
    /// Resident set size in bytes, when the platform tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    rss: Option<usize>,
}

#[derive(Serialize, ToSchema)]
struct DatabaseReport {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AiReport {
    /// True when answers come from the built-in demo provider.
    demo: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<ProviderName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    configured: Option<Vec<ProviderName>>,
}

/// Whether the caller sees the report's details: a client on this machine,
/// or an admin's Bearer token.
struct Details(bool);

impl FromRequestParts<AppState> for Details {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        if ip.is_loopback() {
            return Ok(Self(true));
        }
        let admin = optional_user(parts, state)
            .await
            .ok()
            .flatten()
            .is_some_and(|user| user.is_admin);
        Ok(Self(admin))
    }
}

/// 200 with `status: "OK"`; 503 with `status: "DEGRADED"` when the database
/// does not answer within [`DATABASE_PROBE`]. While the adapter's backplane
/// (Redis, PostgreSQL) is unreachable the node still serves its own sockets:
/// `DEGRADED`, but 200, so a load balancer does not take every node out at once.
/// Liveness, and what the process is connected to; 503 while the database is unreachable.
#[utoipa::path(get, path = "/api/health", tag = "operations",
    responses((status = 200, body = HealthReport), (status = 503, body = HealthReport)))]
async fn health(State(state): State<AppState>, Details(details): Details) -> impl IntoResponse {
    let database_up = store::reachable(&state.db, DATABASE_PROBE).await;
    let adapter_up = state.cluster.reachable();
    let model = state.ai.default_model();
    let configured = [
        ProviderName::Openai,
        ProviderName::Openrouter,
        ProviderName::Gemini,
        ProviderName::Demo,
    ]
    .into_iter()
    .filter(|name| state.ai.is_configured(*name))
    .collect();
    let report = HealthReport {
        status: if database_up && adapter_up {
            "OK"
        } else {
            "DEGRADED"
        },
        timestamp: Utc::now().to_rfc3339(),
        version: env!("CARGO_PKG_VERSION"),
        uptime: state.started_at.elapsed().as_secs_f64(),
        memory: MemoryReport {
            rss: memory_stats::memory_stats()
                .map(|usage| usage.physical_mem)
                .filter(|_| details),
        },
        database: DatabaseReport {
            status: if database_up {
                "connected"
            } else {
                "unreachable"
            },
            backend: details.then(|| store::backend_name(&state.db)),
        },
        adapter: AdapterReport {
            status: if adapter_up {
                "connected"
            } else {
                "unreachable"
            },
            kind: details.then(|| state.cluster.kind()),
            node: details.then(|| state.cluster.node().to_string()),
        },
        ai: AiReport {
            demo: model.provider() == ProviderName::Demo,
            provider: details.then(|| model.provider()),
            model: details.then(|| model.default_model().to_owned()),
            configured: details.then_some(configured),
        },
    };
    let status = if database_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

#[derive(Serialize, ToSchema)]
struct ReadyReport {
    /// `READY` or `NOT_READY`.
    status: &'static str,
    database: &'static str,
    adapter: &'static str,
}

/// 200 `READY` when this node can serve fully; 503 `NOT_READY` while the
/// database does not answer within [`DATABASE_PROBE`] or the other nodes
/// cannot be reached, so a load balancer sends new clients elsewhere.
/// Readiness: 503 while the database or the adapter is unreachable.
#[utoipa::path(get, path = "/api/ready", tag = "operations",
    responses((status = 200, body = ReadyReport), (status = 503, body = ReadyReport)))]
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database_up = store::reachable(&state.db, DATABASE_PROBE).await;
    let adapter_up = state.cluster.reachable();
    let reachable = |up: bool| if up { "connected" } else { "unreachable" };
    let ready = database_up && adapter_up;
    let report = ReadyReport {
        status: if ready { "READY" } else { "NOT_READY" },
        database: reachable(database_up),
        adapter: reachable(adapter_up),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

/// `socket.emit("health", ack)` → `ack({status: "OK", timestamp})`.
pub fn register(table: &mut EventTable) {
    table.core(|_, _, _| {}).on_immediate(
        "health",
        "A liveness probe; the acknowledgement answers `{status: \"OK\", timestamp}`",
        answer_probe,
    );
}

async fn answer_probe(cx: EventContext, _: NoPayload) -> AppResult<()> {
    cx.ack
        .send(&json!({ "status": "OK", "timestamp": Utc::now().to_rfc3339() }));
    Ok(())
}
