//! A local S3-compatible store: s3s-fs on a folder, with SigV4 auth, served on loopback.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Access key of the local store (it only listens on loopback).
pub const ACCESS_KEY: &str = "atlas-local";
/// Secret key of the local store.
pub const SECRET_KEY: &str = "atlas-local-secret-key";

/// A running local S3 store.
pub struct LocalS3 {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl LocalS3 {
    /// Serves `root` (bucket = sub-folder, created here) on `127.0.0.1:port` (0 = any).
    pub async fn start(root: &Path, bucket: &str, port: u16) -> Result<Self, String> {
        std::fs::create_dir_all(root.join(bucket))
            .map_err(|e| format!("{}: {e}", root.display()))?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("s3s-fs: {e:?}"))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("local S3 on port {port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// The endpoint URL to configure (`ATLAS_S3_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}
