//! The project's benchmark: drives real server processes over the wire with
//! its own Socket.IO-over-WebSocket client and prints one table.
//!
//! Each server runs pinned to CPU 0 (`taskset -c 0`); run this load generator
//! pinned to CPU 1. Measured in one run, so the figures are comparable:
//!
//! - live chat, closed loop: 50 visitors each send `user-message` and wait for
//!   `message-received`; one admin receives the rows. Round trips/s, RTT
//!   p50/p99, server CPU per message (from `/proc/PID/stat`), and at the admin:
//!   lost, duplicated and out-of-order rows;
//! - live chat at a fixed 2,000 messages/s from 500 visitors: RTT p50/p99;
//! - connecting N sockets and holding them: connects/s, RSS per connection,
//!   RSS after closing them, over several rounds (a leak shows as growth);
//! - a bare socketioxide echo server (`examples/echo_server.rs`) as the
//!   ceiling: acks/s and CPU per request, and the same connection test;
//! - optionally the live-chat closed loop on PostgreSQL;
//! - optionally (with `--postgres` and `--redis`) several nodes: one node, then
//!   two nodes sharing rooms over Redis (both pinned to CPU 0, so the server
//!   side has the same core either way). Live-chat rows reaching admins on
//!   both nodes from visitors on both (deliveries/s, send → delivery
//!   latency), and assistant streams started on one node reaching listeners
//!   on the other (chunks/s, provider → listener latency);
//! - optionally all of it for a baseline build (the code before a change);
//! - by hand only (`--only held`): `--connections` idle sockets held over
//!   `--nodes` nodes by child processes of this benchmark (`bench hold`; one
//!   process may open only so many files), with the live chat measured on
//!   the first node meanwhile.
//!
//! ```sh
//! examples/benchmarks.sh            # builds everything and runs this
//! taskset -c 1 target/release/examples/bench --server target/release/switchboard \
//!     --echo target/release/examples/echo_server [--baseline OLD_BINARY] \
//!     [--postgres postgres://postgres@127.0.0.1:5432/test] \
//!     [--redis redis://127.0.0.1:6379] [--seconds 10] \
//!     [--connections 10000] [--rounds 5]
//! ```

use std::{
    collections::{HashMap, VecDeque},
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use switchboard::testkit::{
    mock_ai::MockAi,
    sio::{Incoming, SioClient, SioError},
};
use tokio::sync::Semaphore;

const ADMIN_EMAIL: &str = "admin@bench.local";
const ADMIN_PASSWORD: &str = "bench-password";
const VISITORS: usize = 50;
const FIXED_VISITORS: usize = 500;
const FIXED_RATE: f64 = 2000.0;
const WARMUP: Duration = Duration::from_secs(2);

struct Args {
    server: String,
    baseline: Option<String>,
    echo: String,
    postgres: Option<String>,
    redis: Option<String>,
    seconds: u64,
    connections: usize,
    rounds: usize,
    /// Nodes that share the held connections (`held`).
    nodes: usize,
    /// Measurements to run (`echo`, `closed`, `fixed`, `connect`, `postgres`,
    /// `cluster`); all when empty. `held` runs only when named.
    only: Vec<String>,
}

impl Args {
    fn runs(&self, measurement: &str) -> bool {
        self.only.is_empty() || self.named(measurement)
    }

    fn named(&self, measurement: &str) -> bool {
        self.only.iter().any(|m| m == measurement)
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        server: "target/release/switchboard".into(),
        baseline: None,
        echo: "target/release/examples/echo_server".into(),
        postgres: None,
        redis: None,
        seconds: 10,
        connections: 10_000,
        rounds: 5,
        nodes: 1,
        only: Vec::new(),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || {
            argv.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--server" => args.server = value(),
            "--baseline" => args.baseline = Some(value()),
            "--echo" => args.echo = value(),
            "--postgres" => args.postgres = Some(value()),
            "--redis" => args.redis = Some(value()),
            "--seconds" => args.seconds = value().parse().expect("seconds"),
            "--connections" => args.connections = value().parse().expect("connections"),
            "--rounds" => args.rounds = value().parse().expect("rounds"),
            "--nodes" => args.nodes = value().parse().expect("nodes"),
            "--only" => args.only = value().split(',').map(str::to_owned).collect(),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// A server process pinned to CPU 0.
struct Pinned {
    child: Child,
    base_url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Pinned {
    fn start(binary: &str, args: &[String], dir: Option<tempfile::TempDir>) -> Self {
        let mut child = Command::new("taskset")
            .args(["-c", "0", binary])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("BENCH_SERVER_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("taskset and the server binary");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening")
                    && let Some(addr) = line.split("addr=").nth(1)
                {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server logs its address");
        Self {
            child,
            base_url: format!("http://{addr}"),
            _dir: dir,
        }
    }

    /// User plus system CPU time so far, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // The command name may hold spaces; fields follow its closing parenthesis.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / clock_ticks()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(100.0)
    })
}

/// Limits the load (which comes from one address) must not hit.
const LIFTED_LIMITS: [(&str, &str); 11] = [
    ("--max-connections-per-ip", "1000000"),
    ("--login-rate-limit-per-ip", "1000000"),
    ("--ai-max-concurrent", "1000000"),
    ("--ai-anon-requests-per-minute", "1000000"),
    ("--ai-anon-requests-per-minute-per-ip", "1000000"),
    ("--ai-anon-tokens-per-day", "1000000000000"),
    ("--ai-anon-tokens-per-day-per-ip", "1000000000000"),
    ("--ai-anon-tokens-per-day-total", "1000000000000"),
    ("--create-per-minute-per-ip", "1000000000"),
    ("--api-concurrency-per-ip", "1000000"),
    ("--login-rate-limit-per-account", "1000000"),
];

/// The arguments of a server `binary`: each limit lifted that it knows (a
/// baseline may predate some).
fn switchboard_args(database_url: &str, binary: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database-url",
        database_url,
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        ADMIN_PASSWORD,
        "--jwt-secret",
        "bench-secret-that-is-long-enough",
        "--socket-events-per-sec",
        "1000000",
        "--socket-event-burst",
        "1000000",
        "--rate-limit-max-requests",
        "1000000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let help = Command::new(binary)
        .arg("--help")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    for (flag, value) in LIFTED_LIMITS {
        if help.contains(&format!("{flag} ")) {
            args.extend([flag.to_owned(), value.to_owned()]);
        }
    }
    args
}

fn start_switchboard(binary: &str, postgres: Option<&str>) -> Pinned {
    match postgres {
        Some(url) => Pinned::start(binary, &switchboard_args(url, binary), None),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            );
            Pinned::start(binary, &switchboard_args(&url, binary), Some(dir))
        }
    }
}

/// Signs in as the admin and switches the AI off (the benchmark measures the
/// message path, not a model).
async fn admin_token(server: &Pinned) -> String {
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/api/auth/login", server.base_url))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["accessToken"].as_str().expect("a token").to_owned();
    http.post(format!("{}/api/ai/toggle", server.base_url))
        .bearer_auth(&token)
        .json(&json!({ "isEnabled": false }))
        .send()
        .await
        .unwrap();
    token
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[derive(Default)]
struct LoopResult {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    cpu_us: f64,
    lost: usize,
    duplicated: usize,
    out_of_order: usize,
}

/// What the admin saw: every row, by session.
type Seen = Arc<Mutex<Vec<(String, i64)>>>;

async fn admin_listener(
    base_url: &str,
    token: &str,
    stop: Arc<AtomicBool>,
) -> (Seen, tokio::task::JoinHandle<()>) {
    let mut admin = SioClient::connect(base_url, Some(&json!({ "token": token })))
        .await
        .expect("the admin connects");
    let seen: Seen = Arc::default();
    let rows = seen.clone();
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match tokio::time::timeout(Duration::from_millis(200), admin.next()).await {
                Ok(Ok(Incoming::Event { name, data })) if name == "user-message" => {
                    let session = data["sessionId"].as_str().unwrap_or_default().to_owned();
                    rows.lock()
                        .unwrap()
                        .push((session, data["id"].as_i64().unwrap_or(-1)));
                }
                Ok(Err(_)) => break,
                _ => {}
            }
        }
    });
    (seen, task)
}

