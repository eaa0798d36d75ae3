//! Recording ids for idempotent uploads.
//!
//! A recorder that may send the same recording twice (a retry after a lost answer, an
//! ingester restarted mid-upload) names the upload itself: the id is an HMAC, under a key
//! derived from the recorder's identity, of the vault, the case and an upload key (for
//! `vault-cli ingest`: the file's name, its SHA-256 and its sidecar's). The same upload
//! gets the same id, so the server stores it once; the server, who does not hold the key,
//! cannot tell from an id what was uploaded, nor test a guess of a recording's content
//! against it. The recorder signs the id in its recording statement, so a server that
//! answers "already stored" must show the recorder's own signature for that very id.

use crate::ids::{CaseId, RecordingId};

/// HKDF salt and info of the derivation of the upload-id key: labels used for nothing
/// else (the signing key uses its own, see `trust::keys`).
const DERIVE_SALT: &[u8] = b"recording-vault upload ids v1";
const DERIVE_INFO: &[u8] = b"hmac-sha256 key from an age x25519 identity";

/// Makes a recorder's upload ids.
pub struct UploadIds {
    key: ring::hmac::Key,
}

impl UploadIds {
    pub fn from_identity(identity: &age::x25519::Identity) -> Self {
        let key = crate::trust::keys::derive(identity, DERIVE_SALT, DERIVE_INFO);
        Self { key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key[..]) }
    }

    /// The id of the upload named `upload_key` to `case` of `vault`: `rec_` and the first
    /// 16 bytes of HMAC-SHA256(key, "vault-upload-id/v1\n" vault "\n" case "\n" upload_key),
    /// in hex.
    pub fn id(&self, vault: &str, case: &CaseId, upload_key: &str) -> RecordingId {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        for part in ["vault-upload-id/v1\n", vault, "\n", case.as_str(), "\n", upload_key] {
            ctx.update(part.as_bytes());
        }
        let tag = ctx.sign();
        format!("{}{}", RecordingId::PREFIX, hex::encode(&tag.as_ref()[..16]))
            .parse()
            .expect("rec_ and 32 hex digits is a recording id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_upload_gets_the_same_id_and_anything_else_another() {
        let me = age::x25519::Identity::generate();
        let ids = UploadIds::from_identity(&me);
        let case = CaseId::random();
        let id = ids.id("vault.example", &case, "call-1.wav");
        assert_eq!(id, UploadIds::from_identity(&me).id("vault.example", &case, "call-1.wav"));
        assert_ne!(id, ids.id("vault.example", &case, "call-2.wav"));
        assert_ne!(id, ids.id("vault.example", &CaseId::random(), "call-1.wav"));
        assert_ne!(id, ids.id("other.example", &case, "call-1.wav"));
        let other = UploadIds::from_identity(&age::x25519::Identity::generate());
        assert_ne!(id, other.id("vault.example", &case, "call-1.wav"), "another recorder's key");
    }
}
