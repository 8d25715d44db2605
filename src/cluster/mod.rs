//! Several nodes as one: the backplane the Socket.IO adapter runs on (Redis
//! pub/sub, PostgreSQL LISTEN/NOTIFY, or none), the signals nodes send each
//! other over it, and the registry of live nodes in the database.
//!
//! What each piece of state does with several nodes is listed in the README
//! ("Several nodes"). In short: rooms and broadcasts go through the adapter;
//! facts a node caches are invalidated by [`Signal`]s; work in progress (a
//! streaming reply, a pending AI answer, a connected resume session) names
//! the node doing it, and the others take it over once that node's heartbeat
//! stops ([`nodes`]).
//!
//! This module knows no flow: flows name their own signal topics.

pub mod nodes;
mod postgres;
mod redis;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use self::{postgres::PgLink, redis::RedisLink};
use crate::config::{AdapterChoice, Config};

/// Signals a node may have queued for its flows before the slowest drops some.
const SIGNAL_BUFFER: usize = 1024;

/// How often a backplane is probed, and how long a probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The channel signals travel on (a Redis channel, a PostgreSQL NOTIFY
/// channel), after the adapter's prefix.
const SIGNAL_CHANNEL: &str = "switchboard-signals";

/// The topic of the signal a node sends itself when its backplane comes back:
/// signals sent meanwhile are lost, so caches are dropped.
pub const RESYNC: &str = "cluster.resync";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("SOCKET_ADAPTER=redis needs REDIS_URL")]
    RedisUrlMissing,
    #[error("SOCKET_ADAPTER=postgres needs a postgres:// DATABASE_URL")]
    PostgresUrlMissing,
    #[error("Redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("Redis: {0}")]
    RedisLink(#[from] redis::RedisLinkError),
    #[error("PostgreSQL (adapter): {0}")]
    Postgres(#[from] sea_orm::sqlx::Error),
}

/// Which adapter this node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    Local,
    Redis,
    Postgres,
}

impl AdapterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Local => "local",
            AdapterKind::Redis => "redis",
            AdapterKind::Postgres => "postgres",
        }
    }
}

/// This node's id: `NODE_ID`, or a random one per start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeId(Arc<str>);

