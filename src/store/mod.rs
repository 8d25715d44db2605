//! The database: connecting (embedded SQLite by default, PostgreSQL by URL),
//! applying migrations, the persistent key/value settings, query helpers more
//! than one flow needs, and [`executor`], where batch writers run their
//! transactions.

pub(crate) mod executor;

use std::time::Duration;

use entity::setting;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, QuerySelect,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

use crate::{
    config::{Config, SqliteSync},
    telemetry::metrics,
};

/// SQLite's memory map of the database file.
const SQLITE_MMAP_BYTES: u64 = 256 * 1024 * 1024;
/// SQLite's page cache per connection (a negative size is in KiB).
pub(crate) const SQLITE_CACHE_KIB: i64 = -16 * 1024;

/// Opens the configured database and brings its schema up to date.
///
/// Timeouts are short so that a database that is gone is reported within
/// seconds (`DB_ACQUIRE_TIMEOUT_MS` to get a connection, `DB_STATEMENT_TIMEOUT_MS`
/// per statement on PostgreSQL and per lock wait on SQLite), and the pool
/// reconnects by itself once it is back.
///
/// SQLite runs in WAL mode: readers run beside the writer. With
/// `synchronous=NORMAL` (the default) a commit survives a crash of the
/// process but not a power cut; `SQLITE_SYNCHRONOUS=full` survives both at the
/// cost of a disk flush per commit.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, DbErr> {
    let statement_timeout = Duration::from_millis(config.db_statement_timeout_ms.max(1));
    let synchronous = match config.sqlite_synchronous {
        SqliteSync::Normal => SqliteSynchronous::Normal,
        SqliteSync::Full => SqliteSynchronous::Full,
    };
    let page_size = config.sqlite_page_size;
    let mut options = ConnectOptions::new(&config.database_url);
    // A SQLite file cannot drop a connection: checking each one before use
    // would only cost a round trip to its worker thread.
    let sqlite = config.database_url.starts_with("sqlite:");
    options
        .sqlx_logging(false)
        .test_before_acquire(!sqlite)
        .acquire_timeout(Duration::from_millis(config.db_acquire_timeout_ms.max(1)))
        .connect_timeout(Duration::from_millis(config.db_acquire_timeout_ms.max(1)))
        .map_sqlx_sqlite_opts(move |sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .busy_timeout(statement_timeout)
                .foreign_keys(true)
                // Pages read through a memory map and a larger page cache:
                // fewer system calls per statement.
                .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
                .pragma("cache_size", SQLITE_CACHE_KIB.to_string())
                .pragma("temp_store", "memory")
                .page_size(page_size)
        })
        .map_sqlx_postgres_opts(move |postgres| {
            postgres.options([(
                "statement_timeout",
                statement_timeout.as_millis().to_string(),
            )])
        });
    let mut db = Database::connect(options).await?;
    if config.metrics {
        db.set_metric_callback(|info| {
            metrics::db_statement(&info.statement.sql, info.failed, info.elapsed);
        });
    }
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Held while a node sets the database up (migrations, the generated JWT
/// secret, the first admin): nodes starting at once on an empty PostgreSQL
/// database take turns, so all end with one schema, one secret and one admin.
///
/// A PostgreSQL session advisory lock on a connection of its own; nothing on
/// SQLite, whose file is one node's.
pub struct StartupLock(Option<sea_orm::sqlx::PgConnection>);

/// The advisory lock's key ("switchboard start-up").
const STARTUP_LOCK_KEY: i64 = 0x5357_4254_5354_5550;

impl StartupLock {
    pub async fn acquire(config: &Config) -> Result<Self, DbErr> {
        use sea_orm::sqlx::Connection;
        if !is_postgres_url(&config.database_url) {
            return Ok(Self(None));
        }
        let sqlx_error = |err: sea_orm::sqlx::Error| DbErr::Custom(err.to_string());
        let mut connection = sea_orm::sqlx::PgConnection::connect(&config.database_url)
            .await
            .map_err(sqlx_error)?;
        sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(STARTUP_LOCK_KEY)
            .execute(&mut connection)
            .await
            .map_err(sqlx_error)?;
        Ok(Self(Some(connection)))
    }

    /// Lets the next node in (closing the connection would too).
    pub async fn release(self) {
        use sea_orm::sqlx::Connection;
        if let Some(mut connection) = self.0 {
            let _ = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(STARTUP_LOCK_KEY)
                .execute(&mut connection)
                .await;
            let _ = connection.close().await;
        }
    }
}

/// The file of a SQLite URL (`sqlite://switchboard.db?mode=rwc`); `None` for
/// other databases and in-memory SQLite, which another connection cannot share.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// Whether the database answers within `within`.
pub async fn reachable(db: &DatabaseConnection, within: Duration) -> bool {
    matches!(tokio::time::timeout(within, db.ping()).await, Ok(Ok(())))
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
