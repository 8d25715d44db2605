//! The AI coach app: token quota usage, practice sessions, feedback, analytics.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(QuotaUsage::Table)
                    .if_not_exists()
                    .col(integer(QuotaUsage::UserId))
                    .col(string(QuotaUsage::Day))
                    .col(big_integer(QuotaUsage::TokensUsed).default(0))
                    .primary_key(Index::create().col(QuotaUsage::UserId).col(QuotaUsage::Day))
                    .foreign_key(
                        ForeignKey::create()
                            .from(QuotaUsage::Table, QuotaUsage::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PracticeSessions::Table)
                    .if_not_exists()
                    .col(pk_auto(PracticeSessions::Id))
                    .col(integer(PracticeSessions::UserId))
                    .col(string(PracticeSessions::FeatureType))
                    .col(string_null(PracticeSessions::Title))
                    .col(text_null(PracticeSessions::Description))
                    .col(integer_null(PracticeSessions::DurationSeconds))
                    .col(double_null(PracticeSessions::Score))
                    .col(text_null(PracticeSessions::Transcript))
                    .col(json_binary_null(PracticeSessions::FeedbackJson))
                    .col(double_null(PracticeSessions::Clarity))
                    .col(double_null(PracticeSessions::Pace))
                    .col(double_null(PracticeSessions::Confidence))
                    .col(double_null(PracticeSessions::Tone))
                    .col(boolean(PracticeSessions::Completed).default(false))
                    .col(timestamp_with_time_zone(PracticeSessions::CreatedAt))
                    .col(timestamp_with_time_zone(PracticeSessions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PracticeSessions::Table, PracticeSessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_practice_sessions_user")
                    .table(PracticeSessions::Table)
                    .col(PracticeSessions::UserId)
                    .col(PracticeSessions::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Feedback::Table)
                    .if_not_exists()
                    .col(integer(Feedback::SessionId).primary_key())
                    .col(integer(Feedback::UserId))
                    .col(double(Feedback::Score))
                    .col(text(Feedback::Communication))
                    .col(text(Feedback::Content))
                    .col(text(Feedback::BodyLanguage))
                    .col(json_binary(Feedback::Highlights))
                    .col(json_binary(Feedback::ActionItems))
                    .col(timestamp_with_time_zone(Feedback::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Feedback::Table, Feedback::SessionId)
                            .to(PracticeSessions::Table, PracticeSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AnalyticsEvents::Table)
                    .if_not_exists()
                    .col(pk_auto(AnalyticsEvents::Id))
                    .col(integer(AnalyticsEvents::UserId))
                    .col(string(AnalyticsEvents::EventType))
                    .col(json_binary(AnalyticsEvents::Metadata))
                    .col(timestamp_with_time_zone(AnalyticsEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AnalyticsEvents::Table, AnalyticsEvents::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AnalyticsEvents::Table.into_iden(),
            Feedback::Table.into_iden(),
            PracticeSessions::Table.into_iden(),
            QuotaUsage::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum QuotaUsage {
    Table,
    UserId,
    Day,
    TokensUsed,
}

#[derive(DeriveIden)]
enum PracticeSessions {
    Table,
    Id,
    UserId,
    FeatureType,
    Title,
    Description,
    DurationSeconds,
    Score,
    Transcript,
    FeedbackJson,
    Clarity,
    Pace,
    Confidence,
    Tone,
    Completed,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Feedback {
    Table,
    SessionId,
    UserId,
    Score,
    Communication,
    Content,
    BodyLanguage,
    Highlights,
    ActionItems,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AnalyticsEvents {
    Table,
    Id,
    UserId,
    EventType,
    Metadata,
    CreatedAt,
}
