//! The operator console's files, as `atlas-hub serve` serves them. On Vercel the console is
//! static output (`public/console/`, published by the CDN with the headers `vercel.json`
//! gives it); no function serves it. The local server has no static file server, so it
//! serves the same files, compiled in, with the same headers ([`HEADERS`]; a layout test
//! holds `vercel.json` to them). Every other path under `/console/` is the app's shell,
//! which routes in the browser.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};

/// The headers of every console file: no script but the Hub's own (`script-src 'self'`, no
/// inline script), never framed, nothing kept by a shared cache.
pub const HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cache-control", "private, no-cache"),
];

/// Declares the console's files, each compiled in from `public/console/`.
macro_rules! assets {
    ($($path:literal => $mime:literal,)*) => {
        /// Every file of `public/console/` with its content type (`tests/it/layout.rs`
        /// checks the list against the folder).
        pub const ASSETS: &[(&str, &str, &[u8])] = &[
            $(($path, $mime, include_bytes!(concat!("../../public/console/", $path))),)*
        ];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "lib.js" => "text/javascript; charset=utf-8",
    "pages/signin.js" => "text/javascript; charset=utf-8",
    "pages/products.js" => "text/javascript; charset=utf-8",
    "pages/product.js" => "text/javascript; charset=utf-8",
    "pages/release.js" => "text/javascript; charset=utf-8",
    "pages/tokens.js" => "text/javascript; charset=utf-8",
    "pages/packs.js" => "text/javascript; charset=utf-8",
    "pages/audit.js" => "text/javascript; charset=utf-8",
    "pages/access.js" => "text/javascript; charset=utf-8",
    "pages/usage.js" => "text/javascript; charset=utf-8",
}

/// The console's routes for the local server.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|| async { asset("index.html") }))
        .route("/console/", get(|| async { asset("index.html") }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>| async move { asset(&path) }),
        )
}

/// The file at `path`, or the shell for any other console path.
fn asset(path: &str) -> Response {
    let (_, mime, bytes) = ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .or_else(|| ASSETS.iter().find(|(p, _, _)| *p == "index.html"))
        .expect("index.html is an asset");
    let mut response = Response::new(Body::from(*bytes));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    for (name, value) in HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}
