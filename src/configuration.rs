//! Configuration of an integration per environment: the values of its
//! `Config.toml`, kept as immutable revisions, with secret values sealed.
//!
//! (Not to be confused with `config.rs`, icpd's own settings.)
//!
//! A value sits under a module section (`[org.module]`, or `""` for
//! top-level keys) and a key, and is typed: string, int, float, boolean,
//! array or table. Every change writes a new revision, numbered 1, 2, ...
//! per (integration, environment), holding the whole value set (so any
//! revision renders on its own, and a promotion copies one revision into
//! the next environment as a new revision there, see [`open_values`] and
//! [`seal_values`]). A value marked secret is stored sealed with the master
//! key; its AEAD context names the integration, environment, section and
//! key ([`seal_context`]), so a sealed value cannot be moved to another
//! place. The API never returns a secret value once set (only that it is
//! set, when and by whom), and no log line carries a value: errors name
//! sections and keys only, and the types holding values in clear redact
//! them in `Debug`.
//!
//! Rendering turns a revision into TOML with the `toml` crate (never by
//! concatenating strings), secrets opened: for a runtime on `GET
//! /icp/config` ([`fetch_for_runtime`], which records who fetched which
//! revision) and for `icpd config render` ([`render`]).

pub use crate::model::configuration::*;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{Keyset, Listing};
use crate::commands::Scope;
use crate::error::{Error, Result};
use crate::master_key::MasterKey;
use crate::secrets::ActiveSecret;
use crate::store::{Store, Tx};
use crate::time::{serialize_opt_rfc3339, serialize_rfc3339, Millis};

/// Values in one revision, at most.
pub const MAX_VALUES: usize = 1000;
/// One value's JSON text, at most.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Nesting of arrays and tables, at most.
const MAX_DEPTH: usize = 16;

/// One value in clear, as a promotion carries it between environments.
#[derive(Clone, PartialEq)]
pub struct PlainValue {
    pub section: String,
    pub key: String,
    pub value_type: ValueType,
    pub secret: bool,
    pub value: Value,
    pub updated_by: String,
    pub updated_at: Millis,
}

impl std::fmt::Debug for PlainValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainValue")
            .field("section", &self.section)
            .field("key", &self.key)
            .field("type", &self.value_type)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// A value as the API shows it: a secret one only as set, when and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueView {
    pub section: String,
    pub key: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub value_type: Option<ValueType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub secret: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<bool>,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub updated_at: Millis,
    pub updated_by: String,
}

impl ValueView {
    fn of(v: &StoredValue) -> ValueView {
        let (value_type, value, set) = if v.secret {
            (None, None, Some(true))
        } else {
            let value = v
                .value
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or(Value::Null);
            (Some(v.value_type), Some(value), None)
        };
        ValueView {
            section: v.section.clone(),
            key: v.key.clone(),
            value_type,
            value,
            secret: v.secret,
            set,
            updated_at: v.updated_at,
            updated_by: v.updated_by.clone(),
        }
    }
}

/// The configuration of an integration in an environment at one revision,
/// as the API shows it (secrets redacted). Revision 0: nothing set yet.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigView {
    pub project: String,
    pub integration: String,
    pub environment: String,
    pub revision: i64,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub created_at: Option<Millis>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub promoted_from: Option<RevisionRef>,
    pub values: Vec<ValueView>,
}

/// `PATCH .../config`: values to set and keys to unset, in one new revision.
#[derive(Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigChange {
    #[serde(default)]
    pub set: Vec<SetValue>,
    #[serde(default)]
    pub unset: Vec<ValueKey>,
    pub comment: Option<String>,
    /// Refuse (409) unless the current revision is this one (0: none yet).
    pub expected_revision: Option<i64>,
}

impl std::fmt::Debug for ConfigChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigChange")
            .field("set", &self.set)
            .field("unset", &self.unset)
            .finish_non_exhaustive()
    }
}

