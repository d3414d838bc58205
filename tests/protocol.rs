//! The bridge protocol against the real server: tokens, validation,
//! binding, environments, replacement, replicas and secret rules.

use serde_json::json;

use std::time::{Duration, Instant};

use crate::harness::{assert_ack, assert_error, wait_for, Bridge, ServeOptions, TestServer};
use icpd::http::client::ClientResponse;
use icpd::protocol::token;

#[test]
fn full_then_delta_registers_a_running_runtime() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", Some(("order-service", "order-create")));
    let b = Bridge::new(&secret, Some("node-1"));
    let mut c = s.runtime_client();
    assert!(!assert_ack(&b.full(&mut c)));
    assert!(!assert_ack(&b.delta(&mut c)));
    assert_eq!(
        c.connection_count(),
        1,
        "heartbeats share one keep-alive connection"
    );
    let r = s.runtime(&b.runtime_id);
    assert_eq!(r["status"], "RUNNING");
    assert_eq!(r["name"], "node-1");
    assert_eq!(r["environment"], "dev");
    assert_eq!(r["project"], "order-service");
    assert_eq!(r["integration"], "order-create");
    assert_eq!(r["runtimeType"], "BI");
    assert_eq!(r["artifacts"]["listeners"][0]["name"], "listener_1");
    assert_eq!(
        r["artifacts"]["services"][0]["resources"][1]["url"],
        "/{id}"
    );
    assert_eq!(r["logLevels"]["acme/orders"], "INFO");
    assert_eq!(r["nodeInfo"]["platformVersion"], "2201.13.2");
    assert!(r["lastHeartbeat"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn every_token_failure_is_a_401() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", None);
    let (kid, material) = secret.split_once('.').unwrap();
    let b = Bridge::new(&secret, None);
    let cfg = icpd::config::Config::defaults().token;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let sign = |header: serde_json::Value, claims: serde_json::Value, key: &str| {
        let input = format!("{}.{}", b64(header), b64(claims));
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes()),
            input.as_bytes(),
        );
        use base64::Engine;
        format!(
            "{input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    };
    let claims = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = json!({"iss": cfg.issuer, "aud": cfg.audience, "exp": now + 3600, "iat": now, "nbf": now, "scope": "runtime_agent"});
        f(&mut c);
        c
    };
    let hdr = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("basic scheme", Some("Basic YWRtaW46YWRtaW4=".into())),
        ("garbage", Some("Bearer not.a.jwt".into())),
        (
            "no kid",
            Some(format!(
                "Bearer {}",
                sign(json!({"alg": "HS256"}), claims(&|_| {}), material)
            )),
        ),
        (
            "unknown kid",
            Some(format!(
                "Bearer {}",
                sign(
                    json!({"alg": "HS256", "kid": "00000000"}),
                    claims(&|_| {}),
                    material
                )
            )),
        ),
        (
            "wrong key",
            Some(format!(
                "Bearer {}",
                sign(hdr.clone(), claims(&|_| {}), &"x".repeat(44))
            )),
        ),
        (
            "alg none",
            Some(format!(
                "Bearer {}.{}.",
                b64(json!({"alg": "none", "kid": kid})),
                b64(claims(&|_| {}))
            )),
        ),
        (
            "alg HS512",
            Some(format!(
                "Bearer {}",
                sign(
                    json!({"alg": "HS512", "kid": kid}),
                    claims(&|_| {}),
                    material
                )
            )),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                sign(
                    hdr.clone(),
                    claims(&|c| c["exp"] = json!(now - 60)),
                    material
                )
            )),
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                sign(
                    hdr.clone(),
                    claims(&|c| c["nbf"] = json!(now + 600)),
                    material
                )
            )),
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                sign(hdr.clone(), claims(&|c| c["iss"] = json!("x")), material)
            )),
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                sign(hdr.clone(), claims(&|c| c["aud"] = json!(["x"])), material)
            )),
        ),
        (
            "no scope",
            Some(format!(
                "Bearer {}",
                sign(
                    hdr.clone(),
                    claims(&|c| {
                        c.as_object_mut().unwrap().remove("scope");
                    }),
                    material
                )
            )),
        ),
        (
            "wrong scope",
            Some(format!(
                "Bearer {}",
                sign(
                    hdr.clone(),
                    claims(&|c| c["scope"] = json!("admin")),
                    material
                )
            )),
        ),
    ];
    let mut c = s.runtime_client();
    for (name, auth) in cases {
        for path in ["/icp/heartbeat", "/icp/deltaHeartbeat"] {
            let body = if path == "/icp/heartbeat" {
                b.full_body()
            } else {
                b.delta_body()
            };
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = auth.as_deref() {
                headers.push(("Authorization", a));
            }
            let r = c
                .request("POST", path, &headers, body.to_string().as_bytes())
                .unwrap();
            assert_eq!(r.status, 401, "{name} on {path}: {}", r.json());
            assert_eq!(r.json()["error"]["code"], "unauthorized", "{name}");
        }
    }
    // Audience as an array that contains ours is accepted.
    let ok = format!(
        "Bearer {}",
        sign(
            hdr,
            claims(&|c| c["aud"] = json!(["x", "icp-server"])),
            material
        )
    );
    let r = c
        .request(
            "POST",
            "/icp/heartbeat",
            &[("Authorization", &ok)],
            b.full_body().to_string().as_bytes(),
        )
        .unwrap();
    assert_ack(&r);
    assert_eq!(token::RUNTIME_SCOPE, "runtime_agent");
    assert!(
        !s.log_text().contains(material),
        "key material must never be logged"
    );
}

