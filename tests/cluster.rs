//! Several real server processes on one PostgreSQL database, sharing rooms
//! over Redis or over PostgreSQL LISTEN/NOTIFY: the flows across nodes with
//! the official socket.io-client (`tests/js/cluster/`), start-up of several
//! nodes at once, quotas across nodes, a node killed mid-stream, Redis and
//! PostgreSQL going away and coming back. Needs PostgreSQL and Redis running
//! (`.ci/run` starts them); built with `--features service-tests`.

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::testkit::{mock_ai::MockAi, sio::SioClient};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Clone, Copy, Debug)]
enum Adapter {
    Redis,
    Postgres,
}

/// Nodes of one cluster: one database, one mock AI provider, a channel prefix
/// of their own (tests running at once share the Redis server).
struct Nodes {
    database: TestDatabase,
    mock: MockAi,
    prefix: String,
    nodes: Vec<ServerProcess>,
}

fn cluster_args(adapter: Adapter, prefix: &str, redis_url: &str) -> Vec<String> {
    let mut args = vec![
        "--socket-adapter-prefix".to_owned(),
        prefix.to_owned(),
        "--socket-adapter".to_owned(),
    ];
    match adapter {
        Adapter::Redis => args.extend([
            "redis".to_owned(),
            "--redis-url".to_owned(),
            redis_url.to_owned(),
        ]),
        Adapter::Postgres => args.push("postgres".to_owned()),
    }
    args
}

impl Nodes {
    async fn start(adapter: Adapter, count: usize, extra: &[&str]) -> Self {
        Self::start_on_redis(adapter, count, extra, REDIS_URL).await
    }

    async fn start_on_redis(
        adapter: Adapter,
        count: usize,
        extra: &[&str],
        redis_url: &str,
    ) -> Self {
        let database = TestDatabase::create_postgres().await;
        let mock = MockAi::start().await.expect("mock AI starts");
        let prefix = format!("sb-test-{}", uuid::Uuid::new_v4().simple());
        let mut nodes = Self {
            database,
            mock,
            prefix,
            nodes: Vec::new(),
        };
        for _ in 0..count {
            nodes.add(adapter, extra, redis_url, None);
        }
        nodes
    }

    /// Starts one more node; `database_url` overrides the cluster's (a proxy in front of it).
    fn add(
        &mut self,
        adapter: Adapter,
        extra: &[&str],
        redis_url: &str,
        database_url: Option<&str>,
    ) {
        let mut args: Vec<String> = cluster_args(adapter, &self.prefix, redis_url);
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let url = database_url.unwrap_or(&self.database.url);
        self.nodes
            .push(ServerProcess::start(url, &self.mock, &args, None));
    }

    fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| node.base_url.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn run_js(&self, file: &str) {
        self.run_js_with(file, Vec::new()).await;
    }

