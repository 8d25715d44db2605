//! PostgreSQL going away and coming back, through a proxy the test cuts: the
//! health probe answers 503 within about two seconds, requests and events fail
//! with `DATABASE_UNAVAILABLE` within a few seconds, and everything works again
//! once the database is back, without a restart. Needs a PostgreSQL server
//! (`TEST_DATABASE_URL`, else the local one); built with `--features service-tests`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::testkit::sio::SioClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_is_reported_fast_and_comes_back() {
    let database = TestDatabase::create_postgres().await;
    let upstream: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let mut proxy = TcpProxy::start(upstream).await;
    let through_proxy = database
        .url
        .replace("127.0.0.1:5432", &proxy.addr.to_string());
    let app = spawn_app_on(&through_proxy, &[]).await;
    let token = app.admin_token().await;
    assert_eq!(app.get("/api/health").await.status(), StatusCode::OK);

    proxy.cut();

    let started = Instant::now();
    let health = app.get("/api/health").await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "health took {:?}",
        started.elapsed()
    );
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "DEGRADED");
    let started = Instant::now();
    let ready = app.get("/api/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(2500));
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "unreachable");

    let started = Instant::now();
    let chats = app.get_auth("/api/chats", &token).await;
    assert_eq!(chats.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a request took {:?}",
        started.elapsed()
    );
    let error: Value = chats.json().await.unwrap();
    assert_eq!(error["code"], "DATABASE_UNAVAILABLE");

    let mut widget = SioClient::connect(&app.base_url, None).await.unwrap();
    let started = Instant::now();
    widget
        .emit(
            "user-message",
            &json!({ "sessionId": "outage-session-1", "message": "anyone?" }),
        )
        .await
        .unwrap();
    let error = widget.next_named("chat-error").await.unwrap();
    assert_eq!(error["code"], "DATABASE_UNAVAILABLE");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an event took {:?}",
        started.elapsed()
    );

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/api/health").await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the database never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.get("/api/ready").await.status(), StatusCode::OK);
    widget
        .emit(
            "user-message",
            &json!({ "sessionId": "outage-session-1", "message": "back?" }),
        )
        .await
        .unwrap();
    widget.next_named("message-received").await.unwrap();
    assert_eq!(
        app.get_auth("/api/chats", &token).await.status(),
        StatusCode::OK
    );
}
