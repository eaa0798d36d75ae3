//! Destroying recordings: at once when a covert case closes with nothing criminal found
//! (R5), and when their retention period has passed (R7).
//!
//! Destruction writes each recording's certificate row, removes its row and appends its
//! access-log entry, in the caller's transaction; the ciphertext file is deleted only
//! after that commits, by [`finish_destructions`], off the database writer. A deletion a
//! crash interrupted is finished at the next start, so a destroyed recording is never
//! served again (its row is gone at once) and its ciphertext does not outlive it.

use serde_json::json;
use vault_core::log::{Action, Outcome};

use crate::accesslog::{LogRecord, append};
use crate::blobs::BlobStore;
use crate::clock::now_rfc3339;
use crate::db::Db;
use crate::store::{Cause, Doomed, Store};

/// Recordings removed per purge transaction.
const PURGE_BATCH: usize = 500;

/// Destroys the recordings `which` names inside the caller's transaction: certificate,
/// row deletion and one log entry each. Returns how many.
pub fn destroy(s: &Store<'_>, which: Doomed<'_>, cause: Cause, actor: &str) -> rusqlite::Result<usize> {
    let doomed = s.doomed(which)?;
    let now = now_rfc3339();
    let action = match cause {
        Cause::NoOffence => Action::Destroy,
        Cause::Retention => Action::Purge,
    };
    for d in &doomed {
        s.certify_destruction(d, &now, actor, cause)?;
        let rec = LogRecord::new(actor, action)
            .case(&d.case_id)
            .recording(&d.id)
            .details(json!({ "cause": cause.as_str(), "sha256": d.sha256, "size": d.size }));
        append(s, &rec, Outcome::Allowed)?;
    }
    Ok(doomed.len())
}

/// Deletes the ciphertext of every destroyed recording whose file may still exist, and
/// records that it is gone. Blocking; the files are deleted on the calling thread, not
/// on the database writer.
pub fn finish_destructions(db: &Db, blobs: &BlobStore) -> anyhow::Result<usize> {
    let ids = db.transaction(|s| Ok(s.blobs_to_delete()?))?;
    blobs.delete_blocking(&ids)?;
    let n = ids.len();
    if n > 0 {
        db.transaction(move |s| {
            for id in &ids {
                s.mark_blob_deleted(id)?;
            }
            Ok(())
        })?;
    }
    Ok(n)
}

/// Purges every recording past its case's retention period, except on legal hold, in
/// batches of their own transactions. Returns how many were purged. Blocking.
pub fn purge_due(db: &Db, blobs: &BlobStore, actor: &str) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let actor = actor.to_owned();
        let n =
            db.transaction(move |s| Ok(destroy(s, Doomed::PastRetention(PURGE_BATCH), Cause::Retention, &actor)?))?;
        total += n;
        finish_destructions(db, blobs)?;
        if n < PURGE_BATCH {
            return Ok(total);
        }
    }
}
