//! Artifact rows of a runtime: listeners, services, their resources and
//! listener bindings, and log levels.
//!
//! [`sync`] compares what a full heartbeat reports with what is stored and
//! writes only the difference (insert new rows, update changed ones, delete
//! vanished ones), so an unchanged service costs no write at all. Table and
//! column names below are constants of this file, never input.

use std::collections::BTreeMap;

use super::db;
use super::db::{params_from_iter, Queries, Transaction};
use db::Value;
use serde_json::Map;

use crate::error::Result;
use crate::model::runtimes::{Artifacts, Listener, ListenerRef, Resource, Service};

/// How many artifact rows a sync wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArtifactWrites {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl ArtifactWrites {
    pub fn total(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

pub(super) struct Table {
    pub(super) name: &'static str,
    pub(super) keys: &'static [&'static str],
    pub(super) values: &'static [&'static str],
}

const LISTENERS: Table = Table {
    name: "listeners",
    keys: &["name"],
    values: &["package", "protocol", "host", "port", "state", "attributes"],
};
const SERVICES: Table = Table {
    name: "services",
    keys: &["name"],
    values: &["base_path", "package", "state", "attributes"],
};
const RESOURCES: Table = Table {
    name: "service_resources",
    keys: &["service", "url", "methods"],
    values: &["attributes"],
};
const BINDINGS: Table = Table {
    name: "service_listeners",
    keys: &["service", "listener"],
    values: &[],
};
pub(super) const LOG_LEVELS: Table = Table {
    name: "log_levels",
    keys: &["component"],
    values: &["level"],
};

pub(super) type Rows = BTreeMap<Vec<String>, Vec<Value>>;

fn text(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::Text(s.clone()))
}

fn json(m: &Map<String, serde_json::Value>) -> Value {
    Value::Text(serde_json::Value::Object(m.clone()).to_string())
}

/// A digest of the rows one table should hold (32 hex digits of SHA-256
/// over a length-prefixed encoding): a table whose digest is the stored
/// one is not read or written.
fn rows_digest(rows: &Rows) -> String {
    let mut d = ring::digest::Context::new(&ring::digest::SHA256);
    let mut bytes = |tag: u8, b: &[u8]| {
        d.update(&[tag]);
        d.update(&(b.len() as u64).to_le_bytes());
        d.update(b);
    };
    for (key, vals) in rows {
        bytes(b'r', &[]);
        for k in key {
            bytes(b'k', k.as_bytes());
        }
        for v in vals {
            match v {
                Value::Null => bytes(b'n', &[]),
                Value::Integer(i) => bytes(b'i', &i.to_le_bytes()),
                Value::Real(f) => bytes(b'f', &f.to_le_bytes()),
                Value::Text(t) => bytes(b't', t.as_bytes()),
                Value::Blob(b) => bytes(b'b', b),
            }
        }
    }
    d.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes the difference between stored rows and `artifacts`/`log_levels`,
/// reading and writing only the tables whose digest differs from the one
/// in `stored` (the table digests [`sync`] returned last time, space
/// separated; empty or unreadable: every table). Returns the writes and
/// the new table digests.
pub fn sync(
    tx: &Transaction,
    runtime_id: &str,
    artifacts: &Artifacts,
    log_levels: &BTreeMap<String, String>,
    stored: &str,
) -> Result<(ArtifactWrites, String)> {
    let mut listeners = Rows::new();
    for l in &artifacts.listeners {
        let port = l.port.map_or(Value::Null, Value::Integer);
        listeners.insert(
            vec![l.name.clone()],
            vec![
                text(&l.package),
                text(&l.protocol),
                text(&l.host),
                port,
                text(&l.state),
                json(&l.attributes),
            ],
        );
    }
    let (mut services, mut resources, mut bindings) = (Rows::new(), Rows::new(), Rows::new());
    for s in &artifacts.services {
        services.insert(
            vec![s.name.clone()],
            vec![
                text(&s.base_path),
                text(&s.package),
                text(&s.state),
                json(&s.attributes),
            ],
        );
        for r in &s.resources {
            resources.insert(
                vec![s.name.clone(), r.url.clone(), r.methods.join(",")],
                vec![json(&r.attributes)],
            );
        }
        for l in &s.listeners {
            bindings.insert(vec![s.name.clone(), l.name.clone()], vec![]);
        }
    }
    let levels: Rows = log_levels
        .iter()
        .map(|(k, v)| (vec![k.clone()], vec![Value::Text(v.clone())]))
        .collect();

    let tables = [
        (&LISTENERS, listeners),
        (&SERVICES, services),
        (&RESOURCES, resources),
        (&BINDINGS, bindings),
        (&LOG_LEVELS, levels),
    ];
    let old: Vec<&str> = stored.split(' ').collect();
    let old = if old.len() == tables.len() {
        old
    } else {
        Vec::new()
    };
    let mut w = ArtifactWrites::default();
    let mut digests = Vec::with_capacity(tables.len());
    for (i, (table, rows)) in tables.into_iter().enumerate() {
        let digest = rows_digest(&rows);
        if old.get(i) != Some(&digest.as_str()) {
            sync_table(tx, table, runtime_id, rows, &mut w)?;
        }
        digests.push(digest);
    }
    Ok((w, digests.join(" ")))
}

pub(super) fn load_rows(
    tx: &Transaction,
    t: &Table,
    runtime_id: &str,
) -> Result<Vec<(Vec<String>, Vec<Value>)>> {
    let cols: Vec<&str> = t.keys.iter().chain(t.values).copied().collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE runtime_id = ?1 ORDER BY rowid",
        cols.join(", "),
        t.name
    );
    let mut st = tx.prepare_cached(&sql)?;
    let nk = t.keys.len();
    let rows = st.query_map([runtime_id], |r| {
        let mut key = Vec::with_capacity(nk);
        for i in 0..nk {
            key.push(r.get::<_, String>(i)?);
        }
        let mut vals = Vec::with_capacity(t.values.len());
        for i in nk..cols.len() {
            vals.push(r.get::<_, Value>(i)?);
        }
        Ok((key, vals))
    })?;
    Ok(rows.collect::<db::Result<_>>()?)
}

