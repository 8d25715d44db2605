//! Clients cut off mid-stream (they catch up when they join again), and the
//! process killed with SIGKILL and started again on the same database:
//! every acknowledged live-chat message is there, an assistant reply that was
//! streaming is marked `interrupted` with what was saved, and a live-chat AI
//! answer that was being generated is generated again. Runs on SQLite, and on
//! PostgreSQL with `TEST_DATABASE_URL`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use switchboard::testkit::{
    mock_ai::MockAi,
    sio::{Incoming, SioClient},
};

const FAST_EVENTS: [&str; 4] = [
    "--socket-events-per-sec",
    "100000",
    "--socket-event-burst",
    "100000",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_sigkill() {
    let database = TestDatabase::create().await;
    let mock = MockAi::start().await.unwrap();
    let mut server = ServerProcess::start(&database.url, &mock, &FAST_EVENTS, None);
    let token: Value = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reqwest::Client::new()
        .post(server.url("/api/ai/toggle"))
        .bearer_auth(token["accessToken"].as_str().unwrap())
        .json(&json!({ "isEnabled": false }))
        .send()
        .await
        .unwrap();

    // Four widgets send as fast as they can; the server is killed the moment
    // the last acknowledgement arrives.
    let mut acknowledged: Vec<(String, i64)> = Vec::new();
    let mut widgets = Vec::new();
    for widget in 0..4 {
        widgets.push((
            format!("durable-session-{widget}"),
            SioClient::connect(&server.base_url, None).await.unwrap(),
        ));
    }
    for (session, client) in &mut widgets {
        for i in 0..100 {
            client
                .emit(
                    "user-message",
                    &json!({ "sessionId": session, "message": format!("message {i}") }),
                )
                .await
                .unwrap();
        }
    }
    for (session, client) in &mut widgets {
        while acknowledged.iter().filter(|(s, _)| s == session).count() < 100 {
            if let Incoming::Event { name, data } = client.next().await.unwrap()
                && name == "message-received"
            {
                acknowledged.push((session.clone(), data["id"].as_i64().unwrap()));
            }
        }
    }
    server.kill();

    let server = ServerProcess::start(&database.url, &mock, &FAST_EVENTS, None);
    for (session, _) in &widgets {
        let stored = get_json(server.url(&format!("/api/messages/{session}")), None).await;
        let stored: Vec<i64> = stored
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["id"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = acknowledged
            .iter()
            .filter(|(s, _)| s == session)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(
            stored, expected,
            "{session}: every acknowledged message, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_streaming_when_the_process_died_is_marked_interrupted() {
    let database = TestDatabase::create().await;
    let mock = MockAi::start().await.unwrap();
    let mut server =
        ServerProcess::start(&database.url, &mock, &["--stream-persist-ms", "200"], None);
    let mut client = SioClient::connect(&server.base_url, None).await.unwrap();
    client
        .emit(
            "stream_chat",
            &json!({ "message": "a long answer please [[mock:words=300]] [[mock:delay=20]]" }),
        )
        .await
        .unwrap();
    let started = client.next_named("stream_start").await.unwrap();
    let conversation = started["conversationId"].as_str().unwrap().to_owned();
    let message = started["messageId"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();

    let server = ServerProcess::start(&database.url, &mock, &[], None);
    let view = get_json(
        server.url(&format!("/api/conversations/{conversation}")),
        None,
    )
    .await;
    let reply = view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == message.as_str())
        .expect("the reply is kept")
        .clone();
    assert_eq!(reply["status"], "interrupted");
    let content = reply["content"].as_str().unwrap();
    assert!(
        content.starts_with("w1 w2 w3"),
        "what was saved is kept: {content:?}"
    );
    assert!(!content.contains("w300"), "it was cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_chat_answer_cut_off_by_a_crash_is_generated_again() {
    let database = TestDatabase::create().await;
    let mock = MockAi::start().await.unwrap();
    let mut server = ServerProcess::start(&database.url, &mock, &[], None);
    let session = "crash-session-0001";
    let mut widget = SioClient::connect(&server.base_url, None).await.unwrap();
    widget
        .emit(
            "user-message",
            &json!({ "sessionId": session, "message": "slow one [[mock:first-byte-delay=1500]]" }),
        )
        .await
        .unwrap();
    widget.next_named("message-received").await.unwrap();
    widget.next_named("ai-thinking").await.unwrap();
    server.kill();

    let server = ServerProcess::start(&database.url, &mock, &[], None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = get_json(server.url(&format!("/api/messages/{session}")), None).await;
        let senders: Vec<&str> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["senderType"].as_str().unwrap())
            .collect();
        if senders == ["user", "ai"] {
            assert_eq!(rows[1]["message"], "Mock reply: slow one");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer after the restart: {senders:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !server
            .log_lines("answering live-chat messages a stopped node left unanswered")
            .is_empty()
    );
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

async fn admin_socket(server: &ServerProcess) -> SioClient {
    let login: Value = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = json!({ "token": login["accessToken"] });
    SioClient::connect(&server.base_url, Some(&auth))
        .await
        .unwrap()
}

/// Sends an admin reply and waits until it is stored (the admins get it back).
async fn reply(admin: &mut SioClient, session: &str, message: &str) {
    admin
        .emit(
            "admin-reply",
            &json!({ "sessionId": session, "message": message }),
        )
        .await
        .unwrap();
    assert_eq!(next_reply(admin).await, message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_stored_after_a_sigkill_reach_the_visitor_when_it_returns() {
    let database = TestDatabase::create().await;
    let mock = MockAi::start().await.unwrap();
    let mut server = ServerProcess::start(&database.url, &mock, &[], None);
    let session = "restart-visitor-0001";
    let mut admin = admin_socket(&server).await;
    let mut widget = SioClient::connect(&server.base_url, None).await.unwrap();
    widget
        .emit(
            "user-message",
            &json!({ "sessionId": session, "message": "hello" }),
        )
        .await
        .unwrap();
    widget.next_named("message-received").await.unwrap();
    reply(&mut admin, session, "before").await;
    assert_eq!(next_reply(&mut widget).await, "before");
    // Killed: the widget's departure is never recorded.
    server.kill();

    let server = ServerProcess::start(&database.url, &mock, &[], None);
    let mut admin = admin_socket(&server).await;
    reply(&mut admin, session, "while down 1").await;
    reply(&mut admin, session, "while down 2").await;
    // The unchanged widget reconnects and says nothing until its visitor types.
    let mut widget = SioClient::connect(&server.base_url, None).await.unwrap();
    widget
        .emit(
            "user-typing",
            &json!({ "sessionId": session, "isTyping": true }),
        )
        .await
        .unwrap();
    assert_eq!(next_reply(&mut widget).await, "while down 1");
    assert_eq!(next_reply(&mut widget).await, "while down 2");
    // Then live, and "before" was not sent again.
    reply(&mut admin, session, "after").await;
    assert_eq!(next_reply(&mut widget).await, "after");
}

/// Events on `socket` until `stream_complete`, as (name, data), failing after 30 s.
async fn until_complete(socket: &mut SioClient) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let incoming = tokio::time::timeout_at(deadline.into(), socket.next())
            .await
            .expect("stream_complete within 30 s")
            .unwrap();
        if let Incoming::Event { name, data } = incoming {
            let done = name == "stream_complete";
            seen.push((name, data));
            if done {
                return seen;
            }
        }
    }
}

/// Starts a long streaming answer; its conversation and reply ids.
async fn long_answer(asker: &mut SioClient) -> (String, String) {
    asker
        .emit(
            "stream_chat",
            &json!({ "message": "a long answer [[mock:words=400]] [[mock:delay=20]]" }),
        )
        .await
        .unwrap();
    let start = asker.next_named("stream_start").await.unwrap();
    (
        start["conversationId"].as_str().unwrap().to_owned(),
        start["messageId"].as_str().unwrap().to_owned(),
    )
}

async fn stored_reply(server: &ServerProcess, conversation: &str, message: &str) -> String {
    let view = get_json(
        server.url(&format!("/api/conversations/{conversation}")),
        None,
    )
    .await;
    view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == message)
        .expect("the reply is stored")["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_cut_off_mid_stream_catches_up_and_ends_with_the_stored_reply() {
    let database = TestDatabase::create().await;
    let mock = MockAi::start().await.unwrap();
    let server = ServerProcess::start(&database.url, &mock, &["--stream-persist-ms", "100"], None);
    let mut asker = SioClient::connect(&server.base_url, None).await.unwrap();
    let (conversation, message) = long_answer(&mut asker).await;
    let mut proxy = TcpProxy::start(server.addr).await;
    let through = format!("http://{}", proxy.addr);
    let mut listener = SioClient::connect(&through, None).await.unwrap();
    listener
        .emit("join_conversation", &json!(conversation))
        .await
        .unwrap();
    let had = listener.next_named("stream_chunk").await.unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    proxy.cut();
    // The answer goes on while the listener is away.
    loop {
        let chunk = asker.next_named("stream_chunk").await.unwrap();
        let content = chunk["content"].as_str().unwrap();
        if content.split_whitespace().count() > had.split_whitespace().count() + 20 {
            break;
        }
    }
    proxy.restore().await;
    let mut back = SioClient::connect(&through, None).await.unwrap();
    back.emit("join_conversation", &json!(conversation))
        .await
        .unwrap();
    let seen = until_complete(&mut back).await;
    // Announced at once, then every chunk holds at least the one before.
    assert_eq!(seen[0].0, "stream_start", "{:?}", seen[0]);
    assert_eq!(seen[0].1["messageId"], message.as_str());
    let contents: Vec<&str> = seen
        .iter()
        .filter(|(name, _)| name == "stream_chunk")
        .map(|(_, chunk)| chunk["content"].as_str().unwrap())
        .collect();
    assert!(
        contents[0].split_whitespace().count() > had.split_whitespace().count(),
        "the first chunk holds what was said while away"
    );
    for pair in contents.windows(2) {
        assert!(pair[1].starts_with(pair[0]), "no chunk out of order");
    }
    let last = seen
        .iter()
        .rev()
        .find(|(name, _)| name == "stream_chunk")
        .unwrap();
    assert_eq!(last.1["isComplete"], true);
    assert_eq!(
        last.1["content"].as_str().unwrap(),
        stored_reply(&server, &conversation, &message).await
    );
    assert_eq!(seen.last().unwrap().1["messageId"], message.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_ended_while_the_listener_was_away_arrives_as_its_stream_complete() {
    let database = TestDatabase::create().await;
    let mock = MockAi::start().await.unwrap();
    let server = ServerProcess::start(&database.url, &mock, &[], None);
    let mut asker = SioClient::connect(&server.base_url, None).await.unwrap();
    asker
        .emit(
            "stream_chat",
            &json!({ "message": "short [[mock:words=30]] [[mock:delay=20]]" }),
        )
        .await
        .unwrap();
    let start = asker.next_named("stream_start").await.unwrap();
    let conversation = start["conversationId"].as_str().unwrap().to_owned();
    let message = start["messageId"].as_str().unwrap().to_owned();
    let mut proxy = TcpProxy::start(server.addr).await;
    let through = format!("http://{}", proxy.addr);
    let mut listener = SioClient::connect(&through, None).await.unwrap();
    listener
        .emit("join_conversation", &json!(conversation))
        .await
        .unwrap();
    listener.next_named("stream_chunk").await.unwrap();
    proxy.cut();
    until_complete(&mut asker).await;
    proxy.restore().await;
    let mut back = SioClient::connect(&through, None).await.unwrap();
    back.emit("join_conversation", &json!(conversation))
        .await
        .unwrap();
    let seen = until_complete(&mut back).await;
    let names: Vec<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["stream_chunk", "stream_complete"]);
    let stored = stored_reply(&server, &conversation, &message).await;
    assert_eq!(seen[0].1["content"].as_str().unwrap(), stored);
    assert_eq!(seen[0].1["isComplete"], true);
    let complete = &seen[1].1;
    assert_eq!(complete["messageId"], message.as_str());
    assert!(
        complete["conversation"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == message.as_str() && m["content"] == stored.as_str())
    );
}
