//! Recording ids someone is working on right now: an upload that named its own id (an
//! idempotent upload, see `http::recordings::upload`), or the sweep removing uploads that
//! were never signed (`orphans::sweep_unsigned`).
//!
//! Both may remove an unsigned upload's row and ciphertext and, for the upload, put new
//! ciphertext under the same name. Without a claim, a sweep that read the old row could
//! delete the new upload's ciphertext after the upload renamed it into place. Whoever
//! holds the claim works on the id alone; the other is told so (an upload answers 503 `busy`
//! and is tried again; the sweep leaves the id for its next round).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use vault_core::ids::RecordingId;

#[derive(Clone, Default)]
pub struct Claims(Arc<Mutex<HashSet<RecordingId>>>);

/// Holds a claim on an id until dropped.
pub struct Claim {
    claims: Claims,
    id: RecordingId,
}

impl Claims {
    /// Claims `id`; `None` if someone else holds it.
    pub fn claim(&self, id: &RecordingId) -> Option<Claim> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(id.clone()).then(|| Claim { claims: self.clone(), id: id.clone() })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_an_id_is_claimed_once_until_released() {
        let claims = Claims::default();
        let id = RecordingId::random();
        let held = claims.claim(&id).expect("free");
        assert!(claims.claim(&id).is_none(), "claimed twice");
        assert!(claims.claim(&RecordingId::random()).is_some(), "another id is free");
        drop(held);
        assert!(claims.claim(&id).is_some(), "released on drop");
    }
}
