//! icpd: an Integration Control Plane in one binary.
//!
//! Runtimes (Ballerina / WSO2 Integrator, Micro Integrator) register over
//! the bridge protocol (`protocol`), authenticate with secrets (`secrets`),
//! and are tracked in memory for liveness (`liveness`) and in one SQLite
//! file (`store`). `http` is the only module that knows sockets, TLS and
//! HTTP, but for `ldap`, which dials the directory for sign-in; `daemon` wires everything for `icpd serve`; `cli` is the command
//! line. See ARCHITECTURE.md for the map and its invariants.

pub mod access;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod configuration;
pub mod contracts;
pub mod daemon;
pub mod data_planes;
pub mod deployments;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod id;
pub mod ingest_tokens;
pub mod ldap;
pub mod liveness;
pub mod master_key;
pub mod metrics;
pub mod mi;
pub mod model;
pub mod oidc;
pub mod outbound;
pub mod promotion;
pub mod protocol;
pub mod refusals;
pub mod runtimes;
pub mod secrets;
pub mod sso;
pub mod store;
pub mod telemetry;
pub mod time;

pub use error::{Error, Result};
pub use time::Millis;

/// Entry points for the cargo-fuzz targets in `fuzz/`: thin wrappers over
/// the code that reads untrusted bytes (the HTTP request parser, the runtime
/// token check, the heartbeat decoders and validation (the MI heartbeat's
/// report included), the telemetry ingest decoders), so that those
/// modules stay private. Each wrapper also asserts what must hold for any
/// input, so a broken invariant is a crash the fuzzer reports. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use base64::Engine;

    use crate::http::parse::{parse, ParseLimits, Parsed};
    use crate::protocol::heartbeat::{decode, DeltaHeartbeat, FullHeartbeat};
    use crate::protocol::token;
    use crate::secrets::ActiveSecret;

    /// Small limits, so that inputs of a few hundred bytes reach them.
    const LIMITS: ParseLimits = ParseLimits {
        max_head_bytes: 512,
        max_headers: 8,
        max_body_bytes: 64,
    };

    /// Parses `data` as the bytes buffered on a connection.
    pub fn http_parse(data: &[u8]) {
        match parse(data, &LIMITS) {
            Parsed::Complete(r) => {
                assert!(r.consumed <= data.len(), "consumed past the buffer");
                assert!(r.body.len() <= LIMITS.max_body_bytes, "body over the limit");
                // The request must parse the same from exactly its own bytes.
                match parse(&data[..r.consumed], &LIMITS) {
                    Parsed::Complete(again) => {
                        assert_eq!(again.consumed, r.consumed);
                        assert_eq!(again.body, r.body);
                    }
                    other => panic!("prefix parsed differently: {other:?}"),
                }
            }
            Parsed::Reject(r) => assert!(
                matches!(r.status, 400 | 413 | 417 | 431),
                "unexpected rejection status {}",
                r.status
            ),
            Parsed::Incomplete { .. } => {}
        }
    }

    const KEY_ID: &str = "abcd1234";
    const MATERIAL: &str = "c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcy1sb25nIQ==";
    /// 2026-01-01T00:00:00Z, in milliseconds.
    const NOW: crate::Millis = 1_767_225_600_000;

    fn verify(authorization: &str) -> Result<ActiveSecret, crate::refusals::Refused> {
        let cfg = crate::config::Config::defaults().token;
        token::verify(Some(authorization), NOW, &cfg, |kid| {
            Ok((kid == KEY_ID).then(|| {
                let secret = ActiveSecret {
                    key_id: KEY_ID.into(),
                    material: MATERIAL.into(),
                    environment_id: 1,
                    environment: "dev".into(),
                    project_id: None,
                    integration_id: None,
                };
                (secret, crate::secrets::Usable::Yes)
            }))
        })
    }

    /// Checks a token. With a first byte of 0, `data` is the raw
    /// Authorization header; otherwise it is `header JSON \n claims JSON`,
    /// signed with the right key so the claim checks are reached.
    pub fn token_verify(data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let authorization = if mode == 0 {
            String::from_utf8_lossy(rest).into_owned()
        } else {
            let text = String::from_utf8_lossy(rest);
            let (header, claims) = text.split_once('\n').unwrap_or((&text, ""));
            let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, MATERIAL.as_bytes());
            let sig = ring::hmac::sign(&key, input.as_bytes());
            format!("Bearer {input}.{}", B64URL.encode(sig.as_ref()))
        };
        match verify(&authorization) {
            Ok(secret) => assert_eq!(secret.key_id, KEY_ID),
            Err(e) => assert!(
                matches!(e.error, crate::Error::Unauthorized(_)) && e.reason.is_some(),
                "a bad token must be a 401 refusal with a reason, got {e:?}"
            ),
        }
    }

    /// A heartbeat that cannot be decoded or is invalid must be a 400.
    fn assert_bad_request(e: crate::Error) {
        assert!(
            matches!(e, crate::Error::BadRequest(_)),
            "a bad heartbeat must be a 400, got {e:?}"
        );
    }

    /// Decodes and validates `data` as a full heartbeat body.
    pub fn full_heartbeat(data: &[u8]) {
        let hb = match decode::<FullHeartbeat>(data) {
            Ok(hb) => hb,
            Err(e) => return assert_bad_request(e),
        };
        match hb.validate() {
            Ok(()) => {
                assert_eq!(hb.runtime_id.chars().count(), 36);
                let _ = hb.reported_status();
                assert_eq!(hb.artifacts_digest().len(), 64);
            }
            Err(e) => assert_bad_request(e),
        }
    }

    /// Reads `data` as a full heartbeat with `FullHeartbeat::read`, as the
    /// runtime listener does. An MI heartbeat that is accepted has its
    /// report, within [`MAX_ARTIFACTS`](crate::mi::MAX_ARTIFACTS), every
    /// name non-empty, without NUL and within
    /// [`MAX_NAME_CHARS`](crate::mi::MAX_NAME_CHARS) characters, each
    /// entry kept as the object it was; a Management API address has a
    /// host of 1-255 bytes and a port 1-65535; the bridge's artifact
    /// fields stay empty. Anything refused is a 400.
    pub fn mi_heartbeat(data: &[u8]) {
        use crate::mi::{MAX_ARTIFACTS, MAX_NAME_CHARS};
        let hb = match FullHeartbeat::read(data) {
            Ok(hb) => hb,
            Err(e) => return assert_bad_request(e),
        };
        assert_eq!(hb.runtime_id.chars().count(), 36);
        if hb.runtime_type != "MI" {
            assert!(
                hb.mi.is_none(),
                "a report for a {} runtime",
                hb.runtime_type
            );
            return;
        }
        let mi = hb
            .mi
            .as_ref()
            .expect("an accepted MI heartbeat has its report");
        assert!(hb.artifacts.is_none() && hb.log_levels.is_none());
        assert!(
            mi.artifacts.len() <= MAX_ARTIFACTS,
            "{} artifacts",
            mi.artifacts.len()
        );
        for a in &mi.artifacts {
            let chars = a.name.chars().count();
            assert!(
                (1..=MAX_NAME_CHARS).contains(&chars) && !a.name.contains('\0'),
                "name {:?}",
                a.name
            );
            assert_eq!(a.detail.get("name").and_then(Value::as_str), Some(&*a.name));
        }
        if let Some(m) = &mi.management {
            assert!(m.port >= 1, "port 0");
            assert!(
                !m.host.trim().is_empty() && m.host.len() <= 255,
                "host {:?}",
                m.host
            );
        }
        assert_eq!(hb.artifacts_digest().len(), 64);
    }

    /// Decodes and validates `data` as a delta heartbeat body.
    pub fn delta_heartbeat(data: &[u8]) {
        let hb = match decode::<DeltaHeartbeat>(data) {
            Ok(hb) => hb,
            Err(e) => return assert_bad_request(e),
        };
        match hb.validate() {
            Ok(()) => assert_eq!(hb.runtime_id.chars().count(), 36),
            Err(e) => assert_bad_request(e),
        }
    }

    // ---- telemetry ingest -------------------------------------------------

    use crate::telemetry::ingest::{
        self, Decoded, Options, DROPPED_ATTRIBUTES, MAX_ATTRIBUTES, MAX_FUTURE_MS,
        MAX_MESSAGE_BYTES, MAX_NAME_BYTES, MAX_REASONS, MAX_RECORDS, MAX_RUNTIME_ID_BYTES,
        MAX_VALUE_BYTES, TRUNCATED,
    };
    use crate::telemetry::{Attribution, Level};
    use serde_json::Value;

    /// The credential's attribution every decoded record starts from.
    fn dev() -> Attribution {
        Attribution {
            environment_id: 1,
            environment: "dev".into(),
            ..Attribution::default()
        }
    }

    /// A failed decode refuses the whole batch: always a 400.
    fn assert_refused(e: crate::Error) {
        assert!(
            matches!(e, crate::Error::BadRequest(_)),
            "a batch that cannot be decoded must be a 400, got {e:?}"
        );
    }

    fn assert_bounded_text(what: &str, text: &str, max: usize) {
        assert!(
            text.len() <= max + TRUNCATED.len(),
            "{what} of {} bytes",
            text.len()
        );
    }

    fn assert_bounded_attributes(attributes: &serde_json::Map<String, Value>) {
        assert!(
            attributes.len() <= MAX_ATTRIBUTES + 1,
            "{} attributes",
            attributes.len()
        );
        for (k, v) in attributes {
            assert_bounded_text("an attribute key", k, MAX_NAME_BYTES);
            match v {
                Value::String(s) => assert_bounded_text("an attribute value", s, MAX_VALUE_BYTES),
                Value::Array(_) | Value::Object(_) => assert!(
                    v.to_string().len() <= MAX_VALUE_BYTES,
                    "an attribute object of {} bytes",
                    v.to_string().len()
                ),
                _ => {}
            }
        }
        if attributes.len() > MAX_ATTRIBUTES {
            assert!(attributes.contains_key(DROPPED_ATTRIBUTES));
        }
    }

    fn assert_source(source: &Attribution) {
        assert_eq!(source.environment_id, 1);
        if let Some(id) = &source.runtime_id {
            assert!(
                !id.is_empty() && id.len() <= MAX_RUNTIME_ID_BYTES,
                "runtime id {id:?}"
            );
        }
    }

    /// What holds for every decoded batch, whatever it was decoded from:
    /// within [`MAX_RECORDS`], text bounded, levels valid, times at most
    /// [`MAX_FUTURE_MS`] ahead, numbers finite, histograms consistent.
    fn assert_decoded(d: &Decoded) {
        assert!(d.accepted() <= MAX_RECORDS, "{} records kept", d.accepted());
        assert_eq!(d.rejected.reasons.len(), d.rejected.count.min(MAX_REASONS));
        let latest = NOW + MAX_FUTURE_MS;
        for l in &d.logs {
            assert!(l.ts <= latest, "a log at {}", l.ts);
            assert_eq!(Level::parse(l.level.as_str()), Some(l.level));
            assert_bounded_text("a message", &l.message, MAX_MESSAGE_BYTES);
            if let Some(m) = &l.module {
                assert!(!m.is_empty());
                assert_bounded_text("a module", m, MAX_NAME_BYTES);
            }
            assert_bounded_attributes(&l.attributes);
            assert_source(&l.source);
        }
        for r in &d.requests {
            assert!(r.ts <= latest, "a request at {}", r.ts);
            assert!((100..=599).contains(&r.status), "status {}", r.status);
            assert!(r.duration_ms.is_finite() && r.duration_ms >= 0.0);
            assert!(!r.service.is_empty());
            for (what, t) in [
                ("service", &r.service),
                ("resource", &r.resource),
                ("method", &r.method),
            ] {
                assert_bounded_text(what, t, MAX_NAME_BYTES);
            }
            assert_source(&r.source);
        }
        for p in &d.points {
            assert!(p.ts <= latest, "a point at {}", p.ts);
            assert_bounded_text("a metric name", &p.name, MAX_NAME_BYTES);
            if let Some(u) = &p.unit {
                assert_bounded_text("a unit", u, MAX_NAME_BYTES);
            }
            assert!(p.value.is_none_or(f64::is_finite));
            assert!(p.sum.is_none_or(f64::is_finite));
            assert!(p.bounds.iter().all(|b| b.is_finite()));
            assert!(
                p.bounds.windows(2).all(|w| w[0] < w[1]),
                "bounds {:?}",
                p.bounds
            );
            assert!(p.buckets.is_empty() || p.buckets.len() == p.bounds.len() + 1);
            assert_bounded_attributes(&p.attributes);
            assert_source(&p.source);
        }
    }

    /// Records a Fluent Bit body holds when it is one JSON array or one
    /// JSON value (other framings are counted by the decoder alone).
    fn framed_records(data: &[u8]) -> Option<usize> {
        match serde_json::from_slice::<Value>(data).ok()? {
            Value::Array(a) => Some(a.len()),
            _ => Some(1),
        }
    }

    /// Options from the first byte: `?runtimeId=` and `?timeKey=` or not.
    fn options(mode: u8) -> Options {
        Options {
            runtime_id: (mode & 1 != 0).then(|| "rt-1".into()),
            time_key: (mode & 2 != 0).then(|| "ts".into()),
        }
    }

    /// Decodes a Fluent Bit / Ballerina log body (`POST /icp/logs`); the
    /// first byte picks the query options.
    pub fn ingest_logs(data: &[u8]) {
        let Some((&mode, body)) = data.split_first() else {
            return;
        };
        match ingest::decode_logs(body, &dev(), &options(mode), NOW) {
            Ok(d) => {
                assert_decoded(&d);
                assert!(d.points.is_empty());
                if let Some(n) = framed_records(body) {
                    assert_eq!(
                        d.accepted() + d.rejected.count,
                        n,
                        "records kept and rejected"
                    );
                }
            }
            Err(e) => assert_refused(e),
        }
    }

    /// Decodes request records (`POST /icp/metrics`); the first byte picks
    /// the query options.
    pub fn ingest_requests(data: &[u8]) {
        let Some((&mode, body)) = data.split_first() else {
            return;
        };
        match ingest::decode_requests(body, &dev(), &options(mode), NOW) {
            Ok(d) => {
                assert_decoded(&d);
                assert!(d.logs.is_empty() && d.points.is_empty());
                if let Some(n) = framed_records(body) {
                    assert_eq!(
                        d.accepted() + d.rejected.count,
                        n,
                        "records kept and rejected"
                    );
                }
            }
            Err(e) => assert_refused(e),
        }
    }

    /// The items of `v[key]` when it is an array (what the OTLP decoders
    /// walk), else none.
    fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
        v.get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Decodes an OTLP/HTTP JSON logs body (`POST /v1/logs`): every
    /// `logRecord` is kept or rejected.
    pub fn otlp_logs(data: &[u8]) {
        match ingest::decode_otlp_logs(data, &dev(), NOW) {
            Ok(d) => {
                assert_decoded(&d);
                assert!(d.requests.is_empty() && d.points.is_empty());
                let root: Value = serde_json::from_slice(data).unwrap();
                let n: usize = items(&root, "resourceLogs")
                    .iter()
                    .flat_map(|r| items(r, "scopeLogs"))
                    .map(|s| items(s, "logRecords").len())
                    .sum();
                assert_eq!(
                    d.accepted() + d.rejected.count,
                    n,
                    "log records kept and rejected"
                );
            }
            Err(e) => assert_refused(e),
        }
    }

    /// Decodes an OTLP/HTTP JSON metrics body (`POST /v1/metrics`): every
    /// data point is kept or rejected, and a metric without data is one
    /// rejection.
    pub fn otlp_metrics(data: &[u8]) {
        match ingest::decode_otlp_metrics(data, &dev(), NOW) {
            Ok(d) => {
                assert_decoded(&d);
                assert!(d.logs.is_empty() && d.requests.is_empty());
                let root: Value = serde_json::from_slice(data).unwrap();
                let kinds = [
                    "sum",
                    "gauge",
                    "histogram",
                    "exponentialHistogram",
                    "summary",
                ];
                let n: usize = items(&root, "resourceMetrics")
                    .iter()
                    .flat_map(|r| items(r, "scopeMetrics"))
                    .flat_map(|s| items(s, "metrics"))
                    .map(|m| match kinds.iter().find_map(|k| m.get(*k)) {
                        Some(data) => items(data, "dataPoints").len(),
                        None => 1,
                    })
                    .sum();
                assert_eq!(
                    d.accepted() + d.rejected.count,
                    n,
                    "data points kept and rejected"
                );
            }
            Err(e) => assert_refused(e),
        }
    }

    /// Validates the body of `PATCH .../config` as `configuration::change`
    /// does (keys, types, depth, duplicates), then renders it as
    /// `GET /icp/config` would. The write-time document check and the
    /// rendering must agree (a revision that is accepted must render: else
    /// every later fetch would fail), and the TOML must parse back to
    /// exactly the values stored, at their sections and keys.
    pub fn config_values(data: &[u8]) {
        use crate::configuration::{
            check_document, check_key, check_value, to_toml, ConfigChange, PlainValue, StoredValue,
            ValueKey,
        };
        let Ok(change) = serde_json::from_slice::<ConfigChange>(data) else {
            return;
        };
        let mut seen = std::collections::HashSet::new();
        let mut stored = Vec::new();
        let mut plain = Vec::new();
        for s in &change.set {
            let k = ValueKey {
                section: s.section.trim().to_string(),
                key: s.key.trim().to_string(),
            };
            let checked = check_key(&k)
                .and_then(|_| check_value(&k.dotted(), s.value_type.as_deref(), &s.value));
            let (value_type, value) = match checked {
                Ok(v) => v,
                Err(e) => return assert_refused(e),
            };
            if !seen.insert(k.clone()) {
                return;
            }
            // What the store keeps and `open_values` reads back.
            let text = value.to_string();
            let value: Value = serde_json::from_str(&text).expect("a checked value re-reads");
            stored.push(StoredValue {
                section: k.section.clone(),
                key: k.key.clone(),
                value_type,
                secret: s.secret.unwrap_or(false),
                value: Some(text),
                sealed: None,
                updated_by: "fuzz".into(),
                updated_at: NOW,
            });
            plain.push(PlainValue {
                section: k.section,
                key: k.key,
                value_type,
                secret: s.secret.unwrap_or(false),
                value,
                updated_by: "fuzz".into(),
                updated_at: NOW,
            });
        }
        let accepted = check_document(&stored);
        let rendered = to_toml(&plain);
        let toml = match (accepted, rendered) {
            (Ok(()), Ok(toml)) => toml,
            (Err(a), Err(b)) => {
                assert_refused(a);
                return assert_refused(b);
            }
            (a, b) => panic!("the write check says {a:?}, the rendering {b:?}"),
        };
        let doc: toml::Table = toml::from_str(&toml).expect("rendered TOML parses");
        let mut count = 0;
        for v in &plain {
            let mut table = &doc;
            if !v.section.is_empty() {
                for seg in v.section.split('.') {
                    table = table
                        .get(seg)
                        .and_then(toml::Value::as_table)
                        .expect("each section is a table");
                }
            }
            let got = table.get(&v.key).expect("each key is rendered");
            assert!(
                same(got, &v.value),
                "{}.{} renders differently",
                v.section,
                v.key
            );
            count += 1;
        }
        assert_eq!(count, plain.len());
    }

    /// A TOML value equal to a JSON value (a float exactly, bit for bit).
    fn same(t: &toml::Value, j: &Value) -> bool {
        match (t, j) {
            (toml::Value::String(a), Value::String(b)) => a == b,
            (toml::Value::Boolean(a), Value::Bool(b)) => a == b,
            (toml::Value::Integer(a), Value::Number(b)) if b.is_i64() => Some(*a) == b.as_i64(),
            (toml::Value::Float(a), Value::Number(b)) if !b.is_i64() => {
                b.as_f64().is_some_and(|b| a.to_bits() == b.to_bits())
            }
            (toml::Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
            }
            (toml::Value::Table(a), Value::Object(b)) => {
                a.len() == b.len() && b.iter().all(|(k, y)| a.get(k).is_some_and(|x| same(x, y)))
            }
            _ => false,
        }
    }

    /// Replays `fuzz/seeds/` through the wrappers on every `cargo test`, so
    /// they keep compiling and their invariants hold on stable too.
    #[cfg(test)]
    mod tests {
        #[test]
        fn seeds_replay() {
            let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
            type Target = (&'static str, fn(&[u8]));
            let targets: [Target; 10] = [
                ("http_parse", super::http_parse),
                ("token_verify", super::token_verify),
                ("full_heartbeat", super::full_heartbeat),
                ("mi_heartbeat", super::mi_heartbeat),
                ("delta_heartbeat", super::delta_heartbeat),
                ("ingest_logs", super::ingest_logs),
                ("ingest_requests", super::ingest_requests),
                ("otlp_logs", super::otlp_logs),
                ("otlp_metrics", super::otlp_metrics),
                ("config_values", super::config_values),
            ];
            for (name, run) in targets {
                let mut count = 0;
                for entry in std::fs::read_dir(seeds.join(name)).unwrap() {
                    run(&std::fs::read(entry.unwrap().path()).unwrap());
                    count += 1;
                }
                assert!(count > 0, "no seeds for {name}");
            }
        }

        /// The MI seeds are what their names say: `bad-*` refused (400),
        /// the others accepted as MI heartbeats, so the fuzzer starts on
        /// both sides of the validation.
        #[test]
        fn mi_heartbeat_seeds_are_what_their_names_say() {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/mi_heartbeat");
            let (mut good, mut bad) = (0, 0);
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let read =
                    crate::protocol::heartbeat::FullHeartbeat::read(&std::fs::read(&path).unwrap());
                if name.starts_with("bad-") {
                    assert!(
                        matches!(read, Err(crate::Error::BadRequest(_))),
                        "{name}: {read:?}"
                    );
                    bad += 1;
                } else {
                    let hb = read.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(hb.mi.is_some(), "{name} is not an MI heartbeat");
                    good += 1;
                }
            }
            assert!(good >= 2 && bad >= 3, "{good} good and {bad} bad seeds");
        }
    }
}
