//! What the server answers: the socket event table, the HTTP routes of every
//! flow with their middleware (disabled flows, per-address budgets, the
//! metrics guard).

use std::{num::NonZeroU32, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use governor::Quota;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    assistant, auth, chatkit, coach,
    config::{Config, Flow, LogFormat},
    error::AppError,
    frontend, health,
    http::{self, ClientIp},
    livechat, openapi, pages, resume,
    socket::EventTable,
    state::AppState,
    telemetry::metrics,
};

/// Every flow's socket events.
pub fn socket_events(config: &Config) -> EventTable {
    let mut events = EventTable::default().with_event_spans(config.log_format == LogFormat::Json);
    health::register(&mut events);
    livechat::register(&mut events, config);
    assistant::register(&mut events, config);
    resume::register(&mut events, config);
    events
}

/// The path prefixes of each flow's routes.
const FLOW_ROUTES: [(Flow, &[&str]); 4] = [
    (Flow::Livechat, &["/api/chats", "/api/messages", "/api/ai/"]),
    (Flow::Assistant, &["/api/conversations", "/api/chat"]),
    (Flow::Resume, &["/format-resume"]),
    (
        Flow::Coach,
        &[
            "/api/gemini/",
            "/api/sessions",
            "/api/analytics/",
            "/api/chatkit/",
        ],
    ),
];

/// The flow a path belongs to.
fn flow_of(path: &str) -> Option<Flow> {
    FLOW_ROUTES.iter().find_map(|(flow, prefixes)| {
        prefixes
            .iter()
            .any(|prefix| {
                path.strip_prefix(prefix).is_some_and(|rest| {
                    prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')
                })
            })
            .then_some(*flow)
    })
}

/// Routes of a flow the configuration switched off answer `FLOW_DISABLED`.
async fn refuse_disabled_flows(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match flow_of(request.uri().path()) {
        Some(flow) if !state.config.flow_enabled(flow) => {
            AppError::flow_disabled(flow).into_response()
        }
        _ => next.run(request).await,
    }
}

pub(super) fn router(state: &AppState) -> Router {
    let (api, doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(auth::router())
        .merge(health::router())
        .merge(livechat::router())
        .merge(resume::router())
        .merge(assistant::router())
        .merge(coach::router())
        .merge(chatkit::router())
        .split_for_parts();
    let frontend = frontend::directory(&state.config);
    let api = api
        .merge(openapi::router(openapi::with_error_answers(doc)))
        .merge(pages::router(frontend.is_none()))
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_disabled_flows,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit_api_per_ip,
        ))
        .layer(DefaultBodyLimit::max(state.config.http_body_limit_bytes))
        .with_state(state.clone());
    match frontend {
        Some(dir) => {
            tracing::info!(dir = %dir.display(), "serving a frontend");
            api.fallback_service(
                Router::new()
                    .fallback(frontend::serve)
                    .with_state(frontend::files(&dir)),
            )
        }
        None => api.fallback(http::not_found),
    }
}

/// `RATE_LIMIT_MAX_REQUESTS` per `RATE_LIMIT_WINDOW_MS`, as a bucket that refills evenly.
pub(super) fn api_quota(config: &Config) -> Quota {
    let max = NonZeroU32::new(config.rate_limit_max_requests).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_millis(config.rate_limit_window_ms) / max.get();
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(max)
}

/// Routes outside the general `/api` budget: health probes, and sign-in,
/// which has its own ([`LoginLimits`]).
const OWN_BUDGET: [&str; 4] = [
    "/api/health",
    "/api/ready",
    "/api/auth/login",
    "/api/auth/register",
];

/// The per-client budget of `/api` requests.
async fn limit_api_per_ip(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let limited = path.starts_with("/api/") && !OWN_BUDGET.contains(&path);
    if !limited {
        return next.run(request).await;
    }
    if let Err(not_until) = state.api_limiter.check_key(&ip) {
        metrics::refused("api");
        return AppError::RateLimited {
            message: "Too many requests; try again later".to_owned(),
            retry_after: crate::rate_limit::retry_after(&not_until),
        }
        .into_response();
    }
    match state.api_concurrency.turn(ip).await {
        Ok(_turn) => next.run(request).await,
        Err(busy) => busy.into_response(),
    }
}

/// `/metrics` on the main port answers this machine (a Prometheus beside
/// the server) and callers with `METRICS_TOKEN`; to anyone else it does not
/// exist. Its labels name providers, models and the limits refusing clients.
pub(super) async fn guard_metrics(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    let token = state.config.metrics_token.as_deref();
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let allowed = ip.is_loopback() || token.is_some_and(|token| presented == Some(token));
    if allowed {
        next.run(request).await
    } else {
        http::not_found().await.into_response()
    }
}
