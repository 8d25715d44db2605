//! SeaORM entities of Switchboard. Each module is one table; the schema itself is
//! created by the `migration` crate.

pub mod ai_config;
pub mod assistant_message;
pub mod chat_message;
pub mod chat_session;
pub mod conversation;
pub mod refresh_token;
pub mod resume_session;
pub mod setting;
pub mod user;
