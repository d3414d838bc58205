//! The store's one interface to a SQL database: connections, statements,
//! parameters and rows, the same whichever backend runs them.
//!
//! The store's queries (`store/*.rs`) are written once against this module;
//! the backends carry what differs between databases: how a connection is
//! opened and a transaction begun, the migrations, and the few statements
//! whose SQL is not portable (the backend module says which). The surface
//! follows rusqlite's, which the queries were first written for:
//! `prepare_cached(sql)?.query_map(params![..], |r| r.get(0))`,
//! `.optional()` for a row that may be missing, `?N` placeholders.
//!
//! Values are SQLite's five kinds ([`Value`]): integers (`i64`, and `bool`
//! as 0/1), reals, text, blobs and NULL. A backend with richer types maps
//! its columns onto these, so a query reads the same Rust types from both.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use crate::error::Error as CrateError;

/// A failure of a statement, as the queries see it.
#[derive(Debug)]
pub enum Error {
    /// `query_row` found no row ([`OptionalExtension::optional`] makes it `None`).
    NoRows,
    /// A column held a value the caller cannot read as the type it asked for.
    Conversion { column: usize, message: String },
    /// The database refused or failed (its own message).
    Database(String),
    /// The database could not be reached, or the connection broke: the
    /// same request may succeed later.
    Unavailable(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoRows => f.write_str("query returned no rows"),
            Error::Conversion { column, message } => write!(f, "column {column}: {message}"),
            Error::Database(m) | Error::Unavailable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for CrateError {
    fn from(e: Error) -> CrateError {
        match e {
            Error::Unavailable(m) => CrateError::Unavailable(m),
            e => CrateError::Database(e.to_string()),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            e => Error::Database(e.to_string()),
        }
    }
}

/// A database failure, as the one error type carries it.
impl From<rusqlite::Error> for CrateError {
    fn from(e: rusqlite::Error) -> CrateError {
        CrateError::Database(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.optional()` on a `query_row`: no row is `Ok(None)`.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An owned value: a dynamic parameter list, or a column read as is.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A borrowed value: a bound parameter, or a column being read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(s) => ValueRef::Text(s),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Integer(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Integer(b as i64)
    }
}

impl From<f64> for Value {
    fn from(r: f64) -> Value {
        Value::Real(r)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Blob(b)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl ValueRef<'_> {
    fn kind(&self) -> &'static str {
        match self {
            ValueRef::Null => "NULL",
            ValueRef::Integer(_) => "an integer",
            ValueRef::Real(_) => "a real",
            ValueRef::Text(_) => "text",
            ValueRef::Blob(_) => "a blob",
        }
    }

    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(r) => Value::Real(r),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

// ---- parameters ---------------------------------------------------------

/// What can be bound to a placeholder.
pub trait ToSql {
    fn to_sql(&self) -> ValueRef<'_>;
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> ValueRef<'_> {
        (**self).to_sql()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.to_sql(),
            None => ValueRef::Null,
        }
    }
}

macro_rules! integer_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> ValueRef<'_> {
                ValueRef::Integer(*self as i64)
            }
        }
    )*};
}
integer_to_sql!(i64, i32, u32, u16, u8, usize, u64);

impl ToSql for bool {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Integer(*self as i64)
    }
}

impl ToSql for f64 {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Real(*self)
    }
}

impl ToSql for str {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToSql for String {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToSql for [u8] {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl ToSql for Vec<u8> {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> ValueRef<'_> {
        self.as_ref()
    }
}

impl ToSql for ValueRef<'_> {
    fn to_sql(&self) -> ValueRef<'_> {
        *self
    }
}

/// A statement's parameters, in placeholder order.
pub trait Params {
    fn values(&self) -> Vec<ValueRef<'_>>;
}

impl Params for &[&dyn ToSql] {
    fn values(&self) -> Vec<ValueRef<'_>> {
        self.iter().map(|v| v.to_sql()).collect()
    }
}

impl Params for [&dyn ToSql; 0] {
    fn values(&self) -> Vec<ValueRef<'_>> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn values(&self) -> Vec<ValueRef<'_>> {
                self.iter().map(|v| v.to_sql()).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8);

/// Parameters from a list built at run time (copied once, as values).
pub struct ParamsFromIter(Vec<Value>);

pub fn params_from_iter<I>(iter: I) -> ParamsFromIter
where
    I: IntoIterator,
    I::Item: ToSql,
{
    ParamsFromIter(iter.into_iter().map(|v| v.to_sql().to_owned()).collect())
}

impl Params for ParamsFromIter {
    fn values(&self) -> Vec<ValueRef<'_>> {
        self.0.iter().map(Value::as_ref).collect()
    }
}

/// Bound parameters, as `params![a, b, c]`.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::store::db::ToSql]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::db::ToSql),+] as &[&dyn $crate::store::db::ToSql]
    };
}
pub(crate) use params;

// ---- reading ------------------------------------------------------------

/// What a column can be read as.
pub trait FromSql: Sized {
    /// The value, or why it cannot be one (the column is added by [`Row::get`]).
    fn from_sql(v: ValueRef<'_>) -> std::result::Result<Self, String>;
}

fn wrong(v: ValueRef<'_>, want: &str) -> String {
    format!("expected {want}, found {}", v.kind())
}

macro_rules! integer_from_sql {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_sql(v: ValueRef<'_>) -> std::result::Result<Self, String> {
                match v {
                    ValueRef::Integer(i) => <$t>::try_from(i)
                        .map_err(|_| format!("{i} is out of range for {}", stringify!($t))),
                    v => Err(wrong(v, "an integer")),
                }
            }
        }
    )*};
}
integer_from_sql!(i64, i32, u32, u16, u8, usize, u64);

impl FromSql for bool {
    fn from_sql(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Integer(i) => Ok(i != 0),
            v => Err(wrong(v, "an integer (0 or 1)")),
        }
    }
}

impl FromSql for f64 {
    fn from_sql(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Real(r) => Ok(r),
            ValueRef::Integer(i) => Ok(i as f64),
            v => Err(wrong(v, "a number")),
        }
    }
}

impl FromSql for String {
    fn from_sql(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Text(s) => Ok(s.to_owned()),
            v => Err(wrong(v, "text")),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            ValueRef::Text(s) => Ok(s.as_bytes().to_vec()),
            v => Err(wrong(v, "a blob")),
        }
    }
}

impl FromSql for Value {
    fn from_sql(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        Ok(v.to_owned())
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_sql(v).map(Some),
        }
    }
}

/// A column's position (from 0).
pub trait RowIndex {
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// One row of a result.
pub struct Row<'r> {
    inner: RowInner<'r>,
}

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Values(&'r [Value]),
}

impl Row<'_> {
    /// Column `idx` as a `T`.
    pub fn get<I: RowIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let column = idx.index();
        T::from_sql(self.get_ref(column)?).map_err(|message| Error::Conversion { column, message })
    }

    /// Column `idx` as it is stored.
    pub fn get_ref(&self, column: usize) -> Result<ValueRef<'_>> {
        match &self.inner {
            RowInner::Sqlite(r) => {
                use rusqlite::types::ValueRef as S;
                Ok(match r.get_ref(column)? {
                    S::Null => ValueRef::Null,
                    S::Integer(i) => ValueRef::Integer(i),
                    S::Real(f) => ValueRef::Real(f),
                    S::Text(t) => {
                        ValueRef::Text(std::str::from_utf8(t).map_err(|_| Error::Conversion {
                            column,
                            message: "text is not UTF-8".into(),
                        })?)
                    }
                    S::Blob(b) => ValueRef::Blob(b),
                })
            }
            RowInner::Values(v) => v.get(column).map(Value::as_ref).ok_or(Error::Conversion {
                column,
                message: format!("the row has {} columns", v.len()),
            }),
        }
    }
}

/// A value bound to a SQLite placeholder.
struct SqliteValue<'a, 'b>(&'b ValueRef<'a>);

impl rusqlite::ToSql for SqliteValue<'_, '_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as S};
        Ok(ToSqlOutput::Borrowed(match *self.0 {
            ValueRef::Null => S::Null,
            ValueRef::Integer(i) => S::Integer(i),
            ValueRef::Real(r) => S::Real(r),
            ValueRef::Text(s) => S::Text(s.as_bytes()),
            ValueRef::Blob(b) => S::Blob(b),
        }))
    }
}

fn sqlite_params<'p>(
    values: &'p [ValueRef<'p>],
) -> rusqlite::ParamsFromIter<impl Iterator<Item = SqliteValue<'p, 'p>>> {
    rusqlite::params_from_iter(values.iter().map(SqliteValue))
}

// ---- statements ---------------------------------------------------------

/// A prepared statement.
pub struct Statement<'c> {
    inner: StatementInner<'c>,
}

enum StatementInner<'c> {
    SqliteCached(rusqlite::CachedStatement<'c>),
    Sqlite(rusqlite::Statement<'c>),
    Postgres {
        conn: &'c RefCell<PgConn>,
        statement: postgres::Statement,
    },
}

impl<'c> Statement<'c> {
    /// Runs the statement; the number of rows it changed.
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        let values = params.values();
        match &mut self.inner {
            StatementInner::SqliteCached(s) => Ok(s.execute(sqlite_params(&values))?),
            StatementInner::Sqlite(s) => Ok(s.execute(sqlite_params(&values))?),
            StatementInner::Postgres { conn, statement } => {
                let n = conn
                    .borrow_mut()
                    .client
                    .execute(statement, &as_dyn(&pg_params(&values)))?;
                Ok(n as usize)
            }
        }
    }

    /// The first row, mapped; [`Error::NoRows`] when there is none.
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(r) => f(&r),
            None => Err(Error::NoRows),
        }
    }

    /// Every row, mapped, as an iterator.
    pub fn query_map<T, F>(&mut self, params: impl Params, f: F) -> Result<MappedRows<'_, F>>
    where
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        let rows = self.query(params)?;
        Ok(MappedRows { rows, f })
    }

    /// Every row, one at a time ([`Rows::next`]).
    pub fn query(&mut self, params: impl Params) -> Result<Rows<'_>> {
        let values = params.values();
        let inner = match &mut self.inner {
            StatementInner::SqliteCached(s) => RowsInner::Sqlite(s.query(sqlite_params(&values))?),
            StatementInner::Sqlite(s) => RowsInner::Sqlite(s.query(sqlite_params(&values))?),
            StatementInner::Postgres { conn, statement } => {
                let rows = conn
                    .borrow_mut()
                    .client
                    .query(statement, &as_dyn(&pg_params(&values)))?;
                let rows = rows.iter().map(pg_row).collect::<Result<Vec<_>>>()?;
                RowsInner::Values {
                    rows: rows.into_iter(),
                    current: Vec::new(),
                }
            }
        };
        Ok(Rows { inner })
    }

    /// Runs an INSERT; the new row's id (SQLite's rowid; PostgreSQL's
    /// `lastval()`, the identity the INSERT drew).
    pub fn insert(&mut self, params: impl Params) -> Result<i64> {
        match &mut self.inner {
            StatementInner::SqliteCached(s) => Ok(s.insert(sqlite_params(&params.values()))?),
            StatementInner::Sqlite(s) => Ok(s.insert(sqlite_params(&params.values()))?),
            StatementInner::Postgres { conn, .. } => {
                let conn = *conn;
                self.execute(params)?;
                pg_lastval(conn)
            }
        }
    }

    /// Whether the query returns a row.
    pub fn exists(&mut self, params: impl Params) -> Result<bool> {
        let mut rows = self.query(params)?;
        Ok(rows.next()?.is_some())
    }
}

/// The rows of a query, read one at a time.
pub struct Rows<'s> {
    inner: RowsInner<'s>,
}

enum RowsInner<'s> {
    Sqlite(rusqlite::Rows<'s>),
    /// Rows read whole (PostgreSQL), handed out one at a time.
    Values {
        rows: std::vec::IntoIter<Vec<Value>>,
        current: Vec<Value>,
    },
}

impl Rows<'_> {
    /// The next row, or `None` after the last.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match &mut self.inner {
            RowsInner::Sqlite(rows) => Ok(rows.next()?.map(|r| Row {
                inner: RowInner::Sqlite(r),
            })),
            RowsInner::Values { rows, current } => match rows.next() {
                Some(row) => {
                    *current = row;
                    Ok(Some(Row {
                        inner: RowInner::Values(current),
                    }))
                }
                None => Ok(None),
            },
        }
    }
}

/// The rows of a query, each mapped by the caller's function.
pub struct MappedRows<'s, F> {
    rows: Rows<'s>,
    f: F,
}

impl<T, F> Iterator for MappedRows<'_, F>
where
    F: FnMut(&Row<'_>) -> Result<T>,
{
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        match self.rows.next() {
            Ok(Some(row)) => Some((self.f)(&row)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

// ---- connections and transactions --------------------------------------

/// The database a [`Queries`] value runs on.
pub enum Backend<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(&'a RefCell<PgConn>),
}

/// Which SQL a statement must be written in, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The statements a connection or a transaction runs.
pub trait Queries {
    fn backend(&self) -> Backend<'_>;

    /// The SQL dialect of the backend, for the few statements that are not
    /// portable (each says why where it chooses).
    fn dialect(&self) -> Dialect {
        match self.backend() {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Prepares `sql` through the connection's statement cache: a heartbeat
    /// runs the same few statements thousands of times a second, and
    /// parsing SQL each time would cost more than running it.
    fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        match self.backend() {
            Backend::Sqlite(c) => Ok(Statement {
                inner: StatementInner::SqliteCached(c.prepare_cached(sql)?),
            }),
            Backend::Postgres(conn) => Ok(Statement {
                inner: StatementInner::Postgres {
                    statement: conn.borrow_mut().prepare(sql, true)?,
                    conn,
                },
            }),
        }
    }

    /// Prepares `sql` once (a statement built at run time).
    fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        match self.backend() {
            Backend::Sqlite(c) => Ok(Statement {
                inner: StatementInner::Sqlite(c.prepare(sql)?),
            }),
            Backend::Postgres(conn) => Ok(Statement {
                inner: StatementInner::Postgres {
                    statement: conn.borrow_mut().prepare(sql, false)?,
                    conn,
                },
            }),
        }
    }

    /// Runs one statement, not cached.
    fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare(sql)?.execute(params)
    }

    /// The first row of one statement, not cached.
    fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare(sql)?.query_row(params, f)
    }

    /// The id of the row the last INSERT on this connection made.
    fn last_insert_rowid(&self) -> Result<i64> {
        match self.backend() {
            Backend::Sqlite(c) => Ok(c.last_insert_rowid()),
            Backend::Postgres(conn) => pg_lastval(conn),
        }
    }

    /// Runs several statements without parameters.
    fn execute_batch(&self, sql: &str) -> Result<()> {
        match self.backend() {
            Backend::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Backend::Postgres(conn) => Ok(conn.borrow_mut().client.batch_execute(sql)?),
        }
    }
}

/// A transaction: commits with [`Transaction::commit`], rolls back when
/// dropped without it.
pub struct Transaction<'c> {
    inner: TransactionInner<'c>,
}

enum TransactionInner<'c> {
    Sqlite(rusqlite::Transaction<'c>),
    Postgres(PgTransaction<'c>),
}

/// An open `BEGIN` on a pooled connection, or one step of a shared
/// transaction under a savepoint; rolled back (to the savepoint) when
/// dropped uncommitted (an error or a panic in the caller's function).
struct PgTransaction<'c> {
    conn: &'c RefCell<PgConn>,
    open: bool,
    /// A step: `commit` keeps its work in the enclosing transaction, and
    /// dropping it rolls back to [`STEP_SAVEPOINT`] only.
    step: bool,
}

/// The savepoint a step of a shared transaction starts with.
pub(crate) const STEP_SAVEPOINT: &str = "icpd_step";

impl Drop for PgTransaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let mut conn = self.conn.borrow_mut();
            let undo = if self.step {
                "ROLLBACK TO SAVEPOINT icpd_step"
            } else {
                "ROLLBACK"
            };
            if conn.client.batch_execute(undo).is_err() {
                conn.broken = true;
            }
        }
    }
}

impl<'c> Transaction<'c> {
    pub(crate) fn sqlite(tx: rusqlite::Transaction<'c>) -> Transaction<'c> {
        Transaction {
            inner: TransactionInner::Sqlite(tx),
        }
    }

    /// Begins a transaction on a PostgreSQL connection: `begin` is the
    /// statement that opens it (`BEGIN`, `BEGIN READ ONLY`, ...).
    pub(crate) fn postgres(conn: &'c RefCell<PgConn>, begin: &str) -> Result<Transaction<'c>> {
        conn.borrow_mut().client.batch_execute(begin)?;
        Ok(Transaction {
            inner: TransactionInner::Postgres(PgTransaction {
                conn,
                open: true,
                step: false,
            }),
        })
    }

    /// One step of a transaction already open on `conn`: `begin` sets
    /// savepoint [`STEP_SAVEPOINT`] (or is empty when the statement that
    /// opened the transaction set it). [`Transaction::commit`] keeps the
    /// step's work for the enclosing commit; dropping it undoes only the
    /// step. A failed statement marks the connection broken only when it
    /// closed.
    pub(crate) fn postgres_step(conn: &'c RefCell<PgConn>, begin: &str) -> Result<Transaction<'c>> {
        if !begin.is_empty() {
            let done = conn.borrow_mut().client.batch_execute(begin);
            done.map_err(|e| {
                conn.borrow_mut().broken |= e.is_closed();
                Error::from(e)
            })?;
        }
        Ok(Transaction {
            inner: TransactionInner::Postgres(PgTransaction {
                conn,
                open: true,
                step: true,
            }),
        })
    }

    pub fn commit(self) -> Result<()> {
        match self.inner {
            TransactionInner::Sqlite(tx) => Ok(tx.commit()?),
            TransactionInner::Postgres(mut tx) => {
                tx.open = false;
                if tx.step {
                    return Ok(());
                }
                let done = tx.conn.borrow_mut().client.batch_execute("COMMIT");
                done.map_err(|e| {
                    tx.conn.borrow_mut().broken |= e.is_closed();
                    e.into()
                })
            }
        }
    }
}

impl Queries for Transaction<'_> {
    fn backend(&self) -> Backend<'_> {
        match &self.inner {
            TransactionInner::Sqlite(tx) => Backend::Sqlite(tx),
            TransactionInner::Postgres(tx) => Backend::Postgres(tx.conn),
        }
    }
}

/// A SQLite connection used outside a [`Transaction`] (pragmas,
/// migrations, a file being inspected).
pub struct SqliteConn<'a>(pub &'a rusqlite::Connection);

impl Queries for SqliteConn<'_> {
    fn backend(&self) -> Backend<'_> {
        Backend::Sqlite(self.0)
    }
}

// ---- PostgreSQL ---------------------------------------------------------

/// One PostgreSQL connection and its prepared statements.
pub struct PgConn {
    pub(crate) client: postgres::Client,
    /// Statements prepared on this connection, by their SQL as written.
    cache: HashMap<String, postgres::Statement>,
    /// Set when the connection failed mid-use: the pool drops it.
    pub(crate) broken: bool,
}

/// Most statements one connection keeps prepared.
const PG_CACHE: usize = 512;

impl PgConn {
    pub(crate) fn new(client: postgres::Client) -> PgConn {
        PgConn {
            client,
            cache: HashMap::new(),
            broken: false,
        }
    }

    pub(crate) fn prepare(&mut self, sql: &str, cached: bool) -> Result<postgres::Statement> {
        if let Some(s) = self.cache.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(&pg_sql(sql)).map_err(|e| {
            self.broken |= e.is_closed();
            Error::from(e)
        })?;
        if cached {
            if self.cache.len() >= PG_CACHE {
                self.cache.clear();
            }
            self.cache.insert(sql.to_owned(), statement.clone());
        }
        Ok(statement)
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        if pg_unavailable(&e) {
            Error::Unavailable(pg_message(&e))
        } else {
            Error::Database(pg_message(&e))
        }
    }
}

impl From<postgres::Error> for CrateError {
    fn from(e: postgres::Error) -> CrateError {
        Error::from(e).into()
    }
}

/// Whether a failure means "not reachable now" rather than "refused":
/// the connection closed or failed at the socket, or the server said it
/// is shutting down, starting up, or out of connections (SQLSTATE class
/// 08, 57P01-57P03, 53300).
pub fn pg_unavailable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300")
        }
        // No SQLSTATE: an I/O or protocol failure below the server.
        None => e.as_db_error().is_none(),
    }
}

/// The server's own message (with its detail) when it sent one.
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_owned(),
        },
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

fn pg_lastval(conn: &RefCell<PgConn>) -> Result<i64> {
    let row = conn
        .borrow_mut()
        .client
        .query_one("SELECT lastval()", &[])?;
    Ok(row.try_get(0)?)
}

/// SQLite's placeholders in PostgreSQL's form: `?N` becomes `$N`, a bare
/// `?` the next number. Text in quotes and comments is left alone.
pub fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0u32;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    next += 1;
                    out.push_str(&next.to_string());
                } else {
                    next = next.max(digits.parse().unwrap_or(0));
                    out.push_str(&digits);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A value bound to a PostgreSQL placeholder, converted to the type the
/// server inferred for it (an integer bound where text is expected is
/// sent as its decimal text, as SQLite would store it).
struct PgValue<'a>(ValueRef<'a>);

/// Names the kind and size only: tokio-postgres logs a statement's
/// parameters at debug level, and they hold token hashes and sealed keys.
impl fmt::Debug for PgValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ValueRef::Text(s) => write!(f, "<text, {} bytes>", s.len()),
            ValueRef::Blob(b) => write!(f, "<blob, {} bytes>", b.len()),
            v => f.write_str(v.kind()),
        }
    }
}

fn pg_params<'a>(values: &'a [ValueRef<'a>]) -> Vec<PgValue<'a>> {
    values.iter().map(|v| PgValue(*v)).collect()
}

/// The parameter list `postgres` takes.
fn as_dyn<'v>(values: &'v [PgValue<'_>]) -> Vec<&'v (dyn postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

impl postgres::types::ToSql for PgValue<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use postgres::types::{IsNull, ToSql as P, Type};
        let text = matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
        );
        match self.0 {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Integer(i) => match *ty {
                Type::INT8 => P::to_sql(&i, ty, out),
                Type::INT4 => P::to_sql(&i32::try_from(i)?, ty, out),
                Type::INT2 => P::to_sql(&i16::try_from(i)?, ty, out),
                Type::BOOL => P::to_sql(&(i != 0), ty, out),
                Type::FLOAT8 => P::to_sql(&(i as f64), ty, out),
                Type::FLOAT4 => P::to_sql(&(i as f32), ty, out),
                _ if text => P::to_sql(&i.to_string().as_str(), ty, out),
                _ => Err(format!("cannot bind an integer to a {ty} parameter").into()),
            },
            ValueRef::Real(r) => match *ty {
                Type::FLOAT8 => P::to_sql(&r, ty, out),
                Type::FLOAT4 => P::to_sql(&(r as f32), ty, out),
                _ if text => P::to_sql(&r.to_string().as_str(), ty, out),
                _ => Err(format!("cannot bind a real to a {ty} parameter").into()),
            },
            ValueRef::Text(s) => match *ty {
                _ if text => P::to_sql(&s, ty, out),
                Type::JSON => {
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                // JSONB's binary form: a version byte, then the text.
                Type::JSONB => {
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::BYTEA => P::to_sql(&s.as_bytes(), ty, out),
                _ => Err(format!("cannot bind text to a {ty} parameter").into()),
            },
            ValueRef::Blob(b) => match *ty {
                Type::BYTEA => P::to_sql(&b, ty, out),
                _ => Err(format!("cannot bind a blob to a {ty} parameter").into()),
            },
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A column's bytes as the server sent them (binary format).
struct Raw<'a>(&'a [u8]);

impl<'a> postgres::types::FromSql<'a> for Raw<'a> {
    fn from_sql(
        _: &postgres::types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
}

/// A PostgreSQL row as SQLite's kinds of value.
fn pg_row(row: &postgres::Row) -> Result<Vec<Value>> {
    use postgres::types::Type;
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let Some(Raw(raw)) = row.try_get::<_, Option<Raw>>(i)? else {
            values.push(Value::Null);
            continue;
        };
        let bad = |what: &str| Error::Conversion {
            column: i,
            message: format!("{what} in a {} column", column.type_()),
        };
        let fixed = |n: usize| -> Result<[u8; 8]> {
            if raw.len() != n {
                return Err(bad("wrong length"));
            }
            let mut b = [0u8; 8];
            b[8 - n..].copy_from_slice(raw);
            Ok(b)
        };
        let v = match *column.type_() {
            Type::INT8 => Value::Integer(i64::from_be_bytes(fixed(8)?)),
            Type::INT4 => Value::Integer(i32::from_be_bytes(
                raw.try_into().map_err(|_| bad("wrong length"))?,
            ) as i64),
            Type::INT2 => Value::Integer(i16::from_be_bytes(
                raw.try_into().map_err(|_| bad("wrong length"))?,
            ) as i64),
            Type::OID => Value::Integer(u32::from_be_bytes(
                raw.try_into().map_err(|_| bad("wrong length"))?,
            ) as i64),
            Type::BOOL => Value::Integer((raw.first() == Some(&1)) as i64),
            Type::FLOAT8 => Value::Real(f64::from_be_bytes(fixed(8)?)),
            Type::FLOAT4 => Value::Real(f32::from_be_bytes(
                raw.try_into().map_err(|_| bad("wrong length"))?,
            ) as f64),
            Type::NUMERIC => numeric(raw).ok_or_else(|| bad("an unreadable numeric"))?,
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::VOID => Value::Null,
            Type::JSONB if raw.first() == Some(&1) => Value::Text(
                String::from_utf8(raw[1..].to_vec()).map_err(|_| bad("text that is not UTF-8"))?,
            ),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
                Value::Text(
                    String::from_utf8(raw.to_vec()).map_err(|_| bad("text that is not UTF-8"))?,
                )
            }
            _ => return Err(bad("a value of an unsupported type")),
        };
        values.push(v);
    }
    Ok(values)
}

/// NUMERIC's binary form (`SUM` of a BIGINT column is one): an integer
/// when it has no fraction and fits, else a real.
fn numeric(raw: &[u8]) -> Option<Value> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*raw.get(2 * i)?, *raw.get(2 * i + 1)?]))
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i32;
    let sign = word(2)?;
    let dscale = word(3)?;
    if sign == 0xC000 {
        return Some(Value::Real(f64::NAN));
    }
    let negative = sign == 0x4000;
    let mut int: Option<i64> = Some(0);
    let mut real = 0f64;
    let mut fraction = false;
    for k in 0..ndigits {
        let d = word(4 + k)? as i64;
        let power = weight - k as i32;
        real += d as f64 * 10000f64.powi(power);
        if power < 0 {
            fraction |= d != 0;
        } else {
            int = int.and_then(|n| {
                let scaled = (0..power).try_fold(d, |acc, _| acc.checked_mul(10000))?;
                n.checked_add(scaled)
            });
        }
    }
    Some(match int {
        Some(n) if dscale == 0 && !fraction => Value::Integer(if negative { -n } else { n }),
        _ => Value::Real(if negative { -real } else { real }),
    })
}

#[cfg(test)]
mod tests {
    use super::{numeric, pg_sql, Value};

    #[test]
    fn placeholders_become_postgres_ones_outside_quotes_and_comments() {
        assert_eq!(
            pg_sql("SELECT a FROM t WHERE a = ?1 AND b = ?2"),
            "SELECT a FROM t WHERE a = $1 AND b = $2"
        );
        assert_eq!(pg_sql("VALUES (?, ?, ?)"), "VALUES ($1, $2, $3)");
        assert_eq!(pg_sql("x = ?12 OR y = ?12"), "x = $12 OR y = $12");
        assert_eq!(
            pg_sql("a = '?' AND \"q?\" = ?1 -- why?\n AND b = ?2"),
            "a = '?' AND \"q?\" = $1 -- why?\n AND b = $2"
        );
        // A bare `?` after numbered ones takes the next number.
        assert_eq!(pg_sql("?3 ?"), "$3 $4");
    }

    #[test]
    fn numerics_read_as_integers_when_whole() {
        // 12345678 = digits [1234, 5678], weight 1.
        let raw = [0, 2, 0, 1, 0, 0, 0, 0, 0x04, 0xd2, 0x16, 0x2e];
        assert_eq!(numeric(&raw), Some(Value::Integer(12_345_678)));
        // -0.5 = digit [5000], weight -1, negative, scale 1.
        let raw = [0, 1, 0xff, 0xff, 0x40, 0, 0, 1, 0x13, 0x88];
        assert_eq!(numeric(&raw), Some(Value::Real(-0.5)));
        // Zero has no digits.
        assert_eq!(numeric(&[0, 0, 0, 0, 0, 0, 0, 0]), Some(Value::Integer(0)));
        assert_eq!(numeric(&[0, 3]), None);
    }
}
