//! GitHub Actions OIDC tokens (trusted publishing for packs): RS256 only, keys from the
//! issuer's OpenID configuration → JWKS, cached per instance and refetched on an unknown
//! `kid` at most once a minute.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;

use crate::error::{ApiError, Code};

/// Clock leeway for `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 60;
/// Minimum time between two JWKS fetches triggered by unknown key ids.
const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// The GitHub Actions claims the Hub uses.
#[derive(Debug, Clone, Deserialize)]
pub struct GithubClaims {
    /// `repo:owner/name:…`.
    pub sub: String,
    /// `owner/name` (changes on rename).
    pub repository: String,
    /// Stable repository id (a string in GitHub's tokens).
    pub repository_id: String,
    #[serde(default)]
    pub repository_owner: String,
    /// Stable owner id.
    pub repository_owner_id: String,
    /// `owner/name/.github/workflows/file.yml@ref`.
    pub workflow_ref: String,
    /// The reusable workflow actually running, when any.
    #[serde(default)]
    pub job_workflow_ref: Option<String>,
    /// Git ref (`refs/tags/v1.2.0`).
    #[serde(rename = "ref", default)]
    pub git_ref: String,
    /// Deployment environment, when the job has one.
    #[serde(default)]
    pub environment: Option<String>,
    pub event_name: String,
    #[serde(default)]
    pub run_id: String,
    /// Token id (accepted once).
    pub jti: String,
    /// Expiry (unix seconds).
    pub exp: i64,
    pub iat: i64,
}

impl GithubClaims {
    /// The workflow file name from `workflow_ref` (`release.yml`).
    pub fn workflow_file(&self) -> Option<&str> {
        let path = self.workflow_ref.split('@').next()?;
        path.split("/.github/workflows/").nth(1)
    }

    /// How audit rows name this caller.
    pub fn actor(&self) -> String {
        format!(
            "github:{} workflow {} run {}",
            self.repository,
            self.workflow_file().unwrap_or("?"),
            self.run_id
        )
    }
}

/// 401 `oidc_invalid` with a machine `reason`.
pub fn invalid(reason: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, Code::OidcInvalid, detail)
        .with_extra(serde_json::json!({ "reason": reason }))
}

/// 403 `oidc_claims_mismatch` with a machine `reason`.
pub fn mismatch(reason: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, Code::OidcClaimsMismatch, detail)
        .with_extra(serde_json::json!({ "reason": reason }))
}

