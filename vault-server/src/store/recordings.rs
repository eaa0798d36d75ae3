//! `recordings`: the metadata of each stored ciphertext, and paging through a case's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::{OptionalExtension, params};
use vault_core::api::{Announcement, RecordingInfo};
use vault_core::ids::{CaseId, RecordingId, UserName};
use vault_core::trust::Signed;

use super::{Store, parsed, signed_column};

const RECORDING_COLUMNS: &str =
    "id, case_id, key_version, size, sha256, announced, recorded_at, uploaded_by, uploaded_at, meta, statement";

/// A row of [`RECORDING_COLUMNS`]; the encrypted call metadata only `with_meta`.
fn recording_info(r: &rusqlite::Row<'_>, with_meta: bool) -> rusqlite::Result<RecordingInfo> {
    Ok(RecordingInfo {
        id: parsed(r, 0)?,
        case_id: parsed(r, 1)?,
        key_version: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        sha256: r.get(4)?,
        announced: parsed(r, 5)?,
        recorded_at: r.get(6)?,
        uploaded_by: parsed(r, 7)?,
        uploaded_at: r.get(8)?,
        meta: if with_meta { r.get::<_, Option<Vec<u8>>>(9)?.map(|m| B64.encode(m)) } else { None },
        statement: signed_column(r, 10)?,
    })
}

/// What a fetch needs of a recording besides its ciphertext.
pub struct StoredRecording {
    pub case_id: CaseId,
    pub key_version: u32,
    pub size: u64,
    pub sha256: String,
    /// The age-encrypted call metadata.
    pub meta: Option<Vec<u8>>,
    pub announced: Announcement,
    pub recorded_at: String,
    pub uploaded_by: UserName,
    /// The recorder's signed statement; `None` until the recorder has signed.
    pub statement: Option<Signed>,
}

