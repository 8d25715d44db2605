//! Where a live-chat session's visitor is: the node holding its newest visitor
//! socket, and, once no visitor socket is connected, the newest message it had
//! been sent. A visitor that comes back gets the replies stored after that.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ChatSessions {
    Table,
    VisitorNode,
    VisitorAwayAfter,
}
