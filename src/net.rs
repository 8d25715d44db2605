//! Accepting connections, with the limits that keep one client from taking
//! the server from everyone else:
//!
//! - at most `MAX_CONNECTIONS_PER_IP` open connections per client address
//!   (trusted proxies are exempt), and at most `MAX_CONNECTIONS` in all (by
//!   default the open-file limit less a reserve), so that a flood is refused
//!   at once instead of exhausting the file descriptors;
//! - `HEADER_READ_TIMEOUT_SECS` to send a request's headers, which also bounds
//!   how long a kept-alive HTTP connection may sit idle (slowloris);
//! - a write that stays blocked for `SOCKET_STALL_TIMEOUT_SECS` (the peer
//!   stopped reading) fails the connection, so a client that reads nothing
//!   cannot hold buffers forever;
//! - the open-file limit raised to its hard limit at start-up;
//! - once many connections have closed (a thousand, and a quarter of the
//!   most that were open), the memory they held is handed back to the system
//!   instead of staying with the process.
//!
//! Every refusal is logged, rate-limited. Websocket and long-polling clients
//! that go silent are dropped by the engine's heartbeat, and clients that open
//! a transport but never join the namespace after `SOCKET_CONNECT_TIMEOUT_SECS`.

use std::{
    collections::HashMap,
    io,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo, http::Request};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use ipnet::IpNet;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_io_timeout::TimeoutWriter;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::{config::Config, telemetry::metrics, warn_limited};

/// File descriptors kept for the database, log files and the like when the
/// total connection cap is derived from the open-file limit.
const RESERVED_FILES: u64 = 256;

/// The connection limits in force.
#[derive(Debug, Clone)]
pub struct Limits {
    pub per_ip: usize,
    pub total: usize,
    pub header_read_timeout: Duration,
    pub stall_timeout: Duration,
    pub trusted_proxies: Vec<IpNet>,
}

impl Limits {
    /// The configured limits; `open_files` is the process's open-file limit.
    pub fn new(config: &Config, open_files: u64) -> Self {
        let total = match config.max_connections {
            0 => usize::try_from(open_files.saturating_sub(RESERVED_FILES).max(64))
                .unwrap_or(usize::MAX),
            n => n,
        };
        Self {
            per_ip: config.max_connections_per_ip.max(1),
            total,
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs.max(1)),
            stall_timeout: Duration::from_secs(config.socket_stall_timeout_secs.max(1)),
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }
}

/// Raises the soft open-file limit to the hard limit; returns the limit in force.
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(limit, "open-file limit");
            limit
        }
        Err(err) => {
            let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
            tracing::warn!(%err, limit, "cannot raise the open-file limit");
            limit
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then lets open
/// HTTP connections finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
    grace: Duration,
) {
    // Turns handlers into services once; left as handlers, the router would
    // rebuild the Socket.IO layer (and its engine) for every request.
    let router: Router = router.with_state(());
    let tracker = Arc::new(Tracker::default());
    tokio::spawn(give_back_memory(tracker.clone(), stop.clone()));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                accept_failed(err).await;
                continue;
            }
        };
        let Some(slot) = tracker.admit(peer.ip(), &limits) else {
            continue;
        };
        // Without it small replies wait ~40 ms on Nagle's algorithm.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
        let io = TokioIo::new(Connection::new(stream, slot, limits.stall_timeout));
        let service = router
            .clone()
            .map_request(move |request: Request<Incoming>| {
                let mut request = crate::socket::own_request_parts(request);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    // Finishes the request in flight, then closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the grace period");
    }
}

/// How often the open connections are counted to decide whether to hand
/// freed memory back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Connections that must have closed since the last hand-back for another,
/// counted down from the most open at once since then: at least this many,
/// and at least a quarter of that most. A hand-back walks the whole heap and
/// briefly holds up the threads that allocate, so a server that stays
/// about as busy while its clients come and go never pays for it.
const TRIM_AFTER_CLOSED: usize = 1000;
const TRIM_AFTER_SHARE_CLOSED: usize = 4;

/// Hands the memory of closed connections back to the system once many have
/// closed. The allocator keeps what is freed for reuse and returns only the
/// top of its heap; after a wave of disconnects most freed pages sit below
/// live allocations, so without this the process would stay at its peak.
async fn give_back_memory(tracker: Arc<Tracker>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(TRIM_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let open = tracker.total.load(Ordering::Relaxed);
        let peak = tracker.peak.load(Ordering::Relaxed);
        if worth_handing_back(peak, open) {
            tracker.peak.store(open, Ordering::Relaxed);
            // Walks the whole heap, holding the allocator's lock of each
            // part as it goes: off the runtime's threads.
            let started = std::time::Instant::now();
            let _ = tokio::task::spawn_blocking(trim_heap).await;
            tracing::debug!(peak, open, took = ?started.elapsed(), "memory of closed connections handed back");
        }
    }
}

