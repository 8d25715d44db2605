//! A small Socket.IO v5 client over WebSocket, for tests and the benchmark:
//! the engine.io handshake, namespace connect (with `auth`), events, acks and
//! answering the server's pings. The compatibility tests use the official
//! JavaScript client; this one exists where JavaScript cannot go (a client
//! that stops reading, thousands of sockets from one load generator).

use futures::{SinkExt, StreamExt, stream::SplitSink, stream::SplitStream};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, protocol::WebSocketConfig},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, thiserror::Error)]
pub enum SioError {
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("unexpected packet: {0}")]
    Protocol(String),
}

/// Something the server sent on the default namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Event { name: String, data: Value },
    Ack { id: u64, data: Value },
    Disconnect,
}

/// A connected client.
pub struct SioClient {
    writer: SioWriter,
    reader: SioReader,
}

/// The sending half.
pub struct SioWriter {
    sink: SplitSink<Ws, Message>,
    next_ack: u64,
}

/// The receiving half; answers pings through the writer's channel.
pub struct SioReader {
    stream: SplitStream<Ws>,
    pongs: tokio::sync::mpsc::UnboundedSender<()>,
    pong_requests: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
}

impl SioClient {
    /// Opens `ws://host/socket.io/?EIO=4&transport=websocket` on `base_url`
    /// (`http://host:port`) and joins the default namespace with `auth`.
    pub async fn connect(base_url: &str, auth: Option<&Value>) -> Result<Self, SioError> {
        Self::connect_from(base_url, auth, None).await
    }

    /// [`SioClient::connect`] from the local address `source` (any when
    /// `None`): a load generator spreads its sockets over 127.0.0.x to pass
    /// the ~28k ephemeral ports one address pair has.
    pub async fn connect_from(
        base_url: &str,
        auth: Option<&Value>,
        source: Option<IpAddr>,
    ) -> Result<Self, SioError> {
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            base_url.replacen("http", "ws", 1)
        );
        // Small buffers: the benchmark holds thousands of these.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = match source {
            None => tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?,
            Some(source) => {
                let authority = base_url
                    .split_once("://")
                    .map_or(base_url, |(_, rest)| rest)
                    .trim_end_matches('/');
                let server = tokio::net::lookup_host(authority)
                    .await
                    .map_err(tokio_tungstenite::tungstenite::Error::Io)?
                    .find(|addr| addr.is_ipv4() == source.is_ipv4())
                    .ok_or_else(|| SioError::Protocol(format!("cannot resolve {authority}")))?;
                let socket = if source.is_ipv4() {
                    TcpSocket::new_v4()
                } else {
                    TcpSocket::new_v6()
                }
                .and_then(|socket| {
                    socket.bind(SocketAddr::new(source, 0))?;
                    Ok(socket)
                })
                .map_err(tokio_tungstenite::tungstenite::Error::Io)?;
                let stream = socket
                    .connect(server)
                    .await
                    .map_err(tokio_tungstenite::tungstenite::Error::Io)?;
                stream.set_nodelay(true).ok();
                tokio_tungstenite::client_async_with_config(
                    url,
                    MaybeTlsStream::Plain(stream),
                    Some(config),
                )
                .await?
            }
        };
        let (mut sink, mut stream) = ws.split();
        match next_text(&mut stream).await? {
            open if open.starts_with('0') => {}
            other => return Err(SioError::Protocol(other)),
        }
        let connect = match auth {
            Some(auth) => format!("40{auth}"),
            None => "40".to_owned(),
        };
        sink.send(Message::text(connect)).await?;
        loop {
            let text = next_text(&mut stream).await?;
            if text.starts_with("40") {
                break;
            }
            if text.starts_with("44") {
                return Err(SioError::Protocol(text));
            }
            // The engine pings as soon as the transport opens, often before
            // the namespace answers; unanswered, the server drops the socket.
            if text == "2" {
                sink.send(Message::text("3")).await?;
            }
        }
        let (pongs, pong_requests) = tokio::sync::mpsc::unbounded_channel();
        Ok(Self {
            writer: SioWriter { sink, next_ack: 0 },
            reader: SioReader {
                stream,
                pongs,
                pong_requests: Some(pong_requests),
            },
        })
    }

    pub async fn emit(&mut self, event: &str, data: &Value) -> Result<(), SioError> {
        self.answer_pings().await?;
        self.writer.emit(event, data).await
    }

    /// Emits with an acknowledgement and waits for it (other packets are dropped).
    pub async fn emit_with_ack(&mut self, event: &str, data: &Value) -> Result<Value, SioError> {
        let id = self.writer.emit_with_ack(event, data).await?;
        loop {
            if let Incoming::Ack { id: got, data } = self.next().await?
                && got == id
            {
                return Ok(data);
            }
        }
    }

    /// The next event or ack, answering pings on the way.
    pub async fn next(&mut self) -> Result<Incoming, SioError> {
        loop {
            let incoming = self.reader.next().await;
            self.answer_pings().await?;
            if let Some(incoming) = incoming? {
                return Ok(incoming);
            }
        }
    }

    /// The data of the next event called `name` (others are dropped).
    pub async fn next_named(&mut self, name: &str) -> Result<Value, SioError> {
        loop {
            if let Incoming::Event { name: got, data } = self.next().await?
                && got == name
            {
                return Ok(data);
            }
        }
    }

    async fn answer_pings(&mut self) -> Result<(), SioError> {
        if let Some(requests) = &mut self.reader.pong_requests {
            while requests.try_recv().is_ok() {
                self.writer.sink.send(Message::text("3")).await?;
            }
        }
        Ok(())
    }

    /// The two halves, for a sender and a receiver running apart. The reader
    /// then answers pings by itself through the returned pong channel, which
    /// [`SioWriter::pong`] must be given.
    pub fn split(
        mut self,
    ) -> (
        SioWriter,
        SioReader,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    ) {
        let pongs = self.reader.pong_requests.take().expect("not split yet");
        (self.writer, self.reader, pongs)
    }

    pub async fn close(mut self) {
        let _ = self.writer.sink.send(Message::text("41")).await;
        let _ = self.writer.sink.close().await;
    }
}

