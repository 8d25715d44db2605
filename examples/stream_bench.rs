//! Streaming benchmark: relays a mock provider's stream to N listeners through
//! the real server, with and without coalescing, and reports the latency added
//! per chunk and the bytes sent. Latencies are given as ratios to the server's
//! plain `health` round trip measured in the same run.
//!
//! ```sh
//! cargo run --release --example stream_bench -- [listeners] [words] [delay_ms]
//! ```
//!
//! Needs Node.js and `tests/js/node_modules` (`npm ci` in `tests/js`): the
//! listeners are the official socket.io-client.

use std::{path::Path, process::Command};

use serde_json::Value;
use switchboard::{Config, Server, testkit::mock_ai::MockAi};

struct Mode {
    name: &'static str,
    coalesce_ms: &'static str,
}

const MODES: [Mode; 2] = [
    Mode {
        name: "one chunk per delta",
        coalesce_ms: "0",
    },
    Mode {
        name: "coalesced (30 ms)",
        coalesce_ms: "30",
    },
];

async fn measure(
    mode: &Mode,
    listeners: &str,
    words: &str,
    delay_ms: &str,
) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mock = MockAi::start().await.map_err(|e| e.to_string())?;
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let config = Config::from_args([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database-url",
        &database,
        "--openai-base-url",
        &mock.base_url(),
        "--admin-password",
        "bench-password",
        "--stream-coalesce-ms",
        mode.coalesce_ms,
        "--socket-events-per-sec",
        "100000",
        "--socket-event-burst",
        "100000",
        "--ai-anon-requests-per-minute-per-ip",
        "100000",
    ])
    .map_err(|e| e.to_string())?;
    let server = Server::build(config).await.map_err(|e| e.to_string())?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/bench/stream_listeners.mjs");
    let (listeners, words, delay_ms) =
        (listeners.to_owned(), words.to_owned(), delay_ms.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .env("SWITCHBOARD_URL", format!("http://{addr}"))
            .env("LISTENERS", listeners)
            .env("WORDS", words)
            .env("DELAY_MS", delay_ms)
            .output()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("node: {e}"))?;
    let _ = stop.send(());
    let _ = serving.await;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listeners = args.first().map_or("20", String::as_str);
    let words = args.get(1).map_or("300", String::as_str);
    let delay_ms = args.get(2).map_or("2", String::as_str);
    println!("{listeners} listeners, a {words}-word reply, one word every {delay_ms} ms\n");
    let mut results = Vec::new();
    for mode in &MODES {
        let result = measure(mode, listeners, words, delay_ms).await?;
        results.push((mode.name, result));
    }
    // Latency from the mock sending a token to a listener receiving it, over
    // the health round trip: the newest token of a chunk shows the relay's
    // cost, the oldest what coalescing makes a token wait at most.
    println!(
        "{:<22} {:>7} {:>15} {:>15} {:>15} {:>15}",
        "mode", "chunks", "bytes/listener", "newest p50/RTT", "oldest p50/RTT", "oldest p95/RTT"
    );
    let ratio = |result: &Value, key: &str| {
        let rtt = result["healthRttMs"].as_f64().unwrap_or(f64::NAN).max(1e-6);
        result[key].as_f64().unwrap_or(f64::NAN) / rtt
    };
    for (name, result) in &results {
        println!(
            "{:<22} {:>7} {:>15} {:>15.1} {:>15.1} {:>15.1}",
            name,
            result["chunksPerListener"],
            result["bytesPerListener"],
            ratio(result, "newestTokenLatencyMedianMs"),
            ratio(result, "oldestTokenLatencyMedianMs"),
            ratio(result, "oldestTokenLatencyP95Ms"),
        );
    }
    let bytes = |i: usize| {
        results[i].1["bytesPerListener"]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    println!("\ncoalesced / per-delta bytes: {:.3}", bytes(1) / bytes(0));
    for (name, result) in &results {
        println!("{name}: raw {result}");
    }
    Ok(())
}
