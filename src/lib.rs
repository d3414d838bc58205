//! icpd: an Integration Control Plane in one binary.
//!
//! Runtimes (Ballerina / WSO2 Integrator, Micro Integrator) register over
//! the bridge protocol (`protocol`), authenticate with secrets (`secrets`),
//! and are tracked in memory for liveness (`liveness`) and in one SQLite
//! file (`store`). `http` is the only module that knows sockets, TLS and
//! HTTP; `daemon` wires everything for `icpd serve`; `cli` is the command
//! line. See ARCHITECTURE.md for the map and its invariants.

pub mod access;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod configuration;
pub mod daemon;
pub mod data_planes;
pub mod deployments;
pub mod error;
pub mod events;
pub mod http;
pub mod ingest_tokens;
pub mod liveness;
pub mod master_key;
pub mod metrics;
pub mod promotion;
pub mod protocol;
pub mod runtimes;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod time;

pub use error::{Error, Result};
pub use time::Millis;

/// Entry points for the cargo-fuzz targets in `fuzz/`: thin wrappers over
/// the code that reads untrusted bytes (the HTTP request parser, the runtime
/// token check, the heartbeat decoders and validation), so that those
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

    fn verify(authorization: &str) -> crate::Result<ActiveSecret> {
        let cfg = crate::config::Config::defaults().token;
        token::verify(Some(authorization), NOW, &cfg, |kid| {
            Ok((kid == KEY_ID).then(|| ActiveSecret {
                key_id: KEY_ID.into(),
                material: MATERIAL.into(),
                environment_id: 1,
                environment: "dev".into(),
                project_id: None,
                integration_id: None,
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
                matches!(e, crate::Error::Unauthorized(_)),
                "a bad token must be a 401, got {e:?}"
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

    /// Replays `fuzz/seeds/` through the wrappers on every `cargo test`, so
    /// they keep compiling and their invariants hold on stable too.
    #[cfg(test)]
    mod tests {
        #[test]
        fn seeds_replay() {
            let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
            type Target = (&'static str, fn(&[u8]));
            let targets: [Target; 4] = [
                ("http_parse", super::http_parse),
                ("token_verify", super::token_verify),
                ("full_heartbeat", super::full_heartbeat),
                ("delta_heartbeat", super::delta_heartbeat),
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
    }
}
