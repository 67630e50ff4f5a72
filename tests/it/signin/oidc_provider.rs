//! A loopback OpenID Connect provider for the sign-in tests: the certified `oidc-provider`
//! package (pinned in `tests/oidc-provider/package-lock.json`, installed on first use by
//! [`crate::tools::oidc_provider`]) run by `tests/oidc-provider/server.mjs`, set up like a
//! Microsoft Entra multi-tenant authority: one issuer per tenant,
//! `{base}/{tenant}/v2.0` (as `https://login.microsoftonline.com/{tid}/v2.0`), each with its own
//! RS256 key and one confidential client (`client_secret_basic`, authorization code with PKCE
//! S256 only, scopes `openid email profile`).
//!
//! Nobody types anything: each authorization request signs in, at once, the user a test set
//! with [`OidcProvider::next_user`] (login and consent, every time, no single sign-on), and
//! [`OidcProvider::tamper_next`] makes the next token response of a tenant carry a doctored
//! `id_token`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::Digest;

use crate::support::{unique_name, work_dir};

/// How long `start` waits for the provider to listen (the first start may also generate keys
/// on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The tamper modes of [`OidcProvider::tamper_next`], as `server.mjs` knows them.
pub const TAMPER_MODES: &[&str] = &[
    // Back to normal.
    "none",
    // `iss` and `tid` of another configured tenant, signed with this tenant's key (Entra's
    // tenants share Microsoft's signing keys: only `iss`/`tid` tell them apart).
    "other_tenant",
    // Claims unchanged, signed with another tenant's key, under that key's `kid`.
    "other_tenant_key",
    // `iss` = `https://evil.example/{tid}/v2.0`, signed with this tenant's key.
    "issuer",
    // `aud` = `someone-else`, signed with this tenant's key.
    "audience",
    // `iat` = now - 7200, `exp` = now - 3600, signed with this tenant's key.
    "expired",
    // Header `{"alg":"none","typ":"JWT"}`, payload unchanged, empty signature.
    "alg_none",
    // The original header (RS256, kid) and payload, the signature removed: `header.payload.`.
    "unsigned",
    // The original token with bytes of its signature altered (still base64url).
    "bad_signature",
    // Same claims signed with a fresh RSA key that is in no JWKS, under the tenant's `kid`.
    "foreign_key",
    // The id_token of the previous successful token response of the tenant (as issued: valid,
    // but its `nonce` is another flow's). Refused (panics) when the tenant issued none yet.
    "replay",
];

/// A running `server.mjs`; killed when dropped.
pub struct OidcProvider {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    child: Child,
    /// Where the provider's stderr goes: one line per request (`METHOD path status`), its
    /// errors, the sign-ins and tamperings.
    pub log_path: PathBuf,
    /// Dropped after the child is reaped: ends the thread that spawned it (the child gets
    /// SIGTERM when that thread dies, so a test process that dies never leaves it behind).
    _spawner: mpsc::Sender<()>,
}

/// The user the provider signs in next for a tenant (the claims of their id_token).
#[derive(Clone, Debug)]
pub struct IdpUser {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub oid: String,
    pub groups: Vec<String>,
}

impl OidcProvider {
    /// Starts `server.mjs` (provisioned through [`crate::tools::oidc_provider`]) on a free port
    /// with these tenants and one client, registered in every tenant.
    pub fn start(
        tenants: &[&str],
        client_id: &str,
        client_secret: &str,
        redirect_uris: &[String],
    ) -> OidcProvider {
        assert!(!tenants.is_empty(), "OidcProvider::start needs a tenant");
        let dir = crate::tools::oidc_provider();
        let logs = work_dir().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log_path = logs.join(format!("{}.log", unique_name("oidc-provider")));
        let log = std::fs::File::create(&log_path).unwrap();

        let mut cmd = atlas_hub::dev::server_command(Path::new("node"), None, Some("TERM"));
        cmd.arg(dir.join("server.mjs"))
            .current_dir(&dir)
            .env("PORT", "0")
            .env("TENANTS", tenants.join(","))
            .env("CLIENT_ID", client_id)
            .env("CLIENT_SECRET", client_secret)
            .env("REDIRECT_URIS", redirect_uris.join(","))
            .env_remove("NODE_OPTIONS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);

        // Spawned from a thread of its own that lives as long as this value: `--pdeathsig`
        // fires when the spawning *thread* ends, which must not be a test's worker thread.
        let (child_tx, child_rx) = mpsc::channel();
        let (spawner, stop) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _ = child_tx.send(cmd.spawn());
            // Returns when the OidcProvider is dropped (its sender with it).
            let _ = stop.recv();
        });
        let mut child = child_rx
            .recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot start node {}/server.mjs: {e}", dir.display()));

