//! TLS material for both listeners: the operator's PEM files, or a
//! self-signed ECDSA P-256 certificate generated on first start into
//! `DATA_DIR/tls/` (key mode 0600) and reused afterwards.
//!
//! rustls 0.23 with the ring provider, TLS 1.2 and 1.3.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::error::{Error, Result};
use crate::master_key::write_private_file;

/// Where the generated certificate lives.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// The certificate in use: its path and the rustls configuration built from it.
pub struct TlsMaterial {
    pub cert_path: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// The certificate and key paths in effect for this configuration.
pub fn cert_paths(cfg: &TlsConfig, data_dir: &Path) -> (PathBuf, PathBuf) {
    match (&cfg.cert, &cfg.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => generated_paths(data_dir),
    }
}

/// Loads the operator's certificate, or the generated one (creating it if missing).
pub fn load(cfg: &TlsConfig, data_dir: &Path) -> Result<TlsMaterial> {
    let (cert_path, key_path) = cert_paths(cfg, data_dir);
    if cfg.cert.is_none() && !cert_path.exists() {
        generate(&cert_path, &key_path)?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .map_err(|e| {
            Error::Config(format!(
                "cannot read certificate {}: {e}",
                cert_path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no PEM certificate",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        Error::Config(format!(
            "cannot read private key {}: {e}",
            key_path.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Config(format!(
                "{} and {} do not form a usable pair: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
    Ok(TlsMaterial {
        cert_path,
        server_config: Arc::new(config),
    })
}

fn generate(cert_path: &Path, key_path: &Path) -> Result<()> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(host) = host_name() {
        if !names.contains(&host) {
            names.push(host);
        }
    }
    let mut params = rcgen::CertificateParams::new(names.clone())
        .map_err(|e| Error::Internal(format!("certificate parameters: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "icpd");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "icpd self-signed");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::Internal(format!("key generation: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::Internal(format!("self-signing: {e}")))?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    write_private_file(key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, cert.pem())
        .map_err(|e| Error::io(format!("writing {}", cert_path.display()), e))?;
    log::info!(
        "generated a self-signed certificate {} for {}",
        cert_path.display(),
        names.join(", ")
    );
    Ok(())
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// SHA-256 fingerprint of the first certificate in a PEM file, as `AB:CD:...`.
pub fn fingerprint(cert_path: &Path) -> Result<String> {
    let cert = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| {
            Error::Config(format!(
                "cannot read certificate {}: {e}",
                cert_path.display()
            ))
        })?
        .next()
        .ok_or_else(|| Error::Config(format!("{} holds no PEM certificate", cert_path.display())))?
        .map_err(|e| {
            Error::Config(format!(
                "cannot read certificate {}: {e}",
                cert_path.display()
            ))
        })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    Ok(digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}
