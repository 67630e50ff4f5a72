//! Operator sign-in: the authorization code flow with each configured provider, from the
//! redirect to the provider ([`Providers::begin`]) to the identity its callback proves
//! ([`Providers::finish`]), and the re-check of a session's GitHub memberships
//! ([`Providers::recheck`]).
//!
//! - GitHub ([`github`]): OAuth 2.0 code + PKCE + `state` (the `oauth2` crate); who the person
//!   is, and their organizations and teams, from the REST API.
//! - Microsoft Entra ID and any OpenID Connect issuer ([`openid`]): code + PKCE + `state` +
//!   `nonce`, the `id_token` verified by the `openidconnect` crate (signature from the
//!   issuer's JWKS, issuer, audience, expiry, nonce); for Entra, the issuer of the one
//!   allowed tenant the flow was sent to.
//!
//! A flow in progress lives in PostgreSQL (`signin_flows`), keyed by the digest of a random
//! value in the browser's `__Host-atlas-signin` cookie, so any function instance can finish
//! it, and it is deleted by the first callback that names it. What fails is refused with a
//! [`Reason`] of its own, written to the request log.

pub mod github;
pub mod openid;
pub mod seal;

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use tokio_postgres::types::Type;

use crate::config::{Config, Secret, SigninConfig};
use crate::db::Sql;
use crate::domain::sessions::{self, Lifetimes, Operator};
use crate::domain::tokens;
use crate::error::{ApiError, Code};

/// How long a browser has between the redirect to the provider and the callback.
const FLOW_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// Where the browser goes after sign-in when the flow named nowhere.
pub const DEFAULT_RETURN_TO: &str = "/console";

/// A sign-in provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderId {
    Github,
    Microsoft,
    Oidc,
}

impl ProviderId {
    pub const ALL: [ProviderId; 3] = [ProviderId::Github, ProviderId::Microsoft, ProviderId::Oidc];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Github => "github",
            ProviderId::Microsoft => "microsoft",
            ProviderId::Oidc => "oidc",
        }
    }
}

/// Why a sign-in was refused: each has its own name in the request log (`reason`) and in
/// the problem's `reason` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The callback came without the flow cookie, or its flow expired or was used.
    FlowUnknown,
    /// The callback's `state` is not the flow's.
    StateMismatch,
    /// The provider's answer names another issuer (RFC 9207 `iss`).
    IssuerMismatch,
    /// The provider said no (`?error=access_denied`…).
    ProviderRefused,
    /// The code was exchanged before (the Hub keeps the digests of codes it used).
    CodeReused,
    /// The token endpoint refused the code (expired, for another client, or with a PKCE
    /// verifier it does not match, when the provider does not say which).
    CodeRejected,
    /// The token endpoint refused the PKCE verifier.
    PkceMismatch,
    /// The `id_token`'s nonce is not the flow's (a token of another sign-in, replayed).
    NonceMismatch,
    /// The `id_token` comes from a tenant this Hub does not allow, or not the flow's.
    WrongTenant,
    WrongIssuer,
    WrongAudience,
    Expired,
    /// The `id_token` has no signature.
    Unsigned,
    /// The `id_token` says `alg: none`.
    AlgNone,
    /// The signature does not verify with any of the issuer's keys.
    BadSignature,
    /// Something else about the `id_token` or the token response is wrong.
    TokenInvalid,
    /// No access rule grants the person a role.
    NoRule,
    /// `returnTo` is not a path on this Hub.
    UnsafeReturnTo,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FlowUnknown => "flow_unknown",
            Reason::StateMismatch => "state_mismatch",
            Reason::IssuerMismatch => "issuer_mismatch",
            Reason::ProviderRefused => "provider_refused",
            Reason::CodeReused => "code_reused",
            Reason::CodeRejected => "code_rejected",
            Reason::PkceMismatch => "pkce_mismatch",
            Reason::NonceMismatch => "nonce_mismatch",
            Reason::WrongTenant => "wrong_tenant",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::Expired => "expired",
            Reason::Unsigned => "unsigned",
            Reason::AlgNone => "alg_none",
            Reason::BadSignature => "bad_signature",
            Reason::TokenInvalid => "token_invalid",
            Reason::NoRule => "no_rule",
            Reason::UnsafeReturnTo => "unsafe_return_to",
        }
    }

    /// The problem that says so: 400 for a request that cannot be a sign-in, 403 for a
    /// person without a rule, 401 for everything a provider or an attacker got wrong.
    pub fn refuse(self, detail: impl Into<String>) -> ApiError {
        let status = match self {
            Reason::UnsafeReturnTo => StatusCode::BAD_REQUEST,
            Reason::NoRule => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, Code::SigninFailed, detail)
            .with_extra(serde_json::json!({ "reason": self.as_str() }))
    }
}

