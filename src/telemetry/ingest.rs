//! Decoding what log and metric shippers send into attributed records, and
//! storing them.
//!
//! The decoders are pure functions of the body, the credential's
//! attribution and `now`:
//! - [`decode_logs`]: Fluent Bit's `http` output (`format json`: a JSON
//!   array; `json_lines`) and Ballerina's JSON log lines. A Ballerina
//!   metrics line (`"logger":"metrics"`) becomes a [`RequestRecord`].
//! - [`decode_requests`]: request records (ours, or Ballerina's tag names).
//! - [`decode_otlp_logs`], [`decode_otlp_metrics`]: OTLP/HTTP JSON.
//!
//! They are lenient about shapes (time as epoch seconds, milliseconds or
//! RFC 3339; numbers as strings; levels by any usual name) and never fail
//! a batch for one bad record: that record is rejected with a reason and
//! the rest is kept. Only a body that is not JSON at all, or one holding
//! more than [`MAX_RECORDS`] records, fails as a whole. Everything is
//! bounded: message length, attribute count and size, names.
//!
//! [`Ingest`] is what the runtime listener calls: it authenticates the
//! credential (a runtime token or an ingest token), decodes, attributes
//! each record to a runtime icpd knows when the record names one inside the
//! credential's scope, stores the batch in one transaction of telemetry's
//! store (`telemetry.db`, or PostgreSQL), and offers the stored logs to
//! the live tail.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    Attribution, Level, LogRecord, MetricKind, MetricPoint, RequestRecord, StoredLog, Telemetry,
};
use crate::error::{Error, Result};
use crate::protocol::Protocol;
use crate::refusals::{Reason, Refused, Subject};
use crate::time::Millis;

/// Records (log records, request records, OTLP log records or data
/// points) one batch may hold.
pub const MAX_RECORDS: usize = 10_000;
/// A longer message is cut here (at a character boundary) and marked with
/// [`TRUNCATED`].
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Attributes kept per record; the others are dropped and counted in
/// `icpd.droppedAttributes`.
pub const MAX_ATTRIBUTES: usize = 64;
/// A longer attribute value (string, or the JSON text of an object or
/// array) is cut here and marked with [`TRUNCATED`].
pub const MAX_VALUE_BYTES: usize = 4 * 1024;
/// Module, service, resource, method, metric name and unit are cut here.
pub const MAX_NAME_BYTES: usize = 256;
/// A longer runtime id rejects the record.
pub const MAX_RUNTIME_ID_BYTES: usize = 128;
/// A record more than this far in the future is rejected (a wrong clock
/// would otherwise keep it from ageing out and put it before everything).
pub const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;
/// Reasons reported back per batch (the count covers them all).
pub const MAX_REASONS: usize = 5;
/// Appended to whatever was cut.
pub const TRUNCATED: &str = "…[truncated]";
/// The attribute counting attributes dropped beyond [`MAX_ATTRIBUTES`].
pub const DROPPED_ATTRIBUTES: &str = "icpd.droppedAttributes";

/// Time fields tried, in order, when the batch names none (`?timeKey=`).
const TIME_KEYS: [&str; 4] = ["time", "date", "@timestamp", "timestamp"];
const MESSAGE_KEYS: [&str; 3] = ["message", "msg", "log"];
const LEVEL_KEYS: [&str; 3] = ["level", "severity", "lvl"];
const RUNTIME_KEY: &str = "runtimeId";
/// The OTLP resource attribute naming the runtime.
const OTLP_RUNTIME_KEY: &str = "service.instance.id";

/// What a batch was decoded into.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    pub logs: Vec<LogRecord>,
    pub requests: Vec<RequestRecord>,
    pub points: Vec<MetricPoint>,
    pub rejected: Rejected,
}

impl Decoded {
    /// Records kept.
    pub fn accepted(&self) -> usize {
        self.logs.len() + self.requests.len() + self.points.len()
    }
}

/// Records refused, with the first few reasons.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub count: usize,
    pub reasons: Vec<String>,
}

impl Rejected {
    fn add(&mut self, reason: impl Into<String>) {
        self.count += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason.into());
        }
    }
}

/// Options of a batch, from the query string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    /// `?runtimeId=`: the runtime of records that do not name one.
    pub runtime_id: Option<String>,
    /// `?timeKey=`: the field holding a record's time.
    pub time_key: Option<String>,
}

/// What an ingest request answers: `{"accepted", "rejected", "errors"}`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub accepted: usize,
    pub rejected: usize,
    pub errors: Vec<String>,
}

// ---- framing -----------------------------------------------------------

/// One framed JSON value: an array's elements, counted as they are read so
/// that an array of more than [`MAX_RECORDS`] is refused before it is
/// built, or a single value.
struct Framed(Vec<Value>);

/// The message of the decode error a too-long array ends with.
const TOO_MANY: &str = "icpd: too many records";

