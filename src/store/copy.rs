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

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::db::{self, params, Queries, Value};
use super::postgres::{DatabaseUrl, Postgres};
use super::sqlite::Sqlite;
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
