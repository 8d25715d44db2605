//! The test harness: [`spawn_app`] starts the real server in-process on a free
//! port, with a fresh database (a SQLite temp file, or a new PostgreSQL
//! database when `TEST_DATABASE_URL` is set) and the mock AI provider as its
//! OpenAI-compatible backend.
#![allow(dead_code)] // each test binary uses part of the harness

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};
use switchboard::{Config, Server, auth::Claims, state::AppState, testkit::mock_ai::MockAi};
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "admin@test.local";
pub const ADMIN_PASSWORD: &str = "admin-test-password";
pub const JWT_SECRET: &str = "test-jwt-secret-that-is-long-enough";

pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub http: reqwest::Client,
    pub mock: MockAi,
    pub state: AppState,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _database: Option<TestDatabase>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the server with extra command-line flags on top of the test defaults.
pub async fn spawn_app_with(extra_args: &[&str]) -> TestApp {
    let database = TestDatabase::create().await;
    let mut app = spawn_app_on(&database.url, extra_args).await;
    app._database = Some(database);
    app
}

/// Starts the server on a database the caller owns.
pub async fn spawn_app_on(database_url: &str, extra_args: &[&str]) -> TestApp {
    let mock = MockAi::start().await.expect("mock AI starts");
    let server = build_server(database_url, &mock, extra_args).await;
    let addr = server.local_addr().expect("bound");
    let state = server.state().clone();
    let (shutdown, on_shutdown) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = server
            .run(async move {
                let _ = on_shutdown.await;
            })
            .await;
    });
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        http: reqwest::Client::new(),
        mock,
        state,
        database_url: database_url.to_owned(),
        shutdown: Some(shutdown),
        server: Some(server),
        _database: None,
    }
}

pub fn test_args(database_url: &str, mock: &MockAi) -> Vec<String> {
    [
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database-url",
        database_url,
        "--jwt-secret",
        JWT_SECRET,
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        ADMIN_PASSWORD,
        "--openai-base-url",
        &mock.base_url(),
        "--openai-api-key",
        "test-key",
        "--ai-timeout-secs",
        "5",
        "--ai-max-retries",
        "1",
        "--demo-word-delay-ms",
        "1",
        "--shutdown-grace-secs",
        "5",
        // Rate limits get their own tests; elsewhere they stay out of the way.
        "--rate-limit-max-requests",
        "1000000",
        "--ai-rate-limit-per-minute",
        "100000",
        "--login-rate-limit-per-ip",
        "100000",
        "--login-rate-limit-per-account",
        "100000",
        "--max-connections-per-ip",
        "100000",
        "--ai-anon-requests-per-minute",
        "100000",
        "--ai-anon-requests-per-minute-per-ip",
        "100000",
        "--ai-anon-tokens-per-day-per-ip",
        "1000000000",
        "--ai-anon-tokens-per-day-total",
        "1000000000",
        "--create-per-minute-per-ip",
        "100000",
        "--api-concurrency-per-ip",
        "64",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

pub async fn build_server(database_url: &str, mock: &MockAi, extra_args: &[&str]) -> Server {
    let mut args = test_args(database_url, mock);
    args.extend(extra_args.iter().map(|s| (*s).to_owned()));
    let config = Config::from_args(args).expect("valid test configuration");
    Server::build(config).await.expect("server starts")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Registers a coach-app user and returns the response body.
    pub async fn register(&self, email: &str) -> Value {
        let response = self
            .post_json(
                "/api/auth/register",
                &json!({ "email": email, "name": "Test User", "role": "Engineer", "password": "correct horse battery" }),
            )
            .await;
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        response.json().await.expect("json")
    }

    /// Registers a coach-app user and returns its access token.
    pub async fn new_user_token(&self, email: &str) -> String {
        self.register(email).await["accessToken"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// An admin access token.
    pub async fn admin_token(&self) -> String {
        let body: Value = self
            .login(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .json()
            .await
            .expect("json");
        body["accessToken"].as_str().expect("a token").to_owned()
    }

    /// Stops the server as SIGTERM would and waits until it has.
    pub async fn shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(20), server)
                .await
                .expect("server stops in time")
                .expect("server task ends cleanly");
        }
    }
}

/// A token signed with the test secret, for forging expired or tampered tokens.
pub fn sign_claims(claims: &Claims, secret: &str) -> String {
    switchboard::auth::TokenKeys::new(secret.as_bytes(), Duration::from_secs(900))
        .sign(claims)
        .expect("signed")
}

/// A fresh database for one test, removed afterwards.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    pub async fn create() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => Self::postgres(admin_url).await,
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self {
                    url,
                    cleanup: Cleanup::Sqlite(dir),
                }
            }
        }
    }

    /// A fresh PostgreSQL database, whatever `TEST_DATABASE_URL` says (for the
    /// tests that need PostgreSQL itself); `TEST_DATABASE_URL`, else the local server.
    pub async fn create_postgres() -> Self {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|url| url.starts_with("postgres"))
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        Self::postgres(admin_url).await
    }

    async fn postgres(admin_url: String) -> Self {
        use sea_orm::{ConnectionTrait, Database};
        let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url)
            .await
            .expect("TEST_DATABASE_URL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Self {
            url: format!("{base}/{name}"),
            cleanup: Cleanup::Postgres { admin_url, name },
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime; a thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                use sea_orm::{ConnectionTrait, Database};
                let admin = Database::connect(&admin_url).await.ok()?;
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                admin.close().await.ok()
            })
        })
        .join();
    }
}

