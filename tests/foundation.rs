//! The walking skeleton seen from outside: health, auth, JSON errors, CORS,
//! and the persistence of the signing secret.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::auth::Claims;

#[tokio::test]
async fn health_reports_database_and_ai() {
    let app = spawn_app().await;
    let response = app.get("/api/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "OK");
    assert_eq!(body["database"]["status"], "connected");
    assert_eq!(body["ai"]["provider"], "openai");
    assert_eq!(body["ai"]["demo"], false);
    assert!(body["uptime"].as_f64().is_some());
    assert!(body["version"].as_str().is_some());
    assert!(body["timestamp"].as_str().unwrap().contains('T'));
    assert_eq!(body["adapter"]["kind"], "local");
    assert_eq!(body["adapter"]["status"], "connected");

    let ready = app.get("/api/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "READY");
    assert_eq!(ready["database"], "connected");
}

#[tokio::test]
async fn login_returns_tokens_and_verify_accepts_them() {
    let app = spawn_app().await;
    let response = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Login successful");
    assert_eq!(body["token"], body["accessToken"]);
    assert!(body["refreshToken"].as_str().unwrap().len() >= 32);
    assert_eq!(body["expiresIn"], 900);
    assert_eq!(body["user"]["email"], ADMIN_EMAIL);
    assert_eq!(body["user"]["isAdmin"], true);
    assert!(body["user"].get("passwordHash").is_none());

    let token = body["accessToken"].as_str().unwrap();
    let verified = app.get_auth("/api/auth/verify", token).await;
    assert_eq!(verified.status(), StatusCode::OK);
    let verified: Value = verified.json().await.unwrap();
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["user"]["email"], ADMIN_EMAIL);
}

#[tokio::test]
async fn login_rejects_wrong_credentials_alike() {
    let app = spawn_app().await;
    for (email, password) in [
        (ADMIN_EMAIL, "wrong"),
        ("nobody@test.local", ADMIN_PASSWORD),
    ] {
        let response = app.login(email, password).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "Invalid email or password");
        assert_eq!(body["message"], "Invalid email or password");
        assert_eq!(body["code"], "INVALID_CREDENTIALS");
    }
}

