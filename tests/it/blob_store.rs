//! A local Vercel Blob-compatible store on loopback, the tests' stand-in for Vercel Blob: the Blob API's
//! upload (`PUT {api}?pathname=…`, also `{api}/?pathname=…` as the JS SDK sends it), metadata lookup (`GET {api}?url=…`) and listing
//! (`GET {api}?limit=…`), plus public blob URLs (`GET {public}/{pathname}`), with data in a
//! folder.
//!
//! Uploads are checked the way the Blob API checks them: a client token's store, HMAC and
//! expiry, its pathname, content types, maximum size and overwrite rule; a read-write token
//! must be the store's. Errors use the API's body (`{"error": {"code", "message"}}`) and the
//! messages the official SDK recognises. Beyond the API, a declared `x-content-length` must
//! equal the body received. Not emulated: random suffixes (refused), multipart uploads,
//! private access, deletes, copies.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use atlas_hub::storage::blob::{
    self, CLIENT_TOKEN_PREFIX, ClientTokenError, ClientTokenPayload, MAX_PATHNAME_LEN,
    encode_pathname,
};

/// Read-write token of the local store (it only listens on loopback).
pub const READ_WRITE_TOKEN: &str =
    "vercel_blob_rw_AtlasLocalStore01_atlasLocalBlobSecret0123456789abcdef";

/// Largest body the local store takes in one PUT.
const MAX_LOCAL_BODY: u64 = 1 << 30;

/// A running local Blob store.
pub struct LocalBlob {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

struct Store {
    root: PathBuf,
    read_write_token: String,
    public_url: String,
    /// Serialises writes, so the overwrite check and the write are one step.
    writing: tokio::sync::Mutex<()>,
}

/// Sidecar metadata of a stored blob.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    content_type: String,
    uploaded_at: String,
    size: u64,
}

impl LocalBlob {
    /// Serves a store kept in `root` (created here), reached with `read_write_token`, on
    /// `127.0.0.1:port` (0 = any).
    pub async fn start(root: &Path, read_write_token: &str, port: u16) -> Result<Self, String> {
        blob::store_id_of_read_write_token(read_write_token)
            .map_err(|e| format!("local Blob store token: {e}"))?;
        for sub in ["objects", "meta"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| format!("{}: {e}", root.display()))?;
        }
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("local Blob store on port {port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let store = Arc::new(Store {
            root: root.to_owned(),
            read_write_token: read_write_token.to_owned(),
            public_url: format!("http://{addr}/public"),
            writing: tokio::sync::Mutex::new(()),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let store = store.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let store = store.clone();
                        async move { Ok::<_, Infallible>(store.handle(req).await) }
                    });
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// The Blob API base URL to configure (`VERCEL_BLOB_API_URL`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api/blob", self.addr)
    }

    /// The base of public blob URLs (`ATLAS_BLOB_PUBLIC_URL`).
    pub fn public_url(&self) -> String {
        format!("http://{}/public", self.addr)
    }
}

