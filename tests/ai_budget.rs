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

/// A socket, and the replies whose `stream_complete` it has seen.
struct Client {
    sio: SioClient,
    completed: Vec<String>,
}

impl Client {
    async fn connect(app: &TestApp, auth: Option<&Value>) -> Self {
        Self {
            sio: SioClient::connect(&app.base_url, auth).await.unwrap(),
            completed: Vec::new(),
        }
    }

    /// The next of `names`, with its name; completions on the way are noted.
    async fn next_of(&mut self, names: &[&str]) -> (String, Value) {
        let wait = async {
            loop {
                if let Incoming::Event { name, data } = self.sio.next().await.unwrap() {
                    if name == "stream_complete" {
                        self.completed
                            .push(data["messageId"].as_str().unwrap_or_default().to_owned());
                    }
                    if names.contains(&name.as_str()) {
                        return (name, data);
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("an outcome arrives")
    }

    /// Starts a stream: admitted (`stream_start`) or refused (`stream_error`
    /// without a message id: the event itself).
    async fn start_stream(&mut self, message: &str) -> Result<Value, Value> {
        self.sio
            .emit("stream_chat", &json!({ "message": message }))
            .await
            .unwrap();
        let (name, data) = self.next_of(&["stream_start", "stream_error"]).await;
        if name == "stream_start" {
            Ok(data)
        } else {
            assert!(data.get("messageId").is_none(), "a refusal, not a failure");
            Err(data)
        }
    }

    /// Waits until the reply `started` announced has completed.
    async fn complete(&mut self, started: &Value) {
        let id = started["messageId"].as_str().unwrap().to_owned();
        while !self.completed.contains(&id) {
            self.next_of(&["stream_complete"]).await;
        }
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
    let mut first = Client::connect(&app, None).await;
    let mut outcomes = Vec::new();
    for n in 0..4 {
        outcomes.push(first.start_stream(&format!("question {n}")).await);
    }
    assert!(outcomes[..3].iter().all(Result::is_ok), "{outcomes:?}");
    let refused = outcomes[3].clone().unwrap_err();
    assert_eq!(refused["code"], "RATE_LIMITED");

    // A new socket is not a new budget for the address.
    let mut second = Client::connect(&app, None).await;
    let fourth = second.start_stream("from a new socket 1").await.unwrap();
    let fifth = second.start_stream("from a new socket 2").await.unwrap();
    let refused = second.start_stream("from a new socket 3").await;
    assert_eq!(refused.unwrap_err()["code"], "RATE_LIMITED");

    for started in outcomes[..3].iter().flatten() {
        first.complete(started).await;
    }
    second.complete(&fourth).await;
    second.complete(&fifth).await;
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
    let mut visitor = Client::connect(&app, None).await;
    for n in 0..5 {
        visitor
            .sio
            .emit(
                "user-message",
                &json!({ "sessionId": format!("budget-session-{n:04}"), "message": "hello" }),
            )
            .await
            .unwrap();
    }
    let (mut replies, mut refusals, mut stored) = (0, 0, 0);
    while replies + refusals < 5 || stored < 5 {
        let (name, data) = visitor
            .next_of(&["ai-reply", "chat-error", "message-received"])
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
    let mut visitor = Client::connect(&app, None).await;
    let started = visitor.start_stream("a first question").await.unwrap();
    visitor.complete(&started).await;
    let refused = visitor.start_stream("a second question").await;
    let refused = refused.unwrap_err();
    assert_eq!(refused["code"], "QUOTA_EXCEEDED");
    assert!(refused["message"].as_str().unwrap().contains("resets"));

    let token = app.admin_token().await;
    let mut member = Client::connect(&app, Some(&json!({ "token": token }))).await;
    assert!(member.start_stream("a signed-in question").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_concurrent_cap_are_refused_until_one_ends() {
    let app = spawn_app_with(&["--ai-max-concurrent", "1"]).await;
    let mut holder = Client::connect(&app, None).await;
    let started = holder
        .start_stream("a slow one [[mock:hang]]")
        .await
        .unwrap();
    let mut other = Client::connect(&app, None).await;
    let busy = other.start_stream("meanwhile").await.unwrap_err();
    assert_eq!(busy["code"], "RATE_LIMITED");
    assert!(busy["message"].as_str().unwrap().contains("busy"));

    holder
        .sio
        .emit(
            "stop_generation",
            &json!({ "messageId": started["messageId"] }),
        )
        .await
        .unwrap();
    holder.complete(&started).await;
    assert!(
        other.start_stream("now there is room").await.is_ok(),
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
