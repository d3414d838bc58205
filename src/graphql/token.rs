//! The console token of ICP 2 (GRAPHQL.md §2.2): a compact HS256 JWS that
//! `POST /auth/login` and `/auth/refresh-token` hand out and `/graphql`
//! accepts as `Authorization: Bearer <jwt>`.
//!
//! The claims are ICP's (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`,
//! `username`, `displayName`, `scope`) plus `sid`: the SHA-256 of the icpd
//! session the token was issued for. A token is accepted only while that
//! session exists, so logging out, revoking the refresh token or an admin
//! ending the user's sessions stops its tokens at once, which ICP's
//! stateless tokens cannot do. The signing key is derived from the master
//! key ([`crate::master_key::MasterKey::console_token_key`]), never the
//! published default of the reference.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// `iss` of the tokens, the reference's default `frontendJwtIssuer`.
pub const ISSUER: &str = "icp-frontend-jwt-issuer";
/// `aud` of the tokens, the reference's default `frontendJwtAudience`.
pub const AUDIENCE: &str = "icp-server";
/// Lifetime of a console token, as the reference's `defaultTokenExpiryTime`.
pub const TOKEN_TTL_SECS: i64 = 3600;
/// Clock skew tolerated on `nbf` (a node whose clock runs slightly behind).
const NBF_LEEWAY_SECS: i64 = 5;
/// Longest token considered at all (a bound on work for garbage).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The claims of a console token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub iss: String,
    /// The user id (icpd's numeric user id as a string).
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub username: String,
    pub display_name: String,
    /// ICP permission names held anywhere, space-separated (informational).
    pub scope: String,
    /// SHA-256 (hex) of the icpd session this token stands for.
    pub sid: String,
}

impl Claims {
    /// Claims for a token issued at `now` for a session.
    pub fn new(
        user_id: i64,
        username: &str,
        display_name: &str,
        permissions: &[&str],
        session_hash: &str,
        now: Millis,
    ) -> Claims {
        let iat = now.div_euclid(1000);
        Claims {
            iss: ISSUER.into(),
            sub: user_id.to_string(),
            aud: AUDIENCE.into(),
            exp: iat + TOKEN_TTL_SECS,
            nbf: iat,
            iat,
            username: username.into(),
            display_name: display_name.into(),
            scope: permissions.join(" "),
            sid: session_hash.into(),
        }
    }
}

/// Why a token was not accepted (never shown to the caller in detail:
/// GRAPHQL.md §1.4 has one message for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Malformed,
    BadSignature,
    WrongIssuerOrAudience,
    Expired,
    NotYetValid,
}

/// Whether `token` has the shape of a JWS (three base64url parts), as
/// opposed to an icpd session or API token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|&b| b == b'.').count() == 2
}

/// Signs `claims` into a compact JWS.
pub fn issue(key: &hmac::Key, claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{}.{}", B64URL.encode(HEADER), B64URL.encode(payload));
    let tag = hmac::sign(key, signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(tag.as_ref()))
}

/// Checks a token's signature, header, issuer, audience and times at `now`.
pub fn verify(key: &hmac::Key, token: &str, now: Millis) -> Result<Claims, Rejected> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejected::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejected::Malformed);
    };
    let sig = B64URL.decode(s).map_err(|_| Rejected::Malformed)?;
    // The signature first: nothing of an unsigned token is interpreted.
    hmac::verify(key, &token.as_bytes()[..h.len() + 1 + p.len()], &sig)
        .map_err(|_| Rejected::BadSignature)?;
    let header: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(h).map_err(|_| Rejected::Malformed)?)
            .map_err(|_| Rejected::Malformed)?;
    if header["alg"] != "HS256" {
        return Err(Rejected::Malformed);
    }
    let claims: Claims =
        serde_json::from_slice(&B64URL.decode(p).map_err(|_| Rejected::Malformed)?)
            .map_err(|_| Rejected::Malformed)?;
    if claims.iss != ISSUER || claims.aud != AUDIENCE {
        return Err(Rejected::WrongIssuerOrAudience);
    }
    let secs = now.div_euclid(1000);
    if secs >= claims.exp {
        return Err(Rejected::Expired);
    }
    if claims.nbf > secs + NBF_LEEWAY_SECS {
        return Err(Rejected::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[b; 32])
    }

    fn claims(now: Millis) -> Claims {
        Claims::new(7, "alice", "Alice", &["integration_mgt:view"], "ab12", now)
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let now = 1_800_000_000_000;
        let t = issue(&key(1), &claims(now));
        assert!(looks_like_jwt(&t));
        assert_eq!(verify(&key(1), &t, now), Ok(claims(now)));
        assert_eq!(
            verify(&key(1), &t, now + TOKEN_TTL_SECS * 1000 - 1000),
            Ok(claims(now))
        );
        assert_eq!(
            verify(&key(1), &t, now + TOKEN_TTL_SECS * 1000),
            Err(Rejected::Expired)
        );
        assert_eq!(
            verify(&key(1), &t, now - 60_000),
            Err(Rejected::NotYetValid)
        );
    }

    #[test]
    fn forged_and_mangled_tokens_are_refused() {
        let now = 1_800_000_000_000;
        let t = issue(&key(1), &claims(now));
        assert_eq!(verify(&key(2), &t, now), Err(Rejected::BadSignature));
        // Another payload under the original signature.
        let mut other = claims(now);
        other.sub = "1".into();
        let forged = issue(&key(2), &other);
        let (head_payload, _) = forged.rsplit_once('.').unwrap();
        let (_, sig) = t.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&key(1), &format!("{head_payload}.{sig}"), now),
            Err(Rejected::BadSignature)
        );
        // alg "none", a wrong audience, garbage.
        let none = format!(
            "{}.{}.",
            B64URL.encode(r#"{"alg":"none"}"#),
            B64URL.encode(serde_json::to_vec(&claims(now)).unwrap())
        );
        assert!(verify(&key(1), &none, now).is_err());
        let mut aud = claims(now);
        aud.aud = "elsewhere".into();
        assert_eq!(
            verify(&key(1), &issue(&key(1), &aud), now),
            Err(Rejected::WrongIssuerOrAudience)
        );
        for junk in ["", "a.b", "a.b.c.d", "eyJ.eyJ.", &"x".repeat(10_000)] {
            assert!(verify(&key(1), junk, now).is_err(), "{junk:.20}");
        }
        assert!(!looks_like_jwt("icps_abc"));
    }
}
