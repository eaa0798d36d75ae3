//! `access_log` and the log's origin in `meta`: rows of the hash chain. The chain itself
//! (hashing, verifying, checkpoints) is `crate::accesslog`'s; these are only its reads and
//! writes.

use rusqlite::{OptionalExtension, params};
use vault_core::ids::{CaseId, RecordingId};
use vault_core::log::{ChainedEntry, Entry, genesis};

use super::Store;
use vault_core::merkle::{self, Hash};

/// The stored tree as the proof code reads it. Proofs are made by infallible code, so a
/// node the database fails to give (damage, an I/O error) is remembered, the proof made
/// with a dummy hash is thrown away, and the error is returned instead.
struct Nodes<'a, 'c> {
    s: &'a Store<'c>,
    error: std::cell::RefCell<Option<rusqlite::Error>>,
}

impl<'a, 'c> Nodes<'a, 'c> {
    fn new(s: &'a Store<'c>) -> Self {
        Self { s, error: std::cell::RefCell::new(None) }
    }

    fn done(self) -> rusqlite::Result<()> {
        self.error.into_inner().map_or(Ok(()), Err)
    }
}

impl merkle::PerfectNodes for Nodes<'_, '_> {
    fn node(&self, level: u32, index: u64) -> Hash {
        self.s.merkle_node(level, index).unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            [0; 32]
        })
    }
}

/// What a selection of entries is about.
#[derive(Debug, Clone)]
pub enum About {
    Case(CaseId),
    Recording(RecordingId),
    /// Entries of one action (auditors looking for `log-restore`; not indexed, so a scan
    /// of the log, which only that rare question pays).
    Action(vault_core::log::Action),
}

/// The columns of a log row, in the order [`Store::for_each_encoded`] reads them.
const LOG_COLUMNS: &str = "seq, time_ms, actor, action, case_id, recording_id, reason, outcome, details, prev, hash";

