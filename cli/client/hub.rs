//! Talking to a Hub: the base URL, the credential, retries with backoff on transient
//! failures, and problem+json answers turned into errors that name the fix.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

use super::oidc::OidcSource;

/// Time allowed for one Hub API call (uploads have no overall limit).
const API_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// The credential a command sends, and the variable it came from (errors name it).
#[derive(Clone)]
pub enum Credential {
    /// Public routes.
    None,
    /// `Authorization: Bearer <token>`: app deploy tokens and admin tokens.
    Bearer {
        token: String,
        /// The variable (or flag) it is read from, e.g. `ATLAS_APP_DEPLOY_TOKEN`.
        var: &'static str,
    },
    /// `x-atlas-pack-deploy-token`, from `ATLAS_PACK_DEPLOY_TOKEN`.
    PackToken(String),
    /// `x-atlas-oidc-token`: a fresh GitHub Actions OIDC token for every request, because
    /// the Hub accepts each token (`jti`) once.
    Oidc(OidcSource),
}

impl Credential {
    /// A bearer credential read from `var`, or an error saying to set it.
    pub fn bearer(
        value: Option<String>,
        var: &'static str,
        what: &str,
    ) -> Result<Self, ClientError> {
        match value.filter(|v| !v.trim().is_empty()) {
            Some(token) => Ok(Credential::Bearer {
                token: token.trim().to_owned(),
                var,
            }),
            None => Err(ClientError::Usage(format!(
                "{var} is not set: set it (or pass --token) to {what}"
            ))),
        }
    }

    /// Where the credential comes from, for messages.
    pub fn source(&self) -> &'static str {
        match self {
            Credential::None => "no credential",
            Credential::Bearer { var, .. } => var,
            Credential::PackToken(_) => "ATLAS_PACK_DEPLOY_TOKEN",
            Credential::Oidc(_) => "the GitHub Actions OIDC token",
        }
    }

    async fn apply(
        &self,
        http: &reqwest::Client,
        rb: RequestBuilder,
    ) -> Result<RequestBuilder, ClientError> {
        Ok(match self {
            Credential::None => rb,
            Credential::Bearer { token, .. } => rb.bearer_auth(token),
            Credential::PackToken(token) => rb.header("x-atlas-pack-deploy-token", token),
            Credential::Oidc(source) => rb.header("x-atlas-oidc-token", source.fetch(http).await?),
        })
    }
}

/// How many times a request is tried when it fails transiently.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Total attempts (at least 1).
    pub attempts: u32,
}

impl Retry {
    /// The wait before attempt `n + 1` (n ≥ 1): 0.5 s, 1 s, 2 s, 4 s, … up to 20 s.
    pub fn backoff(&self, n: u32) -> Duration {
        Duration::from_millis(500u64.saturating_mul(1 << (n - 1).min(10))).min(MAX_BACKOFF)
    }
}

/// A buffered HTTP answer (Hub answers are small; storage answers to PUT/HEAD too).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// Reads a response completely.
    pub async fn read(resp: reqwest::Response, action: &str) -> Result<Answer, ClientError> {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| {
            ClientError::Transport(format!(
                "{action}: reading the answer failed: {}",
                chain(&e)
            ))
        })?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Why this answer is worth retrying, if it is: 408, 429 and 5xx, except a Hub whose
    /// database schema is behind its code (only a migration fixes that).
    fn transient(&self) -> Option<String> {
        let s = self.status;
        let retry = s == StatusCode::REQUEST_TIMEOUT
            || s == StatusCode::TOO_MANY_REQUESTS
            || s.is_server_error();
        (retry && self.json()["code"] != "schema_behind").then(|| format!("answered {s}"))
    }

    fn retry_after(&self) -> Option<Duration> {
        let secs: u64 = self.header(RETRY_AFTER.as_str())?.trim().parse().ok()?;
        Some(Duration::from_secs(secs).min(MAX_BACKOFF))
    }
}

