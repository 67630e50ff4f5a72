//! Route patterns with `{param}` segments, and matching a path against the table.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::Method;

use super::{ApiRequest, ApiResult};
use crate::state::AppState;

/// A handler: takes the instance state and the request, answers a response or a problem.
pub type Handler = fn(Arc<AppState>, ApiRequest) -> BoxFuture<'static, ApiResult>;

/// One route: what it answers, which handler, and which `api/` file hosts it on Vercel.
pub struct Route {
    /// Path pattern, `{name}` for a parameter segment: `/api/v1/download/{downloadId}`.
    pub pattern: &'static str,
    /// The query parameters it takes; any other is refused (400), as is one given twice.
    pub query: &'static [&'static str],
    /// Methods and their handlers (`HEAD` is answered by the `GET` handler when absent).
    pub methods: &'static [(Method, Handler)],
    /// The serverless function file hosting this route, relative to the project root.
    pub api_file: &'static str,
    /// The `[[bin]]` name of that file in `Cargo.toml`.
    pub bin: &'static str,
}

impl Route {
    /// Matches `path` against the pattern, returning percent-decoded parameters.
    pub fn match_path(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let mut params = Vec::new();
        let mut pattern = self.pattern.split('/');
        let mut segments = path.split('/');
        loop {
            match (pattern.next(), segments.next()) {
                (None, None) => return Some(params),
                (Some(p), Some(s)) => {
                    if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                        if s.is_empty() {
                            return None;
                        }
                        let value = percent_encoding::percent_decode_str(s)
                            .decode_utf8()
                            .ok()?
                            .into_owned();
                        params.push((name, value));
                    } else if p != s {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }

    /// Parameter names in pattern order.
    pub fn param_names(&self) -> impl Iterator<Item = &'static str> {
        self.pattern
            .split('/')
            .filter_map(|p| p.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
    }

    /// The handler for `method`; `HEAD` falls back to `GET`.
    pub fn handler(&self, method: &Method) -> Option<Handler> {
        let find = |m: &Method| self.methods.iter().find(|(x, _)| x == m).map(|(_, h)| *h);
        find(method).or_else(|| {
            if method == Method::HEAD {
                find(&Method::GET)
            } else {
                None
            }
        })
    }

    /// The `Allow` header value for a 405.
    pub fn allow(&self) -> String {
        let mut methods: Vec<&str> = self.methods.iter().map(|(m, _)| m.as_str()).collect();
        if methods.contains(&"GET") && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
        methods.join(", ")
    }
}

/// The result of looking a request up in a route table.
pub enum Lookup<'a> {
    /// A route and method matched.
    Found(&'a Route, Handler, Vec<(&'static str, String)>),
    /// The path exists but not with this method; the value is the `Allow` header.
    MethodNotAllowed(String),
    /// No route has this path.
    NotFound,
}

/// Finds the route for `method` and `path`. Literal segments win over parameters, so
/// `/api/v1/releases/x/channels` is the channel list, not release `channels`.
pub fn lookup<'a>(routes: &'a [Route], method: &Method, path: &str) -> Lookup<'a> {
    let mut matches: Vec<(&Route, Vec<(&'static str, String)>)> = routes
        .iter()
        .filter_map(|r| r.match_path(path).map(|p| (r, p)))
        .collect();
    // Fewer parameters = more specific.
    matches.sort_by_key(|(r, _)| r.param_names().count());
    let Some((route, params)) = matches.first() else {
        return Lookup::NotFound;
    };
    let specificity = route.param_names().count();
    for (route, params) in matches
        .iter()
        .take_while(|(r, _)| r.param_names().count() == specificity)
    {
        if let Some(h) = route.handler(method) {
            return Lookup::Found(route, h, params.clone());
        }
    }
    match route.handler(method) {
        Some(h) => Lookup::Found(route, h, params.clone()),
        None => Lookup::MethodNotAllowed(route.allow()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn route(pattern: &'static str) -> Route {
        Route {
            query: &[],
            pattern,
            methods: &[],
            api_file: "",
            bin: "",
        }
    }

    #[test]
    fn parameters_are_extracted_and_percent_decoded() {
        let r = route("/api/v1/updater/{product}/{target}/{arch}/{currentVersion}");
        let p = r
            .match_path("/api/v1/updater/launcher/linux/x86_64/1.2.0%2Bbuild.5")
            .unwrap();
        assert_eq!(p[3], ("currentVersion", "1.2.0+build.5".to_owned()));
        assert!(
            r.match_path("/api/v1/updater/launcher/linux/x86_64")
                .is_none()
        );
        assert!(
            r.match_path("/api/v1/updater/launcher/linux//1.0.0")
                .is_none()
        );
    }

    #[test]
    fn literal_segments_must_match_exactly() {
        let r = route("/api/v1/releases/{product}/channels");
        assert!(r.match_path("/api/v1/releases/launcher/channels").is_some());
        assert!(r.match_path("/api/v1/releases/launcher/channel").is_none());
        assert!(
            r.match_path("/api/v1/releases/launcher/channels/")
                .is_none()
        );
    }
}

/// Properties of path matching: total on any path, parameters percent-decoded exactly once,
/// and a route table lookup that never panics.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::tests::route;
    use super::*;
    use crate::test_support::hostile_string;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn encoded_parameters_decode_to_what_was_encoded(a in hostile_string(30), b in hostile_string(30)) {
            prop_assume!(!a.is_empty() && !b.is_empty());
            let r = route("/x/{a}/y/{b}");
            let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
            let params = r.match_path(&format!("/x/{}/y/{}", enc(&a), enc(&b))).unwrap();
            prop_assert_eq!(params, vec![("a", a.clone()), ("b", b.clone())]);
            // Decoded once: an encoded `%` stays a `%` followed by what came after it.
            let twice = enc(&enc(&a));
            let params = r.match_path(&format!("/x/{twice}/y/z")).unwrap();
            prop_assert_eq!(&params[0].1, &enc(&a));
        }

        #[test]
        fn any_path_matches_or_not_without_panicking(path in prop_oneof![
            hostile_string(80),
            "(/[a-z0-9%.]{0,12}){0,8}",
            proptest::collection::vec(prop_oneof![Just("%".to_owned()), Just("%FF".to_owned()), Just("%2e%2e".to_owned()),
                Just("%2F".to_owned()), Just("..".to_owned()), "[a-z]{1,4}".prop_map(String::from)], 0..10)
                .prop_map(|s| format!("/api/v1/releases/{}", s.join("/"))),
        ]) {
            for r in crate::routes::ROUTES {
                if let Some(params) = r.match_path(&path) {
                    prop_assert_eq!(params.len(), r.param_names().count());
                    prop_assert!(params.iter().all(|(_, v)| !v.is_empty()));
                }
            }
            let _ = lookup(crate::routes::ROUTES, &Method::GET, &path);
            let _ = lookup(crate::routes::ROUTES, &Method::POST, &path);
        }
    }

    #[test]
    fn invalid_utf8_in_a_parameter_matches_no_route() {
        assert!(route("/x/{a}").match_path("/x/%FF").is_none());
        assert!(route("/x/{a}").match_path("/x/%C3").is_none());
        assert_eq!(
            route("/x/{a}").match_path("/x/%2e%2e%2F").unwrap()[0].1,
            "../"
        );
    }
}
