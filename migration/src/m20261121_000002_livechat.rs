//! Live chat: sessions, messages, and the AI settings row.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChatSessions::Table)
                    .if_not_exists()
                    .col(pk_auto(ChatSessions::Id))
                    .col(string_uniq(ChatSessions::SessionId))
                    .col(string_null(ChatSessions::IpAddress))
                    .col(text_null(ChatSessions::UserAgent))
                    .col(timestamp_with_time_zone(ChatSessions::CreatedAt))
                    .col(timestamp_with_time_zone(ChatSessions::LastActive))
                    .col(boolean(ChatSessions::HandedOffToAdmin).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_sessions_last_active")
                    .table(ChatSessions::Table)
                    .col(ChatSessions::LastActive)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChatMessages::Table)
                    .if_not_exists()
                    .col(pk_auto(ChatMessages::Id))
                    .col(string(ChatMessages::SessionId))
                    .col(text(ChatMessages::Message))
                    .col(string(ChatMessages::SenderType))
                    .col(timestamp_with_time_zone(ChatMessages::Timestamp))
                    .col(boolean(ChatMessages::IsRead).default(false))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ChatMessages::Table, ChatMessages::SessionId)
                            .to(ChatSessions::Table, ChatSessions::SessionId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_messages_session_id")
                    .table(ChatMessages::Table)
                    .col(ChatMessages::SessionId)
                    .col(ChatMessages::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AiConfig::Table)
                    .if_not_exists()
                    .col(integer(AiConfig::Id).primary_key())
                    .col(boolean(AiConfig::IsEnabled))
                    .col(string(AiConfig::Provider))
                    .col(string(AiConfig::Model))
                    .col(text(AiConfig::SystemPrompt))
                    .col(float(AiConfig::Temperature))
                    .col(integer(AiConfig::MaxTokens))
                    .col(timestamp_with_time_zone(AiConfig::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AiConfig::Table.into_iden(),
            ChatMessages::Table.into_iden(),
            ChatSessions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    Id,
    SessionId,
    IpAddress,
    UserAgent,
    CreatedAt,
    LastActive,
    HandedOffToAdmin,
}

#[derive(DeriveIden)]
enum ChatMessages {
    Table,
    Id,
    SessionId,
    Message,
    SenderType,
    Timestamp,
    IsRead,
}

#[derive(DeriveIden)]
enum AiConfig {
    Table,
    Id,
    IsEnabled,
    Provider,
    Model,
    SystemPrompt,
    Temperature,
    MaxTokens,
    UpdatedAt,
}