/// One value to set: in a configuration change, or as a promotion's
/// override (`promotion::Override`) on top of the source's values.
#[derive(Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetValue {
    #[serde(default)]
    pub section: String,
    pub key: String,
    pub value: Value,
    /// `string`, `int`, `float`, `boolean`, `array` or `table`; inferred
    /// from the JSON value when absent (a number with a fraction is a float).
    #[serde(rename = "type")]
    pub value_type: Option<String>,
    /// Absent: as the value it replaces was (a secret stays secret; in a
    /// promotion, the source's value of that key), else false.
    pub secret: Option<bool>,
}

impl SetValue {
    /// The checked place (trimmed), type and value.
    pub(crate) fn check(&self) -> Result<(ValueKey, ValueType, Value)> {
        let k = ValueKey {
            section: self.section.trim().to_string(),
            key: self.key.trim().to_string(),
        };
        check_key(&k)?;
        let (t, v) = check_value(&k.dotted(), self.value_type.as_deref(), &self.value)?;
        Ok((k, t, v))
    }
}

impl std::fmt::Debug for SetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetValue")
            .field("section", &self.section)
            .field("key", &self.key)
            .field("type", &self.value_type)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// A rendered revision: the TOML text, with secrets in clear.
#[derive(Clone, PartialEq)]
pub struct Rendered {
    /// 0 when nothing was ever set (the TOML is empty then).
    pub revision: i64,
    pub toml: String,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rendered(revision {}, ..)", self.revision)
    }
}

// ---- validation ------------------------------------------------------------

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A Ballerina-style identifier: a letter or `_`, then letters, digits, `_`.
fn identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a section (`""` or dotted segments of letters, digits and `_`)
/// and a key (an identifier).
pub fn check_key(k: &ValueKey) -> Result<()> {
    if !k.section.is_empty() {
        let ok = k.section.len() <= 256
            && k.section.split('.').all(|seg| {
                !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !ok {
            return Err(bad(format!(
                "section '{}' must be a module's dotted name such as 'myorg.orders' (letters, digits, '_' between dots), or empty for top-level keys",
                clip(&k.section)
            )));
        }
    }
    if k.key.len() > 128 || !identifier(&k.key) {
        return Err(bad(format!(
            "key '{}' must be a Ballerina identifier (a letter or '_', then letters, digits or '_'; at most 128)",
            clip(&k.key)
        )));
    }
    Ok(())
}

/// Checks a value against its declared type (or infers it), and returns
/// the type and the value to store (an int given for a float becomes one).
/// Messages name the place, never the value.
pub fn check_value(
    place: &str,
    declared: Option<&str>,
    value: &Value,
) -> Result<(ValueType, Value)> {
    fn element(place: &str, v: &Value, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(bad(format!(
                "{place}: arrays and tables nest deeper than {MAX_DEPTH}"
            )));
        }
        match v {
            Value::Null => Err(bad(format!(
                "{place}: TOML has no null; leave the value out instead"
            ))),
            Value::Number(n) if n.is_u64() && n.as_i64().is_none() => Err(bad(format!(
                "{place}: integer out of range (64-bit signed)"
            ))),
            Value::Array(items) => items.iter().try_for_each(|i| element(place, i, depth + 1)),
            Value::Object(map) => map.values().try_for_each(|i| element(place, i, depth + 1)),
            _ => Ok(()),
        }
    }
    element(place, value, 0)?;
    let inferred = match value {
        Value::String(_) => ValueType::String,
        Value::Bool(_) => ValueType::Boolean,
        Value::Number(n) if n.is_i64() => ValueType::Int,
        Value::Number(_) => ValueType::Float,
        Value::Array(_) => ValueType::Array,
        Value::Object(_) => ValueType::Table,
        Value::Null => unreachable!("refused above"),
    };
    let value_type = match declared {
        None => inferred,
        Some(d) => ValueType::parse(d).ok_or_else(|| {
            bad(format!(
                "{place}: type '{}' must be string, int, float, boolean, array or table",
                clip(d)
            ))
        })?,
    };
    let value = match (value_type, inferred) {
        (t, i) if t == i => value.clone(),
        (ValueType::Float, ValueType::Int) => {
            let n = value.as_i64().unwrap_or_default();
            Value::from(n as f64)
        }
        (t, i) => {
            return Err(bad(format!(
                "{place}: the value is {} {}, not {} {}",
                article(i),
                i.as_str(),
                article(t),
                t.as_str()
            )))
        }
    };
    if value.to_string().len() > MAX_VALUE_BYTES {
        return Err(bad(format!(
            "{place}: the value is longer than {MAX_VALUE_BYTES} bytes as JSON"
        )));
    }
    Ok((value_type, value))
}

fn article(t: ValueType) -> &'static str {
    match t {
        ValueType::Int | ValueType::Array => "an",
        _ => "a",
    }
}

