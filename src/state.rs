//! [`AppState`]: what every handler and service shares, built once at start-up.
//!
//! Shared infrastructure sits in named fields. A flow's own state (its locks,
//! caches, running generations) is kept in [`FlowStates`], a map by type that
//! the server fills at start-up, so this module names no flow.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    ops::Deref,
    sync::Arc,
    time::Instant,
};

use governor::DefaultKeyedRateLimiter;
use sea_orm::DatabaseConnection;
use tokio_util::task::TaskTracker;

use crate::{
    ai::{AiBudget, Providers},
    auth::{AdminFlags, LoginLimits, Passwords, SignIns, TokenKeys},
    client_limits::{ApiConcurrency, CreationBudget},
    cluster::Cluster,
    config::Config,
    http::Origins,
    socket::{AddressLimits, Hub},
};

/// Cheap to clone: one shared allocation.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub db: DatabaseConnection,
    pub tokens: TokenKeys,
    pub passwords: Passwords,
    /// Sign-in attempts per address and per account.
    pub login_limits: LoginLimits,
    /// The browser origins allowed, and those given credentials.
    pub origins: Origins,
    /// Socket.IO sessions and sockets per client address.
    pub socket_limits: AddressLimits,
    /// Whether admins are still admins (read again every `ADMIN_RECHECK_SECS`).
    pub admin_flags: AdminFlags,
    /// Which sign-ins still hold (signing out ends one on every node).
    pub sign_ins: SignIns,
    pub ai: Providers,
    /// What AI calls may cost, and who pays.
    pub ai_budget: AiBudget,
    /// What one client address may create per minute.
    pub creations: CreationBudget,
    /// `/api` requests of one address running at once.
    pub api_concurrency: ApiConcurrency,
    /// Sends events to rooms from services, routes and background tasks.
    pub hub: Hub,
    /// This node among the others: its id, the backplane, signals.
    pub cluster: Cluster,
    /// Background work that must finish (or persist what it has) before the
    /// process exits: AI replies and streams. Shutdown waits on it.
    pub tasks: TaskTracker,
    pub started_at: Instant,
    /// Requests to `/api` per client IP.
    pub api_limiter: DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// AI requests per user.
    pub ai_limiter: DefaultKeyedRateLimiter<i32>,
    /// Outgoing HTTP (ChatKit).
    pub http: reqwest::Client,
    pub flows: FlowStates,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// The state a flow keeps of type `T`, put there at start-up.
    ///
    /// # Panics
    /// When the server was built without it: a wiring mistake every test finds.
    pub fn flow<T: Any + Send + Sync>(&self) -> &T {
        self.flows.get::<T>().unwrap_or_else(|| {
            panic!(
                "flow state {} was not installed",
                std::any::type_name::<T>()
            )
        })
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The flows' own states, one value per type.
#[derive(Default)]
pub struct FlowStates(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl FlowStates {
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }
}
