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

use std::sync::{Arc, RwLock};

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
    sessions: Cache<String, SessionFacts>,
    config: RwLock<Option<Arc<ai_config::Model>>>,
}

impl HotState {
    pub fn new(capacity: usize) -> Self {
        Self {
            sessions: Cache::new(capacity.max(16)),
            config: RwLock::new(None),
        }
    }

    pub fn session(&self, session_id: &str) -> Option<SessionFacts> {
        self.sessions.get(session_id)
    }

    pub fn remember_session(&self, session_id: &str, facts: SessionFacts) {
        self.sessions.insert(session_id.to_owned(), facts);
    }

    /// Another process changed the session: read it from the database next time.
    pub fn forget_session(&self, session_id: &str) {
        self.sessions.remove(session_id);
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
        self.config
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}
