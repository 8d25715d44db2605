//! Where a writer's transactions run. A batch writer builds its statements
//! once with sea-query and hands them to a [`TxnExecutor`]:
//!
//! - [`PooledExecutor`]: a SeaORM transaction on the connection pool
//!   (PostgreSQL, where every statement crosses the network anyway);
//! - [`SqliteExecutor`]: a connection of its own to the SQLite file, used on
//!   the writer's own thread. sqlx runs every SQLite statement on a worker
//!   thread and pays a thread switch each way; a transaction of five
//!   statements paid ten. Here the writer's thread runs the whole transaction
//!   itself, and callers pay one hand-over per batch.

use std::path::Path;

use chrono::SecondsFormat;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, RuntimeErr,
    Statement, TransactionTrait, sea_query::Value,
};

use crate::config::{Config, SqliteSync};

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Int(i64),
    Text(String),
    Null,
}

impl Cell {
    pub fn int(&self) -> Result<i64, DbErr> {
        match self {
            Cell::Int(n) => Ok(*n),
            other => Err(DbErr::Type(format!("expected an integer, found {other:?}"))),
        }
    }

    pub fn text(self) -> Result<String, DbErr> {
        match self {
            Cell::Text(text) => Ok(text),
            other => Err(DbErr::Type(format!("expected text, found {other:?}"))),
        }
    }

    pub fn flag(&self) -> Result<bool, DbErr> {
        self.int().map(|n| n != 0)
    }
}

/// Runs the statements of one transaction at a time.
pub(crate) trait TxnExecutor {
    /// The dialect to build statements in.
    fn backend(&self) -> DbBackend;
    async fn begin(&mut self) -> Result<(), DbErr>;
    async fn commit(&mut self) -> Result<(), DbErr>;
    async fn rollback(&mut self);
    /// Runs a statement; the rows it changed.
    async fn execute(&mut self, statement: Statement) -> Result<u64, DbErr>;
    /// Runs a statement that returns rows.
    async fn query(&mut self, statement: Statement) -> Result<Vec<Vec<Cell>>, DbErr>;
}

/// A SeaORM transaction on the shared pool.
pub(crate) struct PooledExecutor {
    db: DatabaseConnection,
    txn: Option<DatabaseTransaction>,
}

impl PooledExecutor {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db, txn: None }
    }

    fn txn(&self) -> Result<&DatabaseTransaction, DbErr> {
        self.txn
            .as_ref()
            .ok_or_else(|| DbErr::Custom("no transaction is open".to_owned()))
    }
}

impl TxnExecutor for PooledExecutor {
    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn begin(&mut self) -> Result<(), DbErr> {
        self.txn = Some(self.db.begin().await?);
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), DbErr> {
        match self.txn.take() {
            Some(txn) => txn.commit().await,
            None => Ok(()),
        }
    }

    async fn rollback(&mut self) {
        if let Some(txn) = self.txn.take() {
            let _ = txn.rollback().await;
        }
    }

    async fn execute(&mut self, statement: Statement) -> Result<u64, DbErr> {
        Ok(self.txn()?.execute_raw(statement).await?.rows_affected())
    }

