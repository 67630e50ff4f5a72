//! Operators in a browser: sign-in with a configured provider, the session it opens (in a
//! `__Host-` cookie), sign-out, and the sessions an operator (or an admin) can list and
//! end. The session then works on every admin and CI-write route in place of a token, with
//! its role deciding what it may do (`crate::http::extract::Caller`).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::audit::{self, Actor};
use crate::domain::sessions::{self, Lifetimes, Origin, Role};
use crate::domain::signin::{self, Callback, Identity, ProviderId, ProviderInfo, Reason};
use crate::domain::tokens::Credential;
use crate::error::{ApiError, Code};
use crate::http::extract::{Caller, NoBody, NoQuery, Path, Query, SignedIn};
use crate::http::session::{FLOW_COOKIE, SESSION_COOKIE, read_cookie, set_cookie};
use crate::http::{ApiResult, quoted, respond};
use crate::state::AppState;

/// How long the browser keeps the flow cookie: as long as a flow lives.
const FLOW_COOKIE_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Who is signed in (if anyone), and how to sign in.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    signed_in: bool,
    /// Who (`github:octocat`).
    #[serde(skip_serializing_if = "Option::is_none")]
    person: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    /// Products a releaser may move, or `*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    products: Option<Vec<String>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    expires_at: Option<OffsetDateTime>,
    /// What a state-changing request made with this session sends as `x-atlas-csrf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    /// One sign-in button per configured provider.
    providers: Vec<ProviderInfo>,
}

/// The sign-in buttons this Hub offers.
fn providers(state: &AppState) -> Vec<ProviderInfo> {
    let mut list = state.signin.list();
    if state.local_signin {
        list.push(ProviderInfo {
            id: "local".to_owned(),
            name: "Local developer".to_owned(),
            sign_in_url: "/api/v1/auth/signin/local".to_owned(),
        });
    }
    list
}

/// The session of this browser: who, with which role, its CSRF token; or that nobody is
/// signed in, with the sign-in buttons. Never cached.
#[utoipa::path(
    get,
    path = "/api/v1/auth/session",
    operation_id = "getSession",
    tag = "auth",
    summary = "Who is signed in (the session cookie), with the CSRF token and the sign-in providers.",
    responses((status = 200, description = "The session, or `signedIn: false`.", body = SessionInfo)),
)]
pub async fn session(
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
    headers: HeaderMap,
) -> ApiResult {
    let cookie = read_cookie(&headers, SESSION_COOKIE);
    let operator = match &cookie {
        Some(cookie) => {
            let conn = state.db.conn().await?;
            state
                .signin
                .operator(&conn, &state.config.token_pepper, cookie)
                .await?
        }
        None => None,
    };
    let info = match (&operator, &cookie) {
        (Some(op), Some(cookie)) => SessionInfo {
            signed_in: true,
            person: Some(op.person.clone()),
            role: Some(op.role),
            products: Some(op.products.clone()),
            expires_at: Some(op.expires_at),
            csrf_token: Some(sessions::csrf_token(&state.config.token_pepper, cookie)),
            providers: providers(&state),
        },
        _ => SessionInfo {
            signed_in: false,
            person: None,
            role: None,
            products: None,
            expires_at: None,
            csrf_token: None,
            providers: providers(&state),
        },
    };
    let mut response = respond::json(StatusCode::OK, &info)?;
    if cookie.is_some() && operator.is_none() {
        // A cookie naming no live session: the browser may as well forget it.
        response
            .headers_mut()
            .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, None));
    }
    Ok(response)
}

/// `{provider}` of the sign-in routes.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProviderPath {
    /// `github`, `microsoft` or `oidc` (as configured).
    #[param(pattern = "^(github|microsoft|oidc)$")]
    provider: String,
}

fn provider(state: &AppState, path: &ProviderPath) -> Result<ProviderId, ApiError> {
    ProviderId::parse(&path.provider)
        .filter(|p| state.signin.enabled(*p))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no sign-in provider {} is configured on this Hub",
                quoted(&path.provider)
            ))
        })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigninQuery {
    /// Where to go once signed in: a path on this Hub (default `/console`).
    #[param(pattern = "^/([^/\\\\].*)?$")]
    return_to: Option<String>,
    /// Microsoft: which of the allowed tenants (default the first).
    tenant: Option<String>,
}

/// Starts a sign-in: redirects to the provider (authorization code with PKCE, `state` and,
/// for OpenID Connect, `nonce`), with the flow bound to this browser by a `__Host-` cookie.
#[utoipa::path(
    get,
    path = "/api/v1/auth/signin/{provider}",
    operation_id = "signIn",
    tag = "auth",
    summary = "Sign in: a redirect to the provider.",
    params(ProviderPath, SigninQuery),
    responses((status = 302, description = "To the provider's authorization page.")),
)]
pub async fn signin(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ProviderPath>,
    Query(query): Query<SigninQuery>,
) -> ApiResult {
    let provider = provider(&state, &path)?;
    let return_to = signin::return_to(query.return_to.as_deref())?;
    let conn = state.db.conn().await?;
    let (url, flow) = state
        .signin
        .begin(
            &conn,
            &state.config.token_pepper,
            provider,
            &return_to,
            query.tenant.as_deref(),
        )
        .await?;
    let mut response = respond::redirect(&url)?;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(FLOW_COOKIE, Some((&flow, FLOW_COOKIE_AGE))),
    );
    Ok(response)
}