// ---- sealing ---------------------------------------------------------------

/// Seals one value in clear for its place in `scope`.
pub fn seal_value(key: &MasterKey, scope: &Scope, v: &PlainValue) -> Result<StoredValue> {
    let text = v.value.to_string();
    let (value, sealed) = if v.secret {
        let k = ValueKey {
            section: v.section.clone(),
            key: v.key.clone(),
        };
        let context = seal_context(scope.integration_id, scope.environment_id, &k);
        (None, Some(key.seal(&context, text.as_bytes())?))
    } else {
        (Some(text), None)
    };
    Ok(StoredValue {
        section: v.section.clone(),
        key: v.key.clone(),
        value_type: v.value_type,
        secret: v.secret,
        value,
        sealed,
        updated_by: v.updated_by.clone(),
        updated_at: v.updated_at,
    })
}

/// Seals values in clear for `scope` (a promotion's destination).
pub fn seal_values(
    key: &MasterKey,
    scope: &Scope,
    values: &[PlainValue],
) -> Result<Vec<StoredValue>> {
    values.iter().map(|v| seal_value(key, scope, v)).collect()
}

/// Opens the values of a revision of `scope` (secrets decrypted).
pub fn open_values(
    key: &MasterKey,
    scope: &Scope,
    values: &[StoredValue],
) -> Result<Vec<PlainValue>> {
    values
        .iter()
        .map(|v| {
            let k = ValueKey {
                section: v.section.clone(),
                key: v.key.clone(),
            };
            let text = match (&v.value, &v.sealed) {
                (Some(t), _) => t.clone(),
                (None, Some(sealed)) => {
                    let context = seal_context(scope.integration_id, scope.environment_id, &k);
                    String::from_utf8(key.open(&context, sealed)?).map_err(|_| {
                        Error::DataDir(format!("configuration value {} is not text", k.dotted()))
                    })?
                }
                (None, None) => {
                    return Err(Error::DataDir(format!(
                        "configuration value {} has no value",
                        k.dotted()
                    )))
                }
            };
            let value = serde_json::from_str(&text).map_err(|_| {
                Error::DataDir(format!(
                    "configuration value {} is not valid JSON",
                    k.dotted()
                ))
            })?;
            Ok(PlainValue {
                section: v.section.clone(),
                key: v.key.clone(),
                value_type: v.value_type,
                secret: v.secret,
                value,
                updated_by: v.updated_by.clone(),
                updated_at: v.updated_at,
            })
        })
        .collect()
}

// ---- the TOML document -----------------------------------------------------

fn toml_value(v: &Value) -> Result<toml::Value> {
    Ok(match v {
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or_default()),
        },
        Value::Array(items) => {
            toml::Value::Array(items.iter().map(toml_value).collect::<Result<_>>()?)
        }
        Value::Object(map) => toml::Value::Table(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), toml_value(v)?)))
                .collect::<Result<_>>()?,
        ),
        Value::Null => return Err(Error::Internal("a stored value holds null".into())),
    })
}