#[test]
fn each_validation_failure_is_a_400_and_stores_nothing() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", None);
    let b = Bridge::new(&secret, Some("node-1"));
    let mut c = s.runtime_client();
    let mutate = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut hb = b.full_body();
        f(&mut hb);
        hb.to_string().into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed JSON", b"{\"runtimeId\": ".to_vec()),
        ("array body", b"[1,2,3]".to_vec()),
        ("empty body", Vec::new()),
        (
            "deep nesting",
            [b"[".repeat(5000), b"]".repeat(5000)].concat(),
        ),
        ("invalid UTF-8", b"{\"runtimeId\": \"\xff\xfe\"}".to_vec()),
        (
            "heartbeatVersion",
            mutate(&|h| h["heartbeatVersion"] = json!("v9.9")),
        ),
        (
            "runtimeId length",
            mutate(&|h| h["runtimeId"] = json!("short")),
        ),
        ("runtimeId type", mutate(&|h| h["runtimeId"] = json!(42))),
        (
            "runtime name length",
            mutate(&|h| h["runtime"] = json!("n".repeat(101))),
        ),
        (
            "unknown environment",
            mutate(&|h| h["environment"] = json!("no-such-env")),
        ),
        ("empty project", mutate(&|h| h["project"] = json!("--"))),
        ("empty component", mutate(&|h| h["component"] = json!(""))),
        (
            "missing component",
            mutate(&|h| {
                h.as_object_mut().unwrap().remove("component");
            }),
        ),
        ("runtimeType", mutate(&|h| h["runtimeType"] = json!("JVM"))),
        ("status", mutate(&|h| h["status"] = json!("SLEEPING"))),
        (
            "timestamp",
            mutate(&|h| h["timestamp"] = json!("yesterday")),
        ),
        (
            "listener port type",
            mutate(&|h| h["artifacts"]["listeners"][0]["port"] = json!("x")),
        ),
        (
            "duplicate key",
            br#"{"runtimeId":"a","runtimeId":"b"}"#.to_vec(),
        ),
    ];
    for (name, body) in cases {
        let r = c
            .request(
                "POST",
                "/icp/heartbeat",
                &[("Authorization", &format!("Bearer {}", b.token()))],
                &body,
            )
            .unwrap();
        assert_error(&r, 400, "bad_request");
        let _ = name;
    }
    let mut delta = b.delta_body();
    delta["heartbeatVersion"] = json!("v2");
    assert_error(
        &c.post_json("/icp/deltaHeartbeat", Some(&b.token()), &delta)
            .unwrap(),
        400,
        "bad_request",
    );
    assert!(
        s.runtimes().is_empty(),
        "a rejected heartbeat stores nothing"
    );
    let secrets = s.cli_json(&["secret", "list", "--json"]);
    assert!(
        secrets[0]["project"].is_null(),
        "a rejected heartbeat binds nothing"
    );
}

