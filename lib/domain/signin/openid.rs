//! OpenID Connect sign-in (Microsoft Entra ID and any issuer), on the `openidconnect` crate:
//! discovery, the authorization URL (code + PKCE S256 + `state` + `nonce`), the code
//! exchange, and the `id_token` verified by the crate (signature from the issuer's JWKS, RS256
//! only, issuer, audience, expiry, nonce). What a refusal means is named by [`Reason`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::StatusCode;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError,
};
use serde_json::Value;

use super::{Identity, Reason};
use crate::config::Secret;
use crate::domain::sessions::RuleKind;
use crate::error::{ApiError, Code};

/// How long a discovery document (and its keys) is used before it is fetched again; a key
/// the cached set lacks makes the next verification fetch it at once.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// One OpenID Connect client: an issuer and this Hub's registration with it.
pub struct Client<'a> {
    pub issuer: String,
    pub client_id: &'a str,
    pub client_secret: &'a Secret,
}

/// Discovery documents (with their key sets) per issuer, fetched on first use.
#[derive(Default)]
pub struct Discovery {
    cache: tokio::sync::Mutex<HashMap<String, (Instant, Arc<CoreProviderMetadata>)>>,
}

/// 503 `provider_unavailable`: the provider could not be asked.
fn unavailable(issuer: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::ProviderUnavailable,
        format!("the sign-in provider {issuer} could not be reached; try again shortly"),
    )
    .with_cause(format!("{issuer}: {why}"))
}

impl Discovery {
    /// `issuer`'s metadata: cached, or fetched when missing, stale or `refresh`.
    async fn metadata(
        &self,
        http: &reqwest::Client,
        issuer: &str,
        refresh: bool,
    ) -> Result<Arc<CoreProviderMetadata>, ApiError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, metadata)) = cache.get(issuer)
            && !refresh
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(metadata.clone());
        }
        let url = IssuerUrl::new(issuer.to_owned()).map_err(|e| unavailable(issuer, e))?;
        let metadata = CoreProviderMetadata::discover_async(url, http)
            .await
            .map_err(|e| unavailable(issuer, error_chain(&e)))?;
        let metadata = Arc::new(metadata);
        cache.insert(issuer.to_owned(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    async fn client(
        &self,
        http: &reqwest::Client,
        c: &Client<'_>,
        redirect_uri: &str,
        refresh: bool,
    ) -> Result<
        openidconnect::Client<
            openidconnect::EmptyAdditionalClaims,
            openidconnect::core::CoreAuthDisplay,
            openidconnect::core::CoreGenderClaim,
            openidconnect::core::CoreJweContentEncryptionAlgorithm,
            openidconnect::core::CoreJsonWebKey,
            openidconnect::core::CoreAuthPrompt,
            openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
            openidconnect::core::CoreTokenResponse,
            openidconnect::core::CoreTokenIntrospectionResponse,
            openidconnect::core::CoreRevocableToken,
            openidconnect::core::CoreRevocationErrorResponse,
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        ApiError,
    > {
        let metadata = self.metadata(http, &c.issuer, refresh).await?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| ApiError::internal(format!("redirect URI {redirect_uri}: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(c.client_id.to_owned()),
            Some(ClientSecret::new(c.client_secret.expose().to_owned())),
        )
        .set_redirect_uri(redirect))
    }

    /// The provider's authorization URL for a flow with these `state`, `nonce` and PKCE
    /// challenge.
    pub async fn authorize_url(
        &self,
        http: &reqwest::Client,
        c: &Client<'_>,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        challenge: PkceCodeChallenge,
    ) -> Result<String, ApiError> {
        let client = self.client(http, c, redirect_uri, false).await?;
        let (state, nonce) = (state.to_owned(), nonce.to_owned());
        let (url, _, _) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(url.into())
    }

    /// Exchanges `code` with the flow's PKCE verifier and verifies the `id_token` against
    /// the flow's nonce; the verified claims. `tenancy` (Entra: the authority and the flow's
    /// tenant) names a token of another tenant as such.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        http: &reqwest::Client,
        c: &Client<'_>,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
        nonce: &str,
        tenancy: Option<(&str, &str)>,
    ) -> Result<Value, ApiError> {
        let client = self.client(http, c, redirect_uri, false).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| unavailable(&c.issuer, e))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(http)
            .await
            .map_err(|e| exchange_refused(&c.issuer, e))?;
        let id_token = openidconnect::TokenResponse::id_token(&response).ok_or_else(|| {
            Reason::TokenInvalid.refuse("the provider's token response has no id_token")
        })?;
        let raw = id_token.to_string();
        check_header(&raw)?;
        let nonce = Nonce::new(nonce.to_owned());
        let verified = match id_token.claims(&client.id_token_verifier(), &nonce) {
            // A key the cached set lacks: the issuer rotated keys; fetch them once and retry.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let client = self.client(http, c, redirect_uri, true).await?;
                id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map(|_| ())
            }
            other => other.map(|_| ()),
        };
        verified.map_err(|e| claims_refused(&e, &raw, tenancy))?;
        payload(&raw)
            .ok_or_else(|| Reason::TokenInvalid.refuse("the id_token's claims do not parse"))
    }
}

