//! The ceiling for the benchmark: a bare socketioxide server, with its
//! defaults, that acknowledges every `echo` event with its payload. It is
//! measured in the same run as Switchboard (`examples/bench.rs`).
//!
//! ```sh
//! cargo run --release --example echo_server -- 127.0.0.1:4000
//! ```

use axum::serve::ListenerExt;
use serde_json::Value;
use socketioxide::{
    SocketIo,
    extract::{AckSender, Data, SocketRef},
};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4000".to_owned());
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |socket: SocketRef| {
        socket.on("echo", async |ack: AckSender, Data(data): Data<Value>| {
            let _ = ack.send(&data);
        });
    });
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("echo server listening addr={}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
