//! Operator sign-in as configured (`ATLAS_SIGNIN_*`, `ATLAS_SESSION_*`): which providers
//! are on, and how long sessions last. A provider is on when its client id is set; then
//! every variable it needs must be set too, or the start fails naming each one.

use std::time::Duration;

use super::{Reader, Secret};

/// The sign-in providers that are on (none: sign-in is off, tokens work as ever).
#[derive(Debug, Clone, Default)]
pub struct SigninConfig {
    /// `ATLAS_SIGNIN_GITHUB_*`: GitHub (or GitHub Enterprise Server) OAuth app.
    pub github: Option<GithubSignin>,
    /// `ATLAS_SIGNIN_MICROSOFT_*`: Microsoft Entra ID, one or more allowed tenants.
    pub microsoft: Option<MicrosoftSignin>,
    /// `ATLAS_SIGNIN_OIDC_*`: any other OpenID Connect issuer (Google, Okta, Keycloak…).
    pub oidc: Option<OidcSignin>,
    /// `ATLAS_SESSION_IDLE_SECS` (default 8 h) and `ATLAS_SESSION_MAX_SECS` (default 7 days).
    pub idle: Duration,
    pub absolute: Duration,
}

impl SigninConfig {
    /// Whether any provider is on.
    pub fn any(&self) -> bool {
        self.github.is_some() || self.microsoft.is_some() || self.oidc.is_some()
    }
}

/// A GitHub OAuth app.
#[derive(Debug, Clone)]
pub struct GithubSignin {
    pub client_id: String,
    pub client_secret: Secret,
    /// `ATLAS_SIGNIN_GITHUB_URL`: where people authorize (default `https://github.com`).
    pub web_url: String,
    /// `ATLAS_SIGNIN_GITHUB_API_URL`: the REST API (default `https://api.github.com`).
    pub api_url: String,
}

/// A Microsoft Entra ID app registration.
#[derive(Debug, Clone)]
pub struct MicrosoftSignin {
    pub client_id: String,
    pub client_secret: Secret,
    /// `ATLAS_SIGNIN_MICROSOFT_TENANTS`: the tenant ids (GUIDs) whose people may sign in;
    /// `common`, `organizations` and `consumers` are refused, so "any tenant" can never be
    /// configured by accident.
    pub tenants: Vec<String>,
    /// `ATLAS_SIGNIN_MICROSOFT_AUTHORITY`: default `https://login.microsoftonline.com`; each
    /// tenant's issuer is `<authority>/<tenant>/v2.0`.
    pub authority: String,
}

impl MicrosoftSignin {
    /// The issuer of `tenant`'s tokens, as Entra writes it.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.authority)
    }
}

/// A generic OpenID Connect client.
#[derive(Debug, Clone)]
pub struct OidcSignin {
    /// `ATLAS_SIGNIN_OIDC_ISSUER`: discovery is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// `ATLAS_SIGNIN_OIDC_NAME`: the sign-in button's label (default "Single sign-on").
    pub name: String,
}

/// Whether `s` is a GUID as Entra spells tenant ids.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Reads a provider's client id and secret (`vars`: id, secret, then the provider's other
/// variables): none when none of them is set; a problem for each of id and secret missing
/// when any is set.
fn client(r: &mut Reader<'_>, vars: &[&str]) -> Option<(String, Secret)> {
    let (id_var, secret_var) = (vars[0], vars[1]);
    let id = r.optional(id_var);
    let secret = r.optional(secret_var);
    let others = vars[2..].iter().any(|v| r.optional(v).is_some());
    match (id, secret) {
        (Some(id), Some(secret)) => Some((id, Secret::new(secret))),
        (None, None) if !others => None,
        (id, secret) => {
            for (var, missing) in [(id_var, id.is_none()), (secret_var, secret.is_none())] {
                if missing {
                    r.problem(var, "missing: this sign-in provider is half configured");
                }
            }
            None
        }
    }
}

/// A URL variable with a default.
fn url_or(r: &mut Reader<'_>, var: &str, default: &str) -> String {
    let value = r.optional(var).unwrap_or_else(|| default.to_owned());
    r.url(var, &value)
}

