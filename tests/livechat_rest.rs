//! Live-chat REST routes (SPEC §4): auth, shapes, ordering, `?after=`, the
//! session list with only each session's newest message, and AI settings.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::livechat::{
    ai,
    domain::{MessageText, SessionId, Visitor},
    service,
};

fn sid(raw: &str) -> SessionId {
    SessionId::parse(raw, 8).unwrap()
}

async fn seed(app: &TestApp, session_id: &str, texts: &[&str]) -> Vec<i32> {
    service::ensure_session(&app.state, &sid(session_id), Visitor::default())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for text in texts {
        let (row, _) = service::record_user_message(
            &app.state,
            &sid(session_id),
            MessageText::parse(text, 100).unwrap(),
            Visitor::default,
        )
        .await
        .unwrap();
        ids.push(row.id);
    }
    ids
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn admin_routes_need_an_admin_token() {
    let app = spawn_app().await;
    seed(&app, "session-auth", &["hi"]).await;
    let user = service_user_token(&app).await;
    let routes: Vec<(reqwest::Method, &str, Option<Value>)> = vec![
        (reqwest::Method::GET, "/api/chats", None),
        (reqwest::Method::GET, "/api/chats/session-auth", None),
        (
            reqwest::Method::POST,
            "/api/chats/session-auth/release",
            None,
        ),
        (
            reqwest::Method::POST,
            "/api/chats/session-auth/takeover",
            None,
        ),
        (reqwest::Method::PATCH, "/api/messages/1", None),
        (reqwest::Method::GET, "/api/ai/config", None),
        (
            reqwest::Method::PUT,
            "/api/ai/config",
            Some(json!({ "isEnabled": false })),
        ),
        (
            reqwest::Method::POST,
            "/api/ai/toggle",
            Some(json!({ "isEnabled": false })),
        ),
        (
            reqwest::Method::POST,
            "/api/ai/test",
            Some(json!({ "message": "hi" })),
        ),
    ];
    for (method, path, body) in routes {
        let request = |token: Option<&str>| {
            let mut request = app.http.request(method.clone(), app.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            request
        };
        let (status, error) = send(request(None)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        assert_eq!(error["code"], "UNAUTHORIZED");
        let (status, _) = send(request(Some("garbage"))).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a bad token"
        );
        let (status, error) = send(request(Some(&user))).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} as a non-admin"
        );
        assert_eq!(error["code"], "FORBIDDEN");
    }
    // Nothing changed.
    let config = ai::ai_settings(&app.state).await.unwrap();
    assert!(config.is_enabled);
}

/// A signed-in user who is not an admin.
async fn service_user_token(app: &TestApp) -> String {
    let user = switchboard::auth::create_user(
        &app.state.db,
        "user@test.local",
        "User",
        "Tester",
        "not a real hash".into(),
        false,
    )
    .await
    .unwrap();
    app.state
        .tokens
        .issue_access(user.id, &user.email, false, "a-sign-in")
        .unwrap()
}

