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

use crate::http::ApiError;

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
    /// Owner login.
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
    /// Triggering event.
    pub event_name: String,
    /// Workflow run id.
    #[serde(default)]
    pub run_id: String,
    /// Token id (accepted once).
    pub jti: String,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Issued at.
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
    ApiError::new(StatusCode::UNAUTHORIZED, "oidc_invalid", detail)
        .with_extra(serde_json::json!({ "reason": reason }))
}

/// 403 `oidc_claims_mismatch` with a machine `reason`.
pub fn mismatch(reason: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "oidc_claims_mismatch", detail)
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
                "oidc_unavailable",
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
