//! Start-up and shutdown: connect the store, build the state, the router and
//! the Socket.IO layer, listen, serve, and stop gracefully. What the server
//! answers (routes, middleware, the socket event table) is in [`routes`];
//! the loops that run beside it (heartbeat, signals, sweeps) in [`background`].

mod background;
mod routes;

pub use routes::socket_events;

use std::{
    future::Future,
    io,
    net::SocketAddr,
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    middleware::{self, map_response},
    response::{IntoResponse, Response},
};
use governor::{Quota, RateLimiter};
use socketioxide::adapter::LocalAdapter;
use socketioxide_postgres::{PostgresAdapterConfig, PostgresAdapterCtr};
use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::{
    catch_panic::CatchPanicLayer, timeout::RequestBodyDeadlineLayer, trace::TraceLayer,
};

use crate::{
    ai::{AiBudget, AiError, Providers},
    assistant::ActiveStreams,
    asyncapi,
    auth::{self, AdminFlags, LoginLimits, Passwords, SignIns, TokenKeys},
    client_limits::{ApiConcurrency, CreationBudget},
    cluster::{self, Backplane, Cluster, ClusterError},
    coach::QuotaLocks,
    config::Config,
    error::AppError,
    http,
    livechat::{self, Livechat},
    net, resume,
    socket::{self, Hub, Io, PostgresAdapter, RedisAdapter},
    state::{AppState, FlowStates, Shared},
    store,
    telemetry::metrics,
};

/// Pending connections the kernel queues for us; tokio's default of 128
/// overflows under connection bursts.
const LISTEN_BACKLOG: u32 = 1024;

/// Broadcasts from other nodes queued for this one before a burst drops some
/// (the adapter's default is 1,024); memory is taken only while they queue.
const REDIS_STREAM_BUFFER: usize = 16_384;