/// Runs `send` until it gives a non-transient result or `retry.attempts` are used,
/// waiting with exponential backoff (or the server's `Retry-After`) in between.
pub async fn with_retries<F, Fut>(
    retry: Retry,
    action: &str,
    mut send: F,
) -> Result<Answer, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Answer, ClientError>>,
{
    let mut attempt = 1;
    loop {
        let outcome = send().await;
        let (why, wait) = match &outcome {
            Ok(answer) => match answer.transient() {
                Some(why) => (format!("{action}: {why}"), answer.retry_after()),
                None => return outcome,
            },
            Err(ClientError::Transport(why)) => (why.clone(), None),
            Err(_) => return outcome,
        };
        if attempt >= retry.attempts {
            return outcome;
        }
        let wait = wait.unwrap_or_else(|| retry.backoff(attempt));
        eprintln!(
            "{why}; retrying in {:.1}s (attempt {} of {})",
            wait.as_secs_f64(),
            attempt + 1,
            retry.attempts
        );
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// A Hub at a base URL, with the credential a command uses.
pub struct Hub {
    base: String,
    http: reqwest::Client,
    credential: Credential,
    retry: Retry,
}

impl Hub {
    /// A client for the Hub at `base` (`ATLAS_HUB_URL`).
    pub fn new(
        base: Option<String>,
        credential: Credential,
        attempts: u32,
    ) -> Result<Hub, ClientError> {
        let base = base
            .map(|b| b.trim().trim_end_matches('/').to_owned())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                ClientError::Usage(
                    "ATLAS_HUB_URL is not set: set it (or pass --hub) to the Hub's base URL, \
                     e.g. http://127.0.0.1:8080 for `atlas-hub serve`"
                        .into(),
                )
            })?;
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Usage(format!(
                "the Hub URL {base:?} must start with https:// (or http:// for a local Hub)"
            )));
        }
        Ok(Hub {
            base,
            http: http_client()?,
            credential,
            retry: Retry {
                attempts: attempts.max(1),
            },
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The HTTP client (redirects are not followed).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The retry policy.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Sends a request to the Hub with the credential, retrying transient failures, and
    /// returns whatever it finally answered.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        action: &str,
    ) -> Result<Answer, ClientError> {
        let url = self.url(path);
        with_retries(self.retry, action, || async {
            let mut rb = self.http.request(method.clone(), &url).timeout(API_TIMEOUT);
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let rb = self.credential.apply(&self.http, rb).await?;
            let resp = rb
                .send()
                .await
                .map_err(|e| ClientError::Transport(format!("{action}: {}", chain(&e))))?;
            Answer::read(resp, action).await
        })
        .await
        .map_err(|e| match e {
            ClientError::Transport(m) if m.contains("onnect") => ClientError::Transport(format!(
                "{m}\n  fix: check that ATLAS_HUB_URL ({}) is the Hub's address and that it is up",
                self.base
            )),
            other => other,
        })
    }

    /// Like [`Hub::send`], but any answer other than 2xx becomes a [`ClientError::Hub`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        action: &str,
    ) -> Result<Answer, ClientError> {
        let answer = self.send(method, path, body, action).await?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(ClientError::Hub(Problem::from_answer(
                action,
                &answer,
                self.credential.source(),
            )))
        }
    }

    /// GET of a JSON document.
    pub async fn get_json(&self, path: &str, action: &str) -> Result<Value, ClientError> {
        Ok(self.call(Method::GET, path, None, action).await?.json())
    }
}

/// The one HTTP client: no redirects followed (the client checks them), rustls for https.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("atlas-hub/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Usage(format!("cannot build the HTTP client: {}", chain(&e))))
}

/// An error and its causes on one line (reqwest's own message alone is terse).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A non-success answer from the Hub.
#[derive(Debug, Clone)]
pub struct Problem {
    /// What the client was doing ("publish launcher 1.2.0").
    pub action: String,
    pub status: u16,
    /// The problem's machine code (empty when the body was not problem+json).
    pub code: String,
    /// The problem's detail, or the start of the body.
    pub detail: String,
    /// The whole body (extra members such as `missing`, `channels`, `currentVersion`).
    pub body: Value,
    /// Where the credential came from (fixes name it).
    pub credential: &'static str,
    /// Lines the client adds (e.g. what an existing release holds).
    pub context: Vec<String>,
}

