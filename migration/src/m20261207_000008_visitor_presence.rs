//! Where a live-chat session's visitor is, and an admin's console: the node
//! holding the newest socket, and, once none is connected, the newest message
//! it had been sent. A visitor or console that comes back gets what was
//! stored after that.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConsolePresence::Table)
                    .if_not_exists()
                    .col(integer(ConsolePresence::UserId).primary_key())
                    .col(string_null(ConsolePresence::Node))
                    .col(integer_null(ConsolePresence::AwayAfter))
                    .to_owned(),
            )
            .await?;
        // SQLite alters one column a statement.
        for mut column in [
            string_null(ChatSessions::VisitorNode),
            integer_null(ChatSessions::VisitorAwayAfter),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ChatSessions::Table)
                        .add_column_if_not_exists(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [ChatSessions::VisitorAwayAfter, ChatSessions::VisitorNode] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ChatSessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(ConsolePresence::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    VisitorNode,
    VisitorAwayAfter,
}

#[derive(DeriveIden)]
enum ConsolePresence {
    Table,
    UserId,
    Node,
    AwayAfter,
}