#[test]
fn unbound_secret_binds_to_the_first_integration_atomically() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", None);
    let mut b = Bridge::new(&secret, None);
    b.project = "Order Service".into();
    b.integration = "Order_Create".into();
    let mut c = s.runtime_client();
    assert_ack(&b.full(&mut c));
    let list = s.cli_json(&["secret", "list", "--json"]);
    assert_eq!(list[0]["project"], "order-service");
    assert_eq!(list[0]["integration"], "order-create");
    assert!(list[0]["boundAt"].is_string());
    let r = s.runtime(&b.runtime_id);
    assert_eq!(
        (r["project"].as_str(), r["integration"].as_str()),
        (Some("order-service"), Some("order-create"))
    );
    // Now bound: another integration with the same secret is a conflict.
    let mut other = Bridge::new(&secret, None);
    other.integration = "billing".into();
    assert_error(&other.full(&mut c), 409, "conflict");
    // The same integration under its other spelling is fine.
    let mut again = Bridge::new(&secret, None);
    again.project = "order-service".into();
    assert_ack(&again.full(&mut c));
    // A bound secret of another runtime type is a conflict.
    let mut mi = Bridge::new(&secret, None);
    mi.runtime_type = "MI".into();
    assert_error(&mi.full(&mut c), 409, "conflict");
}

#[test]
fn nodes_sharing_an_unbound_secret_all_register_when_their_first_heartbeats_race() {
    // Replicas of one integration often start together with the same new
    // secret. The first heartbeat to commit binds it; the others, which
    // read it unbound, must still be accepted (MI stops heartbeating for
    // good after a 409).
    let s = TestServer::start(&[]);
    for round in 0..5 {
        let secret = s.secret("dev", None);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let nodes: Vec<_> = (0..6)
            .map(|i| {
                let b = Bridge::new(&secret, Some(&format!("race-{round}-{i}")));
                let (mut c, barrier) = (s.runtime_client(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    b.full(&mut c)
                })
            })
            .collect();
        for n in nodes {
            assert_ack(&n.join().unwrap());
        }
    }
    let bound = s.cli_json(&["secret", "list", "--json"]);
    assert_eq!(bound.as_array().unwrap().len(), 5);
    assert!(bound
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["integration"] == "order-create"));
}

#[test]
fn environment_mismatch_is_a_409() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", None);
    let mut b = Bridge::new(&secret, None);
    b.env = "prod".into();
    let mut c = s.runtime_client();
    assert_error(&b.full(&mut c), 409, "conflict");
    assert!(s.runtimes().is_empty());
}

