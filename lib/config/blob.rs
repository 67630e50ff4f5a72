//! The formats of Vercel Blob configuration values: read-write tokens (which name their
//! store), store ids, the default API and public URLs. Configuration reads them; the Blob
//! storage provider signs with them.

/// The Blob API the official SDK talks to when `VERCEL_BLOB_API_URL` is unset.
pub const DEFAULT_API_URL: &str = "https://vercel.com/api/blob";
/// Prefix of a store's read-write token.
pub const READ_WRITE_TOKEN_PREFIX: &str = "vercel_blob_rw_";
/// Prefix of a client token.
pub const CLIENT_TOKEN_PREFIX: &str = "vercel_blob_client_";

/// The store id inside a read-write token, or why the token is not one. Messages never
/// contain the token.
pub fn store_id_of_read_write_token(token: &str) -> Result<&str, &'static str> {
    if token.starts_with(CLIENT_TOKEN_PREFIX) {
        return Err("this is a client token; use the store's read-write token (vercel_blob_rw_…)");
    }
    let rest = token
        .strip_prefix(READ_WRITE_TOKEN_PREFIX)
        .ok_or("not a Vercel Blob read-write token: expected vercel_blob_rw_<storeId>_<secret>")?;
    let (store_id, secret) = rest
        .split_once('_')
        .ok_or("no store id: expected vercel_blob_rw_<storeId>_<secret>")?;
    if !is_store_id(store_id) {
        return Err("the store id in the token is not 1 to 64 letters and digits");
    }
    if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the secret part of the token is empty or has spaces or control characters");
    }
    Ok(store_id)
}

/// Store ids are letters and digits (the SDK splits tokens on `_`).
pub fn is_store_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The host of a store's public blobs.
pub fn default_public_url(store_id: &str) -> String {
    format!(
        "https://{}.public.blob.vercel-storage.com",
        store_id.to_ascii_lowercase()
    )
}
