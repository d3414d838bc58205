//! `icpd db copy`: an install's SQLite database copied into an empty
//! PostgreSQL database, then verified row by row.
//!
//! Both sides are first brought to the current schema version (the same
//! numbered migrations), so the tables and columns match. The copy is one
//! PostgreSQL transaction: the rows the migrations seed are truncated,
//! every table is copied parents first (foreign keys), with its ids kept
//! (and SQLite's insertion order in the `rowid` columns that stand for
//! it), the counters the triggers keep (`meta`, `runtime_membership`)
//! last so they end as SQLite had them, and every identity sequence is
//! moved past the highest id. Then each table is read back from both sides
//! in the same order and compared value by value; a difference names the
//! table, row and column, never the value (it may be sealed material).
//!
//! With `--with-telemetry`, `telemetry.db` follows ([`telemetry_to_postgres`]):
//! the telemetry schema is created (or must be empty), then `logs` (with
//! SQLite's rowids, their arrival order), `requests` and `metric_points`
//! are copied with their ids in one transaction, in pages of
//! [`TELEMETRY_PAGE`] rows (a telemetry file may hold millions), and read
//! back from both sides page by page, in the same order, and compared
//! value by value, with the row counts. FTS5's index is not copied: the
//! PostgreSQL text index is computed from each message. A NUL in text,
//! which PostgreSQL cannot store, is copied as U+001A (SUBSTITUTE, as
//! ingest on PostgreSQL stores it), and compared so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::db::{self, params, Queries, Value};
use super::postgres::{DatabaseUrl, Postgres};
use super::sqlite::Sqlite;
use super::telemetry::{insert_many, shared_text, TelemetryStore};
use crate::error::{Error, Result};

/// Tables that triggers keep up to date as other tables change: copied
/// after everything else, so their copied values are the final ones.
const COUNTERS: [&str; 2] = ["meta", "runtime_membership"];

/// What was copied.
#[derive(Debug)]
pub struct CopyReport {
    pub schema_version: i64,
    /// Rows per table, in copy order.
    pub tables: Vec<(String, usize)>,
}

struct Table {
    name: String,
    columns: Vec<String>,
    /// Whether the PostgreSQL table has a `rowid` column standing for
    /// SQLite's implicit one.
    rowid: bool,
}

