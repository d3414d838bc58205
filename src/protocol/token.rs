//! The runtime's bearer token: an HS256 JWT keyed by the UTF-8 bytes of the
//! secret's key material, checked in the order PROTOCOL.md prescribes.
//!
//! [`verify`] is pure: it takes the header, the time and a lookup for the
//! key id, so every failure path is testable without a server. A failure
//! is a 401 with the [`Reason`] it is counted and kept under.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::hmac;
use serde_json::Value;

use crate::config::TokenConfig;
use crate::error::Error;
use crate::refusals::{looks_like_id, Reason, Refused, Subject};
use crate::secrets::{ActiveSecret, Usable};
use crate::time::Millis;

/// The scope every runtime token must carry.
pub const RUNTIME_SCOPE: &str = "runtime_agent";

/// Checks `authorization` (the raw header value) and returns the secret it was signed with.
/// `lookup` returns the secret for a key id if it exists, and whether it may be used.
///
/// A revoked or expired secret is named as such, but only to a token
/// signed with it: to anyone else its key id is as good as unknown.
pub fn verify(
    authorization: Option<&str>,
    now: Millis,
    cfg: &TokenConfig,
    lookup: impl FnOnce(&str) -> Result<Option<(ActiveSecret, Usable)>, Error>,
) -> Result<ActiveSecret, Refused> {
    // Subjects are built only when refusing: a heartbeat that passes
    // copies nothing for the trace.
    let refuse = |reason: Reason, subject: Subject, m: &str| {
        Refused::new(reason, subject, Error::Unauthorized(m.to_string()))
    };
    // 1. `Bearer <token>`
    let token = authorization
        .and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            refuse(
                Reason::MissingCredentials,
                Subject::default(),
                "Missing or malformed Authorization header: expected 'Bearer <token>'",
            )
        })?;

    // 2. Three base64url parts, a JSON header with a kid.
    let malformed = |m: &str| refuse(Reason::MalformedToken, Subject::default(), m);
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("Invalid JWT: expected three dot-separated parts"));
    };
    let header: Value =
        decode_json(h64).ok_or_else(|| malformed("Invalid JWT: header is not base64url JSON"))?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty() && k.len() <= 64)
        .ok_or_else(|| malformed("Invalid JWT: header has no kid"))?;

    // 3. The key id names a secret. An unknown one is kept for the trace
    // only if it looks like a key id (ours are 8 hex characters): never
    // what might be key material pasted in the wrong place (32 bytes of
    // base64 are 43 characters or more).
    let (secret, usable) = lookup(kid)?.ok_or_else(|| {
        let claimed = Subject {
            credential: Some("runtime secret"),
            key_id: looks_like_id(kid, 32).then(|| kid.to_string()),
            ..Subject::default()
        };
        refuse(
            Reason::UnknownKey,
            claimed,
            "Unknown key ID: get a new secret for this runtime",
        )
    })?;
    let known = || Subject::secret(&secret);

    // 4. HS256 only, signature checked in constant time.
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(refuse(
            Reason::MalformedToken,
            known(),
            "Invalid or expired token",
        ));
    }
    let wrong = || refuse(Reason::WrongSecret, known(), "Invalid or expired token");
    let signature = B64URL.decode(s64).map_err(|_| wrong())?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.material.as_bytes());
    let signed = &token[..h64.len() + 1 + p64.len()];
    hmac::verify(&key, signed.as_bytes(), &signature).map_err(|_| wrong())?;

    // 3, told to the secret's holder: not revoked, not expired.
    let unusable = match usable {
        Usable::Yes => None,
        Usable::Revoked => Some((Reason::Revoked, "was revoked")),
        Usable::Expired => Some((Reason::Expired, "has expired")),
    };
    if let Some((reason, state)) = unusable {
        return Err(refuse(
            reason,
            known(),
            &format!(
                "Secret {} {state}: get a new secret for this runtime",
                secret.key_id
            ),
        ));
    }

    // 5. Issuer, audience and lifetime.
    let invalid = |m: &str| refuse(Reason::InvalidClaims, known(), m);
    let claims: Value = decode_json(p64).ok_or_else(|| invalid("Invalid or expired token"))?;
    let now_s = now.div_euclid(1000);
    let skew = i64::try_from(cfg.clock_skew.as_secs()).unwrap_or(i64::MAX);
    let iss_ok = claims.get("iss").and_then(Value::as_str) == Some(cfg.issuer.as_str());
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == cfg.audience,
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str() == Some(cfg.audience.as_str())),
        _ => false,
    };
    let exp_ok = claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_some_and(|exp| exp.saturating_add(skew) > now_s);
    let nbf_ok = match claims.get("nbf") {
        None => true,
        Some(v) => v
            .as_i64()
            .is_some_and(|nbf| nbf <= now_s.saturating_add(skew)),
    };
    if !(iss_ok && aud_ok && exp_ok && nbf_ok) {
        return Err(invalid("Invalid or expired token"));
    }

    // 6. Scope.
    if claims.get("scope").and_then(Value::as_str) != Some(RUNTIME_SCOPE) {
        return Err(invalid(
            "Insufficient scope: the token must carry scope runtime_agent",
        ));
    }
    Ok(secret)
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = B64URL.decode(part.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.is_object().then_some(v)
}