    async fn run_js_with(&self, file: &str, mut env: Vec<(&'static str, String)>) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/js/cluster")
            .join(file);
        env.extend([
            ("SWITCHBOARD_URL", self.nodes[0].base_url.clone()),
            ("SWITCHBOARD_URLS", self.urls()),
            ("MOCK_AI_URL", self.mock.base_url()),
        ]);
        if let Err(report) = run_node_test(&path, env).await {
            panic!("{file} failed:\n{report}");
        }
    }
}

async fn admin_token(http: &reqwest::Client, node: &ServerProcess) -> String {
    let login: Value = http
        .post(node.url("/api/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["accessToken"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

async fn health(http: &reqwest::Client, node: &ServerProcess) -> (StatusCode, Value) {
    let response = http.get(node.url("/api/health")).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Polls until `check` holds, or panics with `what` after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_cross_nodes_over_redis() {
    let nodes = Nodes::start(Adapter::Redis, 2, &[]).await;
    nodes.run_js("cross_node.test.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_cross_nodes_over_postgres() {
    let nodes = Nodes::start(Adapter::Postgres, 2, &[]).await;
    nodes.run_js("cross_node.test.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_missed_when_visitors_reconnect_to_the_other_node() {
    let nodes = Nodes::start(
        Adapter::Redis,
        2,
        &[
            "--socket-events-per-sec",
            "1000",
            "--socket-event-burst",
            "1000",
            "--create-per-minute-per-ip",
            "1000",
        ],
    )
    .await;
    nodes.run_js("reconnect.test.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_starting_at_once_on_an_empty_database_agree() {
    let database = TestDatabase::create_postgres().await;
    let mock = MockAi::start().await.unwrap();
    let prefix = format!("sb-test-{}", uuid::Uuid::new_v4().simple());
    // No JWT secret: each node would generate one if they did not take turns.
    let args: Vec<String> = [
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database-url",
        &database.url,
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        ADMIN_PASSWORD,
        "--openai-base-url",
        &mock.base_url(),
        "--openai-api-key",
        "test-key",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .chain(cluster_args(Adapter::Redis, &prefix, REDIS_URL))
    .collect();
    let nodes: Vec<ServerProcess> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| ServerProcess::start_with(&args, None)))
            .collect();
        starting
            .into_iter()
            .map(|node| node.join().expect("a node starts"))
            .collect()
    });
    let http = reqwest::Client::new();
    // A token one node signed is valid on the others: one secret.
    let token = admin_token(&http, &nodes[0]).await;
    for node in &nodes {
        let response = http
            .get(node.url("/api/chats"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", node.base_url);
    }
    use sea_orm::{ConnectionTrait, Database};
    let db = Database::connect(&database.url).await.unwrap();
    let count = |sql: &'static str| {
        let db = &db;
        async move {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    sql,
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM users").await, 1, "one admin");
    assert_eq!(
        count("SELECT COUNT(*) FROM settings WHERE key = 'jwt_secret'").await,
        1,
        "one stored secret"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM cluster_nodes").await,
        3,
        "three live nodes"
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_id_a_live_node_uses_is_refused() {
    let mut nodes = Nodes::start(Adapter::Redis, 0, &[]).await;
    nodes.add(Adapter::Redis, &["--node-id", "twin"], REDIS_URL, None);
    let mut args = test_args(&nodes.database.url, &nodes.mock);
    args.extend(cluster_args(Adapter::Redis, &nodes.prefix, REDIS_URL));
    args.extend(["--node-id".to_owned(), "twin".to_owned()]);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success(), "the twin does not start");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        log.contains("NODE_ID twin is in use by a live node"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_quota_holds_across_nodes() {
    let nodes = Nodes::start(Adapter::Redis, 2, &["--daily-token-quota", "200"]).await;
    let http = reqwest::Client::new();
    let registered: Value = http
        .post(nodes.nodes[0].url("/api/auth/register"))
        .json(&json!({ "email": "quota@test.local", "password": "a-long-password-1", "name": "Q" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["accessToken"].as_str().unwrap().to_owned();
    let requests = (0..20).map(|i| {
        let node = &nodes.nodes[i % 2];
        let request = http
            .post(node.url("/api/gemini/process"))
            .bearer_auth(&token)
            .json(&json!({ "prompt": format!("question {i} [[mock:words=30]]") }));
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    });
    let results = futures::future::join_all(requests).await;
    let served: Vec<i64> = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body["tokensUsed"].as_i64().unwrap())
        .collect();
    let refused = results
        .iter()
        .filter(|(status, body)| {
            *status == StatusCode::TOO_MANY_REQUESTS && body["resetAt"].is_string()
        })
        .count();
    assert_eq!(served.len() + refused, 20, "{results:#?}");
    let one_request = *served.iter().max().unwrap();
    let quota = get_json(nodes.nodes[1].url("/api/gemini/quota"), Some(&token)).await;
    let used = quota["tokensUsed"].as_i64().unwrap();
    assert_eq!(
        used,
        served.iter().sum::<i64>(),
        "every served call is booked"
    );
    assert!(
        used >= 200 && used < 200 + one_request,
        "used {used}, one request {one_request}: two nodes overshoot by one request at most"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_stream_loses_nothing_acknowledged() {
    let mut nodes = Nodes::start(Adapter::Redis, 2, &["--stream-persist-ms", "200"]).await;
    let mut balancer = TcpProxy::start(nodes.nodes[0].addr).await;
    let through = format!("http://{}", balancer.addr);
    let http = reqwest::Client::new();

    // Live chat: every message the server acknowledged before the kill.
    let mut widget = SioClient::connect(&through, None).await.unwrap();
    let session = "killed-node-session";
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        widget
            .emit(
                "user-message",
                &json!({ "sessionId": session, "message": format!("message {i}") }),
            )
            .await
            .unwrap();
        let received = widget.next_named("message-received").await.unwrap();
        acknowledged.push(received["id"].as_i64().unwrap());
    }

    // Assistant: a long stream on node A.
    let mut client = SioClient::connect(&through, None).await.unwrap();
    client
        .emit(
            "stream_chat",
            &json!({ "message": "[[mock:words=400]] [[mock:delay=25]]" }),
        )
        .await
        .unwrap();
    let start = client.next_named("stream_start").await.unwrap();
    let conversation = start["conversationId"].as_str().unwrap().to_owned();
    let message = start["messageId"].as_str().unwrap().to_owned();
    let mut received = String::new();
    while received.split_whitespace().count() < 40 {
        let chunk = client.next_named("stream_chunk").await.unwrap();
        received = chunk["content"].as_str().unwrap().to_owned();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    nodes.nodes[0].kill();
    balancer.redirect(nodes.nodes[1].addr).await;

    // The clients come back, now on node B, and find what they had.
    let mut back = SioClient::connect(&through, None).await.unwrap();
    back.emit("join_conversation", &json!(conversation))
        .await
        .unwrap();
    let stored = get_json(format!("{through}/api/conversations/{conversation}"), None).await;
    let reply = stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == message.as_str())
        .expect("the half reply is stored")
        .clone();
    let saved = reply["content"].as_str().unwrap();
    assert!(
        saved.split_whitespace().count() >= 30
            && (received.starts_with(saved) || saved.starts_with(&received)),
        "saved {} words, the client had {}",
        saved.split_whitespace().count(),
        received.split_whitespace().count()
    );
    // Node B sees that A is dead and marks the reply interrupted.
    eventually(
        Duration::from_secs(40),
        "the reply marked interrupted",
        || {
            let url = format!("{through}/api/conversations/{conversation}");
            let message = message.clone();
            async move {
                let stored = get_json(url, None).await;
                stored["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["id"] == message.as_str() && m["status"] == "interrupted")
            }
        },
    )
    .await;

    let token = admin_token(&http, &nodes.nodes[1]).await;
    let history = get_json(format!("{through}/api/messages/{session}"), Some(&token)).await;
    let stored_ids: Vec<i64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    for id in &acknowledged {
        assert!(
            stored_ids.contains(id),
            "acknowledged message {id} is stored"
        );
    }
    drop(widget);
}

/// The message of the next `admin-reply` on `socket`; a test that misses it
/// fails instead of waiting for ever.
async fn next_reply(socket: &mut SioClient) -> Value {
    tokio::time::timeout(Duration::from_secs(15), socket.next_named("admin-reply"))
        .await
        .expect("an admin-reply within 15 s")
        .unwrap()["message"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_whose_node_was_killed_gets_the_replies_on_the_other_node() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let mut nodes = Nodes::start(Adapter::Redis, 2, &[]).await;
    let mut balancer = TcpProxy::start(nodes.nodes[0].addr).await;
    let through = format!("http://{}", balancer.addr);
    let http = reqwest::Client::new();
    let token = admin_token(&http, &nodes.nodes[1]).await;
    let mut admin = SioClient::connect(&nodes.nodes[1].base_url, Some(&json!({ "token": token })))
        .await
        .unwrap();
    let reply = async |admin: &mut SioClient, message: &str| {
        admin
            .emit(
                "admin-reply",
                &json!({ "sessionId": SESSION, "message": message }),
            )
            .await
            .unwrap();
        let row = tokio::time::timeout(Duration::from_secs(15), admin.next_named("admin-reply"))
            .await
            .expect("the reply is stored")
            .unwrap();
        assert_eq!(row["message"], message);
        row
    };
    const SESSION: &str = "killed-node-visitor";
    let mut widget = SioClient::connect(&through, None).await.unwrap();
    widget
        .emit(
            "user-message",
            &json!({ "sessionId": SESSION, "message": "hi" }),
        )
        .await
        .unwrap();
    widget.next_named("message-received").await.unwrap();
    let before = reply(&mut admin, "before").await;
    assert_eq!(next_reply(&mut widget).await, "before");
    // Node A beats once more after "before": a killed node counts as having
    // delivered up to its last heartbeat.
    let db = Database::connect(&nodes.database.url).await.unwrap();
    let stamped = chrono::DateTime::parse_from_rfc3339(before["timestamp"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    eventually(
        Duration::from_secs(20),
        "every node beats after the reply",
        || {
            let db = db.clone();
            async move {
                let row = db
                    .query_one_raw(Statement::from_sql_and_values(
                        db.get_database_backend(),
                        "SELECT COUNT(*) AS behind FROM cluster_nodes WHERE heartbeat_at <= $1",
                        [stamped.into()],
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                row.try_get::<i64>("", "behind").unwrap() == 0
            }
        },
    )
    .await;

    nodes.nodes[0].kill();
    balancer.redirect(nodes.nodes[1].addr).await;
    reply(&mut admin, "while away 1").await;
    reply(&mut admin, "while away 2").await;
    let mut widget = SioClient::connect(&through, None).await.unwrap();
    widget
        .emit(
            "user-typing",
            &json!({ "sessionId": SESSION, "isTyping": true }),
        )
        .await
        .unwrap();
    for expected in ["while away 1", "while away 2"] {
        assert_eq!(next_reply(&mut widget).await, expected);
    }
    reply(&mut admin, "after").await;
    assert_eq!(next_reply(&mut widget).await, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_on_one_node_ends_the_token_on_the_others() {
    let nodes = Nodes::start(Adapter::Redis, 2, &[]).await;
    let http = reqwest::Client::new();
    let login: Value = http
        .post(nodes.nodes[0].url("/api/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["accessToken"].as_str().unwrap().to_owned();
    let chats_on_b = || {
        http.get(nodes.nodes[1].url("/api/chats"))
            .bearer_auth(&access)
            .send()
    };
    // Node B has read the sign-in as valid (and keeps that for 30 s).
    assert_eq!(chats_on_b().await.unwrap().status(), StatusCode::OK);
    let logout = http
        .post(nodes.nodes[0].url("/api/auth/logout"))
        .json(&json!({ "refreshToken": login["refreshToken"] }))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success());
    eventually(
        Duration::from_secs(10),
        "node B refuses the token",
        || async { chats_on_b().await.unwrap().status() == StatusCode::UNAUTHORIZED },
    )
    .await;
}

/// A Redis server of the test's own, so it can be stopped and started again.
struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A widget on the first node and an admin on the second (the AI off, so
/// only the visitor's rows travel), whose first message crossed.
struct Crossing {
    http: reqwest::Client,
    token: String,
    widget: SioClient,
    admin: SioClient,
    session: &'static str,
}

impl Crossing {
    async fn open(nodes: &Nodes, session: &'static str) -> Self {
        let (a, b) = (&nodes.nodes[0], &nodes.nodes[1]);
        let http = reqwest::Client::new();
        let token = admin_token(&http, b).await;
        http.post(a.url("/api/ai/toggle"))
            .bearer_auth(&token)
            .json(&json!({ "isEnabled": false }))
            .send()
            .await
            .unwrap();
        let admin = SioClient::connect(&b.base_url, Some(&json!({ "token": token })))
            .await
            .unwrap();
        let widget = SioClient::connect(&a.base_url, None).await.unwrap();
        let mut crossing = Self {
            http,
            token,
            widget,
            admin,
            session,
        };
        assert!(crossing.crosses("before").await);
        crossing
    }

    /// The widget sends `text`; true once the admin on the other node got it
    /// (within a second).
    async fn crosses(&mut self, text: &str) -> bool {
        let message = json!({ "sessionId": self.session, "message": text });
        self.widget.emit("user-message", &message).await.unwrap();
        let admin = &mut self.admin;
        let seen = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match admin.next_named("user-message").await {
                    Ok(row) if row["message"] == text => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await;
        seen.unwrap_or(false)
    }

    /// Every node reports OK again, and rows cross again.
    async fn recovers(&mut self, nodes: &Nodes, what: &str) {
        for node in &nodes.nodes {
            eventually(Duration::from_secs(15), "OK health", || async {
                let (_, body) = health(&self.http, node).await;
                body["status"] == "OK"
            })
            .await;
            let ready = self.http.get(node.url("/api/ready")).send().await.unwrap();
            assert_eq!(ready.status(), StatusCode::OK, "ready again");
        }
        for attempt in 0..20 {
            if self.crosses(&format!("after {attempt}")).await {
                return;
            }
        }
        panic!("broadcasts do not cross nodes again once {what} is back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_degrades_then_recovers_without_a_restart() {
    let mut redis = OwnRedis::start();
    let nodes = Nodes::start_on_redis(Adapter::Redis, 2, &[], &redis.url()).await;
    let mut crossing = Crossing::open(&nodes, "redis-restart-session").await;
    let a = &nodes.nodes[0];
    let mut admin_a = SioClient::connect(&a.base_url, Some(&json!({ "token": crossing.token })))
        .await
        .unwrap();

    redis.stop();
    for node in &nodes.nodes {
        eventually(Duration::from_secs(5), "DEGRADED health", || async {
            let (status, body) = health(&crossing.http, node).await;
            status == StatusCode::OK
                && body["status"] == "DEGRADED"
                && body["adapter"]["status"] == "unreachable"
        })
        .await;
        let ready = crossing
            .http
            .get(node.url("/api/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        let ready: Value = ready.json().await.unwrap();
        assert_eq!(ready["adapter"], "unreachable");
    }
    // Node A still serves its own sockets: the widget is answered and the
    // admin on A sees the message at once.
    let message = json!({ "sessionId": crossing.session, "message": "while away" });
    crossing
        .widget
        .emit("user-message", &message)
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(3),
        crossing.widget.next_named("message-received"),
    )
    .await
    .expect("stored and acknowledged while Redis is away")
    .unwrap();
    tokio::time::timeout(Duration::from_secs(3), async {
        while admin_a.next_named("user-message").await.unwrap()["message"] != "while away" {}
    })
    .await
    .expect("the admin on the same node gets it");

    redis.restart();
    crossing.recovers(&nodes, "Redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_adapter_comes_back_after_a_database_outage() {
    let mut nodes = Nodes::start(Adapter::Postgres, 0, &[]).await;
    let upstream: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let mut proxy = TcpProxy::start(upstream).await;
    let through_proxy = nodes
        .database
        .url
        .replace("127.0.0.1:5432", &proxy.addr.to_string());
    for _ in 0..2 {
        nodes.add(Adapter::Postgres, &[], REDIS_URL, Some(&through_proxy));
    }
    let mut crossing = Crossing::open(&nodes, "pg-outage-session").await;

    proxy.cut();
    let (status, body) = health(&crossing.http, &nodes.nodes[0]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "DEGRADED");
    let started = Instant::now();
    let ready = crossing
        .http
        .get(nodes.nodes[0].url("/api/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(2500));
    let message = json!({ "sessionId": crossing.session, "message": "nobody home" });
    crossing
        .widget
        .emit("user-message", &message)
        .await
        .unwrap();
    let error = tokio::time::timeout(
        Duration::from_secs(8),
        crossing.widget.next_named("chat-error"),
    )
    .await
    .expect("a clear error while the database is away")
    .unwrap();
    assert_eq!(error["code"], "DATABASE_UNAVAILABLE");

    proxy.restore().await;
    crossing.recovers(&nodes, "PostgreSQL").await;
}

/// nginx running `examples/nginx.conf`, pointed at two nodes, on a free port.
struct Nginx {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(first: SocketAddr, second: SocketAddr) -> Self {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx.conf");
        let example = std::fs::read_to_string(example).expect("examples/nginx.conf");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        // The example as it is, on the test's ports, with its files in the temp dir.
        let config = example
            .replace("server 127.0.0.1:3001;", &format!("server {first};"))
            .replace("server 127.0.0.1:3002;", &format!("server {second};"))
            .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
            .replace(
                "http {",
                &format!(
                    "http {{\n    access_log off;\n    client_body_temp_path {path}/body;\n    proxy_temp_path {path}/proxy;"
                ),
            );
        assert!(
            config.contains(&format!("server {second};")),
            "the example names two nodes"
        );
        // One process in the foreground: killing it leaves no worker behind
        // holding the test's output open.
        let config = format!(
            "daemon off;\nmaster_process off;\npid {path}/nginx.pid;\nerror_log {path}/error.log;\n{config}"
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let nginx = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|binary| {
                std::process::Command::new(binary)
                    .arg("-v")
                    .output()
                    .is_ok()
            })
            .expect("nginx is installed (Debian package nginx-light; .ci/run installs it)");
        let child = std::process::Command::new(nginx)
            .args(["-p", &path, "-c", &format!("{path}/nginx.conf")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_from_the_example_in_front_of_two_nodes() {
    let nodes = Nodes::start(Adapter::Redis, 2, &[]).await;
    let nginx = Nginx::start(nodes.nodes[0].addr, nodes.nodes[1].addr);
    nodes
        .run_js_with("nginx.test.mjs", vec![("NGINX_URL", nginx.url())])
        .await;
}
