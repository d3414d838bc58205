//! Single sign-on against a real OpenID provider (`oidc-provider`, started
//! by `tests/idp.rs`) and a real OpenLDAP (`slapd`, `tests/slapd.rs`):
//! the authorization-code flow with PKCE through icpd's REST and ICP
//! endpoints, roles from group mappings, group removal, key rotation,
//! a provider that is down or hangs, password sign-in switched off, and
//! LDAP sign-in through the same login form.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use icpd::http::client::ClientResponse;
use serde_json::{json, Value};

use crate::harness::{assert_healthz_answers_at_once, ServeOptions, TestServer, TEST_PASSWORD};
use crate::idp::Idp;

const REDIRECT: &str = "https://127.0.0.1:9/login/callback";
const AFTER_LOGOUT: &str = "https://127.0.0.1:9/login";

/// icpd's `[sso]` for `idp`, with `extra` lines (mappings) after it.
fn sso_toml(idp: &Idp, secret_file: &std::path::Path, extra: &str) -> String {
    format!(
        r#"[sso]
issuer = "{}"
client_id = "icpd"
client_secret_file = "{}"
redirect_uri = "{REDIRECT}"
post_logout_redirect_uri = "{AFTER_LOGOUT}"
scopes = ["openid", "email", "profile", "groups"]
groups_claim = "groups"
label = "Test IdP"
ca_file = "{}"
timeout = 5
{extra}
"#,
        idp.issuer(),
        secret_file.display(),
        idp.ca_pem_path().display()
    )
}

fn start_idp() -> Option<Idp> {
    Idp::start(&Idp::default_state(REDIRECT, AFTER_LOGOUT))
}

/// A server whose `[sso]` points at `idp`; the client secret sits in a file.
fn sso_server(idp: &Idp, extra: &str) -> TestServer {
    let dir = crate::harness::TestDir::new("sso-secret");
    let secret = dir.path.join("client-secret");
    std::fs::write(&secret, "icpd-client-secret\n").unwrap();
    let toml = sso_toml(idp, &secret, extra);
    let s = TestServer::start_with(ServeOptions {
        icp_toml: Some(&toml),
        env: &[("ICP_LOG", "trace")],
        ..ServeOptions::default()
    });
    // The secret file must outlive the start only.
    drop(dir);
    s
}

