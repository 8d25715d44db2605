//! The PostgreSQL backplane: socketioxide-postgres' sqlx driver on a small
//! pool of its own, with a LISTEN stream that outlives outages.
//!
//! The driver's own stream ends at the first error, which would leave the
//! node deaf to the others after a database restart. Here a failed receive
//! waits and tries again; sqlx's listener reconnects and listens again to its
//! channels by itself.

use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use sea_orm::sqlx::{
    self,
    postgres::{PgListener, PgNotification, PgPool, PgPoolOptions},
};
use socketioxide_postgres::drivers::{Driver, sqlx::SqlxDriver};

use super::{ClusterError, Reachability};

/// Two listeners (the adapter's, the signals') hold a connection each; the
/// rest send notifications and large payloads.
const POOL_CONNECTIONS: u32 = 6;

/// A notification waits at most this long for a connection while the
/// database is away, then fails (the hub then delivers locally).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Between attempts to receive while the database is away.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// A shared handle (clones share the pool).
#[derive(Clone)]
pub struct PgLink {
    driver: SqlxDriver,
    pool: PgPool,
    reachability: Reachability,
}

impl PgLink {
    pub(super) async fn connect(
        url: &str,
        reachability: Reachability,
    ) -> Result<Self, ClusterError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        Ok(Self {
            driver: SqlxDriver::new(pool.clone()),
            pool,
            reachability,
        })
    }

    pub(super) async fn probe(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub(super) async fn publish_signal(
        &self,
        channel: &str,
        payload: &str,
    ) -> Result<(), sqlx::Error> {
        self.notify(channel, payload).await
    }

    pub(super) async fn signal_stream(
        &self,
        channel: &str,
    ) -> Result<BoxStream<'static, String>, sqlx::Error> {
        Ok(self
            .listen(&[channel])
            .await?
            .map(|notification| notification.payload().to_owned())
            .boxed())
    }
}

impl Driver for PgLink {
    type Error = sqlx::Error;
    type Notification = PgNotification;
    type NotificationStream = BoxStream<'static, PgNotification>;

    async fn init(&self, table: &str) -> Result<(), Self::Error> {
        self.driver.init(table).await
    }

    async fn listen(&self, channels: &[&str]) -> Result<Self::NotificationStream, Self::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen_all(channels.iter().copied()).await?;
        let reachability = self.reachability.clone();
        Ok(futures::stream::unfold(listener, move |mut listener| {
            let reachability = reachability.clone();
            async move {
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => return Some((notification, listener)),
                        // The connection was lost; the next call reconnects.
                        Ok(None) => {}
                        Err(err) => {
                            if reachability.is_up() {
                                tracing::debug!(%err, "listening on PostgreSQL failed; retrying");
                            }
                            tokio::time::sleep(RETRY_EVERY).await;
                        }
                    }
                }
            }
        })
        .boxed())
    }

    async fn notify(&self, channel: &str, message: &str) -> Result<(), Self::Error> {
        if !self.reachability.is_up() {
            return Err(sqlx::Error::PoolTimedOut);
        }
        self.driver.notify(channel, message).await
    }

    async fn push_attachment(&self, table: &str, attachment: &[u8]) -> Result<i64, Self::Error> {
        self.driver.push_attachment(table, attachment).await
    }

    async fn get_attachment(&self, table: &str, id: i64) -> Result<Vec<u8>, Self::Error> {
        self.driver.get_attachment(table, id).await
    }

    async fn cleanup_attachments(
        &self,
        table: &str,
        interval: Duration,
    ) -> Result<(), Self::Error> {
        self.driver.cleanup_attachments(table, interval).await
    }

    async fn close(&self, channels: &[&str]) -> Result<(), Self::Error> {
        self.driver.close(channels).await
    }
}
