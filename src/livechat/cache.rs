//! The live-chat state read on every message, kept in memory: whether a
//! session exists and whether it is handed off, and the AI settings.
//!
//! Where the truth lives: the database. The writer ([`super::store`]) updates
//! this cache after each commit, so it is written through; a change made
//! elsewhere (another node) reaches it through [`HotState::forget_session`] /
//! [`HotState::forget_config`], after which the next read goes back to the
//! database. A stale hand-off flag can at worst start an AI answer that the
//! store then drops: the hand-off check that decides whether an AI answer is
//! stored is made in the database, atomically with the insert.
//!
//! Forgetting bumps a generation; the writer remembers what a transaction
//! read only if no forget happened since it began, so a batch in flight
//! cannot put back a fact another node just changed.

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicU64, Ordering},
};

use entity::ai_config;
use quick_cache::sync::Cache;

/// What the cache knows of a session that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionFacts {
    pub handed_off: bool,
    /// The second (Unix time) its `last_active` was last written; 0 when unknown.
    pub active_second: i64,
}

pub struct HotState {
    /// Bounded: an attacker creating sessions evicts old entries, which are
    /// then read from the database again.
    sessions: Cache<Arc<str>, SessionFacts>,
    config: RwLock<Option<Arc<ai_config::Model>>>,
    generation: AtomicU64,
    /// This node's id, recorded as the owner of the AI answers it starts.
    node: Arc<str>,
}

impl HotState {
    pub fn new(capacity: usize, node: &str) -> Self {
        Self {
            sessions: Cache::new(capacity.max(16)),
            config: RwLock::new(None),
            generation: AtomicU64::new(0),
            node: node.into(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Changes with every forget; see [`HotState::remember_sessions`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers what a transaction that began at `generation` learned,
    /// unless something was forgotten since.
    pub fn remember_sessions(
        &self,
        generation: u64,
        facts: impl IntoIterator<Item = (Arc<str>, SessionFacts)>,
    ) {
        for (session, facts) in facts {
            if self.generation() != generation {
                return;
            }
            // Most facts of a batch are what the cache said already.
            if self.sessions.get(&*session) != Some(facts) {
                self.sessions.insert(session, facts);
            }
        }
    }

    pub fn session(&self, session_id: &str) -> Option<SessionFacts> {
        self.sessions.get(session_id)
    }

    /// Another process changed the session: read it from the database next time.
    pub fn forget_session(&self, session_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.sessions.remove(session_id);
    }

    /// Changes elsewhere may have been missed (the backplane was away): every
    /// fact is read from the database again.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.sessions.clear();
        self.forget_config();
    }

    pub fn config(&self) -> Option<Arc<ai_config::Model>> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn remember_config(&self, config: ai_config::Model) -> Arc<ai_config::Model> {
        let config = Arc::new(config);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
        config
    }

    /// Another process changed the AI settings.
    pub fn forget_config(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.config
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}
