//! Draining at shutdown: what the server lets finish after SIGTERM, and what it refuses.
//!
//! An upload is two requests: the ciphertext, then (a moment later, on a new connection
//! once the server has started draining) the recorder's signature, without which it is
//! never listed or released. So draining does not simply stop accepting: until its grace
//! period ends, the server goes on accepting connections, lets the requests in progress
//! finish, answers the signatures of uploads it committed, and answers everything else
//! 503 ("shutting down") so that clients and load balancers go elsewhere. It stops as
//! soon as no request is in progress and no recent upload waits for its signature, or
//! at the deadline. What the deadline cuts off leaves nothing: an upload still receiving
//! drops its temporary file, and one committed but never signed is not visible and is
//! removed by the unsigned-upload sweep (`orphans::sweep_unsigned`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vault_core::ids::RecordingId;

/// How long after its upload the server waits for a recording's signature while draining;
/// `vault-cli upload` signs at once, so one that has not signed by then will not.
const SIGNATURE_WAIT: Duration = Duration::from_secs(30);

/// The server's draining state, shared by the accept loop and the handlers.
#[derive(Clone, Default)]
pub struct Drain(Arc<Inner>);

#[derive(Default)]
struct Inner {
    draining: AtomicBool,
    uploads: AtomicUsize,
    /// Uploads committed and not yet signed, with when they committed (only the last
    /// [`SIGNATURE_WAIT`]'s: older ones are forgotten as new ones come).
    unsigned: Mutex<HashMap<RecordingId, Instant>>,
}

impl Drain {
    /// From now on, requests other than signatures and probes are answered 503.
    pub fn start(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }

    /// Uploads receiving or committing now.
    pub fn uploads_in_progress(&self) -> usize {
        self.0.uploads.load(Ordering::SeqCst)
    }

    /// Counts an upload in progress until the returned guard is dropped.
    pub fn upload(&self) -> Uploading {
        self.0.uploads.fetch_add(1, Ordering::SeqCst);
        metrics::gauge!(crate::monitoring::UPLOADS_IN_PROGRESS).increment(1.0);
        Uploading(self.clone())
    }

    /// An upload committed; its signature is to come.
    pub fn committed(&self, id: &RecordingId) {
        let now = Instant::now();
        let mut unsigned = self.0.unsigned.lock().unwrap_or_else(|e| e.into_inner());
        unsigned.retain(|_, at| now.duration_since(*at) < SIGNATURE_WAIT);
        unsigned.insert(id.clone(), now);
    }

    /// A recording was signed.
    pub fn signed(&self, id: &RecordingId) {
        self.0.unsigned.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Uploads committed within [`SIGNATURE_WAIT`] whose signature has not come.
    pub fn awaiting_signatures(&self) -> usize {
        let now = Instant::now();
        let unsigned = self.0.unsigned.lock().unwrap_or_else(|e| e.into_inner());
        unsigned.values().filter(|at| now.duration_since(**at) < SIGNATURE_WAIT).count()
    }
}

/// One upload in progress (see [`Drain::upload`]).
pub struct Uploading(Drain);

impl Drop for Uploading {
    fn drop(&mut self) {
        self.0.0.uploads.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!(crate::monitoring::UPLOADS_IN_PROGRESS).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_upload_is_awaited_until_signed() {
        let d = Drain::default();
        let (a, b) = (RecordingId::random(), RecordingId::random());
        d.committed(&a);
        d.committed(&b);
        assert_eq!(d.awaiting_signatures(), 2);
        d.signed(&a);
        assert_eq!(d.awaiting_signatures(), 1);
        d.signed(&b);
        assert_eq!(d.awaiting_signatures(), 0);
        let up = d.upload();
        assert_eq!(d.uploads_in_progress(), 1);
        drop(up);
        assert_eq!(d.uploads_in_progress(), 0);
    }
}