impl Store<'_> {
    /// The number of entries and the head hash, as stored (unverified).
    pub fn log_head(&self) -> rusqlite::Result<(u64, [u8; 32])> {
        let head: Option<(i64, Vec<u8>)> = self
            .c
            .prepare_cached("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(match head {
            None => (0, genesis()),
            Some((seq, hash)) => (seq as u64 + 1, hash.try_into().map_err(|_| rusqlite::Error::InvalidQuery)?),
        })
    }

    /// A stored node of the log's Merkle tree (see migration 0006).
    pub fn merkle_node(&self, level: u32, idx: u64) -> rusqlite::Result<vault_core::merkle::Hash> {
        let h: Vec<u8> = self
            .c
            .prepare_cached("SELECT hash FROM merkle_nodes WHERE level = ?1 AND idx = ?2")?
            .query_row(params![level, idx as i64], |r| r.get(0))?;
        h.try_into().map_err(|_| rusqlite::Error::InvalidQuery)
    }

    pub fn insert_merkle_node(&self, level: u32, idx: u64, hash: &vault_core::merkle::Hash) -> rusqlite::Result<()> {
        self.c.prepare_cached("INSERT INTO merkle_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?.execute(params![
            level,
            idx as i64,
            &hash[..]
        ])?;
        Ok(())
    }

    /// Every stored inner node of the Merkle tree, in order of level and index, with its
    /// two children's stored hashes (`None` where a child is missing).
    pub fn for_each_merkle_parent(
        &self,
        mut f: impl FnMut(u32, u64, &[u8], Option<&[u8]>, Option<&[u8]>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut stmt = self.c.prepare(
            "SELECT p.level, p.idx, p.hash, l.hash, r.hash FROM merkle_nodes p
             LEFT JOIN merkle_nodes l ON l.level = p.level - 1 AND l.idx = 2 * p.idx
             LEFT JOIN merkle_nodes r ON r.level = p.level - 1 AND r.idx = 2 * p.idx + 1
             WHERE p.level >= 1 ORDER BY p.level, p.idx",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let blob = |i| r.get_ref(i).and_then(|v| v.as_blob_or_null().map_err(Into::into));
            f(r.get(0)?, r.get::<_, i64>(1)? as u64, blob(2)?.unwrap_or_default(), blob(3)?, blob(4)?)?;
        }
        Ok(())
    }

    /// How many leaves the stored tree has.
    pub fn merkle_leaves(&self) -> rusqlite::Result<u64> {
        let max: Option<i64> =
            self.c.prepare_cached("SELECT max(idx) FROM merkle_nodes WHERE level = 0")?.query_row([], |r| r.get(0))?;
        Ok(max.map_or(0, |m| m as u64 + 1))
    }

    /// Adds the leaf of entry `seq` (`encoded` its canonical encoding) to the stored
    /// tree, with every perfect node it completes.
    pub fn append_merkle_leaf(&self, seq: u64, encoded: &[u8]) -> rusqlite::Result<()> {
        let leaf = vault_core::merkle::leaf_hash(encoded);
        for (level, idx, h) in vault_core::merkle::completed_by(seq, leaf, |l, i| self.merkle_node(l, i))? {
            self.insert_merkle_node(level, idx, &h)?;
        }
        Ok(())
    }

    /// The head of the stored tree of the first `size` leaves.
    pub fn merkle_root(&self, size: u64) -> rusqlite::Result<vault_core::merkle::Hash> {
        vault_core::merkle::stored_root(size, |level, idx| self.merkle_node(level, idx))
    }

    /// The inclusion proof of entry `index` in the tree of the first `size` entries,
    /// from the stored nodes (the caller checks `index < size <= ` the log's size).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> anyhow::Result<Vec<Hash>> {
        let nodes = Nodes::new(self);
        let proof = merkle::inclusion_proof(&merkle::Stored(&nodes), index, size)?;
        nodes.done()?;
        Ok(proof)
    }

    /// The consistency proof from the tree of the first `from` entries to that of `to`.
    pub fn consistency_proof(&self, from: u64, to: u64) -> anyhow::Result<Vec<Hash>> {
        let nodes = Nodes::new(self);
        let proof = merkle::consistency_proof(&merkle::Stored(&nodes), from, to)?;
        nodes.done()?;
        Ok(proof)
    }

    pub fn insert_log_entry(&self, e: &Entry, prev: &[u8; 32], hash: &[u8; 32]) -> rusqlite::Result<()> {
        self.c
            .prepare_cached(&format!(
                "INSERT INTO access_log ({LOG_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                e.seq as i64,
                e.time_ms,
                e.actor,
                e.action,
                e.case_id,
                e.recording_id,
                e.reason,
                e.outcome,
                e.details,
                &prev[..],
                &hash[..]
            ])?;
        Ok(())
    }

    /// Calls `f` with the canonical encoding, prev and hash of each entry with
    /// `from <= seq < to`, in order, reusing one buffer.
    pub fn for_each_encoded(
        &self,
        from: u64,
        to: u64,
        mut f: impl FnMut(&[u8], &[u8; 32], &[u8; 32]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let sql = format!("SELECT {LOG_COLUMNS} FROM access_log WHERE seq >= ?1 AND seq < ?2 ORDER BY seq");
        self.scan_encoded(&sql, [from as i64, to as i64], |enc, r| {
            let link = |i| -> anyhow::Result<[u8; 32]> {
                r.get_ref(i)?.as_blob()?.try_into().map_err(|_| anyhow::anyhow!("a stored hash is not 32 bytes"))
            };
            f(enc, &link(9)?, &link(10)?)
        })
    }

    /// Calls `f` with the canonical encoding of every entry, in order, and the leaf the
    /// stored Merkle tree holds for it (`None` if it holds none).
    pub fn for_each_encoded_with_leaf(
        &self,
        mut f: impl FnMut(&[u8], Option<&[u8]>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let sql = format!(
            "SELECT {LOG_COLUMNS}, (SELECT m.hash FROM merkle_nodes m WHERE m.level = 0 AND m.idx = access_log.seq)
             FROM access_log ORDER BY seq"
        );
        self.scan_encoded(&sql, [], |enc, r| f(enc, r.get_ref(11)?.as_blob_or_null()?))
    }

    /// Runs `sql` (selecting LOG_COLUMNS first) and calls `f` with each row's canonical
    /// encoding and the row, reusing one buffer.
    fn scan_encoded<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        mut f: impl FnMut(&[u8], &rusqlite::Row<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut stmt = self.c.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        let mut buf = Vec::with_capacity(1024);
        while let Some(r) = rows.next()? {
            let text = |i| r.get_ref(i).and_then(|v| v.as_bytes().map_err(Into::into));
            buf.clear();
            vault_core::log::encode_parts(
                &mut buf,
                r.get::<_, i64>(0)? as u64,
                r.get(1)?,
                [text(2)?, text(3)?, text(4)?, text(5)?, text(6)?, text(7)?, text(8)?],
            );
            f(&buf, r)?;
        }
        Ok(())
    }

    /// The canonical encodings of a recording's custody entries below `to`, in order: every
    /// entry about the recording, and the case's entries of the actions
    /// [`vault_core::evidence::CASE_ACTIONS`] names.
    pub fn custody_entries(
        &self,
        case: &CaseId,
        recording: &RecordingId,
        to: u64,
    ) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        let actions = vault_core::evidence::CASE_ACTIONS.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(",");
        // Two selections, each by its partial index (their `<> ''` terms let SQLite use it).
        let sql = format!(
            "SELECT {LOG_COLUMNS} FROM access_log WHERE seq < ?1 AND recording_id = ?2 AND recording_id <> ''
             UNION ALL
             SELECT {LOG_COLUMNS} FROM access_log WHERE seq < ?1 AND case_id = ?3 AND case_id <> ''
                 AND recording_id = '' AND action IN ({actions})
             ORDER BY seq"
        );
        let mut out = Vec::new();
        self.scan_encoded(&sql, params![to as i64, recording.as_str(), case.as_str()], |enc, r| {
            out.push((r.get::<_, i64>(0)? as u64, enc.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    /// Up to `limit` entries with `from <= seq < to`, only those about `about` (a case, a
    /// recording or an action) if given.
    pub fn log_entries(
        &self,
        from: u64,
        to: u64,
        about: Option<&About>,
        limit: u32,
    ) -> rusqlite::Result<Vec<ChainedEntry>> {
        let (case, recording, action) = match about {
            None => (None, None, None),
            Some(About::Case(c)) => (Some(c.as_str()), None, None),
            Some(About::Recording(r)) => (None, Some(r.as_str()), None),
            Some(About::Action(a)) => (None, None, Some(a.as_str())),
        };
        self.c
            .prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM access_log WHERE seq >= ?1 AND seq < ?2
                 AND (?3 IS NULL OR case_id = ?3) AND (?4 IS NULL OR recording_id = ?4)
                 AND (?6 IS NULL OR action = ?6) ORDER BY seq LIMIT ?5"
            ))?
            .query_map(params![from as i64, to.min(i64::MAX as u64) as i64, case, recording, limit, action], |r| {
                let link = |i| -> rusqlite::Result<[u8; 32]> {
                    r.get::<_, Vec<u8>>(i)?.try_into().map_err(|_| rusqlite::Error::InvalidQuery)
                };
                Ok(ChainedEntry {
                    entry: Entry {
                        seq: r.get::<_, i64>(0)? as u64,
                        time_ms: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        case_id: r.get(4)?,
                        recording_id: r.get(5)?,
                        reason: r.get(6)?,
                        outcome: r.get(7)?,
                        details: r.get(8)?,
                    },
                    prev: link(9)?,
                    hash: link(10)?,
                })
            })?
            .collect()
    }

    /// A value kept in `meta`.
    pub fn meta(&self, key: &str) -> rusqlite::Result<Option<String>> {
        self.c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()
    }

    pub fn set_meta(&self, key: &str, value: &str) -> rusqlite::Result<()> {
        self.c.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// The log's name in checkpoints, fixed at `init`.
    pub fn log_origin(&self) -> rusqlite::Result<Option<String>> {
        self.c.query_row("SELECT value FROM meta WHERE key = 'log_origin'", [], |r| r.get(0)).optional()
    }

    pub fn set_log_origin(&self, origin: &str) -> rusqlite::Result<()> {
        self.c.execute("INSERT INTO meta (key, value) VALUES ('log_origin', ?1)", [origin])?;
        Ok(())
    }
}