impl<'de> serde::Deserialize<'de> for Framed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Framed, D::Error> {
        use serde::de::{Error as _, MapAccess, SeqAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Framed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Framed, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Value>()? {
                    if out.len() == MAX_RECORDS {
                        return Err(A::Error::custom(TOO_MANY));
                    }
                    out.push(v);
                }
                Ok(Framed(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Framed, A::Error> {
                use serde::Deserialize;
                let v = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Framed(vec![v]))
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Framed, E> {
                Ok(Framed(vec![v.into()]))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Framed, E> {
                Ok(Framed(vec![v.into()]))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Framed, E> {
                Ok(Framed(vec![v.into()]))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Framed, E> {
                Ok(Framed(vec![v.into()]))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Framed, E> {
                Ok(Framed(vec![v.into()]))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Framed, E> {
                Ok(Framed(vec![v.into()]))
            }
            fn visit_unit<E>(self) -> std::result::Result<Framed, E> {
                Ok(Framed(vec![Value::Null]))
            }
        }
        d.deserialize_any(V)
    }
}

/// The records of a body: a JSON array, one JSON value, JSON values one
/// after another (Fluent Bit's `json_stream`), or JSON lines (a line that
/// is not JSON is rejected on its own).
fn frame(body: &[u8], rejected: &mut Rejected) -> Result<Vec<Value>> {
    let text = body.trim_ascii();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut records = Vec::new();
    let mut stream_error = None;
    for framed in serde_json::Deserializer::from_slice(text).into_iter::<Framed>() {
        match framed {
            Ok(Framed(values)) => push_records(&mut records, values)?,
            Err(e) if e.to_string().starts_with(TOO_MANY) => return Err(too_many()),
            Err(e) => {
                stream_error = Some(e);
                break;
            }
        }
    }
    let Some(whole) = stream_error else {
        return Ok(records);
    };
    records.clear();
    let mut first_error = None;
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Framed>(line) {
            Ok(Framed(values)) => push_records(&mut records, values)?,
            Err(e) if e.to_string().starts_with(TOO_MANY) => return Err(too_many()),
            Err(e) => {
                let reason = format!("line {}: not JSON ({e})", n + 1);
                first_error.get_or_insert_with(|| reason.clone());
                rejected.add(reason);
                if rejected.count > MAX_RECORDS {
                    return Err(too_many());
                }
            }
        }
    }
    if records.is_empty() {
        let detail = first_error.unwrap_or_else(|| whole.to_string());
        return Err(Error::BadRequest(format!(
            "the body is not JSON: send a JSON array of records, one JSON object, or JSON lines (one object per line); {detail}"
        )));
    }
    Ok(records)
}

/// Adds framed values, within [`MAX_RECORDS`] in all.
fn push_records(records: &mut Vec<Value>, values: Vec<Value>) -> Result<()> {
    if records.len() + values.len() > MAX_RECORDS {
        return Err(too_many());
    }
    records.extend(values);
    Ok(())
}

fn too_many() -> Error {
    Error::BadRequest(format!(
        "a batch holds at most {MAX_RECORDS} records; send smaller batches"
    ))
}

// ---- bounded values ----------------------------------------------------

/// `text` cut to at most `max` bytes at a character boundary, marked.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(TRUNCATED);
    }
    text
}

/// A JSON value rendered as text: strings as they are, the rest as JSON.
fn render(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A short name (module, service, ...): text, bounded; empty is none.
fn name(v: Value) -> Option<String> {
    let s = render(v);
    let s = s.trim();
    (!s.is_empty()).then(|| bounded(s.to_string(), MAX_NAME_BYTES))
}

/// An attribute value within [`MAX_VALUE_BYTES`].
fn bounded_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(bounded(s, MAX_VALUE_BYTES)),
        Value::Array(_) | Value::Object(_) => {
            let text = v.to_string();
            if text.len() > MAX_VALUE_BYTES {
                Value::String(bounded(text, MAX_VALUE_BYTES))
            } else {
                v
            }
        }
        scalar => scalar,
    }
}

/// Attributes within [`MAX_ATTRIBUTES`] and [`MAX_VALUE_BYTES`]; keys are
/// bounded too.
fn bounded_attributes(fields: impl IntoIterator<Item = (String, Value)>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut dropped = 0u64;
    for (k, v) in fields {
        if out.len() >= MAX_ATTRIBUTES && !out.contains_key(&k) {
            dropped += 1;
            continue;
        }
        out.insert(bounded(k, MAX_NAME_BYTES), bounded_value(v));
    }
    if dropped > 0 {
        out.insert(DROPPED_ATTRIBUTES.into(), dropped.into());
    }
    out
}

// ---- times, levels, numbers --------------------------------------------

/// Epoch time in seconds, milliseconds, microseconds or nanoseconds (told
/// apart by magnitude) as Unix ms.
fn epoch_ms(x: f64) -> Option<Millis> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let ms = if x < 1e11 {
        x * 1e3
    } else if x < 1e14 {
        x
    } else if x < 1e17 {
        x / 1e3
    } else {
        x / 1e6
    };
    (ms < 9e15).then(|| ms.round() as Millis)
}

/// A record's time: epoch (number or numeric string) or RFC 3339 (also
/// with a space for `T`, or without an offset, then UTC).
fn parse_time(v: &Value) -> Option<Millis> {
    match v {
        Value::Number(n) => n.as_f64().and_then(epoch_ms),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(x) = s.parse::<f64>() {
                return epoch_ms(x);
            }
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp_millis());
            }
            let t = s.replacen(' ', "T", 1);
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&t) {
                return Some(t.timestamp_millis());
            }
            chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp_millis())
        }
        _ => None,
    }
}

/// A level by name, or by number as pino and bunyan write them (10 trace
/// .. 60 fatal).
fn parse_level(v: &Value) -> Option<Level> {
    match v {
        Value::String(s) => Level::parse(s),
        Value::Number(n) => {
            let n = n.as_f64()?;
            Some(match n {
                n if n <= 10.0 => Level::Trace,
                n if n <= 20.0 => Level::Debug,
                n if n <= 30.0 => Level::Info,
                n if n <= 40.0 => Level::Warn,
                n if n <= 50.0 => Level::Error,
                _ => Level::Fatal,
            })
        }
        _ => None,
    }
}

/// OTLP `severityNumber` (1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN,
/// 17-20 ERROR, 21-24 FATAL).
fn otlp_severity(n: i64) -> Option<Level> {
    Some(match n {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => return None,
    })
}

