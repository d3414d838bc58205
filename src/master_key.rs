//! The master key: the one secret kept outside the database.
//!
//! Secret key material (and later, vault values) is stored in SQLite sealed
//! with AES-256-GCM under this key, so a copy of `icp.db` alone reveals no
//! runtime secret. The key lives in `master.key` in the data directory (mode
//! 0600, created on first start) or comes from `ICP_MASTER_KEY` (base64 of 32
//! bytes). It must be backed up together with the database.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// Environment variable that supplies the master key instead of the file.
pub const MASTER_KEY_ENV: &str = "ICP_MASTER_KEY";
/// File name of the master key inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// An AES-256-GCM key that seals and opens small values bound to a context.
pub struct MasterKey {
    key: LessSafeKey,
    /// A value derived from the key that shows whether two nodes have the
    /// same key without revealing it (see [`MasterKey::check_value`]).
    check: String,
    /// HMAC key for the console tokens `/auth/login` issues (see
    /// `graphql::token`), derived from the master key so that every node
    /// sharing the master key accepts the same tokens.
    console_token_key: ring::hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Loads the key from `ICP_MASTER_KEY` or `DATA_DIR/master.key`; with
    /// `create`, writes a new random key file when neither exists.
    pub fn load(data_dir: &Path, create: bool) -> Result<MasterKey> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return MasterKey::from_base64(text.trim())
                .map_err(|e| Error::Config(format!("{MASTER_KEY_ENV}: {e}")));
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => MasterKey::from_base64(text.trim())
                .map_err(|e| Error::DataDir(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => MasterKey::create(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::DataDir(format!(
                "no master key at {} and {MASTER_KEY_ENV} is not set; restore the master.key that was backed up with this database",
                path.display()
            ))),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    fn create(path: &Path) -> Result<MasterKey> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Internal("the system random number generator failed".into()))?;
        let text = B64.encode(bytes);
        write_private_file(path, format!("{text}\n").as_bytes())?;
        log::info!(
            "created master key {} (back it up together with icp.db)",
            path.display()
        );
        MasterKey::from_base64(&text).map_err(Error::Internal)
    }

    /// Builds a key from base64 text of exactly 32 bytes.
    pub fn from_base64(text: &str) -> std::result::Result<MasterKey, String> {
        let bytes = B64
            .decode(text)
            .map_err(|_| "the master key is not valid base64".to_string())?;
        if bytes.len() != 32 {
            return Err(format!(
                "the master key must be 32 bytes, found {}",
                bytes.len()
            ));
        }
        let key =
            UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "unusable master key".to_string())?;
        let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes);
        let console = ring::hmac::sign(&derive, b"icpd console token signing key v1");
        let check = ring::hmac::sign(&derive, b"icpd master key check value v1");
        let check = check.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(MasterKey {
            key: LessSafeKey::new(key),
            check,
            console_token_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, console.as_ref()),
        })
    }

    /// 128 bits of HMAC-SHA256 of a fixed label under the key: equal for
    /// equal keys, and no help in finding the key. Every node sharing a
    /// database must present the same one (checked at start).
    pub fn check_value(&self) -> &str {
        &self.check
    }

    /// The HMAC-SHA256 key console tokens are signed with.
    pub fn console_token_key(&self) -> &ring::hmac::Key {
        &self.console_token_key
    }

    /// Encrypts `plaintext`; `context` (for example the secret's key id) is
    /// authenticated, so a sealed value cannot be moved to another row.
    /// Output: 12-byte random nonce followed by ciphertext and tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Internal("the system random number generator failed".into()))?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| Error::Internal("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts a value made by [`MasterKey::seal`] with the same context.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(Error::DataDir(format!(
                "sealed value for '{context}' is truncated"
            )));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| Error::Internal("bad nonce".into()))?;
        let mut buf = ct.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf).map_err(|_| {
            Error::DataDir(format!(
                "cannot decrypt the value for '{context}': the master key does not match this database"
            ))
        })?;
        Ok(plain.to_vec())
    }
}

/// Fills a buffer from the operating system's secure random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal("the system random number generator failed".into()))?;
    Ok(bytes)
}

/// Writes a file readable only by its owner (mode 0600), replacing any old one.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming to {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let key = MasterKey::from_base64(&B64.encode([7u8; 32])).unwrap();
        let sealed = key.seal("abcd1234", b"key material").unwrap();
        assert_eq!(key.open("abcd1234", &sealed).unwrap(), b"key material");
        assert!(key.open("other", &sealed).is_err());
        let other = MasterKey::from_base64(&B64.encode([8u8; 32])).unwrap();
        assert!(other.open("abcd1234", &sealed).is_err());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