impl NodeId {
    pub fn from_config(config: &Config) -> Self {
        match config.node_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => Self(id.into()),
            _ => Self(uuid::Uuid::new_v4().simple().to_string().into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The shared medium between nodes.
#[derive(Clone)]
pub enum Backplane {
    Local,
    Redis(RedisLink),
    Postgres(PgLink),
}

/// A message from another node to this node's flows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signal {
    pub topic: String,
    pub body: Value,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    #[serde(flatten)]
    signal: Signal,
}

/// Whether a backplane answers, as last probed (shared by the link, which
/// fails fast while it is away, and the prober).
#[derive(Clone)]
pub(crate) struct Reachability(Arc<AtomicBool>);

impl Reachability {
    fn new() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    pub(crate) fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Records a probe; true when it changed the state.
    fn set(&self, up: bool) -> bool {
        self.0.swap(up, Ordering::Relaxed) != up
    }
}

/// This node's place among the nodes.
pub struct Cluster {
    node: NodeId,
    prefix: String,
    backplane: Backplane,
    reachability: Reachability,
    signals: broadcast::Sender<Signal>,
    /// Stops the follower tasks when the node goes.
    stop: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Cluster {
    /// Connects the backplane `SOCKET_ADAPTER` (and `REDIS_URL`) asks for.
    pub async fn connect(config: &Config) -> Result<Self, ClusterError> {
        let node = NodeId::from_config(config);
        let reachability = Reachability::new();
        let is_postgres = crate::store::is_postgres_url(&config.database_url);
        let backplane = match (config.socket_adapter, &config.redis_url) {
            (AdapterChoice::Local, _) | (AdapterChoice::Auto, None) => Backplane::Local,
            (AdapterChoice::Auto | AdapterChoice::Redis, Some(url)) => {
                Backplane::Redis(RedisLink::connect(url, reachability.clone()).await?)
            }
            (AdapterChoice::Redis, None) => return Err(ClusterError::RedisUrlMissing),
            (AdapterChoice::Postgres, _) if !is_postgres => {
                return Err(ClusterError::PostgresUrlMissing);
            }
            (AdapterChoice::Postgres, _) => Backplane::Postgres(
                PgLink::connect(&config.database_url, reachability.clone()).await?,
            ),
        };
        let cluster = Self {
            node,
            prefix: config.socket_adapter_prefix.clone(),
            backplane,
            reachability,
            signals: broadcast::Sender::new(SIGNAL_BUFFER),
            stop: CancellationToken::new(),
        };
        if cluster.kind() != AdapterKind::Local && !is_postgres {
            tracing::warn!(
                "several nodes share rooms, but each keeps its own SQLite file: use a PostgreSQL DATABASE_URL so they share their data"
            );
        }
        cluster.start_following().await?;
        Ok(cluster)
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn kind(&self) -> AdapterKind {
        match self.backplane {
            Backplane::Local => AdapterKind::Local,
            Backplane::Redis(_) => AdapterKind::Redis,
            Backplane::Postgres(_) => AdapterKind::Postgres,
        }
    }

    /// True when other nodes may share this one's database and rooms.
    pub fn is_shared(&self) -> bool {
        self.kind() != AdapterKind::Local
    }

    pub fn backplane(&self) -> &Backplane {
        &self.backplane
    }

    /// The prefix of the adapter's channels (`SOCKET_ADAPTER_PREFIX`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn signal_channel(&self) -> String {
        format!("{}-{SIGNAL_CHANNEL}", self.prefix)
    }

    /// Whether the backplane answered its last probe (always, when local).
    pub fn reachable(&self) -> bool {
        self.reachability.is_up()
    }

    /// Signals from other nodes (and [`RESYNC`] from this one).
    pub fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    /// Tells the other nodes; fire and forget (a lost signal costs a cache
    /// miss or a wasted AI call, never a wrong answer: the database decides).
    pub fn publish(&self, topic: &str, body: Value) {
        if matches!(self.backplane, Backplane::Local) || !self.reachable() {
            return;
        }
        let envelope = Envelope {
            origin: self.node.to_string(),
            signal: Signal {
                topic: topic.to_owned(),
                body,
            },
        };
        let Ok(payload) = serde_json::to_string(&envelope) else {
            return;
        };
        let (backplane, channel) = (self.backplane.clone(), self.signal_channel());
        tokio::spawn(async move {
            let sent = match &backplane {
                Backplane::Local => Ok(()),
                Backplane::Redis(link) => link
                    .publish_signal(&channel, payload)
                    .await
                    .map_err(|err| err.to_string()),
                Backplane::Postgres(link) => link
                    .publish_signal(&channel, &payload)
                    .await
                    .map_err(|err| err.to_string()),
            };
            if let Err(err) = sent {
                crate::warn_limited!(%err, "a signal to the other nodes was lost");
            }
        });
    }

    /// Subscribes to the signal channel, and probes the backplane: when it
    /// comes back after an outage, flows get [`RESYNC`].
    async fn start_following(&self) -> Result<(), ClusterError> {
        let incoming = match &self.backplane {
            Backplane::Local => return Ok(()),
            Backplane::Redis(link) => link.signal_stream(&self.signal_channel()).await?,
            Backplane::Postgres(link) => link.signal_stream(&self.signal_channel()).await?,
        };
        let (node, signals) = (self.node.clone(), self.signals.clone());
        let mut incoming = Box::pin(incoming.take_until(self.stop.clone().cancelled_owned()));
        tokio::spawn(async move {
            while let Some(payload) = incoming.next().await {
                match serde_json::from_str::<Envelope>(&payload) {
                    Ok(envelope) if envelope.origin != node.as_str() => {
                        let _ = signals.send(envelope.signal);
                    }
                    Ok(_) => {}
                    Err(err) => crate::warn_limited!(%err, "an unreadable signal was ignored"),
                }
            }
        });
        let (backplane, reachability, signals) = (
            self.backplane.clone(),
            self.reachability.clone(),
            self.signals.clone(),
        );
        let kind = self.kind();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PROBE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => {}
                }
                let probe = async {
                    match &backplane {
                        Backplane::Local => true,
                        Backplane::Redis(link) => link.probe().await,
                        Backplane::Postgres(link) => link.probe().await,
                    }
                };
                let up = tokio::time::timeout(PROBE_TIMEOUT, probe)
                    .await
                    .unwrap_or(false);
                if !reachability.set(up) {
                    continue;
                }
                if up {
                    tracing::info!(
                        adapter = kind.as_str(),
                        "the backplane is back: broadcasts reach the other nodes again"
                    );
                    let _ = signals.send(Signal {
                        topic: RESYNC.to_owned(),
                        body: Value::Null,
                    });
                } else {
                    tracing::warn!(
                        adapter = kind.as_str(),
                        "the backplane is unreachable: this node serves its own sockets alone until it is back"
                    );
                }
            }
        });
        Ok(())
    }
}
