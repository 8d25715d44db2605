//! The binary as a user runs it: starts with no configuration beyond a data
//! location, creates its SQLite file, serves, and exits 0 on SIGTERM; a
//! stream still running when the grace period ends is stopped, saved and
//! completed before the sockets close.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use serde_json::{Value, json};
use switchboard::testkit::{
    mock_ai::MockAi,
    sio::{Incoming, SioClient},
};

#[tokio::test]
async fn starts_without_configuration_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(dir.path())
        // Only the port: a test must not take 3001 from a running server.
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ADMIN_PASSWORD")
        .env_remove("JWT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let mut log = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server logs its address");
        log.push(line.clone());
        if let Some(addr) = line
            .split("addr=")
            .nth(1)
            .filter(|_| line.contains("listening"))
        {
            break addr.trim().to_owned();
        }
    };
    let console = format!("console=http://{addr}/console");
    assert!(
        log.iter()
            .any(|line| line.contains("random password") && line.contains(&console)),
        "the generated admin password is printed once, with where to use it: {log:?}"
    );
    let listening = log.last().unwrap();
    assert!(
        listening.contains(&console)
            && listening.contains(&format!("docs=http://{addr}/api/docs/")),
        "the start-up line names the console and the docs: {listening}"
    );

    let health: serde_json::Value = reqwest::get(format!("http://{addr}/api/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "OK");
    assert_eq!(health["database"]["backend"], "sqlite");
    assert_eq!(health["ai"]["provider"], "demo");
    assert!(
        dir.path().join("switchboard.db").exists(),
        "the SQLite file appears"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn migrate_subcommand_applies_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--database-url", &url, "migrate"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("m.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_slow_stream_after_the_grace_period_and_completes_it() {
    let database = TestDatabase::create().await;
    let mock = MockAi::start().await.unwrap();
    let mut server = ServerProcess::start(
        &database.url,
        &mock,
        &["--shutdown-grace-secs", "1", "--stream-persist-ms", "100"],
        None,
    );
    let mut client = SioClient::connect(&server.base_url, None).await.unwrap();
    client
        .emit(
            "stream_chat",
            &json!({ "message": "[[mock:words=1000]] [[mock:delay=50]]" }),
        )
        .await
        .unwrap();
    let start = client.next_named("stream_start").await.unwrap();
    let message_id = start["messageId"].as_str().unwrap().to_owned();
    client.next_named("stream_chunk").await.unwrap();

    let terminated = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The grace period passes, then the stream is stopped: its last chunk and
    // `stream_complete` still reach the client, before its socket closes.
    let mut last_chunk = Value::Null;
    let complete = loop {
        match client.next().await {
            Ok(Incoming::Event { name, data }) => match name.as_str() {
                "stream_chunk" => last_chunk = data,
                "stream_complete" => break data,
                _ => {}
            },
            Ok(_) => {}
            Err(err) => panic!("the socket closed before stream_complete: {err}"),
        }
    };
    assert!(
        terminated.elapsed() >= Duration::from_millis(900),
        "after the grace period"
    );
    assert_eq!(complete["messageId"], message_id.as_str());
    assert_eq!(last_chunk["isComplete"], true);
    let text = last_chunk["content"].as_str().unwrap().to_owned();
    assert!(text.split_whitespace().count() >= 5, "{text}");
    let stored = complete["conversation"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == message_id.as_str())
        .expect("the reply is in the completed conversation")
        .clone();
    assert_eq!(stored["status"], "stopped");
    assert_eq!(
        stored["content"],
        text.as_str(),
        "what the client saw is saved"
    );

    let exit = tokio::task::spawn_blocking(move || server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_and_the_socket_event() {
    let database = TestDatabase::create().await;
    let mock = MockAi::start().await.unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(test_args(&database.url, &mock))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info,switchboard::socket=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let collected = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(entry) = serde_json::from_str::<Value>(&line)
                && entry["fields"]["message"] == "Switchboard listening"
            {
                let _ = addr_tx.send(entry["fields"]["addr"].as_str().unwrap_or("").to_owned());
            }
            collected.lock().unwrap().push(line);
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a JSON line with the address");
    let base_url = format!("http://{addr}");

    let session = "json-log-session";
    let mut widget = SioClient::connect(&base_url, None).await.unwrap();
    widget
        .emit("user-connected", &json!({ "sessionId": session }))
        .await
        .unwrap();
    widget
        .emit("user-message", &json!({ "sessionId": session }))
        .await
        .unwrap();
    widget.next_named("chat-error").await.unwrap();
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base_url}/api/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let released = http
        .post(format!("{base_url}/api/chats/{session}/release"))
        .bearer_auth(login["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(released.status().is_success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();

    let entries: Vec<Value> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let refused = entries
        .iter()
        .find(|entry| entry["fields"]["message"] == "event refused")
        .expect("the refused event is logged");
    assert_eq!(refused["span"]["name"], "socket_event");
    assert_eq!(refused["span"]["event"], "user-message");
    assert_eq!(refused["span"]["flow"], "livechat");
    assert!(
        refused["span"]["socket"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(refused["fields"]["code"], "INVALID_PAYLOAD");
    let handed_back = entries
        .iter()
        .find(|entry| entry["fields"]["message"] == "hand-off changed by an admin")
        .expect("the route's line is logged");
    assert_eq!(handed_back["span"]["name"], "request");
    assert_eq!(handed_back["span"]["method"], "POST");
    assert_eq!(
        handed_back["span"]["path"],
        format!("/api/chats/{session}/release")
    );
    assert!(handed_back["span"]["id"].as_u64().is_some());
}
