//! Accounts from the attacker's and the real clients' side: the coach client's
//! exact refresh sequence, reuse of a rotated refresh token, the sign-in
//! budget apart from the general one, which `X-Forwarded-For` counts, and
//! feedback a model returns in a richer shape than asked.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The `refreshToken` cookie a response sets.
fn refresh_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix("refreshToken="))
        .and_then(|value| value.split(';').next())
        .expect("a refreshToken cookie")
        .to_owned()
}

async fn refresh(app: &TestApp, cookie: Option<&str>, body: Option<&str>) -> reqwest::Response {
    let mut request = app.http.post(app.url("/api/auth/refresh"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("refreshToken={cookie}"));
    }
    request = match body {
        Some(token) => request.json(&json!({ "refreshToken": token })),
        None => request.json(&json!({})),
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_coach_clients_refresh_sequence_stays_signed_in() {
    let app = spawn_app().await;
    app.register("coach-client@test.local").await;
    let signed_in = app
        .login("coach-client@test.local", "correct horse battery")
        .await;
    let mut jar = refresh_cookie(&signed_in);
    let body: Value = signed_in.json().await.unwrap();
    // The client keeps the sign-in's refresh token in its body forever.
    let first_body_token = body["refreshToken"].as_str().unwrap().to_owned();
    for round in 1..=3 {
        let refreshed = refresh(&app, Some(&jar), Some(&first_body_token)).await;
        assert_eq!(refreshed.status(), StatusCode::OK, "refresh {round}");
        jar = refresh_cookie(&refreshed);
        let tokens: Value = refreshed.json().await.unwrap();
        let access = tokens["accessToken"].as_str().unwrap();
        assert_eq!(
            app.get_auth("/api/auth/verify", access).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_its_family() {
    let app = spawn_app().await;
    let first: Value = app.register("reuse@test.local").await;
    let stolen = first["refreshToken"].as_str().unwrap();
    let rotated = refresh(&app, None, Some(stolen)).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let newer: Value = rotated.json().await.unwrap();
    let newer = newer["refreshToken"].as_str().unwrap();

    let replayed = refresh(&app, None, Some(stolen)).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    let error: Value = replayed.json().await.unwrap();
    assert_eq!(error["code"], "INVALID_REFRESH_TOKEN");
    assert_eq!(
        refresh(&app, None, Some(newer)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the newer token of the family is revoked too"
    );
    // Another sign-in is another family and unaffected.
    let other = app.login("reuse@test.local", "correct horse battery").await;
    let other: Value = other.json().await.unwrap();
    assert_eq!(
        refresh(&app, None, other["refreshToken"].as_str())
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_stale_body_token_beside_a_valid_cookie_is_not_reuse() {
    let app = spawn_app().await;
    let first: Value = app.register("stale@test.local").await;
    let first_token = first["refreshToken"].as_str().unwrap();
    let rotated = refresh(&app, Some(first_token), None).await;
    let cookie = refresh_cookie(&rotated);
    // The stale first token rides along in the body: ignored, no revocation.
    let again = refresh(&app, Some(&cookie), Some(first_token)).await;
    assert_eq!(again.status(), StatusCode::OK);
    let latest = refresh_cookie(&again);
    assert_eq!(
        refresh(&app, Some(&latest), None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sign_ins_have_their_own_budget_per_address_and_per_account() {
    let app = spawn_app_with(&[
        "--rate-limit-max-requests",
        "1000000",
        "--login-rate-limit-per-ip",
        "6",
        "--login-rate-limit-per-account",
        "3",
    ])
    .await;
    let statuses = async |email: &str, times: usize| {
        let mut statuses = Vec::new();
        for _ in 0..times {
            statuses.push(app.login(email, "wrong password").await.status());
        }
        statuses
    };
    // One account from one address: three attempts, then refused.
    assert_eq!(
        statuses(ADMIN_EMAIL, 4).await,
        [401, 401, 401, 429].map(|s| StatusCode::from_u16(s).unwrap())
    );
    // Other accounts from the same address: the address's budget (6) runs out.
    let others = statuses("someone@test.local", 2).await;
    assert_eq!(others, [StatusCode::UNAUTHORIZED; 2]);
    let refused = app.login("third@test.local", "wrong password").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.headers().get("retry-after").is_none(),
        "no time that would pace an attack"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
    // The general budget is untouched.
    assert_eq!(app.get("/api/conversations").await.status(), StatusCode::OK);
}

/// A client whose connections come from `ip` (any 127.x address is this machine).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap()
}

#[tokio::test]
async fn failures_from_other_addresses_never_lock_the_admin_out() {
    let app = spawn_app_with(&[
        "--rate-limit-max-requests",
        "1000000",
        "--login-rate-limit-per-account",
        "3",
    ])
    .await;
    let attack = |ip: [u8; 4]| {
        let client = client_from(ip);
        let url = app.url("/api/auth/login");
        async move {
            let mut statuses = Vec::new();
            for _ in 0..4 {
                let response = client
                    .post(&url)
                    .json(&json!({ "email": ADMIN_EMAIL, "password": "a guess" }))
                    .send()
                    .await
                    .unwrap();
                assert!(response.headers().get("retry-after").is_none());
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    };
    let attackers = futures::future::join_all([
        attack([127, 0, 0, 2]),
        attack([127, 0, 0, 3]),
        attack([127, 0, 0, 4]),
    ])
    .await;
    for statuses in attackers {
        assert_eq!(statuses, [401, 401, 401, 429], "each address's own budget");
    }
    let admin = client_from([127, 0, 0, 9]);
    for _ in 0..2 {
        let response = admin
            .post(app.url("/api/auth/login"))
            .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "nine failures from elsewhere do not refuse the owner"
        );
    }
}

#[tokio::test]
async fn the_general_budget_does_not_count_sign_ins() {
    let app = spawn_app_with(&["--rate-limit-max-requests", "2"]).await;
    for _ in 0..4 {
        assert_eq!(
            app.login(ADMIN_EMAIL, "wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.get("/api/conversations").await.status(), StatusCode::OK);
}

async fn with_forwarded_for(app: &TestApp, client: &str) -> StatusCode {
    app.http
        .get(app.url("/api/conversations"))
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let behind_proxy = spawn_app_with(&[
        "--rate-limit-max-requests",
        "2",
        "--trusted-proxies",
        "127.0.0.1/32",
    ])
    .await;
    assert_eq!(
        with_forwarded_for(&behind_proxy, "198.51.100.1").await,
        StatusCode::OK
    );
    assert_eq!(
        with_forwarded_for(&behind_proxy, "198.51.100.1").await,
        StatusCode::OK
    );
    assert_eq!(
        with_forwarded_for(&behind_proxy, "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        with_forwarded_for(&behind_proxy, "198.51.100.2").await,
        StatusCode::OK,
        "another client behind the proxy has its own budget"
    );

    // Without trusted proxies the header is the client's word: ignored.
    let exposed = spawn_app_with(&["--rate-limit-max-requests", "2"]).await;
    assert_eq!(
        with_forwarded_for(&exposed, "198.51.100.1").await,
        StatusCode::OK
    );
    assert_eq!(
        with_forwarded_for(&exposed, "198.51.100.2").await,
        StatusCode::OK
    );
    assert_eq!(
        with_forwarded_for(&exposed, "198.51.100.3").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn feedback_with_objects_where_strings_were_described_is_accepted() {
    let app = spawn_app().await;
    let token = app.new_user_token("feedback@test.local").await;
    let session: Value = app
        .http
        .post(app.url("/api/sessions"))
        .bearer_auth(&token)
        .json(&json!({ "featureType": "interview" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["id"].as_i64().unwrap();
    let rich = json!({
        "score": 81,
        "communication": { "strengths": "Clear", "improvements": "Slow down" },
        "content": { "structure": "Good" },
        "bodyLanguage": { "posture": "Upright" },
        "highlights": [{ "moment": "Opening", "why": "Confident" }],
        "actionItems": "Practise the close",
    });
    let transcript = format!("[[mock:reply]]{rich}[[/mock:reply]]");
    app.http
        .patch(app.url(&format!("/api/sessions/{id}")))
        .bearer_auth(&token)
        .json(&json!({ "transcript": transcript }))
        .send()
        .await
        .unwrap();
    let response = app
        .http
        .post(app.url("/api/gemini/generate-feedback"))
        .bearer_auth(&token)
        .json(&json!({ "sessionId": id }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let feedback: Value = response.json().await.unwrap();
    assert_eq!(feedback["score"], 81.0);
    assert_eq!(
        feedback["communication"],
        "strengths: Clear; improvements: Slow down"
    );
    assert_eq!(feedback["bodyLanguage"], "posture: Upright");
    assert_eq!(
        feedback["highlights"],
        json!(["moment: Opening; why: Confident"])
    );
    assert_eq!(feedback["actionItems"], json!(["Practise the close"]));
    // It was asked for as structured output.
    let asked = app.mock.requests().last().unwrap().body.clone();
    assert_eq!(asked["response_format"]["type"], "json_schema");
    assert_eq!(
        asked["response_format"]["json_schema"]["name"],
        "session_feedback"
    );

    // A provider without structured output is asked for a plain JSON object.
    let transcript = format!("[[mock:no-schema]][[mock:reply]]{rich}[[/mock:reply]]");
    app.http
        .patch(app.url(&format!("/api/sessions/{id}")))
        .bearer_auth(&token)
        .json(&json!({ "transcript": transcript }))
        .send()
        .await
        .unwrap();
    let response = app
        .http
        .post(app.url("/api/gemini/generate-feedback"))
        .bearer_auth(&token)
        .json(&json!({ "sessionId": id }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let asked: Vec<Value> = app
        .mock
        .requests()
        .iter()
        .rev()
        .take(2)
        .map(|r| r.body["response_format"]["type"].clone())
        .collect();
    assert_eq!(asked, [json!("json_object"), json!("json_schema")]);
}

async fn refresh_from(
    app: &TestApp,
    origin: &str,
    host: Option<&str>,
    cookie: &str,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/api/auth/refresh"))
        .header("origin", origin)
        .header("cookie", format!("refreshToken={cookie}"));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    request.json(&json!({})).send().await.unwrap()
}

#[tokio::test]
async fn only_sign_in_apps_get_credentials_a_widget_site_never_does() {
    let app = spawn_app_with(&[
        "--cors-origins",
        "https://shop.example.com",
        "--auth-origins",
        "https://app.example.com",
    ])
    .await;
    let preflight = async |origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/auth/refresh"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap()
    };
    let widget_site = preflight("https://shop.example.com").await;
    assert_eq!(
        widget_site.headers()["access-control-allow-origin"],
        "https://shop.example.com",
        "the widget's site may call"
    );
    assert!(
        widget_site
            .headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "but without credentials"
    );
    let sign_in_app = preflight("https://app.example.com").await;
    assert_eq!(
        sign_in_app.headers()["access-control-allow-credentials"],
        "true"
    );
    assert!(
        preflight("http://localhost:5173")
            .await
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "set origins replace the local defaults"
    );

    // A page on the widget's site (say, through an XSS there) posts to the
    // refresh route with the admin's cookie riding along: nothing comes back.
    let signed_in = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut cookie = refresh_cookie(&signed_in);
    let stolen = refresh_from(&app, "https://shop.example.com", None, &cookie).await;
    assert_eq!(stolen.status(), StatusCode::UNAUTHORIZED);
    let body: Value = stolen.json().await.unwrap();
    assert!(body.get("accessToken").is_none());
    let forged_null = refresh_from(&app, "null", None, &cookie).await;
    assert_eq!(forged_null.status(), StatusCode::UNAUTHORIZED);

    // The sign-in app, the server's own pages and clients without a page
    // (no Origin) refresh with the cookie.
    let from_app = refresh_from(&app, "https://app.example.com", None, &cookie).await;
    assert_eq!(
        from_app.status(),
        StatusCode::OK,
        "the cookie was not spent above"
    );
    cookie = refresh_cookie(&from_app);
    let host = app.base_url.trim_start_matches("http://").to_owned();
    let same_origin = refresh_from(&app, &app.base_url, Some(&host), &cookie).await;
    assert_eq!(same_origin.status(), StatusCode::OK);
    cookie = refresh_cookie(&same_origin);
    assert_eq!(
        refresh(&app, Some(&cookie), None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn local_pages_sign_in_with_credentials_by_default() {
    let app = spawn_app().await;
    let signed_in = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let cookie = refresh_cookie(&signed_in);
    let response = refresh_from(&app, "http://localhost:5173", None, &cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_access_tokens_and_admin_sockets_of_that_sign_in() {
    use switchboard::testkit::sio::SioClient;
    let app = spawn_app().await;
    let sign_in = async || -> Value {
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .json()
            .await
            .unwrap()
    };
    let ended = sign_in().await;
    let other = sign_in().await;
    let access = ended["accessToken"].as_str().unwrap();
    assert_eq!(
        app.get_auth("/api/chats", access).await.status(),
        StatusCode::OK
    );
    let mut socket = SioClient::connect(&app.base_url, Some(&json!({ "token": access })))
        .await
        .unwrap();
    let session = "signed-out-admin-0001";
    let opened = app
        .post_json("/api/chats", &json!({ "sessionId": session }))
        .await;
    assert!(opened.status().is_success(), "{}", opened.status());
    let reply = json!({ "sessionId": session, "message": "still here" });
    socket.emit("admin-reply", &reply).await.unwrap();
    let echoed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        socket.next_named("admin-reply"),
    )
    .await
    .expect("the admin's reply comes back");
    assert_eq!(echoed.unwrap()["message"], "still here");

    let logout = app
        .http
        .post(app.url("/api/auth/logout"))
        .json(&json!({ "refreshToken": ended["refreshToken"] }))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success());
    // The admin socket of that sign-in is disconnected at once.
    assert!(
        disconnected(&mut socket).await,
        "the socket of the ended sign-in is disconnected"
    );
    // Its access token no longer opens anything.
    for path in ["/api/chats", "/api/auth/verify"] {
        let refused = app.get_auth(path, access).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{path}");
        let error: Value = refused.json().await.unwrap();
        assert_eq!(error["code"], "TOKEN_REVOKED", "{path}");
    }
    // A new handshake with it is a visitor's.
    let mut visitor = SioClient::connect(&app.base_url, Some(&json!({ "token": access })))
        .await
        .unwrap();
    visitor.emit("admin-reply", &reply).await.unwrap();
    assert_eq!(
        visitor.next_named("chat-error").await.unwrap()["code"],
        "FORBIDDEN"
    );
    // The admin's other sign-in is unaffected.
    let still = other["accessToken"].as_str().unwrap();
    assert_eq!(
        app.get_auth("/api/chats", still).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_reused_refresh_token_ends_the_access_tokens_of_its_sign_in() {
    let app = spawn_app().await;
    let first: Value = app.register("reuse-access@test.local").await;
    let stolen = first["refreshToken"].as_str().unwrap();
    let rotated: Value = refresh(&app, None, Some(stolen))
        .await
        .json()
        .await
        .unwrap();
    let newest = rotated["accessToken"].as_str().unwrap();
    // A refresh leaves the sign-in's access tokens working.
    for access in [first["accessToken"].as_str().unwrap(), newest] {
        assert_eq!(
            app.get_auth("/api/auth/verify", access).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        refresh(&app, None, Some(stolen)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refused = app.get_auth("/api/auth/verify", newest).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "TOKEN_REVOKED"
    );
}

/// Whether the server disconnects `socket` within 10 s.
async fn disconnected(socket: &mut switchboard::testkit::sio::SioClient) -> bool {
    use switchboard::testkit::sio::Incoming;
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Ok(Incoming::Disconnect) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn post_auth(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.http.post(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn code_of(response: reqwest::Response) -> Value {
    response.json::<Value>().await.unwrap()["code"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_account_cannot_sign_in_and_everything_it_had_ends() {
    use switchboard::testkit::sio::SioClient;
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let email = "leaving@test.local";
    let signed_up = app.register(email).await;
    let id = signed_up["user"]["id"].as_i64().unwrap();
    let access = signed_up["accessToken"].as_str().unwrap();
    let refresh_token = signed_up["refreshToken"].as_str().unwrap();
    let mut socket = SioClient::connect(&app.base_url, Some(&json!({ "token": access })))
        .await
        .unwrap();

    let off = post_auth(&app, &format!("/api/users/{id}/deactivate"), Some(&admin)).await;
    assert_eq!(off.status(), StatusCode::OK);
    let off: Value = off.json().await.unwrap();
    assert_eq!(
        (off["email"].as_str(), off["active"].as_bool()),
        (Some(email), Some(false))
    );

    assert!(
        disconnected(&mut socket).await,
        "its socket is disconnected"
    );
    let verify = app.get_auth("/api/auth/verify", access).await;
    assert_eq!(verify.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code_of(verify).await, "TOKEN_REVOKED");
    assert_eq!(
        refresh(&app, None, Some(refresh_token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let right = app.login(email, "correct horse battery").await;
    assert_eq!(right.status(), StatusCode::FORBIDDEN);
    assert_eq!(code_of(right).await, "ACCOUNT_DEACTIVATED");
    let wrong = app.login(email, "not the password").await;
    assert_eq!(
        code_of(wrong).await,
        "INVALID_CREDENTIALS",
        "nothing told without the password"
    );

    let listed: Value = app
        .get_auth("/api/users", &admin)
        .await
        .json()
        .await
        .unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == id)
        .unwrap();
    assert_eq!(row["active"], false);
    assert!(row.get("passwordHash").is_none() && row.get("password_hash").is_none());

    let on = post_auth(&app, &format!("/api/users/{id}/reactivate"), Some(&admin)).await;
    assert_eq!(on.status(), StatusCode::OK);
    assert_eq!(
        app.login(email, "correct horse battery").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn only_admins_manage_accounts_and_never_their_own() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let admin_id = app
        .get_auth("/api/auth/verify", &admin)
        .await
        .json::<Value>()
        .await
        .unwrap()["user"]["id"]
        .as_i64()
        .unwrap();
    let user = app.new_user_token("not-an-admin@test.local").await;
    assert_eq!(
        app.get("/api/users").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_auth("/api/users", &user).await.status(),
        StatusCode::FORBIDDEN
    );
    let path = format!("/api/users/{admin_id}/deactivate");
    assert_eq!(
        post_auth(&app, &path, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_auth(&app, &path, Some(&user)).await.status(),
        StatusCode::FORBIDDEN
    );
    let own = post_auth(&app, &path, Some(&admin)).await;
    assert_eq!(own.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code_of(own).await, "CANNOT_DEACTIVATE_SELF");
    let unknown = post_auth(&app, "/api/users/999999/deactivate", Some(&admin)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(code_of(unknown).await, "USER_NOT_FOUND");
    let garbage = post_auth(&app, "/api/users/abc/deactivate", Some(&admin)).await;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status(),
        StatusCode::OK,
        "the admin still signs in"
    );
}
