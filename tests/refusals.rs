//! Refusals leave a trace (issue 13, point 4): a runtime or shipper turned
//! away for its credential, its binding or its rate gets the status the
//! protocol prescribes with a message that says why ("revoked",
//! "expired"), one warn line per source and reason a minute (never the
//! secret), a count in `/metrics`, and an entry in `GET /api/v1/refusals`
//! for those who may view runtimes there. A heartbeat sent to the
//! management port is told where heartbeats go.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{
    assert_ack, assert_error, port_of, wait_for, Bridge, ServeOptions, TestServer,
};

/// The `message` of an error response.
fn message(r: &icpd::http::client::ClientResponse) -> String {
    r.json()["error"]["message"].as_str().unwrap().to_string()
}

/// Warn lines of refusals for `reason` with `status`.
fn refusal_lines(s: &TestServer, reason: &str, status: u16) -> Vec<String> {
    let needle = format!(": {reason} ({status})");
    s.log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(" WARN ") && l.contains("refused ") && l.contains(&needle))
        .cloned()
        .collect()
}

/// `icpd_runtime_refusals_total{listener, reason}` from `/metrics`.
fn refusals_metric(s: &TestServer, listener: &str, reason: &str) -> u64 {
    let r = s
        .management_client()
        .request("GET", "/metrics", &[], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    let series =
        format!("icpd_runtime_refusals_total{{listener=\"{listener}\",reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn reasons(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn refusals_are_answered_logged_once_a_minute_counted_and_kept() {
    // Two full heartbeats per runtime, then (practically) no more.
    let s = TestServer::start_with(ServeOptions {
        icp_toml: Some("[heartbeat_limits]\nfull_per_second = 0.001\nfull_burst = 2\n"),
        ..ServeOptions::default()
    });
    let mut c = s.runtime_client();
    let mut every_secret = Vec::new();

    // A revoked secret: 401 that says so, every time.
    let bound = s.secret("dev", Some(("order-service", "order-create")));
    every_secret.push(bound.clone());
    let (bound_kid, _) = bound.split_once('.').unwrap();
    let runtime = Bridge::new(&bound, Some("node-1"));
    assert_ack(&runtime.full(&mut c));
    let out = s.cli(&["secret", "revoke", bound_kid]);
    assert!(out.status.success());
    for _ in 0..3 {
        let r = runtime.delta(&mut c);
        assert_error(&r, 401, "unauthorized");
        assert!(message(&r).contains("revoked"), "{}", message(&r));
    }
    let r = runtime.full(&mut c);
    assert_error(&r, 401, "unauthorized");
    assert!(message(&r).contains("revoked"), "{}", message(&r));

    // A revoked ingest token: the same reason from the same address.
    let made = s.cli_json(&["ingest-token", "create", "--env", "dev", "--json"]);
    let ingest_token = made["token"].as_str().unwrap().to_string();
    let out = s.cli(&["ingest-token", "revoke", made["id"].as_str().unwrap()]);
    assert!(out.status.success());
    let r = c
        .post_json("/icp/logs", Some(&ingest_token), &json!({"log": "x"}))
        .unwrap();
    assert_error(&r, 401, "unauthorized");
    assert!(message(&r).contains("revoked"), "{}", message(&r));

    // An expired secret: "expired", still 401, without a restart.
    let out = s.cli(&["secret", "create", "--env", "dev", "--ttl", "1s", "--json"]);
    let short: Value = serde_json::from_slice(&out.stdout).unwrap();
    let short = short["secret"].as_str().unwrap().to_string();
    every_secret.push(short.clone());
    let expiring = Bridge::new(&short, None);
    assert_ack(&expiring.full(&mut c));
    let mut last = None;
    wait_for("the secret to expire", Duration::from_secs(10), || {
        let r = expiring.delta(&mut c);
        let refused = r.status == 401;
        last = Some(r);
        refused
    });
    let r = last.unwrap();
    assert_error(&r, 401, "unauthorized");
    assert!(message(&r).contains("expired"), "{}", message(&r));

    // An unknown key id, and a known one with the wrong key material.
    let live = s.secret("dev", None);
    every_secret.push(live.clone());
    let (live_kid, live_material) = live.split_once('.').unwrap();
    let ghost = Bridge::new(&format!("0badc0de.{live_material}"), None);
    let r = ghost.full(&mut c);
    assert_error(&r, 401, "unauthorized");
    assert!(message(&r).starts_with("Unknown key ID"), "{}", message(&r));
    // No token at all.
    let r = c
        .post_json("/icp/deltaHeartbeat", None, &ghost.delta_body())
        .unwrap();
    assert_error(&r, 401, "unauthorized");
    let mistyped = Bridge::new(&format!("{live_kid}.{}", "A".repeat(44)), None);
    assert_error(&mistyped.delta(&mut c), 401, "unauthorized");

    // Another environment than the secret's: 409, or 400 when it does not exist.
    let mut elsewhere = Bridge::new(&live, None);
    elsewhere.env = "prod".into();
    assert_error(&elsewhere.full(&mut c), 409, "conflict");
    elsewhere.env = "nowhere".into();
    assert_error(&elsewhere.full(&mut c), 400, "bad_request");

    // A secret bound to one integration, a heartbeat naming another.
    let billing = s.secret("dev", Some(("order-service", "billing")));
    every_secret.push(billing.clone());
    let mut stray = Bridge::new(&billing, None);
    stray.integration = "shipping".into();
    assert_error(&stray.full(&mut c), 409, "conflict");

    // Over the heartbeat rate.
    let eager = Bridge::new(&live, Some("eager"));
    assert_ack(&eager.full(&mut c));
    assert_ack(&eager.full(&mut c));
    assert_error(&eager.full(&mut c), 429, "too_many_requests");

    // A heartbeat sent to the management port is told where to go.
    let mut m = s.management_client();
    let r = m
        .post_json(
            "/icp/heartbeat",
            Some(&runtime.token()),
            &runtime.full_body(),
        )
        .unwrap();
    assert_error(&r, 404, "wrong_port");
    let runtime_port = port_of(&s.runtime_url);
    let told = message(&r);
    assert!(
        told.contains("management port") && told.contains(&format!("port {runtime_port}")),
        "{told}"
    );

    // One warn line per source and reason (within the minute), whatever
    // the count; the line names the key and the runtime, never the secret.
    wait_for("the revoked log line", Duration::from_secs(10), || {
        !refusal_lines(&s, "revoked", 401).is_empty()
    });
    let revoked = refusal_lines(&s, "revoked", 401);
    assert_eq!(revoked.len(), 1, "{revoked:#?}");
    assert!(
        revoked[0].contains(&format!("runtime secret {bound_kid}"))
            && revoked[0].contains(&runtime.runtime_id)
            && revoked[0].contains("from 127.0.0.1"),
        "{}",
        revoked[0]
    );
    for (reason, status) in [
        ("expired", 401),
        ("unknown_key", 401),
        ("missing_credentials", 401),
        ("wrong_secret", 401),
        ("environment_mismatch", 409),
        ("binding_mismatch", 409),
        ("rate_limited", 429),
        ("wrong_listener", 404),
    ] {
        // The response can arrive before the harness's reader thread has
        // taken the server's log line off its stderr: wait for the line,
        // then check there is exactly one.
        wait_for(
            &format!("the {reason} log line"),
            Duration::from_secs(10),
            || !refusal_lines(&s, reason, status).is_empty(),
        );
        assert_eq!(
            refusal_lines(&s, reason, status).len(),
            1,
            "{reason}: {}",
            s.log_text()
        );
    }
    assert!(
        refusal_lines(&s, "environment_mismatch", 400).is_empty(),
        "the second mismatch within the minute is not logged"
    );
    let log = s.log_text();
    assert!(
        !log.to_ascii_lowercase().contains("bearer "),
        "a credential header hint in the log"
    );
    for secret in &every_secret {
        let material = secret.split_once('.').unwrap().1;
        assert!(!log.contains(material), "key material in the log");
    }
    assert!(
        !log.contains(&ingest_token[5..]),
        "an ingest token in the log"
    );

    // Every refusal is counted.
    assert_eq!(refusals_metric(&s, "runtime", "revoked"), 5);
    assert_eq!(refusals_metric(&s, "runtime", "expired"), 1);
    assert_eq!(refusals_metric(&s, "runtime", "unknown_key"), 1);
    assert_eq!(refusals_metric(&s, "runtime", "wrong_secret"), 1);
    assert_eq!(refusals_metric(&s, "runtime", "environment_mismatch"), 2);
    assert_eq!(refusals_metric(&s, "runtime", "binding_mismatch"), 1);
    assert_eq!(refusals_metric(&s, "runtime", "rate_limited"), 1);
    assert_eq!(refusals_metric(&s, "runtime", "missing_credentials"), 1);
    assert_eq!(refusals_metric(&s, "runtime", "malformed_token"), 0);
    assert_eq!(refusals_metric(&s, "management", "wrong_listener"), 1);

    // Kept per environment, newest first, with what is known of the runtime.
    let mut admin = s.admin();
    let r = admin.get("/api/v1/refusals?environment=dev");
    assert_eq!(r.status, 200, "{}", r.json());
    let dev = r.json()["items"].clone();
    assert_eq!(
        reasons(&dev),
        [
            "rate_limited",
            "binding_mismatch",
            "environment_mismatch",
            "environment_mismatch",
            "wrong_secret",
            "expired",
            "revoked",
            "revoked",
            "revoked",
            "revoked",
            "revoked",
        ]
    );
    let ingest = &dev[6];
    assert_eq!(ingest["credential"], "ingest token");
    assert_eq!(ingest["keyId"], made["id"]);
    assert_eq!(ingest["request"], "POST /icp/logs");
    let first = &dev[10];
    assert_eq!(first["credential"], "runtime secret");
    assert_eq!(first["keyId"], bound_kid);
    assert_eq!(first["runtimeId"], runtime.runtime_id.as_str());
    assert_eq!(first["environment"], "dev");
    assert_eq!(first["source"], "127.0.0.1");
    assert_eq!(first["listener"], "runtime");
    assert_eq!(first["status"], 401);
    assert_eq!(first["request"], "POST /icp/deltaHeartbeat");
    assert!(first["message"].as_str().unwrap().contains("revoked"));
    assert!(first["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        dev[4]["runtimeId"],
        mistyped.runtime_id.as_str(),
        "the runtime id a refused body names"
    );
    assert_eq!(dev[0]["runtimeId"], eager.runtime_id.as_str());
    let text = dev.to_string();
    for secret in &every_secret {
        assert!(!text.contains(secret.split_once('.').unwrap().1));
    }
    // Those that name no environment are only in the whole list.
    let all = reasons(&admin.get("/api/v1/refusals").json()["items"]);
    assert_eq!(all.len(), 14, "{all:?}");
    assert_eq!(&all[..2], ["wrong_listener", "rate_limited"]);
    assert!(all.contains(&"unknown_key".to_string()));
    assert!(all.contains(&"missing_credentials".to_string()));
    assert_eq!(
        reasons(&admin.get("/api/v1/refusals?environment=prod").json()["items"]).len(),
        0
    );
    assert_eq!(
        reasons(&admin.get("/api/v1/refusals?environment=dev&limit=2").json()["items"]),
        ["rate_limited", "binding_mismatch"]
    );
    assert_error(
        &admin.get("/api/v1/refusals?environment=nowhere"),
        404,
        "not_found",
    );
    assert_error(&admin.get("/api/v1/refusals?limit=0"), 400, "bad_request");

    // Shown to whoever may view runtimes there: a viewer of the project
    // sees the refusals of the secrets bound to it (also those a first
    // heartbeat bound, like `expiring`'s and `eager`'s), not those of
    // unbound secrets or of an ingest token of the whole environment.
    let mut nobody = s.api_as("nobody", None);
    let r = admin.post(
        "/api/v1/role-assignments",
        &json!({"role": "Viewer", "user": "nobody", "scope": {"type": "project", "project": "order-service"}}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let seen = nobody.get("/api/v1/refusals?environment=dev").json()["items"].clone();
    assert_eq!(
        reasons(&seen),
        [
            "rate_limited",
            "binding_mismatch",
            "expired",
            "revoked",
            "revoked",
            "revoked",
            "revoked"
        ]
    );
    let mut stranger = s.api_as("stranger", None);
    assert_eq!(
        reasons(&stranger.get("/api/v1/refusals").json()["items"]).len(),
        0
    );
    assert_error(
        &s.management_client()
            .request("GET", "/api/v1/refusals", &[], b"")
            .unwrap(),
        401,
        "unauthorized",
    );

    // The route is in the OpenAPI document.
    let doc = admin.get("/api/v1/openapi.json").json();
    assert!(doc["paths"]["/api/v1/refusals"]["get"].is_object());
}