/// Who a provider says signed in.
#[derive(Debug)]
pub struct Identity {
    /// How the audit log names them: `github:octocat`, `microsoft:<tenant>/<oid>`,
    /// `oidc:<e-mail or subject>`.
    pub person: String,
    /// What the rules match (`github_user:octocat`, `github_org:acme`, …).
    pub claims: Vec<String>,
    /// The provider's access token, kept sealed for re-checks (GitHub only).
    pub token: Option<Secret>,
}

/// A provider's answer at the callback, as the query carried it.
#[derive(Debug, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207's `iss`, when the provider sends it.
    pub iss: Option<String>,
}

/// One sign-in button.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    /// `github`, `microsoft`, `oidc` or `local`.
    pub id: String,
    /// The button's label.
    pub name: String,
    /// Where the button goes (add `?returnTo=/path`).
    pub sign_in_url: String,
}

/// A flow as stored between the redirect and the callback.
struct Flow {
    provider: String,
    state: String,
    pkce_verifier: String,
    nonce: String,
    tenant: Option<String>,
    return_to: String,
}

/// The configured providers of one instance; discovery documents and keys are fetched on
/// first use and kept (nothing is fetched at start).
pub struct Providers {
    config: SigninConfig,
    hub_url: String,
    http: OnceLock<reqwest::Client>,
    oidc: openid::Discovery,
}

impl Providers {
    /// The providers `config` turns on (none at all is fine: sign-in is then off).
    pub fn new(config: &Config) -> Self {
        Providers {
            config: config.signin.clone(),
            hub_url: config.hub_url.clone(),
            http: OnceLock::new(),
            oidc: openid::Discovery::default(),
        }
    }

