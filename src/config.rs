//! Typed configuration. Every setting comes from a command-line flag or the
//! environment variable named beside it (also read from `.env`); the README and
//! `.env.example` list them all.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

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
    /// Enables the Redis adapter so several nodes share rooms.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Comma-separated allowed origins; `http://host:*` allows any port. Replaces the
    /// default `http://localhost:*,http://127.0.0.1:*`.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
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
    /// Seconds a resume session is kept after its socket left.
    #[arg(long, env = "RESUME_STATE_TTL_SECS", default_value_t = 600)]
    pub resume_state_ttl_secs: u64,
    /// Longest resume text (and resume chat message), in characters.
    #[arg(long, env = "RESUME_MAX_TEXT_CHARS", default_value_t = 30_000)]
    pub resume_max_text_chars: usize,
    /// Seconds `preview_resume` waits for each `user_response`.
    #[arg(long, env = "RESUME_ANSWER_TIMEOUT_SECS", default_value_t = 300)]
    pub resume_answer_timeout_secs: u64,
    /// Seconds that running AI replies get to finish on shutdown.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

impl Config {
    pub fn ai_timeout(&self) -> Duration {
        Duration::from_secs(self.ai_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
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
