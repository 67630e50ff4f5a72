//! A stand-in for github.com, which these machines cannot reach: a loopback server speaking
//! GitHub's wire format for what the Hub's sign-in uses — the OAuth web flow
//! (`/login/oauth/authorize`, `/login/oauth/access_token` with PKCE S256, its quirk of
//! answering a refused code with 200 and an error object) and the REST API (`/user`,
//! `/user/orgs`, `/user/teams` with `Link` pagination, `401 Bad credentials`). Tests add
//! people, memberships and tokens, and change them between requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::Digest;

/// A JSON answer (the Hub's own axum build has no `json` feature; neither needs it here).
fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )],
        value.to_string(),
    )
        .into_response()
}

/// `application/x-www-form-urlencoded` (a query or a form body) into `T`.
fn form<T: DeserializeOwned>(encoded: &str) -> Result<T, Response> {
    serde_urlencoded::from_str(encoded)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()).into_response())
}

/// Someone with a GitHub account.
#[derive(Clone, Debug, Default)]
pub struct GithubUser {
    pub login: String,
    pub id: u64,
    pub orgs: Vec<String>,
    /// `(org, team-slug)`.
    pub teams: Vec<(String, String)>,
}

struct Grant {
    login: String,
    challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct World {
    client_id: String,
    client_secret: String,
    users: HashMap<String, GithubUser>,
    next_user: Option<String>,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, String>,
    /// Every request, `METHOD path`, for tests to read.
    requests: Vec<String>,
}

type Shared = Arc<Mutex<World>>;

/// The running stand-in.
pub struct GithubStandIn {
    /// Base URL: both the web (`ATLAS_SIGNIN_GITHUB_URL`) and the API
    /// (`ATLAS_SIGNIN_GITHUB_API_URL`).
    pub url: String,
    world: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GithubStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GithubStandIn {
    /// Starts it on a free loopback port, for one OAuth app.
    pub async fn start(client_id: &str, client_secret: &str) -> GithubStandIn {
        let world: Shared = Arc::new(Mutex::new(World {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            ..World::default()
        }));
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/orgs", get(orgs))
            .route("/user/teams", get(teams))
            .layer(axum::middleware::from_fn_with_state(world.clone(), record))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        GithubStandIn { url, world, task }
    }

    /// Adds (or replaces) a person.
    pub fn add_user(&self, user: GithubUser) {
        let mut w = self.world.lock().unwrap();
        w.users.insert(user.login.clone(), user);
    }

    /// Removes `login` from an organization (and its teams there).
    pub fn remove_from_org(&self, login: &str, org: &str) {
        let mut w = self.world.lock().unwrap();
        let user = w.users.get_mut(login).expect("known user");
        user.orgs.retain(|o| o != org);
        user.teams.retain(|(o, _)| o != org);
    }

    /// Who approves the next authorization (as if signed in to github.com).
    pub fn next_user(&self, login: &str) {
        self.world.lock().unwrap().next_user = Some(login.to_owned());
    }

    /// Revokes every token of `login` (the person revoked the app's authorization).
    pub fn revoke_tokens(&self, login: &str) {
        self.world.lock().unwrap().tokens.retain(|_, l| l != login);
    }

    /// Every access token issued so far (for the secrets test).
    pub fn tokens(&self) -> Vec<String> {
        self.world.lock().unwrap().tokens.keys().cloned().collect()
    }

    /// Every request so far, `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.world.lock().unwrap().requests.clone()
    }
}

async fn record(
    State(world): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let line = format!("{} {}", req.method(), req.uri().path());
    world.lock().unwrap().requests.push(line);
    next.run(req).await
}

fn random(prefix: &str) -> String {
    let bytes: [u8; 20] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: Option<String>,
    state: Option<String>,
    #[allow(dead_code)]
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `GET /login/oauth/authorize`: the person (the test's next user) approves at once, and is
/// sent back with a code, as github.com does for an app they authorized before.
async fn authorize(State(world): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let q: AuthorizeQuery = match form(&q.unwrap_or_default()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let mut w = world.lock().unwrap();
    if q.client_id != w.client_id {
        return (StatusCode::NOT_FOUND, "unknown client_id").into_response();
    }
    let (Some(redirect_uri), Some(challenge)) = (q.redirect_uri, q.code_challenge) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri and code_challenge needed",
        )
            .into_response();
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return (
            StatusCode::BAD_REQUEST,
            "code_challenge_method must be S256",
        )
            .into_response();
    }
    let Some(login) = w.next_user.clone() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the test set no next user",
        )
            .into_response();
    };
    let code = random("");
    w.codes.insert(
        code.clone(),
        Grant {
            login,
            challenge,
            redirect_uri: redirect_uri.clone(),
        },
    );
    let mut location = reqwest::Url::parse(&redirect_uri).unwrap();
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.state {
        location.query_pairs_mut().append_pair("state", &state);
    }
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, location.to_string())],
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    client_id: String,
    client_secret: Option<String>,
    code: String,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

