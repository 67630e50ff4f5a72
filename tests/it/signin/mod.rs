//! Operator sign-in, end to end over real HTTP: the Hub process, a real OpenID provider
//! (`oidc-provider` from npm, as Entra-like tenants and as a generic issuer), a stand-in for
//! github.com speaking its wire format, cookies and redirects followed step by step.

pub mod browser;
pub mod github;
mod github_flows;
mod local;
mod oidc_flows;
pub mod oidc_provider;

use serde_json::Value;

use crate::support::{PEPPER, TestHub};

/// `atlas-hub admin bootstrap-access` on `hub`'s database: a rule granting `role`.
pub fn grant(hub: &TestHub, kind: &str, value: &str, role: &str, products: &[&str]) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-hub"));
    cmd.args([
        "admin",
        "bootstrap-access",
        "--kind",
        kind,
        "--value",
        value,
        "--role",
        role,
    ])
    .env("DATABASE_URL", &hub.database_url)
    .env("ATLAS_TOKEN_PEPPER", PEPPER);
    for p in products {
        cmd.args(["--product", p]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A problem answer's status, `code` and `reason`.
pub async fn refusal(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    (status, text("code"), text("reason"))
}

/// Whether the Hub's request log has a line refusing with `reason`.
pub fn logged_reason(hub: &TestHub, reason: &str) -> bool {
    hub.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|l| l["reason"] == reason)
}
