//! Typed configuration. Every setting comes from a command-line flag or the
//! environment variable named beside it (also read from `.env`); the README and
//! `.env.example` list them all.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

/// The `switchboard` command line.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

/// The product flows, each of which can be switched off (`FLOWS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Flow {
    /// The live-chat widget and admin console (`/api/chats`, `/api/messages`, `/api/ai`).
    Livechat,
    /// Streaming assistant chat (`/api/conversations`, `/api/chat`).
    Assistant,
    /// The resume builder (`/format-resume`).
    Resume,
    /// The AI coach app and ChatKit (`/api/gemini`, `/api/sessions`, `/api/analytics`, `/api/chatkit`).
    Coach,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Livechat => "livechat",
            Flow::Assistant => "assistant",
            Flow::Resume => "resume",
            Flow::Coach => "coach",
        }
    }
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people: one line of text per event.
    Text,
    /// For log pipelines: one JSON object per line, with the fields of the
    /// request or socket event it belongs to.
    Json,
}

/// The Socket.IO adapter (`SOCKET_ADAPTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdapterChoice {
    /// Redis when `REDIS_URL` is set, otherwise local.
    Auto,
    /// One node alone: rooms live in this process.
    Local,
    /// socketioxide-redis over `REDIS_URL`.
    Redis,
    /// socketioxide-postgres over the PostgreSQL `DATABASE_URL`.
    Postgres,
}

