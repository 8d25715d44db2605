//! SeaORM entities of Switchboard. Each module is one table; the schema itself is
//! created by the `migration` crate.

pub mod ai_config;
pub mod analytics_event;
pub mod assistant_message;
pub mod chat_message;
pub mod chat_session;
pub mod cluster_node;
pub mod console_presence;
pub mod conversation;
pub mod feedback;
pub mod practice_session;
pub mod quota_usage;
pub mod refresh_token;
pub mod resume_result;
pub mod resume_session;
pub mod setting;
pub mod user;