impl Store<'_> {
    /// Stores a recording's row, not yet signed (`info.meta` and `info.statement` are
    /// ignored; `meta` is the raw ciphertext).
    pub fn insert_recording(&self, info: &RecordingInfo, meta: Option<&[u8]>) -> rusqlite::Result<()> {
        self.c
            .prepare_cached(
                "INSERT INTO recordings (id, case_id, key_version, size, sha256, announced, recorded_at, uploaded_by, \
                 uploaded_at, meta) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                info.id.as_str(),
                info.case_id.as_str(),
                info.key_version,
                info.size as i64,
                info.sha256,
                info.announced.as_str(),
                info.recorded_at,
                info.uploaded_by.as_str(),
                info.uploaded_at,
                meta
            ])?;
        Ok(())
    }

    /// Recording `id` as an upload answers it (without its call metadata), signed or not.
    pub fn recording_info(&self, id: &RecordingId) -> rusqlite::Result<Option<RecordingInfo>> {
        self.c
            .prepare_cached(&format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE id = ?1"))?
            .query_row([id.as_str()], |r| recording_info(r, false))
            .optional()
    }

    pub fn recording(&self, id: &RecordingId) -> rusqlite::Result<Option<StoredRecording>> {
        self.c
            .prepare_cached(
                "SELECT case_id, key_version, size, sha256, meta, announced, recorded_at, uploaded_by, statement \
                 FROM recordings WHERE id = ?1",
            )?
            .query_row([id.as_str()], |r| {
                Ok(StoredRecording {
                    case_id: parsed(r, 0)?,
                    key_version: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    sha256: r.get(3)?,
                    meta: r.get(4)?,
                    announced: parsed(r, 5)?,
                    recorded_at: r.get(6)?,
                    uploaded_by: parsed(r, 7)?,
                    statement: signed_column(r, 8)?,
                })
            })
            .optional()
    }

    /// Stores the recorder's signature, and the SHA-256 it signed, which makes the
    /// recording visible.
    pub fn sign_recording(&self, id: &RecordingId, sha256: &str, statement: &Signed) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE recordings SET statement = ?2, sha256 = ?3 WHERE id = ?1 AND statement IS NULL",
            params![id.as_str(), statement.to_json(), sha256],
        )?;
        Ok(())
    }

    /// Up to `limit` recordings of `case` in upload order, after the recording `after`
    /// (from the start without it). `None` when `after` is not a recording of `case`.
    ///
    /// Keyset paging on the rowid: a page costs the same at the millionth recording as at
    /// the first.
    pub fn recordings_page(
        &self,
        case: &CaseId,
        after: Option<&RecordingId>,
        limit: u32,
        with_meta: bool,
    ) -> rusqlite::Result<Option<Vec<RecordingInfo>>> {
        let after: i64 = match after {
            None => 0,
            Some(a) => {
                let row = self
                    .c
                    .prepare_cached("SELECT rowid FROM recordings WHERE id = ?1 AND case_id = ?2")?
                    .query_row([a.as_str(), case.as_str()], |r| r.get(0))
                    .optional()?;
                match row {
                    Some(rowid) => rowid,
                    None => return Ok(None),
                }
            }
        };
        self.c
            .prepare_cached(&format!(
                "SELECT {RECORDING_COLUMNS} FROM recordings \
                 WHERE case_id = ?1 AND rowid > ?2 AND statement IS NOT NULL ORDER BY rowid LIMIT ?3"
            ))?
            .query_map(params![case.as_str(), after, limit], |r| recording_info(r, with_meta))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map(Some)
    }

    /// Whether a row names recording `id`, signed or not: whether a file in `blobs/` is
    /// some recording's ciphertext.
    pub fn recording_exists(&self, id: &RecordingId) -> rusqlite::Result<bool> {
        self.c.prepare_cached("SELECT 1 FROM recordings WHERE id = ?1")?.exists([id.as_str()])
    }

    /// Whether any recording was ever stored (one that exists, or one destroyed).
    pub fn any_recording_ever(&self) -> rusqlite::Result<bool> {
        self.c.query_row(
            "SELECT EXISTS (SELECT 1 FROM recordings) OR EXISTS (SELECT 1 FROM destroyed_recordings)",
            [],
            |r| r.get(0),
        )
    }

    /// The case of recording `id` if it was destroyed (its destruction certificate names
    /// it), whether or not its file has been deleted yet.
    pub fn destroyed_case(&self, id: &RecordingId) -> rusqlite::Result<Option<CaseId>> {
        self.c
            .prepare_cached("SELECT case_id FROM destroyed_recordings WHERE recording_id = ?1")?
            .query_row([id.as_str()], |r| parsed(r, 0))
            .optional()
    }

    /// Up to `limit` recordings uploaded before `cutoff` (RFC 3339, as `uploaded_at` is
    /// written) that their recorder never signed: (id, case, size).
    pub fn unsigned_before(&self, cutoff: &str, limit: usize) -> rusqlite::Result<Vec<(RecordingId, CaseId, u64)>> {
        self.c
            .prepare_cached(
                "SELECT id, case_id, size FROM recordings WHERE statement IS NULL AND uploaded_at < ?1 LIMIT ?2",
            )?
            .query_map(rusqlite::params![cutoff, limit as i64], |r| {
                Ok((parsed(r, 0)?, parsed(r, 1)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect()
    }

    /// Calls `f` with every recording's id, size and SHA-256 (empty until its recorder
    /// signed), signed or not: the files `blobs/` must hold, in rowid order.
    pub fn for_each_recording_blob(
        &self,
        mut f: impl FnMut(RecordingId, u64, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut stmt = self.c.prepare("SELECT id, size, sha256 FROM recordings ORDER BY rowid")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            f(parsed(r, 0)?, r.get::<_, i64>(1)? as u64, r.get_ref(2)?.as_str()?)?;
        }
        Ok(())
    }

    /// Removes the row of a recording that was never signed (never listed or served).
    pub fn remove_unsigned(&self, id: &RecordingId) -> rusqlite::Result<()> {
        self.c.prepare_cached("DELETE FROM recordings WHERE id = ?1 AND statement IS NULL")?.execute([id.as_str()])?;
        Ok(())
    }
}
