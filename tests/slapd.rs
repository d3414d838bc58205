//! A throwaway OpenLDAP server for the LDAP sign-in tests (`ldap`).
//!
//! [`Slapd::start`] writes a `slapd.conf` in a temporary directory (the
//! core, cosine and inetOrgPerson schemas from `/etc/ldap/schema`, the
//! `back_mdb` and `memberof` modules from `/usr/lib/ldap`, suffix
//! `dc=example,dc=org`), a test CA and a server certificate for
//! `localhost` and 127.0.0.1 made with rcgen, and runs `/usr/sbin/slapd`
//! in the foreground on two free ports: `ldap://` (StartTLS offered) and
//! `ldaps://`. It polls until both answer, then seeds the directory with
//! `ldapadd` as the root DN, so that the memberof overlay gives users their
//! `memberOf` values. slapd runs as root when the tests do: it does not
//! refuse it. Dropping a [`Slapd`] kills it and removes its directory;
//! [`shared`]'s one is stopped by a watcher process when the test process
//! exits, however it exits.
//!
//! Without `/usr/sbin/slapd` (or `ldapadd`/`ldapmodify`) [`available`]
//! says so and the tests return, unless `ICP_TEST_REQUIRE_SLAPD=1`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use icpd::ldap::LdapSettings;

use crate::harness::TestDir;

pub const SLAPD: &str = "/usr/sbin/slapd";
const LDAPADD: &str = "/usr/bin/ldapadd";
const LDAPMODIFY: &str = "/usr/bin/ldapmodify";
const SCHEMAS: &str = "/etc/ldap/schema";
const MODULES: &str = "/usr/lib/ldap";

pub const SUFFIX: &str = "dc=example,dc=org";
const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PASSWORD: &str = "slapd-admin-password-1";
pub const READER_DN: &str = "cn=icpd-reader,dc=example,dc=org";
pub const READER_PASSWORD: &str = "icpd reader password 1";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";

/// The seeded users: (uid, display name, password); alice is in
/// icp-admins and icp-devs, bob in icp-devs, carol in none.
pub const USERS: [(&str, &str, &str); 3] = [
    ("alice", "Alice Liddell", "alice password 1"),
    ("bob", "Bob Builder", "bob password 1"),
    ("carol", "Carol Danvers", "carol password 1"),
];

/// The password of seeded user `uid`.
pub fn password(uid: &str) -> &'static str {
    USERS.iter().find(|u| u.0 == uid).unwrap().2
}

/// Whether slapd and the LDAP tools are here; says why not for `test`, or
/// panics when `ICP_TEST_REQUIRE_SLAPD=1`.
pub fn available(test: &str) -> bool {
    if [SLAPD, LDAPADD, LDAPMODIFY]
        .iter()
        .all(|p| Path::new(p).exists())
    {
        return true;
    }
    if std::env::var("ICP_TEST_REQUIRE_SLAPD").as_deref() == Ok("1") {
        panic!("slapd is missing: apt-get install slapd ldap-utils");
    }
    eprintln!("{test}: skipped: no {SLAPD} or LDAP tools (apt-get install slapd ldap-utils)");
    false
}

pub struct Slapd {
    dir: TestDir,
    child: Child,
    pub ldap_port: u16,
    pub ldaps_port: u16,
    /// PEM of the CA that signed slapd's certificate.
    pub ca_file: PathBuf,
    /// PEM of a CA that signed nothing slapd shows.
    pub other_ca_file: PathBuf,
}

static SHARED: OnceLock<Slapd> = OnceLock::new();

/// One server for the tests that only read the seeded directory.
pub fn shared() -> &'static Slapd {
    SHARED.get_or_init(|| {
        let s = Slapd::start("shared");
        // Stop it when this process is gone, whatever ends it.
        crate::harness::after_this_process(&format!(
            "kill {slapd} 2>/dev/null; sleep 1; rm -rf {dir}",
            slapd = s.child.id(),
            dir = s.dir.path.display(),
        ));
        s
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A CA and a leaf for `names` signed by it: (CA PEM, leaf PEM, leaf key PEM).
fn certificates(names: &[&str]) -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "icpd test LDAP CA");
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut leaf =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}

fn seed_ldif() -> String {
    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {READER_DN}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: icpd-reader\nsn: reader\nuserPassword: {READER_PASSWORD}\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for (uid, cn, password) in USERS {
        let sn = cn.rsplit(' ').next().unwrap();
        ldif.push_str(&format!(
            "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {sn}\n\
             mail: {uid}@example.org\nuserPassword: {password}\n\n"
        ));
    }
    for (group, members) in [
        ("icp-admins", &["alice"][..]),
        ("icp-devs", &["alice", "bob"][..]),
    ] {
        ldif.push_str(&format!(
            "dn: cn={group},{GROUPS}\nobjectClass: groupOfNames\ncn: {group}\n"
        ));
        for m in members {
            ldif.push_str(&format!("member: uid={m},{PEOPLE}\n"));
        }
        ldif.push('\n');
    }
    ldif
}

