//! MI's Management API through `icpd::mi::management::call`, against the
//! stand-in MI (`../shared/conformance/mi.py run`) serving its fake
//! Management API over HTTPS with a self-signed certificate. Each test
//! starts a real icpd, creates a secret with the CLI, starts mi.py with
//! that secret, and checks both the answers and mi.py's record of every
//! call (method, path, query, body, and that MI took the token as ICP's
//! JWT, user `icpd`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use icpd::http::outbound::{OutboundError, PeerTrust, Timeouts};
use icpd::mi::management::{
    call, list_users, Answer, Call, CallError, MiUser, Password, Resource, Target,
};
use serde_json::{json, Value};

use crate::harness::TestServer;
use crate::mi_standin::MiStandIn;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A target for the stand-in on `port`, signing with `secret`
/// (`<keyId>.<keyMaterial>`, as `icpd secret create` prints it).
fn target(secret: &str, port: u16, trust: PeerTrust) -> Target {
    let (key_id, material) = secret.split_once('.').unwrap();
    Target {
        host: "127.0.0.1".into(),
        port,
        key_id: key_id.into(),
        key_material: material.into(),
        trust,
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(30),
        },
    }
}

/// A call that must succeed with JSON, on the pinned certificate.
fn json_of(t: &Target, c: Call) -> Value {
    let (answer, pin) = call(t, &c, now()).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    if let PeerTrust::Pin(Some(pinned)) = &t.trust {
        assert_eq!(pin, Some(*pinned), "{c:?}");
    }
    match answer {
        Answer::Json(v) => v,
        other => panic!("{c:?}: expected JSON, got {other:?}"),
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

/// The one recorded call matching method, path and query, which must have
/// been authenticated as ICP's JWT; returns its body.
fn recorded(calls: &[Value], method: &str, path: &str, query: Value) -> Value {
    let found: Vec<&Value> = calls
        .iter()
        .filter(|c| c["method"] == method && c["path"] == path && c["query"] == query)
        .collect();
    assert!(
        !found.is_empty(),
        "no {method} {path} {query} among {calls:#?}"
    );
    let c = found[0];
    assert_eq!(c["auth"]["outcome"], "accepted", "{c}");
    assert_eq!(c["auth"]["scheme"], "icp-jwt", "{c}");
    assert_eq!(c["auth"]["user"], "icpd", "the token's sub: {c}");
    assert_eq!(c["via"], "https", "{c}");
    c["body"].clone()
}

#[test]
fn controls_and_reads_through_the_stand_in() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    let mi = MiStandIn::start(
        &server,
        &secret,
        "mi-node-1",
        &["--faulty", "--interval", "60"],
    );

    // First contact: any certificate, and the answer carries its pin.
    let first = target(&secret, mi.port(), PeerTrust::Pin(None));
    let (root, pin) = call(&first, &Call::Root, now()).unwrap();
    assert_eq!(root.json().unwrap()["ManagementApi"], "Active");
    let pin = pin.expect("HTTPS answers carry the certificate's digest");
    let t = target(&secret, mi.port(), PeerTrust::Pin(Some(pin)));

    // Artifact controls.
    let v = json_of(
        &t,
        Call::SetStatus {
            resource: Resource::ProxyServices,
            name: s("StockQuoteProxy"),
            active: false,
        },
    );
    assert_eq!(
        v,
        json!({"Message": "Proxy service StockQuoteProxy stopped successfully"})
    );
    let v = json_of(
        &t,
        Call::Detail {
            resource: Resource::ProxyServices,
            name: s("StockQuoteProxy"),
        },
    );
    assert_eq!(v["isRunning"], false, "{v}");
    let v = json_of(
        &t,
        Call::SetTracing {
            resource: Resource::Apis,
            name: s("HealthcareAPI"),
            on: true,
        },
    );
    assert_eq!(
        v,
        json!({"message": "Enabled tracing for ('HealthcareAPI')"})
    );
    let v = json_of(
        &t,
        Call::SetStatistics {
            resource: Resource::Templates,
            name: s("LogAndRespondTemplate"),
            on: true,
        },
    );
    assert_eq!(
        v,
        json!({"message": "Enabled statistics for ('LogAndRespondTemplate')"})
    );
    let v = json_of(
        &t,
        Call::TriggerTask {
            name: s("InventorySyncTask"),
        },
    );
    assert_eq!(v, json!({"Message": "Task InventorySyncTask triggered"}));
    let e = call(
        &t,
        &Call::SetStatus {
            resource: Resource::ProxyServices,
            name: s("NoSuchProxy"),
            active: true,
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        CallError::NotFound(Some(s("Proxy service could not be found")))
    );

    // Loggers.
    let v = json_of(
        &t,
        Call::SetLoggerLevel {
            name: s("org-apache-synapse"),
            level: s("DEBUG"),
        },
    );
    assert_eq!(
        v["message"],
        "Successfully added logger for ('org-apache-synapse') with level DEBUG"
    );
    let v = json_of(
        &t,
        Call::Logger {
            name: s("org-apache-synapse"),
        },
    );
    assert_eq!(v["level"], "DEBUG");
    json_of(
        &t,
        Call::AddLogger {
            name: s("acme"),
            level: s("INFO"),
            class: s("com.acme"),
        },
    );
    let v = json_of(&t, Call::Loggers);
    assert!(
        v["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["loggerName"] == "acme" && l["componentName"] == "com.acme"),
        "{v}"
    );
    let v = json_of(&t, Call::DeleteLogger { name: s("acme") });
    assert_eq!(v["message"], "Successfully deleted logger for ('acme')");
    let e = call(
        &t,
        &Call::DeleteLogger {
            name: s("rootLogger"),
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        CallError::Refused {
            status: 403,
            message: s("Root logger cannot be deleted")
        }
    );
    // A name full of query syntax reaches MI as one value.
    let hostile = "a b&c=d#e";
    let e = call(&t, &Call::Logger { name: s(hostile) }, now()).unwrap_err();
    assert_eq!(
        e,
        CallError::Refused {
            status: 400,
            message: format!("Logger name ('{hostile}') not found")
        }
    );

    // Users.
    let v = json_of(
        &t,
        Call::AddUser {
            id: s("ops"),
            password: Password::new("ops-password-1"),
            admin: false,
        },
    );
    assert_eq!(v, json!({"userId": "ops", "status": "Added"}));
    let users = list_users(&t, now()).unwrap();
    assert_eq!(
        users,
        [
            MiUser {
                user_id: s("admin"),
                is_admin: true,
                roles: vec![s("admin"), s("Internal/everyone")],
            },
            MiUser {
                user_id: s("ops"),
                is_admin: false,
                roles: vec![s("Internal/everyone")],
            },
        ]
    );
    let v = json_of(
        &t,
        Call::DeleteUser {
            id: s("ops"),
            domain: None,
        },
    );
    assert_eq!(v, json!({"userId": "ops", "status": "Deleted"}));
    // Pin(None) works too: list_users pins what its first call saw.
    assert_eq!(list_users(&first, now()).unwrap().len(), 1);
    let e = call(
        &t,
        &Call::DeleteUser {
            id: s("admin"),
            domain: None,
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        CallError::Refused {
            status: 500,
            message: s("Please try again. Only super admin user can delete admins")
        }
    );

    // Log files.
    let v = json_of(&t, Call::LogFiles { search: None });
    assert_eq!(v["count"], 3, "{v}");
    let v = json_of(
        &t,
        Call::LogFiles {
            search: Some(s("error")),
        },
    );
    assert_eq!(v["list"][0]["FileName"], "wso2error.log", "{v}");
    let (text, _) = call(
        &t,
        &Call::LogFile {
            file: s("wso2error.log"),
        },
        now(),
    )
    .unwrap();
    assert_eq!(
        text,
        Answer::Text(s(
            "[2026-05-01 10:00:12,000] ERROR {HospitalEP} - Connection refused\n"
        ))
    );
    let e = call(
        &t,
        &Call::LogFile {
            file: s("nope.log"),
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "not_found", "{e}");

    // Registry.
    let v = json_of(
        &t,
        Call::Registry {
            path: s("registry/config"),
        },
    );
    assert_eq!(
        v,
        json!({"count": 1, "list": [{"name": "app.properties", "mediaType": "text/plain", "properties": []}]})
    );
    let (content, _) = call(
        &t,
        &Call::RegistryContent {
            path: s("registry/config/app.properties"),
        },
        now(),
    )
    .unwrap();
    assert_eq!(content, Answer::Bytes(b"timeout=30\nretries=3\n".to_vec()));
    let v = json_of(
        &t,
        Call::RegistryMetadata {
            path: s("registry/config/app.properties"),
        },
    );
    assert_eq!(
        v,
        json!({"name": "app.properties", "mediaType": "text/plain"})
    );
    let v = json_of(
        &t,
        Call::RegistryProperties {
            path: s("registry/governance/endpoints/backend.xml"),
        },
    );
    assert_eq!(
        v,
        json!({"count": 2, "list": [{"name": "env", "value": "dev"}, {"name": "owner", "value": "team-a"}]})
    );
    let e = call(
        &t,
        &Call::RegistryContent {
            path: s("registry/missing.txt"),
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        CallError::Refused {
            status: 400,
            message: s("Can not find the registry: registry/missing.txt")
        }
    );

    // Carbon application faults.
    let v = json_of(
        &t,
        Call::CarbonAppFault {
            name: s("LegacyCompositeApp"),
        },
    );
    assert_eq!(v["name"], "LegacyCompositeApp");
    assert!(
        v["faultStackTrace"]
            .as_str()
            .unwrap()
            .contains("NullPointerException"),
        "{v}"
    );
    let e = call(
        &t,
        &Call::CarbonAppFault {
            name: s("HealthcareCompositeExporter"),
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        CallError::NotFound(Some(s(
            "Faulty carbon application not found for the given name."
        )))
    );

    // The wrong key material is a 401; a different certificate is refused
    // before anything is sent.
    let mut wrong_key = t.clone();
    wrong_key.key_material = "a-different-key-material-of-32-bytes-at-least".into();
    let e = call(&wrong_key, &Call::Loggers, now()).unwrap_err();
    assert_eq!(e, CallError::Unauthorized);
    let calls_before = mi.calls().len();
    let other_pin = target(&secret, mi.port(), PeerTrust::Pin(Some([7; 32])));
    let e = call(&other_pin, &Call::Loggers, now()).unwrap_err();
    assert!(
        matches!(
            e,
            CallError::Outbound(OutboundError::CertificateChanged { expected, got, .. })
                if expected == [7; 32] && got == pin
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), "certificate_changed");
    assert_eq!(mi.calls().len(), calls_before, "nothing reached MI");

    // What MI saw.
    let calls = mi.calls();
    let none = json!({});
    assert_eq!(
        recorded(&calls, "POST", "/management/proxy-services", none.clone()),
        json!({"name": "StockQuoteProxy", "status": "inactive"})
    );
    assert_eq!(
        recorded(&calls, "POST", "/management/apis", none.clone()),
        json!({"name": "HealthcareAPI", "trace": "enable"})
    );
    assert_eq!(
        recorded(&calls, "POST", "/management/templates", none.clone()),
        json!({"name": "LogAndRespondTemplate", "statistics": "enable", "type": "sequence"})
    );
    assert_eq!(
        recorded(&calls, "POST", "/management/tasks", none.clone()),
        json!({"name": "InventorySyncTask", "status": "trigger"})
    );
    let patches: Vec<&Value> = calls
        .iter()
        .filter(|c| c["method"] == "PATCH" && c["path"] == "/management/logging")
        .map(|c| &c["body"])
        .collect();
    assert_eq!(
        patches,
        [
            &json!({"loggerName": "org-apache-synapse", "loggingLevel": "DEBUG"}),
            &json!({"loggerName": "acme", "loggingLevel": "INFO", "loggerClass": "com.acme"}),
        ]
    );
    assert_eq!(
        recorded(
            &calls,
            "DELETE",
            "/management/logging",
            json!({"loggerName": "acme"})
        ),
        Value::Null
    );
    recorded(
        &calls,
        "GET",
        "/management/logging",
        json!({"loggerName": hostile}),
    );
    assert_eq!(
        recorded(&calls, "POST", "/management/users", none.clone()),
        json!({"userId": "ops", "password": "ops-password-1", "isAdmin": false})
    );
    recorded(&calls, "GET", "/management/users/ops", none.clone());
    recorded(&calls, "DELETE", "/management/users/ops", none.clone());
    recorded(
        &calls,
        "GET",
        "/management/logs",
        json!({"file": "wso2error.log"}),
    );
    recorded(
        &calls,
        "GET",
        "/management/logs",
        json!({"searchKey": "error"}),
    );
    recorded(
        &calls,
        "GET",
        "/management/registry-resources",
        json!({"path": "registry/config"}),
    );
    for sub in ["content", "metadata"] {
        recorded(
            &calls,
            "GET",
            &format!("/management/registry-resources/{sub}"),
            json!({"path": "registry/config/app.properties"}),
        );
    }
    recorded(
        &calls,
        "GET",
        "/management/applications/LegacyCompositeApp/fault",
        none.clone(),
    );
    // Every call but the root (no token needed) and the wrong key's was
    // taken as ICP's JWT.
    let other: Vec<&Value> = calls
        .iter()
        .filter(|c| c["auth"]["scheme"] != "icp-jwt" || c["auth"]["user"] != "icpd")
        .collect();
    assert_eq!(other.len(), 2, "{other:#?}");
    assert_eq!(other[0]["path"], "/management");
    assert_eq!(other[0]["auth"]["outcome"], "not-required");
    assert_eq!(other[1]["auth"]["outcome"], "rejected");
    assert_eq!(other[1]["status"], 401);
}

#[test]
fn a_file_based_user_store_is_a_distinct_refusal() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    let mi = MiStandIn::start(
        &server,
        &secret,
        "mi-node-1",
        &["--file-user-store", "--interval", "60"],
    );
    let t = target(&secret, mi.port(), PeerTrust::Pin(None));
    let e = list_users(&t, now()).unwrap_err();
    assert_eq!(e, CallError::UserStoreUnsupported);
    assert_eq!(e.code(), "user_store_unsupported");
    assert!(e.to_string().contains("file-based user store"), "{e}");
    let e = call(
        &t,
        &Call::AddUser {
            id: s("ops"),
            password: Password::new("ops-password-1"),
            admin: false,
        },
        now(),
    )
    .unwrap_err();
    assert_eq!(e, CallError::UserStoreUnsupported);
    // Everything else still works on that runtime.
    let (v, _) = call(&t, &Call::Loggers, now()).unwrap();
    assert_eq!(v.json().unwrap()["count"], 3);
    let calls = mi.calls();
    assert_eq!(calls[0]["path"], "/management/users");
    assert_eq!(calls[0]["status"], 403);
    assert_eq!(calls[0]["auth"]["scheme"], "icp-jwt");
}