/// The server as a separate process, for what only a process shows: its
/// memory, its file-descriptor limit, a SIGKILL.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub base_url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `switchboard` with the test defaults plus `extra_args`; with
    /// `open_files`, its open-file limit (soft and hard) is set to that first.
    pub fn start(
        database_url: &str,
        mock: &MockAi,
        extra_args: &[&str],
        open_files: Option<u64>,
    ) -> Self {
        let mut args = test_args(database_url, mock);
        args.extend(extra_args.iter().map(|s| (*s).to_owned()));
        Self::start_with(&args, open_files)
    }

    /// Starts `switchboard` with exactly `args`.
    pub fn start_with(args: &[String], open_files: Option<u64>) -> Self {
        use std::io::{BufRead, BufReader};
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        if let Some(limit) = open_files {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    rlimit::setrlimit(rlimit::Resource::NOFILE, limit, limit)
                        .map_err(std::io::Error::other)
                });
            }
        }
        let mut child = command.spawn().expect("the server binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening")
                    && let Some(addr) = line.split("addr=").nth(1)
                {
                    let _ = addr_tx.send(addr.trim().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr: SocketAddr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs its address")
            .parse()
            .expect("an address");
        Self {
            child,
            addr,
            base_url: format!("http://{addr}"),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Resident memory, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process is alive");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    /// Log lines containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .cloned()
            .collect()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy the test can cut: stands in for a database or broker that goes
/// away and comes back on the same address.
pub struct TcpProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut proxy = Self {
            addr,
            upstream,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream;
        self.task = Some(tokio::spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                links.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
            // Dropping the task drops `links`, which aborts every link.
        }));
    }

    /// Refuses new connections and cuts the open ones.
    pub fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Cuts, then accepts again on the same address, for `upstream`: a load
    /// balancer sending the clients of a dead node to another.
    pub async fn redirect(&mut self, upstream: SocketAddr) {
        self.cut();
        self.upstream = upstream;
        self.restore().await;
    }

    /// Accepts again, on the same address (once the aborted listener let it go).
    pub async fn restore(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            match socket.bind(self.addr).and_then(|()| socket.listen(128)) {
                Ok(listener) => break listener,
                Err(err) if std::time::Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("the proxy cannot listen on {} again: {err}", self.addr),
            }
        };
        self.serve(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// The JS tests' directory, with its dependencies installed.
pub fn js_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "Node.js is required for the socket.io-client tests (node >= 20 on PATH)"
    );
    // Installed when missing, or older than the lockfile (a dependency was
    // added); once, while tests running in parallel wait.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let modified = |path: &std::path::Path| path.metadata().and_then(|m| m.modified()).ok();
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < modified(&dir.join("package-lock.json")) {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is required to install the JS test dependencies");
        assert!(status.success(), "`npm ci` in tests/js failed");
    }
    dir
}

/// Runs one JS test file with Node's test runner and `env`; its report on failure.
pub async fn run_node_test(
    file: &std::path::Path,
    env: Vec<(&'static str, String)>,
) -> Result<(), String> {
    let dir = js_dir();
    let file = file.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            // A hung test fails after a minute instead of hanging `cargo test`,
            // and sockets a failed test left open do not keep Node alive.
            .args([
                "--test",
                "--test-reporter=spec",
                "--test-timeout=60000",
                "--test-force-exit",
            ])
            .arg(&file)
            .current_dir(dir)
            .env("ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("JWT_SECRET", JWT_SECRET)
            .envs(env)
            .output()
            .expect("node runs")
    })
    .await
    .expect("node finished");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    if output.status.success() {
        Ok(())
    } else {
        Err(report)
    }
}

/// The JSON body of `GET url`, with a Bearer token when given.
pub async fn get_json(url: impl reqwest::IntoUrl, token: Option<&str>) -> Value {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}
