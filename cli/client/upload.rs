//! Presigned uploads: presign, skip what storage already holds, PUT the file straight to
//! storage with exactly the returned headers, streamed from disk with progress on stderr.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::files::{LocalFile, human_bytes};
use super::hub::{Answer, ClientError, Hub, chain};

/// Bytes read from disk per body chunk.
const CHUNK: usize = 256 * 1024;

/// What `POST /api/v1/storage/presign` answered.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presigned {
    /// The Hub's upload id (publish and deploy name it).
    pub upload_id: String,
    /// The storage key the Hub derived.
    pub key: String,
    /// HTTP method (PUT).
    pub method: String,
    /// Where to send the bytes.
    pub url: String,
    /// Headers to send exactly as given (they are part of the signature).
    #[serde(default)]
    pub upload_headers: BTreeMap<String, String>,
    /// Storage already holds these exact bytes: nothing to send.
    #[serde(default)]
    pub already_uploaded: bool,
}

/// Why a PUT did not store the file.
enum PutError {
    /// Worth another try (network, 5xx, 429, an expired URL).
    Retry(String),
    /// Storage already holds an object at the key (`If-None-Match: *` refused the PUT).
    Exists,
    /// Trying again cannot help.
    Fatal(ClientError),
}

/// Uploads files through one Hub.
pub struct Uploader<'a> {
    /// The Hub that presigns.
    pub hub: &'a Hub,
    /// Bytes per second to send at most (`--limit-rate`).
    pub limit_rate: Option<u64>,
}

impl Uploader<'_> {
    /// Makes sure storage holds `file` under the key the Hub derives for `presign` (the
    /// presign request body): skipped when the Hub says it is already uploaded, else PUT,
    /// retried with a fresh presign on transient failures. Safe to repeat.
    pub async fn ensure(
        &self,
        presign: &Value,
        file: &LocalFile,
        label: &str,
    ) -> Result<Presigned, ClientError> {
        let retry = self.hub.retry();
        let mut attempt = 1;
        let mut refused_overwrite = false;
        loop {
            let answer = self
                .hub
                .call(
                    Method::POST,
                    "/api/v1/storage/presign",
                    Some(presign),
                    &format!("presign {label}"),
                )
                .await?;
            let p: Presigned = serde_json::from_slice(&answer.body).map_err(|e| {
                ClientError::Transport(format!(
                    "presign {label}: unexpected answer from the Hub ({e})"
                ))
            })?;
            if p.already_uploaded {
                eprintln!(
                    "{label}: {} is already in storage ({}), not uploading it again",
                    file.filename, p.key
                );
                return Ok(p);
            }
            if refused_overwrite {
                return Err(ClientError::Usage(format!(
                    "{label}: storage already holds a different object at {} and stored artifacts \
                     are immutable: publish under a new --version",
                    p.key
                )));
            }
            match self.put(&p, file, label).await {
                Ok(()) => return Ok(p),
                // Maybe our own earlier attempt landed: the next presign tells.
                Err(PutError::Exists) => refused_overwrite = true,
                Err(PutError::Retry(why)) if attempt < retry.attempts => {
                    let wait = retry.backoff(attempt);
                    eprintln!(
                        "{label}: upload failed: {why}; retrying in {:.1}s (attempt {} of {})",
                        wait.as_secs_f64(),
                        attempt + 1,
                        retry.attempts
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(PutError::Retry(why)) => {
                    return Err(ClientError::Transport(format!(
                        "{label}: upload of {} failed after {} attempts: {why}",
                        file.filename, retry.attempts
                    )));
                }
                Err(PutError::Fatal(e)) => return Err(e),
            }
        }
    }

    /// One PUT of the whole file to the presigned URL.
    async fn put(&self, p: &Presigned, file: &LocalFile, label: &str) -> Result<(), PutError> {
        let method = Method::from_bytes(p.method.as_bytes()).map_err(|_| {
            PutError::Fatal(ClientError::Transport(format!(
                "the Hub asked for upload method {:?}",
                p.method
            )))
        })?;
        let (tx, rx) = mpsc::channel(4);
        let progress = Progress::new(format!("{label}: {}", file.filename), file.size);
        let reader = tokio::spawn(read_file(file.clone(), tx, progress, self.limit_rate));
        let mut rb = self.hub.http().request(method, &p.url);
        for (name, value) in &p.upload_headers {
            rb = rb.header(name, value);
        }
        let sent = rb
            .body(reqwest::Body::wrap(FileBody {
                rx,
                size: file.size,
            }))
            .send()
            .await;
        let action = format!("upload {label}");
        let answer = match sent {
            Ok(resp) => Answer::read(resp, &action).await,
            Err(e) => Err(ClientError::Transport(chain(&e))),
        };
        let progress = reader.await.ok();
        let answer = answer.map_err(|e| PutError::Retry(e.to_string()))?;
        // S3 answers XML (<Code>, <Message>); other providers (Vercel Blob) JSON or text.
        let storage_says = || {
            let text = String::from_utf8_lossy(&answer.body);
            let code = between(&text, "<Code>", "</Code>");
            let message = between(&text, "<Message>", "</Message>");
            let said = if code.is_empty() && message.is_empty() {
                text.chars().take(300).collect::<String>()
            } else {
                format!("{code} {message}")
            };
            format!("{} {}", answer.status, said.trim())
                .trim()
                .to_owned()
        };
        match answer.status {
            s if s.is_success() => {
                if let Some(mut progress) = progress {
                    progress.finish();
                }
                Ok(())
            }
            StatusCode::PRECONDITION_FAILED => Err(PutError::Exists),
            s if s.is_client_error()
                && storage_says()
                    .to_ascii_lowercase()
                    .contains("already exists") =>
            {
                Err(PutError::Exists)
            }
            s if s.is_server_error()
                || s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT =>
            {
                Err(PutError::Retry(format!(
                    "storage answered {}",
                    storage_says()
                )))
            }
            StatusCode::FORBIDDEN if storage_says().to_ascii_lowercase().contains("expired") => {
                Err(PutError::Retry(format!(
                    "the presigned URL expired ({})",
                    storage_says()
                )))
            }
            StatusCode::FORBIDDEN => Err(PutError::Fatal(ClientError::Transport(format!(
                "{label}: storage refused the upload ({}): the Hub's storage credentials may be \
                 wrong; an operator can check with `atlas-hub verify`",
                storage_says()
            )))),
            _ if storage_says().contains("BadDigest") => {
                Err(PutError::Fatal(ClientError::Usage(format!(
                    "{label}: storage rejected the bytes of {} because their sha256 differs from the one \
                 computed before the upload: did the file change meanwhile? ({})",
                    file.path.display(),
                    storage_says()
                ))))
            }
            _ => Err(PutError::Fatal(ClientError::Transport(format!(
                "{label}: storage refused the upload: {}",
                storage_says()
            )))),
        }
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    text.split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(inner, _)| inner)
        .unwrap_or_default()
}

/// The upload body: chunks read from disk by [`read_file`], with the exact length known up
/// front so the request carries `content-length` (storage checks it), never chunked encoding.
struct FileBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    size: u64,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.get_mut()
            .rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size)
    }
}