fn run_tool(program: &str, args: &[&str], input: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .env("LDAPNOINIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Slapd {
    /// A server of the caller's own, seeded.
    pub fn start(tag: &str) -> Slapd {
        let mut last = String::new();
        // A free port may be taken between choosing and binding it: retry.
        for _ in 0..5 {
            match Slapd::try_start(tag) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("slapd did not start: {last}");
    }

    fn try_start(tag: &str) -> Result<Slapd, String> {
        let dir = TestDir::new(&format!("slapd-{tag}"));
        let path = dir.path.clone();
        std::fs::create_dir_all(path.join("db")).unwrap();
        let (ca, cert, key) = certificates(&["localhost", "127.0.0.1"]);
        let (other_ca, _, _) = certificates(&["localhost", "127.0.0.1"]);
        let ca_file = path.join("ca.pem");
        let other_ca_file = path.join("other-ca.pem");
        std::fs::write(&ca_file, ca).unwrap();
        std::fs::write(&other_ca_file, other_ca).unwrap();
        std::fs::write(path.join("server.pem"), cert).unwrap();
        std::fs::write(path.join("server.key"), key).unwrap();
        let conf = format!(
            "include {SCHEMAS}/core.schema\n\
             include {SCHEMAS}/cosine.schema\n\
             include {SCHEMAS}/inetorgperson.schema\n\
             modulepath {MODULES}\n\
             moduleload back_mdb\n\
             moduleload memberof\n\
             pidfile {dir}/slapd.pid\n\
             TLSCACertificateFile {dir}/ca.pem\n\
             TLSCertificateFile {dir}/server.pem\n\
             TLSCertificateKeyFile {dir}/server.key\n\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {dir}/db\n\
             overlay memberof\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by dn.exact=\"{READER_DN}\" read by self read by * none\n",
            dir = path.display(),
        );
        std::fs::write(path.join("slapd.conf"), conf).unwrap();
        let (ldap_port, ldaps_port) = (free_port(), free_port());
        let log = std::fs::File::create(path.join("slapd.log")).unwrap();
        let mut child = Command::new(SLAPD)
            .arg("-f")
            .arg(path.join("slapd.conf"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/"
            ))
            // Any -d keeps slapd in the foreground, so it is our child.
            .args(["-d", "256"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{SLAPD}: {e}"))?;
        let log = || std::fs::read_to_string(path.join("slapd.log")).unwrap_or_default();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("slapd exited ({status}): {}", log()));
            }
            let up = [ldap_port, ldaps_port]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                break;
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("slapd did not answer within 15 s: {}", log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let s = Slapd {
            dir,
            child,
            ldap_port,
            ldaps_port,
            ca_file,
            other_ca_file,
        };
        s.admin(LDAPADD, &seed_ldif())
            .unwrap_or_else(|e| panic!("seeding the directory: {e}"));
        Ok(s)
    }

    /// Runs an LDAP tool as the root DN over the plain port, with `ldif`.
    fn admin(&self, program: &str, ldif: &str) -> Result<(), String> {
        let url = format!("ldap://127.0.0.1:{}", self.ldap_port);
        run_tool(
            program,
            &["-x", "-H", &url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
            ldif,
        )
    }

    /// Takes user `uid` out of group `group` (the memberof overlay updates
    /// the user's memberOf).
    pub fn remove_member(&self, group: &str, uid: &str) {
        let ldif = format!(
            "dn: cn={group},{GROUPS}\nchangetype: modify\ndelete: member\nmember: uid={uid},{PEOPLE}\n"
        );
        self.admin(LDAPMODIFY, &ldif)
            .unwrap_or_else(|e| panic!("removing {uid} from {group}: {e}"));
    }

    /// Settings for this server over `ldaps://localhost`, with the
    /// service account and the right CA.
    pub fn ldaps_settings(&self) -> LdapSettings {
        self.settings(&format!("ldaps://localhost:{}", self.ldaps_port))
    }

    /// Settings for `ldap://127.0.0.1` with StartTLS.
    pub fn start_tls_settings(&self) -> LdapSettings {
        let mut s = self.settings(&format!("ldap://127.0.0.1:{}", self.ldap_port));
        s.start_tls = true;
        s
    }

    /// Settings for `ldap://127.0.0.1` in clear, not yet allowed.
    pub fn plain_settings(&self) -> LdapSettings {
        self.settings(&format!("ldap://127.0.0.1:{}", self.ldap_port))
    }

    fn settings(&self, url: &str) -> LdapSettings {
        let toml = format!(
            "url = {url:?}\nca_file = {ca:?}\nbind_dn = {READER_DN:?}\nbind_password = {READER_PASSWORD:?}\n\
             user_base = {PEOPLE:?}\ntimeout_secs = 5\n",
            ca = self.ca_file.display().to_string(),
        );
        toml::from_str(&toml).unwrap()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