impl SioWriter {
    pub async fn emit(&mut self, event: &str, data: &Value) -> Result<(), SioError> {
        let packet = format!("42{}", Value::Array(vec![Value::from(event), data.clone()]));
        self.sink.send(Message::text(packet)).await?;
        Ok(())
    }

    /// Emits with an acknowledgement id; returns the id.
    pub async fn emit_with_ack(&mut self, event: &str, data: &Value) -> Result<u64, SioError> {
        let id = self.next_ack;
        self.next_ack += 1;
        let packet = format!(
            "42{id}{}",
            Value::Array(vec![Value::from(event), data.clone()])
        );
        self.sink.send(Message::text(packet)).await?;
        Ok(id)
    }

    /// Answers a ping the reader saw.
    pub async fn pong(&mut self) -> Result<(), SioError> {
        self.sink.send(Message::text("3")).await?;
        Ok(())
    }
}

impl SioReader {
    /// The next packet; `None` for packets that carry nothing (pings, pongs).
    pub async fn next(&mut self) -> Result<Option<Incoming>, SioError> {
        let text = next_text(&mut self.stream).await?;
        if text == "2" {
            let _ = self.pongs.send(());
            return Ok(None);
        }
        let Some(packet) = text.strip_prefix('4') else {
            return Ok(None);
        };
        parse_packet(packet).map(Some)
    }
}

async fn next_text(stream: &mut SplitStream<Ws>) -> Result<String, SioError> {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Close(_))) | None => return Err(SioError::Closed),
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.into()),
        }
    }
}

/// A Socket.IO packet of the default namespace: `2[…]`, `2<id>[…]`, `3<id>[…]`, `1`.
fn parse_packet(packet: &str) -> Result<Incoming, SioError> {
    let protocol = || SioError::Protocol(packet.to_owned());
    let (kind, rest) = packet.split_at_checked(1).ok_or_else(protocol)?;
    if kind == "1" {
        return Ok(Incoming::Disconnect);
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (id, body) = rest.split_at(digits);
    let mut values: Vec<Value> = serde_json::from_str(body).map_err(|_| protocol())?;
    match kind {
        "2" if !values.is_empty() => {
            let name = values.remove(0).as_str().ok_or_else(protocol)?.to_owned();
            let data = if values.is_empty() {
                Value::Null
            } else {
                values.remove(0)
            };
            Ok(Incoming::Event { name, data })
        }
        "3" => Ok(Incoming::Ack {
            id: id.parse().map_err(|_| protocol())?,
            data: values.into_iter().next().unwrap_or(Value::Null),
        }),
        _ => Err(protocol()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packets_parse() {
        assert_eq!(
            parse_packet(r#"2["hi",{"a":1}]"#).unwrap(),
            Incoming::Event {
                name: "hi".into(),
                data: json!({ "a": 1 })
            }
        );
        assert_eq!(
            parse_packet(r#"312[{"ok":true}]"#).unwrap(),
            Incoming::Ack {
                id: 12,
                data: json!({ "ok": true })
            }
        );
        assert_eq!(parse_packet("1").unwrap(), Incoming::Disconnect);
        assert!(parse_packet("2oops").is_err());
    }
}