/// Who may read an assistant conversation (`ASSISTANT_CONVERSATION_SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConversationScope {
    /// Anyone who knows its id (unchanged frontends send no identity).
    Open,
    /// Only its creator: a user's Bearer token or an anonymous client key.
    Owner,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3001)]
    pub port: u16,
    /// `sqlite://…` (embedded, the default) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://switchboard.db?mode=rwc"
    )]
    pub database_url: String,
    /// Several nodes share rooms, broadcasts and signals over this Redis
    /// (`redis://host:port/db`); see `SOCKET_ADAPTER`.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// How nodes share rooms: `auto` (Redis when `REDIS_URL` is set, else one
    /// node alone), `local`, `redis`, or `postgres` (LISTEN/NOTIFY on the
    /// PostgreSQL `DATABASE_URL`).
    #[arg(long, env = "SOCKET_ADAPTER", value_enum, default_value = "auto")]
    pub socket_adapter: AdapterChoice,
    /// The prefix of the adapter's channels; nodes with one prefix form one
    /// cluster (on Redis, channels are shared by every database number).
    #[arg(long, env = "SOCKET_ADAPTER_PREFIX", default_value = "socket.io")]
    pub socket_adapter_prefix: String,
    /// Serves Prometheus metrics at `/metrics`.
    #[arg(long, env = "METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// A bearer token that lets callers other than this machine read
    /// `/metrics` on the main port (without it, only loopback clients may).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Serves `/metrics` on this address instead of the main port (e.g.
    /// `127.0.0.1:9464`, to keep it off the internet).
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `text`, or `json`: one object a line with the request id, or the socket
    /// id, event and flow, of what logged it.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// This node's name in logs and in the node registry; a random id when absent.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,
    /// Comma-separated allowed origins; `http://host:*` allows any port. Replaces the
    /// default `http://localhost:*,http://127.0.0.1:*`.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Origins of the apps that sign in (comma-separated, `:*` for any port):
    /// only they get CORS credentials, and only from them (or the server's own
    /// origin) is the refresh cookie honoured. Default: the local origins while
    /// `CORS_ORIGINS` is unset, none once it is set.
    #[arg(long, env = "AUTH_ORIGINS", value_delimiter = ',')]
    pub auth_origins: Vec<String>,
    /// Secret for signing JWTs; generated and stored in the database when absent.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Lifetime of access tokens in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens in days.
    #[arg(long, env = "REFRESH_TOKEN_TTL_DAYS", default_value_t = 30)]
    pub refresh_token_ttl_days: u32,
    /// Mark the refresh-token cookie `Secure` (serve over HTTPS).
    #[arg(long, env = "COOKIE_SECURE", default_value_t = false, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,
    /// Email of the live-chat admin created at start-up.
    #[arg(long, env = "ADMIN_EMAIL", default_value = "admin@switchboard.local")]
    pub admin_email: String,
    /// Password of that admin; a random one is generated and logged once when absent.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Key of the OpenAI (or other OpenAI-compatible) provider.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// Base URL of the OpenAI-compatible API (Ollama, vLLM, a proxy…). Setting it
    /// without a key enables the provider for servers that need none.
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// Model of the default provider (each provider has its own default).
    #[arg(long, env = "AI_MODEL")]
    pub ai_model: Option<String>,
    #[arg(long, env = "OPENROUTER_API_KEY", hide_env_values = true)]
    pub openrouter_api_key: Option<String>,
    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<String>,
    /// Seconds to wait for a provider's first byte, and at most between two stream events.
    #[arg(long, env = "AI_TIMEOUT_SECS", default_value_t = 60)]
    pub ai_timeout_secs: u64,
    /// Retries (with exponential backoff) on 429/5xx and connection errors.
    #[arg(long, env = "AI_MAX_RETRIES", default_value_t = 2)]
    pub ai_max_retries: usize,
    /// Delay between the words of the demo provider's answer, in milliseconds.
    #[arg(long, env = "DEMO_WORD_DELAY_MS", default_value_t = 40)]
    pub demo_word_delay_ms: u64,
    #[arg(long, env = "CHATKIT_WORKFLOW_ID")]
    pub chatkit_workflow_id: Option<String>,
    #[command(flatten)]
    pub chatkit_session: ChatkitSessionConfig,
    /// Directory of a frontend build to serve (default: `frontend/dist` when present).
    #[arg(long, env = "FRONTEND_DIR")]
    pub frontend_dir: Option<PathBuf>,
    /// Largest Socket.IO packet accepted, in bytes (Node's `maxHttpBufferSize`).
    #[arg(long, env = "MAX_PAYLOAD_BYTES", default_value_t = 1_000_000)]
    pub max_payload_bytes: u64,
    /// Largest HTTP request body accepted by the REST routes, in bytes.
    #[arg(long, env = "HTTP_BODY_LIMIT_BYTES", default_value_t = 1_048_576)]
    pub http_body_limit_bytes: usize,
    /// Events a socket may send per second (a flood answers `RATE_LIMITED`).
    #[arg(long, env = "SOCKET_EVENTS_PER_SEC", default_value_t = 20)]
    pub socket_events_per_sec: u32,
    /// Events a socket may send at once before the per-second rate applies.
    #[arg(long, env = "SOCKET_EVENT_BURST", default_value_t = 40)]
    pub socket_event_burst: u32,
    /// Longest live-chat message, in characters.
    #[arg(long, env = "LIVECHAT_MAX_MESSAGE_CHARS", default_value_t = 5000)]
    pub livechat_max_message_chars: usize,
    /// Serve dashboards that connect without a token: admin-bound events go to
    /// every socket and admin events are accepted from any socket. Unsafe on
    /// the open internet.
    #[arg(long, env = "LIVECHAT_LEGACY_BROADCAST", default_value_t = false, action = clap::ArgAction::Set)]
    pub livechat_legacy_broadcast: bool,
    /// System prompt of the streaming assistant.
    #[arg(
        long,
        env = "ASSISTANT_SYSTEM_PROMPT",
        default_value = "You are a helpful assistant."
    )]
    pub assistant_system_prompt: String,
    /// Longest assistant-chat message, in characters.
    #[arg(long, env = "ASSISTANT_MAX_MESSAGE_CHARS", default_value_t = 10_000)]
    pub assistant_max_message_chars: usize,
    /// Window in which provider deltas are gathered into one `stream_chunk`, in ms.
    #[arg(long, env = "STREAM_COALESCE_MS", default_value_t = 30)]
    pub stream_coalesce_ms: u64,
    /// How often a growing reply is saved, in ms.
    #[arg(long, env = "STREAM_PERSIST_MS", default_value_t = 500)]
    pub stream_persist_ms: u64,
    /// Tokens a user may spend on the AI routes per UTC day.
    #[arg(long, env = "DAILY_TOKEN_QUOTA", default_value_t = 50_000)]
    pub daily_token_quota: i64,
    /// Requests an IP may make to `/api` per window.
    #[arg(long, env = "RATE_LIMIT_MAX_REQUESTS", default_value_t = 100)]
    pub rate_limit_max_requests: u32,
    /// The window of `RATE_LIMIT_MAX_REQUESTS`, in milliseconds.
    #[arg(long, env = "RATE_LIMIT_WINDOW_MS", default_value_t = 900_000)]
    pub rate_limit_window_ms: u64,
    /// AI requests (`/api/gemini/*`) a user may make per minute.
    #[arg(long, env = "AI_RATE_LIMIT_PER_MINUTE", default_value_t = 20)]
    pub ai_rate_limit_per_minute: u32,
    /// New assistant conversations, live-chat sessions and resume sessions one
    /// client address may start per minute, each.
    #[arg(long, env = "CREATE_PER_MINUTE_PER_IP", default_value_t = 30)]
    pub create_per_minute_per_ip: u32,
    /// `/api` requests of one client address that run at once; more wait their turn.
    #[arg(long, env = "API_CONCURRENCY_PER_IP", default_value_t = 4)]
    pub api_concurrency_per_ip: usize,
    /// AI calls in progress at once, for everyone together; more are refused.
    #[arg(long, env = "AI_MAX_CONCURRENT", default_value_t = 64)]
    pub ai_max_concurrent: usize,
    /// AI requests an anonymous socket, live-chat session or client key may make per minute.
    #[arg(long, env = "AI_ANON_REQUESTS_PER_MINUTE", default_value_t = 10)]
    pub ai_anon_requests_per_minute: u32,
    /// AI requests the anonymous callers of one client address may make per minute.
    #[arg(long, env = "AI_ANON_REQUESTS_PER_MINUTE_PER_IP", default_value_t = 20)]
    pub ai_anon_requests_per_minute_per_ip: u32,
    /// AI tokens an anonymous socket, live-chat session or client key may spend per UTC day.
    #[arg(long, env = "AI_ANON_TOKENS_PER_DAY", default_value_t = 20_000)]
    pub ai_anon_tokens_per_day: u64,
    /// AI tokens the anonymous callers of one client address may spend per UTC day.
    #[arg(long, env = "AI_ANON_TOKENS_PER_DAY_PER_IP", default_value_t = 100_000)]
    pub ai_anon_tokens_per_day_per_ip: u64,
    /// AI tokens all anonymous callers together may spend per UTC day (on this node).
    #[arg(
        long,
        env = "AI_ANON_TOKENS_PER_DAY_TOTAL",
        default_value_t = 2_000_000
    )]
    pub ai_anon_tokens_per_day_total: u64,
    /// Seconds a resume session is kept after its socket left.
    #[arg(long, env = "RESUME_STATE_TTL_SECS", default_value_t = 600)]
    pub resume_state_ttl_secs: u64,
    /// Longest resume text (and resume chat message), in characters.
    #[arg(long, env = "RESUME_MAX_TEXT_CHARS", default_value_t = 30_000)]
    pub resume_max_text_chars: usize,
    /// Largest resume, in bytes of JSON (`check_resume_fields`, and what
    /// `update_field` makes of it).
    #[arg(long, env = "RESUME_MAX_DATA_BYTES", default_value_t = 200_000)]
    pub resume_max_data_bytes: usize,
    /// Seconds `preview_resume` waits for each `user_response`.
    #[arg(long, env = "RESUME_ANSWER_TIMEOUT_SECS", default_value_t = 300)]
    pub resume_answer_timeout_secs: u64,
    /// Seconds that running AI replies get to finish on shutdown.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// The flows this server serves, comma-separated; the others answer `FLOW_DISABLED`.
    #[arg(
        long,
        env = "FLOWS",
        value_enum,
        value_delimiter = ',',
        default_value = "livechat,assistant,resume,coach"
    )]
    pub flows: Vec<Flow>,
    /// Shortest live-chat session id a widget may use: the id is what lets
    /// anyone read the session's messages.
    #[arg(long, env = "LIVECHAT_MIN_SESSION_ID_CHARS", default_value_t = 8)]
    pub livechat_min_session_id_chars: usize,
    /// Who may read an assistant conversation: `open` (anyone with its id) or
    /// `owner` (its creator's token or client key).
    #[arg(
        long,
        env = "ASSISTANT_CONVERSATION_SCOPE",
        value_enum,
        default_value = "open"
    )]
    pub assistant_conversation_scope: ConversationScope,
    /// Proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For` is believed.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,
    /// Open connections one client address may hold (trusted proxies are exempt).
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
    /// Open connections in all; 0: the open-file limit less a reserve.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (also the idle limit
    /// of a kept-alive HTTP connection).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's whole body once its headers
    /// arrived (a body that trickles in or stalls is cut off).
    #[arg(long, env = "BODY_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub body_read_timeout_secs: u64,
    /// Refuse Socket.IO handshakes from browser pages whose origin is not the
    /// server's own, nor in `CORS_ORIGINS`/`AUTH_ORIGINS` (clients that send no
    /// `Origin`, like Node's, are not affected).
    #[arg(long, env = "SOCKET_CHECK_ORIGIN", default_value_t = true, action = clap::ArgAction::Set)]
    pub socket_check_origin: bool,
    /// Seconds a Socket.IO client has to join the namespace after opening its transport.
    #[arg(long, env = "SOCKET_CONNECT_TIMEOUT_SECS", default_value_t = 10)]
    pub socket_connect_timeout_secs: u64,
    /// Seconds a connection may refuse to take what the server sends before it is closed.
    #[arg(long, env = "SOCKET_STALL_TIMEOUT_SECS", default_value_t = 20)]
    pub socket_stall_timeout_secs: u64,
    /// Password hashes computed at once; 0: one per CPU.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,
    /// Logins that may wait for a hashing slot; more answer 503 at once.
    #[arg(long, env = "PASSWORD_HASH_QUEUE", default_value_t = 32)]
    pub password_hash_queue: usize,
    /// Argon2id memory per hash, in KiB (OWASP's 19 MiB by default).
    #[arg(long, env = "ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// Argon2id passes.
    #[arg(long, env = "ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    #[arg(long, env = "ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Login and registration attempts one client address may make per window.
    #[arg(long, env = "LOGIN_RATE_LIMIT_PER_IP", default_value_t = 20)]
    pub login_rate_limit_per_ip: u32,
    /// Login attempts one account may receive per window.
    #[arg(long, env = "LOGIN_RATE_LIMIT_PER_ACCOUNT", default_value_t = 10)]
    pub login_rate_limit_per_account: u32,
    /// The window of both login limits, in milliseconds.
    #[arg(long, env = "LOGIN_RATE_LIMIT_WINDOW_MS", default_value_t = 900_000)]
    pub login_rate_limit_window_ms: u64,
    /// Seconds an admin socket's admin flag is trusted before it is read again.
    #[arg(long, env = "ADMIN_RECHECK_SECS", default_value_t = 30)]
    pub admin_recheck_secs: u64,
    /// Milliseconds a request waits for a database connection before failing.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2_000)]
    pub db_acquire_timeout_ms: u64,
    /// Milliseconds one database statement may run (PostgreSQL; SQLite waits this long for a lock).
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_statement_timeout_ms: u64,
    /// SQLite durability: `normal` survives a crash of the process, `full` also a power cut.
    #[arg(long, env = "SQLITE_SYNCHRONOUS", value_enum, default_value = "normal")]
    pub sqlite_synchronous: SqliteSync,
    /// Page size of a SQLite database file created from now on (512 to 65536, a
    /// power of two); an existing file keeps its own. Each commit writes every
    /// page it changed to the WAL whole, and a chat message changes a page of
    /// the table and a page of its session's index: small pages write less.
    #[arg(long, env = "SQLITE_PAGE_SIZE", default_value_t = 1024, value_parser = sqlite_page_size)]
    pub sqlite_page_size: u32,
    /// Live-chat writes committed in one transaction at most.
    #[arg(long, env = "LIVECHAT_BATCH_MAX_ROWS", default_value_t = 256)]
    pub livechat_batch_max_rows: usize,
    /// Microseconds a live-chat batch that is not full waits for more writes
    /// (0: commit whatever is queued at once; batches still form under load).
    #[arg(long, env = "LIVECHAT_BATCH_WINDOW_US", default_value_t = 0)]
    pub livechat_batch_window_us: u64,
    /// Live-chat sessions whose hand-off flag is kept in memory.
    #[arg(long, env = "LIVECHAT_SESSION_CACHE", default_value_t = 100_000)]
    pub livechat_session_cache: usize,
}