/// A number, or a string holding one (Ballerina's tags and protobuf JSON's
/// 64-bit integers are strings).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-negative integer, or a string holding one.
fn count(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Removes the first of `keys` present in `obj`.
fn take_first(obj: &mut Map<String, Value>, keys: &[&str]) -> Option<(String, Value)> {
    keys.iter()
        .find_map(|k| obj.remove(*k).map(|v| (k.to_string(), v)))
}

/// A runtime id from a record field: text within bounds.
fn runtime_id(v: Value) -> std::result::Result<Option<String>, String> {
    let id = render(v);
    let id = id.trim();
    if id.len() > MAX_RUNTIME_ID_BYTES {
        return Err(format!(
            "runtimeId is longer than {MAX_RUNTIME_ID_BYTES} bytes"
        ));
    }
    Ok((!id.is_empty()).then(|| id.to_string()))
}

/// Refuses a time more than [`MAX_FUTURE_MS`] ahead of `now`.
fn check_time(ts: Millis, now: Millis) -> std::result::Result<Millis, String> {
    if ts > now.saturating_add(MAX_FUTURE_MS) {
        return Err(format!(
            "time {} is more than a day in the future",
            crate::time::rfc3339(ts)
        ));
    }
    Ok(ts)
}

/// The record's time from `time_key` or the usual fields; `now` when it
/// has none. An unreadable time is kept as an attribute.
fn take_time(
    obj: &mut Map<String, Value>,
    time_key: Option<&str>,
    now: Millis,
) -> std::result::Result<Millis, String> {
    let found = match time_key {
        Some(k) => obj.remove(k).map(|v| (k.to_string(), v)),
        None => take_first(obj, &TIME_KEYS),
    };
    match found {
        None => Ok(now),
        Some((k, v)) => match parse_time(&v) {
            Some(ts) => check_time(ts, now),
            None => {
                obj.insert(k, v);
                Ok(now)
            }
        },
    }
}

// ---- Fluent Bit and Ballerina log lines --------------------------------

/// A log record or, for a Ballerina metrics line, a request record.
enum Line {
    Log(LogRecord),
    Request(RequestRecord),
}

/// Logs as Fluent Bit's `http` output or a Ballerina program sends them:
/// a JSON array of records, one record, or JSON lines. Each record gets
/// `source` (the credential's attribution, with `?runtimeId=`), its own
/// `runtimeId` field if it has one.
pub fn decode_logs(
    body: &[u8],
    source: &Attribution,
    options: &Options,
    now: Millis,
) -> Result<Decoded> {
    let mut out = Decoded::default();
    let records = frame(body, &mut out.rejected)?;
    let time_key = options.time_key.as_deref();
    for (n, v) in records.into_iter().enumerate() {
        match log_line(v, source, time_key, now) {
            Ok(Line::Log(l)) => out.logs.push(l),
            Ok(Line::Request(r)) => out.requests.push(r),
            Err(reason) => out.rejected.add(format!("record {}: {reason}", n + 1)),
        }
    }
    Ok(out)
}

fn log_line(
    v: Value,
    source: &Attribution,
    time_key: Option<&str>,
    now: Millis,
) -> std::result::Result<Line, String> {
    let Value::Object(mut obj) = v else {
        return Err("not a JSON object".into());
    };
    if obj.get("logger").and_then(Value::as_str) == Some("metrics") {
        return request_record(obj, source, time_key, now).map(Line::Request);
    }
    let ts = take_time(&mut obj, time_key, now)?;
    let mut source = source.clone();
    if let Some(id) = obj.remove(RUNTIME_KEY) {
        if let Some(id) = runtime_id(id)? {
            source.runtime_id = Some(id);
        }
    }
    let message = match take_first(&mut obj, &MESSAGE_KEYS) {
        None | Some((_, Value::Null)) => String::new(),
        Some((_, v)) => bounded(render(v), MAX_MESSAGE_BYTES),
    };
    let level = match take_first(&mut obj, &LEVEL_KEYS) {
        None => Level::Info,
        Some((k, v)) => parse_level(&v).unwrap_or_else(|| {
            // Kept, so nothing the shipper said is lost.
            obj.insert(k, v);
            Level::Info
        }),
    };
    let module = take_first(&mut obj, &["module", "logger"]).and_then(|(_, v)| name(v));
    Ok(Line::Log(LogRecord {
        ts,
        level,
        module,
        message,
        attributes: bounded_attributes(obj),
        source,
    }))
}

// ---- request records -----------------------------------------------------

/// Request records: `{"time", "service", "resource", "method",
/// "statusCode", "responseTimeMs"}`, or Ballerina's metrics log lines with
/// their tag names; same framing as [`decode_logs`].
pub fn decode_requests(
    body: &[u8],
    source: &Attribution,
    options: &Options,
    now: Millis,
) -> Result<Decoded> {
    let mut out = Decoded::default();
    let records = frame(body, &mut out.rejected)?;
    let time_key = options.time_key.as_deref();
    for (n, v) in records.into_iter().enumerate() {
        let r = match v {
            Value::Object(obj) => request_record(obj, source, time_key, now),
            _ => Err("not a JSON object".into()),
        };
        match r {
            Ok(r) => out.requests.push(r),
            Err(reason) => out.rejected.add(format!("record {}: {reason}", n + 1)),
        }
    }
    Ok(out)
}

fn request_record(
    mut obj: Map<String, Value>,
    source: &Attribution,
    time_key: Option<&str>,
    now: Millis,
) -> std::result::Result<RequestRecord, String> {
    let ts = take_time(&mut obj, time_key, now)?;
    let mut source = source.clone();
    if let Some(id) = obj.remove(RUNTIME_KEY) {
        if let Some(id) = runtime_id(id)? {
            source.runtime_id = Some(id);
        }
    }
    let text = |obj: &mut Map<String, Value>, keys: &[&str]| {
        keys.iter().find_map(|k| obj.remove(*k).and_then(name))
    };
    let service = text(
        &mut obj,
        &["service", "entrypoint.service.name", "src.service.name"],
    )
    .ok_or("no service (service, entrypoint.service.name or src.service.name)")?;
    let resource =
        text(&mut obj, &["resource", "src.resource.path", "http.url"]).unwrap_or_default();
    let method = text(
        &mut obj,
        &["method", "http.method", "entrypoint.resource.accessor"],
    )
    .map(|m| m.to_ascii_uppercase())
    .unwrap_or_default();
    let status = take_first(&mut obj, &["statusCode", "http.status_code", "status"])
        .ok_or("no status code (statusCode or http.status_code)")?
        .1;
    let status = number(&status)
        .filter(|s| s.fract() == 0.0 && (100.0..=599.0).contains(s))
        .ok_or_else(|| format!("status code {status} is not a number from 100 to 599"))?
        as u16;
    let duration_ms = if let Some(v) = obj.remove("responseTimeMs") {
        number(&v)
    } else if let Some(v) = obj.remove("response_time_seconds") {
        number(&v).map(|s| s * 1000.0)
    } else {
        return Err("no response time (responseTimeMs or response_time_seconds)".into());
    }
    .filter(|d| d.is_finite() && *d >= 0.0)
    .ok_or("the response time is not a number of 0 or more")?;
    Ok(RequestRecord {
        ts,
        service,
        resource,
        method,
        status,
        duration_ms,
        source,
    })
}

// ---- OTLP/HTTP JSON ------------------------------------------------------

/// An OTLP `AnyValue` as plain JSON: `{"stringValue": "x"}` is `"x"`,
/// `intValue` (a string in protobuf JSON) a number, arrays and key-value
/// lists arrays and objects; bytes stay base64 text.
fn any_value(v: Value) -> Value {
    let Value::Object(mut o) = v else {
        return v;
    };
    if let Some(s) = o.remove("stringValue") {
        return s;
    }
    if let Some(b) = o.remove("boolValue") {
        return b;
    }
    if let Some(i) = o.remove("intValue") {
        return match &i {
            Value::String(s) => s.trim().parse::<i64>().map(Value::from).unwrap_or(i),
            _ => i,
        };
    }
    if let Some(d) = o.remove("doubleValue") {
        return match &d {
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(d),
            _ => d,
        };
    }
    if let Some(a) = o.remove("arrayValue") {
        let values = match a {
            Value::Object(mut a) => a.remove("values").unwrap_or(Value::Null),
            _ => Value::Null,
        };
        return match values {
            Value::Array(items) => Value::Array(items.into_iter().map(any_value).collect()),
            _ => Value::Array(Vec::new()),
        };
    }
    if let Some(kv) = o.remove("kvlistValue") {
        let values = match kv {
            Value::Object(mut kv) => kv.remove("values").unwrap_or(Value::Null),
            _ => Value::Null,
        };
        return Value::Object(key_values(values).collect());
    }
    if let Some(b) = o.remove("bytesValue") {
        return b;
    }
    Value::Null
}

/// An OTLP `KeyValue` list (`[{"key", "value": AnyValue}]`) as pairs;
/// entries without a key are skipped.
fn key_values(list: Value) -> impl Iterator<Item = (String, Value)> {
    let items = match list {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    items.into_iter().filter_map(|kv| {
        let Value::Object(mut kv) = kv else {
            return None;
        };
        let Some(Value::String(key)) = kv.remove("key") else {
            return None;
        };
        Some((
            key,
            kv.remove("value").map(any_value).unwrap_or(Value::Null),
        ))
    })
}

/// A field of an OTLP object as an array (missing or not an array: empty).
fn array(o: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match o.remove(key) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

/// An OTLP body: a JSON object, or 400.
fn otlp_body(body: &[u8], what: &str) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(Error::BadRequest(format!(
            "an OTLP/HTTP JSON {what} request is a JSON object"
        ))),
        Err(e) => Err(Error::BadRequest(format!(
            "the body is not JSON ({e}); OTLP/HTTP is accepted as JSON (Content-Type: application/json), not protobuf"
        ))),
    }
}

/// A resource's attributes, and the runtime it names (`service.instance.id`).
fn resource(
    container: &mut Map<String, Value>,
    source: &Attribution,
) -> std::result::Result<(Vec<(String, Value)>, Attribution), String> {
    let mut resource = object(container.remove("resource").unwrap_or(Value::Null));
    let mut attrs: Vec<(String, Value)> =
        key_values(resource.remove("attributes").unwrap_or(Value::Null)).collect();
    let mut source = source.clone();
    if let Some(i) = attrs.iter().position(|(k, _)| k == OTLP_RUNTIME_KEY) {
        let (_, id) = attrs.remove(i);
        if let Some(id) = runtime_id(id)? {
            source.runtime_id = Some(id);
        }
    }
    Ok((attrs, source))
}

/// An OTLP timestamp in nanoseconds (a string in protobuf JSON, or a
/// number), as Unix ms; 0 or missing is none.
fn unix_nano(v: Option<&Value>) -> Option<Millis> {
    let v = v?;
    let ns: f64 = match v {
        Value::String(s) => s.trim().parse::<u64>().ok()? as f64,
        _ => number(v)?,
    };
    (ns > 0.0 && ns.is_finite()).then(|| (ns / 1e6).round() as Millis)
}

/// Counts OTLP records (`records` below `scopes` below `resources`) before
/// decoding, so an oversized batch fails at once.
fn count_otlp(root: &Map<String, Value>, resources: &str, scopes: &str, items: &[&str]) -> usize {
    fn list(v: Option<&Value>) -> &[Value] {
        v.and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    list(root.get(resources))
        .iter()
        .flat_map(|r| list(r.get(scopes)))
        .map(|s| {
            items
                .iter()
                .map(|i| match i.split_once('.') {
                    // metrics: every data point of every kind
                    Some((metrics, points)) => list(s.get(metrics))
                        .iter()
                        .map(|m| {
                            m.as_object()
                                .map(|m| {
                                    m.values().map(|k| list(k.get(points)).len()).sum::<usize>()
                                })
                                .unwrap_or(0)
                        })
                        .sum::<usize>(),
                    None => list(s.get(*i)).len(),
                })
                .sum::<usize>()
        })
        .sum()
}

/// OTLP/HTTP JSON logs (`ExportLogsServiceRequest`).
pub fn decode_otlp_logs(body: &[u8], source: &Attribution, now: Millis) -> Result<Decoded> {
    let mut root = otlp_body(body, "logs")?;
    if count_otlp(&root, "resourceLogs", "scopeLogs", &["logRecords"]) > MAX_RECORDS {
        return Err(too_many());
    }
    let mut out = Decoded::default();
    let mut n = 0usize;
    for rl in array(&mut root, "resourceLogs") {
        let mut rl = object(rl);
        let (resource_attrs, source) = match resource(&mut rl, source) {
            Ok(r) => r,
            Err(reason) => {
                for sl in array(&mut rl, "scopeLogs") {
                    for _ in array(&mut object(sl), "logRecords") {
                        n += 1;
                        out.rejected.add(format!("log record {n}: {reason}"));
                    }
                }
                continue;
            }
        };
        for sl in array(&mut rl, "scopeLogs") {
            let mut sl = object(sl);
            let scope = object(sl.remove("scope").unwrap_or(Value::Null))
                .remove("name")
                .and_then(name);
            for lr in array(&mut sl, "logRecords") {
                n += 1;
                match otlp_log(object(lr), &resource_attrs, &scope, &source, now) {
                    Ok(l) => out.logs.push(l),
                    Err(reason) => out.rejected.add(format!("log record {n}: {reason}")),
                }
            }
        }
    }
    Ok(out)
}

fn otlp_log(
    mut lr: Map<String, Value>,
    resource_attrs: &[(String, Value)],
    scope: &Option<String>,
    source: &Attribution,
    now: Millis,
) -> std::result::Result<LogRecord, String> {
    let ts = unix_nano(lr.get("timeUnixNano"))
        .or_else(|| unix_nano(lr.get("observedTimeUnixNano")))
        .unwrap_or(now);
    let ts = check_time(ts, now)?;
    let level = lr
        .get("severityText")
        .and_then(Value::as_str)
        .and_then(Level::parse)
        .or_else(|| {
            lr.get("severityNumber")
                .and_then(number)
                .and_then(|n| otlp_severity(n as i64))
        })
        .unwrap_or(Level::Info);
    let message = match lr.remove("body").map(any_value) {
        None | Some(Value::Null) => String::new(),
        Some(v) => bounded(render(v), MAX_MESSAGE_BYTES),
    };
    let mut fields: Vec<(String, Value)> = resource_attrs.to_vec();
    fields.extend(key_values(lr.remove("attributes").unwrap_or(Value::Null)));
    for id in ["traceId", "spanId"] {
        if let Some(Value::String(v)) = lr.remove(id) {
            if !v.is_empty() {
                fields.push((id.to_string(), Value::String(v)));
            }
        }
    }
    Ok(LogRecord {
        ts,
        level,
        module: scope.clone(),
        message,
        attributes: bounded_attributes(fields),
        source: source.clone(),
    })
}

/// OTLP/HTTP JSON metrics (`ExportMetricsServiceRequest`): every data
/// point of a sum, gauge or (explicit-bucket) histogram becomes a
/// [`MetricPoint`]; other kinds are rejected point by point.
pub fn decode_otlp_metrics(body: &[u8], source: &Attribution, now: Millis) -> Result<Decoded> {
    let mut root = otlp_body(body, "metrics")?;
    if count_otlp(
        &root,
        "resourceMetrics",
        "scopeMetrics",
        &["metrics.dataPoints"],
    ) > MAX_RECORDS
    {
        return Err(too_many());
    }
    let mut out = Decoded::default();
    for rm in array(&mut root, "resourceMetrics") {
        let mut rm = object(rm);
        let resolved = resource(&mut rm, source);
        for sm in array(&mut rm, "scopeMetrics") {
            for m in array(&mut object(sm), "metrics") {
                let mut m = object(m);
                let metric = m
                    .remove("name")
                    .and_then(name)
                    .unwrap_or_else(|| "(unnamed)".into());
                let unit = m.remove("unit").and_then(name);
                let Some((kind_name, data)) = [
                    "sum",
                    "gauge",
                    "histogram",
                    "exponentialHistogram",
                    "summary",
                ]
                .iter()
                .find_map(|k| m.remove(*k).map(|d| (*k, object(d)))) else {
                    out.rejected
                        .add(format!("metric {metric}: no sum, gauge or histogram data"));
                    continue;
                };
                let mut data = data;
                let points = array(&mut data, "dataPoints");
                let kind = MetricKind::parse(kind_name);
                for p in points {
                    let point = match (&resolved, kind) {
                        (Err(reason), _) => Err(reason.clone()),
                        (Ok(_), None) => Err(format!(
                            "{kind_name} points are not supported (sum, gauge and explicit-bucket histogram are)"
                        )),
                        (Ok((_, source)), Some(kind)) => {
                            otlp_point(object(p), kind, &metric, &unit, source, now)
                        }
                    };
                    match point {
                        Ok(p) => out.points.push(p),
                        Err(reason) => out.rejected.add(format!("metric {metric}: {reason}")),
                    }
                }
            }
        }
    }
    Ok(out)
}

fn otlp_point(
    mut p: Map<String, Value>,
    kind: MetricKind,
    metric: &str,
    unit: &Option<String>,
    source: &Attribution,
    now: Millis,
) -> std::result::Result<MetricPoint, String> {
    let ts = check_time(unix_nano(p.get("timeUnixNano")).unwrap_or(now), now)?;
    let attributes = bounded_attributes(key_values(p.remove("attributes").unwrap_or(Value::Null)));
    let mut point = MetricPoint {
        ts,
        name: metric.to_string(),
        kind,
        unit: unit.clone(),
        attributes,
        value: None,
        count: None,
        sum: None,
        bounds: Vec::new(),
        buckets: Vec::new(),
        source: source.clone(),
    };
    let finite = |x: f64| x.is_finite().then_some(x);
    match kind {
        MetricKind::Sum | MetricKind::Gauge => {
            let value = p
                .get("asDouble")
                .or_else(|| p.get("asInt"))
                .ok_or("a data point has neither asDouble nor asInt")?;
            point.value = Some(
                number(value)
                    .and_then(finite)
                    .ok_or_else(|| format!("value {value} is not a finite number"))?,
            );
        }
        MetricKind::Histogram => {
            point.count = Some(
                p.get("count")
                    .and_then(count)
                    .ok_or("a histogram point has no count")?,
            );
            point.sum = match p.get("sum") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    number(v)
                        .and_then(finite)
                        .ok_or_else(|| format!("sum {v} is not a finite number"))?,
                ),
            };
            point.bounds = array(&mut p, "explicitBounds")
                .iter()
                .map(|b| number(b).and_then(finite))
                .collect::<Option<_>>()
                .ok_or("explicitBounds holds something that is not a finite number")?;
            point.buckets = array(&mut p, "bucketCounts")
                .iter()
                .map(count)
                .collect::<Option<_>>()
                .ok_or("bucketCounts holds something that is not a count")?;
            if !point.buckets.is_empty() && point.buckets.len() != point.bounds.len() + 1 {
                return Err(format!(
                    "{} bucket counts for {} bounds (there must be one more count than bounds)",
                    point.buckets.len(),
                    point.bounds.len()
                ));
            }
            if point.bounds.windows(2).any(|w| w[0] >= w[1]) {
                return Err("explicitBounds must increase".into());
            }
        }
    }
    Ok(point)
}