pub(super) fn read(r: &mut Reader<'_>) -> SigninConfig {
    let github = client(
        r,
        &[
            "ATLAS_SIGNIN_GITHUB_CLIENT_ID",
            "ATLAS_SIGNIN_GITHUB_CLIENT_SECRET",
            "ATLAS_SIGNIN_GITHUB_URL",
            "ATLAS_SIGNIN_GITHUB_API_URL",
        ],
    )
    .map(|(client_id, client_secret)| GithubSignin {
        client_id,
        client_secret,
        web_url: url_or(r, "ATLAS_SIGNIN_GITHUB_URL", "https://github.com"),
        api_url: url_or(r, "ATLAS_SIGNIN_GITHUB_API_URL", "https://api.github.com"),
    });

    let microsoft = client(
        r,
        &[
            "ATLAS_SIGNIN_MICROSOFT_CLIENT_ID",
            "ATLAS_SIGNIN_MICROSOFT_CLIENT_SECRET",
            "ATLAS_SIGNIN_MICROSOFT_TENANTS",
            "ATLAS_SIGNIN_MICROSOFT_AUTHORITY",
        ],
    )
    .map(|(client_id, client_secret)| {
        const TENANTS: &str = "ATLAS_SIGNIN_MICROSOFT_TENANTS";
        let raw = r.required(TENANTS);
        let tenants: Vec<String> = raw
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        if !raw.is_empty() && (tenants.is_empty() || !tenants.iter().all(|t| is_guid(t))) {
            r.problem(
                TENANTS,
                "expected the tenant ids (GUIDs) whose people may sign in, comma-separated; \
                 common, organizations and consumers would let any tenant in and are refused",
            );
        }
        MicrosoftSignin {
            client_id,
            client_secret,
            tenants,
            authority: url_or(
                r,
                "ATLAS_SIGNIN_MICROSOFT_AUTHORITY",
                "https://login.microsoftonline.com",
            ),
        }
    });

    let oidc = client(
        r,
        &[
            "ATLAS_SIGNIN_OIDC_CLIENT_ID",
            "ATLAS_SIGNIN_OIDC_CLIENT_SECRET",
            "ATLAS_SIGNIN_OIDC_ISSUER",
            "ATLAS_SIGNIN_OIDC_NAME",
        ],
    )
    .map(|(client_id, client_secret)| {
        let issuer = r.required("ATLAS_SIGNIN_OIDC_ISSUER");
        let issuer = if issuer.is_empty() {
            issuer
        } else {
            r.url("ATLAS_SIGNIN_OIDC_ISSUER", &issuer)
        };
        OidcSignin {
            issuer,
            client_id,
            client_secret,
            name: r
                .optional("ATLAS_SIGNIN_OIDC_NAME")
                .unwrap_or_else(|| "Single sign-on".to_owned()),
        }
    });

    let idle = r.number("ATLAS_SESSION_IDLE_SECS", 8 * 3600u64, 60, 30 * 86_400);
    let absolute = r.number("ATLAS_SESSION_MAX_SECS", 7 * 86_400u64, 300, 90 * 86_400);
    if idle > absolute {
        r.problem(
            "ATLAS_SESSION_IDLE_SECS",
            "longer than ATLAS_SESSION_MAX_SECS: a session would end at its maximum first",
        );
    }
    SigninConfig {
        github,
        microsoft,
        oidc,
        idle: Duration::from_secs(idle),
        absolute: Duration::from_secs(absolute),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_vars(vars: &[(&str, &str)]) -> (SigninConfig, Vec<(String, String)>) {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |k: &str| map.get(k).cloned();
        let mut r = Reader {
            get: &get,
            problems: Vec::new(),
        };
        let c = read(&mut r);
        (c, r.problems)
    }

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn nothing_configured_means_sign_in_is_off() {
        let (c, problems) = read_vars(&[]);
        assert!(!c.any() && problems.is_empty());
        assert_eq!(c.idle, Duration::from_secs(8 * 3600));
    }

    #[test]
    fn each_provider_is_on_with_its_variables() {
        let (c, problems) = read_vars(&[
            ("ATLAS_SIGNIN_GITHUB_CLIENT_ID", "Iv1.abc"),
            ("ATLAS_SIGNIN_GITHUB_CLIENT_SECRET", "gh-secret"),
            ("ATLAS_SIGNIN_MICROSOFT_CLIENT_ID", "app"),
            ("ATLAS_SIGNIN_MICROSOFT_CLIENT_SECRET", "ms-secret"),
            ("ATLAS_SIGNIN_MICROSOFT_TENANTS", &TENANT.to_uppercase()),
            ("ATLAS_SIGNIN_OIDC_ISSUER", "https://accounts.google.com/"),
            ("ATLAS_SIGNIN_OIDC_CLIENT_ID", "g"),
            ("ATLAS_SIGNIN_OIDC_CLIENT_SECRET", "g-secret"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.github.unwrap().api_url, "https://api.github.com");
        let ms = c.microsoft.unwrap();
        assert_eq!(ms.tenants, [TENANT]);
        assert_eq!(
            ms.issuer(TENANT),
            format!("https://login.microsoftonline.com/{TENANT}/v2.0")
        );
        let oidc = c.oidc.unwrap();
        assert_eq!(oidc.issuer, "https://accounts.google.com");
        assert!(!format!("{oidc:?}").contains("g-secret"));
    }

    #[test]
    fn any_tenant_and_half_configured_providers_fail_at_start() {
        for tenants in ["common", "organizations", "consumers", "", "x, y"] {
            let (_, problems) = read_vars(&[
                ("ATLAS_SIGNIN_MICROSOFT_CLIENT_ID", "app"),
                ("ATLAS_SIGNIN_MICROSOFT_CLIENT_SECRET", "s"),
                ("ATLAS_SIGNIN_MICROSOFT_TENANTS", tenants),
            ]);
            assert_eq!(problems.len(), 1, "{tenants:?}: {problems:?}");
            assert_eq!(problems[0].0, "ATLAS_SIGNIN_MICROSOFT_TENANTS");
        }
        let (_, problems) = read_vars(&[
            ("ATLAS_SIGNIN_GITHUB_CLIENT_ID", "x"),
            ("ATLAS_SIGNIN_OIDC_ISSUER", "https://idp.example"),
            ("ATLAS_SESSION_IDLE_SECS", "999999"),
            ("ATLAS_SESSION_MAX_SECS", "3600"),
        ]);
        let vars: Vec<&str> = problems.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(
            vars,
            [
                "ATLAS_SIGNIN_GITHUB_CLIENT_SECRET",
                "ATLAS_SIGNIN_OIDC_CLIENT_ID",
                "ATLAS_SIGNIN_OIDC_CLIENT_SECRET",
                "ATLAS_SESSION_IDLE_SECS"
            ],
            "{problems:?}"
        );
    }
}