impl Drop for LocalBlob {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = Response<Full<Bytes>>;

fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Answer {
    let body = json!({"error": {"code": code, "message": message.into()}});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

fn json_answer(value: serde_json::Value) -> Answer {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("a valid response")
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn header_str<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A pathname the store can keep as a file: no empty, `.` or `..` segment.
fn valid_pathname(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("pathname is required");
    }
    if p.len() > MAX_PATHNAME_LEN {
        return Err("pathname is too long");
    }
    if p.contains("//") {
        return Err("pathname cannot contain \"//\"");
    }
    let bad = p
        .split('/')
        .enumerate()
        .any(|(i, s)| (s.is_empty() && i == 0) || s == "." || s == ".." || s.contains('\0'));
    if bad || p.contains('\\') {
        return Err("pathname has an empty, \".\" or \"..\" segment");
    }
    Ok(())
}

/// What a write may do, from the token and headers.
struct WriteRules {
    /// The client token's constraints; `None` for the read-write token.
    token: Option<ClientTokenPayload>,
    allow_overwrite: bool,
    add_random_suffix: bool,
}

impl Store {
    fn object_path(&self, pathname: &str) -> PathBuf {
        self.root.join("objects").join(pathname)
    }

    fn meta_path(&self, pathname: &str) -> PathBuf {
        self.root.join("meta").join(format!("{pathname}.json"))
    }

    fn blob_url(&self, pathname: &str) -> String {
        format!("{}/{}", self.public_url, encode_pathname(pathname))
    }

    fn read_meta(&self, pathname: &str) -> Option<Meta> {
        if valid_pathname(pathname).is_err() || !self.object_path(pathname).is_file() {
            return None;
        }
        let text = std::fs::read(self.meta_path(pathname)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn describe(&self, pathname: &str, meta: &Meta) -> serde_json::Value {
        let url = self.blob_url(pathname);
        let filename = pathname.rsplit('/').next().unwrap_or(pathname);
        json!({
            "url": url,
            "downloadUrl": format!("{url}?download=1"),
            "pathname": pathname,
            "size": meta.size,
            "uploadedAt": meta.uploaded_at,
            "contentType": meta.content_type,
            "contentDisposition": format!("attachment; filename=\"{filename}\""),
            "cacheControl": "public, max-age=2592000",
            "etag": format!("\"{}-{}\"", meta.size, meta.uploaded_at.len()),
        })
    }

    async fn handle(&self, req: Request<Incoming>) -> Answer {
        let path = req.uri().path().to_owned();
        let api = path == "/api/blob" || path == "/api/blob/";
        match (req.method().clone(), api) {
            (Method::PUT, true) => self.put(req).await,
            (Method::GET, true) => match self.authorize_read_write(&req) {
                Err(answer) => answer,
                Ok(()) => match query_param(&req, "url") {
                    Some(url) => self.head(&url),
                    None => self.list(&req),
                },
            },
            (Method::GET | Method::HEAD, false) if path.starts_with("/public/") => {
                self.public_get(&req, &path["/public/".len()..])
            }
            _ => api_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        }
    }

    fn bearer<'a>(&self, req: &'a Request<Incoming>) -> Option<&'a str> {
        header_str(req, "authorization")?.strip_prefix("Bearer ")
    }

    /// Metadata lookups and listings need the store's read-write token.
    fn authorize_read_write(&self, req: &Request<Incoming>) -> Result<(), Answer> {
        match self.bearer(req) {
            Some(t) if t.starts_with(CLIENT_TOKEN_PREFIX) => Err(api_error(
                StatusCode::FORBIDDEN,
                "client_token_not_allowed",
                "This operation is not available when using a client token.",
            )),
            Some(t) if constant_time_eq(t.as_bytes(), self.read_write_token.as_bytes()) => Ok(()),
            Some(t) if t.starts_with(blob::READ_WRITE_TOKEN_PREFIX) => Err(self.unknown_store(t)),
            _ => Err(api_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Access denied, please provide a valid token for this resource.",
            )),
        }
    }

    fn unknown_store(&self, token: &str) -> Answer {
        let ours = blob::store_id_of_read_write_token(&self.read_write_token).unwrap_or("");
        match blob::store_id_of_read_write_token(token) {
            Ok(id) if id != ours => api_error(
                StatusCode::NOT_FOUND,
                "store_not_found",
                "This store does not exist.",
            ),
            _ => api_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Access denied, please provide a valid token for this resource.",
            ),
        }
    }

