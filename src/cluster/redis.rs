//! The Redis backplane: a [`Driver`] for socketioxide-redis on a connection
//! that comes back by itself.
//!
//! The adapter's own driver holds one multiplexed connection and never
//! reconnects, so a Redis restart would cut the nodes apart until they
//! restart. This one runs on redis' `ConnectionManager`, which reconnects
//! (driven by the health probe) and subscribes to every channel again. Push
//! messages (RESP3) are routed by channel to the adapter's streams.
//!
//! While Redis is unreachable, publishing fails at once instead of waiting
//! for reconnect attempts: the hub then delivers to this node's sockets alone.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::{StreamExt, stream::BoxStream};
use redis::{
    AsyncCommands, FromRedisValue, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use super::{ClusterError, Reachability};

/// Connection attempts and answers are short: a probe every second drives
/// reconnection, so nothing needs to wait long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Signals queued for this node before the follower reads them.
const SIGNAL_STREAM_BUFFER: usize = 1024;

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

#[derive(Debug, thiserror::Error)]
pub enum RedisLinkError {
    #[error("Redis is unreachable")]
    Unreachable,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// A shared handle (clones share the connection and the subscriptions).
#[derive(Clone)]
pub struct RedisLink {
    connection: ConnectionManager,
    handlers: Handlers,
    reachability: Reachability,
}

impl RedisLink {
    pub(super) async fn connect(
        url: &str,
        reachability: Reachability,
    ) -> Result<Self, ClusterError> {
        let info = url.into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let handlers = Handlers::default();
        let routes = handlers.clone();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
            .set_automatic_resubscription()
            .set_push_sender(move |push: PushInfo| {
                route(&routes, push);
                Ok::<(), std::convert::Infallible>(())
            });
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            connection,
            handlers,
            reachability,
        })
    }

    pub(super) async fn probe(&self) -> bool {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .is_ok()
    }

    pub(super) async fn publish_signal(
        &self,
        channel: &str,
        payload: String,
    ) -> Result<(), RedisLinkError> {
        self.publish(channel.to_owned(), payload.into_bytes()).await
    }

    pub(super) async fn signal_stream(
        &self,
        channel: &str,
    ) -> Result<BoxStream<'static, String>, RedisLinkError> {
        let messages = self
            .subscribe(channel.to_owned(), SIGNAL_STREAM_BUFFER)
            .await?;
        Ok(messages
            .filter_map(|(_, bytes)| async move { String::from_utf8(bytes).ok() })
            .boxed())
    }
}

/// Hands a pushed message to the stream subscribed to its channel. A full
/// stream loses it (the push sender must not block the connection).
fn route(handlers: &Handlers, push: PushInfo) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(channel), Ok(payload)) = (
        String::from_redis_value(channel),
        Vec::<u8>::from_redis_value(payload),
    ) else {
        return;
    };
    let handlers = handlers.read().unwrap_or_else(|e| e.into_inner());
    if let Some(stream) = handlers.get(&channel)
        && stream.try_send((channel, payload)).is_err()
    {
        crate::warn_limited!("a Redis message was dropped: its reader is behind");
    }
}

impl Driver for RedisLink {
    type Error = RedisLinkError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        if !self.reachability.is_up() {
            return Err(RedisLinkError::Unreachable);
        }
        self.connection
            .clone()
            .publish::<_, _, redis::Value>(chan, val)
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (sender, receiver) = mpsc::channel(size.max(1));
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(chan.clone(), sender);
        self.connection.clone().subscribe(chan).await?;
        Ok(MessageStream::new(receiver))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&chan);
        self.connection.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        if !self.reachability.is_up() {
            return Err(RedisLinkError::Unreachable);
        }
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(count)
    }
}
