//! The loops that run beside the server: the node heartbeat and taking over
//! what dead nodes left, other nodes' signals, and the minute's sweeps.

use std::time::Duration;

use crate::{assistant, auth, cluster, livechat, resume, state::AppState, telemetry::metrics};

/// Work stopped or dead nodes left: streaming replies are marked interrupted,
/// unanswered live-chat messages answered, resume sessions start expiring.
pub(super) async fn take_over_orphans(state: &AppState) {
    match assistant::service::mark_interrupted(&state.db).await {
        Ok(0) => {}
        Ok(interrupted) => tracing::info!(
            interrupted,
            "assistant replies a stopped node cut off are marked interrupted"
        ),
        Err(err) => tracing::warn!(%err, "could not mark interrupted assistant replies"),
    }
    livechat::retry_orphaned_replies(state).await;
    if let Err(err) = resume::service::release_orphans(&state.db).await {
        tracing::warn!(%err, "could not release the resume sessions of stopped nodes");
    }
}

/// Every few seconds: says this node is alive and takes over what dead ones left.
pub(super) async fn beat_periodically(state: AppState) {
    let mut every = tokio::time::interval(cluster::nodes::HEARTBEAT_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        if let Err(err) = cluster::nodes::beat(&state.db, state.cluster.node()).await {
            tracing::warn!(%err, "the node heartbeat failed");
            continue;
        }
        if state.cluster.is_shared() {
            take_over_orphans(&state).await;
        }
    }
}

/// Hands what other nodes signal to the flows.
pub(super) async fn follow_signals(state: AppState) {
    let mut signals = state.cluster.signals();
    loop {
        match signals.recv().await {
            Ok(signal) => {
                livechat::on_signal(&state, &signal);
                assistant::on_signal(&state, &signal);
                auth::on_signal(&state, &signal);
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "signals from other nodes were missed; dropping caches"
                );
                let resync = cluster::Signal {
                    topic: cluster::RESYNC.to_owned(),
                    body: serde_json::Value::Null,
                };
                livechat::on_signal(&state, &resync);
                auth::on_signal(&state, &resync);
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Once a minute: drops expired resume sessions and forgets idle rate-limit keys.
pub(super) async fn sweep_periodically(state: AppState) {
    let ttl = Duration::from_secs(state.config.resume_state_ttl_secs);
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        state.api_limiter.retain_recent();
        state.ai_limiter.retain_recent();
        state.login_limits.retain_recent();
        state.socket_limits.retain_recent();
        state.ai_budget.retain_recent();
        state.creations.retain_recent();
        state.api_concurrency.retain_recent();
        if state.config.metrics {
            metrics::upkeep();
        }
        if let Err(err) = resume::service::sweep(&state.db, ttl).await {
            tracing::warn!(%err, "sweeping resume sessions failed");
        }
    }
}