/// Reads a JWT's header before any key is fetched: the token must be three base64url
/// segments, its header JSON with `alg` RS256 and a `kid` of at most 256 characters.
/// Returns the `kid`; 401 `oidc_invalid` with reason `malformed`, `algorithm` or
/// `unknown_key` otherwise.
pub fn parse_header(token: &str) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct RawHeader {
        alg: String,
        kid: Option<String>,
    }
    let malformed = || invalid("malformed", "the OIDC token is not a JWT");
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() != 3 || token.len() > 16 * 1024 {
        return Err(malformed());
    }
    let header: RawHeader = URL_SAFE_NO_PAD
        .decode(segments[0].trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(malformed)?;
    if header.alg != "RS256" {
        let shown: String = header.alg.chars().take(20).collect();
        return Err(invalid(
            "algorithm",
            format!("OIDC tokens must be signed with RS256, not {shown:?}"),
        ));
    }
    match header.kid {
        Some(kid) if !kid.is_empty() && kid.len() <= 256 => Ok(kid),
        Some(_) => Err(invalid(
            "unknown_key",
            "the OIDC token's key id (kid) is not valid",
        )),
        None => Err(invalid(
            "unknown_key",
            "the OIDC token names no key id (kid)",
        )),
    }
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// Verifies OIDC tokens for one issuer and audience; built without network I/O.
pub struct OidcVerifier {
    issuer: String,
    audience: Option<String>,
    cache: Mutex<KeyCache>,
    /// Serialises refetches so concurrent requests with a new `kid` fetch once.
    fetching: tokio::sync::Mutex<()>,
    http: OnceLock<reqwest::Client>,
}

impl OidcVerifier {
    /// A verifier for `issuer` and `audience` (OIDC is refused while no audience is set).
    pub fn new(issuer: &str, audience: Option<&str>) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: audience.map(str::to_owned),
            cache: Mutex::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
            http: OnceLock::new(),
        }
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default()
        })
    }

    fn cached_key(&self, kid: &str) -> Option<DecodingKey> {
        self.cache.lock().ok()?.keys.get(kid).cloned()
    }

    async fn fetch_keys(&self) -> Result<(), ApiError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::OidcUnavailable,
                "the OIDC issuer's keys could not be fetched; retry later",
            );
            err.cause = Some(format!("{what}: {e}"));
            err
        };
        #[derive(Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let discovery: Discovery = self
            .http()
            .get(format!("{}/.well-known/openid-configuration", self.issuer))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| unavailable("openid-configuration", &e))?
            .json()
            .await
            .map_err(|e| unavailable("openid-configuration", &e))?;
        let jwks: jsonwebtoken::jwk::JwkSet = self
            .http()
            .get(&discovery.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| unavailable("jwks", &e))?
            .json()
            .await
            .map_err(|e| unavailable("jwks", &e))?;
        let keys = jwks
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        if let Ok(mut cache) = self.cache.lock() {
            cache.keys = keys;
            cache.fetched_at = Some(Instant::now());
        }
        Ok(())
    }

    async fn key_for(&self, kid: &str) -> Result<DecodingKey, ApiError> {
        if let Some(key) = self.cached_key(kid) {
            return Ok(key);
        }
        let _guard = self.fetching.lock().await;
        if let Some(key) = self.cached_key(kid) {
            return Ok(key);
        }
        let may_fetch = self
            .cache
            .lock()
            .map(|c| c.fetched_at.is_none_or(|t| t.elapsed() >= REFETCH_AFTER))
            .unwrap_or(true);
        if may_fetch {
            self.fetch_keys().await?;
        }
        self.cached_key(kid).ok_or_else(|| {
            invalid(
                "unknown_key",
                format!("the token is signed with key {kid:?}, which the issuer does not publish"),
            )
        })
    }

    /// Checks signature, algorithm, issuer, audience and time claims.
    pub async fn verify(&self, token: &str) -> Result<GithubClaims, ApiError> {
        let Some(audience) = &self.audience else {
            return Err(invalid(
                "not_configured",
                "GitHub OIDC is not enabled on this Hub (ATLAS_OIDC_AUDIENCE is not set)",
            ));
        };
        let kid = parse_header(token)?;
        let key = self.key_for(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<GithubClaims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => invalid("expired", "the OIDC token has expired"),
                ErrorKind::ImmatureSignature => invalid("not_yet_valid", "the OIDC token is not valid yet (nbf)"),
                ErrorKind::InvalidAudience => invalid(
                    "audience",
                    format!("the OIDC token's audience is not {audience:?}; request it with that audience"),
                ),
                ErrorKind::InvalidIssuer => invalid("issuer", format!("the OIDC token was not issued by {}", self.issuer)),
                ErrorKind::InvalidSignature => invalid("signature", "the OIDC token's signature does not verify"),
                ErrorKind::InvalidAlgorithm => invalid("algorithm", "OIDC tokens must be signed with RS256"),
                _ => invalid("malformed", format!("the OIDC token is not acceptable: {e}")),
            })?
            .claims;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if claims.iat > now + LEEWAY_SECS as i64 {
            return Err(invalid(
                "not_yet_valid",
                "the OIDC token was issued in the future (iat)",
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(workflow_ref: &str) -> GithubClaims {
        GithubClaims {
            sub: "repo:o/r:ref:refs/tags/v1".into(),
            repository: "o/r".into(),
            repository_id: "1".into(),
            repository_owner: "o".into(),
            repository_owner_id: "2".into(),
            workflow_ref: workflow_ref.into(),
            job_workflow_ref: None,
            git_ref: "refs/tags/v1".into(),
            environment: None,
            event_name: "push".into(),
            run_id: "99".into(),
            jti: "j".into(),
            exp: 0,
            iat: 0,
        }
    }

    #[test]
    fn the_workflow_file_comes_from_workflow_ref() {
        let c = claims("o/r/.github/workflows/deploy-pack.yml@refs/tags/v1");
        assert_eq!(c.workflow_file(), Some("deploy-pack.yml"));
        assert_eq!(claims("o/r@refs/heads/main").workflow_file(), None);
        assert_eq!(c.actor(), "github:o/r workflow deploy-pack.yml run 99");
    }
}

/// Properties of OIDC token parsing: any token is verified claims or a 401 `oidc_invalid`
/// with a machine reason (never a panic, never a key fetch for a token that cannot be a JWT),
/// and the time claims are enforced with exactly the configured leeway.
#[cfg(test)]
mod props {
    use jsonwebtoken::{EncodingKey, Header};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::test_support::{any_bytes, hostile_string, refusal};

    const ISSUER: &str = "https://issuer.test";
    const AUDIENCE: &str = "atlas-hub";
    const KEY: &[u8] = include_bytes!("../../tests/fixtures/issuer-key.der");
    const JWK: &str = include_str!("../../tests/fixtures/issuer-jwk.json");

    /// A verifier that knows the fixture key as `k1` and fetched its keys just now, so an
    /// unknown `kid` is refused without any network I/O.
    fn verifier() -> OidcVerifier {
        let v = OidcVerifier::new(ISSUER, Some(AUDIENCE));
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(JWK).unwrap();
        {
            let mut cache = v.cache.lock().unwrap();
            cache
                .keys
                .insert("k1".into(), DecodingKey::from_jwk(&jwk).unwrap());
            cache.fetched_at = Some(Instant::now());
        }
        v
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn good_claims() -> Value {
        json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "repo:octo/packs:ref:refs/tags/v1",
            "repository": "octo/packs", "repository_id": "101", "repository_owner": "octo",
            "repository_owner_id": "202",
            "workflow_ref": "octo/packs/.github/workflows/deploy.yml@refs/tags/v1",
            "ref": "refs/tags/v1", "event_name": "push", "run_id": "7", "jti": "j-1",
            "exp": now() + 300, "nbf": now() - 5, "iat": now() - 5,
        })
    }

    fn sign(claims: &Value, kid: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(KEY)).unwrap()
    }

    fn verify(token: &str) -> Result<GithubClaims, ApiError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(verifier().verify(token))
    }

    fn reason(e: &ApiError) -> String {
        e.extra
            .as_ref()
            .and_then(|x| x["reason"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            hostile_string(24).prop_map(Value::from),
            proptest::collection::vec(hostile_string(6).prop_map(Value::from), 0..3)
                .prop_map(Value::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_token_text_is_refused_before_a_key_is_needed(s in prop_oneof![
            hostile_string(120),
            (any_bytes(60), any_bytes(60), any_bytes(60)).prop_map(|(a, b, c)| format!("{}.{}.{}", b64(&a), b64(&b), b64(&c))),
            proptest::collection::vec("[A-Za-z0-9_=-]{0,20}", 0..6).prop_map(|s| s.join(".")),
        ]) {
            match parse_header(&s) {
                Ok(kid) => prop_assert!(!kid.is_empty() && kid.len() <= 256),
                Err(e) => {
                    prop_assert_eq!(refusal(&e), (401, "oidc_invalid"));
                    let r = reason(&e);
                    prop_assert!(["malformed", "algorithm", "unknown_key"].contains(&r.as_str()), "{r}");
                }
            }
        }

        #[test]
        fn headers_need_rs256_and_a_key_id(
            alg in prop_oneof![Just(Value::from("RS256")), Just(Value::from("none")), Just(Value::from("HS256")),
                               Just(Value::from("rs256")), json_leaf()],
            kid in prop::option::of(prop_oneof![hostile_string(300).prop_map(Value::from), json_leaf()]),
            extra in proptest::collection::btree_map("[a-z]{1,5}", json_leaf(), 0..3),
        ) {
            let mut header = serde_json::Map::new();
            header.extend(extra.into_iter().filter(|(k, _)| k != "alg" && k != "kid"));
            header.insert("alg".into(), alg.clone());
            if let Some(kid) = &kid {
                header.insert("kid".into(), kid.clone());
            }
            let token = format!("{}.{}.", b64(Value::Object(header).to_string().as_bytes()), b64(b"{}"));
            let result = parse_header(&token);
            match (&alg, &kid) {
                (Value::String(a), Some(Value::String(k))) if a == "RS256" && !k.is_empty() && k.len() <= 256 => {
                    prop_assert_eq!(result.unwrap(), k.clone());
                }
                (Value::String(a), None | Some(Value::Null) | Some(Value::String(_))) if a == "RS256" => {
                    prop_assert_eq!(reason(&result.unwrap_err()), "unknown_key");
                }
                (Value::String(_), None | Some(Value::Null) | Some(Value::String(_))) => {
                    prop_assert_eq!(reason(&result.unwrap_err()), "algorithm");
                }
                _ => prop_assert_eq!(reason(&result.unwrap_err()), "malformed"),
            }
        }
    }

    proptest! {
        // Each case signs and verifies with RSA-2048.
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn signed_claims_of_any_shape_verify_or_are_refused(
            drop in proptest::collection::btree_set(0usize..16, 0..3),
            replace in proptest::collection::btree_map(0usize..16, json_leaf(), 0..3),
        ) {
            let mut claims = good_claims();
            let names: Vec<String> = claims.as_object().unwrap().keys().cloned().collect();
            let map = claims.as_object_mut().unwrap();
            for i in &drop {
                map.remove(&names[i % names.len()]);
            }
            for (i, v) in &replace {
                map.insert(names[i % names.len()].clone(), v.clone());
            }
            match verify(&sign(&claims, "k1")) {
                Ok(c) => {
                    // Only what the Hub checks may have changed and still verify.
                    prop_assert_eq!(claims["iss"].as_str(), Some(ISSUER));
                    prop_assert_eq!(c.jti.as_str(), claims["jti"].as_str().unwrap());
                    prop_assert!(c.exp.saturating_add(LEEWAY_SECS as i64) > now());
                }
                Err(e) => prop_assert_eq!(refusal(&e), (401, "oidc_invalid")),
            }
        }

        #[test]
        fn time_claims_hold_with_the_leeway(offset in -600i64..600, which in 0usize..3) {
            let leeway = LEEWAY_SECS as i64;
            // Clear of the boundary, so a second ticking during the test cannot flip it.
            prop_assume!((offset.abs() - leeway).abs() > 3);
            let mut claims = good_claims();
            let (name, valid, refused_as) = match which {
                0 => ("exp", offset > -leeway, "expired"),
                1 => ("nbf", offset < leeway, "not_yet_valid"),
                _ => ("iat", offset < leeway, "not_yet_valid"),
            };
            claims[name] = json!(now() + offset);
            if name == "exp" {
                // iat/nbf before exp, as issuers send them.
                claims["iat"] = json!(now() + offset - 600);
                claims["nbf"] = json!(now() + offset - 600);
            }
            let result = verify(&sign(&claims, "k1"));
            if valid {
                prop_assert!(result.is_ok(), "{name} {offset}: {:?}", result.err().map(|e| e.detail));
            } else {
                prop_assert_eq!(reason(&result.unwrap_err()), refused_as);
            }
        }

        #[test]
        fn audience_issuer_key_and_signature_are_checked(
            aud in hostile_string(20), iss in hostile_string(20), kid in "[a-z0-9]{1,8}",
            flip in 0usize..64,
        ) {
            prop_assume!(aud != AUDIENCE && iss != ISSUER && kid != "k1");
            let mut claims = good_claims();
            claims["aud"] = json!(aud);
            prop_assert_eq!(reason(&verify(&sign(&claims, "k1")).unwrap_err()), "audience");
            let mut claims = good_claims();
            claims["iss"] = json!(iss);
            prop_assert_eq!(reason(&verify(&sign(&claims, "k1")).unwrap_err()), "issuer");
            prop_assert_eq!(reason(&verify(&sign(&good_claims(), &kid)).unwrap_err()), "unknown_key");
            // One character of the signature changed.
            let token = sign(&good_claims(), "k1");
            let at = token.rfind('.').unwrap() + 1 + flip % 300;
            let mut bytes = token.into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let token = String::from_utf8(bytes).unwrap();
            let r = reason(&verify(&token).unwrap_err());
            prop_assert!(r == "signature" || r == "malformed", "{r}");
        }
    }

    #[test]
    fn the_workflow_file_is_the_part_after_the_workflows_folder() {
        let mut c: GithubClaims = serde_json::from_value(good_claims()).unwrap();
        for (workflow_ref, file) in [
            ("o/r/.github/workflows/a.yml@refs/heads/main", Some("a.yml")),
            ("o/r/.github/workflows/a.yml", Some("a.yml")),
            ("", None),
            ("@", None),
            ("/.github/workflows/@x", Some("")),
        ] {
            c.workflow_ref = workflow_ref.into();
            assert_eq!(c.workflow_file(), file, "{workflow_ref}");
        }
    }
}