/// Builds the TOML document of `values`: each under its section's nested
/// tables. A key that is also a section (`[a] b = 1` beside `[a.b]`) is a
/// conflict (400), found here whatever the order.
fn document(values: &[(ValueKey, toml::Value)]) -> Result<toml::Table> {
    let mut root = toml::Table::new();
    // Paths of tables that are sections (not values).
    let mut sections: HashSet<Vec<String>> = HashSet::new();
    let mut leaves: HashSet<Vec<String>> = HashSet::new();
    let conflict = |place: &str| {
        bad(format!(
            "'{place}' would be both a value and a section in Config.toml; rename one of them"
        ))
    };
    for (k, v) in values {
        let mut path: Vec<String> = Vec::new();
        let mut table = &mut root;
        if !k.section.is_empty() {
            for seg in k.section.split('.') {
                path.push(seg.to_string());
                if leaves.contains(&path) {
                    return Err(conflict(&path.join(".")));
                }
                sections.insert(path.clone());
                table = match table
                    .entry(seg.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                {
                    toml::Value::Table(t) => t,
                    _ => return Err(conflict(&path.join("."))),
                };
            }
        }
        path.push(k.key.clone());
        if sections.contains(&path) {
            return Err(conflict(&path.join(".")));
        }
        leaves.insert(path);
        table.insert(k.key.clone(), v.clone());
    }
    Ok(root)
}

/// Checks that `values` make one valid document (secrets need not be open).
pub fn check_document(values: &[StoredValue]) -> Result<()> {
    let placeholders: Vec<(ValueKey, toml::Value)> = values
        .iter()
        .map(|v| {
            (
                ValueKey {
                    section: v.section.clone(),
                    key: v.key.clone(),
                },
                toml::Value::Boolean(true),
            )
        })
        .collect();
    document(&placeholders).map(|_| ())
}

/// Renders values in clear as TOML.
pub fn to_toml(values: &[PlainValue]) -> Result<String> {
    let entries = values
        .iter()
        .map(|v| {
            Ok((
                ValueKey {
                    section: v.section.clone(),
                    key: v.key.clone(),
                },
                toml_value(&v.value)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let doc = document(&entries)?;
    toml::to_string(&doc)
        .map_err(|e| Error::Internal(format!("configuration does not serialize as TOML: {e}")))
}

// ---- revisions -------------------------------------------------------------

/// Writes `values` as the next revision of `scope` inside the caller's
/// transaction (a promotion's too) and returns it.
pub fn write_revision(
    tx: &Tx,
    scope: &Scope,
    values: &[StoredValue],
    meta: &RevisionMeta,
) -> Result<RevisionInfo> {
    if values.len() > MAX_VALUES {
        return Err(bad(format!(
            "a configuration holds at most {MAX_VALUES} values"
        )));
    }
    check_document(values)?;
    let next = tx
        .current_config_revision(scope.integration_id, scope.environment_id)?
        .map_or(1, |r| r.revision + 1);
    let id = tx.insert_config_revision(scope.integration_id, scope.environment_id, next, meta)?;
    for v in values {
        tx.insert_config_value(id, v)?;
    }
    tx.config_revision(scope.integration_id, scope.environment_id, next)?
        .ok_or_else(|| Error::Internal("configuration revision vanished".into()))
}

/// The current revision of `scope` and its values (none: revision 0).
pub fn current(tx: &Tx, scope: &Scope) -> Result<(Option<RevisionInfo>, Vec<StoredValue>)> {
    match tx.current_config_revision(scope.integration_id, scope.environment_id)? {
        Some(r) => {
            let values = tx.config_values(r.id)?;
            Ok((Some(r), values))
        }
        None => Ok((None, Vec::new())),
    }
}

fn view(scope: &Scope, rev: Option<RevisionInfo>, values: &[StoredValue]) -> ConfigView {
    ConfigView {
        project: scope.project.clone(),
        integration: scope.integration.clone(),
        environment: scope.environment.clone(),
        revision: rev.as_ref().map_or(0, |r| r.revision),
        created_at: rev.as_ref().map(|r| r.created_at),
        created_by: rev.as_ref().map(|r| r.created_by.clone()),
        comment: rev.as_ref().map(|r| r.comment.clone()),
        promoted_from: rev.and_then(|r| r.promoted_from),
        values: values.iter().map(ValueView::of).collect(),
    }
}

/// The configuration of `scope` at `revision` (the current one when
/// `None`), secrets redacted.
pub fn get(store: &Store, scope: &Scope, revision: Option<i64>) -> Result<ConfigView> {
    store.read(|tx| {
        let (rev, values) = match revision {
            None => current(tx, scope)?,
            Some(n) => {
                let r = tx
                    .config_revision(scope.integration_id, scope.environment_id, n)?
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "{}/{} has no configuration revision {n} in '{}'",
                            scope.project, scope.integration, scope.environment
                        ))
                    })?;
                let values = tx.config_values(r.id)?;
                (Some(r), values)
            }
        };
        Ok(view(scope, rev, &values))
    })
}

/// The revisions of `scope`, newest first; the cursor is a revision number.
pub fn revisions(store: &Store, scope: &Scope, page: &Keyset) -> Result<Listing<RevisionInfo>> {
    let before = page.after_number()?;
    let (rows, total) = store.read(|tx| {
        tx.config_revision_page(
            scope.integration_id,
            scope.environment_id,
            before,
            page.limit + 1,
        )
    })?;
    Ok(Listing::new(rows, total, page.limit, |r| {
        r.revision.to_string()
    }))
}

/// Applies a batch of sets and unsets to the current values of `scope` as
/// one new revision, and returns it (secrets redacted).
pub fn change(
    store: &Store,
    key: &MasterKey,
    scope: &Scope,
    change: &ConfigChange,
    who: &str,
    now: Millis,
) -> Result<ConfigView> {
    if change.set.is_empty() && change.unset.is_empty() {
        return Err(bad(
            "nothing to change: give values in \"set\" or keys in \"unset\"",
        ));
    }
    if change.set.len() + change.unset.len() > MAX_VALUES {
        return Err(bad(format!("at most {MAX_VALUES} changes in one revision")));
    }
    let comment = change.comment.as_deref().unwrap_or("").trim().to_string();
    if comment.chars().count() > 500 || comment.chars().any(char::is_control) {
        return Err(bad(
            "comment must be at most 500 characters, without control characters",
        ));
    }
    // Validate everything before touching the store.
    let mut seen = HashSet::new();
    let mut sets = Vec::with_capacity(change.set.len());
    for s in &change.set {
        let (k, t, v) = s.check()?;
        if !seen.insert(k.clone()) {
            return Err(bad(format!("{} is named twice", k.dotted())));
        }
        sets.push((k, t, v, s.secret));
    }
    for k in &change.unset {
        check_key(k)?;
        if !seen.insert(k.clone()) {
            return Err(bad(format!("{} is named twice", k.dotted())));
        }
    }
    store.write(|tx| {
        let (rev, values) = current(tx, scope)?;
        let at = rev.as_ref().map_or(0, |r| r.revision);
        if let Some(expected) = change.expected_revision {
            if expected != at {
                return Err(Error::Conflict(format!(
                    "the configuration is at revision {at}, not {expected}: someone changed it meanwhile; reload and retry"
                )));
            }
        }
        let mut map: BTreeMap<ValueKey, StoredValue> = values
            .into_iter()
            .map(|v| {
                (
                    ValueKey {
                        section: v.section.clone(),
                        key: v.key.clone(),
                    },
                    v,
                )
            })
            .collect();
        for k in &change.unset {
            if map.remove(k).is_none() {
                return Err(Error::Unprocessable(format!(
                    "{} is not set in revision {at}",
                    k.dotted()
                )));
            }
        }
        for (k, t, v, secret) in &sets {
            let secret = secret.unwrap_or_else(|| map.get(k).is_some_and(|old| old.secret));
            let plain = PlainValue {
                section: k.section.clone(),
                key: k.key.clone(),
                value_type: *t,
                secret,
                value: v.clone(),
                updated_by: who.to_string(),
                updated_at: now,
            };
            map.insert(k.clone(), seal_value(key, scope, &plain)?);
        }
        let values: Vec<StoredValue> = map.into_values().collect();
        let meta = RevisionMeta {
            created_by: who.to_string(),
            created_at: now,
            comment: comment.clone(),
            promoted_from: None,
        };
        let rev = write_revision(tx, scope, &values, &meta)?;
        Ok(view(scope, Some(rev), &values))
    })
}

/// What the audit log says about a change: where, the new revision, and
/// the keys set and unset (never a value).
pub fn audit_target(scope: &Scope, revision: i64, change: &ConfigChange) -> String {
    let keys = |ks: Vec<String>| {
        let text = ks.join(", ");
        if text.chars().count() > 300 {
            format!("{}…", text.chars().take(300).collect::<String>())
        } else {
            text
        }
    };
    let mut target = format!(
        "config {}/{}@{} revision {revision}",
        scope.project, scope.integration, scope.environment
    );
    if !change.set.is_empty() {
        let set = change
            .set
            .iter()
            .map(|s| {
                ValueKey {
                    section: s.section.trim().to_string(),
                    key: s.key.trim().to_string(),
                }
                .dotted()
            })
            .collect();
        target.push_str(&format!("; set {}", keys(set)));
    }
    if !change.unset.is_empty() {
        target.push_str(&format!(
            "; unset {}",
            keys(change.unset.iter().map(ValueKey::dotted).collect())
        ));
    }
    target
}

/// The current revision of `scope` as TOML, secrets opened (`icpd config render`).
pub fn render(store: &Store, key: &MasterKey, scope: &Scope) -> Result<Rendered> {
    let (rev, values) = store.read(|tx| current(tx, scope))?;
    let plain = open_values(key, scope, &values)?;
    Ok(Rendered {
        revision: rev.map_or(0, |r| r.revision),
        toml: to_toml(&plain)?,
    })
}

// ---- runtimes fetching their configuration ---------------------------------

/// Who asks on `GET /icp/config`, besides the secret: `?runtimeId=` and
/// `?runtime=` (the node name), both optional.
#[derive(Debug, Clone, Default)]
pub struct Fetcher<'a> {
    pub runtime_id: Option<&'a str>,
    pub runtime_name: Option<&'a str>,
}

