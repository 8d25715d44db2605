//! [`SocketSession`]: what the server keeps for one socket — who it is, its
//! address, its event budget, the queue that runs its events one at a time
//! in the order the client sent them, and the rooms it named lately.

use std::{
    collections::VecDeque,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex, RwLock},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{Room, events::Job};
use crate::{
    auth::Identity,
    config::Config,
    error::{AppError, AppResult},
    telemetry::metrics,
};

/// What the server keeps for one socket: who it is, its event budget and the
/// queue that keeps its events in order.
pub struct SocketSession {
    identity: RwLock<Identity>,
    /// The client's address (behind a trusted proxy, the one it names).
    address: IpAddr,
    budget: DefaultDirectRateLimiter,
    queue: Mutex<Queue>,
    /// The rooms [`EventContext::join_once`] joined, newest last.
    joined: Mutex<Vec<Room>>,
}

/// Rooms [`SocketSession::remember_joined`] keeps; older ones are joined again.
const REMEMBERED_ROOMS: usize = 4;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    running: bool,
}

impl SocketSession {
    pub fn new(config: &Config, identity: Identity, address: IpAddr) -> Self {
        let per_second = NonZeroU32::new(config.socket_events_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.socket_event_burst).unwrap_or(per_second);
        Self {
            identity: RwLock::new(identity),
            address,
            budget: RateLimiter::direct_with_clock(
                Quota::per_second(per_second).allow_burst(burst),
                crate::rate_limit::clock(),
            ),
            queue: Mutex::new(Queue::default()),
            joined: Mutex::new(Vec::new()),
        }
    }

    /// Whether `room` is new to the socket's remembered rooms (it is then remembered).
    pub(super) fn remember_joined(&self, room: &Room) -> bool {
        let mut joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
        if joined.contains(room) {
            return false;
        }
        if joined.len() == REMEMBERED_ROOMS {
            joined.remove(0);
        }
        joined.push(room.clone());
        true
    }

    /// The client's address (behind a trusted proxy, the one it names).
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// Whether the socket named `room` lately (see [`EventContext::join_once`]).
    pub fn remembers(&self, room: &Room) -> bool {
        self.joined
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(room)
    }

    pub fn identity(&self) -> Identity {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_identity(&self, identity: Identity) {
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = identity;
    }

    /// Spends one event of the socket's budget (a token bucket): a flood
    /// answers `RATE_LIMITED` instead of reaching the database.
    pub(super) fn spend_budget(&self) -> AppResult<()> {
        self.budget.check().map_err(|not_until| {
            metrics::refused("socket_events");
            AppError::RateLimited {
                message: "Too many events; slow down".to_owned(),
                retry_after: crate::rate_limit::retry_after(&not_until),
            }
        })
    }

    /// Queues `job`. When nothing was running, returns the future that runs it
    /// and then whatever queued up behind it; the caller must run that future.
    pub(super) fn submit(self: &Arc<Self>, job: Job) -> Option<Job> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.jobs.push_back(job);
        if queue.running {
            return None;
        }
        queue.running = true;
        Some(Box::pin(drain(self.clone())))
    }

    fn next_job(&self) -> Option<Job> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let job = queue.jobs.pop_front();
        queue.running = job.is_some();
        job
    }
}

async fn drain(session: Arc<SocketSession>) {
    while let Some(job) = session.next_job() {
        job.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_joined_again_only_once_forgotten() {
        let config = Config::from_args(Vec::<String>::new()).unwrap();
        let session = SocketSession::new(&config, Identity::Visitor, IpAddr::from([127, 0, 0, 1]));
        let first = Room::singleton("first");
        assert!(session.remember_joined(&first));
        assert!(!session.remember_joined(&first));
        for name in ["a", "b", "c", "d"] {
            assert!(session.remember_joined(&Room::singleton(name)));
        }
        // Newer rooms pushed it out: it is joined again (joins are idempotent).
        assert!(session.remember_joined(&first));
        assert!(!session.remember_joined(&Room::singleton("d")));
    }
}
