//! The visitor sockets a live-chat session's replies go to. A socket is added
//! in the transaction that reads what it missed, and a reply's transaction
//! reads the set back: every reply reaches a returning socket exactly once,
//! live or in its catch-up, whichever node stored it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ChatSessions::Table)
                    .add_column_if_not_exists(text_null(ChatSessions::VisitorSockets))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ChatSessions::Table)
                    .drop_column(ChatSessions::VisitorSockets)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    VisitorSockets,
}