/// The provider's answer as the query carries it; parameters the Hub does not use
/// (`session_state`, `scope`, …) are the provider's business and ignored, but none may be
/// given twice.
fn callback_query(raw: Option<&str>) -> Result<Callback, ApiError> {
    let mut callback = Callback::default();
    let mut seen = std::collections::HashSet::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !seen.insert(name.clone()) {
            return Err(ApiError::invalid(format!(
                "query parameter {} is given twice",
                quoted(&name)
            )));
        }
        let slot = match name.as_ref() {
            "code" => &mut callback.code,
            "state" => &mut callback.state,
            "error" => &mut callback.error,
            "error_description" => &mut callback.error_description,
            "iss" => &mut callback.iss,
            _ => continue,
        };
        *slot = Some(value.into_owned());
    }
    Ok(callback)
}

/// The provider's redirect back: the flow is finished (state, code exchange with the PKCE
/// verifier, identity), a new session opens (a new random id: any session id the browser
/// held before is ended, never reused) and the browser goes to the flow's `returnTo`.
#[utoipa::path(
    get,
    path = "/api/v1/auth/callback/{provider}",
    operation_id = "signInCallback",
    tag = "auth",
    summary = "Where the provider sends the browser back; opens the session.",
    params(ProviderPath,
        ("code" = Option<String>, Query, description = "The authorization code."),
        ("state" = Option<String>, Query, description = "The flow's state."),
        ("error" = Option<String>, Query, description = "The provider's refusal."),
        ("error_description" = Option<String>, Query, description = "Why."),
        ("iss" = Option<String>, Query, description = "The provider's issuer (RFC 9207)."),
    ),
    responses(
        (status = 302, description = "Signed in: to `returnTo`, with the session cookie."),
        (status = 303, description = "Refused, to a browser (`Accept: text/html`): to the console's sign-in page, `?reason=` saying why."),
    ),
    extensions(("x-problems" = json!([401, 403]))),
)]
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ProviderPath>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let provider = provider(&state, &path)?;
    let callback = callback_query(query.as_deref())?;
    let conn = state.db.conn().await?;
    let pepper = &state.config.token_pepper;
    let flow_cookie = read_cookie(&headers, FLOW_COOKIE);
    let finished = state
        .signin
        .finish(&conn, pepper, provider, flow_cookie.as_deref(), &callback)
        .await;
    drop(conn);
    let clear_flow = set_cookie(FLOW_COOKIE, None);
    let opened = match finished {
        Ok((identity, return_to)) => {
            open_session(&state, provider.as_str(), identity, &headers, &return_to).await
        }
        Err(e) => Err(e),
    };
    let mut response = opened.unwrap_or_else(|e| refused(e, &headers));
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_flow);
    Ok(response)
}

