//! What one client address may create and run at once, from the attacker's
//! side: conversations, live-chat sessions and resume sessions without end
//! (one address made 10,000 conversations in 36 s), and many parallel
//! requests from one address.

mod common;

use std::{net::IpAddr, time::Duration};

use common::*;
use serde_json::{Value, json};
use switchboard::testkit::sio::{Incoming, SioClient};

/// The next of `names` on `client`, with its name.
async fn next_of(client: &mut SioClient, names: &[&str]) -> (String, Value) {
    let wait = async {
        loop {
            if let Incoming::Event { name, data } = client.next().await.unwrap()
                && names.contains(&name.as_str())
            {
                return (name, data);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("an answer arrives")
}

#[tokio::test]
async fn one_address_cannot_create_conversations_without_end() {
    let app = spawn_app_with(&["--create-per-minute-per-ip", "3"]).await;
    let title = json!({ "title": "one more" });
    let create = || app.post_json("/api/conversations", &title);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let created = create().await;
        assert_eq!(created.status(), 201);
        ids.push(
            created.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let refused = create().await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "RATE_LIMITED"
    );
    let new_chat = app
        .post_json("/api/chat", &json!({ "message": "hi" }))
        .await;
    assert_eq!(
        new_chat.status(),
        429,
        "an answer in a new conversation creates one"
    );
    let in_existing = app
        .post_json(
            "/api/chat",
            &json!({ "message": "hi", "conversationId": ids[0] }),
        )
        .await;
    assert_eq!(in_existing.status(), 200, "existing conversations go on");

    let mut socket = SioClient::connect(&app.base_url, None).await.unwrap();
    socket
        .emit("stream_chat", &json!({ "message": "a new one" }))
        .await
        .unwrap();
    let (name, refusal) = next_of(&mut socket, &["stream_start", "stream_error"]).await;
    assert_eq!(
        (name.as_str(), &refusal["code"]),
        ("stream_error", &json!("RATE_LIMITED"))
    );

    let listed: Value = app.get("/api/conversations").await.json().await.unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        3,
        "nothing refused was created"
    );

    let elsewhere = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 5]))
        .build()
        .unwrap()
        .post(app.url("/api/conversations"))
        .json(&json!({ "title": "another address" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        elsewhere.status(),
        201,
        "another address has its own budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_open_chats_without_end() {
    let app = spawn_app_with(&["--create-per-minute-per-ip", "3"]).await;
    let mut visitor = SioClient::connect(&app.base_url, None).await.unwrap();
    for n in 0..3 {
        let session = format!("visitor-chat-{n:04}");
        visitor
            .emit(
                "user-message",
                &json!({ "sessionId": session, "message": "hello" }),
            )
            .await
            .unwrap();
        let (name, _) = next_of(&mut visitor, &["message-received", "chat-error"]).await;
        assert_eq!(name, "message-received");
    }
    visitor
        .emit(
            "user-message",
            &json!({ "sessionId": "visitor-chat-0003", "message": "hello" }),
        )
        .await
        .unwrap();
    let (name, refusal) = next_of(&mut visitor, &["message-received", "chat-error"]).await;
    assert_eq!(name, "chat-error");
    assert_eq!(refusal["code"], "RATE_LIMITED");
    // The chats it has go on.
    visitor
        .emit(
            "user-message",
            &json!({ "sessionId": "visitor-chat-0000", "message": "still here" }),
        )
        .await
        .unwrap();
    let (name, _) = next_of(&mut visitor, &["message-received", "chat-error"]).await;
    assert_eq!(name, "message-received");

    let token = app.admin_token().await;
    let chats: Value = app
        .get_auth("/api/chats", &token)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = chats
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|chat| chat["sessionId"].as_str())
        .collect();
    assert!(
        !ids.contains(&"visitor-chat-0003"),
        "the refused chat was not stored: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_open_resume_sessions_without_end() {
    let app = spawn_app_with(&["--create-per-minute-per-ip", "2"]).await;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let mut socket = SioClient::connect(&app.base_url, None).await.unwrap();
        socket
            .emit("update_field", &json!({ "field": "Name", "value": "Ada" }))
            .await
            .unwrap();
        let (name, data) = next_of(&mut socket, &["field_updated", "update_field_error"]).await;
        outcomes.push((name, data));
    }
    assert_eq!(outcomes[0].0, "field_updated");
    assert_eq!(outcomes[1].0, "field_updated");
    assert_eq!(outcomes[2].0, "update_field_error", "{:?}", outcomes[2]);
    assert!(
        outcomes[2].1["error"]
            .as_str()
            .unwrap()
            .contains("resume sessions")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parallel_requests_from_one_address_wait_their_turn() {
    let app = spawn_app_with(&["--api-concurrency-per-ip", "2"]).await;
    for n in 0..20 {
        app.post_json("/api/conversations", &json!({ "title": format!("c{n}") }))
            .await;
    }
    let lists = (0..40).map(|_| app.http.get(app.url("/api/conversations")).send());
    let statuses: Vec<u16> = futures::future::join_all(lists)
        .await
        .into_iter()
        .map(|response| response.unwrap().status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|status| *status == 200),
        "queued, not refused: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resume_event_has_a_size_cap() {
    let app = spawn_app_with(&[
        "--resume-max-text-chars",
        "1000",
        "--resume-max-data-bytes",
        "4000",
    ])
    .await;
    let mut socket = SioClient::connect(&app.base_url, None).await.unwrap();
    let update = async |socket: &mut SioClient, field: &str, value: String| {
        socket
            .emit("update_field", &json!({ "field": field, "value": value }))
            .await
            .unwrap();
        next_of(socket, &["field_updated", "update_field_error"]).await
    };
    let (name, refusal) = update(&mut socket, "Summary", "x".repeat(2000)).await;
    assert_eq!(name, "update_field_error", "one value past the text cap");
    assert!(refusal["error"].as_str().unwrap().contains("longer than"));
    // Each value within the cap, the whole resume past the data cap.
    let mut outcomes = Vec::new();
    for field in ["Name", "Title", "Location", "Email", "Phone", "Summary"] {
        outcomes.push(update(&mut socket, field, "y".repeat(900)).await.0);
    }
    assert_eq!(outcomes[..4], ["field_updated"; 4]);
    assert!(
        outcomes[4..]
            .iter()
            .all(|name| name == "update_field_error"),
        "{outcomes:?}"
    );

    socket
        .emit(
            "check_resume_fields",
            &json!({ "resumeData": { "Name": "Ada", "Summary": "z".repeat(5000) } }),
        )
        .await
        .unwrap();
    let (name, refusal) =
        next_of(&mut socket, &["error", "missing_fields", "resume_complete"]).await;
    assert_eq!(name, "error", "{refusal}");

    let (name, _) = update(&mut socket, "Name", "Ada Lovelace".to_owned()).await;
    assert_eq!(name, "field_updated", "the socket goes on");
}