#[tokio::test]
async fn verify_rejects_missing_forged_and_expired_tokens() {
    let app = spawn_app().await;
    let missing = app.get("/api/auth/verify").await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["code"],
        "UNAUTHORIZED"
    );

    let now = chrono::Utc::now().timestamp() as u64;
    let claims = Claims {
        sub: "1".into(),
        email: ADMIN_EMAIL.into(),
        admin: true,
        iat: now,
        exp: now + 600,
        fam: None,
    };
    let forged = sign_claims(&claims, "some-other-secret");
    let response = app.get_auth("/api/auth/verify", &forged).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "INVALID_TOKEN"
    );

    let expired = sign_claims(
        &Claims {
            iat: now - 3600,
            exp: now - 1800,
            ..claims
        },
        JWT_SECRET,
    );
    let response = app.get_auth("/api/auth/verify", &expired).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "TOKEN_EXPIRED"
    );

    let garbage = app.get_auth("/api/auth/verify", "not-a-jwt").await;
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_gets_json_errors_and_the_server_stays_up() {
    let app = spawn_app().await;
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            app.http
                .post(app.url("/api/auth/login"))
                .header("content-type", "application/json")
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
        ),
        (
            app.http.post(app.url("/api/auth/login")).body("email=a"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            app.http
                .post(app.url("/api/auth/login"))
                .json(&json!({ "email": 5 })),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            app.http
                .post(app.url("/api/auth/login"))
                .json(&json!({ "email": "a@b.c", "password": "x".repeat(2 * 1024 * 1024) })),
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            app.http.get(app.url("/api/no-such-route")),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            app.http.get(app.url("/no-such-page")),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            app.http.delete(app.url("/api/auth/login")),
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "status for {code}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code);
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert_eq!(body["error"], body["message"]);
    }
    assert_eq!(app.get("/api/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn cors_allows_local_origins_with_credentials_only() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let allowed = preflight("http://localhost:5173").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let allowed = preflight("http://127.0.0.1:3000").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://127.0.0.1:3000"
    );
    let denied = preflight("http://evil.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let polling = app
        .http
        .get(app.url("/socket.io/?EIO=4&transport=polling"))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(polling.status(), StatusCode::OK);
    assert_eq!(
        polling.headers()["access-control-allow-origin"],
        "http://localhost:8080"
    );
}

#[tokio::test]
async fn configured_cors_origins_replace_the_defaults() {
    let app = spawn_app_with(&["--cors-origins", "https://app.example.com"]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/health"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let local = preflight("http://localhost:5173").await.unwrap();
    assert!(local.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = spawn_app().await;
    let response = app.get("/api/health").await;
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-frame-options"], "SAMEORIGIN");
    assert!(response.headers().contains_key("referrer-policy"));
}

#[tokio::test]
async fn generated_signing_secret_survives_a_restart() {
    let database = TestDatabase::create().await;
    let mock = switchboard::testkit::mock_ai::MockAi::start()
        .await
        .unwrap();
    // No JWT_SECRET: the server generates one and stores it.
    let mut args: Vec<String> = test_args(&database.url, &mock);
    let secret_at = args.iter().position(|a| a == "--jwt-secret").unwrap();
    args.drain(secret_at..secret_at + 2);
    let first = switchboard::Server::build(switchboard::Config::from_args(args.clone()).unwrap())
        .await
        .unwrap();
    let token = first
        .state()
        .tokens
        .issue_access(1, ADMIN_EMAIL, true, "a-sign-in")
        .unwrap();
    drop(first);
    let second = switchboard::Server::build(switchboard::Config::from_args(args).unwrap())
        .await
        .unwrap();
    let claims = second
        .state()
        .tokens
        .verify_access(&token)
        .expect("token still valid");
    assert_eq!(claims.email, ADMIN_EMAIL);
    assert!(
        switchboard::auth::TokenKeys::new(
            JWT_SECRET.as_bytes(),
            std::time::Duration::from_secs(60)
        )
        .verify_access(&token)
        .is_err(),
        "the generated secret is not the test one"
    );
}

#[tokio::test]
async fn without_admin_password_a_random_admin_is_created_once() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let database = TestDatabase::create().await;
    let mock = switchboard::testkit::mock_ai::MockAi::start()
        .await
        .unwrap();
    let mut args: Vec<String> = test_args(&database.url, &mock);
    let at = args.iter().position(|a| a == "--admin-password").unwrap();
    args.drain(at..at + 2);
    let config = switchboard::Config::from_args(args).unwrap();
    let server = switchboard::Server::build(config.clone()).await.unwrap();
    let admins = entity::user::Entity::find()
        .filter(entity::user::Column::IsAdmin.eq(true))
        .all(&server.state().db)
        .await
        .unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0].email, ADMIN_EMAIL);
    assert!(admins[0].password_hash.starts_with("$argon2id$"));
    let hash = admins[0].password_hash.clone();
    drop(server);
    // A restart keeps that admin and its password.
    let server = switchboard::Server::build(config).await.unwrap();
    let admins = entity::user::Entity::find()
        .filter(entity::user::Column::IsAdmin.eq(true))
        .all(&server.state().db)
        .await
        .unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0].password_hash, hash);
}