// ---- attribution, storing ------------------------------------------------

/// Who sent a batch: the scope its records must lie in.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    /// Environment always; project and integration when the credential is
    /// bound to them. `runtime_id` is `None`.
    pub scope: Attribution,
    /// What authenticated, for logs: `runtime secret 1a2b3c4d` or `ingest
    /// token 0a1b2c3d` (the public id, never the token).
    pub label: String,
}

impl Credential {
    /// `ingest token` or `runtime secret`, for messages.
    pub fn kind(&self) -> &'static str {
        if self.label.starts_with("ingest") {
            "ingest token"
        } else {
            "runtime secret"
        }
    }

    /// Who this is, for the trace of a refusal: the credential's kind, its
    /// public id (the last word of the label) and its scope.
    pub fn subject(&self) -> Subject {
        Subject {
            credential: Some(self.kind()),
            key_id: self.label.rsplit(' ').next().map(str::to_string),
            environment_id: Some(self.scope.environment_id),
            environment: Some(self.scope.environment.clone()),
            project_id: self.scope.project_id,
            integration_id: self.scope.integration_id,
            runtime_id: None,
        }
    }

    /// Whether a record attributed to `a` lies inside this credential's scope.
    pub fn covers(&self, a: &Attribution) -> bool {
        let s = &self.scope;
        a.environment_id == s.environment_id
            && s.project_id.is_none_or(|p| a.project_id == Some(p))
            && s.integration_id.is_none_or(|i| a.integration_id == Some(i))
    }
}

