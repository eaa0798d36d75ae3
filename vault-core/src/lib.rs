//! Shared logic of the recording vault.
//!
//! Both binaries depend on this crate so that the server that writes and the auditor who
//! verifies use the same code: identifiers, the JSON types of the HTTP API, case-key
//! envelopes, streaming encryption of recordings, the login challenge, and the canonical
//! encoding of access-log entries. It has no server or command-line dependencies.

#[macro_use]
mod macros;

pub mod api;
pub mod challenge;
pub mod cosign;
pub mod crypto;
pub mod durable;
pub mod evidence;
pub mod export;
pub mod ids;
pub mod log;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod rotation;
/// Synthetic logs with a fixed signing key, for benchmarks and tests only: behind the
/// `testlog` feature so that no shipped binary carries a known key.
#[cfg(feature = "testlog")]
pub mod testlog;
pub mod trust;
pub mod upload_id;
pub mod witness;

/// SHA-256 of `data`, as a fixed-size array.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Compares two byte strings in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