/// The configuration a runtime presenting `secret` gets: that of the
/// integration the secret is bound to, in the secret's environment, at the
/// current revision, secrets opened. An unbound secret gets 403 (it names
/// no integration until a runtime's first full heartbeat binds it). A
/// `runtimeId` of a registered runtime of another integration or
/// environment gets 403. The fetch is recorded for the runtime id, else the
/// node name, else the secret, so the runtime views show which revision
/// each runtime fetched.
pub fn fetch_for_runtime(
    store: &Store,
    key: &MasterKey,
    secret: &ActiveSecret,
    who: &Fetcher,
    now: Millis,
) -> Result<Rendered> {
    let Some(integration_id) = secret.integration_id else {
        return Err(Error::Forbidden(format!(
            "secret {} is not bound to an integration yet, so it names no configuration: create a bound secret (icpd secret create --project P --integration I), or let a runtime's first full heartbeat bind it",
            secret.key_id
        )));
    };
    if let Some(id) = who.runtime_id {
        if id.is_empty()
            || id.len() > 64
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(bad("runtimeId must be a runtime's id (a UUID)"));
        }
    }
    if let Some(name) = who.runtime_name {
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(bad("runtime (the node name) must be 1 to 100 characters"));
        }
    }
    let (scope, rev, values) = store.read(|tx| {
        let scope = scope_of(tx, integration_id, secret)?;
        if let Some(id) = who.runtime_id {
            if let Some(r) = tx.runtime(id)? {
                if r.integration_id != scope.integration_id
                    || r.environment_id != scope.environment_id
                {
                    return Err(Error::Forbidden(format!(
                        "runtime {id} belongs to another integration or environment; a runtime fetches only its own configuration"
                    )));
                }
            }
        }
        let (rev, values) = current(tx, &scope)?;
        Ok((scope, rev, values))
    })?;
    let plain = open_values(key, &scope, &values)?;
    let rendered = Rendered {
        revision: rev.map_or(0, |r| r.revision),
        toml: to_toml(&plain)?,
    };
    let client = match (who.runtime_id, who.runtime_name) {
        (Some(id), _) => format!("runtime:{id}"),
        (None, Some(name)) => format!("name:{name}"),
        (None, None) => format!("key:{}", secret.key_id),
    };
    store.write(|tx| {
        tx.record_config_fetch(
            scope.integration_id,
            scope.environment_id,
            &client,
            rendered.revision,
            now,
        )
    })?;
    Ok(rendered)
}

