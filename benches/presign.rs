//! Presign CPU per call (criterion). Part of `bash bench/run`; alone:
//! `cargo run --release --example presign -- --bench`. It is an [[example]] target, not a
//! [[bench]]: cargo builds every [[bin]] before a bench target, which would cost minutes.
//!
//! - `presign/hub_put`: what `POST /api/v1/storage/presign` spends signing: the Hub's S3
//!   provider presigning a PUT that binds content-length, content-type,
//!   x-amz-checksum-sha256 and if-none-match (`lib/storage/sigv4.rs`, through the storage
//!   interface the route uses).
//! - `presign/hub_get`: the download redirect's presigned GET (content-disposition).
//! - `presign/floor_sigv4`: the floor, the least a SigV4 query presign of the same PUT can
//!   do, written inline: fixed strings, no encoding, sorting or storage interface.
//!
//! No network I/O: presigning is local computation.

use std::hint::black_box;
use std::time::Duration;

use atlas_hub::config::{S3Config, Secret};
use atlas_hub::storage::UploadSpec;
use atlas_hub::storage::s3::S3Storage;
use atlas_hub::storage::sigv4::{amz_date, hex, hmac};
use criterion::{Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

const ENDPOINT_HOST: &str = "127.0.0.1:9000";
const BUCKET: &str = "atlas-artifacts";
const ACCESS_KEY: &str = "atlas-bench";
const SECRET_KEY: &str = "atlas-bench-secret-key-0123456789";
const KEY: &str = "releases/launcher/1.4.2/linux-x86_64/appimage/Atlas_1.4.2_amd64.AppImage";
const SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn storage() -> S3Storage {
    S3Storage::new(&S3Config {
        endpoint: Some(format!("http://{ENDPOINT_HOST}")),
        bucket: BUCKET.into(),
        region: "auto".into(),
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: Secret::new(SECRET_KEY),
        force_path_style: true,
    })
}

/// The floor: a SigV4 query-string presign of the same PUT, by hand.
fn floor_presign(size: u64, checksum_b64: &str) -> String {
    let (date, stamp) = amz_date(time::OffsetDateTime::now_utc());
    let scope = format!("{date}/auto/s3/aws4_request");
    let path = format!("/{BUCKET}/{KEY}");
    let signed = "content-length;content-type;host;if-none-match;x-amz-checksum-sha256";
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ACCESS_KEY}%2F{}&X-Amz-Date={stamp}\
         &X-Amz-Expires=900&X-Amz-SignedHeaders={}",
        scope.replace('/', "%2F"),
        signed.replace(';', "%3B")
    );
    let canonical = format!(
        "PUT\n{path}\n{query}\ncontent-length:{size}\ncontent-type:application/octet-stream\n\
         host:{ENDPOINT_HOST}\nif-none-match:*\nx-amz-checksum-sha256:{checksum_b64}\n\n{signed}\n\
         UNSIGNED-PAYLOAD"
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, b"auto");
    let k_service = hmac(&k_region, b"s3");
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, to_sign.as_bytes()));
    format!("http://{ENDPOINT_HOST}{path}?{query}&X-Amz-Signature={signature}")
}

fn presign(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s3 = storage();
    let ttl = Duration::from_secs(900);
    let spec = UploadSpec {
        key: KEY,
        size: 48_213_504,
        sha256_hex: SHA256,
        content_type: "application/octet-stream",
    };
    let checksum = atlas_hub::storage::sha256_hex_to_base64(SHA256).expect("hex sha256");

    let mut group = c.benchmark_group("presign");
    group.bench_function("hub_put", |b| {
        b.iter(|| {
            rt.block_on(s3.presign_upload(black_box(&spec), ttl))
                .expect("presign PUT")
        })
    });
    group.bench_function("hub_get", |b| {
        b.iter(|| {
            rt.block_on(s3.presign_download(
                black_box(KEY),
                "Atlas_1.4.2_amd64.AppImage",
                Duration::from_secs(300),
            ))
            .expect("presign GET")
        })
    });
    group.bench_function("floor_sigv4", |b| {
        b.iter(|| floor_presign(black_box(spec.size), black_box(&checksum)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = presign
}
criterion_main!(benches);
