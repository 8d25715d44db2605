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

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, RuntimeErr,
    Statement, TransactionTrait,
    sea_query::{DynIden, Expr, InsertStatement, Query, Value},
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

/// One value of a row to insert, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Bool(bool),
    Time(DateTime<Utc>),
}

impl From<Param<'_>> for Value {
    fn from(param: Param<'_>) -> Self {
        match param {
            Param::Text(text) => text.into(),
            Param::Bool(flag) => flag.into(),
            Param::Time(time) => time.into(),
        }
    }
}

/// Rows for one table, inserted by [`TxnExecutor::insert_rows`].
pub(crate) struct RowInsert<'a> {
    pub table: DynIden,
    pub columns: Vec<DynIden>,
    /// The column whose generated value comes back for each row.
    pub id: DynIden,
    /// The rows' values one after another, a value per column each.
    pub values: Vec<Param<'a>>,
}

impl<'a> RowInsert<'a> {
    fn rows(&self) -> std::slice::Chunks<'_, Param<'a>> {
        self.values.chunks(self.columns.len().max(1))
    }

    /// An INSERT of `rows`, without a RETURNING clause.
    fn statement<'r>(&self, rows: impl IntoIterator<Item = &'r [Param<'a>]>) -> InsertStatement
    where
        'a: 'r,
    {
        let mut insert = Query::insert();
        insert
            .into_table(self.table.clone())
            .columns(self.columns.iter().cloned());
        for row in rows {
            insert.values_panic(row.iter().map(|param| Expr::val(Value::from(*param))));
        }
        insert
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
    /// Inserts the rows; their ids, in the order given.
    async fn insert_rows(&mut self, insert: RowInsert<'_>) -> Result<Vec<i64>, DbErr>;
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

    /// One multi-row `INSERT … RETURNING`: a single round trip.
    async fn insert_rows(&mut self, insert: RowInsert<'_>) -> Result<Vec<i64>, DbErr> {
        let count = insert.rows().len();
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut statement = insert.statement(insert.rows());
        statement.returning_col(insert.id.clone());
        let mut ids = self
            .query(self.backend().build(&statement))
            .await?
            .iter()
            .map(|row| {
                row.first()
                    .ok_or_else(|| DbErr::Custom("no id".to_owned()))?
                    .int()
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Ids grow in the order the rows were given, whatever order RETURNING lists them in.
        ids.sort_unstable();
        if ids.len() != count {
            return Err(DbErr::Custom(format!("{count} rows but {} ids", ids.len())));
        }
        Ok(ids)
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

/// Marks the calling thread (a batch writer's) as one that does not take
/// the CPU from the runtime's threads the moment it is woken (Linux's
/// `SCHED_BATCH`; its share of the CPU is unchanged). Where the writer shares
/// a core with the runtime, waking it for every queued write would commit
/// batches of a few rows; left to wait its turn, it finds tens of writes
/// queued and commits them together, at a fraction of the cost per row.
pub(crate) fn yield_to_runtime() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for SCHED_BATCH; pid 0 is
        // the calling thread.
        let failed = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0;
        if failed {
            tracing::debug!(err = %std::io::Error::last_os_error(), "SCHED_BATCH refused");
        }
    }
}

/// The WAL file is cut back to this size when it starts over. Above what a
/// busy writer fills between two restarts ([`RESTART_EVERY`]): a WAL cut
/// back every time would be grown again block by block, which costs the
/// file system more than writing over blocks it already has.
const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

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
        Value::ChronoDateTimeUtc(v) => statement.raw_bind_parameter(index, v.map(sqlite_time)),
        other => {
            return Err(DbErr::Type(format!(
                "the SQLite writer cannot bind {other:?}"
            )));
        }
    };
    bound.map_err(sqlite_error)
}

/// A time as sqlx writes it to SQLite, so rows read through the pool decode alike.
fn sqlite_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, false)
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

    /// One prepared single-row INSERT, run once per row: in process a
    /// statement costs no round trip, and SQLite keeps a statement journal (a
    /// copy of every page it changes) for a multi-row INSERT or a RETURNING
    /// clause, which costs more than the statements themselves.
    async fn insert_rows(&mut self, insert: RowInsert<'_>) -> Result<Vec<i64>, DbErr> {
        let Some(first) = insert.rows().next() else {
            return Ok(Vec::new());
        };
        let sql = DbBackend::Sqlite.build(&insert.statement([first])).sql;
        let mut prepared = self.connection.prepare_cached(&sql).map_err(sqlite_error)?;
        let mut ids = Vec::with_capacity(insert.rows().len());
        // Rows of a batch share their time: it is written out once.
        let mut time: Option<(DateTime<Utc>, String)> = None;
        for row in insert.rows() {
            for (index, param) in row.iter().enumerate() {
                let index = index + 1;
                let bound = match *param {
                    Param::Text(text) => prepared.raw_bind_parameter(index, text),
                    Param::Bool(flag) => prepared.raw_bind_parameter(index, flag),
                    Param::Time(at) => {
                        if time.as_ref().is_none_or(|(written, _)| *written != at) {
                            time = Some((at, sqlite_time(at)));
                        }
                        let text = time.as_ref().map(|(_, text)| text.as_str());
                        prepared.raw_bind_parameter(index, text)
                    }
                };
                bound.map_err(sqlite_error)?;
            }
            prepared.raw_execute().map_err(sqlite_error)?;
            ids.push(self.connection.last_insert_rowid());
        }
        Ok(ids)
    }
}