#[tokio::test]
async fn messages_are_oldest_first_and_after_returns_newer_ones() {
    let app = spawn_app().await;
    let ids = seed(&app, "session-order", &["one", "two", "three"]).await;
    let (status, body) = send(app.http.get(app.url("/api/messages/session-order"))).await;
    assert_eq!(status, StatusCode::OK);
    let texts: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
    let row = &body[0];
    assert_eq!(row["sessionId"], "session-order");
    assert_eq!(row["senderType"], "user");
    assert_eq!(row["isRead"], false);
    assert!(row["timestamp"].as_str().unwrap().ends_with('Z'));

    let (_, newer) = send(
        app.http
            .get(app.url(&format!("/api/messages/session-order?after={}", ids[0]))),
    )
    .await;
    let newer: Vec<i64> = newer
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(newer, [i64::from(ids[1]), i64::from(ids[2])]);

    let (status, error) = send(
        app.http
            .get(app.url("/api/messages/session-order?after=abc")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "INVALID_REQUEST");
    let (_, unknown) = send(app.http.get(app.url("/api/messages/no-such-session"))).await;
    assert_eq!(unknown, json!([]));
}

#[tokio::test]
async fn chat_list_is_newest_first_with_only_the_newest_message() {
    let app = spawn_app().await;
    seed(&app, "session-old", &["old 1", "old 2"]).await;
    seed(&app, "session-new", &["new 1", "new 2", "new 3"]).await;
    service::ensure_session(
        &app.state,
        &sid("session-empty-but-newest"),
        Visitor::default(),
    )
    .await
    .unwrap();
    let token = app.admin_token().await;
    let (status, body) = send(app.http.get(app.url("/api/chats")).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let sessions = body.as_array().unwrap();
    let order: Vec<&str> = sessions
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["session-empty-but-newest", "session-new", "session-old"]
    );
    let keys: Vec<&str> = {
        let mut keys: Vec<&str> = sessions[1]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    };
    assert_eq!(
        keys,
        [
            "createdAt",
            "handedOffToAdmin",
            "id",
            "ipAddress",
            "lastActive",
            "messages",
            "sessionId",
            "unreadCount",
            "userAgent"
        ]
    );
    let unread: Vec<i64> = sessions
        .iter()
        .map(|s| s["unreadCount"].as_i64().unwrap())
        .collect();
    assert_eq!(unread, [0, 3, 2]);
    assert_eq!(sessions[0]["messages"], json!([]));
    assert_eq!(sessions[1]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(sessions[1]["messages"][0]["message"], "new 3");
    assert_eq!(sessions[2]["messages"][0]["message"], "old 2");

    let (status, one) = send(
        app.http
            .get(app.url("/api/chats/session-new"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["messages"].as_array().unwrap().len(), 3);
    assert!(
        one.get("unreadCount").is_none(),
        "only the list counts: {one}"
    );
    let first = one["messages"][0]["id"].as_i64().unwrap();
    let (status, _) = send(
        app.http
            .patch(app.url(&format!("/api/messages/{first}")))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = send(app.http.get(app.url("/api/chats")).bearer_auth(&token)).await;
    assert_eq!(listed[1]["unreadCount"], 2);
    let (status, missing) =
        send(app.http.get(app.url("/api/chats/nope")).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["code"], "SESSION_NOT_FOUND");
}

#[tokio::test]
async fn creating_a_session_is_idempotent_and_validated() {
    let app = spawn_app().await;
    let body = json!({ "sessionId": "session-created", "ipAddress": "203.0.113.9", "userAgent": "Widget/1.0" });
    let (status, first) = send(app.http.post(app.url("/api/chats")).json(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["sessionId"], "session-created");
    assert_eq!(
        first["ipAddress"], "127.0.0.1",
        "the address the server saw, not the one the client claims"
    );
    assert_eq!(first["userAgent"], "Widget/1.0");
    assert_eq!(first["handedOffToAdmin"], false);
    assert_eq!(first["messages"], json!([]));
    let (_, second) = send(app.http.post(app.url("/api/chats")).json(&body)).await;
    assert_eq!(second["id"], first["id"]);

    for bad in [
        json!({}),
        json!({ "sessionId": "" }),
        json!({ "sessionId": "a b" }),
        json!({ "sessionId": 7 }),
    ] {
        let (status, error) = send(app.http.post(app.url("/api/chats")).json(&bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(error["code"].as_str().is_some());
    }
}

#[tokio::test]
async fn marking_read_and_releasing() {
    let app = spawn_app().await;
    let ids = seed(&app, "session-read", &["unread"]).await;
    let token = app.admin_token().await;
    let (status, row) = send(
        app.http
            .patch(app.url(&format!("/api/messages/{}", ids[0])))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(row["isRead"], true);
    let (status, error) = send(
        app.http
            .patch(app.url("/api/messages/999999"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], "MESSAGE_NOT_FOUND");
    let (status, _) = send(
        app.http
            .patch(app.url("/api/messages/abc"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    service::hand_off(&app.state, &sid("session-read"))
        .await
        .unwrap();
    let (status, session) = send(
        app.http
            .post(app.url("/api/chats/session-read/release"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["handedOffToAdmin"], false);
    let (status, _) = send(
        app.http
            .post(app.url("/api/chats/nope/release"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Taken over without a reply: handed off, and no AI answer follows.
    let (status, session) = send(
        app.http
            .post(app.url("/api/chats/session-read/takeover"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["handedOffToAdmin"], true);
    let (_, follow_up) = service::record_user_message(
        &app.state,
        &sid("session-read"),
        MessageText::parse("anyone?", 100).unwrap(),
        Visitor::default,
    )
    .await
    .unwrap();
    assert!(
        matches!(follow_up, service::FollowUp::None),
        "{follow_up:?}"
    );
}

#[tokio::test]
async fn ai_settings_read_change_toggle_and_test() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, config) = send(app.http.get(app.url("/api/ai/config")).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK);
    for key in [
        "isEnabled",
        "provider",
        "model",
        "systemPrompt",
        "temperature",
        "maxTokens",
        "updatedAt",
        "effectiveProvider",
    ] {
        assert!(config.get(key).is_some(), "{key}");
    }
    assert_eq!(config["isEnabled"], true);
    assert_eq!(config["effectiveProvider"], "openai");

    // The settings pages only offer openrouter; without its key the default answers.
    let (status, changed) = send(
        app.http
            .put(app.url("/api/ai/config"))
            .bearer_auth(&token)
            .json(&json!({ "provider": "openrouter", "model": "meta/llama", "temperature": 0.2, "maxTokens": 50, "systemPrompt": "Be brief." })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["provider"], "openrouter");
    assert_eq!(changed["effectiveProvider"], "openai");
    assert_eq!(changed["model"], "meta/llama");
    assert_eq!(changed["systemPrompt"], "Be brief.");
    assert!((changed["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert_eq!(changed["maxTokens"], 50);

    // Consoles PUT back what they read.
    let (status, _) = send(
        app.http
            .put(app.url("/api/ai/config"))
            .bearer_auth(&token)
            .json(&changed),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    for bad in [
        json!({ "provider": "skynet" }),
        json!({ "temperature": 5 }),
        json!({ "maxTokens": 0 }),
        json!({ "isEnabled": "yes" }),
    ] {
        let (status, error) = send(
            app.http
                .put(app.url("/api/ai/config"))
                .bearer_auth(&token)
                .json(&bad),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
    }

    let (status, toggled) = send(
        app.http
            .post(app.url("/api/ai/toggle"))
            .bearer_auth(&token)
            .json(&json!({ "isEnabled": false })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(toggled["isEnabled"], false);

    let (status, answer) = send(
        app.http
            .post(app.url("/api/ai/test"))
            .bearer_auth(&token)
            .json(&json!({ "message": "ping" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"], "Mock reply: ping");
    let sent = app.mock.requests().last().unwrap().body.clone();
    assert_eq!(sent["messages"][0]["content"], "Be brief.");
    assert_eq!(
        sent["model"], "gpt-4o-mini",
        "the fallback provider uses its own model"
    );

    let (status, error) = send(
        app.http
            .post(app.url("/api/ai/test"))
            .bearer_auth(&token)
            .json(&json!({ "message": "[[mock:status=503]]" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "AI_PROVIDER_ERROR");
}

#[tokio::test]
async fn a_database_that_is_gone_is_a_clean_503() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.state.db.close_by_ref().await.unwrap();
    let (status, error) = send(app.http.get(app.url("/api/chats")).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["code"], "DATABASE_UNAVAILABLE");
    assert_eq!(
        error["message"],
        "The database is unavailable; try again shortly"
    );
    let (status, health) = send(app.http.get(app.url("/api/health"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["status"], "DEGRADED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_cannot_choose_the_address_the_console_shows() {
    let app = spawn_app().await;
    let mut visitor = switchboard::testkit::sio::SioClient::connect(&app.base_url, None)
        .await
        .unwrap();
    let session = "claims-another-address";
    visitor
        .emit(
            "user-connected",
            &json!({ "sessionId": session, "ipAddress": "198.51.100.66", "userAgent": "Widget/2" }),
        )
        .await
        .unwrap();
    // Events of one socket run in order: once this is stored, so is the session.
    visitor
        .emit(
            "user-message",
            &json!({ "sessionId": session, "message": "hi" }),
        )
        .await
        .unwrap();
    visitor.next_named("message-received").await.unwrap();
    let token = app.admin_token().await;
    let (status, chat) = send(
        app.http
            .get(app.url(&format!("/api/chats/{session}")))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chat["ipAddress"], "127.0.0.1");
    assert_eq!(chat["userAgent"], "Widget/2");
}
