//! Checks of what a request carries, before anything is stored: free text, age
//! ciphertexts small enough to keep in a row, recipients, and complete sets of envelopes.
//! Each failure says which field is wrong and how.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vault_core::api::WrappedKey;

use crate::error::{ApiError, ApiResult};

/// Largest envelope or encrypted call-metadata blob.
const SMALL_BLOB_LIMIT: usize = 4 * 1024;
/// Longest free text (reasons, titles, references).
const TEXT_LIMIT: usize = 1000;

/// A piece of free text the caller must give.
pub fn require_text(v: &str, what: &str) -> ApiResult<()> {
    if v.trim().is_empty() {
        return Err(ApiError::bad_request(format!("{what} must not be empty")));
    }
    if v.len() > TEXT_LIMIT {
        return Err(ApiError::bad_request(format!("{what} is longer than {TEXT_LIMIT} bytes")));
    }
    Ok(())
}

/// A small age ciphertext (an envelope, call metadata) sent as base64.
pub fn decode_small(b64: &str, what: &str) -> ApiResult<Vec<u8>> {
    let bytes = B64.decode(b64.trim()).map_err(|_| ApiError::bad_request(format!("{what} is not valid base64")))?;
    if bytes.len() > SMALL_BLOB_LIMIT
        || !vault_core::crypto::looks_like_age(&bytes)
        || !vault_core::crypto::has_complete_header(&bytes)
    {
        return Err(ApiError::bad_request(format!("{what} is not a small age ciphertext")));
    }
    Ok(bytes)
}

/// An age X25519 recipient, in its canonical form.
pub fn recipient(s: &str) -> ApiResult<String> {
    Ok(vault_core::crypto::parse_recipient(s).map_err(|e| ApiError::bad_request(e.to_string()))?.to_string())
}

/// Checks that `envelopes` hold exactly one envelope for every key version of the case,
/// so no one is left unable to read what they are entitled to.
pub fn every_version(envelopes: &[WrappedKey], key_version: u32) -> ApiResult<Vec<(u32, Vec<u8>)>> {
    let mut versions: Vec<u32> = envelopes.iter().map(|e| e.version).collect();
    versions.sort_unstable();
    if versions != (1..=key_version).collect::<Vec<_>>() {
        return Err(ApiError::conflict(format!(
            "the case has key versions 1 to {key_version}; send exactly one envelope for each (run the command again)"
        )));
    }
    envelopes.iter().map(|e| Ok((e.version, decode_small(&e.envelope, "an envelope")?))).collect()
}
