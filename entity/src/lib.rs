//! SeaORM entities of Switchboard. Each module is one table; the schema itself is
//! created by the `migration` crate.

pub mod refresh_token;
pub mod setting;
pub mod user;
