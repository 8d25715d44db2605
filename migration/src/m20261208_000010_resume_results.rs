//! Resume-builder answers that finished after their socket went: kept for
//! the session's next socket, on any node.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ResumeResults::Table)
                    .if_not_exists()
                    .col(pk_auto(ResumeResults::Id))
                    .col(string(ResumeResults::ResumeId))
                    .col(string(ResumeResults::Event))
                    .col(json_binary(ResumeResults::Payload))
                    .col(timestamp_with_time_zone(ResumeResults::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_resume_results_resume_id")
                    .table(ResumeResults::Table)
                    .col(ResumeResults::ResumeId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ResumeResults::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ResumeResults {
    Table,
    Id,
    ResumeId,
    Event,
    Payload,
    CreatedAt,
}