/// The three record kinds, for attribution.
trait Attributed {
    fn source_mut(&mut self) -> &mut Attribution;
}

impl Attributed for LogRecord {
    fn source_mut(&mut self) -> &mut Attribution {
        &mut self.source
    }
}

impl Attributed for RequestRecord {
    fn source_mut(&mut self) -> &mut Attribution {
        &mut self.source
    }
}

impl Attributed for MetricPoint {
    fn source_mut(&mut self) -> &mut Attribution {
        &mut self.source
    }
}

/// Gives each record naming a known runtime that runtime's attribution, if
/// it lies inside the credential's scope; rejects it otherwise. Records
/// naming a runtime icpd does not know keep the credential's attribution
/// (and the runtime id as given).
fn attribute<T: Attributed>(
    records: &mut Vec<T>,
    credential: &Credential,
    known: &HashMap<String, Attribution>,
    rejected: &mut Rejected,
) {
    records.retain_mut(|r| {
        let source = r.source_mut();
        let Some(runtime) = source.runtime_id.as_deref().and_then(|id| known.get(id)) else {
            return true;
        };
        if credential.covers(runtime) {
            *source = runtime.clone();
            true
        } else {
            rejected.add(format!(
                "runtime {} is outside the scope of this {}",
                runtime.runtime_id.as_deref().unwrap_or_default(),
                credential.kind()
            ));
            false
        }
    });
}

/// Applies [`attribute`] to every kind of record in `decoded`.
pub fn attribute_all(
    decoded: &mut Decoded,
    credential: &Credential,
    known: &HashMap<String, Attribution>,
) {
    attribute(&mut decoded.logs, credential, known, &mut decoded.rejected);
    attribute(
        &mut decoded.requests,
        credential,
        known,
        &mut decoded.rejected,
    );
    attribute(
        &mut decoded.points,
        credential,
        known,
        &mut decoded.rejected,
    );
}

/// The runtime ids a batch names, each once.
pub fn named_runtimes(decoded: &Decoded) -> HashSet<String> {
    decoded
        .logs
        .iter()
        .map(|l| &l.source)
        .chain(decoded.requests.iter().map(|r| &r.source))
        .chain(decoded.points.iter().map(|p| &p.source))
        .filter_map(|s| s.runtime_id.clone())
        .collect()
}

/// What the ingest endpoints accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `POST /icp/logs`: Fluent Bit, Ballerina JSON log lines.
    Logs,
    /// `POST /icp/metrics`: request records.
    Requests,
    /// `POST /v1/logs`: OTLP/HTTP JSON logs.
    OtlpLogs,
    /// `POST /v1/metrics`: OTLP/HTTP JSON metrics.
    OtlpMetrics,
}

