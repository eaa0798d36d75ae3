//! Orphan blobs: ciphertext in `blobs/` that no recording names.
//!
//! An upload is renamed into `blobs/` before its row commits (see `blobs`), so a crash
//! between the two leaves a file that no row names and nothing will ever serve or
//! destroy; a destroyed recording's file can also come back (a restored backup). Such
//! ciphertext must not outlive its recording (R5, R7), so at start-up, before anything is
//! served and hence with no upload in flight, [`sweep`] removes every orphan and writes
//! an access-log entry for each (`remove-orphan`, actor `system`) before deleting it.
//! `vault-server verify` reports them with [`find`] and removes nothing. A file whose
//! name is not a recording's blob name is only ever reported: we do not delete what we
//! do not understand.

use anyhow::Context;
use serde_json::json;
use vault_core::ids::{CaseId, RecordingId};
use vault_core::log::{Action, Outcome};

use crate::accesslog::{LogRecord, append};
use crate::blobs::{BlobStore, Listed};
use crate::claims::Claims;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::store::Store;

/// The actor of the log entries the server writes on its own behalf.
const SYSTEM: &str = "system";

/// How long an upload may stay unsigned: its recorder signs it a moment after the upload
/// (`vault-cli upload` does both), so one still unsigned after this never will be.
pub const UNSIGNED_GRACE: chrono::Duration = chrono::Duration::hours(1);
/// Unsigned uploads removed per transaction.
const UNSIGNED_BATCH: usize = 500;

/// Removes uploads their recorder never signed within [`UNSIGNED_GRACE`] (a recorder that
/// crashed between its upload and its signature, or one that never signs): rows nobody
/// lists or fetches, and their ciphertext. Each gets a `remove-orphan` entry (cause
/// `never-signed`) in the transaction that removes its row; the files go after it
/// commits (a crash in between leaves orphan blobs, which [`sweep`] removes). An id an
/// upload has claimed (see [`crate::claims`]) is left for the next round; the sweep holds
/// its own claims until the files are gone. Returns how many. Blocking.
pub fn sweep_unsigned(db: &Db, blobs: &BlobStore, claims: &Claims) -> anyhow::Result<usize> {
    let cutoff = (chrono::Utc::now() - UNSIGNED_GRACE).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut total = 0;
    loop {
        let (cutoff, claims) = (cutoff.clone(), claims.clone());
        let (held, full) = db
            .transaction(move |s| {
                let found = s.unsigned_before(&cutoff, UNSIGNED_BATCH)?;
                let full = found.len() == UNSIGNED_BATCH;
                let mut held = Vec::new();
                for (id, case, size) in found {
                    let Some(claim) = claims.claim(&id) else { continue };
                    let rec = LogRecord::new(SYSTEM, Action::RemoveOrphan)
                        .case(&case)
                        .recording(&id)
                        .details(json!({ "cause": "never-signed", "size": size }));
                    append(s, &rec, Outcome::Allowed)?;
                    s.remove_unsigned(&id)?;
                    held.push((id, claim));
                }
                Ok((held, full))
            })
            .context("cannot remove uploads that were never signed")?;
        let ids: Vec<RecordingId> = held.iter().map(|(id, _)| id.clone()).collect();
        blobs.delete_blocking(&ids).context("cannot remove the ciphertext of uploads that were never signed")?;
        drop(held);
        total += ids.len();
        if !full || ids.is_empty() {
            return Ok(total);
        }
    }
}

