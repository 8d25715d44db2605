//! Assistant chat: conversations and their messages.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .if_not_exists()
                    .col(string(Conversations::Id).primary_key())
                    .col(string(Conversations::Title))
                    .col(timestamp_with_time_zone(Conversations::CreatedAt))
                    .col(timestamp_with_time_zone(Conversations::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AssistantMessages::Table)
                    .if_not_exists()
                    .col(pk_auto(AssistantMessages::Seq))
                    .col(string_uniq(AssistantMessages::Id))
                    .col(string(AssistantMessages::ConversationId))
                    .col(string(AssistantMessages::Role))
                    .col(text(AssistantMessages::Content))
                    .col(string(AssistantMessages::Status))
                    .col(timestamp_with_time_zone(AssistantMessages::CreatedAt))
                    .col(timestamp_with_time_zone(AssistantMessages::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AssistantMessages::Table, AssistantMessages::ConversationId)
                            .to(Conversations::Table, Conversations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_assistant_messages_conversation")
                    .table(AssistantMessages::Table)
                    .col(AssistantMessages::ConversationId)
                    .col(AssistantMessages::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AssistantMessages::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Conversations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    Title,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AssistantMessages {
    Table,
    Seq,
    Id,
    ConversationId,
    Role,
    Content,
    Status,
    CreatedAt,
    UpdatedAt,
}
