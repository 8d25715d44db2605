//! Runs the official socket.io-client tests in `tests/js/` with Node's test
//! runner, each file against a freshly started server (and mock AI provider).
//!
//! A test file can ask for server flags on a first-lines comment:
//! `// switchboard-args: --livechat-legacy-broadcast true`.

mod common;

use std::path::{Path, PathBuf};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_socket_io_client_compatibility() {
    let dir = js_dir();
    let filter = std::env::var("JS_TEST_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/js exists")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".test.mjs"))
        .filter(|path| path.to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no JS test files matched");
    let mut failed = Vec::new();
    for file in &files {
        if let Err(report) = run_file(file).await {
            failed.push(format!("{}:\n{report}", file.display()));
        }
    }
    assert!(failed.is_empty(), "JS tests failed:\n{}", failed.join("\n"));
}