    async fn query(&mut self, statement: Statement) -> Result<Vec<Vec<Cell>>, DbErr> {
        let rows = self.txn()?.query_all_raw(statement).await?;
        rows.iter()
            .map(|row| {
                let columns = row.column_names();
                (0..columns.len())
                    .map(|index| {
                        if let Ok(Some(n)) = row.try_get_by_index::<Option<i64>>(index) {
                            return Ok(Cell::Int(n));
                        }
                        if let Ok(Some(n)) = row.try_get_by_index::<Option<i32>>(index) {
                            return Ok(Cell::Int(n.into()));
                        }
                        if let Ok(Some(flag)) = row.try_get_by_index::<Option<bool>>(index) {
                            return Ok(Cell::Int(flag.into()));
                        }
                        match row.try_get_by_index::<Option<String>>(index)? {
                            Some(text) => Ok(Cell::Text(text)),
                            None => Ok(Cell::Null),
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// A connection of the writer's own to the SQLite file; use it on one thread.
pub(crate) struct SqliteExecutor {
    connection: rusqlite::Connection,
    last_restart: std::time::Instant,
}

/// How often a thread of its own copies the WAL back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// How often the writer itself finishes a checkpoint between two batches, so
/// that the WAL starts over instead of growing.
const RESTART_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Checkpoints the WAL from a thread of its own, so the writer's commits do
/// not copy pages back themselves (SQLite would checkpoint inside every
/// thousandth page's commit, with its fsyncs). Such a checkpoint never
/// finishes while commits keep coming, so the writer completes one between
/// two batches now and then ([`SqliteExecutor::between_batches`]): then the WAL
/// starts over from its beginning and stays small.
fn spawn_checkpointer(path: std::path::PathBuf) {
    let _ = std::thread::Builder::new()
        .name("sqlite-checkpoint".to_owned())
        .spawn(move || {
            let Ok(connection) = rusqlite::Connection::open(&path) else {
                return;
            };
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(err) = connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::debug!(%err, "checkpoint failed");
                }
            }
        });
}

/// The WAL file is cut back to this size when it starts over.
const WAL_SIZE_LIMIT: u64 = 16 * 1024 * 1024;

fn sqlite_error(err: rusqlite::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::Internal(format!("SQLite: {err}")))
}

impl SqliteExecutor {
    /// Opens `path` with the settings of the pool's connections.
    pub fn open(path: &Path, config: &Config) -> Result<Self, DbErr> {
        let connection = rusqlite::Connection::open(path).map_err(sqlite_error)?;
        let synchronous = match config.sqlite_synchronous {
            SqliteSync::Normal => "NORMAL",
            SqliteSync::Full => "FULL",
        };
        connection
            .busy_timeout(std::time::Duration::from_millis(
                config.db_statement_timeout_ms.max(1),
            ))
            .map_err(sqlite_error)?;
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
                 PRAGMA foreign_keys = ON; PRAGMA cache_size = {}; PRAGMA temp_store = MEMORY; \
                 PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {};",
                super::SQLITE_CACHE_KIB,
                WAL_SIZE_LIMIT
            ))
            .map_err(sqlite_error)?;
        connection.set_prepared_statement_cache_capacity(64);
        spawn_checkpointer(path.to_owned());
        Ok(Self {
            connection,
            last_restart: std::time::Instant::now(),
        })
    }

    /// Runs between two batches: now and then a checkpoint that, with no
    /// commit in flight, finishes, so the next transaction restarts the WAL.
    pub fn between_batches(&mut self) {
        if self.last_restart.elapsed() < RESTART_EVERY {
            return;
        }
        self.last_restart = std::time::Instant::now();
        if let Err(err) = self
            .connection
            .execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
        {
            tracing::debug!(%err, "checkpoint failed");
        }
    }

    fn prepare(&self, statement: &Statement) -> Result<rusqlite::CachedStatement<'_>, DbErr> {
        let mut prepared = self
            .connection
            .prepare_cached(&statement.sql)
            .map_err(sqlite_error)?;
        if let Some(values) = &statement.values {
            for (index, value) in values.0.iter().enumerate() {
                bind(&mut prepared, index + 1, value)?;
            }
        }
        Ok(prepared)
    }
}

/// Binds one sea-query value, encoded as sqlx encodes it, so rows read
/// through the pool decode alike.
fn bind(statement: &mut rusqlite::Statement<'_>, index: usize, value: &Value) -> Result<(), DbErr> {
    let bound = match value {
        Value::Bool(v) => statement.raw_bind_parameter(index, v),
        Value::Int(v) => statement.raw_bind_parameter(index, v),
        Value::BigInt(v) => statement.raw_bind_parameter(index, v),
        Value::String(v) => statement.raw_bind_parameter(index, v),
        Value::ChronoDateTimeUtc(v) => statement.raw_bind_parameter(
            index,
            v.map(|time| time.to_rfc3339_opts(SecondsFormat::AutoSi, false)),
        ),
        other => {
            return Err(DbErr::Type(format!(
                "the SQLite writer cannot bind {other:?}"
            )));
        }
    };
    bound.map_err(sqlite_error)
}

impl TxnExecutor for SqliteExecutor {
    fn backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }

    async fn begin(&mut self) -> Result<(), DbErr> {
        // IMMEDIATE: take the write lock now rather than fail to upgrade later.
        self.connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sqlite_error)
    }

    async fn commit(&mut self) -> Result<(), DbErr> {
        self.connection
            .execute_batch("COMMIT")
            .map_err(sqlite_error)
    }

    async fn rollback(&mut self) {
        let _ = self.connection.execute_batch("ROLLBACK");
    }

    async fn execute(&mut self, statement: Statement) -> Result<u64, DbErr> {
        let mut prepared = self.prepare(&statement)?;
        let changed = prepared.raw_execute().map_err(sqlite_error)?;
        Ok(changed as u64)
    }

    async fn query(&mut self, statement: Statement) -> Result<Vec<Vec<Cell>>, DbErr> {
        let mut prepared = self.prepare(&statement)?;
        let columns = prepared.column_count();
        let mut rows = prepared.raw_query();
        let mut cells = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index).map_err(sqlite_error)? {
                    rusqlite::types::ValueRef::Integer(n) => Cell::Int(n),
                    rusqlite::types::ValueRef::Text(text) => {
                        Cell::Text(String::from_utf8_lossy(text).into_owned())
                    }
                    rusqlite::types::ValueRef::Null => Cell::Null,
                    other => {
                        return Err(DbErr::Type(format!("unexpected SQLite value {other:?}")));
                    }
                });
            }
            cells.push(values);
        }
        Ok(cells)
    }
}
