//! The local developer sign-in of `atlas-hub serve`: one click signs the developer in as an
//! admin, so a newcomer can open the operator pages before configuring any provider.
//!
//! It can never be reached on a deployment. The route is not in the route table
//! ([`super::routes`]) that every Vercel and Lambda function serves: only
//! [`super::local_router`] adds it, and only `cli/serve.rs` calls that, and only when no
//! sign-in provider is configured. The handler itself also refuses unless the Hub's own URL
//! and the request's peer are loopback addresses.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::domain::sessions::{self, Role, RuleKind};
use crate::domain::signin::{self, Identity};
use crate::error::{ApiError, Code};
use crate::http::ApiResult;
use crate::http::extract::{Client, Query};
use crate::state::AppState;

/// The path of the developer sign-in.
pub const PATH: &str = "/api/v1/auth/signin/local";

/// The developer sign-in's route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(PATH, get(signin))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LocalQuery {
    return_to: Option<String>,
}

/// Whether a base URL's host is a loopback address or `localhost`.
fn loopback_url(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    let host = host
        .rsplit_once(':')
        .filter(|(h, port)| !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The name the developer signs in as: the OS user, when it is a plain name.
fn developer() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| {
            !u.is_empty()
                && u.len() <= 64
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .unwrap_or_else(|| "developer".to_owned())
}

/// Signs the developer in as an admin (`local:<user>`, through a `local_user` rule it
/// grants) and returns to `returnTo`.
async fn signin(
    State(state): State<Arc<AppState>>,
    Client(peer): Client,
    Query(query): Query<LocalQuery>,
    headers: HeaderMap,
) -> ApiResult {
    if !loopback_url(&state.config.hub_url) || !peer.is_some_and(|ip| ip.is_loopback()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::ScopeDenied,
            "the developer sign-in answers only on loopback",
        ));
    }
    let return_to = signin::return_to(query.return_to.as_deref())?;
    let user = developer();
    let conn = state.db.conn().await?;
    sessions::grant(
        &conn,
        RuleKind::LocalUser,
        &user,
        Role::Admin,
        &[],
        "atlas-hub serve",
    )
    .await?;
    drop(conn);
    let identity = Identity {
        person: format!("local:{user}"),
        claims: RuleKind::LocalUser.claim(&user).into_iter().collect(),
        token: None,
    };
    super::auth::open_session(&state, "local", identity, &headers, &return_to).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hub_urls_offer_the_developer_sign_in() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:9/x",
            "http://127.1.2.3",
        ] {
            assert!(loopback_url(ok), "{ok}");
        }
        for bad in [
            "https://hub.example.com",
            "http://10.0.0.1:8080",
            "http://localhost.evil.example",
            "http://[::2]",
        ] {
            assert!(!loopback_url(bad), "{bad}");
        }
    }
}
