//! The database: connecting (embedded SQLite by default, PostgreSQL by URL),
//! applying migrations, the persistent key/value settings, and query helpers
//! more than one flow needs.

use std::time::Duration;

use entity::setting;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, QuerySelect,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

/// Opens the database named by `url` and brings its schema up to date.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10))
        .map_sqlx_sqlite_opts(|sqlite| {
            // WAL lets readers run beside the writer; a busy timeout makes
            // concurrent writers wait for each other instead of failing.
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    let db = Database::connect(options).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Sqlite => "sqlite",
        DbBackend::Postgres => "postgres",
        _ => "other",
    }
}

/// The row with the highest `order` in each `group` among the rows matching
/// `scope`: each conversation's newest message, in two queries.
pub async fn newest_per_group<E>(
    db: &DatabaseConnection,
    group: E::Column,
    order: E::Column,
    scope: Condition,
) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
{
    let newest: Vec<i32> = E::find()
        .select_only()
        .column_as(order.max(), "newest")
        .filter(scope)
        .group_by(group)
        .into_tuple::<Option<i32>>()
        .all(db)
        .await?
        .into_iter()
        .flatten()
        .collect();
    E::find().filter(order.is_in(newest)).all(db).await
}

/// Reads a setting.
pub async fn setting(db: &DatabaseConnection, key: &str) -> Result<Option<String>, DbErr> {
    Ok(setting::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
        .map(|row| row.value))
}

/// Stores `value` under `key` unless a value is already there, and returns the
/// value that is stored: when two nodes start at once, both end up with the same.
pub async fn setting_or_insert(
    db: &DatabaseConnection,
    key: &str,
    value: String,
) -> Result<String, DbErr> {
    let row = setting::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(value),
    };
    setting::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec(db)
        .await?;
    setting(db, key)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("setting {key}")))
}