        // The first stdout line is `{"port": n}`; the rest (nothing, normally) is drained.
        let stdout = child.stdout.take().unwrap();
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = line_tx.send(lines.next());
            for _ in lines {}
        });
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let port = match line_rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["port"].as_u64())
                .unwrap_or_else(|| {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "oidc-provider printed {line:?} instead of {{\"port\": n}}; log:\n{}",
                        read_log()
                    )
                }),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                let why = match outcome {
                    Err(_) => format!("did not listen within {START_TIMEOUT:?}"),
                    _ => "exited before listening".to_owned(),
                };
                panic!(
                    "oidc-provider (tests/oidc-provider/server.mjs) {why}; log {}:\n{}",
                    log_path.display(),
                    read_log()
                );
            }
        };
        OidcProvider {
            base: format!("http://127.0.0.1:{port}"),
            child,
            log_path,
            _spawner: spawner,
        }
    }

    /// The tenant's issuer: `{base}/{tenant}/v2.0` (its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`).
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.base)
    }

    /// Makes `user` the one every following sign-in of `tenant` signs in, until changed.
    pub async fn next_user(&self, tenant: &str, user: &IdpUser) {
        self.control(
            "next-user",
            json!({
                "tenant": tenant,
                "sub": user.sub,
                "email": user.email,
                "emailVerified": user.email_verified,
                "name": user.name,
                "oid": user.oid,
                "groups": user.groups,
            }),
        )
        .await;
    }

    /// Makes the next successful token response of `tenant` (that one only) carry an
    /// `id_token` doctored as `mode` says (one of [`TAMPER_MODES`]; `none` disarms); the
    /// access token is left alone.
    pub async fn tamper_next(&self, tenant: &str, mode: &str) {
        self.control("tamper", json!({ "tenant": tenant, "mode": mode }))
            .await;
    }

    /// The provider's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Plays the browser from `authorization_url` (a tenant's authorization endpoint with its
    /// query, as a relying party redirects to it) through the provider's redirects, keeping its
    /// cookies (a fresh cookie jar each call), until a `Location` leaves the provider: returns
    /// that URL (the client's redirect URI with `code`, `state` and `iss`, or with `error`).
    /// `Err` holds the status and body of a response that was no redirect (e.g. 500 when no
    /// next user is set, 400 for an unknown client or redirect URI).
    pub async fn follow_authorization(&self, authorization_url: &str) -> Result<String, String> {
        let http = crate::support::client();
        let mut jar = CookieJar::default();
        let mut url = reqwest::Url::parse(authorization_url)
            .unwrap_or_else(|e| panic!("not a URL: {authorization_url}: {e}"));
        for _ in 0..10 {
            let mut request = http.get(url.clone());
            if let Some(cookies) = jar.header_for(url.path()) {
                request = request.header(reqwest::header::COOKIE, cookies);
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            for set_cookie in response.headers().get_all(reqwest::header::SET_COOKIE) {
                jar.store(set_cookie.to_str().unwrap_or_default());
            }
            let status = response.status();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let Some(location) = location.filter(|_| status.is_redirection()) else {
                let body = response.text().await.unwrap_or_default();
                return Err(format!("{status} from GET {url}: {body}"));
            };
            let next = url
                .join(&location)
                .unwrap_or_else(|e| panic!("bad Location {location:?} from {url}: {e}"));
            if !next.as_str().starts_with(&format!("{}/", self.base)) {
                return Ok(next.to_string());
            }
            url = next;
        }
        panic!(
            "more than 10 redirects inside the provider from {authorization_url}; log:\n{}",
            self.log()
        )
    }

    async fn control(&self, action: &str, body: Value) {
        let url = format!("{}/_control/{action}", self.base);
        let response = crate::support::client()
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}; log:\n{}", self.log()));
        let status = response.status();
        if status != reqwest::StatusCode::NO_CONTENT {
            let text = response.text().await.unwrap_or_default();
            panic!("POST {url} {body} answered {status}: {text}");
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Just enough of a browser's cookie store for one sign-in at one provider: cookies by name
/// and path, sent where their path matches.
#[derive(Default)]
struct CookieJar {
    /// (name, path) -> value.
    cookies: HashMap<(String, String), String>,
}

impl CookieJar {
    fn store(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';').map(str::trim);
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let mut path = "/".to_owned();
        let mut expired = false;
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            match key.to_ascii_lowercase().as_str() {
                "path" if val.starts_with('/') => path = val.to_owned(),
                "expires" => expired |= val.contains("1970"),
                "max-age" => expired |= val.parse::<i64>().is_ok_and(|s| s <= 0),
                _ => {}
            }
        }
        let key = (name.to_owned(), path);
        if expired || value.is_empty() {
            self.cookies.remove(&key);
        } else {
            self.cookies.insert(key, value.to_owned());
        }
    }

    fn header_for(&self, request_path: &str) -> Option<String> {
        let matches = |cookie_path: &str| {
            request_path == cookie_path
                || (request_path.starts_with(cookie_path)
                    && (cookie_path.ends_with('/')
                        || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
        };
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|((_, path), _)| matches(path))
            .map(|((name, _), value)| format!("{name}={value}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

// The smoke test: the provider as the sign-in tests use it.
const TENANT_A: &str = "3f0c2b9e-6a41-4c7d-9a55-0b8e1f6d2a11";
const TENANT_B: &str = "8d7e6f5a-1b2c-4d3e-8f90-a1b2c3d4e5f6";
const CLIENT_ID: &str = "atlas-hub-test-client";
const CLIENT_SECRET: &str = "test-client-secret-0123456789";
const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

fn user(name: &str, groups: &[&str]) -> IdpUser {
    IdpUser {
        sub: format!("sub-{name}"),
        email: format!("{name}@example.com"),
        email_verified: true,
        name: name.to_owned(),
        oid: format!("oid-{name}"),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn b64_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// (header, payload) of a compact JWT, unverified.
fn decode(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {jwt}");
    (b64_json(parts[0]), b64_json(parts[1]))
}

/// A code flow's front channel: (code, code_verifier) after the provider signed the next
/// user in, checking `state` and `iss` of the redirect.
async fn authorize(idp: &OidcProvider, tenant: &str, nonce: &str) -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let url = reqwest::Url::parse_with_params(
        &format!("{}/auth", idp.issuer(tenant)),
        [
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("scope", "openid email profile"),
            ("redirect_uri", REDIRECT_URI),
            ("state", &state),
            ("nonce", nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let back = idp
        .follow_authorization(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", idp.log()));
    let back = reqwest::Url::parse(&back).unwrap();
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    let query: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(query.get("state"), Some(&state), "{back}");
    assert_eq!(query.get("iss"), Some(&idp.issuer(tenant)), "{back}");
    let code = query
        .get("code")
        .unwrap_or_else(|| panic!("no code in {back}"))
        .clone();
    (code, verifier)
}

/// The back channel: the token endpoint's status and JSON body.
async fn redeem(
    idp: &OidcProvider,
    tenant: &str,
    code: &str,
    verifier: &str,
) -> (reqwest::StatusCode, Value) {
    let response = crate::support::client()
        .post(format!("{}/token", idp.issuer(tenant)))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// A whole sign-in: the id_token's (header, claims).
async fn sign_in(idp: &OidcProvider, tenant: &str, nonce: &str) -> (Value, Value) {
    let (code, verifier) = authorize(idp, tenant, nonce).await;
    let (status, body) = redeem(idp, tenant, &code, &verifier).await;
    assert_eq!(status, 200, "{body}; log:\n{}", idp.log());
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    decode(body["id_token"].as_str().unwrap())
}

#[tokio::test]
async fn oidc_provider_runs_a_whole_code_flow_with_pkce() {
    let idp = OidcProvider::start(
        &[TENANT_A, TENANT_B],
        CLIENT_ID,
        CLIENT_SECRET,
        &[REDIRECT_URI.to_owned()],
    );
    let http = crate::support::client();
    let health = http
        .get(format!("{}/_control/health", idp.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Discovery: one Entra-like issuer per tenant, every endpoint under it.
    let mut kids = Vec::new();
    for tenant in [TENANT_A, TENANT_B] {
        let issuer = idp.issuer(tenant);
        assert_eq!(issuer, format!("{}/{tenant}/v2.0", idp.base));
        let discovery: Value = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], issuer.as_str());
        for endpoint in ["authorization_endpoint", "token_endpoint", "jwks_uri"] {
            assert!(
                discovery[endpoint]
                    .as_str()
                    .is_some_and(|u| u.starts_with(&format!("{issuer}/"))),
                "{endpoint}: {discovery}"
            );
        }
        assert_eq!(
            discovery["code_challenge_methods_supported"],
            json!(["S256"])
        );
        assert_eq!(discovery["response_types_supported"], json!(["code"]));
        assert_eq!(
            discovery["id_token_signing_alg_values_supported"],
            json!(["RS256"])
        );
        let jwks: Value = http
            .get(discovery["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{jwks}");
        assert_eq!(keys[0]["kty"], "RSA");
        assert!(
            keys[0].get("d").is_none(),
            "a private key is published: {jwks}"
        );
        kids.push(keys[0]["kid"].as_str().unwrap().to_owned());
    }
    assert_ne!(kids[0], kids[1], "the tenants share a key");

    // No next user yet: the sign-in stops with a message naming the fix.
    let no_user_yet = format!(
        "{}/auth?client_id={CLIENT_ID}&response_type=code&scope=openid&redirect_uri={}\
         &code_challenge={}&code_challenge_method=S256&nonce=n&state=s",
        idp.issuer(TENANT_A),
        urlencode(REDIRECT_URI),
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"x")),
    );
    let refused = idp.follow_authorization(&no_user_yet).await.unwrap_err();
    assert!(
        refused.starts_with("500") && refused.contains("POST /_control/next-user"),
        "{refused}"
    );

    // A whole flow: the claims of the scopes are in the id_token itself, with Entra's.
    let alice = user("alice", &["admins", "staff"]);
    idp.next_user(TENANT_A, &alice).await;
    let (header, claims) = sign_in(&idp, TENANT_A, "nonce-1").await;
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], kids[0].as_str());
    assert_eq!(claims["iss"], idp.issuer(TENANT_A).as_str());
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["sub"], "sub-alice");
    assert_eq!(claims["tid"], TENANT_A);
    assert_eq!(claims["oid"], "oid-alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "alice");
    assert_eq!(claims["groups"], json!(["admins", "staff"]));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > iat, "{claims}");

    // A wrong code_verifier is refused.
    let (code, _) = authorize(&idp, TENANT_A, "nonce-2").await;
    let (status, body) = redeem(&idp, TENANT_A, &code, &"w".repeat(43)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // And the code cannot be redeemed at the other tenant.
    let (status, body) = redeem(&idp, TENANT_B, &code, &"w".repeat(43)).await;
    assert_eq!(body["error"], "invalid_grant", "{status} {body}");

    // A tampered token response, once: the next one is normal again.
    idp.tamper_next(TENANT_A, "audience").await;
    let (header, claims) = sign_in(&idp, TENANT_A, "nonce-3").await;
    assert_eq!(claims["aud"], "someone-else");
    assert_eq!(claims["nonce"], "nonce-3");
    assert_eq!(header["kid"], kids[0].as_str());
    let (_, claims) = sign_in(&idp, TENANT_A, "nonce-4").await;
    assert_eq!(claims["aud"], CLIENT_ID);

    // Replay hands back the previous flow's token.
    idp.tamper_next(TENANT_A, "replay").await;
    let (_, claims) = sign_in(&idp, TENANT_A, "nonce-5").await;
    assert_eq!(claims["nonce"], "nonce-4");

    // The next user changes who signs in, even in the same tenant right after.
    let bob = IdpUser {
        email_verified: false,
        ..user("bob", &[])
    };
    idp.next_user(TENANT_A, &bob).await;
    let (_, claims) = sign_in(&idp, TENANT_A, "nonce-6").await;
    assert_eq!(claims["sub"], "sub-bob");
    assert_eq!(claims["email_verified"], false);
    assert_eq!(claims["groups"], json!([]));

    // The other tenant: its own issuer, tid and key.
    idp.next_user(TENANT_B, &alice).await;
    let (header, claims) = sign_in(&idp, TENANT_B, "nonce-7").await;
    assert_eq!(claims["iss"], idp.issuer(TENANT_B).as_str());
    assert_eq!(claims["tid"], TENANT_B);
    assert_eq!(header["kid"], kids[1].as_str());
    idp.tamper_next(TENANT_B, "other_tenant").await;
    let (header, claims) = sign_in(&idp, TENANT_B, "nonce-8").await;
    assert_eq!(claims["iss"], idp.issuer(TENANT_A).as_str());
    assert_eq!(claims["tid"], TENANT_A);
    assert_eq!(
        header["kid"],
        kids[1].as_str(),
        "not signed with the issuing tenant's key"
    );

    // Every mode the wrapper names is one the server knows; an unknown one is refused.
    for mode in TAMPER_MODES {
        idp.tamper_next(TENANT_A, mode).await;
    }
    idp.tamper_next(TENANT_A, "none").await;
    let (_, claims) = sign_in(&idp, TENANT_A, "nonce-9").await;
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["iss"], idp.issuer(TENANT_A).as_str());
    let unknown = http
        .post(format!("{}/_control/tamper", idp.base))
        .json(&json!({ "tenant": TENANT_A, "mode": "rot13" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);

    let log = idp.log();
    assert!(
        log.contains(&format!("POST /{TENANT_A}/v2.0/token 200")),
        "{log}"
    );
}

fn urlencode(s: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("v", s)])
        .unwrap()
        .query()
        .unwrap()
        .trim_start_matches("v=")
        .to_owned()
}
