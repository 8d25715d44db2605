//! Runs the official socket.io-client tests in `tests/js/` with Node's test
//! runner, each file against a freshly started server (and mock AI provider).
//!
//! A test file can ask for server flags on a first-lines comment:
//! `// switchboard-args: --livechat-legacy-broadcast true`.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::*;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

fn ensure_node_modules(dir: &Path) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "Node.js is required for the socket.io-client compatibility tests (node >= 20 on PATH)"
    );
    if dir.join("node_modules/socket.io-client").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("npm is required to install the JS test dependencies");
    assert!(status.success(), "`npm ci` in tests/js failed");
}

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
    let file = file.to_owned();
    let base_url = app.base_url.clone();
    let mock_url = app.mock.base_url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            // A hung test fails after a minute instead of hanging `cargo test`, and
            // sockets a failed test left open do not keep Node alive.
            .args([
                "--test",
                "--test-reporter=spec",
                "--test-timeout=60000",
                "--test-force-exit",
            ])
            .arg(&file)
            .current_dir(js_dir())
            .env("SWITCHBOARD_URL", base_url)
            .env("MOCK_AI_URL", mock_url)
            .env("ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("JWT_SECRET", JWT_SECRET)
            .output()
            .expect("node runs")
    })
    .await
    .expect("node finished");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    if output.status.success() {
        Ok(())
    } else {
        Err(report)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_socket_io_client_compatibility() {
    let dir = js_dir();
    ensure_node_modules(&dir);
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