pub(super) fn sync_table(
    tx: &Transaction,
    t: &Table,
    runtime_id: &str,
    mut want: Rows,
    w: &mut ArtifactWrites,
) -> Result<()> {
    let key_match: Vec<String> = t
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ?{}", i + 2))
        .collect();
    for (key, vals) in load_rows(tx, t, runtime_id)? {
        match want.remove(&key) {
            Some(new) if new == vals => {}
            Some(new) => {
                let sets: Vec<String> = t
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = ?{}", i + 2 + t.keys.len()))
                    .collect();
                let sql = format!(
                    "UPDATE {} SET {} WHERE runtime_id = ?1 AND {}",
                    t.name,
                    sets.join(", "),
                    key_match.join(" AND ")
                );
                let args = std::iter::once(Value::Text(runtime_id.into()))
                    .chain(key.into_iter().map(Value::Text))
                    .chain(new);
                tx.prepare_cached(&sql)?.execute(params_from_iter(args))?;
                w.updated += 1;
            }
            None => {
                let sql = format!(
                    "DELETE FROM {} WHERE runtime_id = ?1 AND {}",
                    t.name,
                    key_match.join(" AND ")
                );
                let args = std::iter::once(Value::Text(runtime_id.into()))
                    .chain(key.into_iter().map(Value::Text));
                tx.prepare_cached(&sql)?.execute(params_from_iter(args))?;
                w.deleted += 1;
            }
        }
    }
    let cols: Vec<&str> = ["runtime_id"]
        .iter()
        .chain(t.keys)
        .chain(t.values)
        .copied()
        .collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        t.name,
        cols.join(", "),
        marks.join(", ")
    );
    for (key, vals) in want {
        let args = std::iter::once(Value::Text(runtime_id.into()))
            .chain(key.into_iter().map(Value::Text))
            .chain(vals);
        tx.prepare_cached(&sql)?.execute(params_from_iter(args))?;
        w.inserted += 1;
    }
    Ok(())
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        _ => None,
    }
}

fn value_map(v: &Value) -> Map<String, serde_json::Value> {
    match value_text(v).and_then(|s| serde_json::from_str(&s).ok()) {
        Some(serde_json::Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Rebuilds the stored artifacts of a runtime (without `main` and `other`, kept on the runtime row).
pub fn load(tx: &Transaction, runtime_id: &str) -> Result<Artifacts> {
    let listeners = load_rows(tx, &LISTENERS, runtime_id)?
        .into_iter()
        .map(|(k, v)| Listener {
            name: k[0].clone(),
            package: value_text(&v[0]),
            protocol: value_text(&v[1]),
            host: value_text(&v[2]),
            port: match v[3] {
                Value::Integer(p) => Some(p),
                _ => None,
            },
            state: value_text(&v[4]),
            attributes: value_map(&v[5]),
        })
        .collect();
    let mut resources: BTreeMap<String, Vec<Resource>> = BTreeMap::new();
    for (k, v) in load_rows(tx, &RESOURCES, runtime_id)? {
        let methods = if k[2].is_empty() {
            vec![]
        } else {
            k[2].split(',').map(str::to_string).collect()
        };
        resources.entry(k[0].clone()).or_default().push(Resource {
            url: k[1].clone(),
            methods,
            attributes: value_map(&v[0]),
        });
    }
    let mut bindings: BTreeMap<String, Vec<ListenerRef>> = BTreeMap::new();
    for (k, _) in load_rows(tx, &BINDINGS, runtime_id)? {
        bindings
            .entry(k[0].clone())
            .or_default()
            .push(ListenerRef { name: k[1].clone() });
    }
    let services = load_rows(tx, &SERVICES, runtime_id)?
        .into_iter()
        .map(|(k, v)| Service {
            name: k[0].clone(),
            base_path: value_text(&v[0]),
            package: value_text(&v[1]),
            state: value_text(&v[2]),
            listeners: bindings.remove(&k[0]).unwrap_or_default(),
            resources: resources.remove(&k[0]).unwrap_or_default(),
            attributes: value_map(&v[3]),
        })
        .collect();
    Ok(Artifacts {
        listeners,
        services,
        main: None,
        other: Map::new(),
    })
}

/// The stored log levels of a runtime.
pub fn load_log_levels(tx: &Transaction, runtime_id: &str) -> Result<BTreeMap<String, String>> {
    Ok(load_rows(tx, &LOG_LEVELS, runtime_id)?
        .into_iter()
        .map(|(k, v)| (k[0].clone(), value_text(&v[0]).unwrap_or_default()))
        .collect())
}
