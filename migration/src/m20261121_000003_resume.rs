//! Resume-builder state.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ResumeSessions::Table)
                    .if_not_exists()
                    .col(string(ResumeSessions::Id).primary_key())
                    .col(json_binary_null(ResumeSessions::ResumeData))
                    .col(json_binary(ResumeSessions::History))
                    .col(timestamp_with_time_zone(ResumeSessions::UpdatedAt))
                    .col(timestamp_with_time_zone_null(
                        ResumeSessions::DisconnectedAt,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_resume_sessions_disconnected_at")
                    .table(ResumeSessions::Table)
                    .col(ResumeSessions::DisconnectedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ResumeSessions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ResumeSessions {
    Table,
    Id,
    ResumeData,
    History,
    UpdatedAt,
    DisconnectedAt,
}