    /// The client every provider call goes through: no redirects followed (a provider's
    /// endpoints answer directly; following would let a bad answer point the Hub anywhere),
    /// short timeouts.
    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(8))
                .user_agent(concat!("atlas-hub/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default()
        })
    }

    /// The sign-in configuration these providers come from.
    pub fn config(&self) -> &SigninConfig {
        &self.config
    }

    /// Whether `provider` is configured.
    pub fn enabled(&self, provider: ProviderId) -> bool {
        match provider {
            ProviderId::Github => self.config.github.is_some(),
            ProviderId::Microsoft => self.config.microsoft.is_some(),
            ProviderId::Oidc => self.config.oidc.is_some(),
        }
    }

    /// The sign-in buttons: one per configured provider.
    pub fn list(&self) -> Vec<ProviderInfo> {
        let button = |id: ProviderId, name: &str| ProviderInfo {
            id: id.as_str().to_owned(),
            name: name.to_owned(),
            sign_in_url: format!("/api/v1/auth/signin/{}", id.as_str()),
        };
        let mut list = Vec::new();
        if self.config.github.is_some() {
            list.push(button(ProviderId::Github, "GitHub"));
        }
        if self.config.microsoft.is_some() {
            list.push(button(ProviderId::Microsoft, "Microsoft"));
        }
        if let Some(oidc) = &self.config.oidc {
            list.push(button(ProviderId::Oidc, &oidc.name));
        }
        list
    }

    /// The callback URL registered with `provider`.
    pub fn redirect_uri(&self, provider: ProviderId) -> String {
        format!(
            "{}/api/v1/auth/callback/{}",
            self.hub_url,
            provider.as_str()
        )
    }

    /// Starts a sign-in: stores the flow and returns the provider's authorization URL and
    /// the value of the browser's flow cookie. `tenant` picks one of several allowed
    /// Microsoft tenants (default: the first).
    pub async fn begin(
        &self,
        db: &impl Sql,
        pepper: &Secret,
        provider: ProviderId,
        return_to: &str,
        tenant: Option<&str>,
    ) -> Result<(String, Secret), ApiError> {
        let state = tokens::random_secret();
        let nonce = tokens::random_secret();
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        let redirect_uri = self.redirect_uri(provider);
        let (url, tenant) = match provider {
            ProviderId::Github => {
                let config = self.config.github.as_ref().ok_or_else(|| off(provider))?;
                let url = github::authorize_url(config, &redirect_uri, &state, challenge)?;
                (url, None)
            }
            ProviderId::Microsoft => {
                let config = self
                    .config
                    .microsoft
                    .as_ref()
                    .ok_or_else(|| off(provider))?;
                let tenant = match tenant {
                    None => config.tenants[0].clone(),
                    Some(t) => {
                        let t = t.to_ascii_lowercase();
                        if !config.tenants.contains(&t) {
                            return Err(ApiError::invalid(format!(
                                "tenant {} is not one this Hub allows",
                                crate::error::quoted(&t)
                            )));
                        }
                        t
                    }
                };
                let client = openid::Client {
                    issuer: config.issuer(&tenant),
                    client_id: &config.client_id,
                    client_secret: &config.client_secret,
                };
                let url = self
                    .oidc
                    .authorize_url(
                        self.http(),
                        &client,
                        &redirect_uri,
                        &state,
                        &nonce,
                        challenge,
                    )
                    .await?;
                (url, Some(tenant))
            }
            ProviderId::Oidc => {
                let config = self.config.oidc.as_ref().ok_or_else(|| off(provider))?;
                let client = openid::Client {
                    issuer: config.issuer.clone(),
                    client_id: &config.client_id,
                    client_secret: &config.client_secret,
                };
                let url = self
                    .oidc
                    .authorize_url(
                        self.http(),
                        &client,
                        &redirect_uri,
                        &state,
                        &nonce,
                        challenge,
                    )
                    .await?;
                (url, None)
            }
        };
        let cookie = tokens::random_secret();
        let expires_at = time::OffsetDateTime::now_utc() + FLOW_LIFETIME;
        // Flows nobody finished: cheap to drop here (indexed), no scheduler needed.
        db.query(
            "DELETE FROM signin_flows WHERE expires_at < now() - interval '1 hour'",
            &[],
        )
        .await?;
        db.query(
            "INSERT INTO signin_flows
                (digest, provider, state, pkce_verifier, nonce, tenant, return_to, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                (&tokens::digest(pepper, &cookie), Type::BYTEA),
                (&provider.as_str(), Type::TEXT),
                (&state, Type::TEXT),
                (&verifier.secret().as_str(), Type::TEXT),
                (&nonce, Type::TEXT),
                (&tenant, Type::TEXT),
                (&return_to, Type::TEXT),
                (&expires_at, Type::TIMESTAMPTZ),
            ],
        )
        .await?;
        Ok((url, Secret::new(cookie)))
    }

    /// Finishes a sign-in at the callback: the flow named by the browser's cookie (used up
    /// here, whatever follows), its `state`, the code exchanged with the flow's PKCE
    /// verifier, and the identity the provider proves. Returns it with the flow's
    /// `returnTo`.
    pub async fn finish(
        &self,
        db: &impl Sql,
        pepper: &Secret,
        provider: ProviderId,
        flow_cookie: Option<&str>,
        callback: &Callback,
    ) -> Result<(Identity, String), ApiError> {
        let flow = match flow_cookie.filter(|c| !c.is_empty() && c.len() <= 200) {
            Some(cookie) => take_flow(db, pepper, cookie).await?,
            None => None,
        };
        let Some(flow) = flow.filter(|f| f.provider == provider.as_str()) else {
            return Err(Reason::FlowUnknown.refuse(
                "this sign-in was not started here, has expired or was already used; \
                 start again from the sign-in page",
            ));
        };
        let state_matches = callback
            .state
            .as_deref()
            .is_some_and(|s| constant_time_eq(s.as_bytes(), flow.state.as_bytes()));
        if !state_matches {
            return Err(Reason::StateMismatch
                .refuse("the provider's answer does not belong to this sign-in (state mismatch)"));
        }
        if let Some(error) = &callback.error {
            return Err(Reason::ProviderRefused.refuse(format!(
                "{} refused the sign-in: {}{}",
                provider.as_str(),
                crate::error::quoted(error),
                callback
                    .error_description
                    .as_deref()
                    .map(|d| format!(" ({})", crate::error::quoted(d)))
                    .unwrap_or_default()
            )));
        }
        let Some(code) = callback
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2000)
        else {
            return Err(Reason::CodeRejected.refuse("the provider's answer has no code"));
        };
        if !first_use(db, pepper, code).await? {
            return Err(Reason::CodeReused.refuse(
                "this authorization code was used before; start again from the sign-in page",
            ));
        }
        let redirect_uri = self.redirect_uri(provider);
        let identity = match provider {
            ProviderId::Github => {
                let config = self.config.github.as_ref().ok_or_else(|| off(provider))?;
                github::finish(
                    self.http(),
                    config,
                    &redirect_uri,
                    code,
                    &flow.pkce_verifier,
                )
                .await?
            }
            ProviderId::Microsoft => {
                let config = self
                    .config
                    .microsoft
                    .as_ref()
                    .ok_or_else(|| off(provider))?;
                let tenant = flow.tenant.clone().unwrap_or_default();
                let client = openid::Client {
                    issuer: config.issuer(&tenant),
                    client_id: &config.client_id,
                    client_secret: &config.client_secret,
                };
                check_iss(callback, &client.issuer)?;
                let token = self
                    .oidc
                    .finish(
                        self.http(),
                        &client,
                        &redirect_uri,
                        code,
                        &flow.pkce_verifier,
                        &flow.nonce,
                        Some((&config.authority, &tenant)),
                    )
                    .await?;
                openid::microsoft_identity(&token, &tenant)?
            }
            ProviderId::Oidc => {
                let config = self.config.oidc.as_ref().ok_or_else(|| off(provider))?;
                let client = openid::Client {
                    issuer: config.issuer.clone(),
                    client_id: &config.client_id,
                    client_secret: &config.client_secret,
                };
                check_iss(callback, &client.issuer)?;
                let token = self
                    .oidc
                    .finish(
                        self.http(),
                        &client,
                        &redirect_uri,
                        code,
                        &flow.pkce_verifier,
                        &flow.nonce,
                        None,
                    )
                    .await?;
                openid::oidc_identity(&token, &config.issuer)
            }
        };
        Ok((identity, flow.return_to))
    }

    /// The operator a session cookie names, if the session is live and a rule grants them
    /// a role. When the session's GitHub memberships are due for a re-check
    /// ([`sessions::RECHECK`]), they are read again first: someone removed from an
    /// organization, or whose token GitHub no longer accepts, loses the session here. When
    /// GitHub cannot be asked, the request is refused (503), never let through unchecked.
    pub async fn operator(
        &self,
        db: &impl Sql,
        pepper: &Secret,
        cookie: &str,
    ) -> Result<Option<Operator>, ApiError> {
        let lifetimes = Lifetimes::from(&self.config);
        let Some(live) = sessions::lookup(db, pepper, cookie, lifetimes).await? else {
            return Ok(None);
        };
        let Some(sealed) = live.recheck else {
            return Ok(Some(live.operator));
        };
        let id = live.operator.session_id;
        let now = match self
            .recheck(pepper, &live.operator.person, &live.provider, &sealed)
            .await?
        {
            Some(claims) => {
                sessions::set_claims(db, id, &claims).await?;
                // The role follows the memberships read just now; none may be left.
                sessions::authenticate(db, pepper, cookie, lifetimes).await?
            }
            None => None,
        };
        if now.is_none() {
            sessions::revoke(db, id, None).await?;
        }
        Ok(now)
    }

    /// A session's claims as its provider states them now, read with the token it keeps
    /// (sealed for `person`); `None` when the provider no longer vouches for the person (the
    /// token was revoked) or the token does not open.
    pub async fn recheck(
        &self,
        pepper: &Secret,
        person: &str,
        provider: &str,
        sealed: &[u8],
    ) -> Result<Option<Vec<String>>, ApiError> {
        let Some(token) = seal::open(pepper, person, sealed) else {
            return Ok(None);
        };
        match (ProviderId::parse(provider), &self.config.github) {
            (Some(ProviderId::Github), Some(config)) => {
                github::claims_now(self.http(), config, &token, person).await
            }
            // The provider was switched off since: nothing vouches for the session any more.
            _ => Ok(None),
        }
    }
}

