//! OpenID Connect, the part that decides whom an ID token names: the
//! provider's signing keys (a JWKS document) and the checks an ID token
//! must pass before icpd believes it (OpenID Connect Core 1.0, 3.1.3.7).
//!
//! Pure functions of their inputs and `now`: fetching the discovery
//! document and the JWKS, and the authorization-code flow around this, are
//! outbound calls that belong to the SSO flow, not here.
//!
//! - Signatures: RS256 and ES256 only, by `ring`. `none`, HMAC (a client
//!   secret is no proof of the provider) and anything else are refused.
//! - Keys: chosen by the token's `kid`; a token without one is accepted
//!   only when the set holds exactly one key of its type. An unknown `kid`
//!   is its own error, so the caller can refresh the JWKS once (key
//!   rotation) and try again.
//! - Claims: `iss` exactly the configured issuer; `aud` the client id (a
//!   token for several audiences must name the client as `azp`); `exp`
//!   in the future and `iat` not in it, both within a bounded clock skew;
//!   `nonce` the one this login sent.

use base64::Engine;
use serde_json::{Map, Value};

use crate::time::Millis;

/// The most clock difference between icpd and the provider accepted on
/// `exp`, `iat` and `nbf`.
pub const MAX_SKEW_SECS: i64 = 60;

/// Why an ID token was not believed. The messages name the claim and
/// never repeat the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a compact JWS of three base64url parts with JSON header and payload.
    Malformed(String),
    /// An algorithm other than RS256 or ES256.
    UnsupportedAlgorithm(String),
    /// No key in the set has this `kid` (or, without one, no single key
    /// fits): refresh the JWKS and try once more.
    UnknownKey(Option<String>),
    BadSignature,
    WrongIssuer,
    WrongAudience,
    Expired,
    NotYetValid,
    WrongNonce,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Malformed(why) => write!(f, "the ID token is malformed: {why}"),
            TokenError::UnsupportedAlgorithm(alg) => write!(
                f,
                "the ID token is signed with {alg}; icpd accepts RS256 and ES256"
            ),
            TokenError::UnknownKey(Some(kid)) => write!(
                f,
                "the ID token's key {kid:?} is not among the provider's published keys"
            ),
            TokenError::UnknownKey(None) => f.write_str(
                "the ID token names no key, and the provider publishes more than one (or none) of its type",
            ),
            TokenError::BadSignature => f.write_str("the ID token's signature does not verify"),
            TokenError::WrongIssuer => f.write_str("the ID token comes from another issuer"),
            TokenError::WrongAudience => f.write_str("the ID token was issued to another client"),
            TokenError::Expired => f.write_str("the ID token has expired"),
            TokenError::NotYetValid => f.write_str("the ID token is not valid yet (clock skew?)"),
            TokenError::WrongNonce => f.write_str("the ID token's nonce is not this login's"),
        }
    }
}

/// One signing key of the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed P-256 point: 0x04, x, y.
    P256(Vec<u8>),
}

/// A provider's published signing keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<(Option<String>, Key)>,
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| e.to_string())
}

impl Jwks {
    /// Reads a JWKS document. Keys icpd cannot use (encryption keys, other
    /// curves and types) are skipped; the error says when none is left.
    pub fn parse(json: &[u8]) -> Result<Jwks, String> {
        let doc: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
            return Err("no \"keys\" array".into());
        };
        let mut out = Vec::new();
        for k in keys {
            let field = |name: &str| k.get(name).and_then(Value::as_str);
            if field("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let key = match (field("kty"), field("crv")) {
                (Some("RSA"), _) => match (field("n").map(b64url), field("e").map(b64url)) {
                    (Some(Ok(n)), Some(Ok(e))) => Key::Rsa { n, e },
                    _ => continue,
                },
                (Some("EC"), Some("P-256")) => {
                    match (field("x").map(b64url), field("y").map(b64url)) {
                        (Some(Ok(x)), Some(Ok(y))) if x.len() == 32 && y.len() == 32 => {
                            let mut point = Vec::with_capacity(65);
                            point.push(4);
                            point.extend_from_slice(&x);
                            point.extend_from_slice(&y);
                            Key::P256(point)
                        }
                        _ => continue,
                    }
                }
                _ => continue,
            };
            out.push((field("kid").map(str::to_owned), key));
        }
        if out.is_empty() {
            return Err("no RSA or P-256 signing key".into());
        }
        Ok(Jwks { keys: out })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn find(&self, kid: Option<&str>, rsa: bool) -> Option<&Key> {
        let fits = |k: &Key| matches!(k, Key::Rsa { .. }) == rsa;
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(id, k)| id.as_deref() == Some(kid) && fits(k))
                .map(|(_, k)| k),
            None => {
                let mut of_type = self.keys.iter().filter(|(_, k)| fits(k));
                match (of_type.next(), of_type.next()) {
                    (Some((_, k)), None) => Some(k),
                    _ => None,
                }
            }
        }
    }
}

/// What a token must say to be believed.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
}

/// The claims of a token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub subject: String,
    pub claims: Map<String, Value>,
}

