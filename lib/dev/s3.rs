//! A local S3-compatible store: s3s-fs on a folder, with SigV4 auth, served on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3ErrorCode, S3Request, S3Response, S3Result};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Access key of the local store (it only listens on loopback).
pub const ACCESS_KEY: &str = "atlas-local";
/// Secret key of the local store.
pub const SECRET_KEY: &str = "atlas-local-secret-key";

/// A running local S3 store.
pub struct LocalS3 {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl LocalS3 {
    /// Serves `root` (bucket = sub-folder, created here) on `127.0.0.1:port` (0 = any).
    pub async fn start(root: &Path, bucket: &str, port: u16) -> Result<Self, String> {
        std::fs::create_dir_all(root.join(bucket))
            .map_err(|e| format!("{}: {e}", root.display()))?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("s3s-fs: {e:?}"))?;
        let mut builder = S3ServiceBuilder::new(RefusedBodiesDropped {
            fs,
            root: root.to_path_buf(),
        });
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

/// s3s-fs with one fix: it writes the body before checking its checksum, and keeps it when
/// the check fails (400 BadDigest), so the key is taken and the correct upload then gets 412.
/// Real S3 and R2 store nothing on BadDigest; neither does this store: the refused body is
/// removed before the error is answered. Every other operation is s3s-fs's own.
struct RefusedBodiesDropped {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
}

/// The impl: `put_object` as above, the listed operations delegated to s3s-fs unchanged.
/// (One macro for the whole impl: `async_trait` must see the generated methods.)
macro_rules! delegating_impl {
    ($($op:ident: $input:ident => $output:ident,)*) => {
        #[async_trait::async_trait]
        impl S3 for RefusedBodiesDropped {
            async fn put_object(
                &self,
                req: S3Request<PutObjectInput>,
            ) -> S3Result<S3Response<PutObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let answer = self.fs.put_object(req).await;
                if let Err(e) = &answer
                    && *e.code() == S3ErrorCode::BadDigest
                    && !key.split('/').any(|s| s == "..")
                {
                    let _ = tokio::fs::remove_file(self.root.join(&bucket).join(&key)).await;
                }
                answer
            }

            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.fs.$op(req).await
                }
            )*
        }
    };
}

delegating_impl! {
    get_object: GetObjectInput => GetObjectOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    copy_object: CopyObjectInput => CopyObjectOutput,
    list_objects: ListObjectsInput => ListObjectsOutput,
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    create_bucket: CreateBucketInput => CreateBucketOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
    list_parts: ListPartsInput => ListPartsOutput,
}
