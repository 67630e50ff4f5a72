//! GitHub sign-in: OAuth 2.0 authorization code with PKCE and `state` (the `oauth2` crate),
//! then who the person is and which organizations and teams they belong to, from the REST
//! API with their token (`read:user`, `read:org`). The same calls re-check a session's
//! memberships later ([`claims_now`]).

use http::StatusCode;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

use super::{Identity, Reason};
use crate::config::{GithubSignin, Secret};
use crate::domain::sessions::RuleKind;
use crate::error::{ApiError, Code};

/// Pages of organizations or teams read at most (100 each).
const MAX_PAGES: usize = 10;

fn unavailable(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::ProviderUnavailable,
        "GitHub could not be reached; try again shortly",
    )
    .with_cause(format!("github: {why}"))
}

fn urls(config: &GithubSignin) -> Result<(AuthUrl, TokenUrl), ApiError> {
    let bad = |e: oauth2::url::ParseError| ApiError::internal(format!("GitHub URL: {e}"));
    Ok((
        AuthUrl::new(format!("{}/login/oauth/authorize", config.web_url)).map_err(bad)?,
        TokenUrl::new(format!("{}/login/oauth/access_token", config.web_url)).map_err(bad)?,
    ))
}

/// Where the browser goes to authorize this Hub.
pub fn authorize_url(
    config: &GithubSignin,
    redirect_uri: &str,
    state: &str,
    challenge: PkceCodeChallenge,
) -> Result<String, ApiError> {
    let (auth, token) = urls(config)?;
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| ApiError::internal(format!("redirect URI {redirect_uri}: {e}")))?;
    let client = BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_auth_uri(auth)
        .set_token_uri(token)
        .set_redirect_uri(redirect);
    let state = state.to_owned();
    let (url, _) = client
        .authorize_url(move || CsrfToken::new(state))
        .add_scope(Scope::new("read:user".to_owned()))
        .add_scope(Scope::new("read:org".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    Ok(url.into())
}

/// Exchanges the code (client secret in the body, as GitHub takes it, and the PKCE
/// verifier) and reads who signed in.
pub async fn finish(
    http: &reqwest::Client,
    config: &GithubSignin,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> Result<Identity, ApiError> {
    let (auth, token_url) = urls(config)?;
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| ApiError::internal(format!("redirect URI {redirect_uri}: {e}")))?;
    let client = BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_client_secret(ClientSecret::new(config.client_secret.expose().to_owned()))
        .set_auth_uri(auth)
        .set_token_uri(token_url)
        .set_redirect_uri(redirect)
        .set_auth_type(AuthType::RequestBody);
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => refused(
                r.error().as_ref(),
                r.error_description().map(String::as_str),
            ),
            // GitHub answers a refused code with 200 and an error object, which is not a
            // token response: read the error from the body.
            RequestTokenError::Parse(_, body) => {
                #[derive(Deserialize)]
                struct GithubError {
                    error: String,
                    error_description: Option<String>,
                }
                match serde_json::from_slice::<GithubError>(&body) {
                    Ok(g) => refused(&g.error, g.error_description.as_deref()),
                    Err(e) => Reason::TokenInvalid
                        .refuse(format!("GitHub's token response does not parse: {e}")),
                }
            }
            RequestTokenError::Request(e) => unavailable(e),
            RequestTokenError::Other(e) => unavailable(e),
        })?;
    let token = Secret::new(response.access_token().secret().to_owned());
    let (login, claims) = match read_claims(http, config, &token).await? {
        Some(found) => found,
        None => {
            return Err(Reason::CodeRejected
                .refuse("GitHub did not accept the token it had just issued; sign in again"));
        }
    };
    Ok(Identity {
        person: format!("github:{login}"),
        claims,
        token: Some(token),
    })
}

fn refused(error: &str, description: Option<&str>) -> ApiError {
    let description = description.unwrap_or_default();
    let reason = if description.to_ascii_lowercase().contains("verifier")
        || description.to_ascii_lowercase().contains("pkce")
    {
        Reason::PkceMismatch
    } else {
        Reason::CodeRejected
    };
    reason.refuse(format!(
        "GitHub refused the code: {} {}",
        crate::error::quoted(error),
        crate::error::quoted(description)
    ))
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

#[derive(Deserialize)]
struct Team {
    slug: String,
    organization: Org,
}

/// One REST call with the person's token: the parsed body, `None` when GitHub no longer
/// accepts the token (401), and the next page's URL from `Link`.
async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    token: &Secret,
) -> Result<Option<(T, Option<String>)>, ApiError> {
    let response = http
        .get(url)
        .bearer_auth(token.expose())
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .send()
        .await
        .map_err(unavailable)?;
    if response.status() == StatusCode::UNAUTHORIZED {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(unavailable(format!("GET {url}: {}", response.status())));
    }
    let next = response
        .headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|l| l.contains("rel=\"next\""))
        .and_then(|l| Some(l.split(['<', '>']).nth(1)?.to_owned()));
    let body = response
        .json::<T>()
        .await
        .map_err(|e| unavailable(format!("GET {url}: {e}")))?;
    Ok(Some((body, next)))
}

/// Every page of a list.
async fn all<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    first: String,
    token: &Secret,
) -> Result<Option<Vec<T>>, ApiError> {
    let mut items = Vec::new();
    let mut url = Some(first);
    for _ in 0..MAX_PAGES {
        let Some(u) = url.take() else { break };
        let Some((page, next)) = get::<Vec<T>>(http, &u, token).await? else {
            return Ok(None);
        };
        items.extend(page);
        url = next;
    }
    Ok(Some(items))
}

/// The person's login and claims (`github_user:`, `github_org:`, `github_team:`); `None`
/// when GitHub does not accept the token.
async fn read_claims(
    http: &reqwest::Client,
    config: &GithubSignin,
    token: &Secret,
) -> Result<Option<(String, Vec<String>)>, ApiError> {
    let api = &config.api_url;
    let Some((user, _)) = get::<User>(http, &format!("{api}/user"), token).await? else {
        return Ok(None);
    };
    let (orgs, teams) = tokio::try_join!(
        all::<Org>(http, format!("{api}/user/orgs?per_page=100"), token),
        all::<Team>(http, format!("{api}/user/teams?per_page=100"), token),
    )?;
    let (Some(orgs), Some(teams)) = (orgs, teams) else {
        return Ok(None);
    };
    let mut claims: Vec<String> = RuleKind::GithubUser
        .claim(&user.login)
        .into_iter()
        .collect();
    claims.extend(
        orgs.iter()
            .filter_map(|o| RuleKind::GithubOrg.claim(&o.login).ok()),
    );
    claims.extend(teams.iter().filter_map(|t| {
        RuleKind::GithubTeam
            .claim(&format!("{}/{}", t.organization.login, t.slug))
            .ok()
    }));
    claims.sort();
    claims.dedup();
    Ok(Some((user.login, claims)))
}

/// A session's claims as GitHub states them now; `None` when GitHub no longer accepts the
/// token or it now belongs to someone else than `person`.
pub async fn claims_now(
    http: &reqwest::Client,
    config: &GithubSignin,
    token: &Secret,
    person: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    Ok(read_claims(http, config, token)
        .await?
        .filter(|(login, _)| format!("github:{login}") == person)
        .map(|(_, claims)| claims))
}