/// What every ChatKit session is created with: the original backend's
/// settings, under its variable names, and its defaults.
#[derive(Debug, Clone, Args)]
pub struct ChatkitSessionConfig {
    /// Visitors may attach files in ChatKit's composer.
    #[arg(long = "chatkit-enable-uploads", env = "CHATKIT_ENABLE_UPLOADS", default_value_t = true, action = clap::ArgAction::Set)]
    pub uploads_enabled: bool,
    /// Files one ChatKit message may carry.
    #[arg(long = "chatkit-max-files", env = "CHATKIT_MAX_FILES", default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub max_files: u32,
    /// Largest attached file, in MB.
    #[arg(long = "chatkit-max-file-size-mb", env = "CHATKIT_MAX_FILE_SIZE_MB", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub max_file_size_mb: u32,
    /// Requests one ChatKit session may make per minute.
    #[arg(long = "chatkit-max-requests-per-minute", env = "CHATKIT_MAX_REQUESTS_PER_MINUTE", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests_per_minute: u32,
}

fn sqlite_page_size(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(size) if size.is_power_of_two() && (512..=65536).contains(&size) => Ok(size),
        _ => Err("a power of two from 512 to 65536".to_owned()),
    }
}

/// SQLite's `synchronous` setting in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSync {
    /// Commits survive a crash of the process, not of the machine.
    Normal,
    /// Commits also survive a power cut; each commit waits for the disk.
    Full,
}

impl Config {
    pub fn ai_timeout(&self) -> Duration {
        Duration::from_secs(self.ai_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn flow_enabled(&self, flow: Flow) -> bool {
        self.flows.contains(&flow)
    }

    /// A configuration from defaults and the given flags only, ignoring the
    /// environment's values for flags it sets; used by tests and tools.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once("switchboard".into()).chain(args.into_iter().map(Into::into));
        Cli::try_parse_from(argv).map(|cli| cli.config)
    }
}