/// Checks `token` (a compact JWS) against `keys` and `expected` at `now`.
pub fn verify(
    token: &str,
    keys: &Jwks,
    expected: &Expected,
    now: Millis,
) -> Result<Verified, TokenError> {
    let bad = |why: &str| TokenError::Malformed(why.to_owned());
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not three dot-separated parts"));
    };
    let header: Map<String, Value> = b64url(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the header is not base64url JSON"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let rsa = match alg {
        "RS256" => true,
        "ES256" => false,
        other => return Err(TokenError::UnsupportedAlgorithm(other.to_owned())),
    };
    let kid = header.get("kid").and_then(Value::as_str);
    let key = keys
        .find(kid, rsa)
        .ok_or_else(|| TokenError::UnknownKey(kid.map(str::to_owned)))?;
    let signature = b64url(s).map_err(|_| bad("the signature is not base64url"))?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    use ring::signature as sig;
    let checked = match key {
        Key::Rsa { n, e } => sig::RsaPublicKeyComponents { n, e }.verify(
            &sig::RSA_PKCS1_2048_8192_SHA256,
            signed,
            &signature,
        ),
        Key::P256(point) => sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
            .verify(signed, &signature),
    };
    checked.map_err(|_| TokenError::BadSignature)?;

    let claims: Map<String, Value> = b64url(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the payload is not base64url JSON"))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let secs = |name: &str| claims.get(name).and_then(Value::as_i64);
    if text("iss") != Some(expected.issuer) {
        return Err(TokenError::WrongIssuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id)
        || (audiences.len() > 1 && text("azp") != Some(expected.client_id))
    {
        return Err(TokenError::WrongAudience);
    }
    let now_secs = now.div_euclid(1000);
    match secs("exp") {
        Some(exp) if exp + MAX_SKEW_SECS > now_secs => {}
        Some(_) => return Err(TokenError::Expired),
        None => return Err(bad("no exp claim")),
    }
    for claim in ["iat", "nbf"] {
        if secs(claim).is_some_and(|t| t > now_secs + MAX_SKEW_SECS) {
            return Err(TokenError::NotYetValid);
        }
    }
    if secs("iat").is_none() {
        return Err(bad("no iat claim"));
    }
    if text("nonce") != Some(expected.nonce) {
        return Err(TokenError::WrongNonce);
    }
    let subject = text("sub")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no sub claim"))?
        .to_owned();
    Ok(Verified { subject, claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    const ISS: &str = "https://idp.example";
    const NOW: Millis = 1_800_000_000_000;

    fn enc(v: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    struct Signer {
        pair: EcdsaKeyPair,
        kid: &'static str,
    }

    impl Signer {
        fn new(kid: &'static str) -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Signer { pair, kid }
        }

        fn jwk(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": self.kid,
                   "x": enc(&point[1..33]), "y": enc(&point[33..65])})
        }

        fn sign(&self, header: Value, claims: Value) -> String {
            let input = format!(
                "{}.{}",
                enc(header.to_string().as_bytes()),
                enc(claims.to_string().as_bytes())
            );
            let s = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap();
            format!("{input}.{}", enc(s.as_ref()))
        }

        fn token(&self, claims: Value) -> String {
            self.sign(json!({"alg": "ES256", "kid": self.kid}), claims)
        }
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": "icpd", "sub": "u-1", "nonce": "n-1",
               "iat": NOW / 1000, "exp": NOW / 1000 + 300, "email": "a@example"})
    }

    fn with(change: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut c = claims();
        change(c.as_object_mut().unwrap());
        c
    }

    fn jwks(keys: &[&Signer]) -> Jwks {
        let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
        Jwks::parse(doc.to_string().as_bytes()).unwrap()
    }

    const EXPECTED: Expected = Expected {
        issuer: ISS,
        client_id: "icpd",
        nonce: "n-1",
    };

    #[test]
    fn a_good_token_is_believed_and_every_wrong_claim_is_named() {
        let k = Signer::new("k1");
        let keys = jwks(&[&k]);
        let ok = verify(&k.token(claims()), &keys, &EXPECTED, NOW).unwrap();
        assert_eq!(ok.subject, "u-1");
        assert_eq!(ok.claims["email"], "a@example");
        let cases: Vec<(Value, TokenError)> = vec![
            (
                with(|c| drop(c.insert("iss".into(), json!("https://evil")))),
                TokenError::WrongIssuer,
            ),
            (
                with(|c| drop(c.insert("aud".into(), json!("other")))),
                TokenError::WrongAudience,
            ),
            (
                with(|c| drop(c.insert("aud".into(), json!(["icpd", "other"])))),
                TokenError::WrongAudience,
            ),
            (
                with(|c| drop(c.insert("exp".into(), json!(NOW / 1000 - 61)))),
                TokenError::Expired,
            ),
            (
                with(|c| drop(c.insert("iat".into(), json!(NOW / 1000 + 120)))),
                TokenError::NotYetValid,
            ),
            (
                with(|c| drop(c.insert("nonce".into(), json!("n-2")))),
                TokenError::WrongNonce,
            ),
            (with(|c| drop(c.remove("nonce"))), TokenError::WrongNonce),
        ];
        for (claims, want) in cases {
            assert_eq!(
                verify(&k.token(claims.clone()), &keys, &EXPECTED, NOW),
                Err(want.clone()),
                "{claims}"
            );
        }
        // Within the skew: expired 59 s ago by its clock, several audiences
        // with azp naming the client.
        let late = with(|c| drop(c.insert("exp".into(), json!(NOW / 1000 - 59))));
        assert!(verify(&k.token(late), &keys, &EXPECTED, NOW).is_ok());
        let azp = with(|c| {
            c.insert("aud".into(), json!(["icpd", "other"]));
            c.insert("azp".into(), json!("icpd"));
        });
        assert!(verify(&k.token(azp), &keys, &EXPECTED, NOW).is_ok());
    }

    #[test]
    fn signatures_keys_and_algorithms_are_checked() {
        let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));
        let only_k1 = jwks(&[&k1]);
        // Signed by another key under k1's kid.
        let forged = k2.sign(json!({"alg": "ES256", "kid": "k1"}), claims());
        assert_eq!(
            verify(&forged, &only_k1, &EXPECTED, NOW),
            Err(TokenError::BadSignature)
        );
        // A changed payload under a good signature.
        let good = k1.token(claims());
        let mut parts: Vec<&str> = good.split('.').collect();
        let other = enc(with(|c| drop(c.insert("sub".into(), json!("admin"))))
            .to_string()
            .as_bytes());
        parts[1] = &other;
        assert_eq!(
            verify(&parts.join("."), &only_k1, &EXPECTED, NOW),
            Err(TokenError::BadSignature)
        );
        // Key rotation: a new kid is unknown until the JWKS is read again.
        let rotated = k2.token(claims());
        assert_eq!(
            verify(&rotated, &only_k1, &EXPECTED, NOW),
            Err(TokenError::UnknownKey(Some("k2".into())))
        );
        assert!(verify(&rotated, &jwks(&[&k1, &k2]), &EXPECTED, NOW).is_ok());
        // No kid: only when one key of the type is published.
        let no_kid = k1.sign(json!({"alg": "ES256"}), claims());
        assert!(verify(&no_kid, &only_k1, &EXPECTED, NOW).is_ok());
        assert_eq!(
            verify(&no_kid, &jwks(&[&k1, &k2]), &EXPECTED, NOW),
            Err(TokenError::UnknownKey(None))
        );
        // Algorithms: none, HMAC and a lie about the key's type.
        for alg in ["none", "HS256", "RS384", ""] {
            let t = k1.sign(json!({"alg": alg, "kid": "k1"}), claims());
            assert_eq!(
                verify(&t, &only_k1, &EXPECTED, NOW),
                Err(TokenError::UnsupportedAlgorithm(alg.into()))
            );
        }
        let as_rsa = k1.sign(json!({"alg": "RS256", "kid": "k1"}), claims());
        assert_eq!(
            verify(&as_rsa, &only_k1, &EXPECTED, NOW),
            Err(TokenError::UnknownKey(Some("k1".into())))
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(matches!(
                verify(junk, &only_k1, &EXPECTED, NOW),
                Err(TokenError::Malformed(_))
            ));
        }
    }

    #[test]
    fn rs256_tokens_verify_with_the_modulus_and_exponent() {
        // A 2048-bit key for tests only (ring makes no RSA keys), PKCS#1
        // DER in base64: `openssl genpkey -algorithm RSA -pkeyopt
        // rsa_keygen_bits:2048 | openssl pkey -traditional -outform DER`.
        let der = base64::engine::general_purpose::STANDARD
            .decode(include_str!("../tests/fixtures/oidc-test-rsa.der.b64").trim())
            .unwrap();
        let pair = ring::signature::RsaKeyPair::from_der(&der).unwrap();
        let components = ring::signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
        let doc = json!({"keys": [
            {"kty": "RSA", "use": "enc", "kid": "ignored", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "r1", "n": enc(&components.n), "e": enc(&components.e)}
        ]});
        let keys = Jwks::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1, "the encryption key is skipped");
        let input = format!(
            "{}.{}",
            enc(json!({"alg": "RS256", "kid": "r1"}).to_string().as_bytes()),
            enc(claims().to_string().as_bytes())
        );
        let mut s = vec![0; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut s,
        )
        .unwrap();
        let token = format!("{input}.{}", enc(&s));
        assert_eq!(
            verify(&token, &keys, &EXPECTED, NOW).unwrap().subject,
            "u-1"
        );
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify(
                std::str::from_utf8(&tampered).unwrap(),
                &keys,
                &EXPECTED,
                NOW
            ),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn jwks_documents_without_usable_keys_are_refused() {
        for doc in [
            "not json",
            "{}",
            r#"{"keys": []}"#,
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
            r#"{"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}"#,
        ] {
            assert!(Jwks::parse(doc.as_bytes()).is_err(), "{doc}");
        }
    }
}