/// The ingest side of a running server.
pub struct Ingest {
    pub protocol: Arc<Protocol>,
    pub telemetry: Arc<Telemetry>,
}

impl Ingest {
    /// Checks the bearer token: an ingest token (`icpi_...`) or a runtime
    /// token (as for heartbeats). 401 when missing or not valid.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        now: Millis,
    ) -> Result<Credential, Refused> {
        let bearer = authorization.and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        if let Some(token) = bearer.filter(|t| t.starts_with(crate::ingest_tokens::PREFIX)) {
            return crate::ingest_tokens::authenticate(&self.protocol.store, token, now);
        }
        let secret = self.protocol.authenticate(authorization, now)?;
        let mut scope = Attribution {
            environment_id: secret.environment_id,
            environment: secret.environment.clone(),
            ..Attribution::default()
        };
        if let Some(integration_id) = secret.integration_id {
            let (project, integration) = self.protocol.store.read(|tx| {
                let i = tx.integration(integration_id)?;
                let p = match &i {
                    Some(i) => tx.project(i.project_id)?,
                    None => None,
                };
                Ok((p, i))
            })?;
            if let (Some(p), Some(i)) = (project, integration) {
                scope.project_id = Some(p.id);
                scope.project = Some(p.handle);
                scope.integration_id = Some(i.id);
                scope.integration = Some(i.handle);
            }
        }
        Ok(Credential {
            scope,
            label: format!("runtime secret {}", secret.key_id),
        })
    }

    /// The attribution of each named runtime icpd knows: the liveness table
    /// says which are known (memory only), one read transaction gives their
    /// integration, project and environment.
    fn known_runtimes(&self, named: HashSet<String>) -> Result<HashMap<String, Attribution>> {
        let known: Vec<String> = named
            .into_iter()
            .filter(|id| self.protocol.liveness.status(id).is_some())
            .collect();
        if known.is_empty() {
            return Ok(HashMap::new());
        }
        self.protocol.store.read(|tx| {
            let mut out = HashMap::with_capacity(known.len());
            for id in known {
                if let Some(r) = tx.runtime(&id)? {
                    out.insert(
                        id.clone(),
                        Attribution {
                            environment_id: r.environment_id,
                            environment: r.environment,
                            project_id: Some(r.project_id),
                            project: Some(r.project),
                            integration_id: Some(r.integration_id),
                            integration: Some(r.integration),
                            runtime_id: Some(id),
                        },
                    );
                }
            }
            Ok(out)
        })
    }

    /// Decodes, attributes and stores one batch sent by `credential`; the
    /// stored logs go to the live tail once committed.
    pub fn ingest(
        &self,
        credential: &Credential,
        format: Format,
        body: &[u8],
        options: &Options,
        now: Millis,
    ) -> Result<Outcome, Refused> {
        let mut source = credential.scope.clone();
        if let Some(id) = options.runtime_id.as_deref() {
            source.runtime_id = runtime_id(Value::String(id.to_string()))
                .map_err(|e| Error::BadRequest(format!("the runtimeId query parameter: {e}")))?;
        }
        let mut decoded = match format {
            Format::Logs => decode_logs(body, &source, options, now)?,
            Format::Requests => decode_requests(body, &source, options, now)?,
            Format::OtlpLogs => decode_otlp_logs(body, &source, now)?,
            Format::OtlpMetrics => decode_otlp_metrics(body, &source, now)?,
        };
        let known = self.known_runtimes(named_runtimes(&decoded))?;
        // The query parameter speaks for the whole batch: a runtime outside
        // the credential's scope refuses it (a record's own runtimeId only
        // that record).
        if let Some(runtime) = options.runtime_id.as_deref().and_then(|id| known.get(id)) {
            if !credential.covers(runtime) {
                return Err(Refused::new(
                    Reason::BindingMismatch,
                    credential
                        .subject()
                        .with_runtime(runtime.runtime_id.as_deref()),
                    Error::Forbidden(format!(
                        "runtime {} is outside the scope of this {}",
                        runtime.runtime_id.as_deref().unwrap_or_default(),
                        credential.kind()
                    )),
                ));
            }
        }
        attribute_all(&mut decoded, credential, &known);
        let Decoded {
            logs,
            requests,
            points,
            rejected,
        } = decoded;
        let accepted = logs.len() + requests.len() + points.len();
        let signal = match format {
            Format::Logs | Format::OtlpLogs => 0,
            Format::Requests => 1,
            Format::OtlpMetrics => 2,
        };
        let counts = (logs.len(), requests.len(), points.len(), rejected.count);
        let stored: Vec<StoredLog> = self
            .telemetry
            .store
            .insert_batch(logs, &requests, &points, now)?;
        crate::metrics::ingested(counts.0, counts.1, counts.2, counts.3, signal);
        if !stored.is_empty() {
            self.telemetry.tail.publish(&stored);
        }
        if rejected.count > 0 {
            log::debug!(
                "ingest from {}: {accepted} accepted, {} rejected (first: {:?})",
                credential.label,
                rejected.count,
                rejected.reasons.first()
            );
        }
        Ok(Outcome {
            accepted,
            rejected: rejected.count,
            errors: rejected.reasons,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Millis = 1_795_348_800_000; // 2026-11-22T12:00:00Z

    fn dev() -> Attribution {
        Attribution {
            environment_id: 1,
            environment: "dev".into(),
            ..Attribution::default()
        }
    }

    fn logs(body: &str) -> Decoded {
        decode_logs(body.as_bytes(), &dev(), &Options::default(), NOW).unwrap()
    }

    #[test]
    fn fluent_bit_json_array_with_epoch_seconds() {
        let d = logs(
            r#"[{"date": 1795348790.25, "log": "order 42 created", "level": "warn", "pod": "orders-1"},
                {"date": 1795348791, "log": "plain line"}]"#,
        );
        assert_eq!(d.rejected, Rejected::default());
        assert_eq!(d.logs.len(), 2);
        let l = &d.logs[0];
        assert_eq!(l.ts, 1_795_348_790_250);
        assert_eq!(l.level, Level::Warn);
        assert_eq!(l.message, "order 42 created");
        assert_eq!(
            l.attributes,
            *json!({"pod": "orders-1"}).as_object().unwrap()
        );
        assert_eq!(l.source, dev());
        assert_eq!(d.logs[1].level, Level::Info, "no level is INFO");
        assert_eq!(d.logs[1].ts, 1_795_348_791_000);
    }

    #[test]
    fn json_stream_and_pretty_printed_values() {
        let d = logs("{\"log\": \"a\"}{\"log\": \"b\"} {\n  \"log\": \"c\"\n}\n[{\"log\": \"d\"}]");
        assert_eq!(d.rejected.count, 0);
        let messages: Vec<&str> = d.logs.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["a", "b", "c", "d"]);
    }

    #[test]
    fn json_lines_with_a_bad_line_and_a_time_key() {
        let body = "{\"ts\": 1795348790123, \"msg\": \"a\", \"runtimeId\": \"rt-9\"}\n\nnot json\n{\"ts\": \"2026-11-22T11:59:00.5Z\", \"message\": \"b\"}\n";
        let opts = Options {
            time_key: Some("ts".into()),
            ..Options::default()
        };
        let d = decode_logs(body.as_bytes(), &dev(), &opts, NOW).unwrap();
        assert_eq!(d.logs.len(), 2);
        assert_eq!(d.logs[0].ts, 1_795_348_790_123, "epoch ms");
        assert_eq!(d.logs[0].source.runtime_id.as_deref(), Some("rt-9"));
        assert!(d.logs[0].attributes.is_empty());
        assert_eq!(d.logs[1].ts, 1_795_348_740_500, "RFC 3339");
        assert_eq!(d.rejected.count, 1);
        assert!(
            d.rejected.reasons[0].starts_with("line 3: not JSON"),
            "{:?}",
            d.rejected
        );
    }

    #[test]
    fn ballerina_log_lines_and_metrics_lines() {
        let body = r#"{"time":"2026-11-22T17:29:59.123+05:30","level":"ERROR","module":"acme/orders","message":"payment failed","orderId":42,"error":{"code":"E1"}}
{"time":"2026-11-22T17:29:59.500+05:30","level":"INFO","module":"","message":"","logger":"metrics","protocol":"http","entrypoint.service.name":"/orders","src.resource.path":"/orders/{id}","http.method":"get","http.status_code":"503","response_time_seconds":"0.0125"}"#;
        let d = logs(body);
        assert_eq!(d.rejected.count, 0, "{:?}", d.rejected);
        assert_eq!(d.logs.len(), 1);
        let l = &d.logs[0];
        assert_eq!(l.ts, 1_795_348_799_123);
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.module.as_deref(), Some("acme/orders"));
        assert_eq!(
            l.attributes,
            *json!({"orderId": 42, "error": {"code": "E1"}})
                .as_object()
                .unwrap()
        );
        assert_eq!(d.requests.len(), 1);
        let r = &d.requests[0];
        assert_eq!(r.ts, 1_795_348_799_500);
        assert_eq!(
            (
                r.service.as_str(),
                r.resource.as_str(),
                r.method.as_str(),
                r.status
            ),
            ("/orders", "/orders/{id}", "GET", 503)
        );
        assert!((r.duration_ms - 12.5).abs() < 1e-9);
    }

    #[test]
    fn request_records_in_both_spellings() {
        let body = r#"[{"time": 1795348790, "service": "orders", "resource": "/orders", "method": "POST", "statusCode": 201, "responseTimeMs": 3.5},
            {"src.service.name": "stock", "http.url": "/stock/1", "http.method": "GET", "http.status_code": 404, "response_time_seconds": 0.002},
            {"service": "orders", "statusCode": 200},
            {"service": "orders", "statusCode": 999, "responseTimeMs": 1},
            "text"]"#;
        let d = decode_requests(body.as_bytes(), &dev(), &Options::default(), NOW).unwrap();
        assert_eq!(d.requests.len(), 2);
        assert_eq!(d.requests[0].ts, 1_795_348_790_000);
        assert_eq!(d.requests[0].status, 201);
        assert_eq!(d.requests[1].ts, NOW, "no time: received now");
        assert_eq!(d.requests[1].service, "stock");
        assert_eq!(d.requests[1].resource, "/stock/1");
        assert!((d.requests[1].duration_ms - 2.0).abs() < 1e-9);
        assert_eq!(d.rejected.count, 3);
        assert!(d.rejected.reasons[0].contains("no response time"));
        assert!(d.rejected.reasons[1].contains("100 to 599"));
        assert!(d.rejected.reasons[2].contains("not a JSON object"));
    }

    #[test]
    fn otlp_logs() {
        let body = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "orders"}},
            {"key": "service.instance.id", "value": {"stringValue": "rt-1"}}]},
        "scopeLogs": [{"scope": {"name": "acme.orders"}, "logRecords": [
            {"timeUnixNano": "1795348790000000000", "severityText": "Warning", "body": {"stringValue": "slow"},
             "attributes": [{"key": "attempt", "value": {"intValue": "3"}}], "traceId": "5b8efff798038103d269b633813fc60c"},
            {"observedTimeUnixNano": 1795348791000000000u64, "severityNumber": 17,
             "body": {"kvlistValue": {"values": [{"key": "a", "value": {"boolValue": true}}]}}},
            {"timeUnixNano": "1895348790000000000", "body": {"stringValue": "from the future"}}
        ]}]}]});
        let d = decode_otlp_logs(body.to_string().as_bytes(), &dev(), NOW).unwrap();
        assert_eq!(d.logs.len(), 2);
        let l = &d.logs[0];
        assert_eq!(l.ts, 1_795_348_790_000);
        assert_eq!(l.level, Level::Warn);
        assert_eq!(l.module.as_deref(), Some("acme.orders"));
        assert_eq!(l.message, "slow");
        assert_eq!(l.source.runtime_id.as_deref(), Some("rt-1"));
        assert_eq!(
            l.attributes,
            *json!({"service.name": "orders", "attempt": 3, "traceId": "5b8efff798038103d269b633813fc60c"})
                .as_object()
                .unwrap()
        );
        assert_eq!(d.logs[1].ts, 1_795_348_791_000, "observed time");
        assert_eq!(d.logs[1].level, Level::Error, "severity number 17");
        assert_eq!(d.logs[1].message, r#"{"a":true}"#);
        assert_eq!(d.rejected.count, 1);
        assert!(d.rejected.reasons[0].contains("future"));
    }

    #[test]
    fn otlp_metrics() {
        let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.instance.id", "value": {"stringValue": "rt-2"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "requests", "unit": "1", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
                "dataPoints": [{"timeUnixNano": "1795348790000000000", "asInt": "12",
                                "attributes": [{"key": "route", "value": {"stringValue": "/orders"}}]}]}},
            {"name": "heap", "gauge": {"dataPoints": [{"timeUnixNano": "1795348790000000000", "asDouble": 0.75}, {"timeUnixNano": "1795348790000000000"}]}},
            {"name": "latency", "unit": "ms", "histogram": {"dataPoints": [
                {"timeUnixNano": "1795348790000000000", "count": "4", "sum": 30.5,
                 "explicitBounds": [5, 10], "bucketCounts": ["1", "2", "1"]},
                {"timeUnixNano": "1795348790000000000", "count": "1", "explicitBounds": [5], "bucketCounts": ["1"]}]}},
            {"name": "sizes", "exponentialHistogram": {"dataPoints": [{}]}}
        ]}]}]});
        let d = decode_otlp_metrics(body.to_string().as_bytes(), &dev(), NOW).unwrap();
        assert_eq!(d.points.len(), 3, "{:?}", d.rejected);
        let sum = &d.points[0];
        assert_eq!(
            (sum.name.as_str(), sum.kind, sum.value, sum.unit.as_deref()),
            ("requests", MetricKind::Sum, Some(12.0), Some("1"))
        );
        assert_eq!(
            sum.attributes,
            *json!({"route": "/orders"}).as_object().unwrap()
        );
        assert_eq!(sum.source.runtime_id.as_deref(), Some("rt-2"));
        assert_eq!(sum.ts, 1_795_348_790_000);
        assert_eq!(d.points[1].value, Some(0.75));
        let h = &d.points[2];
        assert_eq!(h.kind, MetricKind::Histogram);
        assert_eq!((h.count, h.sum), (Some(4), Some(30.5)));
        assert_eq!(h.bounds, vec![5.0, 10.0]);
        assert_eq!(h.buckets, vec![1, 2, 1]);
        assert_eq!(d.rejected.count, 3);
        assert!(d.rejected.reasons[0].contains("neither asDouble nor asInt"));
        assert!(d.rejected.reasons[1].contains("one more count than bounds"));
        assert!(d.rejected.reasons[2].contains("exponentialHistogram points are not supported"));
    }

    #[test]
    fn not_json_is_an_error_and_nothing_panics() {
        for bad in ["<xml/>", "{\"a\":", "\u{0}\u{1}"] {
            let e = decode_logs(bad.as_bytes(), &dev(), &Options::default(), NOW).unwrap_err();
            assert!(e.to_string().starts_with("the body is not JSON"), "{e}");
        }
        assert!(decode_otlp_logs(b"\x0a\x03abc", &dev(), NOW).is_err());
        assert!(decode_otlp_metrics(b"[1]", &dev(), NOW).is_err());
        // Odd but JSON: nothing accepted, nothing panics.
        for odd in [
            r#"{"resourceLogs": 5}"#,
            r#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [7, null, {"body": 5}]}]}]}"#,
            r#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [1, {"sum": 3}, {"histogram": {"dataPoints": [{"count": -1}]}}]}]}]}"#,
        ] {
            let _ = decode_otlp_logs(odd.as_bytes(), &dev(), NOW).unwrap();
            let _ = decode_otlp_metrics(odd.as_bytes(), &dev(), NOW).unwrap();
        }
        let d = logs("[1, null, [2], {\"log\": null, \"level\": 77}]");
        assert_eq!(d.rejected.count, 3);
        assert_eq!(d.logs.len(), 1);
        assert_eq!(d.logs[0].level, Level::Fatal);
    }

    #[test]
    fn everything_is_bounded() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let mut rec =
            json!({"message": long, "module": "m".repeat(1000), "big": "x".repeat(10_000)});
        for i in 0..100 {
            rec[format!("k{i}")] = i.into();
        }
        let d = logs(&rec.to_string());
        let l = &d.logs[0];
        assert!(l.message.len() <= MAX_MESSAGE_BYTES + TRUNCATED.len());
        assert!(l.message.ends_with(TRUNCATED));
        assert!(l.module.as_ref().unwrap().len() <= MAX_NAME_BYTES + TRUNCATED.len());
        assert_eq!(l.attributes.len(), MAX_ATTRIBUTES + 1);
        assert!(l.attributes[DROPPED_ATTRIBUTES].as_u64().unwrap() > 0);

        let many = format!("[{}]", vec!["{}"; MAX_RECORDS + 1].join(","));
        assert!(
            decode_logs(many.as_bytes(), &dev(), &Options::default(), NOW)
                .unwrap_err()
                .to_string()
                .contains("at most 10000")
        );
        let lines = vec!["{}"; MAX_RECORDS + 1].join("\n");
        assert!(decode_logs(lines.as_bytes(), &dev(), &Options::default(), NOW).is_err());
        let id = json!({"log": "x", "runtimeId": "r".repeat(200)});
        assert_eq!(logs(&id.to_string()).rejected.count, 1);
    }

    #[test]
    fn times_in_every_form() {
        for (v, want) in [
            (json!(1795348800), 1_795_348_800_000),
            (json!(1795348800.5), 1_795_348_800_500),
            (json!(1795348800123i64), 1_795_348_800_123),
            (json!(1795348800123456i64), 1_795_348_800_123),
            (json!("1795348800.25"), 1_795_348_800_250),
            (json!("2026-11-22T12:00:00Z"), 1_795_348_800_000),
            (json!("2026-11-22 12:00:00.5"), 1_795_348_800_500),
            (json!("2026-11-22T13:00:00+01:00"), 1_795_348_800_000),
        ] {
            assert_eq!(parse_time(&v), Some(want), "{v}");
        }
        assert_eq!(parse_time(&json!("yesterday")), None);
        assert_eq!(parse_time(&json!(-1)), None);
        // An unreadable time: received now, the field kept.
        let d = logs(r#"{"time": "yesterday", "log": "x"}"#);
        assert_eq!(d.logs[0].ts, NOW);
        assert_eq!(d.logs[0].attributes["time"], "yesterday");
    }

    #[test]
    fn attribution_by_known_runtime_within_scope() {
        let known_attr = Attribution {
            environment_id: 1,
            environment: "dev".into(),
            project_id: Some(7),
            project: Some("shop".into()),
            integration_id: Some(70),
            integration: Some("orders".into()),
            runtime_id: Some("rt-known".into()),
        };
        let elsewhere = Attribution {
            environment_id: 2,
            environment: "prod".into(),
            runtime_id: Some("rt-prod".into()),
            ..known_attr.clone()
        };
        let known: HashMap<String, Attribution> = [
            ("rt-known".to_string(), known_attr.clone()),
            ("rt-prod".to_string(), elsewhere),
        ]
        .into();
        let body = r#"[{"log": "a", "runtimeId": "rt-known"}, {"log": "b", "runtimeId": "rt-prod"}, {"log": "c", "runtimeId": "rt-new"}, {"log": "d"}]"#;
        let opts = Options {
            runtime_id: None,
            time_key: None,
        };
        let mut d = decode_logs(body.as_bytes(), &dev(), &opts, NOW).unwrap();
        let mut names: Vec<String> = named_runtimes(&d).into_iter().collect();
        names.sort();
        assert_eq!(names, ["rt-known", "rt-new", "rt-prod"]);
        let cred = Credential {
            scope: dev(),
            label: "ingest token x".into(),
        };
        attribute_all(&mut d, &cred, &known);
        assert_eq!(d.logs.len(), 3);
        assert_eq!(d.logs[0].source, known_attr);
        assert_eq!(d.logs[1].source.runtime_id.as_deref(), Some("rt-new"));
        assert_eq!(d.logs[1].source.project, None);
        assert_eq!(d.logs[2].source, dev());
        assert_eq!(d.rejected.count, 1);
        assert!(d.rejected.reasons[0].contains("rt-prod is outside the scope of this ingest token"));

        // A credential bound to another integration refuses the known runtime too.
        let bound = Credential {
            scope: Attribution {
                project_id: Some(7),
                integration_id: Some(71),
                ..dev()
            },
            label: "runtime secret s".into(),
        };
        assert!(!bound.covers(&known_attr));
        let project_only = Credential {
            scope: Attribution {
                project_id: Some(7),
                ..dev()
            },
            label: "ingest token y".into(),
        };
        assert!(project_only.covers(&known_attr));
    }
}