/// Reads the file in chunks into the body, reporting progress and keeping to `limit_rate`.
/// Stops when the request stops reading (the receiver is dropped).
async fn read_file(
    file: LocalFile,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    mut progress: Progress,
    limit_rate: Option<u64>,
) -> Progress {
    let chunk = limit_rate.map_or(CHUNK, |r| (r as usize / 4).clamp(4096, CHUNK));
    let mut f = match tokio::fs::File::open(&file.path).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return progress;
        }
    };
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < file.size {
        let want = chunk.min((file.size - sent) as usize);
        let mut buf = BytesMut::with_capacity(want);
        while buf.len() < want {
            match f.read_buf(&mut buf).await {
                Ok(0) => {
                    let _ = tx
                        .send(Err(std::io::Error::other(format!(
                            "{} shrank while it was being uploaded",
                            file.path.display()
                        ))))
                        .await;
                    return progress;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return progress;
                }
            }
        }
        buf.truncate(want);
        sent += buf.len() as u64;
        if tx.send(Ok(buf.freeze())).await.is_err() {
            return progress;
        }
        progress.update(sent);
        if let Some(rate) = limit_rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    progress
}

/// Per-file progress on stderr: a live line on a terminal, a line per 10 % in CI logs.
pub struct Progress {
    label: String,
    total: u64,
    started: Instant,
    last: Instant,
    tenths: u64,
    tty: bool,
}

impl Progress {
    /// Announces the upload.
    pub fn new(label: String, total: u64) -> Progress {
        let tty = std::io::stderr().is_terminal();
        eprintln!("{label}: uploading {}", human_bytes(total));
        let now = Instant::now();
        Progress {
            label,
            total,
            started: now,
            last: now,
            tenths: 0,
            tty,
        }
    }

    fn update(&mut self, done: u64) {
        let percent = done * 100 / self.total.max(1);
        let line = format!(
            "{}: {} of {} ({percent}%)",
            self.label,
            human_bytes(done),
            human_bytes(self.total)
        );
        if self.tty {
            if self.last.elapsed() >= Duration::from_millis(200) {
                eprint!("\r{line}\x1b[K");
                self.last = Instant::now();
            }
        } else if percent / 10 > self.tenths && done < self.total {
            self.tenths = percent / 10;
            eprintln!("{line}");
        }
    }

    fn finish(&mut self) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = human_bytes((self.total as f64 / secs) as u64);
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!(
            "{}: uploaded {} in {secs:.1}s ({rate}/s)",
            self.label,
            human_bytes(self.total)
        );
    }
}