    fn write_rules(&self, req: &Request<Incoming>) -> Result<WriteRules, Answer> {
        let forbidden = |message: &str| api_error(StatusCode::FORBIDDEN, "forbidden", message);
        let token = self.bearer(req).ok_or_else(|| {
            forbidden("Access denied, please provide a valid token for this resource.")
        })?;
        let header_flag = |name: &str| header_str(req, name).map(|v| v == "1");
        if token.starts_with(CLIENT_TOKEN_PREFIX) {
            let payload =
                blob::verify_client_token(token, &self.read_write_token).map_err(|e| match e {
                    ClientTokenError::OtherStore(_) => api_error(
                        StatusCode::NOT_FOUND,
                        "store_not_found",
                        "This store does not exist.",
                    ),
                    other => forbidden(&format!("Access denied: {other}.")),
                })?;
            if payload.is_expired(now_ms()) {
                return Err(api_error(
                    StatusCode::FORBIDDEN,
                    "client_token_expired",
                    "Token expired",
                ));
            }
            let allow_overwrite = payload.allow_overwrite.unwrap_or(false);
            let add_random_suffix = payload.add_random_suffix.unwrap_or(false);
            // A client cannot loosen what its token says.
            if header_flag("x-allow-overwrite") == Some(true) && !allow_overwrite {
                return Err(forbidden(
                    "Access denied: the client token does not allow overwriting.",
                ));
            }
            if header_flag("x-add-random-suffix") == Some(true) && !add_random_suffix {
                return Err(forbidden(
                    "Access denied: the client token does not allow a random suffix.",
                ));
            }
            Ok(WriteRules {
                token: Some(payload),
                allow_overwrite,
                add_random_suffix,
            })
        } else if constant_time_eq(token.as_bytes(), self.read_write_token.as_bytes()) {
            Ok(WriteRules {
                token: None,
                allow_overwrite: header_flag("x-allow-overwrite").unwrap_or(false),
                add_random_suffix: header_flag("x-add-random-suffix").unwrap_or(false),
            })
        } else {
            Err(self.unknown_store(token))
        }
    }

