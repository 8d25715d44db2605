//! `/metrics`: a live-chat journey moves the counters it should, labels stay
//! bounded, and the endpoint can move to `METRICS_ADDR` or be switched off.
//! A test binary of its own: the recorder is process-wide.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use switchboard::testkit::sio::SioClient;

/// The value of the sample of `name` carrying every label in `labels`.
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_chat_journey_moves_the_counters() {
    let app = spawn_app().await;
    let before = scrape(&app.url("/metrics")).await;
    let received = |text: &str, event| {
        sample(
            text,
            "switchboard_socket_events_received_total",
            &[("event", event)],
        )
    };

    let mut widget = SioClient::connect(&app.base_url, None).await.unwrap();
    let session = "metrics-session-1";
    widget
        .emit(
            "user-message",
            &json!({ "sessionId": session, "message": "hello" }),
        )
        .await
        .unwrap();
    widget.next_named("ai-reply").await.unwrap();
    widget
        .emit("user-message", &json!({ "sessionId": session }))
        .await
        .unwrap();
    widget.next_named("chat-error").await.unwrap();
    widget
        .emit(
            "user-message",
            &json!({ "sessionId": session, "message": "I would like to talk to a human agent" }),
        )
        .await
        .unwrap();
    widget.next_named("ai-reply").await.unwrap();
    assert_eq!(
        app.get("/api/no-such-route").await.status(),
        StatusCode::NOT_FOUND
    );

    let after = scrape(&app.url("/metrics")).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert_eq!(
        received(&after, "user-message") - received(&before, "user-message"),
        3.0
    );
    assert!(
        moved(
            "switchboard_socket_events_sent_total",
            &[("event", "ai-reply")]
        ) >= 2.0
    );
    assert!(
        moved(
            "switchboard_socket_events_sent_total",
            &[("event", "message-received")]
        ) >= 2.0
    );
    assert_eq!(
        moved(
            "switchboard_errors_total",
            &[("code", "INVALID_PAYLOAD"), ("via", "socket")]
        ),
        1.0
    );
    assert!(
        moved(
            "switchboard_errors_total",
            &[("code", "NOT_FOUND"), ("via", "http")]
        ) >= 1.0
    );
    assert_eq!(moved("switchboard_livechat_handoffs_total", &[]), 1.0);
    assert!(
        moved(
            "switchboard_ai_requests_total",
            &[("provider", "openai"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(
        moved(
            "switchboard_ai_request_seconds_count",
            &[("provider", "openai")]
        ) >= 1.0
    );
    assert!(moved("switchboard_ai_tokens_total", &[("provider", "openai")]) > 0.0);
    assert!(moved("switchboard_socket_connects_total", &[]) >= 1.0);
    assert!(sample(&after, "switchboard_sockets_connected", &[]) >= 1.0);
    assert!(moved("switchboard_livechat_batch_rows_count", &[]) >= 2.0);
    assert!(moved("switchboard_livechat_commit_seconds_count", &[]) >= 2.0);
    assert!(
        moved(
            "switchboard_db_statement_seconds_count",
            &[("kind", "select"), ("outcome", "ok")]
        ) >= 1.0
    );
    // Bounded labels: no session id or message text anywhere.
    assert!(!after.contains(session));
    assert!(!after.contains("hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_to_their_own_address_or_switch_off() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let app = spawn_app_with(&["--metrics-addr", &addr]).await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    let exposition = scrape(&format!("http://{addr}/metrics")).await;
    assert!(exposition.contains("switchboard_"));

    let off = spawn_app_with(&["--metrics", "false"]).await;
    assert_eq!(off.get("/metrics").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_on_the_main_port_answer_only_this_machine_or_the_token() {
    let app = spawn_app_with(&[
        "--trusted-proxies",
        "127.0.0.1/32",
        "--metrics-token",
        "scrape-secret",
    ])
    .await;
    let from = |client: &'static str, token: Option<&'static str>| {
        let mut request = app
            .http
            .get(app.url("/metrics"))
            .header("x-forwarded-for", client);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let remote = from("203.0.113.7", None).await.unwrap();
    assert_eq!(
        remote.status(),
        StatusCode::NOT_FOUND,
        "a stranger sees nothing"
    );
    let wrong = from("203.0.113.7", Some("guess")).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    let scraper = from("203.0.113.7", Some("scrape-secret")).await.unwrap();
    assert_eq!(scraper.status(), StatusCode::OK);
    assert!(scraper.text().await.unwrap().contains("switchboard_"));
    let local = from("127.0.0.1", None).await.unwrap();
    assert_eq!(local.status(), StatusCode::OK, "this machine's Prometheus");
}
