//! GitHub Actions OIDC tokens, requested from the Actions runtime the way
//! `@actions/core`'s `getIDToken` does: GET `ACTIONS_ID_TOKEN_REQUEST_URL` plus
//! `&audience=…`, authorised by `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answering `{"value": jwt}`.

use std::time::Duration;

use super::hub::{ClientError, chain};

/// Where the runtime hands out OIDC tokens, and the audience to ask for.
#[derive(Clone)]
pub struct OidcSource {
    request_url: String,
    request_token: String,
    audience: Option<String>,
}

impl OidcSource {
    /// The source the Actions runtime exposes, when the job has `permissions: id-token: write`.
    pub fn from_env(audience: Option<String>) -> Option<OidcSource> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Some(OidcSource {
            request_url: var("ACTIONS_ID_TOKEN_REQUEST_URL")?,
            request_token: var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?,
            audience: audience.filter(|a| !a.trim().is_empty()),
        })
    }

    /// The request URL with the audience appended.
    fn url(&self) -> String {
        match &self.audience {
            None => self.request_url.clone(),
            Some(aud) => {
                let sep = if self.request_url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                let aud: String = form_urlencoded::byte_serialize(aud.as_bytes()).collect();
                format!("{}{sep}audience={aud}", self.request_url)
            }
        }
    }

    /// A fresh token (each one is accepted once by the Hub).
    pub async fn fetch(&self, http: &reqwest::Client) -> Result<String, ClientError> {
        let failed = |why: String| {
            ClientError::Transport(format!(
                "requesting a GitHub OIDC token from ACTIONS_ID_TOKEN_REQUEST_URL failed: {why}"
            ))
        };
        let resp = http
            .get(self.url())
            .bearer_auth(&self.request_token)
            .header("accept", "application/json")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| failed(chain(&e)))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ClientError::Usage(format!(
                "the Actions runtime refused an OIDC token ({status}): does the job have \
                 `permissions: id-token: write`? {body}"
            )));
        }
        body["value"]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| failed(format!("the answer has no \"value\": {body}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audience_is_appended_to_the_runtime_url() {
        let s = OidcSource {
            request_url: "http://127.0.0.1:1/token?api-version=2.0".into(),
            request_token: "t".into(),
            audience: Some("https://hub.example.com".into()),
        };
        assert_eq!(
            s.url(),
            "http://127.0.0.1:1/token?api-version=2.0&audience=https%3A%2F%2Fhub.example.com"
        );
        let bare = OidcSource {
            request_url: "http://127.0.0.1:1/token".into(),
            audience: Some("atlas".into()),
            ..s
        };
        assert_eq!(bare.url(), "http://127.0.0.1:1/token?audience=atlas");
    }
}
