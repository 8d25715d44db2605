//! Runs the official socket.io-client tests in `tests/js/` with Node's test
//! runner, each file against a freshly started server (and mock AI provider).
//!
//! A test file can ask for server flags on a first-lines comment:
//! `// switchboard-args: --livechat-legacy-broadcast true`.

mod common;

use std::path::Path;

use common::*;

fn extra_args(file: &Path) -> Vec<String> {
    let source = std::fs::read_to_string(file).expect("readable test file");
    source
        .lines()
        .take(5)
        .filter_map(|line| line.trim().strip_prefix("// switchboard-args:"))
        .flat_map(|args| args.split_whitespace().map(str::to_owned))
        .collect()
}

async fn run_file(file: &Path) -> Result<(), String> {
    let extra = extra_args(file);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let app = spawn_app_with(&extra).await;
    run_node_test(
        file,
        vec![
            ("SWITCHBOARD_URL", app.base_url.clone()),
            ("MOCK_AI_URL", app.mock.base_url()),
        ],
    )
    .await
}

/// The files run one at a time: each starts a server and Node, and two of
/// them beside each other on two cores stretch the waits some tests allow
/// for what must not arrive.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(name: &str) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let file = js_dir().join(name);
    if let Err(report) = run_file(&file).await {
        panic!("{}:\n{report}", file.display());
    }
}

/// One test per file, so a failure names its file.
macro_rules! js_test_files {
    ($($test:ident => $file:literal,)*) => {
        const FILES: &[&str] = &[$($file),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                run($file).await;
            }
        )*
    };
}

js_test_files! {
    assistant => "assistant.test.mjs",
    assistant_open_scope => "assistant_open_scope.test.mjs",
    assistant_owner => "assistant_owner.test.mjs",
    asyncapi => "asyncapi.test.mjs",
    attacks => "attacks.test.mjs",
    bad_input => "bad_input.test.mjs",
    connect_burst => "connect_burst.test.mjs",
    livechat => "livechat.test.mjs",
    livechat_legacy => "livechat_legacy.test.mjs",
    livechat_order => "livechat_order.test.mjs",
    livechat_reconnect => "livechat_reconnect.test.mjs",
    resume => "resume.test.mjs",
    transport => "transport.test.mjs",
}

#[test]
fn every_js_test_file_has_its_test() {
    let mut files: Vec<String> = std::fs::read_dir(js_dir())
        .expect("tests/js exists")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = FILES.iter().map(|file| (*file).to_owned()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "list each tests/js/*.test.mjs in js_test_files!"
    );
}
