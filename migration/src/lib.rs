//! Schema migrations, applied at start-up (and by `switchboard migrate`).

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_accounts;
mod m20261121_000002_livechat;
mod m20261121_000003_resume;
mod m20261121_000004_assistant;
mod m20261121_000005_coach;
mod m20261202_000006_hardening;
mod m20261203_000007_cluster;
mod m20261207_000008_visitor_presence;
mod m20261208_000009_visitor_sockets;
mod m20261208_000010_resume_results;
mod m20261208_000011_user_deactivation;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_accounts::Migration),
            Box::new(m20261121_000002_livechat::Migration),
            Box::new(m20261121_000003_resume::Migration),
            Box::new(m20261121_000004_assistant::Migration),
            Box::new(m20261121_000005_coach::Migration),
            Box::new(m20261202_000006_hardening::Migration),
            Box::new(m20261203_000007_cluster::Migration),
            Box::new(m20261207_000008_visitor_presence::Migration),
            Box::new(m20261208_000009_visitor_sockets::Migration),
            Box::new(m20261208_000010_resume_results::Migration),
            Box::new(m20261208_000011_user_deactivation::Migration),
        ]
    }
}
