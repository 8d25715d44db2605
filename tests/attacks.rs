//! Attacks on the running binary from outside: a burst of failed logins, a
//! connection flood from one address, clients that trickle or never send
//! their headers, and an admin socket that stops reading. Each ran the server
//! out of memory, file descriptors or log space before the limits existed.
//! Last, a wave of clients that connect and leave: the memory they held must
//! go back to the system, not stay with the process at its peak.

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::*;
use serde_json::{Value, json};
use switchboard::testkit::{
    mock_ai::MockAi,
    sio::{SioClient, SioError},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

const MIB: u64 = 1024 * 1024;

/// These tests run one at a time: each pushes the machine to a limit (CPU for
/// password hashing, file descriptors, socket buffers), and one running beside
/// another made the other's timings meaningless — on 2 cores a reader starved
/// for seconds looked like a client that stopped reading.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn server(
    extra_args: &[&str],
    open_files: Option<u64>,
) -> (ServerProcess, TestDatabase, MockAi) {
    let database = TestDatabase::create().await;
    let mock = MockAi::start().await.unwrap();
    let server = ServerProcess::start(&database.url, &mock, extra_args, open_files);
    (server, database, mock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_failed_logins_stay_within_a_memory_bound() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (server, _db, _mock) = server(&[], None).await;
    let client = reqwest::Client::new();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for _round in 0..3 {
        let started = Instant::now();
        let logins = (0..128).map(|_| {
            client
                .post(server.url("/api/auth/login"))
                .json(&json!({ "email": ADMIN_EMAIL, "password": "not the password" }))
                .send()
        });
        for response in futures::future::join_all(logins).await {
            *statuses
                .entry(response.unwrap().status().as_u16())
                .or_default() += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a round took {:?}",
            started.elapsed()
        );
    }
    let rss = server.rss_bytes();
    assert!(
        statuses
            .keys()
            .all(|status| *status == 401 || *status == 503),
        "only wrong passwords and 'busy': {statuses:?}"
    );
    assert!(
        statuses.get(&503).is_some_and(|n| *n > 0),
        "the hashing queue is bounded: {statuses:?}"
    );
    assert!(
        rss < 256 * MIB,
        "RSS after 384 failed logins: {} MiB",
        rss / MIB
    );
    // Hashing works again once the burst is over.
    let ok = client
        .post(server.url("/api/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// Opens `count` connections from `source` and keeps those the server took.
async fn flood(target: SocketAddr, source: &str, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(500), socket.connect(target)).await
        {
            held.push(stream);
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_one_address_leaves_room_for_others() {
    let _turn = ONE_AT_A_TIME.lock().await;
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let (server, _db, _mock) = server(&["--max-connections-per-ip", "50"], Some(1024)).await;
    let _held = flood(server.addr, "127.0.0.2", 2000).await;
    let started = Instant::now();
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .get(server.url("/api/health"))
        .send()
        .await
        .expect("another address is served");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        !server
            .log_lines("connection refused: this address holds its maximum")
            .is_empty(),
        "the refusal is logged"
    );
    assert!(server.log_lines("out of file descriptors").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_send_no_headers_or_trickle_them_are_cut_off() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (server, _db, _mock) = server(&["--header-read-timeout-secs", "2"], None).await;
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let mut trickling = TcpStream::connect(server.addr).await.unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 4096];
    let read = idle.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 200"));
    trickling
        .write_all(b"GET /api/health HTTP/1.1\r\n")
        .await
        .unwrap();

    let started = Instant::now();
    let trickle = async {
        // One header byte every 300 ms, for as long as the server listens.
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if trickling.write_all(b"X").await.is_err() {
                break;
            }
        }
    };
    let closed = |mut stream: TcpStream| async move {
        let mut buffer = [0u8; 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    };
    let (silent_closed, idle_closed, ()) = tokio::time::timeout(
        Duration::from_secs(8),
        futures::future::join3(closed(silent), closed(idle), trickle),
    )
    .await
    .expect("the server closes silent and idle connections");
    assert!(silent_closed - started < Duration::from_secs(4));
    assert!(idle_closed - started < Duration::from_secs(4));
    let mut rest = Vec::new();
    let trickled =
        tokio::time::timeout(Duration::from_secs(2), trickling.read_to_end(&mut rest)).await;
    assert!(
        trickled.is_ok() && started.elapsed() < Duration::from_secs(7),
        "the trickling client is cut off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_socket_that_stops_reading_is_dropped_with_few_log_lines() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (server, _db, _mock) = server(
        &[
            "--socket-stall-timeout-secs",
            "6",
            "--socket-events-per-sec",
            "100000",
            "--socket-event-burst",
            "100000",
        ],
        None,
    )
    .await;
    let http = reqwest::Client::new();
    let login: Value = http
        .post(server.url("/api/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["accessToken"].as_str().unwrap();
    http.post(server.url("/api/ai/toggle"))
        .bearer_auth(token)
        .json(&json!({ "isEnabled": false }))
        .send()
        .await
        .unwrap();
    // An admin that joins, then never reads again.
    let stalled = SioClient::connect(&server.base_url, Some(&json!({ "token": token })))
        .await
        .unwrap();
    let mut listening = SioClient::connect(&server.base_url, Some(&json!({ "token": token })))
        .await
        .unwrap();
    let mut widget = SioClient::connect(&server.base_url, None).await.unwrap();
    // The reading admin runs on its own task, so a busy sender never keeps it
    // from reading long enough to look stalled itself.
    let received = tokio::spawn(async move {
        let mut rows = 0;
        while rows < 6000 {
            match listening.next_named("user-message").await {
                Ok(_) => rows += 1,
                Err(SioError::Protocol(_)) => {}
                Err(err) => panic!("the reading admin lost its socket after {rows} rows: {err}"),
            }
        }
    });
    let text = "x".repeat(4000);
    let sent = async {
        for i in 0..6000 {
            widget
                .emit(
                    "user-message",
                    &json!({ "sessionId": format!("stall-session-{}", i % 20), "message": text }),
                )
                .await
                .unwrap();
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(90), async {
        sent.await;
        received.await.unwrap();
    })
    .await
    .expect("a reading admin gets every row while another stalls");
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.log_lines("stopped reading").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        server
            .log_lines("closing a connection whose client stopped reading")
            .len(),
        1,
        "the stalled admin is dropped, in one line"
    );
    let warnings = server.log_lines(" WARN ");
    assert!(
        warnings.len() < 20,
        "{} warning lines: {warnings:#?}",
        warnings.len()
    );
    drop(stalled);
}

/// A wave of websocket clients that connect and leave: the memory their
/// connections held goes back to the system within seconds, instead of
/// staying with the process at its peak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_of_closed_connections_goes_back_to_the_system() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (server, _db, _mock) = server(&[], None).await;
    let before = server.rss_bytes();
    let mut clients = Vec::new();
    for _ in 0..30 {
        let wave = (0..100).map(|_| SioClient::connect(&server.base_url, None));
        for client in futures::future::join_all(wave).await {
            clients.push(client.expect("a client connects"));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holding = server.rss_bytes();
    let grown = holding.saturating_sub(before);
    assert!(
        grown > 20 * MIB,
        "3,000 sockets take tens of MiB: {} → {} MiB",
        before / MIB,
        holding / MIB
    );
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = server.rss_bytes();
        if now < before + grown / 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RSS stayed at {} MiB after the sockets closed ({} → {} MiB while held)",
            now / MIB,
            before / MIB,
            holding / MIB
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_is_cut_off() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (server, _db, _mock) = server(&["--body-read-timeout-secs", "2"], None).await;
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut answer))
        .await
        .expect("the server gives up on the body")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "refused or closed: {answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // Whole bodies still arrive.
    let login = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_sessions_count_against_the_address() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (server, _db, _mock) = server(&["--max-connections-per-ip", "8"], None).await;
    // One kept-alive connection, many Engine.IO sessions: the connection cap
    // alone saw one client.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let handshake = || {
        client
            .get(server.url("/socket.io/?EIO=4&transport=polling"))
            .send()
    };
    let mut sessions = Vec::new();
    for _ in 0..8 {
        let response = handshake().await.unwrap();
        assert_eq!(response.status(), 200);
        let open = response.text().await.unwrap();
        let open: Value = serde_json::from_str(open.trim_start_matches('0')).unwrap();
        sessions.push(open["sid"].as_str().unwrap().to_owned());
    }
    let refused = handshake().await.unwrap();
    assert_eq!(refused.status(), 429, "the ninth session from one address");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
    // The sessions it has still work: one joins the namespace.
    let sid = &sessions[0];
    let url = server.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
    assert_eq!(
        client.post(&url).body("40").send().await.unwrap().status(),
        200
    );
    // A ping may come first on a loaded machine: answer it and poll again.
    let mut polled = Vec::new();
    loop {
        let payload = client.get(&url).send().await.unwrap().text().await.unwrap();
        let packets: Vec<String> = payload.split('\u{1e}').map(str::to_owned).collect();
        if packets.iter().any(|packet| packet.starts_with("40{")) {
            break;
        }
        assert!(
            packets.iter().all(|packet| packet == "2") && polled.len() < 5,
            "joined: {polled:?} then {payload}"
        );
        client.post(&url).body("3").send().await.unwrap();
        polled.push(payload);
    }
    // Another address is not held up by this one's.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 7]))
        .build()
        .unwrap();
    let response = other
        .get(format!(
            "http://127.0.0.1:{}/socket.io/?EIO=4&transport=polling",
            server.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
