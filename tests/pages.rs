//! The built-in pages in headless Chromium (`tests/js/pages/`, playwright-core
//! driving Debian's `/usr/bin/chromium`), against a fresh server on SQLite,
//! or on PostgreSQL with `TEST_DATABASE_URL`. Needs Chromium: feature
//! `service-tests` (`.ci/run` installs it). Screenshots (of failures, and of
//! the console and the widget) go to `target/screenshots/`.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    let app = spawn_app().await;
    // `PAGES_SCREENSHOT_DIR=tests/js/pages/screenshots` refreshes the README's.
    let screenshots = std::env::var("PAGES_SCREENSHOT_DIR").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"),
        std::path::PathBuf::from,
    );
    let file = js_dir().join("pages/pages.test.mjs");
    let outcome = run_node_test(
        &file,
        vec![
            ("SWITCHBOARD_URL", app.base_url.clone()),
            ("SCREENSHOT_DIR", screenshots.display().to_string()),
        ],
    )
    .await;
    if let Err(report) = outcome {
        panic!(
            "browser tests failed (screenshots in {}):\n{report}",
            screenshots.display()
        );
    }
}