fn scope_of(tx: &Tx, integration_id: i64, secret: &ActiveSecret) -> Result<Scope> {
    let i = tx
        .integration(integration_id)?
        .ok_or_else(|| Error::NotFound("the secret's integration no longer exists".into()))?;
    let p = tx
        .project(i.project_id)?
        .ok_or_else(|| Error::Internal(format!("project {} missing", i.project_id)))?;
    let e = tx
        .environment_by_handle(&secret.environment)?
        .ok_or_else(|| Error::NotFound("the secret's environment no longer exists".into()))?;
    Ok(Scope::of(p, i, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(section: &str, key: &str, value: Value, secret: bool) -> PlainValue {
        let (value_type, value) = check_value("t", None, &value).unwrap();
        PlainValue {
            section: section.into(),
            key: key.into(),
            value_type,
            secret,
            value,
            updated_by: "u".into(),
            updated_at: 0,
        }
    }

    #[test]
    fn values_are_typed_by_declaration_or_inference() {
        let check = |t: Option<&str>, v: Value| check_value("a.b", t, &v);
        assert_eq!(check(None, json!("x")).unwrap().0, ValueType::String);
        assert_eq!(check(None, json!(3)).unwrap().0, ValueType::Int);
        assert_eq!(check(None, json!(3.5)).unwrap().0, ValueType::Float);
        assert_eq!(check(None, json!(true)).unwrap().0, ValueType::Boolean);
        assert_eq!(check(None, json!([1, "a"])).unwrap().0, ValueType::Array);
        assert_eq!(
            check(None, json!({"a": {"b": 1}})).unwrap().0,
            ValueType::Table
        );
        assert_eq!(
            check(Some("float"), json!(2)).unwrap(),
            (ValueType::Float, json!(2.0))
        );
        for (t, v) in [
            (Some("int"), json!(2.5)),
            (Some("string"), json!(1)),
            (Some("decimal"), json!(1)),
            (None, Value::Null),
            (None, json!([1, null])),
            (None, json!({"a": null})),
            (None, json!(u64::MAX)),
        ] {
            assert!(check(t, v.clone()).is_err(), "{t:?} {v}");
        }
        let err = check(Some("int"), json!("hunter2-password")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn sections_and_keys_follow_ballerina_names() {
        let k = |s: &str, key: &str| ValueKey {
            section: s.into(),
            key: key.into(),
        };
        for ok in [k("", "port"), k("myorg.orders", "dbUrl"), k("a_b.c1", "_x")] {
            check_key(&ok).unwrap();
        }
        for bad in [
            k("myorg..orders", "a"),
            k(".a", "a"),
            k("a/b", "a"),
            k("a", "1x"),
            k("a", "a-b"),
            k("a", ""),
            k("a b", "c"),
        ] {
            assert!(check_key(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rendering_is_valid_toml_with_the_types_kept() {
        let values = vec![
            plain("", "top", json!("level"), false),
            plain(
                "myorg.orders",
                "dbUrl",
                json!("jdbc:x \"quoted\"\nline"),
                false,
            ),
            plain("myorg.orders", "port", json!(5432), false),
            plain("myorg.orders", "ratio", json!(0.25), false),
            plain("myorg.orders", "enabled", json!(false), false),
            plain("myorg.orders", "hosts", json!(["a", "b"]), false),
            plain(
                "myorg.orders",
                "pool",
                json!({"max": 10, "name": "p"}),
                false,
            ),
            plain("myorg.orders", "password", json!("s3cret"), true),
            plain("myorg.orders.api", "key", json!("k"), false),
        ];
        let text = to_toml(&values).unwrap();
        let back: toml::Table = text.parse().unwrap();
        assert_eq!(back["top"].as_str(), Some("level"));
        let orders = back["myorg"]["orders"].as_table().unwrap();
        assert_eq!(orders["dbUrl"].as_str(), Some("jdbc:x \"quoted\"\nline"));
        assert_eq!(orders["port"].as_integer(), Some(5432));
        assert_eq!(orders["ratio"].as_float(), Some(0.25));
        assert_eq!(orders["enabled"].as_bool(), Some(false));
        assert_eq!(orders["hosts"].as_array().unwrap().len(), 2);
        assert_eq!(orders["pool"]["max"].as_integer(), Some(10));
        assert_eq!(orders["password"].as_str(), Some("s3cret"));
        assert_eq!(orders["api"]["key"].as_str(), Some("k"));
        assert!(text.contains("[myorg.orders]"), "{text}");
        assert_eq!(to_toml(&[]).unwrap(), "");
    }

    #[test]
    fn a_key_cannot_also_be_a_section() {
        for values in [
            vec![
                plain("a", "b", json!(1), false),
                plain("a.b", "c", json!(1), false),
            ],
            vec![
                plain("a.b", "c", json!(1), false),
                plain("a", "b", json!(1), false),
            ],
            vec![
                plain("a", "b", json!({"c": 1}), false),
                plain("a.b", "d", json!(1), false),
            ],
            vec![
                plain("", "a", json!(1), false),
                plain("a", "b", json!(1), false),
            ],
        ] {
            assert!(to_toml(&values).is_err(), "{values:?}");
        }
    }

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed() {
        use base64::Engine;
        let key =
            MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .unwrap();
        let scope = |i, e| Scope {
            project_id: 1,
            integration_id: i,
            environment_id: e,
            critical: false,
            project: "p".into(),
            integration: "i".into(),
            environment: "e".into(),
        };
        let v = vec![plain("a", "password", json!("s3cret-value"), true)];
        let sealed = seal_values(&key, &scope(1, 1), &v).unwrap();
        assert!(sealed[0].value.is_none());
        assert!(format!("{:?} {:?}", sealed[0], v[0])
            .find("s3cret")
            .is_none());
        assert_eq!(open_values(&key, &scope(1, 1), &sealed).unwrap(), v);
        assert!(open_values(&key, &scope(2, 1), &sealed).is_err());
        assert!(open_values(&key, &scope(1, 2), &sealed).is_err());
        let mut moved = sealed.clone();
        moved[0].key = "other".into();
        assert!(open_values(&key, &scope(1, 1), &moved).is_err());
    }
}