impl Problem {
    /// Reads a problem+json answer (or any other non-success answer).
    pub fn from_answer(action: &str, answer: &Answer, credential: &'static str) -> Problem {
        let body = answer.json();
        let text = String::from_utf8_lossy(&answer.body);
        Problem {
            action: action.to_owned(),
            status: answer.status.as_u16(),
            code: body["code"].as_str().unwrap_or_default().to_owned(),
            detail: body["detail"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| text.chars().take(300).collect::<String>().trim().to_owned()),
            body,
            credential,
            context: Vec::new(),
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> Option<String> {
        let var = self.credential;
        // Where a new token of the kind in `var` comes from.
        let new_token = if var == "ATLAS_ADMIN_TOKEN" {
            "`atlas-hub admin token create --kind admin` with another admin token, or \
             `atlas-hub admin bootstrap-token` with database access"
        } else {
            "an admin (`atlas-hub admin token create`)"
        };
        let fix = match self.code.as_str() {
            "token_missing" if var == "ATLAS_ADMIN_TOKEN" => {
                format!("set {var} to an admin token from {new_token}")
            }
            "token_missing" => format!("set {var} to a deploy token an admin issued for this Hub"),
            "token_invalid" => format!(
                "{var} is not a token this Hub knows: check the secret's value, and that \
                 ATLAS_HUB_URL is the Hub that issued it"
            ),
            "token_revoked" => format!("the token in {var} was revoked: get a new one from {new_token} and set {var} to it"),
            "token_expired" => format!("the token in {var} has expired: get a new one from {new_token} and set {var} to it"),
            "scope_denied" if var == "ATLAS_ADMIN_TOKEN" => format!("{var} holds a deploy token, not an admin token: set it to an admin token from {new_token}"),
            "scope_denied" => format!("ask an admin for a token with that scope, and set {var} to it"),
            "product_exists" => "a product with that slug exists: change it with `atlas-hub admin product update`".to_owned(),
            "pack_exists" => "a pack with that slug exists: change it with `atlas-hub admin pack update`".to_owned(),
            "pack_oidc_only" => "this pack takes GitHub OIDC deploys only: deploy from its trusted workflow, or `atlas-hub admin pack update --oidc-only false` first".to_owned(),
            "not_found" if var == "ATLAS_ADMIN_TOKEN" => "check the slug or id: `atlas-hub admin product list`, `admin pack list` and `admin token list` show what exists".to_owned(),
            "oidc_invalid" | "oidc_claims_mismatch" => "the pack's trusted publisher (repository, workflow, environment, ref) \
                 must match this workflow run, and ATLAS_OIDC_AUDIENCE the Hub's audience; an admin \
                 can check it with PATCH /api/v1/admin/packs/{pack}"
                .to_owned(),
            "version_exists" => "releases are immutable: publish under a new --version".to_owned(),
            "upload_conflict" => "stored artifacts are immutable: publish under a new --version".to_owned(),
            "build_exists" => "pack builds are immutable: deploy under a new --build".to_owned(),
            "channel_moved" => "someone else moved the channel meanwhile: look with `atlas-hub release status` and run the command again".to_owned(),
            "platforms_missing" => "publish a release with the missing platforms, or pass --force to move anyway (audited)".to_owned(),
            "channel_points_here" => "move the channel off this release first (`atlas-hub release rollback` or `atlas-hub release promote`), then yank".to_owned(),
            "release_yanked" => "unyank it first (`atlas-hub release yank --undo`) or choose another version".to_owned(),
            "schema_behind" => "the Hub's database is behind its code: an operator must run `atlas-hub migrate` against it".to_owned(),
            "object_missing" | "object_mismatch" => "run the same command again: it uploads what storage lacks".to_owned(),
            "artifact_too_large" => "ask an admin to raise the product's maxArtifactSize, or ship a smaller file".to_owned(),
            _ => return None,
        };
        Some(fix)
    }
}

/// What can go wrong in a client command.
#[derive(Debug)]
pub enum ClientError {
    /// Input the command cannot work with: flags, files, missing variables.
    Usage(String),
    /// The Hub answered with a problem.
    Hub(Problem),
    /// Network or storage failure (after retries).
    Transport(String),
}

impl ClientError {
    /// The problem, when the Hub answered one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Hub(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Usage(m) | ClientError::Transport(m) => f.write_str(m),
            ClientError::Hub(p) => {
                let code = if p.code.is_empty() {
                    String::new()
                } else {
                    format!(" {}", p.code)
                };
                write!(
                    f,
                    "{}: the Hub answered {}{code}: {}",
                    p.action, p.status, p.detail
                )?;
                for line in &p.context {
                    write!(f, "\n  {line}")?;
                }
                if let Some(fix) = p.fix() {
                    write!(f, "\n  fix: {fix}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<ClientError> for String {
    fn from(e: ClientError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_and_is_capped() {
        let r = Retry { attempts: 20 };
        assert_eq!(r.backoff(1), Duration::from_millis(500));
        assert_eq!(r.backoff(2), Duration::from_secs(1));
        assert_eq!(r.backoff(4), Duration::from_secs(4));
        assert_eq!(r.backoff(19), MAX_BACKOFF);
    }

    #[test]
    fn token_problems_name_the_variable_to_set() {
        let answer = Answer {
            status: StatusCode::UNAUTHORIZED,
            headers: HeaderMap::new(),
            body: Bytes::from_static(
                br#"{"code":"token_revoked","detail":"the token was revoked"}"#,
            ),
        };
        let p = Problem::from_answer("publish launcher 1.0.0", &answer, "ATLAS_APP_DEPLOY_TOKEN");
        let text = ClientError::Hub(p).to_string();
        assert!(text.contains("401 token_revoked"), "{text}");
        assert!(text.contains("set ATLAS_APP_DEPLOY_TOKEN"), "{text}");
    }

    #[test]
    fn schema_behind_is_not_retried_but_other_server_errors_are() {
        let answer = |status: u16, body: &'static [u8]| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body),
        };
        assert!(
            answer(503, br#"{"code":"schema_behind"}"#)
                .transient()
                .is_none()
        );
        assert!(
            answer(503, br#"{"code":"db_unavailable"}"#)
                .transient()
                .is_some()
        );
        assert!(answer(429, b"").transient().is_some());
        assert!(answer(409, b"").transient().is_none());
    }
}