/// Copies the SQLite database at `source` into the empty PostgreSQL
/// database at `target`, and verifies the copy.
pub fn sqlite_to_postgres(source: &Path, target: &DatabaseUrl) -> Result<CopyReport> {
    if !source.exists() {
        return Err(Error::DataDir(format!(
            "{} does not exist: check --data-dir (ICP_DATA_DIR)",
            source.display()
        )));
    }
    let pg = Postgres::connect_unmigrated(target)?;
    let existing: i64 = pg.read(|tx| {
        Ok(tx.query_row(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            [],
            |r| r.get(0),
        )?)
    })?;
    if existing > 0 {
        return Err(Error::Conflict(format!(
            "{} already holds {existing} table(s): icpd db copy fills an empty database only; create a new one (README, \"PostgreSQL\")",
            target.display()
        )));
    }
    pg.migrate(super::postgres_migrations::MIGRATIONS.len())?;
    let sqlite = Sqlite::open(source)?;
    let schema_version = sqlite.schema_version()?;
    if pg.schema_version()? != schema_version {
        return Err(Error::Internal(format!(
            "schema versions differ after migrating: SQLite {schema_version}, PostgreSQL {}",
            pg.schema_version()?
        )));
    }
    let tables = sqlite.read(tables_in_copy_order)?;
    let tables = pg.read(|dst| {
        tables
            .into_iter()
            .map(|mut t| {
                t.rowid = dst
                    .query_row(
                        "SELECT count(*) FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = ?1 AND column_name = 'rowid'",
                        [&t.name],
                        |r| r.get::<_, i64>(0),
                    )?
                    > 0;
                Ok(t)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut report = CopyReport {
        schema_version,
        tables: Vec::new(),
    };
    sqlite.read(|src| {
        pg.write(|dst| {
            let list = tables
                .iter()
                .map(|t| quote(&t.name))
                .collect::<Vec<_>>()
                .join(", ");
            dst.execute_batch(&format!("TRUNCATE {list} RESTART IDENTITY CASCADE"))?;
            for t in &tables {
                let n = copy_table(src, dst, t)?;
                report.tables.push((t.name.clone(), n));
            }
            move_identities(dst)?;
            Ok(())
        })
    })?;
    sqlite.read(|src| pg.read(|dst| verify(src, dst, &tables)))?;
    Ok(report)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every table of the SQLite database, each after the tables its foreign
/// keys name, the trigger-kept counters last.
fn tables_in_copy_order(src: &db::Transaction) -> Result<Vec<Table>> {
    let mut st = src.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<db::Result<_>>()?;
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in &names {
        let mut st = src.prepare("SELECT \"table\" FROM pragma_foreign_key_list(?1)")?;
        let ps: BTreeSet<String> = st
            .query_map([name], |r| r.get(0))?
            .collect::<db::Result<_>>()?;
        parents.insert(name.clone(), ps.into_iter().filter(|p| p != name).collect());
        let mut st = src.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
        columns.insert(
            name.clone(),
            st.query_map([name], |r| r.get(0))?
                .collect::<db::Result<_>>()?,
        );
    }
    let mut order: Vec<String> = Vec::new();
    let mut placed = BTreeSet::new();
    while order.len() < names.len() {
        let ready: Vec<String> = names
            .iter()
            .filter(|n| !placed.contains(*n))
            .filter(|n| parents[*n].iter().all(|p| placed.contains(p)))
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(Error::Internal(
                "the tables' foreign keys form a cycle; cannot order the copy".into(),
            ));
        }
        for n in ready {
            placed.insert(n.clone());
            order.push(n);
        }
    }
    order.sort_by_key(|n| COUNTERS.contains(&n.as_str()));
    Ok(order
        .into_iter()
        .map(|name| Table {
            columns: columns.remove(&name).unwrap_or_default(),
            name,
            rowid: false,
        })
        .collect())
}

fn copy_table(src: &db::Transaction, dst: &db::Transaction, t: &Table) -> Result<usize> {
    let mut cols: Vec<String> = t.columns.iter().map(|c| quote(c)).collect();
    let mut select = cols.clone();
    if t.rowid {
        cols.push("rowid".into());
        select.push("rowid".into());
    }
    let placeholders = (1..=cols.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({placeholders})",
        quote(&t.name),
        cols.join(", ")
    );
    let mut read = src.prepare(&format!(
        "SELECT {} FROM {} ORDER BY rowid",
        select.join(", "),
        quote(&t.name)
    ))?;
    let mut write = dst.prepare_cached(&insert)?;
    let mut rows = read.query([])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let values = (0..cols.len())
            .map(|i| Ok(row.get_ref(i)?.to_owned()))
            .collect::<db::Result<Vec<Value>>>()?;
        write.execute(db::params_from_iter(&values))?;
        n += 1;
    }
    Ok(n)
}

/// Moves every identity sequence past the highest id copied, so the next
/// row PostgreSQL numbers does not collide.
fn move_identities(dst: &db::Transaction) -> Result<()> {
    let mut st = dst.prepare(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )?;
    let identities: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<db::Result<_>>()?;
    for (table, column) in identities {
        dst.query_row(
            &format!(
                "SELECT setval(pg_get_serial_sequence(?1, ?2), COALESCE(MAX({c}), 0) + 1, false) FROM {t}",
                c = quote(&column),
                t = quote(&table)
            ),
            params![quote(&table), column],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

/// Reads every table from both sides in the same order and compares them
/// value by value.
fn verify(src: &db::Transaction, dst: &db::Transaction, tables: &[Table]) -> Result<()> {
    for t in tables {
        let order = t
            .columns
            .iter()
            .map(|c| format!("{} NULLS FIRST", quote(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {order}",
            t.columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            quote(&t.name)
        );
        let read = |tx: &db::Transaction| -> Result<Vec<Vec<Value>>> {
            let mut st = tx.prepare(&sql)?;
            let rows = st
                .query_map([], |r| {
                    (0..t.columns.len())
                        .map(|i| Ok(r.get_ref(i)?.to_owned()))
                        .collect::<db::Result<Vec<Value>>>()
                })?
                .collect::<db::Result<Vec<_>>>()?;
            Ok(rows)
        };
        let (a, b) = (read(src)?, read(dst)?);
        if a.len() != b.len() {
            return Err(Error::Internal(format!(
                "verification failed: {} has {} rows in SQLite and {} in PostgreSQL",
                t.name,
                a.len(),
                b.len()
            )));
        }
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            if let Some(c) = (0..x.len()).find(|&c| x[c] != y[c]) {
                return Err(Error::Internal(format!(
                    "verification failed: {} row {} differs in column {}",
                    t.name,
                    i + 1,
                    t.columns[c]
                )));
            }
        }
    }
    Ok(())
}

/// Telemetry rows read (and compared) per page.
pub const TELEMETRY_PAGE: i64 = 2_000;

/// The telemetry tables, each with the key it is copied and compared in
/// order of: SQLite's rowid for logs (arrival order; the PostgreSQL table's
/// `rowid` column), the id for the others.
const TELEMETRY_TABLES: [(&str, &str); 3] = [
    ("logs", "rowid"),
    ("requests", "id"),
    ("metric_points", "id"),
];

/// Copies the SQLite telemetry file at `source` into the PostgreSQL
/// database at `target`, whose telemetry tables must be missing or empty,
/// and verifies the copy (see the module doc).
pub fn telemetry_to_postgres(source: &Path, target: &DatabaseUrl) -> Result<CopyReport> {
    if !source.exists() {
        return Err(Error::DataDir(format!(
            "{} does not exist: check --data-dir (ICP_DATA_DIR)",
            source.display()
        )));
    }
    let file = TelemetryStore::open(source)?;
    let shared = TelemetryStore::connect(target)?;
    let schema_version = file.schema_version()?;
    if shared.schema_version()? != schema_version {
        return Err(Error::Internal(format!(
            "telemetry schema versions differ after migrating: SQLite {schema_version}, PostgreSQL {}",
            shared.schema_version()?
        )));
    }
    let held: i64 = shared.read(|dst| {
        let mut n = 0;
        for (table, _) in TELEMETRY_TABLES {
            n += dst.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })?;
        }
        Ok(n)
    })?;
    if held > 0 {
        return Err(Error::Conflict(format!(
            "{} already holds {held} telemetry record(s): the telemetry copy fills empty tables only",
            target.display()
        )));
    }
    let columns: Vec<Vec<String>> = file.read(|src| {
        TELEMETRY_TABLES
            .iter()
            .map(|(table, _)| {
                let mut st = src.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
                let names = st
                    .query_map([table], |r| r.get(0))?
                    .collect::<db::Result<Vec<String>>>()?;
                Ok(names)
            })
            .collect()
    })?;
    let mut report = CopyReport {
        schema_version,
        tables: Vec::new(),
    };
    file.read(|src| {
        shared.write(|dst| {
            for ((table, key), cols) in TELEMETRY_TABLES.iter().zip(&columns) {
                let n = copy_pages(src, dst, table, key, cols)?;
                report.tables.push((table.to_string(), n));
            }
            move_identities(dst)?;
            Ok(())
        })
    })?;
    file.read(|src| {
        shared.read(|dst| {
            for ((table, key), cols) in TELEMETRY_TABLES.iter().zip(&columns) {
                verify_pages(src, dst, table, key, cols)?;
            }
            Ok(())
        })
    })?;
    Ok(report)
}

/// The columns of a telemetry table as selected and inserted: the SQLite
/// table's, and the key when it is SQLite's implicit rowid.
fn telemetry_columns(key: &str, cols: &[String]) -> Vec<String> {
    let mut all: Vec<String> = cols.iter().map(|c| quote(c)).collect();
    if !cols.iter().any(|c| c == key) {
        all.push(key.to_string());
    }
    all
}

/// A value as PostgreSQL stores it (see `store::telemetry::shared_text`).
fn storable(v: Value) -> Value {
    match v {
        Value::Text(t) if t.contains('\0') => Value::Text(shared_text(&t)),
        v => v,
    }
}

/// Up to [`TELEMETRY_PAGE`] rows of `table` after key `after`, in key
/// order, with the key as the last value of each.
fn telemetry_page(
    tx: &db::Transaction,
    table: &str,
    key: &str,
    columns: &[String],
    after: i64,
) -> Result<Vec<Vec<Value>>> {
    let sql = format!(
        "SELECT {}, {key} FROM {table} WHERE {key} > ?1 ORDER BY {key} LIMIT ?2",
        columns.join(", ")
    );
    let width = columns.len() + 1;
    let mut st = tx.prepare_cached(&sql)?;
    let rows = st
        .query_map(params![after, TELEMETRY_PAGE], |r| {
            (0..width)
                .map(|i| Ok(storable(r.get_ref(i)?.to_owned())))
                .collect::<db::Result<Vec<Value>>>()
        })?
        .collect::<db::Result<Vec<_>>>()?;
    Ok(rows)
}

fn page_end(rows: &[Vec<Value>]) -> Option<i64> {
    match rows.last()?.last()? {
        Value::Integer(k) => Some(*k),
        _ => None,
    }
}

fn copy_pages(
    src: &db::Transaction,
    dst: &db::Transaction,
    table: &str,
    key: &str,
    cols: &[String],
) -> Result<usize> {
    let columns = telemetry_columns(key, cols);
    let mut after = i64::MIN;
    let mut n = 0;
    loop {
        let mut rows = telemetry_page(src, table, key, &columns, after)?;
        let Some(end) = page_end(&rows) else {
            return Ok(n);
        };
        n += rows.len();
        let full = rows.len() as i64 >= TELEMETRY_PAGE;
        for row in &mut rows {
            row.pop(); // the key, selected again
        }
        insert_many(
            dst,
            table,
            &columns.join(", "),
            rows.into_iter().map(Ok),
            None,
            true,
        )?;
        if !full {
            return Ok(n);
        }
        after = end;
    }
}

fn verify_pages(
    src: &db::Transaction,
    dst: &db::Transaction,
    table: &str,
    key: &str,
    cols: &[String],
) -> Result<()> {
    let columns = telemetry_columns(key, cols);
    let names: Vec<&str> = cols
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(key))
        .collect();
    let (mut after, mut seen) = (i64::MIN, 0usize);
    loop {
        let a = telemetry_page(src, table, key, &columns, after)?;
        let b = telemetry_page(dst, table, key, &columns, after)?;
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            if let Some(c) = (0..x.len()).find(|&c| x.get(c) != y.get(c)) {
                return Err(Error::Internal(format!(
                    "verification failed: {table} row {} differs in column {}",
                    seen + i + 1,
                    names.get(c).copied().unwrap_or(key)
                )));
            }
        }
        if a.len() != b.len() {
            break;
        }
        seen += a.len();
        match page_end(&a) {
            Some(end) if a.len() as i64 >= TELEMETRY_PAGE => after = end,
            _ => break,
        }
    }
    let count = |tx: &db::Transaction| -> Result<i64> {
        Ok(tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    let (x, y) = (count(src)?, count(dst)?);
    if x != y {
        return Err(Error::Internal(format!(
            "verification failed: {table} has {x} rows in SQLite and {y} in PostgreSQL"
        )));
    }
    Ok(())
}