/// Every error in a chain, joined (reqwest's own message rarely says why).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What a refused code exchange means.
fn exchange_refused<RE: std::error::Error + 'static>(
    issuer: &str,
    e: RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> ApiError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let description = r.error_description().cloned().unwrap_or_default();
            let reason = if description.to_ascii_lowercase().contains("pkce")
                || description.contains("code_verifier")
            {
                Reason::PkceMismatch
            } else {
                Reason::CodeRejected
            };
            reason.refuse(format!(
                "the provider refused the code: {} {}",
                r.error().as_ref(),
                crate::error::quoted(&description)
            ))
        }
        // The response did not parse; an id_token the crate cannot even read is still
        // named for what it is when it can be found.
        RequestTokenError::Parse(e, body) => {
            let raw = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("id_token")?.as_str().map(str::to_owned));
            match raw.map(|raw| check_header(&raw)) {
                Some(Err(refusal)) => refusal,
                _ => Reason::TokenInvalid
                    .refuse(format!("the provider's token response does not parse: {e}")),
            }
        }
        RequestTokenError::Request(e) => unavailable(issuer, error_chain(&e)),
        RequestTokenError::Other(e) => unavailable(issuer, e),
    }
}

/// Refuses an id_token whose header says `alg: none` or that has no signature, before any
/// verification: those are forgeries, and each is named as such.
fn check_header(raw: &str) -> Result<(), ApiError> {
    let mut parts = raw.split('.');
    let header = parts.next().and_then(decode_segment);
    let signature = parts.nth(1).unwrap_or_default();
    let alg = header
        .as_ref()
        .and_then(|h| h.get("alg"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if alg.eq_ignore_ascii_case("none") {
        return Err(Reason::AlgNone.refuse("the id_token is not signed (alg: none)"));
    }
    if signature.is_empty() {
        return Err(Reason::Unsigned.refuse("the id_token carries no signature"));
    }
    Ok(())
}

fn decode_segment(segment: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The claims of a JWT, unverified: read only after the crate verified the token, or to
/// name why it refused one.
fn payload(raw: &str) -> Option<Value> {
    raw.split('.').nth(1).and_then(decode_segment)
}

/// What a refused `id_token` means. For Entra (`tenancy`: authority and the flow's tenant),
/// an issuer of the same authority with another tenant is a token of another tenant: Entra
/// signs every tenant's tokens with the same keys, so the issuer is what tells them apart.
fn claims_refused(
    e: &ClaimsVerificationError,
    raw: &str,
    tenancy: Option<(&str, &str)>,
) -> ApiError {
    use ClaimsVerificationError as E;
    use SignatureVerificationError as S;
    let (reason, what) = match e {
        E::Expired(_) => (Reason::Expired, "the id_token has expired"),
        E::InvalidAudience(_) => (Reason::WrongAudience, "the id_token is for another client"),
        E::InvalidIssuer(_) => (
            Reason::WrongIssuer,
            "the id_token comes from another issuer",
        ),
        E::InvalidNonce(_) => (
            Reason::NonceMismatch,
            "the id_token belongs to another sign-in (nonce mismatch)",
        ),
        E::SignatureVerification(S::NoSignature) => {
            (Reason::Unsigned, "the id_token carries no signature")
        }
        E::SignatureVerification(S::DisallowedAlg(_) | S::UnsupportedAlg(_)) => (
            Reason::BadSignature,
            "the id_token is signed with an algorithm this Hub does not accept",
        ),
        E::SignatureVerification(_) => (
            Reason::BadSignature,
            "the id_token's signature does not verify with the issuer's keys",
        ),
        _ => (Reason::TokenInvalid, "the id_token is not valid"),
    };
    if let (E::InvalidIssuer(_), Some((authority, tenant))) = (e, tenancy) {
        let iss = payload(raw).and_then(|p| claim(&p, "iss").map(str::to_owned));
        let other = iss.as_deref().and_then(|iss| {
            iss.strip_prefix(authority)?
                .strip_prefix('/')?
                .strip_suffix("/v2.0")
                .filter(|t| !t.contains('/') && !t.eq_ignore_ascii_case(tenant))
                .map(str::to_owned)
        });
        if let Some(other) = other {
            return Reason::WrongTenant.refuse(format!(
                "the id_token comes from tenant {}, not from the tenant {tenant} this sign-in \
                 was sent to",
                crate::error::quoted(&other)
            ));
        }
    }
    reason.refuse(format!("{what} ({e})"))
}

fn claim<'a>(claims: &'a Value, name: &str) -> Option<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A verified Entra `id_token` as an identity: `microsoft:<tenant>/<oid>`, with the tenant
/// and group claims. The `tid` must be the flow's tenant. Its `email` is not a claim: Entra
/// lets tenants set unverified addresses, so rules match tenants and groups only.
pub fn microsoft_identity(claims: &Value, tenant: &str) -> Result<Identity, ApiError> {
    let tid = claim(claims, "tid")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if tid != tenant {
        return Err(Reason::WrongTenant.refuse(format!(
            "the id_token's tenant {} is not the tenant {tenant} this sign-in was sent to",
            crate::error::quoted(&tid)
        )));
    }
    let oid = claim(claims, "oid")
        .or_else(|| claim(claims, "sub"))
        .unwrap_or_default();
    let mut list = vec![format!("{}:{tid}", RuleKind::MicrosoftTenant.as_str())];
    for group in claims
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Ok(c) = RuleKind::MicrosoftGroup.claim(&format!("{tid}/{group}")) {
            list.push(c);
        }
    }
    Ok(Identity {
        person: format!("microsoft:{tid}/{oid}"),
        claims: list,
        token: None,
    })
}

/// A verified `id_token` of a generic issuer as an identity: `oidc:<verified e-mail>` (or
/// `oidc:<subject>`), with the subject claim and, only when the issuer verified it, the
/// e-mail claim.
pub fn oidc_identity(claims: &Value, issuer: &str) -> Identity {
    let sub = claim(claims, "sub").unwrap_or_default();
    let mut list = Vec::new();
    if let Ok(c) = RuleKind::OidcSubject.claim(&format!("{issuer} {sub}")) {
        list.push(c);
    }
    let verified = claims.get("email_verified") == Some(&Value::Bool(true));
    let email = claim(claims, "email").filter(|_| verified);
    if let Some(c) = email.and_then(|e| RuleKind::OidcEmail.claim(e).ok()) {
        list.push(c);
    }
    Identity {
        person: format!("oidc:{}", email.unwrap_or(sub)),
        claims: list,
        token: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn reason(e: &ApiError) -> &str {
        e.extra.as_ref().unwrap()["reason"].as_str().unwrap()
    }

    #[test]
    fn unsigned_and_alg_none_tokens_are_named_before_verification() {
        let payload = segment(&serde_json::json!({"sub": "x"}));
        let none = format!(
            "{}.{payload}.",
            segment(&serde_json::json!({"alg": "none"}))
        );
        assert_eq!(reason(&check_header(&none).unwrap_err()), "alg_none");
        let unsigned = format!(
            "{}.{payload}.",
            segment(&serde_json::json!({"alg": "RS256"}))
        );
        assert_eq!(reason(&check_header(&unsigned).unwrap_err()), "unsigned");
        let signed = format!(
            "{}.{payload}.c2ln",
            segment(&serde_json::json!({"alg": "RS256"}))
        );
        assert!(check_header(&signed).is_ok());
    }

    #[test]
    fn identities_carry_only_claims_the_provider_vouches_for() {
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let c = serde_json::json!({"tid": tid, "oid": "o1", "sub": "s", "email": "ceo@victim.example",
            "groups": ["G1", "g2"]});
        let id = microsoft_identity(&c, tid).unwrap();
        assert_eq!(id.person, format!("microsoft:{tid}/o1"));
        assert_eq!(
            id.claims,
            [
                format!("microsoft_tenant:{tid}"),
                format!("microsoft_group:{tid}/g1"),
                format!("microsoft_group:{tid}/g2")
            ]
        );
        let other = microsoft_identity(&c, "00000000-0000-0000-0000-000000000000").unwrap_err();
        assert_eq!(reason(&other), "wrong_tenant");

        let unverified =
            serde_json::json!({"sub": "abc", "email": "a@b.example", "email_verified": false});
        let id = oidc_identity(&unverified, "https://idp.example");
        assert_eq!(id.person, "oidc:abc");
        assert_eq!(id.claims, ["oidc_subject:https://idp.example abc"]);
        let verified =
            serde_json::json!({"sub": "abc", "email": "A@B.example", "email_verified": true});
        let id = oidc_identity(&verified, "https://idp.example");
        assert_eq!(id.person, "oidc:A@B.example");
        assert_eq!(id.claims[1], "oidc_email:a@b.example");
    }
}
