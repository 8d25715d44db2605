//! The `ChatModel` seam against the mock OpenAI-compatible server: streaming,
//! usage, retries, timeouts, broken streams, cancellation, and the demo provider.

use std::time::Duration;

use futures::StreamExt;
use switchboard::{
    Config,
    ai::{
        AiError, ChatMessage, ChatModel, ChatRequest, DemoModel, OpenAiCompatibleModel,
        OutputFormat, ProviderName, Providers, Role, StreamItem,
    },
    testkit::mock_ai::MockAi,
};

fn config(extra: &[&str]) -> Config {
    let mut args = vec!["--ai-timeout-secs", "2", "--ai-max-retries", "2"];
    args.extend_from_slice(extra);
    Config::from_args(args).unwrap()
}

fn model(mock: &MockAi, config: &Config) -> OpenAiCompatibleModel {
    OpenAiCompatibleModel::new(
        ProviderName::Openai,
        &mock.base_url(),
        "test-key",
        "mock-model",
        config,
    )
    .unwrap()
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::new(Role::System, "You are terse."),
        ChatMessage::new(Role::User, text),
    ])
}

#[tokio::test]
async fn streams_deltas_then_reported_usage() {
    let mock = MockAi::start().await.unwrap();
    let model = model(&mock, &config(&[]));
    let mut stream = model.stream(ask("hello there")).await.unwrap();
    let mut deltas = Vec::new();
    let mut usage = None;
    while let Some(item) = stream.next().await {
        match item.unwrap() {
            StreamItem::Delta(delta) => deltas.push(delta),
            StreamItem::Usage(reported) => usage = Some(reported),
        }
    }
    assert!(deltas.len() > 1, "one word a chunk");
    assert_eq!(deltas.concat(), "Mock reply: hello there");
    let usage = usage.expect("usage reported");
    assert!(usage.reported && usage.completion_tokens > 0 && usage.prompt_tokens > 0);

    let request = &mock.requests()[0];
    assert_eq!(request.headers["authorization"], "Bearer test-key");
    assert_eq!(request.body["model"], "mock-model");
    assert_eq!(request.body["stream"], true);
    assert_eq!(request.body["messages"][0]["role"], "system");
    assert_eq!(request.body["messages"][1]["content"], "hello there");
}

#[tokio::test]
async fn complete_collects_and_json_output_asks_for_a_json_object() {
    let mock = MockAi::start().await.unwrap();
    let model = model(&mock, &config(&[]));
    let mut request = ask(r#"[[mock:reply]]{"ok":true}[[/mock:reply]]"#);
    request.output = OutputFormat::JsonObject;
    request.model = Some("other-model".into());
    let completion = model.complete(request).await.unwrap();
    assert_eq!(completion.text, r#"{"ok":true}"#);
    let body = &mock.requests()[0].body;
    assert_eq!(body["response_format"]["type"], "json_object");
    assert_eq!(body["model"], "other-model");
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let mock = MockAi::start().await.unwrap();
    let model = model(&mock, &config(&[]));
    let err = model
        .complete(ask("[[mock:status=500]]"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AiError::Upstream { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(mock.stats().requests, 3, "the first try and two retries");
    assert!(
        !err.public_message().contains("mock failure"),
        "upstream text stays in the log"
    );

    let recovered = model
        .complete(ask("[[mock:fail-first=1]] again"))
        .await
        .unwrap();
    assert_eq!(recovered.text, "Mock reply: again");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let mock = MockAi::start().await.unwrap();
    let model = model(&mock, &config(&[]));
    let err = model
        .complete(ask("[[mock:status=401]]"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AiError::Upstream { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(mock.stats().requests, 1);
}

#[tokio::test]
async fn a_slow_provider_times_out() {
    let mock = MockAi::start().await.unwrap();
    let model = model(&mock, &config(&["--ai-timeout-secs", "1"]));
    let started = std::time::Instant::now();
    let err = model
        .complete(ask("[[mock:first-byte-delay=3000]]"))
        .await
        .unwrap_err();
    assert!(matches!(err, AiError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A stream that stalls after its first chunk fails on the read timeout.
    let err = model
        .complete(ask("[[mock:hang]] a b c"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AiError::Timeout | AiError::Stream(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_stream_cut_mid_way_is_an_error_after_the_received_deltas() {
    let mock = MockAi::start().await.unwrap();
    let model = model(&mock, &config(&[]));
    let mut stream = model
        .stream(ask("[[mock:cut=3]] one two three four five"))
        .await
        .unwrap();
    let mut text = String::new();
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(StreamItem::Delta(delta)) => text.push_str(&delta),
            Ok(StreamItem::Usage(_)) => {}
            Err(err) => failure = Some(err),
        }
    }
    assert_eq!(text, "Mock reply: one ");
    assert!(matches!(failure, Some(AiError::Stream(_))), "{failure:?}");
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_connection() {
    let mock = MockAi::start().await.unwrap();
    let model = model(&mock, &config(&["--ai-timeout-secs", "30"]));
    let mut stream = model
        .stream(ask("[[mock:hang]] never ending"))
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, StreamItem::Delta("Mock ".into()));
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mock.stats().aborted == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "mock never saw the connection close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = config(&["--ai-max-retries", "0"]);
    let model = OpenAiCompatibleModel::new(
        ProviderName::Openai,
        &format!("http://127.0.0.1:{port}/v1"),
        "k",
        "m",
        &config,
    )
    .unwrap();
    let err = model.complete(ask("hi")).await.unwrap_err();
    assert!(matches!(err, AiError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn demo_provider_says_it_is_a_demo() {
    let demo = DemoModel::new(0);
    let completion = demo.complete(ask("hi")).await.unwrap();
    assert!(completion.text.starts_with("[Demo mode]"));
    assert!(completion.text.contains("No AI provider key is configured"));
    let mut json_request = ask("hi");
    json_request.output = OutputFormat::JsonObject;
    let json: serde_json::Value =
        serde_json::from_str(&demo.complete(json_request).await.unwrap().text).unwrap();
    assert_eq!(json["demo"], true);
}

#[tokio::test]
async fn providers_default_to_the_first_configured_and_fall_back() {
    let none =
        Providers::from_config(&Config::from_args(["--demo-word-delay-ms", "0"]).unwrap()).unwrap();
    assert_eq!(none.default_model().provider(), ProviderName::Demo);
    assert_eq!(
        none.get_or_default(ProviderName::Openrouter).provider(),
        ProviderName::Demo
    );

    let some = Providers::from_config(
        &Config::from_args([
            "--gemini-api-key",
            "g",
            "--openrouter-api-key",
            "o",
            "--ai-model",
            "custom",
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(some.default_model().provider(), ProviderName::Openrouter);
    assert_eq!(some.default_model().default_model(), "custom");
    assert_eq!(
        some.get_or_default(ProviderName::Gemini).provider(),
        ProviderName::Gemini
    );
    assert_eq!(
        some.get_or_default(ProviderName::Openai).provider(),
        ProviderName::Openrouter
    );
}