/// 404 for a provider this Hub does not have configured.
fn off(provider: ProviderId) -> ApiError {
    ApiError::not_found(format!(
        "sign-in with {} is not configured on this Hub",
        provider.as_str()
    ))
}

/// RFC 9207: when the authorization response names its issuer, it must be the one the flow
/// was sent to (a mix-up between providers is refused before any code is exchanged).
fn check_iss(callback: &Callback, issuer: &str) -> Result<(), ApiError> {
    match callback.iss.as_deref() {
        Some(iss) if iss.trim_end_matches('/') != issuer.trim_end_matches('/') => {
            Err(Reason::IssuerMismatch.refuse(format!(
                "the authorization response comes from {}, not from {issuer}",
                crate::error::quoted(iss)
            )))
        }
        _ => Ok(()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Records `code` as exchanged; whether it was the first time. Codes older than a day are
/// forgotten (providers let a code live minutes).
async fn first_use(db: &impl Sql, pepper: &Secret, code: &str) -> Result<bool, ApiError> {
    db.query(
        "DELETE FROM signin_codes WHERE used_at < now() - interval '1 day'",
        &[],
    )
    .await?;
    Ok(db
        .query_opt(
            "INSERT INTO signin_codes (digest) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1",
            &[(
                &tokens::digest(pepper, &format!("code\0{code}")),
                Type::BYTEA,
            )],
        )
        .await?
        .is_some())
}

/// The flow a cookie value names, deleted as it is read (a callback is answered once), if it
/// has not expired.
async fn take_flow(db: &impl Sql, pepper: &Secret, cookie: &str) -> Result<Option<Flow>, ApiError> {
    let row = db
        .query_opt(
            "DELETE FROM signin_flows WHERE digest = $1
             RETURNING provider, state, pkce_verifier, nonce, tenant, return_to,
                       expires_at > now() AS live",
            &[(&tokens::digest(pepper, cookie), Type::BYTEA)],
        )
        .await?;
    Ok(row.filter(|r| r.get::<_, bool>("live")).map(|r| Flow {
        provider: r.get("provider"),
        state: r.get("state"),
        pkce_verifier: r.get("pkce_verifier"),
        nonce: r.get("nonce"),
        tenant: r.get("tenant"),
        return_to: r.get("return_to"),
    }))
}

/// `returnTo` when it is a path on this Hub (`/console/products?x=1`), or why not: no
/// scheme or host (`https://evil.example`), no `//host` or `/\host` (which browsers read as
/// another host), no backslash or control character anywhere.
pub fn return_to(value: Option<&str>) -> Result<String, ApiError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_RETURN_TO.to_owned());
    };
    let safe = value.starts_with('/')
        && !value.starts_with("//")
        && value.len() <= 2000
        && !value
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace());
    if safe {
        Ok(value.to_owned())
    } else {
        Err(Reason::UnsafeReturnTo.refuse(format!(
            "returnTo must be a path on this Hub (such as /console), not {}",
            crate::error::quoted(value)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_a_path_on_this_hub_or_refused() {
        assert_eq!(return_to(None).unwrap(), DEFAULT_RETURN_TO);
        assert_eq!(return_to(Some("")).unwrap(), DEFAULT_RETURN_TO);
        for ok in ["/", "/console", "/console/products/launcher?tab=history#x"] {
            assert_eq!(return_to(Some(ok)).unwrap(), ok);
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/ok\r\nSet-Cookie: x=1",
            "/\tevil",
            "http:/evil.example",
        ] {
            let e = return_to(Some(bad)).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code.as_str()),
                (400, "signin_failed"),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_reason_has_its_own_name() {
        let all = [
            Reason::FlowUnknown,
            Reason::StateMismatch,
            Reason::IssuerMismatch,
            Reason::ProviderRefused,
            Reason::CodeReused,
            Reason::CodeRejected,
            Reason::PkceMismatch,
            Reason::NonceMismatch,
            Reason::WrongTenant,
            Reason::WrongIssuer,
            Reason::WrongAudience,
            Reason::Expired,
            Reason::Unsigned,
            Reason::AlgNone,
            Reason::BadSignature,
            Reason::TokenInvalid,
            Reason::NoRule,
            Reason::UnsafeReturnTo,
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), all.len());
    }
}
