//! Refresh-token families (reuse of a rotated token revokes the family),
//! conversation owners, the live-chat AI reply in progress (retried after a
//! crash), and an index for finding interrupted assistant replies.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column a statement.
        let columns = [
            (
                RefreshTokens::Table.into_iden(),
                string_null(RefreshTokens::FamilyId),
            ),
            (
                RefreshTokens::Table.into_iden(),
                timestamp_with_time_zone_null(RefreshTokens::RotatedAt),
            ),
            (
                Conversations::Table.into_iden(),
                string_null(Conversations::Owner),
            ),
            (
                ChatSessions::Table.into_iden(),
                timestamp_with_time_zone_null(ChatSessions::AiReplyPendingAt),
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
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_refresh_tokens_family")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::FamilyId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_conversations_owner")
                    .table(Conversations::Table)
                    .col(Conversations::Owner)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_assistant_messages_status")
                    .table(AssistantMessages::Table)
                    .col(AssistantMessages::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (index, table) in [
            (
                "idx_assistant_messages_status",
                AssistantMessages::Table.into_iden(),
            ),
            ("idx_conversations_owner", Conversations::Table.into_iden()),
            (
                "idx_refresh_tokens_family",
                RefreshTokens::Table.into_iden(),
            ),
        ] {
            manager
                .drop_index(Index::drop().name(index).table(table).to_owned())
                .await?;
        }
        for (table, column) in [
            (
                ChatSessions::Table.into_iden(),
                ChatSessions::AiReplyPendingAt.into_iden(),
            ),
            (
                Conversations::Table.into_iden(),
                Conversations::Owner.into_iden(),
            ),
            (
                RefreshTokens::Table.into_iden(),
                RefreshTokens::RotatedAt.into_iden(),
            ),
            (
                RefreshTokens::Table.into_iden(),
                RefreshTokens::FamilyId.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    FamilyId,
    RotatedAt,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Owner,
}

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    AiReplyPendingAt,
}

#[derive(DeriveIden)]
enum AssistantMessages {
    Table,
    Status,
}
