//! Several nodes on one database: the nodes alive (each beats a heartbeat),
//! the node that owns work in progress (a streaming assistant reply, a pending
//! live-chat AI answer, a connected resume session) so the others can take
//! over what a dead node left, and the lease that serialises one user's AI
//! calls across nodes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClusterNodes::Table)
                    .if_not_exists()
                    .col(string(ClusterNodes::Id).primary_key())
                    .col(timestamp_with_time_zone(ClusterNodes::StartedAt))
                    .col(timestamp_with_time_zone(ClusterNodes::HeartbeatAt))
                    .to_owned(),
            )
            .await?;
        // SQLite alters one column a statement.
        let columns = [
            (
                AssistantMessages::Table.into_iden(),
                string_null(AssistantMessages::NodeId),
            ),
            (
                ResumeSessions::Table.into_iden(),
                string_null(ResumeSessions::NodeId),
            ),
            (
                ChatSessions::Table.into_iden(),
                string_null(ChatSessions::AiReplyNode),
            ),
            (
                QuotaUsage::Table.into_iden(),
                big_integer_null(QuotaUsage::BusyUntilMs),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column_if_not_exists(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            (
                QuotaUsage::Table.into_iden(),
                QuotaUsage::BusyUntilMs.into_iden(),
            ),
            (
                ChatSessions::Table.into_iden(),
                ChatSessions::AiReplyNode.into_iden(),
            ),
            (
                ResumeSessions::Table.into_iden(),
                ResumeSessions::NodeId.into_iden(),
            ),
            (
                AssistantMessages::Table.into_iden(),
                AssistantMessages::NodeId.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(ClusterNodes::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ClusterNodes {
    Table,
    Id,
    StartedAt,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum AssistantMessages {
    Table,
    NodeId,
}

#[derive(DeriveIden)]
enum ResumeSessions {
    Table,
    NodeId,
}

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    AiReplyNode,
}

#[derive(DeriveIden)]
enum QuotaUsage {
    Table,
    BusyUntilMs,
}