#[test]
fn replicas_coexist_and_a_restarted_node_replaces_its_offline_predecessor() {
    let s = TestServer::start(&["--heartbeat-timeout", "1s"]);
    let secret = s.secret("dev", Some(("order-service", "order-create")));
    let mut c = s.runtime_client();
    // Two unnamed replicas and two differently named nodes: all kept.
    let replicas: Vec<Bridge> = vec![
        Bridge::new(&secret, None),
        Bridge::new(&secret, None),
        Bridge::new(&secret, Some("a")),
        Bridge::new(&secret, Some("b")),
    ];
    for r in &replicas {
        assert_ack(&r.full(&mut c));
    }
    assert_eq!(s.runtimes().len(), 4);
    // Node "a" stops; once OFFLINE, its successor (same name, new id) replaces it.
    let a = &replicas[2];
    crate::harness::wait_for("node a OFFLINE", std::time::Duration::from_secs(20), || {
        for r in [&replicas[0], &replicas[1], &replicas[3]] {
            assert_ack(&r.delta(&mut c));
        }
        s.status_of(&a.runtime_id).as_deref() == Some("OFFLINE")
    });
    let a2 = Bridge::new(&secret, Some("a"));
    assert_ack(&a2.full(&mut c));
    let ids: Vec<String> = s
        .runtimes()
        .iter()
        .map(|r| r["runtimeId"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !ids.contains(&a.runtime_id),
        "the OFFLINE predecessor is gone"
    );
    assert!(ids.contains(&a2.runtime_id));
    assert_eq!(
        ids.len(),
        4,
        "unnamed replicas never replace each other: {ids:?}"
    );
    // A delta from the replaced runtime is asked for a full heartbeat.
    assert!(assert_ack(&a.delta(&mut c)));
}

#[test]
fn a_running_predecessor_is_removed_when_it_times_out() {
    // 3 s, not 1 s: the checks between heartbeats run the CLI, which on a
    // loaded machine can take over a second, and `new` must not time out
    // meanwhile (nor `old` before the first check).
    let s = TestServer::start(&["--heartbeat-timeout", "3s"]);
    let secret = s.secret("dev", Some(("order-service", "order-create")));
    let mut c = s.runtime_client();
    let old = Bridge::new(&secret, Some("node"));
    assert_ack(&old.full(&mut c));
    let new = Bridge::new(&secret, Some("node"));
    assert_ack(&new.full(&mut c));
    assert_eq!(
        s.runtimes().len(),
        2,
        "a RUNNING namesake is not deleted at once"
    );
    let mut last_delta = std::time::Instant::now();
    crate::harness::wait_for(
        "old node removed",
        std::time::Duration::from_secs(20),
        || {
            // A heartbeat every half second keeps `new` alive (and under
            // the delta rate limit however fast this polls).
            if last_delta.elapsed() >= std::time::Duration::from_millis(500) {
                assert_ack(&new.delta(&mut c));
                last_delta = std::time::Instant::now();
            }
            s.status_of(&old.runtime_id).is_none()
        },
    );
    assert_eq!(s.status_of(&new.runtime_id).as_deref(), Some("RUNNING"));
}

#[test]
fn a_delta_under_another_secret_is_refused() {
    let s = TestServer::start(&[]);
    let first = s.secret("dev", Some(("order-service", "order-create")));
    let second = s.secret("dev", Some(("order-service", "order-create")));
    let b = Bridge::new(&first, None);
    let mut c = s.runtime_client();
    assert_ack(&b.full(&mut c));
    let mut thief = b.clone();
    thief.secret = second.clone();
    assert_error(&thief.delta(&mut c), 403, "forbidden");
    // A secret of another integration cannot take the runtime over with a full heartbeat either.
    let foreign = s.secret("dev", Some(("order-service", "billing")));
    let mut f = b.clone();
    f.secret = foreign;
    f.integration = "billing".into();
    assert_error(&f.full(&mut c), 409, "conflict");
    // The owner is unaffected.
    assert!(!assert_ack(&b.delta(&mut c)));
    // Rotation: a full heartbeat under a new secret of the same integration moves the runtime to it.
    assert!(!assert_ack(&thief.full(&mut c)));
    assert!(!assert_ack(&thief.delta(&mut c)));
    assert_error(&b.delta(&mut c), 403, "forbidden");
}

#[test]
fn revoked_and_expired_secrets_stop_working_on_the_next_request() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", None);
    let b = Bridge::new(&secret, None);
    let mut c = s.runtime_client();
    assert_ack(&b.full(&mut c));
    assert_ack(&b.delta(&mut c));
    let kid = secret.split_once('.').unwrap().0;
    let out = s.cli(&["secret", "revoke", kid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_error(&b.delta(&mut c), 401, "unauthorized");
    assert_error(&b.full(&mut c), 401, "unauthorized");
    let list = s.cli_json(&["secret", "list", "--json"]);
    assert_eq!(list[0]["status"], "revoked");
    assert!(
        list[0].get("secret").is_none()
            && !list.to_string().contains(secret.split_once('.').unwrap().1)
    );

    // A secret with a short TTL works, then stops without a restart.
    let out = s.cli(&["secret", "create", "--env", "dev", "--ttl", "1s", "--json"]);
    let short: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b2 = Bridge::new(short["secret"].as_str().unwrap(), None);
    // Accepted while it has certainly not expired: answered before
    // expiresAt (a machine too slow for even that proves nothing here).
    let expires = crate::harness::millis(&short["expiresAt"]);
    let r = b2.full(&mut c);
    if icpd::time::now_millis() < expires {
        assert_ack(&r);
    }
    crate::harness::wait_for("expiry", std::time::Duration::from_secs(20), || {
        b2.delta(&mut c).status == 401
    });
    assert!(
        icpd::time::now_millis() >= expires,
        "refused before expiresAt"
    );
}

#[test]
fn command_result_is_accepted() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", None);
    let b = Bridge::new(&secret, None);
    let mut c = s.runtime_client();
    let r = c
        .post_json(
            "/icp/commandResult",
            Some(&b.token()),
            &json!({"runtimeId": b.runtime_id, "commandId": "c1", "status": "COMPLETED"}),
        )
        .unwrap();
    assert_eq!(r.status, 202);
    assert_eq!(r.json(), json!({"accepted": true}));
    let r = c.post_json("/icp/commandResult", None, &json!({})).unwrap();
    assert_error(&r, 401, "unauthorized");
    let r = c.request("GET", "/icp/heartbeat", &[], b"").unwrap();
    assert_error(&r, 405, "method_not_allowed");
    let r = c.request("GET", "/nothing", &[], b"").unwrap();
    assert_error(&r, 404, "not_found");
}

#[test]
fn heartbeats_over_the_rate_limit_get_429_with_retry_after() {
    let s = TestServer::start_with(ServeOptions {
        icp_toml: Some(
            "[heartbeat_limits]\nfull_per_second = 0.1\nfull_burst = 2\ndelta_per_second = 0.5\ndelta_burst = 3\n",
        ),
        ..ServeOptions::default()
    });
    let secret = s.secret("dev", None);
    let b = Bridge::new(&secret, Some("node-1"));
    let mut c = s.runtime_client();
    // Retry-After for a bucket that one token (1/rate s) refills from the
    // take that emptied it, `took` before: not more than 1/rate, not less
    // than the rest of it. Rates slow enough that a loaded machine cannot
    // refill the bucket before the request that must be refused.
    let retry_after = |r: &ClientResponse, rate: f64, took: Duration| {
        let secs: f64 = r.header("retry-after").unwrap().parse().unwrap();
        let most = (1.0 / rate).ceil();
        let least = (most - took.as_secs_f64()).ceil().max(1.0);
        assert!(
            (least..=most).contains(&secs),
            "Retry-After {secs}, expected {least}..={most} (one token at {rate}/s, {took:?} after the burst began)"
        );
    };
    // The registering full heartbeat and one more fill the burst of 2.
    let started = Instant::now();
    assert_ack(&b.full(&mut c));
    assert_ack(&b.full(&mut c));
    let r = b.full(&mut c);
    assert_error(&r, 429, "too_many_requests");
    retry_after(&r, 0.1, started.elapsed());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("full heartbeats faster"));
    // Deltas have their own bucket of 3.
    let started = Instant::now();
    for _ in 0..3 {
        assert_ack(&b.delta(&mut c));
    }
    let r = b.delta(&mut c);
    assert_error(&r, 429, "too_many_requests");
    retry_after(&r, 0.5, started.elapsed());
    // Another runtime is not affected.
    let other = Bridge::new(&secret, Some("node-2"));
    assert_ack(&other.full(&mut c));
    assert_ack(&other.delta(&mut c));
    // The limited runtime is still RUNNING, and after the wait it is let in.
    assert_eq!(s.status_of(&b.runtime_id).as_deref(), Some("RUNNING"));
    wait_for("a delta token", Duration::from_secs(20), || {
        b.delta(&mut c).status == 200
    });
}