/// Removes an unsigned upload of `id` that its recorder is uploading again (it never got
/// to sign it: a lost answer, a crash), so that the new upload can take the id. The
/// caller holds the claim on `id`. Logged like the sweep's removals (`remove-orphan`),
/// with cause `uploaded-again`, in the transaction that removes the row; the ciphertext
/// goes after it commits.
pub async fn remove_unsigned_for_retry(db: &Db, blobs: &BlobStore, id: &RecordingId) -> ApiResult<()> {
    let rid = id.clone();
    db.call(move |c| {
        let sp = c.savepoint()?;
        let s = Store::new(&sp);
        if let Some(r) = s.recording(&rid)?
            && r.statement.is_none()
        {
            let rec = LogRecord::new(SYSTEM, Action::RemoveOrphan)
                .case(&r.case_id)
                .recording(&rid)
                .details(json!({ "cause": "uploaded-again", "size": r.size, "by": r.uploaded_by.as_str() }));
            append(&s, &rec, Outcome::Allowed)?;
            s.remove_unsigned(&rid)?;
        }
        sp.commit()?;
        Ok(())
    })
    .await?;
    match blobs.remove(id).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ApiError::internal(format!("cannot remove the old ciphertext of {id}: {e}"))),
    }
}

/// What `blobs/` holds besides the ciphertext of recordings.
#[derive(Debug, Default)]
pub struct Orphans {
    /// Recording blobs no recording row names, ordered by id.
    pub blobs: Vec<Orphan>,
    /// Entries whose name is not `<recording id>.age`, or that are not regular files
    /// (a directory, a symlink), by name: never removed, for a person to look at.
    pub unrecognised: Vec<String>,
}

/// A recording blob no recording row names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub id: RecordingId,
    /// The file's size in bytes.
    pub size: u64,
    /// The case of the recording, if it was destroyed and this is its ciphertext.
    pub destroyed_in: Option<CaseId>,
}

impl Orphan {
    /// Why it is an orphan, as the log entry's `cause`.
    fn cause(&self) -> &'static str {
        if self.destroyed_in.is_some() { "recording-destroyed" } else { "no-recording" }
    }
}

impl Orphans {
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty() && self.unrecognised.is_empty()
    }

    /// One line per kind of finding, for `vault-server verify`; none when `blobs/` is
    /// clean.
    pub fn report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.blobs.is_empty() {
            let ids: Vec<&str> = self.blobs.iter().map(|o| o.id.as_str()).collect();
            lines.push(format!(
                "{} orphan blobs: {} (ciphertext no recording names; the next `vault-server serve` removes and logs \
                 them; while a server runs, an upload in progress can appear here for a moment)",
                ids.len(),
                ids.join(", ")
            ));
        }
        if !self.unrecognised.is_empty() {
            lines.push(format!(
                "{} unrecognised files in blobs/: {} (not recording blobs; nothing removes them, look at them by hand)",
                self.unrecognised.len(),
                self.unrecognised.join(", ")
            ));
        }
        lines
    }
}

/// Finds the orphan and unrecognised entries of `blobs/`, without changing anything.
/// Blocking.
///
/// The directory is listed first and the rows read after, in one snapshot: an upload
/// committed in between counts as named, and one whose row is not yet committed (only
/// possible while a server runs) counts as an orphan.
pub fn find(db: &Db, blobs: &BlobStore) -> anyhow::Result<Orphans> {
    let mut candidates = Vec::new();
    let mut unrecognised = Vec::new();
    let listed = blobs.list_blocking().with_context(|| format!("cannot list {}", blobs.describe()))?;
    for item in listed {
        match item {
            Listed::Blob(id, size) => candidates.push((id, size)),
            Listed::Other(name) => unrecognised.push(name),
        }
    }
    let mut orphans = db.snapshot(|s| -> rusqlite::Result<Vec<Orphan>> {
        let mut out = Vec::new();
        for (id, size) in candidates {
            if !s.recording_exists(&id)? {
                let destroyed_in = s.destroyed_case(&id)?;
                out.push(Orphan { id, size, destroyed_in });
            }
        }
        Ok(out)
    })??;
    orphans.sort_by(|a, b| a.id.cmp(&b.id));
    unrecognised.sort();
    Ok(Orphans { blobs: orphans, unrecognised })
}