    async fn put(&self, req: Request<Incoming>) -> Answer {
        let bad = |message: String| api_error(StatusCode::BAD_REQUEST, "bad_request", message);
        let rules = match self.write_rules(&req) {
            Ok(r) => r,
            Err(answer) => return answer,
        };
        let Some(pathname) = query_param(&req, "pathname") else {
            return bad("pathname is required".into());
        };
        if let Err(why) = valid_pathname(&pathname) {
            return bad(why.into());
        }
        if let Some(token) = &rules.token
            && token.pathname != pathname
        {
            return bad(format!(
                "The \"pathname\" {pathname:?} does not match the token payload ({:?})",
                token.pathname
            ));
        }
        if rules.add_random_suffix {
            return bad("random suffixes are not emulated by the local Blob store".into());
        }
        match header_str(&req, "x-vercel-blob-access") {
            None | Some("public") => {}
            Some(other) => {
                return bad(format!(
                    "access {other:?} is not emulated by the local Blob store (public only)"
                ));
            }
        }
        let content_type = header_str(&req, "x-content-type")
            .unwrap_or("application/octet-stream")
            .to_owned();
        if let Some(token) = &rules.token
            && !token.allows_content_type(&content_type)
        {
            return bad(format!("contentType {content_type:?} is not allowed"));
        }
        let declared_length = match header_str(&req, "x-content-length").map(str::parse::<u64>) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => return bad("x-content-length is not a number".into()),
        };
        let limit = rules
            .token
            .as_ref()
            .and_then(|t| t.maximum_size_in_bytes)
            .unwrap_or(MAX_LOCAL_BODY)
            .min(MAX_LOCAL_BODY);
        let too_large = || {
            bad(format!(
                "File is too large, the file length cannot be greater than {limit} bytes"
            ))
        };
        if declared_length.is_some_and(|n| n > limit) {
            return too_large();
        }
        let body = match http_body_util::Limited::new(req.into_body(), limit as usize + 1)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
            Err(e) => return bad(format!("the body could not be read: {e}")),
        };
        if body.len() as u64 > limit {
            return too_large();
        }
        if let Some(n) = declared_length
            && n != body.len() as u64
        {
            return bad(format!(
                "x-content-length is {n} but the body has {} bytes",
                body.len()
            ));
        }

        let _writing = self.writing.lock().await;
        let object = self.object_path(&pathname);
        if object.exists() && !rules.allow_overwrite {
            return bad("This blob already exists, use `allowOverwrite: true` if you want to overwrite it. Or `addRandomSuffix: true` to generate a unique filename.".into());
        }
        let meta = Meta {
            content_type,
            uploaded_at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            size: body.len() as u64,
        };
        if let Err(e) = self.write(&pathname, &body, &meta) {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                format!("local store write failed: {e}"),
            );
        }
        let mut answer = self.describe(&pathname, &meta);
        if let Some(m) = answer.as_object_mut() {
            for k in ["size", "uploadedAt", "cacheControl"] {
                m.remove(k);
            }
        }
        json_answer(answer)
    }

    fn write(&self, pathname: &str, body: &[u8], meta: &Meta) -> std::io::Result<()> {
        let object = self.object_path(pathname);
        let meta_path = self.meta_path(pathname);
        for p in [&object, &meta_path] {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let partial = object.with_extension("atlas-partial");
        std::fs::write(&partial, body)?;
        std::fs::write(&meta_path, serde_json::to_vec(meta).unwrap_or_default())?;
        std::fs::rename(&partial, &object)
    }

    fn head(&self, url_or_pathname: &str) -> Answer {
        let pathname = match url_or_pathname.strip_prefix(&format!("{}/", self.public_url)) {
            Some(encoded) => {
                percent_encoding::percent_decode_str(encoded.split('?').next().unwrap_or(""))
                    .decode_utf8_lossy()
                    .into_owned()
            }
            None => url_or_pathname.to_owned(),
        };
        match self.read_meta(&pathname) {
            Some(meta) => json_answer(self.describe(&pathname, &meta)),
            None => api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "The requested blob does not exist",
            ),
        }
    }

    fn list(&self, req: &Request<Incoming>) -> Answer {
        let limit: usize = query_param(req, "limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(1000);
        let prefix = query_param(req, "prefix").unwrap_or_default();
        let mut names = Vec::new();
        collect_files(&self.root.join("objects"), "", &mut names);
        names.retain(|n| n.starts_with(&prefix) && !n.ends_with(".atlas-partial"));
        names.sort();
        let has_more = names.len() > limit;
        let blobs: Vec<serde_json::Value> = names
            .iter()
            .take(limit)
            .filter_map(|n| self.read_meta(n).map(|m| self.describe(n, &m)))
            .collect();
        json_answer(json!({"blobs": blobs, "hasMore": has_more}))
    }

    fn public_get(&self, req: &Request<Incoming>, encoded: &str) -> Answer {
        let pathname = percent_encoding::percent_decode_str(encoded)
            .decode_utf8_lossy()
            .into_owned();
        let Some(meta) = self.read_meta(&pathname) else {
            return api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "The requested blob does not exist",
            );
        };
        let body = match std::fs::read(self.object_path(&pathname)) {
            Ok(b) => b,
            Err(_) => {
                return api_error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "The requested blob does not exist",
                );
            }
        };
        let mut answer = Response::builder()
            .header(header::CONTENT_TYPE, &meta.content_type)
            .header(header::CONTENT_LENGTH, body.len());
        if query_param(req, "download").as_deref() == Some("1") {
            let filename = pathname.rsplit('/').next().unwrap_or(&pathname);
            answer = answer.header(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            );
        }
        let body = if req.method() == Method::HEAD {
            Bytes::new()
        } else {
            Bytes::from(body)
        };
        answer.body(Full::new(body)).expect("a valid response")
    }
}

fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_files(&entry.path(), &path, out);
        } else {
            out.push(path);
        }
    }
}