/// After the grace period, stopped streams get this long to save what they have.
const STOPPED_STREAMS_SAVE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("AI provider set-up: {0}")]
    Ai(#[from] AiError),
    #[error("scale-out: {0}")]
    Cluster(#[from] ClusterError),
    #[error("{0}")]
    Setup(#[from] AppError),
    #[error("server: {0}")]
    Serve(io::Error),
    #[error("Socket.IO adapter: {0}")]
    Adapter(String),
}

/// A server that is listening but not yet serving; tests read its address.
pub struct Server {
    listener: TcpListener,
    router: Router,
    state: AppState,
    io: Io,
    limits: net::Limits,
}

impl Server {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let open_files = net::raise_open_file_limit();
        let passwords = Passwords::new(&config)?;
        // Nodes starting at once set the database up one after the other.
        let startup = store::StartupLock::acquire(&config).await?;
        let db = store::connect(&config).await?;
        let secret = auth::load_signing_secret(&db, &config).await?;
        let first_password = auth::bootstrap_admin(&db, &config, &passwords).await?;
        startup.release().await;
        let cluster = Cluster::connect(&config).await?;
        cluster::nodes::register(&db, cluster.node(), !cluster.is_shared()).await?;
        let ai = Providers::from_config(&config)?;
        let default_model = ai.default_model();
        tracing::info!(
            node = %cluster.node(),
            adapter = cluster.kind().as_str(),
            provider = %default_model.provider(),
            model = default_model.default_model(),
            database = store::backend_name(&db),
            flows = ?config.flows.iter().map(|flow| flow.as_str()).collect::<Vec<_>>(),
            "configured"
        );

        if config.livechat_legacy_broadcast {
            tracing::warn!(
                "LIVECHAT_LEGACY_BROADCAST is on: admin-bound live-chat events go to every socket and any socket may send admin events"
            );
        }
        let dropped =
            resume::service::sweep(&db, Duration::from_secs(config.resume_state_ttl_secs)).await?;
        if dropped > 0 {
            tracing::info!(dropped, "expired resume sessions dropped");
        }
        let mut flows = FlowStates::default();
        flows.insert(Livechat::new(db.clone(), &config, cluster.node().as_str()));
        flows.insert(ActiveStreams::default());
        flows.insert(QuotaLocks::default());
        let state = AppState::new(Shared {
            tokens: TokenKeys::new(
                secret.as_bytes(),
                Duration::from_secs(config.access_token_ttl_secs),
            ),
            passwords,
            login_limits: LoginLimits::new(&config),
            origins: http::Origins::new(&config),
            socket_limits: socket::AddressLimits::new(&config),
            ai_budget: AiBudget::new(&config),
            creations: CreationBudget::new(&config),
            api_concurrency: ApiConcurrency::new(&config),
            admin_flags: AdminFlags::new(Duration::from_secs(config.admin_recheck_secs)),
            sign_ins: SignIns::new(Duration::from_secs(config.admin_recheck_secs)),
            ai,
            db,
            hub: Hub::default(),
            cluster,
            tasks: TaskTracker::new(),
            started_at: Instant::now(),
            api_limiter: RateLimiter::keyed(routes::api_quota(&config)),
            ai_limiter: RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(config.ai_rate_limit_per_minute).unwrap_or(NonZeroU32::MIN),
            )),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(config.ai_timeout())
                .build()
                .map_err(|err| AppError::Internal(err.to_string()))?,
            flows,
            config,
        });
        background::take_over_orphans(&state).await;
        let mut router = routes::router(&state);
        if state.config.metrics {
            metrics::install();
            if state.config.metrics_addr.is_none() {
                router = router.merge(metrics::router().route_layer(
                    middleware::from_fn_with_state(state.clone(), routes::guard_metrics),
                ));
            }
        }
        let (router, io) = mount_sockets(router, &state).await?;
        let router = router.layer(middleware::from_fn_with_state(
            state.clone(),
            socket::limit_handshakes,
        ));
        state.hub.bind(io.clone());

        let addr = SocketAddr::new(state.config.host, state.config.port);
        let listener = bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        if let (Some(password), Ok(addr)) = (first_password, listener.local_addr()) {
            tracing::warn!(
                email = %state.config.admin_email,
                %password,
                console = %page_url(addr, "/console"),
                "created the admin with a random password (shown once; set ADMIN_PASSWORD to choose one); sign in at the console"
            );
        }
        let limits = net::Limits::new(&state.config, open_files);
        let router = router
            .layer(map_response(http::security_headers))
            .layer(TraceLayer::new_for_http().make_span_with(http::request_span))
            .layer(CatchPanicLayer::custom(|_panic| -> Response {
                AppError::Internal("a handler panicked".to_owned()).into_response()
            }))
            .layer(RequestBodyDeadlineLayer::new(Duration::from_secs(
                state.config.body_read_timeout_secs.max(1),
            )))
            .layer(http::cors(&state.origins));
        Ok(Self {
            listener,
            router,
            state,
            io,
            limits,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, gives running AI
    /// work the grace period to finish, stops (and saves) what still runs,
    /// closes every socket and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Self {
            listener,
            router,
            state,
            io,
            limits,
        } = self;
        if let Ok(addr) = listener.local_addr() {
            // `addr` stays last: scripts and tests read the line's end.
            tracing::info!(
                console = %page_url(addr, "/console"),
                docs = %page_url(addr, "/api/docs/"),
                %addr,
                "Switchboard listening"
            );
        }
        let grace = state.config.shutdown_grace();
        let stop_accepting = CancellationToken::new();
        let serving = tokio::spawn(net::serve(
            listener,
            router,
            limits,
            stop_accepting.clone(),
            grace,
        ));

        let metrics_listener = match (state.config.metrics, state.config.metrics_addr) {
            (true, Some(addr)) => Some(serve_metrics(addr).await?),
            _ => None,
        };
        let sweeper = tokio::spawn(background::sweep_periodically(state.clone()));
        let heart = tokio::spawn(background::beat_periodically(state.clone()));
        let follower = tokio::spawn(background::follow_signals(state.clone()));
        shutdown.await;
        tracing::info!("shutting down");
        sweeper.abort();
        heart.abort();
        if let Some(listener) = metrics_listener {
            listener.abort();
        }
        stop_accepting.cancel();
        state.tasks.close();
        if tokio::time::timeout(grace, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("running AI work did not finish within the grace period; stopping it");
            state.flow::<ActiveStreams>().stop_all();
            if tokio::time::timeout(STOPPED_STREAMS_SAVE, state.tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!("AI work still running after being stopped");
            }
        }
        io.close().await;
        // Visitors reconnecting elsewhere are sent what they miss from now.
        if let Err(err) = livechat::presence::node_stopping(&state).await {
            tracing::warn!(%err, "recording that this node's visitors went");
        }
        if tokio::time::timeout(grace, serving).await.is_err() {
            tracing::warn!("connections still open after the grace period");
        }
        follower.abort();
        state.hub.unbind();
        // The others take over what is left at once, not after a heartbeat.
        if let Err(err) = cluster::nodes::leave(&state.db, state.cluster.node()).await {
            tracing::warn!(%err, "leaving the node registry");
        }
        if let Err(err) = state.db.close_by_ref().await {
            tracing::warn!(%err, "closing the database");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves the Socket.IO engine on the adapter the backplane calls for, with
/// every flow's events; the router gains its layer.
async fn mount_sockets(router: Router, state: &AppState) -> Result<(Router, Io), StartError> {
    let config = &state.config;
    let table = Arc::new(socket_events(config));
    let router = router.merge(asyncapi::router(asyncapi::document(&table, config)));
    Ok(match state.cluster.backplane() {
        Backplane::Local => {
            let (layer, io) = socket::build::<LocalAdapter>(config, ());
            socket::attach(&io, state, table);
            (router.layer(layer), io.into())
        }
        Backplane::Redis(link) => {
            let adapter = RedisAdapterCtr::new_with_driver(
                link.clone(),
                RedisAdapterConfig::new()
                    .with_prefix(state.cluster.prefix().to_owned())
                    .with_stream_buffer(REDIS_STREAM_BUFFER),
            );
            let (layer, io) = socket::build::<RedisAdapter>(config, adapter);
            socket::attach(&io, state, table)
                .await
                .map_err(|err| StartError::Adapter(err.to_string()))?;
            (router.layer(layer), io.into())
        }
        Backplane::Postgres(link) => {
            let adapter = PostgresAdapterCtr::new_with_driver(
                link.clone(),
                PostgresAdapterConfig::new()
                    .with_prefix(state.cluster.prefix().to_owned())
                    .with_hb_interval(cluster::nodes::HEARTBEAT_EVERY)
                    .with_hb_timeout(cluster::nodes::DEAD_AFTER),
            );
            let (layer, io) = socket::build::<PostgresAdapter>(config, adapter);
            socket::attach(&io, state, table)
                .await
                .map_err(|err| StartError::Adapter(err.to_string()))?;
            (router.layer(layer), io.into())
        }
    })
}

/// `/metrics` alone on its own address (`METRICS_ADDR`).
async fn serve_metrics(addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(%addr, "metrics listening");
    Ok(tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, metrics::router::<()>()).await {
            tracing::warn!(%err, "the metrics listener stopped");
        }
    }))
}

/// A page's address for a person reading the log: a server bound to every
/// interface is reached at `localhost`.
fn page_url(addr: SocketAddr, path: &str) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}{path}", addr.port())
    } else {
        format!("http://{addr}{path}")
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