/// Whether enough of the `peak` connections have closed, `open` being left.
fn worth_handing_back(peak: usize, open: usize) -> bool {
    peak.saturating_sub(open) >= TRIM_AFTER_CLOSED.max(peak / TRIM_AFTER_SHARE_CLOSED)
}

/// Returns the allocator's free pages to the system (glibc's `malloc_trim`,
/// which also releases free pages inside the heap, not only at its top).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only reorganises the allocator's own free
        // lists; 0 asks it to keep no extra padding.
        unsafe { libc::malloc_trim(0) };
    }
}

/// Accepting fails when the process is out of file descriptors; wait a little
/// instead of spinning.
async fn accept_failed(err: io::Error) {
    let out_of_files = matches!(err.raw_os_error(), Some(23 | 24));
    if out_of_files {
        warn_limited!(%err, "cannot accept connections: out of file descriptors");
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!(%err, "accept failed");
    }
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Tracker {
    total: AtomicUsize,
    /// The most connections open at once since memory was last handed back.
    peak: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Tracker {
    /// A slot for a connection from `ip`, or `None` (logged) over a limit.
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
        let already_open = self.total.fetch_add(1, Ordering::AcqRel);
        if already_open >= limits.total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            metrics::refused("connections");
            warn_limited!(
                limit = limits.total,
                "connection refused: the server holds its maximum of connections"
            );
            return None;
        }
        let counted = !limits.trusted_proxies.iter().any(|net| net.contains(&ip));
        if counted {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let open = per_ip.entry(ip).or_default();
            if *open >= limits.per_ip {
                drop(per_ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                metrics::refused("connections");
                warn_limited!(%ip, limit = limits.per_ip, "connection refused: this address holds its maximum of connections");
                return None;
            }
            *open += 1;
        }
        self.peak.fetch_max(already_open + 1, Ordering::Relaxed);
        Some(Slot {
            tracker: self.clone(),
            ip: counted.then_some(ip),
        })
    }
}

/// One admitted connection; freed when the connection (or the websocket it
/// was upgraded to) closes.
struct Slot {
    tracker: Arc<Tracker>,
    /// The address counted against its cap (none for trusted proxies).
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.tracker.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut per_ip = self
                .tracker
                .per_ip
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(open) = per_ip.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

/// A client connection: its socket, whose writes fail once blocked for the
/// stall timeout, and its slot.
///
/// Once a write stalls, reads fail too (the waiting reader is woken): the
/// websocket writer only logs its errors, while a failed read closes the
/// engine's session.
struct Connection {
    io: Pin<Box<TimeoutWriter<TcpStream>>>,
    stalled: bool,
    reader: Option<Waker>,
    _slot: Slot,
}

impl Connection {
    fn new(stream: TcpStream, slot: Slot, stall_timeout: Duration) -> Self {
        let mut io = TimeoutWriter::new(stream);
        io.set_timeout(Some(stall_timeout));
        Self {
            io: Box::pin(io),
            stalled: false,
            reader: None,
            _slot: slot,
        }
    }

    /// Notes a write that timed out (logged once, rate-limited) and wakes the reader.
    fn check_stall<T>(&mut self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(err)) = &poll
            && err.kind() == io::ErrorKind::TimedOut
            && !self.stalled
        {
            self.stalled = true;
            warn_limited!("closing a connection whose client stopped reading");
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
        poll
    }
}

fn stalled_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.stalled {
            return Poll::Ready(Err(stalled_error()));
        }
        let poll = self.io.as_mut().poll_read(cx, buf);
        if poll.is_pending()
            && !self
                .reader
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.reader = Some(cx.waker().clone());
        }
        poll
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.stalled {
            return Poll::Ready(Err(stalled_error()));
        }
        let poll = self.io.as_mut().poll_write(cx, buf);
        self.check_stall(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.stalled {
            return Poll::Ready(Err(stalled_error()));
        }
        let poll = self.io.as_mut().poll_write_vectored(cx, bufs);
        self.check_stall(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.stalled {
            return Poll::Ready(Err(stalled_error()));
        }
        let poll = self.io.as_mut().poll_flush(cx);
        self.check_stall(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::worth_handing_back;

    #[test]
    fn memory_goes_back_after_many_close_not_while_clients_come_and_go() {
        // A wave that leaves.
        assert!(worth_handing_back(3_000, 0));
        assert!(worth_handing_back(10_000, 7_500));
        // Too few to be worth a walk over the heap.
        assert!(!worth_handing_back(900, 0));
        assert!(!worth_handing_back(10_000, 7_600));
        // A large server whose clients come and go: its count barely moves.
        assert!(!worth_handing_back(250_000, 248_000));
        assert!(worth_handing_back(250_000, 187_500));
    }
}
