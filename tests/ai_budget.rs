//! AI spend from the attacker's side: an anonymous socket that starts stream
//! after stream, new sockets and new live-chat sessions from one address, a
//! day's tokens spent, and more calls at once than the provider is given. Each
//! was unbounded before the budget; each refusal happens before the provider
//! is asked.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard::testkit::sio::{Incoming, SioClient};

/// The next `stream_start`, `stream_error` or `chat-error` on `client`, with
/// its name; other events are skipped.
async fn next_outcome(client: &mut SioClient, names: &[&str]) -> (String, Value) {
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
        .expect("an outcome arrives")
}

/// Starts a stream and says whether it was admitted (`stream_start`) or
/// refused (`stream_error` without a message id: the event itself).
async fn start_stream(client: &mut SioClient, message: &str) -> Result<Value, Value> {
    client
        .emit("stream_chat", &json!({ "message": message }))
        .await
        .unwrap();
    let (name, data) = next_outcome(client, &["stream_start", "stream_error"]).await;
    if name == "stream_start" {
        Ok(data)
    } else {
        assert!(data.get("messageId").is_none(), "a refusal, not a failure");
        Err(data)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_address_cannot_start_streams_without_end() {
    let app = spawn_app_with(&[
        "--ai-anon-requests-per-minute",
        "3",
        "--ai-anon-requests-per-minute-per-ip",
        "5",
    ])
    .await;
    let mut first = SioClient::connect(&app.base_url, None).await.unwrap();
    let mut outcomes = Vec::new();
    for n in 0..4 {
        outcomes.push(start_stream(&mut first, &format!("question {n}")).await);
    }
    assert!(outcomes[..3].iter().all(Result::is_ok), "{outcomes:?}");
    let refused = outcomes[3].clone().unwrap_err();
    assert_eq!(refused["code"], "RATE_LIMITED");

    // A new socket is not a new budget for the address.
    let mut second = SioClient::connect(&app.base_url, None).await.unwrap();
    assert!(
        start_stream(&mut second, "from a new socket 1")
            .await
            .is_ok()
    );
    assert!(
        start_stream(&mut second, "from a new socket 2")
            .await
            .is_ok()
    );
    let refused = start_stream(&mut second, "from a new socket 3").await;
    assert_eq!(refused.unwrap_err()["code"], "RATE_LIMITED");

    let asked = app
        .mock
        .requests()
        .iter()
        .filter(|request| request.path == "/v1/chat/completions")
        .count();
    assert_eq!(asked, 5, "refused calls never reach the provider");
    let conversations: Value = app.get("/api/conversations").await.json().await.unwrap();
    assert_eq!(
        conversations.as_array().unwrap().len(),
        5,
        "a refused question stores nothing"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"switchboard_refusals_total{limiter="ai_anonymous_rate"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_messages_in_many_sessions_share_their_address_budget() {
    let app = spawn_app_with(&["--ai-anon-requests-per-minute-per-ip", "3"]).await;
    let mut visitor = SioClient::connect(&app.base_url, None).await.unwrap();
    for n in 0..5 {
        visitor
            .emit(
                "user-message",
                &json!({ "sessionId": format!("budget-session-{n:04}"), "message": "hello" }),
            )
            .await
            .unwrap();
    }
    let (mut replies, mut refusals, mut stored) = (0, 0, 0);
    while replies + refusals < 5 || stored < 5 {
        let (name, data) = next_outcome(
            &mut visitor,
            &["ai-reply", "chat-error", "message-received"],
        )
        .await;
        match name.as_str() {
            "ai-reply" => replies += 1,
            "message-received" => stored += 1,
            _ => {
                assert_eq!(data["code"], "RATE_LIMITED", "{data}");
                refusals += 1;
            }
        }
    }
    assert_eq!((replies, refusals), (3, 2));
    assert_eq!(stored, 5, "the visitor's messages are kept for a human");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_anonymous_tokens_run_out_but_signed_in_users_go_on() {
    let app = spawn_app_with(&["--ai-anon-tokens-per-day", "5"]).await;
    let mut visitor = SioClient::connect(&app.base_url, None).await.unwrap();
    assert!(start_stream(&mut visitor, "a first question").await.is_ok());
    visitor.next_named("stream_complete").await.unwrap();
    let refused = start_stream(&mut visitor, "a second question").await;
    let refused = refused.unwrap_err();
    assert_eq!(refused["code"], "QUOTA_EXCEEDED");
    assert!(refused["message"].as_str().unwrap().contains("resets"));

    let token = app.admin_token().await;
    let mut member = SioClient::connect(&app.base_url, Some(&json!({ "token": token })))
        .await
        .unwrap();
    assert!(
        start_stream(&mut member, "a signed-in question")
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_concurrent_cap_are_refused_until_one_ends() {
    let app = spawn_app_with(&["--ai-max-concurrent", "1"]).await;
    let mut holder = SioClient::connect(&app.base_url, None).await.unwrap();
    let started = start_stream(&mut holder, "a slow one [[mock:hang]]")
        .await
        .unwrap();
    let mut other = SioClient::connect(&app.base_url, None).await.unwrap();
    let busy = start_stream(&mut other, "meanwhile").await.unwrap_err();
    assert_eq!(busy["code"], "RATE_LIMITED");
    assert!(busy["message"].as_str().unwrap().contains("busy"));

    holder
        .emit(
            "stop_generation",
            &json!({ "messageId": started["messageId"] }),
        )
        .await
        .unwrap();
    holder.next_named("stream_complete").await.unwrap();
    assert!(
        start_stream(&mut other, "now there is room").await.is_ok(),
        "the slot came back with the stopped stream"
    );
}

#[tokio::test]
async fn anonymous_rest_answers_share_the_address_budget() {
    let app = spawn_app_with(&["--ai-anon-requests-per-minute-per-ip", "2"]).await;
    let question = json!({ "message": "a question" });
    let ask = || app.post_json("/api/chat", &question);
    assert_eq!(ask().await.status(), 200);
    assert_eq!(ask().await.status(), 200);
    let refused = ask().await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "RATE_LIMITED"
    );
}