/// A refused sign-in: a person's browser goes to the console's sign-in page, which says why
/// (`?reason=`); any other client gets the problem. The log line has the reason either way.
fn refused(e: ApiError, headers: &HeaderMap) -> Response {
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let reason = e
        .extra
        .as_ref()
        .and_then(|x| x.get("reason"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    match (browser, reason) {
        (true, Some(reason)) => {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = StatusCode::SEE_OTHER;
            let location = format!("/console/signin?reason={reason}");
            if let Ok(v) = http::HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            response.extensions_mut().insert(e);
            response
        }
        _ => e.into_response(),
    }
}

/// Opens a session for a proven identity (refused when no rule grants the person a role),
/// ends the one this browser held before, audits the sign-in, and sends the browser to
/// `return_to` with the new cookie.
pub async fn open_session(
    state: &AppState,
    provider: &str,
    identity: Identity,
    headers: &HeaderMap,
    return_to: &str,
) -> ApiResult {
    let pepper = &state.config.token_pepper;
    let lifetimes = Lifetimes::from(state.signin.config());
    let origin = Origin {
        provider: provider.to_owned(),
        sealed_token: identity
            .token
            .as_ref()
            .map(|t| signin::seal::seal(pepper, &identity.person, t)),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await?;
    // Whatever session id this browser held (one it was given, or one planted in it) ends
    // here: the new session always gets a fresh random id.
    if let Some(old) = read_cookie(headers, SESSION_COOKIE) {
        sessions::end(&tx, pepper, &old).await?;
    }
    let (operator, cookie) = sessions::start(
        &tx,
        pepper,
        &identity.person,
        &identity.claims,
        &origin,
        lifetimes,
    )
    .await
    .map_err(|e| match e.code {
        Code::ScopeDenied => Reason::NoRule.refuse(e.detail),
        _ => e,
    })?;
    let actor = Actor {
        name: operator.person.clone(),
        token_id: None,
    };
    audit::commit(
        tx,
        &actor,
        "session.signin",
        &format!("session:{}", operator.session_id),
        json!({"provider": provider, "role": operator.role}),
    )
    .await?;
    let mut response = respond::redirect(return_to)?;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, Some((&cookie, lifetimes.absolute))),
    );
    Ok(response)
}

/// Ends this browser's session and removes its cookie.
#[utoipa::path(
    post,
    path = "/api/v1/auth/signout",
    operation_id = "signOut",
    tag = "auth",
    summary = "Sign out: end this browser's session.",
    responses((status = 204, description = "Signed out; the cookie is removed.")),
    security(("sessionCookie" = [])),
    extensions(("x-problems" = json!([401, 403, 413, 415]))),
)]
pub async fn signout(
    SignedIn(operator): SignedIn,
    State(state): State<Arc<AppState>>,
    _: Query<NoQuery>,
    _: NoBody,
) -> ApiResult {
    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await?;
    sessions::revoke(&tx, operator.session_id, None).await?;
    let actor = Actor {
        name: operator.person.clone(),
        token_id: None,
    };
    let subject = format!("session:{}", operator.session_id);
    audit::commit(tx, &actor, "session.signout", &subject, json!({})).await?;
    let mut response = respond::no_content();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, None));
    Ok(response)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionsQuery {
    /// Everyone's sessions, not only the caller's (admins).
    all: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionList {
    sessions: Vec<sessions::Listed>,
}

/// Whose sessions a caller may see or end: their own (`Some(person)`), or everyone's
/// (`None`: an admin token, or an admin's session asking for all).
fn scope_of(
    principal: &crate::domain::tokens::Principal,
    all: bool,
) -> Result<Option<String>, ApiError> {
    match principal.credential {
        Credential::Session(_, role) if !all || role == Role::Admin => {
            Ok((!all).then(|| principal.name.clone()))
        }
        _ => principal.require_admin().map(|()| None),
    }
}

/// Live sessions: the caller's own, or (`?all=true`, admins) everyone's.
#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    operation_id = "listSessions",
    tag = "auth",
    summary = "Live sessions: your own, or everyone's (admins, ?all=true).",
    params(SessionsQuery),
    responses((status = 200, description = "Sessions, newest first.", body = SessionList)),
    security(("sessionCookie" = []), ("adminToken" = [])),
)]
pub async fn list_sessions(
    Caller(principal): Caller,
    State(state): State<Arc<AppState>>,
    Query(query): Query<SessionsQuery>,
) -> ApiResult {
    let person = scope_of(&principal, query.all.unwrap_or(false))?;
    let current = match principal.credential {
        Credential::Session(id, _) => Some(id),
        Credential::Token(_) => None,
    };
    let conn = state.db.conn().await?;
    let sessions = sessions::list(
        &conn,
        person.as_deref(),
        current,
        Lifetimes::from(state.signin.config()),
    )
    .await?;
    respond::json(StatusCode::OK, &SessionList { sessions })
}

/// `{id}` of a session.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    id: String,
}

/// Ends a session: one of the caller's own, or anyone's (admins).
#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    operation_id = "revokeSession",
    tag = "auth",
    summary = "End a session: your own, or anyone's (admins).",
    params(SessionPath),
    responses((status = 204, description = "Ended.")),
    security(("sessionCookie" = []), ("adminToken" = [])),
    extensions(("x-problems" = json!([413, 415]))),
)]
pub async fn revoke_session(
    Caller(principal): Caller,
    State(state): State<Arc<AppState>>,
    Path(path): Path<SessionPath>,
    _: Query<NoQuery>,
    _: NoBody,
) -> ApiResult {
    let not_found = || ApiError::not_found(format!("no session {}", quoted(&path.id)));
    let id = Uuid::parse_str(&path.id).map_err(|_| not_found())?;
    // An admin may end anyone's; everyone else only their own.
    let is_admin = principal.require_admin().is_ok();
    let person = if is_admin {
        None
    } else {
        scope_of(&principal, false)?
    };
    let mut conn = state.db.conn().await?;
    let tx = conn.transaction().await?;
    let owner = sessions::revoke(&tx, id, person.as_deref())
        .await?
        .ok_or_else(not_found)?;
    audit::commit(
        tx,
        &Actor::from(&principal),
        "session.revoke",
        &format!("session:{id}"),
        json!({"person": owner}),
    )
    .await?;
    let mut response = respond::no_content();
    if matches!(principal.credential, Credential::Session(current, _) if current == id) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, None));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_queries_take_what_the_hub_uses_and_refuse_repeats() {
        let c = callback_query(Some(
            "code=abc&state=xyz&session_state=s&iss=http%3A%2F%2Fidp",
        ))
        .unwrap();
        assert_eq!(
            (c.code.as_deref(), c.state.as_deref(), c.iss.as_deref()),
            (Some("abc"), Some("xyz"), Some("http://idp"))
        );
        let e = callback_query(Some("code=a&code=b")).unwrap_err();
        assert_eq!(e.code, "invalid_input");
        assert!(callback_query(None).unwrap().code.is_none());
    }
}