/// Builds a runtime token as the bridge does (for the example runtime, the fleet simulator and tests).
pub fn issue(secret: &str, cfg: &TokenConfig, now_s: i64, lifetime_s: i64) -> String {
    let (key_id, material) = secret.split_once('.').unwrap_or(("", secret));
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": key_id});
    let claims = serde_json::json!({
        "iss": cfg.issuer, "aud": cfg.audience, "exp": now_s + lifetime_s, "iat": now_s, "nbf": now_s,
        "scope": RUNTIME_SCOPE,
    });
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, material.as_bytes());
    let sig = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(sig.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const MATERIAL: &str = "c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcy1sb25nIQ==";

    fn secret() -> ActiveSecret {
        ActiveSecret {
            key_id: "abcd1234".into(),
            material: MATERIAL.into(),
            environment_id: 1,
            environment: "dev".into(),
            project_id: None,
            integration_id: None,
        }
    }

    fn check(header: Option<&str>, now_ms: Millis) -> Result<ActiveSecret, Refused> {
        check_as(header, now_ms, Usable::Yes)
    }

    fn check_as(
        header: Option<&str>,
        now_ms: Millis,
        usable: Usable,
    ) -> Result<ActiveSecret, Refused> {
        let cfg = Config::defaults().token;
        verify(header, now_ms, &cfg, |kid| {
            Ok((kid == "abcd1234").then(|| (secret(), usable)))
        })
    }

    fn craft(header: Value, claims: Value, key: &str) -> String {
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
            input.as_bytes(),
        );
        format!("Bearer {input}.{}", B64URL.encode(sig.as_ref()))
    }

    fn claims(now: i64) -> Value {
        serde_json::json!({"iss": "icp-runtime-jwt-issuer", "aud": "icp-server", "exp": now + 3600, "iat": now, "nbf": now, "scope": "runtime_agent"})
    }

    fn message(r: Result<ActiveSecret, Refused>) -> String {
        match r {
            Err(Refused {
                error: Error::Unauthorized(m),
                reason: Some(_),
                ..
            }) => m,
            other => panic!("expected a 401 refusal, got {other:?}"),
        }
    }

    fn reason(r: Result<ActiveSecret, Refused>) -> (Reason, Option<String>, Option<i64>) {
        let r = r.expect_err("a refusal");
        (
            r.reason.expect("a reason"),
            r.subject.key_id,
            r.subject.environment_id,
        )
    }

    #[test]
    fn revoked_and_expired_are_told_only_to_the_secrets_holder() {
        let now = 1_000_000i64;
        let ms = now * 1000;
        let hdr = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "abcd1234"});
        let good = craft(hdr.clone(), claims(now), MATERIAL);
        let forged = craft(hdr, claims(now), "not-the-material");
        let m = message(check_as(Some(&good), ms, Usable::Revoked));
        assert!(m.contains("revoked") && m.contains("abcd1234"), "{m}");
        let m = message(check_as(Some(&good), ms, Usable::Expired));
        assert!(m.contains("expired"), "{m}");
        assert_eq!(
            reason(check_as(Some(&good), ms, Usable::Revoked)),
            (Reason::Revoked, Some("abcd1234".into()), Some(1))
        );
        assert_eq!(
            reason(check_as(Some(&good), ms, Usable::Expired)).0,
            Reason::Expired
        );
        // A token not signed with the secret learns nothing of its state.
        for usable in [Usable::Revoked, Usable::Expired] {
            let m = message(check_as(Some(&forged), ms, usable));
            assert_eq!(m, "Invalid or expired token");
            assert_eq!(
                reason(check_as(Some(&forged), ms, usable)).0,
                Reason::WrongSecret
            );
        }
    }

    #[test]
    fn each_failure_has_its_reason() {
        let now = 1_000_000i64;
        let ms = now * 1000;
        let hdr = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "abcd1234"});
        assert_eq!(reason(check(None, ms)).0, Reason::MissingCredentials);
        assert_eq!(
            reason(check(Some("Bearer a.b"), ms)).0,
            Reason::MalformedToken
        );
        let unknown = craft(
            serde_json::json!({"alg": "HS256", "kid": "ffffffff"}),
            claims(now),
            MATERIAL,
        );
        assert_eq!(
            reason(check(Some(&unknown), ms)),
            (Reason::UnknownKey, Some("ffffffff".into()), None)
        );
        let odd_kid = craft(
            serde_json::json!({"alg": "HS256", "kid": "a b\n"}),
            claims(now),
            MATERIAL,
        );
        assert_eq!(
            reason(check(Some(&odd_kid), ms)),
            (Reason::UnknownKey, None, None),
            "a claimed key id that is not an id is not kept"
        );
        let material_as_kid = craft(
            serde_json::json!({"alg": "HS256", "kid": MATERIAL.trim_end_matches('=')}),
            claims(now),
            MATERIAL,
        );
        assert_eq!(
            reason(check(Some(&material_as_kid), ms)),
            (Reason::UnknownKey, None, None),
            "nor is anything as long as key material"
        );
        let wrong = craft(hdr.clone(), claims(now), "x");
        assert_eq!(
            reason(check(Some(&wrong), ms)),
            (Reason::WrongSecret, Some("abcd1234".into()), Some(1))
        );
        let expired = craft(hdr.clone(), claims(now - 7200), MATERIAL);
        assert_eq!(reason(check(Some(&expired), ms)).0, Reason::InvalidClaims);
        let mut c = claims(now);
        c["scope"] = "admin".into();
        assert_eq!(
            reason(check(Some(&craft(hdr, c, MATERIAL)), ms)).0,
            Reason::InvalidClaims
        );
    }

    #[test]
    fn accepts_an_issued_token() {
        let cfg = Config::defaults().token;
        let tok = issue(&format!("abcd1234.{MATERIAL}"), &cfg, 1_000_000, 3600);
        assert_eq!(
            check(Some(&format!("Bearer {tok}")), 1_000_000_000)
                .unwrap()
                .key_id,
            "abcd1234"
        );
    }

    #[test]
    fn failures_in_protocol_order() {
        let now = 1_000_000i64;
        let ms = now * 1000;
        let hdr = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "abcd1234"});
        assert!(message(check(None, ms)).starts_with("Missing or malformed"));
        assert!(message(check(Some("Basic abc"), ms)).starts_with("Missing or malformed"));
        assert!(message(check(Some("Bearer a.b"), ms)).starts_with("Invalid JWT"));
        let no_kid = craft(serde_json::json!({"alg": "HS256"}), claims(now), MATERIAL);
        assert!(message(check(Some(&no_kid), ms)).starts_with("Invalid JWT"));
        let unknown = craft(
            serde_json::json!({"alg": "HS256", "kid": "ffffffff"}),
            claims(now),
            MATERIAL,
        );
        assert!(message(check(Some(&unknown), ms)).starts_with("Unknown key ID"));
        let wrong_key = craft(hdr.clone(), claims(now), "x");
        assert!(message(check(Some(&wrong_key), ms)).starts_with("Invalid or expired"));
        let hs512 = craft(
            serde_json::json!({"alg": "HS512", "kid": "abcd1234"}),
            claims(now),
            MATERIAL,
        );
        assert!(message(check(Some(&hs512), ms)).starts_with("Invalid or expired"));
        let none = format!(
            "Bearer {}.{}.",
            B64URL.encode(r#"{"alg":"none","kid":"abcd1234"}"#),
            B64URL.encode(claims(now).to_string())
        );
        assert!(message(check(Some(&none), ms)).starts_with("Invalid or expired"));
        let expired = craft(hdr.clone(), claims(now - 7200), MATERIAL);
        assert!(message(check(Some(&expired), ms)).starts_with("Invalid or expired"));
        // Within the 10 s skew is fine; beyond it is not.
        let mut c = claims(now);
        c["exp"] = (now - 5).into();
        assert!(check(Some(&craft(hdr.clone(), c.clone(), MATERIAL)), ms).is_ok());
        c["exp"] = (now - 11).into();
        assert!(check(Some(&craft(hdr.clone(), c, MATERIAL)), ms).is_err());
        let future = craft(hdr.clone(), claims(now + 600), MATERIAL);
        assert!(message(check(Some(&future), ms)).starts_with("Invalid or expired"));
        let mut c = claims(now);
        c["aud"] = serde_json::json!(["x", "icp-server"]);
        assert!(check(Some(&craft(hdr.clone(), c.clone(), MATERIAL)), ms).is_ok());
        c["aud"] = "other".into();
        assert!(check(Some(&craft(hdr.clone(), c, MATERIAL)), ms).is_err());
        let mut c = claims(now);
        c["iss"] = "someone".into();
        assert!(check(Some(&craft(hdr.clone(), c, MATERIAL)), ms).is_err());
        let mut c = claims(now);
        c.as_object_mut().unwrap().remove("scope");
        assert!(
            message(check(Some(&craft(hdr.clone(), c.clone(), MATERIAL)), ms))
                .starts_with("Insufficient scope")
        );
        c["scope"] = "admin".into();
        assert!(
            message(check(Some(&craft(hdr, c, MATERIAL)), ms)).starts_with("Insufficient scope")
        );
    }
}
