//! Accounts and the AI coach API (SPEC §8) as the coach app uses them, owner
//! isolation, quotas under concurrency, rate limits, ChatKit and static files.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

const FEEDBACK: &str = r#"{"score": 82, "communication": "Clear", "content": "Relevant", "bodyLanguage": "Open", "highlights": ["Good pace"], "actionItems": ["Pause more"]}"#;

#[tokio::test]
async fn the_coach_app_journey() {
    let app = spawn_app_with(&["--access-token-ttl-secs", "1"]).await;
    use reqwest::Method as M;

    // Register: 201, tokens, the user with the job title as `role`.
    let registered = app.register("coach@test.local").await;
    assert_eq!(registered["token"], registered["accessToken"]);
    assert_eq!(registered["expiresIn"], 1);
    assert_eq!(registered["user"]["email"], "coach@test.local");
    assert_eq!(registered["user"]["role"], "Engineer");
    assert_eq!(registered["user"]["isAdmin"], false);
    let token = registered["accessToken"].as_str().unwrap().to_owned();
    let refresh = registered["refreshToken"].as_str().unwrap().to_owned();
    let again = app
        .post_json("/api/auth/register", &json!({ "email": "COACH@test.local", "name": "X", "role": "", "password": "another password" }))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    for bad in [
        json!({ "email": "not-an-email", "name": "X", "role": "", "password": "long enough" }),
        json!({ "email": "a@b.co", "name": "", "role": "", "password": "long enough" }),
        json!({ "email": "a@b.co", "name": "X", "role": "", "password": "short" }),
        json!({ "email": "a@b.co" }),
    ] {
        assert_eq!(
            app.post_json("/api/auth/register", &bad).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }

    // Sessions.
    let (status, session) = call(
        &app,
        M::POST,
        "/api/sessions",
        &token,
        Some(json!({ "featureType": "interview", "title": "Mock interview" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = session["id"].as_i64().unwrap();
    assert_eq!(session["completed"], false);
    call(
        &app,
        M::POST,
        "/api/sessions",
        &token,
        Some(json!({ "featureType": "pitch" })),
    )
    .await;
    let transcript = format!("I led the migration. [[mock:reply]]{FEEDBACK}[[/mock:reply]]");
    let (status, patched) = call(
        &app,
        M::PATCH,
        &format!("/api/sessions/{id}"),
        &token,
        Some(json!({ "durationSeconds": 300, "score": 75, "transcript": transcript, "clarity": 8, "pace": 7, "confidence": 6.5, "tone": 9, "completed": true })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["durationSeconds"], 300);
    assert_eq!(patched["completed"], true);

    // Feedback through the model's JSON output, saved on the session.
    let (status, feedback) = call(
        &app,
        M::POST,
        "/api/gemini/generate-feedback",
        &token,
        Some(json!({ "sessionId": id })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{feedback}");
    assert_eq!(feedback["sessionId"], id);
    assert_eq!(feedback["score"], 82.0);
    assert_eq!(feedback["bodyLanguage"], "Open");
    assert_eq!(feedback["actionItems"], json!(["Pause more"]));
    let request = app.mock.requests().last().unwrap().body.clone();
    assert_eq!(request["response_format"]["type"], "json_schema");
    let (_, stored) = call(&app, M::GET, &format!("/api/sessions/{id}"), &token, None).await;
    assert_eq!(stored["feedbackJson"]["score"], 82.0);

    // Listing, stats, adoption.
    let (_, page) = call(
        &app,
        M::GET,
        "/api/sessions?featureType=interview&limit=5&offset=0",
        &token,
        None,
    )
    .await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["limit"], 5);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["sessions"][0]["id"], id);
    let (_, all) = call(&app, M::GET, "/api/sessions", &token, None).await;
    assert_eq!(all["total"], 2);
    // An offset past what the database takes is a bad request, not a failure.
    let (status, refused) = call(
        &app,
        M::GET,
        "/api/sessions?offset=9223372036854775808",
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["code"], "INVALID_REQUEST");
    let (_, stats) = call(&app, M::GET, "/api/analytics/stats", &token, None).await;
    assert_eq!(
        stats,
        json!({ "totalSessions": 2, "completedSessions": 1, "averageScore": 75.0 })
    );
    let (status, event) = call(
        &app,
        M::POST,
        "/api/analytics/events",
        &token,
        Some(json!({ "eventType": "opened", "metadata": { "screen": "home" } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(event["metadata"]["screen"], "home");
    let (_, adoption) = call(&app, M::GET, "/api/analytics/adoption", &token, None).await;
    assert_eq!(adoption, json!({ "interview": 1, "pitch": 1 }));

    // Process and quota.
    let (status, answer) = call(
        &app,
        M::POST,
        "/api/gemini/process",
        &token,
        Some(json!({ "prompt": "How do I open a talk?", "featureType": "pitch", "conversationHistory": [
            { "role": "user", "parts": [{ "text": "Hi" }] }, { "role": "model", "parts": [{ "text": "Hello!" }] }
        ] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["response"], "Mock reply: How do I open a talk?");
    assert!(answer["tokensUsed"].as_i64().unwrap() > 0);
    let sent = app.mock.requests().last().unwrap().body["messages"].clone();
    assert_eq!(sent[1], json!({ "role": "user", "content": "Hi" }));
    assert_eq!(sent[2], json!({ "role": "assistant", "content": "Hello!" }));
    let (_, quota) = call(&app, M::GET, "/api/gemini/quota", &token, None).await;
    assert_eq!(quota["quota"], 50_000);
    assert_eq!(quota["remaining"], answer["remainingQuota"]);
    assert!(quota["tokensUsed"].as_i64().unwrap() >= answer["tokensUsed"].as_i64().unwrap());
    assert!(
        quota["resetAt"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00.000Z")
    );

    // The access token expires (1 s, plus 2 s of leeway, in whole seconds);
    // the body's refresh token gets a new pair once.
    tokio::time::sleep(Duration::from_millis(4200)).await;
    let (status, expired) = call(&app, M::GET, "/api/sessions", &token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired["code"], "TOKEN_EXPIRED");
    let refreshed = app
        .post_json("/api/auth/refresh", &json!({ "refreshToken": refresh }))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert!(refreshed.headers().get_all("set-cookie").iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("refreshToken=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")
    }));
    let refreshed: Value = refreshed.json().await.unwrap();
    let token = refreshed["accessToken"].as_str().unwrap().to_owned();
    let rotated = refreshed["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(refreshed["expiresIn"], 1);
    let (status, _) = call(&app, M::GET, "/api/sessions", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let reused = app
        .post_json("/api/auth/refresh", &json!({ "refreshToken": refresh }))
        .await;
    assert_eq!(
        reused.status(),
        StatusCode::UNAUTHORIZED,
        "a used refresh token is spent"
    );
    // Presenting a rotated token again revokes its family: the newer one too.
    let after_reuse = app
        .post_json("/api/auth/refresh", &json!({ "refreshToken": rotated }))
        .await;
    assert_eq!(after_reuse.status(), StatusCode::UNAUTHORIZED);

    // The cookie works as well as the body.
    let signed_in: Value = app
        .login("coach@test.local", "correct horse battery")
        .await
        .json()
        .await
        .unwrap();
    let fresh = signed_in["refreshToken"].as_str().unwrap();
    let by_cookie = app
        .http
        .post(app.url("/api/auth/refresh"))
        .header("cookie", format!("refreshToken={fresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    let last: Value = by_cookie.json().await.unwrap();
    let last_refresh = last["refreshToken"].as_str().unwrap().to_owned();

    // Logout revokes.
    let out = app
        .post_json("/api/auth/logout", &json!({ "refreshToken": last_refresh }))
        .await;
    assert_eq!(out.status(), StatusCode::OK);
    let after = app
        .post_json(
            "/api/auth/refresh",
            &json!({ "refreshToken": last_refresh }),
        )
        .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.post_json("/api/auth/refresh", &json!({}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn users_see_only_their_own_data() {
    use reqwest::Method as M;
    let app = spawn_app().await;
    let alice = app.new_user_token("alice@test.local").await;
    let bob = app.new_user_token("bob@test.local").await;
    let (_, session) = call(
        &app,
        M::POST,
        "/api/sessions",
        &alice,
        Some(json!({ "featureType": "interview" })),
    )
    .await;
    let id = session["id"].as_i64().unwrap();
    call(
        &app,
        M::PATCH,
        &format!("/api/sessions/{id}"),
        &alice,
        Some(json!({ "score": 90, "completed": true })),
    )
    .await;
    call(
        &app,
        M::POST,
        "/api/analytics/events",
        &alice,
        Some(json!({ "eventType": "x" })),
    )
    .await;
    call(
        &app,
        M::POST,
        "/api/gemini/process",
        &alice,
        Some(json!({ "prompt": "hello" })),
    )
    .await;

    let (status, _) = call(&app, M::GET, &format!("/api/sessions/{id}"), &bob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        M::PATCH,
        &format!("/api/sessions/{id}"),
        &bob,
        Some(json!({ "score": 1 })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        M::POST,
        "/api/gemini/generate-feedback",
        &bob,
        Some(json!({ "sessionId": id })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = call(&app, M::GET, "/api/sessions", &bob, None).await;
    assert_eq!(page["total"], 0);
    let (_, stats) = call(&app, M::GET, "/api/analytics/stats", &bob, None).await;
    assert_eq!(stats["totalSessions"], 0);
    let (_, adoption) = call(&app, M::GET, "/api/analytics/adoption", &bob, None).await;
    assert_eq!(adoption, json!({}));
    let (_, quota) = call(&app, M::GET, "/api/gemini/quota", &bob, None).await;
    assert_eq!(quota["tokensUsed"], 0);
    let (_, still) = call(&app, M::GET, &format!("/api/sessions/{id}"), &alice, None).await;
    assert_eq!(still["score"], 90.0);

    for path in ["/api/sessions", "/api/analytics/stats", "/api/gemini/quota"] {
        assert_eq!(
            app.get(path).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
}

#[tokio::test]
async fn parallel_requests_near_the_quota_overshoot_by_one_request_at_most() {
    let app = spawn_app_with(&["--daily-token-quota", "200"]).await;
    let token = app.new_user_token("quota@test.local").await;
    let requests = (0..20).map(|i| {
        let request = app
            .http
            .post(app.url("/api/gemini/process"))
            .bearer_auth(&token)
            .json(&json!({ "prompt": format!("question {i} [[mock:words=30]]") }));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            (status, retry_after, body)
        }
    });
    let results = futures::future::join_all(requests).await;
    let served: Vec<i64> = results
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::OK)
        .map(|(_, _, body)| body["tokensUsed"].as_i64().unwrap())
        .collect();
    let refused: Vec<_> = results
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(served.len() + refused.len(), 20);
    assert!(!refused.is_empty());
    for (_, retry_after, body) in &refused {
        assert!(retry_after.is_some());
        assert_eq!(body["code"], "RATE_LIMITED");
        assert!(
            body["resetAt"]
                .as_str()
                .unwrap()
                .ends_with("T00:00:00.000Z")
        );
    }
    let one_request = *served.iter().max().unwrap();
    let (_, quota) = call(
        &app,
        reqwest::Method::GET,
        "/api/gemini/quota",
        &token,
        None,
    )
    .await;
    let used = quota["tokensUsed"].as_i64().unwrap();
    assert_eq!(used, served.iter().sum::<i64>());
    assert!(
        used >= 200 && used < 200 + one_request,
        "used {used}, one request {one_request}"
    );
    assert_eq!(quota["remaining"], 0);
}

#[tokio::test]
async fn rate_limits_per_ip_and_per_user() {
    let app = spawn_app_with(&[
        "--rate-limit-max-requests",
        "5",
        "--rate-limit-window-ms",
        "60000",
    ])
    .await;
    for _ in 0..5 {
        assert_ne!(
            app.get("/api/chats").await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let limited = app.get("/api/conversations").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        limited
            .headers()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        limited.json::<Value>().await.unwrap()["code"],
        "RATE_LIMITED"
    );
    assert_eq!(
        app.get("/api/health").await.status(),
        StatusCode::OK,
        "health probes are exempt"
    );

    let app = spawn_app_with(&["--ai-rate-limit-per-minute", "2"]).await;
    let token = app.new_user_token("busy@test.local").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _) = call(
            &app,
            reqwest::Method::POST,
            "/api/gemini/process",
            &token,
            Some(json!({ "prompt": "hi" })),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test]
async fn bad_ai_output_and_bad_input_on_coach_routes() {
    use reqwest::Method as M;
    let app = spawn_app().await;
    let token = app.new_user_token("bad@test.local").await;
    let (_, session) = call(
        &app,
        M::POST,
        "/api/sessions",
        &token,
        Some(json!({ "featureType": "talk" })),
    )
    .await;
    let id = session["id"].as_i64().unwrap();
    call(
        &app,
        M::PATCH,
        &format!("/api/sessions/{id}"),
        &token,
        Some(json!({ "transcript": "[[mock:reply]]{\"score\": 500}[[/mock:reply]]" })),
    )
    .await;
    let (status, error) = call(
        &app,
        M::POST,
        "/api/gemini/generate-feedback",
        &token,
        Some(json!({ "sessionId": id })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "AI_PROVIDER_ERROR");
    let (status, _) = call(
        &app,
        M::POST,
        "/api/gemini/process",
        &token,
        Some(json!({ "prompt": "" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        M::POST,
        "/api/gemini/process",
        &token,
        Some(json!({ "prompt": "x [[mock:status=500]]" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, _) = call(&app, M::POST, "/api/sessions", &token, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        M::PATCH,
        &format!("/api/sessions/{id}"),
        &token,
        Some(json!({ "durationSeconds": -5 })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&app, M::GET, "/api/sessions/abc", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        M::POST,
        "/api/analytics/events",
        &token,
        Some(json!({ "eventType": "x", "metadata": [1] })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&app, M::GET, "/api/sessions?limit=abc", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn chatkit_sessions_against_the_mock() {
    let app = spawn_app_with(&["--chatkit-workflow-id", "wf_test"]).await;
    let first = app.post_json("/api/chatkit/session", &json!({})).await;
    assert_eq!(first.status(), StatusCode::OK);
    let cookie = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("chatkit_session_id=user_"))
        .expect("the user cookie is set");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && cookie.contains("Max-Age=2592000")
    );
    let body: Value = first.json().await.unwrap();
    assert!(
        body["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("ek_mock_")
    );
    assert!(body["expires_at"].as_i64().is_some());
    assert!(body["session_id"].as_str().unwrap().starts_with("cksess_"));

    let request = app.mock.requests().last().unwrap().clone();
    assert_eq!(request.path, "/v1/chatkit/sessions");
    assert_eq!(request.headers["openai-beta"], "chatkit_beta=v1");
    assert_eq!(request.headers["authorization"], "Bearer test-key");
    let user = request.body["user"].as_str().unwrap().to_owned();
    assert_eq!(request.body["workflow"], json!({ "id": "wf_test" }));
    assert_eq!(
        request.body["chatkit_configuration"],
        json!({ "file_upload": { "enabled": true, "max_files": 5, "max_file_size": 10 } }),
        "the original backend's upload settings by default"
    );
    assert_eq!(
        request.body["rate_limits"],
        json!({ "max_requests_per_1_minute": 10 })
    );
    assert_eq!(
        cookie.split(';').next().unwrap(),
        format!("chatkit_session_id={user}")
    );

    // The cookie is reused, not replaced.
    let pair = cookie.split(';').next().unwrap().to_owned();
    let second = app
        .http
        .post(app.url("/api/chatkit/session"))
        .header("cookie", &pair)
        .json(&json!({ "agent_id": "a", "chatkit_configuration": {
            "file_upload": { "enabled": true, "max_files": 500, "max_file_size": 1000 },
            "history": { "enabled": false },
        } }))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert!(second.headers().get("set-cookie").is_none());
    let forwarded = app.mock.requests().last().unwrap().body.clone();
    assert_eq!(forwarded["user"], user);
    assert_eq!(
        forwarded["chatkit_configuration"],
        json!({
            "file_upload": { "enabled": true, "max_files": 5, "max_file_size": 10 },
            "history": { "enabled": false },
        }),
        "the page's other keys pass, its upload limits do not"
    );
    assert_eq!(forwarded["rate_limits"]["max_requests_per_1_minute"], 10);

    let missing = app
        .http
        .post(app.url("/api/chatkit/refresh"))
        .header("cookie", &pair)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"],
        "current_client_secret is required to refresh."
    );
    let refreshed = app
        .http
        .post(app.url("/api/chatkit/refresh"))
        .header("cookie", &pair)
        .json(&json!({ "current_client_secret": "ek_old" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert!(refreshed.json::<Value>().await.unwrap()["client_secret"].is_string());
    let refresh_request = app.mock.requests().last().unwrap().body.clone();
    assert_eq!(refresh_request["user"], user);
    assert_eq!(
        refresh_request["chatkit_configuration"]["file_upload"],
        json!({ "enabled": true, "max_files": 5, "max_file_size": 10 }),
        "a refresh creates the new session with the same configuration"
    );
    assert_eq!(
        refresh_request["rate_limits"],
        json!({ "max_requests_per_1_minute": 10 })
    );

    let unconfigured = spawn_app().await;
    let response = unconfigured
        .post_json("/api/chatkit/session", &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("CHATKIT_WORKFLOW_ID")
    );

    let failing = spawn_app_with(&["--chatkit-workflow-id", "wf_fail"]).await;
    let response = failing.post_json("/api/chatkit/session", &json!({})).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
}

#[tokio::test]
async fn chatkit_session_configuration_follows_the_settings() {
    let app = spawn_app_with(&[
        "--chatkit-workflow-id",
        "wf_test",
        "--chatkit-max-files",
        "2",
        "--chatkit-max-file-size-mb",
        "3",
        "--chatkit-max-requests-per-minute",
        "30",
    ])
    .await;
    let created = app.post_json("/api/chatkit/session", &json!({})).await;
    assert_eq!(created.status(), StatusCode::OK);
    let request = app.mock.requests().last().unwrap().body.clone();
    assert_eq!(
        request["chatkit_configuration"]["file_upload"],
        json!({ "enabled": true, "max_files": 2, "max_file_size": 3 })
    );
    assert_eq!(request["rate_limits"]["max_requests_per_1_minute"], 30);

    let off = spawn_app_with(&[
        "--chatkit-workflow-id",
        "wf_test",
        "--chatkit-enable-uploads",
        "false",
    ])
    .await;
    for (path, body) in [
        (
            "/api/chatkit/session",
            json!({ "chatkit_configuration": { "file_upload": { "enabled": true } } }),
        ),
        (
            "/api/chatkit/refresh",
            json!({ "current_client_secret": "ek_old" }),
        ),
    ] {
        let response = off.post_json(path, &body).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let request = off.mock.requests().last().unwrap().body.clone();
        assert_eq!(
            request["chatkit_configuration"]["file_upload"],
            json!({ "enabled": false }),
            "{path}: switched off, and a page cannot switch it on"
        );
        assert_eq!(request["rate_limits"]["max_requests_per_1_minute"], 10);
    }

    for bad in [
        ["--chatkit-max-files", "0"],
        ["--chatkit-max-file-size-mb", "-1"],
        ["--chatkit-max-requests-per-minute", "0"],
        ["--chatkit-enable-uploads", "maybe"],
    ] {
        assert!(
            switchboard::config::Config::from_args(bad).is_err(),
            "{bad:?} is refused at start-up"
        );
    }
}

#[tokio::test]
async fn a_frontend_build_is_served_with_an_index_fallback() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>app shell</html>").unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log('app')").unwrap();
    let app = spawn_app_with(&["--frontend-dir", dir.path().to_str().unwrap()]).await;
    let file = app.get("/app.js").await;
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.text().await.unwrap(), "console.log('app')");
    for path in ["/", "/dashboard/settings"] {
        let page = app.get(path).await;
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert!(page.text().await.unwrap().contains("app shell"));
    }
    let api = app.get("/api/no-such-route").await;
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert_eq!(api.json::<Value>().await.unwrap()["code"], "NOT_FOUND");
    let post = app.post_json("/somewhere", &json!({})).await;
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_frontend_build_serves_no_dotfiles_and_nothing_outside_it() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "server secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>app shell</html>").unwrap();
    std::fs::write(dir.path().join(".env"), "OPENAI_API_KEY=sk-leak").unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".git/config"), "[remote]").unwrap();
    std::fs::create_dir(dir.path().join(".well-known")).unwrap();
    std::fs::write(dir.path().join(".well-known/security.txt"), "Contact: x").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("leak.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("elsewhere")).unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log('app')").unwrap();
    std::os::unix::fs::symlink(dir.path().join("app.js"), dir.path().join("alias.js")).unwrap();
    let app = spawn_app_with(&["--frontend-dir", dir.path().to_str().unwrap()]).await;
    for path in [
        "/.env",
        "/%2eenv",
        "/.git/config",
        "/assets/../.env",
        "/leak.txt",
        "/elsewhere/secret.txt",
    ] {
        let response = app.get(path).await;
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("sk-leak")
                && !body.contains("[remote]")
                && !body.contains("server secret"),
            "{path} leaked: {body}"
        );
    }
    assert_eq!(app.get("/.env").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/leak.txt").await.status(), StatusCode::NOT_FOUND);
    let kept = app.get("/.well-known/security.txt").await;
    assert_eq!(kept.text().await.unwrap(), "Contact: x");
    let alias = app.get("/alias.js").await;
    assert_eq!(
        alias.text().await.unwrap(),
        "console.log('app')",
        "a link inside the build is fine"
    );
}
