//! LDAP sign-in (`icpd::ldap`) against a real OpenLDAP (`slapd`): LDAPS,
//! StartTLS and plain connections, groups from memberOf and from a group
//! search, and every way a sign-in is refused. The tests that only read
//! share one server; the one that changes a group has its own.

use std::time::{Duration, Instant};

use icpd::ldap::{authenticate, DirectoryUser, LdapError, LdapSettings};

use crate::slapd::{self, password, Slapd, GROUPS};

fn sign_in(s: &LdapSettings, user: &str, pw: &str) -> Result<DirectoryUser, LdapError> {
    authenticate(&s.resolve().unwrap(), user, pw)
}

fn groups(s: &LdapSettings, user: &str) -> Vec<String> {
    sign_in(s, user, password(user))
        .unwrap_or_else(|e| panic!("{user}: {e}"))
        .groups
}

fn assert_invalid(r: Result<DirectoryUser, LdapError>, what: &str) {
    assert!(
        matches!(r, Err(LdapError::InvalidCredentials)),
        "{what}: {r:?}"
    );
}

fn check_seeded_users(s: &LdapSettings) {
    let alice = sign_in(s, "alice", password("alice")).unwrap();
    assert_eq!(
        alice,
        DirectoryUser {
            dn: "uid=alice,ou=people,dc=example,dc=org".into(),
            username: "alice".into(),
            display_name: "Alice Liddell".into(),
            email: Some("alice@example.org".into()),
            groups: vec!["icp-admins".into(), "icp-devs".into()],
        }
    );
    assert_eq!(groups(s, "bob"), ["icp-devs"]);
    assert!(groups(s, "carol").is_empty());
}

#[test]
fn ldap_sign_in_over_ldaps() {
    if !slapd::available("ldap_sign_in_over_ldaps") {
        return;
    }
    check_seeded_users(&slapd::shared().ldaps_settings());
}

#[test]
fn ldap_sign_in_over_start_tls() {
    if !slapd::available("ldap_sign_in_over_start_tls") {
        return;
    }
    check_seeded_users(&slapd::shared().start_tls_settings());
}

#[test]
fn ldap_group_search_gives_the_same_groups() {
    if !slapd::available("ldap_group_search_gives_the_same_groups") {
        return;
    }
    let mut s = slapd::shared().ldaps_settings();
    s.group_base = Some(GROUPS.into());
    check_seeded_users(&s);
}

#[test]
fn ldap_wrong_password_unknown_user_and_empty_password_are_invalid_credentials() {
    if !slapd::available("ldap_wrong_password_unknown_user_and_empty_password") {
        return;
    }
    let s = slapd::shared().ldaps_settings();
    assert_invalid(sign_in(&s, "alice", "bob password 1"), "wrong password");
    assert_invalid(sign_in(&s, "alice", "alice password"), "wrong password");
    assert_invalid(sign_in(&s, "mallory", "anything"), "unknown user");
    assert_invalid(sign_in(&s, "alice", ""), "empty password");
    // A user name that matches several entries is refused too.
    let mut any = s.clone();
    any.user_filter = "(|(uid={username})(objectClass=inetOrgPerson))".into();
    assert_invalid(sign_in(&any, "alice", password("alice")), "several entries");
}

#[test]
fn ldap_filter_metacharacters_in_a_user_name_never_match() {
    if !slapd::available("ldap_filter_metacharacters_in_a_user_name_never_match") {
        return;
    }
    let s = slapd::shared().ldaps_settings();
    for name in [
        "*",
        "a*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice)",
        "(alice",
        "alice\\",
        "alice\0",
    ] {
        assert_invalid(sign_in(&s, name, password("alice")), name);
    }
}

#[test]
fn ldap_plain_is_refused_unless_allowed() {
    if !slapd::available("ldap_plain_is_refused_unless_allowed") {
        return;
    }
    let mut s = slapd::shared().plain_settings();
    let e = s.resolve().unwrap_err();
    assert!(
        e.contains("in clear") && e.contains("allow_plain") && e.contains("start_tls"),
        "{e}"
    );
    s.allow_plain = true;
    assert_eq!(groups(&s, "bob"), ["icp-devs"]);
}

#[test]
fn ldap_a_certificate_from_another_ca_is_unavailable() {
    if !slapd::available("ldap_a_certificate_from_another_ca_is_unavailable") {
        return;
    }
    let server = slapd::shared();
    for mut s in [server.ldaps_settings(), server.start_tls_settings()] {
        s.ca_file = Some(server.other_ca_file.clone());
        match sign_in(&s, "alice", password("alice")) {
            Err(LdapError::Unavailable(m)) => {
                assert!(
                    m.contains("certificate") && m.contains("ldap.ca_file"),
                    "{m}"
                );
                assert!(!m.contains(password("alice")), "{m}");
            }
            other => panic!("{}: {other:?}", s.url),
        }
    }
}

#[test]
fn ldap_a_closed_port_is_unavailable_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let s: LdapSettings = toml::from_str(&format!(
        "url = \"ldap://127.0.0.1:{port}\"\nallow_plain = true\nbind_dn = \"cn=x\"\n\
         bind_password = \"service password 1\"\nuser_base = \"dc=x\"\ntimeout_secs = 2\n"
    ))
    .unwrap();
    let started = Instant::now();
    match sign_in(&s, "alice", "alice password 1") {
        Err(LdapError::Unavailable(m)) => {
            assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
            assert!(!m.contains("password 1"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn ldap_a_wrong_service_password_is_misconfigured() {
    if !slapd::available("ldap_a_wrong_service_password_is_misconfigured") {
        return;
    }
    let mut s = slapd::shared().ldaps_settings();
    s.bind_password = Some("not the reader password".into());
    match sign_in(&s, "alice", password("alice")) {
        Err(LdapError::Misconfigured(m)) => {
            assert!(
                m.contains("ldap.bind_dn") && m.contains("invalidCredentials"),
                "{m}"
            );
            assert!(!m.contains("not the reader password"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ldap_a_missing_user_base_is_misconfigured() {
    if !slapd::available("ldap_a_missing_user_base_is_misconfigured") {
        return;
    }
    let mut s = slapd::shared().ldaps_settings();
    s.user_base = "ou=nobody,dc=example,dc=org".into();
    match sign_in(&s, "alice", password("alice")) {
        Err(LdapError::Misconfigured(m)) => {
            assert!(
                m.contains("ldap.user_base") && m.contains("noSuchObject"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ldap_removing_a_user_from_a_group_takes_effect_at_the_next_sign_in() {
    if !slapd::available("ldap_removing_a_user_from_a_group_takes_effect") {
        return;
    }
    let server = Slapd::start("remove-member");
    let s = server.ldaps_settings();
    let mut search = s.clone();
    search.group_base = Some(GROUPS.into());
    assert_eq!(groups(&s, "bob"), ["icp-devs"]);
    server.remove_member("icp-devs", "bob");
    assert!(groups(&s, "bob").is_empty());
    assert!(groups(&search, "bob").is_empty());
    assert_eq!(groups(&s, "alice"), ["icp-admins", "icp-devs"]);
}
