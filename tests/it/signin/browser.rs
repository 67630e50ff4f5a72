//! A browser's part in a sign-in, as the tests play it: HTTP without following redirects
//! (each step is looked at), and the Hub's cookies kept and sent back as a browser on
//! loopback does (`Secure` cookies included: browsers treat loopback as a secure context).

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// One browser profile talking to one Hub.
pub struct Browser {
    hub: String,
    client: reqwest::Client,
    jar: BTreeMap<String, String>,
    /// The `Set-Cookie` values of the last response from the Hub.
    pub set_cookies: Vec<String>,
}

impl Browser {
    pub fn new(hub: &str) -> Browser {
        Browser {
            hub: hub.to_owned(),
            client: crate::support::client(),
            jar: BTreeMap::new(),
            set_cookies: Vec::new(),
        }
    }

    /// The value of the Hub's cookie `name`, if the browser holds one.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    /// Plants a cookie (what an attacker who could set one would do).
    pub fn plant(&mut self, name: &str, value: &str) {
        self.jar.insert(name.to_owned(), value.to_owned());
    }

    /// The `Cookie` header value for the Hub.
    pub fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A request to `url` (absolute, or a path on the Hub) with the Hub's cookies.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.hub)
        } else {
            url.to_owned()
        };
        let mut builder = self.client.request(method, &url);
        if url.starts_with(&self.hub) && !self.jar.is_empty() {
            builder = builder.header(COOKIE, self.cookie_header());
        }
        builder
    }

    /// Sends `request` and keeps the cookies the Hub sets.
    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request
            .send()
            .await
            .expect("the request reaches its server");
        if response.url().as_str().starts_with(&self.hub) {
            self.set_cookies = response
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            for set in &self.set_cookies {
                let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
                let (name, value) = pair.split_once('=').unwrap();
                if attributes.contains("Max-Age=0") {
                    self.jar.remove(name);
                } else {
                    self.jar.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        response
    }

    /// `GET url` (not following redirects).
    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let request = self.request(reqwest::Method::GET, url);
        self.send(request).await
    }

    /// The `Set-Cookie` of the last response for cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(String::as_str)
    }
}

/// A redirect's target.
pub fn location(response: &reqwest::Response) -> String {
    assert_eq!(
        response.status(),
        302,
        "expected a redirect from {}",
        response.url()
    );
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// A URL's query parameter.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
