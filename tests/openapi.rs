//! `/api/openapi.json`: every REST route is in it and every operation in it
//! is served; the README's route tables list the same operations; the docs
//! page is served from the binary. With `service-tests`, schemathesis (PyPI,
//! installed by `.ci/run`) fuzzes the running server against the document.

mod common;

use std::{collections::BTreeSet, path::Path};

use common::*;
use regex::Regex;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Routes that are not part of the JSON API, so not in the document: the
/// Prometheus exposition and the documents themselves.
const OUTSIDE_THE_DOCUMENT: [&str; 4] = [
    "/metrics",
    "/api/openapi.json",
    "/api/docs",
    "/api/asyncapi.json",
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(METHOD, path)` of every operation in the document, path parameters as `{}`.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let parameter = Regex::new(r"\{[^}]+\}").unwrap();
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            let path = parameter.replace_all(path, "{}").into_owned();
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

fn rust_sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

async fn document(app: &TestApp) -> Value {
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn routes_outside_the_document_are_only_the_known_few() {
    // Routes are added to the product with `routes!(handler)`, which documents
    // them; a plain `.route("/path", …)` would serve a path the document does
    // not know. The test kit's mock AI server is not the product.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_sources(&root, &mut files);
    let plain_route =
        Regex::new(r#"\.(?:route|route_service|nest|nest_service)\(\s*"([^"]+)""#).unwrap();
    let mut undocumented = Vec::new();
    let mut outside_seen = 0;
    for file in files
        .iter()
        .filter(|file| !file.starts_with(root.join("testkit")))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for found in plain_route.captures_iter(&text) {
            if OUTSIDE_THE_DOCUMENT.contains(&&found[1]) {
                outside_seen += 1;
            } else {
                undocumented.push(format!("{}: {}", file.display(), &found[1]));
            }
        }
    }
    // The scan sees plain routes: `/metrics` is one.
    assert!(outside_seen >= 1);
    assert!(
        undocumented.is_empty(),
        "routes outside the OpenAPI document: {undocumented:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_served_and_the_readme_lists_the_same() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let operations = documented(&doc);
    assert!(operations.len() >= 35, "{operations:?}");

    // Served: the router answers, not the 404/405 fallbacks.
    for (method, path) in &operations {
        let url = app.url(&path.replace("{}", "1"));
        let response = app
            .http
            .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && body["code"] != "NOT_FOUND",
            "{method} {path} is documented but not routed: {status} {body}"
        );
    }

    // The README's route tables: `METHOD /path`, parameters written `:name`.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mention = Regex::new(r"`(GET|POST|PUT|PATCH|DELETE) (/[^` ]*)").unwrap();
    let parameter = Regex::new(r":[A-Za-z]+").unwrap();
    let in_readme: BTreeSet<(String, String)> = mention
        .captures_iter(&readme)
        .map(|found| {
            (
                found[1].to_owned(),
                parameter.replace_all(&found[2], "{}").into_owned(),
            )
        })
        .filter(|(_, path)| {
            !OUTSIDE_THE_DOCUMENT.contains(&path.as_str()) && !path.starts_with("/__mock")
        })
        .collect();
    let missing_from_document: Vec<_> = in_readme.difference(&operations).collect();
    let missing_from_readme: Vec<_> = operations.difference(&in_readme).collect();
    assert!(
        missing_from_document.is_empty(),
        "in the README, not in the document: {missing_from_document:?}"
    );
    assert!(
        missing_from_readme.is_empty(),
        "in the document, not in the README: {missing_from_readme:?}"
    );
}

#[tokio::test]
async fn the_document_describes_errors_security_and_payloads() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    for field in ["error", "message", "code"] {
        assert!(
            schemas["ErrorBody"]["properties"].get(field).is_some(),
            "{}",
            schemas["ErrorBody"]
        );
    }
    let list = &doc["paths"]["/api/chats"]["get"];
    assert_eq!(list["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        list["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let login = &doc["paths"]["/api/auth/login"]["post"];
    assert_eq!(
        login["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LoginBody"
    );
    assert_eq!(
        login["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LoginResponse"
    );
    let login_body = &schemas["LoginBody"];
    assert_eq!(
        login_body["required"],
        serde_json::json!(["email", "password"])
    );
    let session = &schemas["LiveChatSession"]["properties"];
    for field in ["sessionId", "lastActive", "handedOffToAdmin", "messages"] {
        assert!(
            session.get(field).is_some(),
            "LiveChatSession lacks {field}: {session}"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let app = spawn_app().await;
    let page = app.get("/api/docs/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    // Every script and stylesheet the page names is served here.
    let asset = Regex::new(r#"(?:src|href)="\./?([^"]+)""#).unwrap();
    let assets: Vec<String> = asset
        .captures_iter(&html)
        .map(|found| found[1].to_owned())
        .collect();
    assert!(assets.iter().any(|asset| asset.ends_with(".js")), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads from elsewhere: {html}"
    );
    for asset in assets {
        let response = app.get(&format!("/api/docs/{asset}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let initializer = app
        .get("/api/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/api/openapi.json"), "{initializer}");
}

/// Schemathesis against the running server for a bounded time, as an admin
/// (whose token passes every route's check): no 5xx, no answer whose status,
/// content type or body contradicts the document.
#[cfg(feature = "service-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_its_schema() {
    let app = spawn_app_with(&["--chatkit-workflow-id", "wf_schemathesis"]).await;
    let token = app.admin_token().await;
    let program = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "st".to_owned());
    let workdir = tempfile::tempdir().unwrap();
    let seconds = std::env::var("SCHEMATHESIS_SECONDS").unwrap_or_else(|_| "90".to_owned());
    let run = tokio::process::Command::new(&program)
        .args([
            "--no-color",
            "run",
            &app.url("/api/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-time",
            &seconds,
            "--workers",
            "2",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its cache and reports go to a directory of their own, not the checkout.
        .current_dir(&workdir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(600), run)
        .await
        .expect("schemathesis finishes")
        .unwrap_or_else(|err| panic!("{program} runs (set SCHEMATHESIS to its path): {err}"));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{report}");
    let operations = documented(&document(&app).await).len();
    let tested = Regex::new(r"Tested: (\d+)").unwrap();
    let tested: usize = tested
        .captures(&report)
        .and_then(|found| found[1].parse().ok())
        .unwrap_or_else(|| panic!("no count of tested operations:\n{report}"));
    assert_eq!(
        tested, operations,
        "not every operation was tested:\n{report}"
    );
}