#[tokio::test]
async fn new_sqlite_files_get_the_configured_page_size() {
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/pages.db?mode=rwc", dir.path().display());
    let mock = switchboard::testkit::mock_ai::MockAi::start()
        .await
        .unwrap();
    let page_size = |server: &switchboard::Server| {
        let db = server.state().db.clone();
        async move {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    "PRAGMA page_size",
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    let mut args = test_args(&url, &mock);
    args.extend(["--sqlite-page-size".to_owned(), "2048".to_owned()]);
    let server = switchboard::Server::build(switchboard::Config::from_args(args).unwrap())
        .await
        .unwrap();
    assert_eq!(page_size(&server).await, 2048);
    drop(server);
    // An existing file keeps its page size; the default is 1 KiB.
    let server =
        switchboard::Server::build(switchboard::Config::from_args(test_args(&url, &mock)).unwrap())
            .await
            .unwrap();
    assert_eq!(page_size(&server).await, 2048);
    drop(server);
    let fresh = format!("sqlite://{}/fresh.db?mode=rwc", dir.path().display());
    let server = switchboard::Server::build(
        switchboard::Config::from_args(test_args(&fresh, &mock)).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(page_size(&server).await, 1024);
    for bad in ["1000", "256", "131072", "x"] {
        let mut args = test_args(&fresh, &mock);
        args.extend(["--sqlite-page-size".to_owned(), bad.to_owned()]);
        assert!(switchboard::Config::from_args(args).is_err(), "{bad}");
    }
}

/// A newcomer copies the README's addresses: they name the port the server
/// listens on by default.
#[test]
fn the_readmes_addresses_use_the_default_port() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let default_port = switchboard::config::Config::from_args::<_, &str>([])
        .unwrap()
        .port
        .to_string();
    let addresses = regex::Regex::new(r"https?://(?:localhost|127\.0\.0\.1):(\d+)").unwrap();
    let ports: Vec<&str> = addresses
        .captures_iter(&readme)
        .map(|found| found.get(1).unwrap().as_str())
        .collect();
    assert!(
        !ports.is_empty(),
        "the README says where to point a browser"
    );
    assert!(
        ports.iter().all(|port| *port == default_port),
        "every local address uses port {default_port}: {ports:?}"
    );
}

#[tokio::test]
async fn health_shows_strangers_the_state_without_the_details() {
    let app = spawn_app_with(&["--trusted-proxies", "127.0.0.1/32"]).await;
    let from_afar = |token: Option<String>| {
        let mut request = app
            .http
            .get(app.url("/api/health"))
            .header("x-forwarded-for", "203.0.113.7");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let stranger: Value = from_afar(None).await.unwrap().json().await.unwrap();
    assert_eq!(stranger["status"], "OK");
    for field in ["timestamp", "version", "uptime", "memory", "database", "ai"] {
        assert!(
            stranger.get(field).is_some(),
            "the contract's {field} stays"
        );
    }
    assert_eq!(stranger["database"], json!({ "status": "connected" }));
    assert_eq!(stranger["adapter"], json!({ "status": "connected" }));
    assert_eq!(stranger["ai"], json!({ "demo": false }));
    assert_eq!(stranger["memory"], json!({}));

    let admin: Value = from_afar(Some(app.admin_token().await))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin["ai"]["provider"], "openai");
    assert!(admin["adapter"]["node"].is_string());
    assert!(admin["database"]["backend"].is_string());
}

/// The status line a websocket handshake from `origin` gets.
async fn websocket_handshake(app: &TestApp, origin: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let origin = origin.map_or(String::new(), |origin| format!("Origin: {origin}\r\n"));
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {}\r\n{origin}\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let read = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn socket_handshakes_from_pages_of_other_origins_are_refused() {
    let app = spawn_app_with(&["--cors-origins", "https://shop.example.com"]).await;
    let polling = |origin: Option<&'static str>| {
        let mut request = app.http.get(app.url("/socket.io/?EIO=4&transport=polling"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let evil = polling(Some("https://evil.example")).await.unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        evil.json::<Value>().await.unwrap()["code"],
        "ORIGIN_NOT_ALLOWED"
    );
    assert_eq!(
        polling(Some("https://shop.example.com"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "the widget's site"
    );
    assert_eq!(
        polling(None).await.unwrap().status(),
        StatusCode::OK,
        "clients without a page (Node) send no Origin"
    );
    assert!(
        websocket_handshake(&app, Some("https://evil.example"))
            .await
            .contains("403")
    );
    assert!(
        websocket_handshake(&app, Some("https://shop.example.com"))
            .await
            .contains("101")
    );
    let own = format!("http://{}", app.addr);
    assert!(
        websocket_handshake(&app, Some(&own)).await.contains("101"),
        "the built-in pages"
    );
    assert!(websocket_handshake(&app, None).await.contains("101"));

    let unchecked = spawn_app_with(&["--socket-check-origin", "false"]).await;
    assert!(
        websocket_handshake(&unchecked, Some("https://evil.example"))
            .await
            .contains("101")
    );
}