/// Removes every orphan blob, each after its `remove-orphan` entry is committed, and
/// warns about unrecognised entries; returns how many blobs were removed. Blocking.
///
/// Run it at start-up, before serving and after `retention::finish_destructions` (which
/// deletes the files of recordings destroyed before a crash under their own entries):
/// an upload in flight would be an orphan until its row commits.
pub fn sweep(db: &Db, blobs: &BlobStore) -> anyhow::Result<usize> {
    let found = find(db, blobs)?;
    for name in &found.unrecognised {
        tracing::warn!(name = %name, "an entry in blobs/ is not a recording blob; left in place, look at it by hand");
    }
    let orphans = found.blobs;
    if orphans.is_empty() {
        return Ok(0);
    }
    // Logged first: a crash before the files go leaves them to the next start, which logs
    // them again, where the other order could remove ciphertext with no entry saying so.
    let logged = orphans.clone();
    db.transaction(move |s| {
        for o in &logged {
            let mut rec = LogRecord::new(SYSTEM, Action::RemoveOrphan)
                .recording(&o.id)
                .details(json!({ "cause": o.cause(), "size": o.size }));
            if let Some(case) = &o.destroyed_in {
                rec = rec.case(case);
            }
            append(s, &rec, Outcome::Allowed)?;
        }
        Ok(())
    })
    .context("cannot log the removal of orphan blobs")?;
    let ids: Vec<RecordingId> = orphans.iter().map(|o| o.id.clone()).collect();
    blobs.delete_blocking(&ids).context("cannot remove orphan blobs")?;
    for o in &orphans {
        tracing::warn!(recording = %o.id, size = o.size, cause = o.cause(), "removed an orphan blob");
    }
    Ok(orphans.len())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::Store;

    struct Fixture {
        _dir: tempfile::TempDir,
        db: Db,
        blobs: BlobStore,
        local: crate::blobs::LocalBlobs,
        blob_dir: std::path::PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (blob_dir, tmp) = (dir.path().join("blobs"), dir.path().join("tmp"));
        std::fs::create_dir(&blob_dir).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        let db = Db::create(&dir.path().join("vault.db")).unwrap();
        let local = crate::blobs::LocalBlobs::new(blob_dir.clone(), tmp);
        Fixture { db, blobs: BlobStore::Local(local.clone()), local, blob_dir, _dir: dir }
    }

    /// Rows only; the cases and users they refer to do not matter here.
    fn sql(db: &Db, sql: &'static str, id: &RecordingId, case: &CaseId) {
        let (id, case) = (id.to_string(), case.to_string());
        db.with(move |c| {
            c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
            c.execute(sql, [id, case]).unwrap();
            c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        });
    }

    fn add_recording(db: &Db, id: &RecordingId, case: &CaseId) {
        sql(
            db,
            "INSERT INTO recordings (id, case_id, key_version, size, sha256, announced, recorded_at, uploaded_by, \
             uploaded_at) VALUES (?1, ?2, 1, 5, '', 'none', 't', 'pbx', 't')",
            id,
            case,
        );
    }

    fn add_destroyed(db: &Db, id: &RecordingId, case: &CaseId) {
        sql(
            db,
            "INSERT INTO destroyed_recordings (recording_id, case_id, sha256, size, key_version, recorded_at, \
             destroyed_at, destroyed_by, cause, blob_deleted) VALUES (?1, ?2, '', 5, 1, 't', 't', 'x', 'no-offence', 1)",
            id,
            case,
        );
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }

    fn log(db: &Db) -> Vec<vault_core::log::Entry> {
        db.with(|c| Store::new(c).log_entries(0, u64::MAX, None, 100).unwrap()).into_iter().map(|e| e.entry).collect()
    }

    #[test]
    fn a_clean_blob_dir_has_no_orphans_and_the_sweep_writes_nothing() {
        let f = fixture();
        let (id, case) = (RecordingId::random(), CaseId::random());
        add_recording(&f.db, &id, &case);
        write(&f.local.path(&id), b"hello");
        let found = find(&f.db, &f.blobs).unwrap();
        assert!(found.is_empty(), "{found:?}");
        assert!(found.report().is_empty());
        assert_eq!(sweep(&f.db, &f.blobs).unwrap(), 0);
        assert!(log(&f.db).is_empty());
        assert!(f.local.path(&id).exists());
    }

    #[test]
    fn orphans_are_found_reported_and_swept_with_an_entry_each() {
        let f = fixture();
        let case = CaseId::random();
        let (live, cut_off, destroyed) = (RecordingId::random(), RecordingId::random(), RecordingId::random());
        add_recording(&f.db, &live, &case);
        add_destroyed(&f.db, &destroyed, &case);
        write(&f.local.path(&live), b"live!");
        write(&f.local.path(&cut_off), b"cut off");
        write(&f.local.path(&destroyed), b"gone");

        let found = find(&f.db, &f.blobs).unwrap();
        let mut want = vec![
            Orphan { id: cut_off.clone(), size: 7, destroyed_in: None },
            Orphan { id: destroyed.clone(), size: 4, destroyed_in: Some(case.clone()) },
        ];
        want.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(found.blobs, want);
        let report = found.report().join("\n");
        assert!(report.starts_with("2 orphan blobs: "), "{report}");
        assert!(report.contains(cut_off.as_str()) && report.contains(destroyed.as_str()), "{report}");
        assert!(f.local.path(&cut_off).exists(), "find must not remove anything");

        assert_eq!(sweep(&f.db, &f.blobs).unwrap(), 2);
        assert!(f.local.path(&live).exists(), "a named blob was removed");
        assert!(!f.local.path(&cut_off).exists() && !f.local.path(&destroyed).exists());
        let entries = log(&f.db);
        assert_eq!(entries.len(), 2);
        for e in &entries {
            assert_eq!(
                (e.actor.as_str(), e.action.as_str(), e.outcome.as_str()),
                ("system", "remove-orphan", "allowed")
            );
        }
        let of = |id: &RecordingId| entries.iter().find(|e| e.recording_id == id.as_str()).expect("an entry");
        assert_eq!(of(&cut_off).details, r#"{"cause":"no-recording","size":7}"#);
        assert_eq!(of(&cut_off).case_id, "");
        assert_eq!(of(&destroyed).details, r#"{"cause":"recording-destroyed","size":4}"#);
        assert_eq!(of(&destroyed).case_id, case.as_str());
        db_chain_ok(&f.db);

        assert_eq!(sweep(&f.db, &f.blobs).unwrap(), 0, "a second sweep finds nothing");
        assert_eq!(log(&f.db).len(), 2);
    }

    #[test]
    fn unrecognised_entries_are_reported_and_never_removed() {
        let f = fixture();
        let id = RecordingId::random();
        let odd = [
            "notes.txt".to_owned(),
            format!("{id}.age.bak"),
            format!("{}.age", id.as_str().to_uppercase()),
            "rec_123.age".to_owned(),
        ];
        for name in &odd {
            write(&f.blob_dir.join(name), b"?");
        }
        // A directory and a symlink with a recording blob's name are not blobs either.
        let (as_dir, as_link) = (RecordingId::random(), RecordingId::random());
        std::fs::create_dir(f.local.path(&as_dir)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", f.local.path(&as_link)).unwrap();

        let found = find(&f.db, &f.blobs).unwrap();
        assert!(found.blobs.is_empty(), "{found:?}");
        let mut want: Vec<String> = odd.to_vec();
        want.extend([format!("{as_dir}.age"), format!("{as_link}.age")]);
        want.sort();
        assert_eq!(found.unrecognised, want);
        assert!(found.report()[0].starts_with("6 unrecognised files in blobs/: "), "{:?}", found.report());

        assert_eq!(sweep(&f.db, &f.blobs).unwrap(), 0);
        for name in &want {
            assert!(f.blob_dir.join(name).symlink_metadata().is_ok(), "{name} was removed");
        }
        assert!(log(&f.db).is_empty());
    }

    fn db_chain_ok(db: &Db) {
        db.snapshot(crate::accesslog::verify).unwrap().unwrap();
    }
}