/// Compares what was acknowledged with what the admin saw.
fn audit(acked: &HashMap<String, Vec<i64>>, seen: &[(String, i64)]) -> (usize, usize, usize) {
    let mut by_session: HashMap<&str, Vec<i64>> = HashMap::new();
    for (session, id) in seen {
        by_session.entry(session).or_default().push(*id);
    }
    let (mut lost, mut duplicated, mut out_of_order) = (0, 0, 0);
    for (session, ids) in acked {
        let got = by_session
            .get(session.as_str())
            .cloned()
            .unwrap_or_default();
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        duplicated += got.len() - unique.len();
        out_of_order += got.windows(2).filter(|pair| pair[1] < pair[0]).count();
        lost += ids
            .iter()
            .filter(|id| unique.binary_search(id).is_err())
            .count();
    }
    (lost, duplicated, out_of_order)
}

/// 50 visitors in a closed loop, one admin receiving the rows.
async fn live_chat_closed_loop(server: &Pinned, seconds: u64, tag: &str) -> LoopResult {
    let token = admin_token(server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, admin) = admin_listener(&server.base_url, &token, stop.clone()).await;
    let measuring = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut visitors = Vec::new();
    for v in 0..VISITORS {
        let mut client = SioClient::connect(&server.base_url, None)
            .await
            .expect("a visitor connects");
        let (measuring, done) = (measuring.clone(), done.clone());
        let session = format!("bench-{tag}-{v:04}");
        visitors.push(tokio::spawn(async move {
            let mut rtts = Vec::new();
            let mut acked = Vec::new();
            let mut seq = 0u64;
            while !done.load(Ordering::Relaxed) {
                seq += 1;
                let sent = Instant::now();
                let message = json!({ "sessionId": session, "message": format!("message {seq}") });
                if client.emit("user-message", &message).await.is_err() {
                    break;
                }
                let Ok(ack) = client.next_named("message-received").await else {
                    break;
                };
                if measuring.load(Ordering::Relaxed) {
                    rtts.push(sent.elapsed());
                }
                acked.push(ack["id"].as_i64().unwrap_or(-1));
            }
            (session, rtts, acked)
        }));
    }
    let (elapsed, cpu) = measurement_window(seconds, &measuring, || server.cpu_seconds()).await;
    done.store(true, Ordering::Relaxed);
    let mut rtts = Vec::new();
    let mut acked = HashMap::new();
    for visitor in visitors {
        let (session, mut samples, ids) = visitor.await.unwrap();
        rtts.append(&mut samples);
        acked.insert(session, ids);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = admin.await;
    rtts.sort_unstable();
    let (lost, duplicated, out_of_order) = audit(&acked, &seen.lock().unwrap());
    LoopResult {
        per_second: rtts.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&rtts, 0.50),
        p99: percentile(&rtts, 0.99),
        cpu_us: cpu * 1e6 / rtts.len().max(1) as f64,
        lost,
        duplicated,
        out_of_order,
    }
}