/// `POST /api/v1/auth/oidc/start`: the authorization URL, its state, and
/// the cookie that binds the state to this "browser".
fn start_sign_in(s: &TestServer) -> (String, String, String) {
    let r = s
        .management_client()
        .request("POST", "/api/v1/auth/oidc/start", &[], b"")
        .unwrap();
    assert_eq!(r.status, 200, "oidc/start: {}", r.json());
    let cookie = r
        .header("set-cookie")
        .expect("a state cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let v = r.json();
    (
        v["authorizationUrl"].as_str().unwrap().to_string(),
        v["state"].as_str().unwrap().to_string(),
        cookie,
    )
}

fn callback(s: &TestServer, code: &str, state: &str, cookie: &str) -> ClientResponse {
    let body = json!({"code": code, "state": state}).to_string();
    let mut headers = vec![("Content-Type", "application/json")];
    if !cookie.is_empty() {
        headers.push(("Cookie", cookie));
    }
    s.management_client()
        .request(
            "POST",
            "/api/v1/auth/oidc/callback",
            &headers,
            body.as_bytes(),
        )
        .unwrap()
}

/// The whole console flow for `user`: start, sign in at the provider,
/// callback. Also returns the code (to try it twice).
fn sso_login(s: &TestServer, idp: &Idp, user: &str, password: &str) -> (ClientResponse, String) {
    let (url, state, cookie) = start_sign_in(s);
    assert!(url.starts_with(&format!("{}/", idp.issuer())), "{url}");
    for p in ["code_challenge_method=S256", "nonce=", "response_type=code"] {
        assert!(url.contains(p), "{url} lacks {p}");
    }
    let (code, back) = idp
        .sign_in(&url, user, password)
        .expect("signed in at the IdP");
    assert_eq!(back, state, "the provider returns the state it was given");
    (callback(s, &code, &state, &cookie), code)
}

/// The value of one sample of `/metrics`.
fn metric(s: &TestServer, sample: &str) -> u64 {
    let r = s
        .management_client()
        .request("GET", "/metrics", &[], b"")
        .unwrap();
    let text = String::from_utf8(r.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics"))
}

fn get(s: &TestServer, token: &str, path: &str) -> ClientResponse {
    let auth = format!("Bearer {token}");
    s.management_client()
        .request("GET", path, &[("Authorization", &auth)], b"")
        .unwrap()
}

fn post(s: &TestServer, token: &str, path: &str, body: &Value) -> ClientResponse {
    s.management_client()
        .post_json(path, Some(token), body)
        .unwrap()
}

#[test]
fn oidc_sign_in_gives_mapped_roles_and_group_removal_ends_them() {
    let Some(idp) = start_idp() else { return };
    let s = sso_server(
        &idp,
        r#"
[[sso.group_mappings]]
group = "icp-devs"
role = "Viewer"
source = "oidc"
"#,
    );
    let mut admin = s.admin();

    // The login page learns about the provider.
    let p = s
        .management_client()
        .request("GET", "/api/v1/auth/providers", &[], b"")
        .unwrap()
        .json();
    assert_eq!(p["oidc"]["label"], "Test IdP", "{p}");
    assert_eq!(p["passwordLogin"], true);

    // alice: icp-devs gives Viewer at organization scope.
    let (r, code) = sso_login(&s, &idp, "alice", "alice-password");
    assert_eq!(r.status, 200, "{}", r.json());
    let alice = r.json();
    assert_eq!(alice["user"]["username"], "alice@example.org");
    assert_eq!(alice["user"]["source"], "oidc");
    assert_eq!(alice["user"]["displayName"], "Alice Liddell");
    assert!(
        alice["endSessionUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with(idp.issuer())),
        "{alice}"
    );
    assert!(r.header("set-cookie").unwrap().contains("icp_session="));
    let alice_token = alice["token"].as_str().unwrap().to_string();
    assert_eq!(get(&s, &alice_token, "/api/v1/projects").status, 200);
    let refused = post(
        &s,
        &alice_token,
        "/api/v1/projects",
        &json!({"name": "Shop"}),
    );
    assert_eq!(
        refused.status,
        403,
        "a Viewer cannot create projects: {}",
        refused.json()
    );

    // A code and state are good once.
    let (_, state2, cookie2) = start_sign_in(&s);
    let again = callback(&s, &code, &state2, &cookie2);
    assert!(matches!(again.status, 401), "{}", again.json());
    // A callback without the browser's state cookie is refused.
    let (url, state, _) = start_sign_in(&s);
    let (code, _) = idp.sign_in(&url, "alice", "alice-password").unwrap();
    let unbound = callback(&s, &code, &state, "");
    assert_eq!(unbound.status, 401, "{}", unbound.json());

    // The user list shows where users come from.
    let users = admin.get("/api/v1/users").json();
    let row = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice@example.org")
        .cloned()
        .expect("alice is listed");
    assert_eq!(row["source"], "oidc", "{row}");
    let roles = row["roles"].to_string();
    assert!(roles.contains("directory:icp-devs"), "{row}");
    // A single-sign-on user has no password in icpd, and gets none.
    let reset = admin.post("/api/v1/users/alice@example.org/reset-password", &json!({}));
    assert_eq!(reset.status, 409, "{}", reset.json());
    assert_eq!(s.login("alice@example.org", "alice-password").status, 401);

    // An operator maps icp-admins to Admin through the API: alice gets it
    // at her next sign-in (her groups are already recorded, so at once).
    let m = admin.post(
        "/api/v1/sso/group-mappings",
        &json!({"group": "icp-admins", "role": "Admin", "source": "oidc"}),
    );
    assert_eq!(m.status, 201, "{}", m.json());
    let created = post(
        &s,
        &alice_token,
        "/api/v1/projects",
        &json!({"name": "Shop"}),
    );
    assert_eq!(created.status, 201, "{}", created.json());

    // bob: a Viewer with an API token; then removed from icp-devs.
    let (r, _) = sso_login(&s, &idp, "bob", "bob-password");
    assert_eq!(r.status, 200, "{}", r.json());
    let bob_session = r.json()["token"].as_str().unwrap().to_string();
    let t = post(
        &s,
        &bob_session,
        "/api/v1/auth/tokens",
        &json!({"name": "ci"}),
    );
    assert_eq!(t.status, 201, "{}", t.json());
    let bob_api_token = t.json()["token"].as_str().unwrap().to_string();
    let visible = |token: &str| {
        let r = get(&s, token, "/api/v1/projects");
        assert_eq!(r.status, 200, "{}", r.json());
        r.json()["items"].as_array().unwrap().len()
    };
    assert_eq!(visible(&bob_api_token), 1, "a Viewer sees the project");
    let mut state = Idp::default_state(REDIRECT, AFTER_LOGOUT);
    state["users"]["bob"]["groups"] = json!([]);
    idp.set_state(&state);
    let (r, _) = sso_login(&s, &idp, "bob", "bob-password");
    assert_eq!(r.status, 403, "{}", r.json());
    assert_eq!(r.json()["error"]["code"], "no_roles");
    assert_eq!(r.json()["username"], "bob@example.org");
    // His earlier session and API token lost the role with the group.
    for token in [&bob_session, &bob_api_token] {
        assert_eq!(visible(token), 0, "bob sees nothing any more");
        let me = get(&s, token, "/api/v1/auth/me").json();
        assert_eq!(me["permissions"], json!([]), "{me}");
    }

    // The provider rotates its signing key: icpd reads the JWKS again.
    let kid = idp.rotate_keys();
    assert!(!kid.is_empty());
    let (r, _) = sso_login(&s, &idp, "alice", "alice-password");
    assert_eq!(r.status, 200, "after key rotation: {}", r.json());

    // Logout of an SSO session points at the provider's end-session endpoint.
    let out = post(
        &s,
        r.json()["token"].as_str().unwrap(),
        "/api/v1/auth/logout",
        &json!({}),
    );
    assert_eq!(out.status, 200, "{}", out.json());
    assert!(out.json()["endSessionUrl"]
        .as_str()
        .is_some_and(|u| u.contains("post_logout_redirect_uri=")));

    // Every attempt is audited with its source.
    let audit = admin
        .get("/api/v1/audit?action=POST%20%2Fapi%2Fv1%2Fauth%2Foidc%2Fcallback&limit=100")
        .json();
    let logins = audit["items"].as_array().unwrap();
    assert!(
        logins
            .iter()
            .any(|e| e["actor"] == "alice@example.org" && e["outcome"] == "ok"),
        "{audit}"
    );
    assert!(
        logins
            .iter()
            .any(|e| e["actor"] == "bob@example.org" && e["outcome"] == "refused 403"),
        "{audit}"
    );
    assert!(logins.iter().all(|e| e["client"] == "127.0.0.1"), "{audit}");

    // /metrics counts sign-ins by method and outcome.
    assert!(metric(&s, "icpd_sign_ins_total{method=\"oidc\",outcome=\"ok\"}") >= 3);
    assert!(
        metric(
            &s,
            "icpd_sign_ins_total{method=\"oidc\",outcome=\"refused\"}"
        ) >= 3
    );
    assert_eq!(metric(&s, "icpd_sign_in_pool_queued_calls"), 0);

    // Nothing secret reached the log, at trace level.
    let log = s.log_text();
    for secret in ["icpd-client-secret", &alice_token, &bob_api_token, &code] {
        assert!(!log.contains(secret), "the log holds a secret");
    }
    assert!(!log.contains("eyJ"), "the log holds a JWT");
}

#[test]
fn icp_clients_sign_in_through_the_oidc_endpoints() {
    let Some(idp) = start_idp() else { return };
    let s = sso_server(
        &idp,
        r#"
[[sso.group_mappings]]
group = "icp-admins"
role = "Super Admin"
"#,
    );
    let mut c = s.management_client();
    let r = c
        .request(
            "GET",
            "/auth/oidc/authorize-url?state=icp-console-state-1",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    let url = r.json()["authorizationUrl"].as_str().unwrap().to_string();
    assert!(url.contains("state=icp-console-state-1"), "{url}");
    let (code, state) = idp.sign_in(&url, "alice", "alice-password").unwrap();
    let r = c
        .post_json(
            "/auth/login/oidc",
            None,
            &json!({"code": code, "state": state}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    let v = r.json();
    assert_eq!(v["isOidcUser"], true);
    assert_eq!(v["username"], "alice@example.org");
    assert!(v["idToken"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    assert!(v["permissions"].as_array().is_some_and(|p| !p.is_empty()));
    // The console token works on /graphql.
    let token = v["token"].as_str().unwrap();
    let q = c
        .post_json(
            "/graphql",
            Some(token),
            &json!({"query": "{ systemInfo { version } }"}),
        )
        .unwrap();
    assert_eq!(q.status, 200, "{}", q.json());

    // bob's only group maps to nothing: 403 with his name, ICP's shape.
    let r = c
        .request(
            "GET",
            "/auth/oidc/authorize-url?state=icp-console-state-2",
            &[],
            b"",
        )
        .unwrap();
    let url = r.json()["authorizationUrl"].as_str().unwrap().to_string();
    let (code, state) = idp.sign_in(&url, "bob", "bob-password").unwrap();
    let r = c
        .post_json(
            "/auth/login/oidc",
            None,
            &json!({"code": code, "state": state}),
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.json());
    assert_eq!(r.json()["username"], "bob@example.org");
    assert!(r.json()["message"].is_string());
    // A code without the state it was issued for is refused.
    let r = c
        .post_json("/auth/login/oidc", None, &json!({"code": "x"}))
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.json());
}

/// A provider that accepts connections and never answers.
fn black_hole() -> (String, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming() {
            if flag.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(mut c) = c {
                let mut b = [0u8; 1];
                let _ = c.set_nonblocking(true);
                let _ = c.read(&mut b);
                let _ = c.write(b"");
                held.push(c);
            }
        }
    });
    (format!("https://{addr}"), stop)
}

#[test]
fn a_provider_that_is_down_or_hangs_gives_a_clear_error_and_holds_no_worker() {
    let (issuer, _stop) = black_hole();
    let dir = crate::harness::TestDir::new("sso-down");
    let ca = dir.path.join("ca.pem");
    // Any valid bundle will do: the provider never gets as far as TLS.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(&ca, cert.pem()).unwrap();
    let toml = format!(
        r#"[http]
workers = 2

[sso]
issuer = "{issuer}"
client_id = "icpd"
redirect_uri = "{REDIRECT}"
ca_file = "{}"
timeout = 3
"#,
        ca.display()
    );
    let s = TestServer::start_with(ServeOptions {
        icp_toml: Some(&toml),
        ..ServeOptions::default()
    });
    // Six sign-ins wait on the provider, three times the workers.
    let url = s.management_url.clone();
    let cert = s.cert();
    let waiting: Vec<_> = (0..6)
        .map(|_| {
            let (url, cert) = (url.clone(), cert.clone());
            std::thread::spawn(move || {
                let mut c = icpd::http::client::Client::new(
                    &url,
                    icpd::http::client::ClientTls::Verify(cert),
                )
                .unwrap();
                c.set_timeout(Duration::from_secs(30));
                let started = Instant::now();
                let r = c
                    .request("POST", "/api/v1/auth/oidc/start", &[], b"")
                    .unwrap();
                (r.status, r.json(), started.elapsed())
            })
        })
        .collect();
    // Meanwhile the server answers at once: no worker is waiting.
    std::thread::sleep(Duration::from_millis(300));
    let mut c = s.management_client();
    assert_healthz_answers_at_once(&mut c);
    for w in waiting {
        let (status, body, took) = w.join().unwrap();
        assert_eq!(status, 503, "{body}");
        let m = body["error"]["message"].as_str().unwrap();
        assert!(m.contains("identity provider could not be reached"), "{m}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
    // A port with nothing behind it fails fast, with the same message.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let toml = toml.replace(&issuer, &format!("https://127.0.0.1:{closed}"));
    let s2 = TestServer::start_with(ServeOptions {
        icp_toml: Some(&toml),
        ..ServeOptions::default()
    });
    let r = s2
        .management_client()
        .request("GET", "/auth/oidc/authorize-url?state=abcdefgh", &[], b"")
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.json());
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("could not be reached"));
}

#[test]
fn password_sign_in_can_be_switched_off_but_for_the_break_glass_account() {
    let s = TestServer::start_with(ServeOptions {
        icp_toml: Some("[sso]\npassword_login = false\n"),
        ..ServeOptions::default()
    });
    s.create_user("root", Some("Super Admin"));
    let r = s.login("root", TEST_PASSWORD);
    assert_eq!(r.status, 403, "{}", r.json());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("switched off"));
    let r = s.icp_login("root", TEST_PASSWORD);
    assert_eq!(r.status, 403, "{}", r.json());
    // The first admin is the break-glass account.
    let initial = std::fs::read_to_string(s.data_dir.join("initial-admin-password")).unwrap();
    let r = s.login("admin", initial.trim());
    assert_eq!(r.status, 200, "{}", r.json());
    let p = s
        .management_client()
        .request("GET", "/api/v1/auth/providers", &[], b"")
        .unwrap()
        .json();
    assert_eq!(p["passwordLogin"], false);
    assert_eq!(p["breakGlassUser"], "admin");
}

#[test]
fn group_mappings_are_managed_through_the_api_and_the_config_file() {
    let s = TestServer::start_with(ServeOptions {
        icp_toml: Some(
            r#"
[[sso.group_mappings]]
group = "platform"
role = "Admin"

[[sso.group_mappings]]
group = "auditors"
role = "No Such Role"
"#,
        ),
        ..ServeOptions::default()
    });
    let mut admin = s.admin();
    let list = admin.get("/api/v1/sso/group-mappings").json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the unknown role is skipped: {list}");
    assert_eq!(items[0]["origin"], "config");
    assert_eq!(items[0]["scope"]["type"], "organization");
    let config_id = items[0]["id"].as_str().unwrap().to_string();
    assert!(s.log_text().contains("No Such Role"));

    let r = admin.post(
        "/api/v1/sso/group-mappings",
        &json!({"group": "prod-ops", "role": "Developer", "source": "ldap",
                "scope": {"type": "environment", "environment": "prod"}}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["scope"]["environment"], "prod");
    assert_eq!(r.json()["source"], "ldap");
    let id = r.json()["id"].as_str().unwrap().to_string();
    for (body, status) in [
        (
            json!({"group": "x", "role": "Admin", "source": "saml"}),
            400,
        ),
        (json!({"group": "", "role": "Admin"}), 400),
        (json!({"group": "x", "role": "Nope"}), 404),
        (
            json!({"group": "x", "role": "Admin", "scope": {"type": "project", "project": "nope"}}),
            404,
        ),
    ] {
        assert_eq!(
            admin.post("/api/v1/sso/group-mappings", &body).status,
            status,
            "{body}"
        );
    }
    let r = admin.delete(&format!("/api/v1/sso/group-mappings/{config_id}"));
    assert_eq!(r.status, 409, "{}", r.json());
    assert_eq!(
        admin
            .delete(&format!("/api/v1/sso/group-mappings/{id}"))
            .status,
        204
    );
    assert_eq!(
        admin
            .delete(&format!("/api/v1/sso/group-mappings/{id}"))
            .status,
        404
    );
    let mut viewer = s.api_as("vera", Some("Viewer"));
    assert_eq!(viewer.get("/api/v1/sso/group-mappings").status, 403);
}

#[test]
fn sso_settings_are_checked_at_start() {
    for (toml, says) in [
        ("[sso]\nissuer = \"https://idp.example.com\"\n", "client_id"),
        (
            "[sso]\nissuer = \"http://idp.example.com\"\nclient_id = \"a\"\nredirect_uri = \"https://x/login/callback\"\n",
            "https",
        ),
        (
            "[sso]\nissuer = \"https://idp.example.com\"\nclient_id = \"a\"\nredirect_uri = \"https://x/cb\"\nclient_secret = \"a\"\nclient_secret_env = \"B\"\n",
            "only one of",
        ),
        ("[[sso.group_mappings]]\ngroup = \"g\"\nrole = \"Admin\"\nscope = \"team x\"\n", "scope"),
        ("[sso]\nfoo = 1\n", "foo"),
    ] {
        let dir = crate::harness::TestDir::new("sso-bad");
        std::fs::write(dir.path.join("icp.toml"), toml).unwrap();
        let out = crate::harness::icpd_at(&dir.path.join("data"))
            .args(["serve", "--runtime-listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0"])
            .current_dir(&dir.path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{toml}: {err}");
    }
}

#[test]
fn ldap_users_sign_in_with_the_login_form_and_lose_roles_with_their_group() {
    if !crate::slapd::available("ldap_users_sign_in_with_the_login_form") {
        return;
    }
    use crate::slapd::{password, Slapd, PEOPLE, READER_DN, READER_PASSWORD};
    let ldap = Slapd::start("sso");
    let dir = crate::harness::TestDir::new("sso-ldap");
    let bind_file = dir.path.join("bind-password");
    std::fs::write(&bind_file, format!("{READER_PASSWORD}\n")).unwrap();
    let toml = format!(
        r#"[ldap]
url = "ldaps://localhost:{}"
ca_file = "{}"
bind_dn = "{READER_DN}"
bind_password_file = "{}"
user_base = "{PEOPLE}"

[[sso.group_mappings]]
group = "icp-devs"
role = "Viewer"
source = "ldap"

[[sso.group_mappings]]
group = "icp-admins"
role = "Admin"
scope = "organization"
"#,
        ldap.ldaps_port,
        ldap.ca_file.display(),
        bind_file.display()
    );
    let s = TestServer::start_with(ServeOptions {
        icp_toml: Some(&toml),
        env: &[("ICP_LOG", "trace")],
        ..ServeOptions::default()
    });
    let mut admin = s.admin();
    // A local account still signs in locally.
    assert_eq!(s.login("root", TEST_PASSWORD).status, 200);

    let r = s.login("alice", password("alice"));
    assert_eq!(r.status, 200, "{}", r.json());
    let v = r.json();
    assert_eq!(v["user"]["source"], "ldap");
    assert_eq!(v["user"]["displayName"], "Alice Liddell");
    let alice_token = v["token"].as_str().unwrap().to_string();
    let created = post(
        &s,
        &alice_token,
        "/api/v1/projects",
        &json!({"name": "Shop"}),
    );
    assert_eq!(
        created.status,
        201,
        "an Admin creates projects: {}",
        created.json()
    );

    assert_eq!(s.login("alice", "wrong password 1").status, 401);
    assert_eq!(s.login("nobody", "whatever pass 1").status, 401);
    // carol is in no group: the directory vouches, icpd gives nothing.
    let r = s.login("carol", password("carol"));
    assert_eq!(r.status, 403, "{}", r.json());
    assert_eq!(r.json()["error"]["code"], "no_roles");

    // ICP's /auth/login takes directory users too.
    let r = s
        .management_client()
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "bob", "password": password("bob")}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["isOidcUser"], false);
    let r = s.login("bob", password("bob"));
    let bob_token = r.json()["token"].as_str().unwrap().to_string();
    let me = get(&s, &bob_token, "/api/v1/auth/me").json();
    assert_ne!(me["permissions"], json!([]), "{me}");

    // bob leaves icp-devs: refused at his next sign-in, and his session
    // has no roles from then on.
    ldap.remove_member("icp-devs", "bob");
    let r = s.login("bob", password("bob"));
    assert_eq!(r.status, 403, "{}", r.json());
    let me = get(&s, &bob_token, "/api/v1/auth/me").json();
    assert_eq!(me["permissions"], json!([]), "{me}");

    let users = admin.get("/api/v1/users").json();
    let sources: Vec<(String, String)> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["username"].as_str().unwrap().to_string(),
                u["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, source) in [
        ("alice", "ldap"),
        ("bob", "ldap"),
        ("carol", "ldap"),
        ("root", "local"),
    ] {
        assert!(
            sources.contains(&(name.to_string(), source.to_string())),
            "{sources:?}"
        );
    }
    let audit = admin
        .get("/api/v1/audit?action=POST%20%2Fapi%2Fv1%2Fauth%2Flogin&limit=100")
        .json();
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "alice"
                && e["target"] == "login (ldap)"
                && e["outcome"] == "ok"),
        "{audit}"
    );

    assert!(metric(&s, "icpd_sign_ins_total{method=\"ldap\",outcome=\"ok\"}") >= 3);
    assert!(
        metric(
            &s,
            "icpd_sign_ins_total{method=\"ldap\",outcome=\"refused\"}"
        ) >= 4
    );
    assert!(
        metric(
            &s,
            "icpd_sign_ins_total{method=\"password\",outcome=\"ok\"}"
        ) >= 2
    );

    // No password, bind password or token in the log (trace level) or
    // in the database file.
    let log = s.log_text();
    let mut secrets = vec![
        READER_PASSWORD.to_string(),
        alice_token.clone(),
        bob_token.clone(),
    ];
    secrets.extend(crate::slapd::USERS.iter().map(|u| u.2.to_string()));
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the log holds a secret");
    }
    if crate::harness::on_sqlite("ldap sign-in hygiene") {
        let db = std::fs::read(s.data_dir.join("icp.db")).unwrap();
        let wal = std::fs::read(s.data_dir.join("icp.db-wal")).unwrap_or_default();
        for secret in &secrets {
            for file in [&db, &wal] {
                assert!(
                    !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "the database holds a secret"
                );
            }
        }
    }
}
