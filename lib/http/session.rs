//! The operator's session on the HTTP layer: the `__Host-` cookies (the session, and the
//! sign-in flow in progress), and the cross-site request checks every state-changing
//! request that authenticates with the session cookie must pass.
//!
//! `__Host-` cookies are `Secure`, `Path=/` and carry no `Domain`, so no other host (not even
//! a sibling subdomain) can set or read them; `HttpOnly` keeps them from scripts;
//! `SameSite=Lax` keeps them off cross-site subrequests while the provider's redirect back
//! (a top-level GET) still carries the flow cookie. Browsers accept `Secure` cookies over
//! plain HTTP only from loopback, so a deployed Hub is served over HTTPS.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::config::Secret;
use crate::domain::sessions;
use crate::error::{ApiError, Code};

/// The session cookie: a random value whose digest names the session.
pub const SESSION_COOKIE: &str = "__Host-atlas-session";
/// The cookie binding a sign-in flow to the browser that started it.
pub const FLOW_COOKIE: &str = "__Host-atlas-signin";
/// The header a cookie-authenticated write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-atlas-csrf";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value for a `__Host-` cookie: `value` for `max_age`, or removed when
/// `None`.
pub fn set_cookie(name: &str, value: Option<(&Secret, Duration)>) -> HeaderValue {
    let builder = Cookie::build((name, value.map_or("", |(v, _)| v.expose())))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax);
    let max_age = value.map_or(0, |(_, age)| age.as_secs() as i64);
    let cookie = builder
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie values are visible ASCII")
}

/// A refused cross-site request (403 `csrf_failed`), with its reason in the log.
fn cross_site(reason: &str, detail: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, Code::CsrfFailed, detail)
        .with_extra(serde_json::json!({ "reason": reason }))
}

/// The origin (`scheme://host[:port]`) of a base URL.
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Whether the request changes state (anything but GET, HEAD and OPTIONS).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The checks a state-changing request made with the session cookie must pass, so a page of
/// another site cannot make a signed-in operator's browser act: `Sec-Fetch-Site`, when the
/// browser sends it, is `same-origin`; `Origin`, when sent, is the Hub's; and the
/// `x-atlas-csrf` header holds the session's CSRF token, which only the Hub's own pages can
/// read (from `GET /api/v1/auth/session`). Token-authenticated requests never get here.
pub fn check_same_origin(
    parts: &Parts,
    hub_url: &str,
    pepper: &Secret,
    cookie: &str,
) -> Result<(), ApiError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && site != "same-origin"
    {
        return Err(cross_site(
            "cross_site",
            &format!("a {site} request may not act with the session cookie"),
        ));
    }
    if let Some(origin) = header("origin")
        && origin != origin_of(hub_url)
    {
        return Err(cross_site(
            "origin_mismatch",
            "a request from another origin may not act with the session cookie",
        ));
    }
    let expected = sessions::csrf_token(pepper, cookie);
    match header(CSRF_HEADER) {
        None => Err(cross_site(
            "csrf_token_missing",
            &format!(
                "a change made with the session cookie needs the {CSRF_HEADER} header (the \
                 csrfToken of GET /api/v1/auth/session)"
            ),
        )),
        Some(sent) if !constant_time_eq(sent.as_bytes(), expected.as_bytes()) => Err(cross_site(
            "csrf_token_mismatch",
            &format!("the {CSRF_HEADER} header does not hold this session's CSRF token"),
        )),
        Some(_) => Ok(()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::builder().method(method).uri("/x");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn cookies_are_host_prefixed_secure_http_only_lax() {
        let value = set_cookie(
            SESSION_COOKIE,
            Some((&Secret::new("abc"), Duration::from_secs(60))),
        );
        let text = value.to_str().unwrap();
        for part in [
            "__Host-atlas-session=abc",
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=60",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.contains("Domain"), "{text}");
        let removed = set_cookie(SESSION_COOKIE, None);
        assert!(removed.to_str().unwrap().contains("Max-Age=0"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-atlas-session=xyz; b=2"),
        );
        assert_eq!(
            read_cookie(&headers, SESSION_COOKIE).as_deref(),
            Some("xyz")
        );
        assert_eq!(read_cookie(&headers, FLOW_COOKIE), None);
    }

    #[test]
    fn cookie_writes_need_the_same_origin_and_the_csrf_token() {
        let pepper = Secret::new("p".repeat(32));
        let hub = "https://hub.example.com/base";
        let token = sessions::csrf_token(&pepper, "c");
        let check = |headers: &[(&str, &str)]| {
            check_same_origin(&parts(Method::POST, headers), hub, &pepper, "c")
                .map_err(|e| e.extra.unwrap()["reason"].as_str().unwrap().to_owned())
        };
        assert_eq!(
            check(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://hub.example.com"),
                (CSRF_HEADER, &token)
            ]),
            Ok(())
        );
        assert_eq!(check(&[(CSRF_HEADER, &token)]), Ok(()));
        assert_eq!(
            check(&[("sec-fetch-site", "cross-site"), (CSRF_HEADER, &token)]).unwrap_err(),
            "cross_site"
        );
        assert_eq!(
            check(&[("sec-fetch-site", "same-site"), (CSRF_HEADER, &token)]).unwrap_err(),
            "cross_site"
        );
        assert_eq!(
            check(&[("origin", "https://evil.example"), (CSRF_HEADER, &token)]).unwrap_err(),
            "origin_mismatch"
        );
        assert_eq!(check(&[]).unwrap_err(), "csrf_token_missing");
        assert_eq!(
            check(&[(CSRF_HEADER, "0000")]).unwrap_err(),
            "csrf_token_mismatch"
        );
        assert!(is_unsafe(&Method::DELETE) && !is_unsafe(&Method::GET));
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