/// 500 visitors sending at a fixed total rate, each on its own schedule.
async fn live_chat_fixed_rate(server: &Pinned, seconds: u64, tag: &str) -> LoopResult {
    let token = admin_token(server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (_seen, admin) = admin_listener(&server.base_url, &token, stop.clone()).await;
    let interval = Duration::from_secs_f64(FIXED_VISITORS as f64 / FIXED_RATE);
    let begin = Instant::now() + Duration::from_millis(500);
    let measure_from = begin + WARMUP;
    let measure_to = measure_from + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for v in 0..FIXED_VISITORS {
        let client = SioClient::connect(&server.base_url, None)
            .await
            .expect("a visitor connects");
        let (mut writer, mut reader, mut pings) = client.split();
        let session = format!("fixed-{tag}-{v:04}");
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let first = begin + interval.mul_f64(v as f64 / FIXED_VISITORS as f64);
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(first.into(), interval);
            let mut seq = 0u64;
            loop {
                tokio::select! {
                    at = ticks.tick() => {
                        if at.into_std() >= measure_to + Duration::from_millis(500) {
                            break;
                        }
                        seq += 1;
                        let message = json!({ "sessionId": session, "message": format!("m {seq}") });
                        let _ = sent_tx.send(Instant::now());
                        if writer.emit("user-message", &message).await.is_err() {
                            break;
                        }
                    }
                    Some(()) = pings.recv() => {
                        let _ = writer.pong().await;
                    }
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            let mut rtts = Vec::new();
            let mut pending: VecDeque<Instant> = VecDeque::new();
            loop {
                let next = tokio::time::timeout(Duration::from_secs(2), reader.next()).await;
                let Ok(Ok(packet)) = next else { break };
                while let Ok(sent) = sent_rx.try_recv() {
                    pending.push_back(sent);
                }
                if let Some(Incoming::Event { name, .. }) = packet
                    && name == "message-received"
                {
                    let sent = match pending.pop_front() {
                        Some(sent) => sent,
                        None => sent_rx.recv().await.unwrap_or_else(Instant::now),
                    };
                    if sent >= measure_from && sent < measure_to {
                        rtts.push(sent.elapsed());
                    }
                }
            }
            RTTS.lock().unwrap().append(&mut rtts);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = admin.await;
    let mut rtts = std::mem::take(&mut *RTTS.lock().unwrap());
    rtts.sort_unstable();
    LoopResult {
        per_second: rtts.len() as f64 / seconds as f64,
        p50: percentile(&rtts, 0.50),
        p99: percentile(&rtts, 0.99),
        ..LoopResult::default()
    }
}

static RTTS: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

/// Echo clients in a closed loop against the bare server.
async fn echo_closed_loop(server: &Pinned, seconds: u64) -> LoopResult {
    let measuring = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..VISITORS {
        let mut client = SioClient::connect(&server.base_url, None)
            .await
            .expect("a client connects");
        let (measuring, done) = (measuring.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let mut rtts = Vec::new();
            let mut seq = 0u64;
            while !done.load(Ordering::Relaxed) {
                seq += 1;
                let sent = Instant::now();
                let message =
                    json!({ "sessionId": "echo-session", "message": format!("message {seq}") });
                if client.emit_with_ack("echo", &message).await.is_err() {
                    break;
                }
                if measuring.load(Ordering::Relaxed) {
                    rtts.push(sent.elapsed());
                }
            }
            rtts
        }));
    }
    let (elapsed, cpu) = measurement_window(seconds, &measuring, || server.cpu_seconds()).await;
    done.store(true, Ordering::Relaxed);
    let mut rtts = Vec::new();
    for client in clients {
        rtts.append(&mut client.await.unwrap());
    }
    rtts.sort_unstable();
    LoopResult {
        per_second: rtts.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&rtts, 0.50),
        p99: percentile(&rtts, 0.99),
        cpu_us: cpu * 1e6 / rtts.len().max(1) as f64,
        ..LoopResult::default()
    }
}

#[derive(Default)]
struct ConnectResult {
    per_second: f64,
    kib_per_connection: f64,
    /// RSS once the sockets of each round closed, in MiB.
    after_close_mib: Vec<f64>,
    /// RSS while holding them (last round), in MiB.
    held_mib: f64,
    baseline_mib: f64,
}

/// The local address of the `index`th held socket: 127.0.0.2 to 127.0.0.251
/// in turn, so that more sockets than one address has ports can be held.
fn source_address(index: usize) -> std::net::IpAddr {
    std::net::Ipv4Addr::new(127, 0, 0, 2 + (index % 250) as u8).into()
}

/// Connects `count` sockets (256 handshakes in flight), holds them, closes
/// them; `rounds` times.
async fn connect_and_hold(server: &Pinned, count: usize, rounds: usize) -> ConnectResult {
    // One socket first, so the engine's lazily built parts are counted in the baseline.
    let warm = SioClient::connect(&server.base_url, None)
        .await
        .expect("connects");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.rss_kib();
    let mut per_second = 0.0;
    let mut per_connection = 0.0;
    let mut after_close = Vec::new();
    let mut held = 0;
    for round in 0..rounds {
        let in_flight = Arc::new(Semaphore::new(256));
        let failures = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut handshakes = Vec::with_capacity(count);
        for index in 0..count {
            let permit = in_flight.clone().acquire_owned().await.unwrap();
            let (url, failures) = (server.base_url.clone(), failures.clone());
            handshakes.push(tokio::spawn(async move {
                let client = SioClient::connect_from(&url, None, Some(source_address(index))).await;
                drop(permit);
                client
                    .map_err(|_: SioError| failures.fetch_add(1, Ordering::Relaxed))
                    .ok()
            }));
        }
        let mut sockets = Vec::with_capacity(count);
        for handshake in handshakes {
            if let Some(client) = handshake.await.unwrap() {
                sockets.push(client);
            }
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        held = server.rss_kib();
        if round == 0 {
            per_second = sockets.len() as f64 / elapsed.as_secs_f64();
        }
        per_connection = held.saturating_sub(baseline) as f64 / sockets.len().max(1) as f64;
        let failed = failures.load(Ordering::Relaxed);
        if failed > 0 {
            eprintln!("round {round}: {failed} connections failed");
        }
        drop(sockets);
        // Long enough for the server to hand the memory back (every 5 s).
        tokio::time::sleep(Duration::from_secs(7)).await;
        after_close.push(server.rss_kib() as f64 / 1024.0);
    }
    drop(warm);
    ConnectResult {
        per_second,
        kib_per_connection: per_connection,
        after_close_mib: after_close,
        held_mib: held as f64 / 1024.0,
        baseline_mib: baseline as f64 / 1024.0,
    }
}

/// Sockets one holder process keeps: a process may open 20,000 files here,
/// and every node and holder is one process.
const SOCKETS_PER_HOLDER: usize = 18_000;

/// `bench hold URL COUNT FIRST`, run as a child of the benchmark: connects
/// COUNT sockets to URL from the source addresses of sockets FIRST.., keeps
/// each answering the server's pings, prints `held N`, answers every line it
/// reads with `alive N`, and exits when its input closes.
async fn hold(url: &str, count: usize, first: usize) {
    switchboard::net::raise_open_file_limit();
    let alive = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(Semaphore::new(256));
    for index in first..first + count {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (url, alive) = (url.to_owned(), alive.clone());
        tokio::spawn(async move {
            let client = SioClient::connect_from(&url, None, Some(source_address(index))).await;
            let Ok(mut client) = client else { return };
            alive.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            // Reading answers the pings; it ends when the server drops the socket.
            while client.next().await.is_ok() {}
            alive.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Every handshake has ended once every permit is back.
    let _all = in_flight.acquire_many(256).await.unwrap();
    println!("held {}", alive.load(Ordering::Relaxed));
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
    while let Ok(Some(_)) = lines.next_line().await {
        println!("alive {}", alive.load(Ordering::Relaxed));
    }
    std::process::exit(0);
}

/// A `bench hold` child process.
struct Holder {
    _child: tokio::process::Child,
    input: tokio::process::ChildStdin,
    output: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Holder {
    fn start(url: &str, count: usize, first: usize) -> Self {
        let mut child = tokio::process::Command::new(std::env::current_exe().expect("own path"))
            .args(["hold", url, &count.to_string(), &first.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("a holder process starts");
        let input = child.stdin.take().expect("stdin");
        let output = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            child.stdout.take().expect("stdout"),
        ));
        Self {
            _child: child,
            input,
            output,
        }
    }

    /// The number on the holder's next line, which starts with `word`.
    async fn answer(&mut self, word: &str) -> usize {
        let line = self
            .output
            .next_line()
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        line.strip_prefix(word)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn alive(&mut self) -> usize {
        let _ = tokio::io::AsyncWriteExt::write_all(&mut self.input, b"report\n").await;
        self.answer("alive").await
    }
}

struct HeldResult {
    nodes: usize,
    clustered: bool,
    held: usize,
    connect_seconds: f64,
    baseline_mib: f64,
    holding_mib: f64,
    closed: LoopResult,
    fixed: LoopResult,
    alive_after: usize,
}

/// `--connections` idle sockets spread over `--nodes` nodes (one process
/// each, all on CPU 0), held by `bench hold` processes; meanwhile the live
/// chat runs on the first node, closed loop then fixed rate. Nodes run apart,
/// each on its own SQLite file; with `--postgres` and `--redis` they form one
/// cluster on a PostgreSQL database with rooms shared over Redis.
async fn hold_and_chat(args: &Args) -> HeldResult {
    let count = args.nodes.max(1);
    let mut database = None;
    let nodes = match (&args.postgres, &args.redis) {
        (Some(admin_url), Some(redis)) if count > 1 => {
            let mock = MockAi::start().await.expect("the mock AI provider starts");
            let nodes = Nodes::start(&args.server, count, admin_url, redis, &mock).await;
            database = Some((admin_url.clone(), nodes.database.clone()));
            nodes.nodes
        }
        _ => (0..count)
            .map(|_| start_switchboard(&args.server, None))
            .collect(),
    };
    let rss_mib = || nodes.iter().map(Pinned::rss_kib).sum::<u64>() as f64 / 1024.0;
    let baseline_mib = rss_mib();
    let per_node = args.connections.div_ceil(count);
    let started = Instant::now();
    let mut holders = Vec::new();
    let mut first = 0;
    for node in &nodes {
        let end = (first + per_node).min(args.connections);
        while first < end {
            let take = (end - first).min(SOCKETS_PER_HOLDER);
            holders.push(Holder::start(&node.base_url, take, first));
            first += take;
        }
    }
    let mut held = 0;
    for holder in &mut holders {
        held += holder.answer("held").await;
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    settle().await;
    let holding_mib = rss_mib();
    eprintln!(
        "held {held} sockets over {count} node(s) in {connect_seconds:.1} s; live chat on the first"
    );
    let closed = live_chat_closed_loop(&nodes[0], args.seconds, "held").await;
    let fixed = live_chat_fixed_rate(&nodes[0], args.seconds, "held").await;
    let mut alive_after = 0;
    for holder in &mut holders {
        alive_after += holder.alive().await;
    }
    drop(holders);
    drop(nodes);
    if let Some((admin_url, name)) = &database {
        drop_postgres_database(admin_url, name).await;
    }
    HeldResult {
        nodes: count,
        clustered: database.is_some(),
        held,
        connect_seconds,
        baseline_mib,
        holding_mib,
        closed,
        fixed,
        alive_after,
    }
}

fn print_held(result: &HeldResult) {
    let per_connection =
        (result.holding_mib - result.baseline_mib) * 1024.0 / result.held.max(1) as f64;
    println!("\n| held connections (Switchboard now, every node on CPU 0) | |\n|---|---:|");
    println!(
        "| sockets held, nodes | {} over {} node(s){} |",
        result.held,
        result.nodes,
        if result.clustered {
            " sharing rooms over Redis"
        } else {
            " apart"
        }
    );
    println!(
        "| time to connect them, connects/s | {:.1} s, {:.0}/s |",
        result.connect_seconds,
        result.held as f64 / result.connect_seconds.max(f64::EPSILON)
    );
    println!(
        "| RSS of the nodes: before → holding, per connection | {:.0} → {:.0} MiB, {per_connection:.1} KiB |",
        result.baseline_mib, result.holding_mib
    );
    println!(
        "| live chat closed loop on the first node meanwhile: round trips/s, RTT p50 / p99 | {:.0}, {} / {} |",
        result.closed.per_second,
        ms(result.closed.p50),
        ms(result.closed.p99)
    );
    println!(
        "| lost / duplicated / out of order at the admin | {} / {} / {} |",
        result.closed.lost, result.closed.duplicated, result.closed.out_of_order
    );
    println!(
        "| 2,000 msg/s from 500 visitors meanwhile: RTT p50 / p99 (messages/s achieved) | {} / {} ({:.0}) |",
        ms(result.fixed.p50),
        ms(result.fixed.p99),
        result.fixed.per_second
    );
    println!(
        "| held sockets still open after the live chat | {} |",
        result.alive_after
    );
}

/// A fresh PostgreSQL database for one run: its URL and its name.
async fn postgres_database(admin_url: &str) -> (String, String) {
    use sea_orm::{ConnectionTrait, Database};
    let name = format!("sb_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url)
        .await
        .expect("PostgreSQL reachable");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    (format!("{base}/{name}"), name)
}

async fn drop_postgres_database(admin_url: &str, name: &str) {
    use sea_orm::{ConnectionTrait, Database};
    if let Ok(admin) = Database::connect(admin_url).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

/// One node, or two sharing rooms over Redis, on one PostgreSQL database.
struct Nodes {
    nodes: Vec<Pinned>,
    database: String,
}

impl Nodes {
    async fn start(
        binary: &str,
        count: usize,
        admin_url: &str,
        redis: &str,
        mock: &MockAi,
    ) -> Self {
        let (url, database) = postgres_database(admin_url).await;
        let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let nodes = (0..count)
            .map(|_| {
                let mut args = switchboard_args(&url, binary);
                args.extend(
                    [
                        "--openai-base-url",
                        &mock.base_url(),
                        "--openai-api-key",
                        "bench",
                        "--ai-rate-limit-per-minute",
                        "1000000",
                        "--socket-adapter-prefix",
                        &prefix,
                    ]
                    .map(str::to_owned),
                );
                if count > 1 {
                    args.extend(["--redis-url", redis].map(str::to_owned));
                }
                Pinned::start(binary, &args, None)
            })
            .collect();
        Self { nodes, database }
    }

    /// The node the `index`th client uses: in turn over every node.
    fn node(&self, index: usize) -> &Pinned {
        &self.nodes[index % self.nodes.len()]
    }

    fn cpu_seconds(&self) -> f64 {
        self.nodes.iter().map(Pinned::cpu_seconds).sum()
    }
}

#[derive(Default)]
struct ClusterResult {
    deliveries_per_second: f64,
    delivery_p50: Duration,
    delivery_p99: Duration,
    cpu_us_per_message: f64,
    chunks_per_second: f64,
    chunk_p50: Duration,
    chunk_p99: Duration,
}

/// Microseconds since the Unix epoch: the load generator stamps what it sends
/// and reads the stamps on what it receives (one clock, one machine).
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn since_micros(stamp: i64) -> Duration {
    Duration::from_micros(now_micros().saturating_sub(stamp).max(0) as u64)
}

/// While not `done`: how long ago each `event` received during the
/// measurement was stamped (`stamp_of` reads the stamp).
async fn stamped_latencies(
    mut client: SioClient,
    event: &'static str,
    stamp_of: fn(&Value) -> Option<i64>,
    measuring: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while !done.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(200), client.next_named(event)).await {
            Ok(Ok(data)) if measuring.load(Ordering::Relaxed) => {
                if let Some(stamp) = stamp_of(&data) {
                    latencies.push(since_micros(stamp));
                }
            }
            Ok(Err(_)) => break,
            _ => {}
        }
    }
    latencies
}

/// Warms up, then measures for `seconds`: how long it measured, and the
/// server CPU seconds (`cpu_seconds`) spent meanwhile.
async fn measurement_window(
    seconds: u64,
    measuring: &AtomicBool,
    cpu_seconds: impl Fn() -> f64,
) -> (Duration, f64) {
    tokio::time::sleep(WARMUP).await;
    let cpu_before = cpu_seconds();
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    (started.elapsed(), cpu_seconds() - cpu_before)
}

/// Admins (one per node) receive the rows of visitors spread over the nodes.
async fn cluster_live_chat(nodes: &Nodes, seconds: u64, result: &mut ClusterResult) {
    let token = admin_token(&nodes.nodes[0]).await;
    let measuring = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut admins = Vec::new();
    for index in 0..2 {
        let admin = SioClient::connect(
            &nodes.node(index).base_url,
            Some(&json!({ "token": token })),
        )
        .await
        .expect("an admin connects");
        let (measuring, done) = (measuring.clone(), done.clone());
        admins.push(tokio::spawn(stamped_latencies(
            admin,
            "user-message",
            |row| row["message"].as_str()?.parse().ok(),
            measuring,
            done,
        )));
    }
    let mut visitors = Vec::new();
    for v in 0..VISITORS {
        let mut client = SioClient::connect(&nodes.node(v).base_url, None)
            .await
            .expect("a visitor connects");
        let done = done.clone();
        let session = format!("bench-cluster-{v:04}");
        visitors.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let message = json!({ "sessionId": session, "message": now_micros().to_string() });
                if client.emit("user-message", &message).await.is_err()
                    || client.next_named("message-received").await.is_err()
                {
                    break;
                }
            }
        }));
    }
    let (elapsed, cpu) = measurement_window(seconds, &measuring, || nodes.cpu_seconds()).await;
    done.store(true, Ordering::Relaxed);
    for visitor in visitors {
        let _ = visitor.await;
    }
    let mut latencies = Vec::new();
    for admin in admins {
        latencies.append(&mut admin.await.unwrap());
    }
    latencies.sort_unstable();
    result.deliveries_per_second = latencies.len() as f64 / elapsed.as_secs_f64();
    result.delivery_p50 = percentile(&latencies, 0.50);
    result.delivery_p99 = percentile(&latencies, 0.99);
    // Each message reaches two admins.
    result.cpu_us_per_message = cpu * 2e6 / latencies.len().max(1) as f64;
}

/// Streams started on the first node, each followed by a listener on the last.
async fn cluster_streams(nodes: &Nodes, seconds: u64, result: &mut ClusterResult) {
    const STREAMS: usize = 20;
    let http = reqwest::Client::new();
    let sender_node = &nodes.nodes[0];
    let listener_node = nodes.nodes.last().unwrap();
    let measuring = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..STREAMS {
        let conversation: Value = http
            .post(format!("{}/api/conversations", sender_node.base_url))
            .json(&json!({ "title": "bench" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = conversation["id"].as_str().unwrap().to_owned();
        let mut listener = SioClient::connect(&listener_node.base_url, None)
            .await
            .unwrap();
        listener
            .emit("join_conversation", &json!(id))
            .await
            .unwrap();
        let mut sender = SioClient::connect(&sender_node.base_url, None)
            .await
            .unwrap();
        let (measuring, done) = (measuring.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let sending = {
                let done = done.clone();
                async move {
                    while !done.load(Ordering::Relaxed) {
                        let request = json!({
                            "message": "[[mock:words=100]] [[mock:delay=2]] [[mock:stamp]]",
                            "conversationId": id,
                        });
                        if sender.emit("stream_chat", &request).await.is_err()
                            || sender.next_named("stream_complete").await.is_err()
                        {
                            break;
                        }
                    }
                }
            };
            // The newest word of a chunk is when the provider sent it.
            let listening = stamped_latencies(
                listener,
                "stream_chunk",
                |chunk| {
                    chunk["delta"]
                        .as_str()?
                        .split_whitespace()
                        .last()?
                        .parse()
                        .ok()
                },
                measuring,
                done,
            );
            futures::future::join(sending, listening).await.1
        }));
    }
    let (elapsed, _) = measurement_window(seconds, &measuring, || 0.0).await;
    done.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.append(&mut task.await.unwrap());
    }
    latencies.sort_unstable();
    result.chunks_per_second = latencies.len() as f64 / elapsed.as_secs_f64();
    result.chunk_p50 = percentile(&latencies, 0.50);
    result.chunk_p99 = percentile(&latencies, 0.99);
}

/// One node, then two over Redis, with the same load.
async fn measure_cluster(args: &Args, admin_url: &str, redis: &str) -> [ClusterResult; 2] {
    let mock = MockAi::start().await.expect("the mock AI provider starts");
    let mut results = [ClusterResult::default(), ClusterResult::default()];
    for (count, result) in [1, 2].into_iter().zip(&mut results) {
        eprintln!("now: {count} node(s), live chat");
        let nodes = Nodes::start(&args.server, count, admin_url, redis, &mock).await;
        cluster_live_chat(&nodes, args.seconds, result).await;
        settle().await;
        eprintln!("now: {count} node(s), streams");
        cluster_streams(&nodes, args.seconds, result).await;
        let database = nodes.database.clone();
        drop(nodes);
        drop_postgres_database(admin_url, &database).await;
        settle().await;
    }
    results
}

/// A Switchboard build under test.
struct Subject<'a> {
    name: &'static str,
    binary: &'a str,
}

#[derive(Default)]
struct Variant {
    name: &'static str,
    closed: LoopResult,
    fixed: LoopResult,
    connect: ConnectResult,
    postgres: Option<LoopResult>,
}

/// Lets the machine settle between measurements.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Each measurement for every build in turn, so a slow spell of the machine
/// hits both alike; PostgreSQL last, so its background work cannot disturb
/// the others.
async fn measure_switchboard(subjects: &[Subject<'_>], args: &Args) -> Vec<Variant> {
    let mut variants: Vec<Variant> = subjects
        .iter()
        .map(|s| Variant {
            name: s.name,
            ..Variant::default()
        })
        .collect();
    if args.runs("closed") {
        for (subject, variant) in subjects.iter().zip(&mut variants) {
            eprintln!("{}: live chat, closed loop", subject.name);
            let server = start_switchboard(subject.binary, None);
            variant.closed = live_chat_closed_loop(&server, args.seconds, subject.name).await;
            drop(server);
            settle().await;
        }
    }
    if args.runs("fixed") {
        for (subject, variant) in subjects.iter().zip(&mut variants) {
            eprintln!("{}: live chat, fixed rate", subject.name);
            let server = start_switchboard(subject.binary, None);
            variant.fixed = live_chat_fixed_rate(&server, args.seconds, subject.name).await;
            drop(server);
            settle().await;
        }
    }
    if args.runs("connect") {
        for (subject, variant) in subjects.iter().zip(&mut variants) {
            eprintln!("{}: connections", subject.name);
            let server = start_switchboard(subject.binary, None);
            variant.connect = connect_and_hold(&server, args.connections, args.rounds).await;
            drop(server);
            settle().await;
        }
    }
    if let Some(admin_url) = args.postgres.as_deref().filter(|_| args.runs("postgres")) {
        for (subject, variant) in subjects.iter().zip(&mut variants) {
            eprintln!("{}: live chat on PostgreSQL", subject.name);
            let (url, name) = postgres_database(admin_url).await;
            let server = start_switchboard(subject.binary, Some(&url));
            variant.postgres =
                Some(live_chat_closed_loop(&server, args.seconds, subject.name).await);
            drop(server);
            drop_postgres_database(admin_url, &name).await;
            settle().await;
        }
    }
    variants
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The table of several nodes.
fn print_cluster(results: &[ClusterResult; 2]) {
    let [one, two] = results;
    println!(
        "\n| several nodes (Switchboard now, every node on CPU 0) | 1 node | 2 nodes over Redis | 2 / 1 |"
    );
    println!("|---|---:|---:|---:|");
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}×", a / b)
        } else {
            "–".into()
        }
    };
    println!(
        "| live-chat rows delivered/s (50 visitors, 2 admins; spread over the nodes) | {:.0} | {:.0} | {} |",
        one.deliveries_per_second,
        two.deliveries_per_second,
        ratio(two.deliveries_per_second, one.deliveries_per_second)
    );
    println!(
        "| visitor send → admin delivery, p50 / p99 | {} / {} | {} / {} | |",
        ms(one.delivery_p50),
        ms(one.delivery_p99),
        ms(two.delivery_p50),
        ms(two.delivery_p99)
    );
    println!(
        "| server CPU per message, all nodes | {:.1} µs | {:.1} µs | {} |",
        one.cpu_us_per_message,
        two.cpu_us_per_message,
        ratio(two.cpu_us_per_message, one.cpu_us_per_message)
    );
    println!(
        "| assistant chunks delivered/s (20 streams; listener on the other node) | {:.0} | {:.0} | {} |",
        one.chunks_per_second,
        two.chunks_per_second,
        ratio(two.chunks_per_second, one.chunks_per_second)
    );
    println!(
        "| provider → listener latency, p50 / p99 | {} / {} | {} / {} | |",
        ms(one.chunk_p50),
        ms(one.chunk_p99),
        ms(two.chunk_p50),
        ms(two.chunk_p99)
    );
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if let [_, command, url, count, first] = argv.as_slice()
        && command == "hold"
    {
        hold(
            url,
            count.parse().expect("count"),
            first.parse().expect("first"),
        )
        .await;
        return;
    }
    let args = parse_args();
    if args.named("held") {
        print_held(&hold_and_chat(&args).await);
        if args.only == ["held"] {
            return;
        }
    }
    let cluster = match (&args.postgres, &args.redis) {
        (Some(postgres), Some(redis)) if args.runs("cluster") => {
            Some(measure_cluster(&args, postgres, redis).await)
        }
        _ => None,
    };
    if args.only == ["cluster"] {
        if let Some(results) = &cluster {
            print_cluster(results);
        }
        return;
    }
    let mut echo = LoopResult::default();
    let mut echo_connect = ConnectResult::default();
    if args.runs("echo") {
        eprintln!("echo: closed loop");
        let echo_server = Pinned::start(&args.echo, &["127.0.0.1:0".to_owned()], None);
        echo = echo_closed_loop(&echo_server, args.seconds).await;
        drop(echo_server);
        eprintln!("echo: connections");
        let echo_server = Pinned::start(&args.echo, &["127.0.0.1:0".to_owned()], None);
        echo_connect = connect_and_hold(&echo_server, args.connections, 1).await;
        drop(echo_server);
        settle().await;
    }

    let mut subjects = Vec::new();
    if let Some(baseline) = &args.baseline {
        subjects.push(Subject {
            name: "before",
            binary: baseline,
        });
    }
    subjects.push(Subject {
        name: "now",
        binary: &args.server,
    });
    let variants = measure_switchboard(&subjects, &args).await;

    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .map(|info| info.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    println!(
        "Machine: {cpus} CPUs ({cpu_model}); server on CPU 0, load generator on CPU 1; {} s per measurement after {} s of warm-up.\n",
        args.seconds,
        WARMUP.as_secs()
    );
    let mut header = "| measure | bare socketioxide |".to_owned();
    let mut rule = "|---|---:|".to_owned();
    for variant in &variants {
        header.push_str(&format!(" Switchboard {} |", variant.name));
        rule.push_str("---:|");
    }
    if variants.len() == 2 {
        header.push_str(" now / before |");
        rule.push_str("---:|");
    }
    header.push_str(" now / bare |");
    rule.push_str("---:|");
    println!("{header}\n{rule}");
    let now = variants.last().unwrap();
    let before = (variants.len() == 2).then(|| &variants[0]);
    let row =
        |label: &str, bare: String, values: Vec<String>, vs_before: String, vs_bare: String| {
            let mut line = format!("| {label} | {bare} |");
            for value in values {
                line.push_str(&format!(" {value} |"));
            }
            if before.is_some() {
                line.push_str(&format!(" {vs_before} |"));
            }
            line.push_str(&format!(" {vs_bare} |"));
            println!("{line}");
        };
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}×", a / b)
        } else {
            "–".into()
        }
    };
    row(
        "live chat round trips/s (closed loop, 50 visitors)",
        format!("{:.0} acks/s", echo.per_second),
        variants
            .iter()
            .map(|v| format!("{:.0}", v.closed.per_second))
            .collect(),
        before.map_or(String::new(), |b| {
            ratio(now.closed.per_second, b.closed.per_second)
        }),
        ratio(now.closed.per_second, echo.per_second),
    );
    row(
        "server CPU per message (per echo request)",
        format!("{:.1} µs", echo.cpu_us),
        variants
            .iter()
            .map(|v| format!("{:.1} µs", v.closed.cpu_us))
            .collect(),
        before.map_or(String::new(), |b| ratio(now.closed.cpu_us, b.closed.cpu_us)),
        ratio(now.closed.cpu_us, echo.cpu_us),
    );
    row(
        "RTT p50 / p99 (closed loop)",
        format!("{} / {}", ms(echo.p50), ms(echo.p99)),
        variants
            .iter()
            .map(|v| format!("{} / {}", ms(v.closed.p50), ms(v.closed.p99)))
            .collect(),
        String::new(),
        String::new(),
    );
    row(
        "lost / duplicated / out of order at the admin",
        "–".into(),
        variants
            .iter()
            .map(|v| {
                format!(
                    "{} / {} / {}",
                    v.closed.lost, v.closed.duplicated, v.closed.out_of_order
                )
            })
            .collect(),
        String::new(),
        String::new(),
    );
    row(
        "2,000 msg/s from 500 visitors: RTT p50 / p99",
        "–".into(),
        variants
            .iter()
            .map(|v| format!("{} / {}", ms(v.fixed.p50), ms(v.fixed.p99)))
            .collect(),
        before.map_or(String::new(), |b| {
            ratio(now.fixed.p99.as_secs_f64(), b.fixed.p99.as_secs_f64())
        }),
        String::new(),
    );
    row(
        "  (messages/s achieved)",
        "–".into(),
        variants
            .iter()
            .map(|v| format!("{:.0}", v.fixed.per_second))
            .collect(),
        String::new(),
        String::new(),
    );
    if now.postgres.is_some() {
        row(
            "live chat on PostgreSQL: round trips/s, CPU per message",
            "–".into(),
            variants
                .iter()
                .map(|v| {
                    v.postgres.as_ref().map_or("–".into(), |p| {
                        format!("{:.0}, {:.1} µs", p.per_second, p.cpu_us)
                    })
                })
                .collect(),
            match (before.and_then(|b| b.postgres.as_ref()), &now.postgres) {
                (Some(b), Some(n)) => ratio(n.per_second, b.per_second),
                _ => String::new(),
            },
            String::new(),
        );
    }
    row(
        &format!("connects/s ({} sockets)", args.connections),
        format!("{:.0}", echo_connect.per_second),
        variants
            .iter()
            .map(|v| format!("{:.0}", v.connect.per_second))
            .collect(),
        before.map_or(String::new(), |b| {
            ratio(now.connect.per_second, b.connect.per_second)
        }),
        ratio(now.connect.per_second, echo_connect.per_second),
    );
    row(
        "RSS per idle connection",
        format!("{:.1} KiB", echo_connect.kib_per_connection),
        variants
            .iter()
            .map(|v| format!("{:.1} KiB", v.connect.kib_per_connection))
            .collect(),
        before.map_or(String::new(), |b| {
            ratio(now.connect.kib_per_connection, b.connect.kib_per_connection)
        }),
        ratio(
            now.connect.kib_per_connection,
            echo_connect.kib_per_connection,
        ),
    );
    let rss = |c: &ConnectResult| {
        format!(
            "{:.0} → {:.0} → {}",
            c.baseline_mib,
            c.held_mib,
            c.after_close_mib
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    row(
        "RSS MiB: before → holding → after closing (each round)",
        rss(&echo_connect),
        variants.iter().map(|v| rss(&v.connect)).collect(),
        String::new(),
        String::new(),
    );
    if let Some(results) = &cluster {
        print_cluster(results);
    }
}