/// GitHub answers refusals of this endpoint with 200 and an error object.
fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "error": error,
            "error_description": description,
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
        }),
    )
}

/// `POST /login/oauth/access_token`: the client's credentials in the body, the code used
/// once, the PKCE verifier checked against the challenge (S256).
async fn access_token(State(world): State<Shared>, body: String) -> Response {
    let f: TokenForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut w = world.lock().unwrap();
    if f.client_id != w.client_id || f.client_secret.as_deref() != Some(&w.client_secret) {
        return oauth_error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    // A code is used once, whatever happens next.
    let Some(grant) = w.codes.remove(&f.code) else {
        return oauth_error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        );
    };
    if f.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return oauth_error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    let verifier = f.code_verifier.unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    if computed != grant.challenge {
        // GitHub does not say a verifier was wrong: the code is refused like any other.
        return oauth_error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        );
    }
    let token = random("gho_");
    w.tokens.insert(token.clone(), grant.login);
    json_response(
        StatusCode::OK,
        &json!({"access_token": token, "token_type": "bearer", "scope": "read:org,read:user"}),
    )
}

/// The person a request's bearer token belongs to, or GitHub's 401.
fn person(world: &Shared, headers: &HeaderMap) -> Result<GithubUser, Response> {
    let w = world.lock().unwrap();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        });
    token
        .and_then(|t| w.tokens.get(t))
        .and_then(|login| w.users.get(login))
        .cloned()
        .ok_or_else(|| {
            json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest", "status": "401"}),
            )
        })
}

async fn user(State(world): State<Shared>, headers: HeaderMap) -> Response {
    match person(&world, &headers) {
        Ok(u) => json_response(
            StatusCode::OK,
            &json!({"login": u.login, "id": u.id, "type": "User",
                "node_id": format!("U_{}", u.id), "site_admin": false}),
        ),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct PageQuery {
    per_page: Option<usize>,
    page: Option<usize>,
}

/// One page of `items` with GitHub's `Link` header pointing at the next.
fn page(path: &str, items: Vec<Value>, q: Option<String>, headers: &HeaderMap) -> Response {
    let q: PageQuery = match form(&q.unwrap_or_default()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let per_page = q.per_page.unwrap_or(30).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let chunk: Vec<Value> = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let mut response = json_response(StatusCode::OK, &Value::from(chunk));
    if page * per_page < items.len() {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        let link = format!(
            "<http://{host}{path}?per_page={per_page}&page={}>; rel=\"next\"",
            page + 1
        );
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

async fn orgs(State(world): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    match person(&world, &headers) {
        Ok(u) => {
            let items = u
                .orgs
                .iter()
                .map(|o| json!({"login": o, "id": 1}))
                .collect();
            page("/user/orgs", items, q, &headers)
        }
        Err(r) => r,
    }
}

async fn teams(State(world): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    match person(&world, &headers) {
        Ok(u) => {
            let items = u
                .teams
                .iter()
                .map(|(org, slug)| json!({"slug": slug, "name": slug, "organization": {"login": org}}))
                .collect();
            page("/user/teams", items, q, &headers)
        }
        Err(r) => r,
    }
}
