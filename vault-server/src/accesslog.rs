//! The access log: appending entries to the hash chain, verifying it, signing
//! checkpoints of its head, and the one way requests write to it.
//!
//! Every request has a [`RequestLog`]: the entry it will leave, filled in as the request
//! is understood (the route names the action, authentication the actor, the path the
//! case or recording). A request that changes or reads something runs its work through
//! [`RequestLog::logged`], which writes the `allowed` entry in the same transaction as the
//! work, so neither exists without the other. A request that is refused, wherever that
//! happens (an extractor, policy, a check of the body), answers with a client error; the
//! router's layer (`http::guard`) then writes the `refused` entry with [`RequestLog::write_refusal`] before
//! the answer leaves, and answers with a server error instead if it cannot (fail closed).
//! The encoding and chain rules are `vault_core::log`'s, shared with the auditors'
//! verifier.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ring::signature::Ed25519KeyPair;
use vault_core::ids::{CaseId, RecordingId, UserName};
use vault_core::log::{Action, ChainVerifier, Entry, Outcome, genesis};
use vault_core::note::Checkpoint;

use crate::abuse::Source;
use crate::db::Db;
use crate::error::{ApiResult, Refusal};
use crate::store::Store;

/// The fields of a log entry that a request chooses; sequence, time, outcome and links
/// are added by [`append`].
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub actor: String,
    pub action: Action,
    pub case_id: String,
    pub recording_id: String,
    pub reason: String,
    /// Small details as compact JSON, or empty.
    pub details: String,
}

impl LogRecord {
    pub fn new(actor: impl Into<String>, action: Action) -> Self {
        Self {
            actor: actor.into(),
            action,
            case_id: String::new(),
            recording_id: String::new(),
            reason: String::new(),
            details: String::new(),
        }
    }

    pub fn case(mut self, id: impl ToString) -> Self {
        self.case_id = id.to_string();
        self
    }

    pub fn recording(mut self, id: impl ToString) -> Self {
        self.recording_id = id.to_string();
        self
    }

    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = r.into();
        self
    }

    pub fn details(mut self, d: serde_json::Value) -> Self {
        self.details = d.to_string();
        self
    }
}

/// Longest actor, case or recording id an entry keeps (validated ids are far shorter).
pub const ID_CAP: usize = 128;
/// Longest reason an entry keeps (requests refuse reasons over 1000 bytes).
pub const REASON_CAP: usize = 1024;
/// Longest details an entry keeps: a signed statement with its signatures fits easily.
pub const DETAILS_CAP: usize = 64 * 1024;

/// `s`, cut to at most `max` bytes (at a character boundary) and marked as cut.
pub fn cap(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let marker = format!("…[cut: {} bytes]", s.len());
    let mut end = max.saturating_sub(marker.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &s[..end]).into()
}

/// Details capped at [`DETAILS_CAP`]: over it, a JSON object saying how long they were,
/// with their start, so the field stays JSON.
fn cap_details(d: &str) -> String {
    if d.len() <= DETAILS_CAP {
        return d.to_owned();
    }
    serde_json::json!({ "cut": d.len(), "start": cap(d, 1024) }).to_string()
}

/// Appends one entry to the access log inside the caller's transaction; returns its
/// sequence number. Every text field is capped (see the `*_CAP` constants), so that no
/// request can make an entry large.
pub fn append(s: &Store<'_>, rec: &LogRecord, outcome: Outcome) -> rusqlite::Result<u64> {
    let (seq, prev) = s.log_head()?;
    let entry = Entry {
        seq,
        time_ms: chrono::Utc::now().timestamp_millis(),
        actor: cap(&rec.actor, ID_CAP).into_owned(),
        action: rec.action.to_string(),
        case_id: cap(&rec.case_id, ID_CAP).into_owned(),
        recording_id: cap(&rec.recording_id, ID_CAP).into_owned(),
        reason: cap(&rec.reason, REASON_CAP).into_owned(),
        outcome: outcome.to_string(),
        details: cap_details(&rec.details),
    };
    let mut encoded = Vec::with_capacity(256);
    let hash = entry.chain_hash(&prev, &mut encoded);
    s.insert_log_entry(&entry, &prev, &hash)?;
    // `encoded` holds the entry's canonical encoding: the leaf of the Merkle tree.
    s.append_merkle_leaf(seq, &encoded)?;
    Ok(seq)
}

/// Reads the whole chain and checks every link with the auditors' verifier; returns the
/// number of entries and the head hash.
pub fn verify(s: &Store<'_>) -> anyhow::Result<(u64, [u8; 32])> {
    let mut v = ChainVerifier::new(0, genesis());
    s.for_each_encoded(0, i64::MAX as u64, |enc, prev, hash| Ok(v.push(enc, prev, hash)?))?;
    verify_tree(s, v.next_seq())?;
    Ok((v.next_seq(), v.head()))
}

/// Checks that the stored Merkle tree is exactly the tree of the log's `n` entries:
/// every leaf the hash of its entry, every inner node the hash of its two children, and
/// every level as long as `n` makes it. Sequential reads only (two passes).
fn verify_tree(s: &Store<'_>, n: u64) -> anyhow::Result<()> {
    let broken =
        |what: String| anyhow::anyhow!("the stored Merkle tree is not the tree of the log's {n} entries: {what}");
    let mut seq = 0u64;
    s.for_each_encoded_with_leaf(|enc, stored| {
        if stored != Some(&vault_core::merkle::leaf_hash(enc)[..]) {
            return Err(broken(format!("leaf {seq} is missing or is not its entry's hash")));
        }
        seq += 1;
        Ok(())
    })?;
    let (mut level, mut next) = (1u32, 0u64);
    let check_level_done = |level: u32, count: u64| {
        if count != n >> level {
            return Err(broken(format!("level {level} has {count} nodes, not {}", n >> level)));
        }
        Ok(())
    };
    s.for_each_merkle_parent(|l, idx, hash, left, right| {
        while l > level {
            check_level_done(level, next)?;
            (level, next) = (level + 1, 0);
        }
        if idx != next {
            return Err(broken(format!("node ({l}, {next}) is missing")));
        }
        let (Some(left), Some(right)) = (left, right) else {
            return Err(broken(format!("node ({l}, {idx}) lacks a child")));
        };
        let (left, right): (vault_core::merkle::Hash, vault_core::merkle::Hash) = (
            left.try_into().map_err(|_| broken("a short hash".into()))?,
            right.try_into().map_err(|_| broken("a short hash".into()))?,
        );
        if hash != vault_core::merkle::node_hash(&left, &right) {
            return Err(broken(format!("node ({l}, {idx}) is not the hash of its children")));
        }
        next += 1;
        Ok(())
    })?;
    // The last level read, and every level above it up to the tree's height.
    while level < 64 && (n >> level > 0 || next > 0) {
        check_level_done(level, next)?;
        (level, next) = (level + 1, 0);
    }
    Ok(())
}

/// Adds to the stored Merkle tree the leaves of entries written before it existed (a
/// log older than migration 0006). Returns how many.
pub fn backfill_merkle(s: &Store<'_>) -> anyhow::Result<u64> {
    let from = s.merkle_leaves()?;
    let mut n = 0;
    s.for_each_encoded(from, i64::MAX as u64, |enc, _, _| {
        s.append_merkle_leaf(from + n, enc)?;
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// The checkpoint of the log as it is now (the head of its Merkle tree), and its signed
/// note.
pub fn checkpoint(s: &Store<'_>, origin: &str, key: &Ed25519KeyPair) -> rusqlite::Result<(Checkpoint, String)> {
    let (size, _) = s.log_head()?;
    let cp = Checkpoint { origin: origin.to_owned(), size, root: s.merkle_root(size)? };
    let note = cp.sign(key);
    Ok((cp, note))
}

/// The access-log entry of one request in flight, with where the request came from and
/// whether it carried a valid session token. Cloning shares it.
#[derive(Clone, Debug)]
pub struct RequestLog {
    rec: Arc<Mutex<LogRecord>>,
    source: Source,
    authenticated: Arc<AtomicBool>,
}

impl RequestLog {
    /// An entry for `action` by a caller not (yet) authenticated, `-`.
    pub fn new(action: Action, source: Source) -> Self {
        Self {
            rec: Arc::new(Mutex::new(LogRecord::new("-", action))),
            source,
            authenticated: Arc::new(AtomicBool::new(false)),
        }
    }

    fn update(&self, f: impl FnOnce(&mut LogRecord)) {
        f(&mut self.rec.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The entry as it stands.
    pub fn record(&self) -> LogRecord {
        self.rec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn action(&self) -> Action {
        self.rec.lock().unwrap_or_else(|e| e.into_inner()).action
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// Whether the request carried a valid session token (its caller is accountable).
    pub fn authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Relaxed)
    }

    /// Names the actor proven by a valid session token.
    pub fn set_authenticated(&self, name: &UserName) {
        self.set_actor(name);
        self.authenticated.store(true, Ordering::Relaxed);
    }

    /// Names the actor: the user a token or login names, even if they are refused.
    pub fn set_actor(&self, name: &UserName) {
        self.update(|r| r.actor = name.to_string());
    }

    /// Records the action under another name than the route's (a login refused at the
    /// challenge is a refused `login`).
    pub fn set_action(&self, action: Action) {
        self.update(|r| r.action = action);
    }

    pub fn set_case(&self, id: &CaseId) {
        self.update(|r| r.case_id = id.to_string());
    }

    pub fn set_recording(&self, id: &RecordingId) {
        self.update(|r| r.recording_id = id.to_string());
    }

    /// The reason the caller stated (`--reason`).
    pub fn set_reason(&self, reason: &str) {
        self.update(|r| r.reason = reason.to_owned());
    }

    /// Runs `f` on the database writer, in a savepoint of the next group commit, and
    /// appends this request's entry in the same savepoint: as `allowed` if `f` succeeds.
    /// If `f` fails, its changes roll back and nothing is appended; a client error is then
    /// a refusal, whose entry (with whatever `f` filled in, such as the case a recording
    /// belongs to) the router's layer writes. The caller is answered only once the group
    /// is durable.
    pub async fn logged<R: Send + 'static>(
        &self,
        db: &Db,
        f: impl FnOnce(&Store<'_>, &mut LogRecord) -> ApiResult<R> + Send + 'static,
    ) -> ApiResult<R> {
        self.logged_with(db, move |s, rec| Ok((f(s, rec)?, None))).await
    }

    /// As [`RequestLog::logged`], and appends the second entry `f` may return right after
    /// this request's own, in the same savepoint: for a request that does two logged
    /// things at once (an upload that arrives signed is an `upload` and a
    /// `recording-sign`).
    pub async fn logged_with<R: Send + 'static>(
        &self,
        db: &Db,
        f: impl FnOnce(&Store<'_>, &mut LogRecord) -> ApiResult<(R, Option<LogRecord>)> + Send + 'static,
    ) -> ApiResult<R> {
        let mut rec = self.record();
        let this = self.clone();
        db.call(move |c| {
            let sp = c.savepoint()?;
            let store = Store::new(&sp);
            match f(&store, &mut rec) {
                Ok((r, second)) => {
                    append(&store, &rec, Outcome::Allowed)?;
                    if let Some(second) = second {
                        append(&store, &second, Outcome::Allowed)?;
                    }
                    sp.commit()?;
                    Ok(r)
                }
                Err(e) => {
                    if e.status.is_client_error() {
                        this.update(|r| *r = rec);
                    }
                    Err(e)
                }
            }
        })
        .await
    }

    /// Appends this request's entry as `refused`, with `refusal` as its details. Only the
    /// router's layer calls this, once per refused request that it does not count.
    pub async fn write_refusal(&self, db: &Db, refusal: &Refusal) -> ApiResult<()> {
        let mut rec = self.record();
        rec.details = refusal.details();
        Self::write(db, rec, Outcome::Refused).await
    }

    /// Appends this request's entry as `allowed`, for a request that changed and read
    /// nothing (a login challenge), which the router's layer logs after it answered.
    pub async fn write_allowed(&self, db: &Db) -> ApiResult<()> {
        Self::write(db, self.record(), Outcome::Allowed).await
    }

    async fn write(db: &Db, rec: LogRecord, outcome: Outcome) -> ApiResult<()> {
        db.call(move |c| {
            let sp = c.savepoint()?;
            append(&Store::new(&sp), &rec, outcome)?;
            sp.commit()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_chains_and_refuses_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db")).unwrap();
        db.with(|c| {
            let s = Store::new(c);
            for i in 0..5 {
                append(&s, &LogRecord::new("alice", Action::Fetch).reason(format!("r{i}")), Outcome::Allowed).unwrap();
            }
            assert_eq!(verify(&s).unwrap().0, 5);
            assert!(c.execute("UPDATE access_log SET reason = 'x' WHERE seq = 2", []).is_err());
            assert!(c.execute("DELETE FROM access_log WHERE seq = 4", []).is_err());
            // Tampering below the triggers is caught by verification.
            c.execute_batch("DROP TRIGGER access_log_no_update; UPDATE access_log SET reason = 'x' WHERE seq = 2;")
                .unwrap();
            let err = verify(&s).unwrap_err().to_string();
            assert!(err.starts_with("entry 2:"), "{err}");
        });
    }

    #[test]
    fn the_log_is_a_merkle_tree_kept_with_it_and_older_logs_get_theirs_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::create(&path).unwrap();
        let leaves: Vec<vault_core::merkle::Hash> = db.with(|c| {
            let s = Store::new(c);
            for i in 0..37 {
                append(&s, &LogRecord::new("alice", Action::Fetch).reason(format!("r{i}")), Outcome::Allowed).unwrap();
            }
            assert_eq!(verify(&s).unwrap().0, 37);
            let mut leaves = Vec::new();
            s.for_each_encoded(0, 37, |enc, _, _| {
                leaves.push(vault_core::merkle::leaf_hash(enc));
                Ok(())
            })
            .unwrap();
            for n in [1, 16, 20, 37] {
                assert_eq!(s.merkle_root(n).unwrap(), vault_core::merkle::root(&leaves[..n as usize]));
            }
            assert!(c.execute("DELETE FROM merkle_nodes WHERE level = 0 AND idx = 3", []).is_err());
            // A log from before the tree: its nodes are made when it is opened.
            c.execute_batch("DROP TRIGGER merkle_nodes_no_delete; DELETE FROM merkle_nodes WHERE idx >= 0;").unwrap();
            leaves
        });
        drop(db);
        let db = Db::open(&path).unwrap();
        db.with(move |c| {
            let s = Store::new(c);
            assert_eq!(s.merkle_leaves().unwrap(), 37);
            assert_eq!(s.merkle_root(37).unwrap(), vault_core::merkle::root(&leaves));
            assert_eq!(verify(&s).unwrap().0, 37);
            // A node altered below the triggers: verification names the tree.
            c.execute_batch(
                "DROP TRIGGER merkle_nodes_no_update; UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 1;",
            )
            .unwrap();
            let err = verify(&s).unwrap_err().to_string();
            assert!(err.contains("Merkle tree"), "{err}");
        });
    }

    #[test]
    fn fail_a_missing_extra_or_altered_node_of_the_tree_is_found() {
        for (tamper, needle) in [
            ("DELETE FROM merkle_nodes WHERE level = 0 AND idx = 5", "leaf 5"),
            ("UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 19", "leaf 19"),
            ("INSERT INTO merkle_nodes VALUES (3, 9, zeroblob(32))", "node (3, 2) is missing"),
            ("INSERT INTO merkle_nodes VALUES (5, 0, zeroblob(32))", "node (5, 0) lacks a child"),
            ("DELETE FROM merkle_nodes WHERE level = 2 AND idx = 4", "level 2 has 4 nodes, not 5"),
            ("DELETE FROM merkle_nodes WHERE level = 1 AND idx = 3", "node (1, 3) is missing"),
            ("UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 2", "node (1, 2)"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::create(&dir.path().join("t.db")).unwrap();
            db.with(move |c| {
                let s = Store::new(c);
                for i in 0..20 {
                    append(&s, &LogRecord::new("a", Action::Fetch).reason(format!("{i}")), Outcome::Allowed).unwrap();
                }
                verify(&s).unwrap();
                c.execute_batch("DROP TRIGGER merkle_nodes_no_update; DROP TRIGGER merkle_nodes_no_delete;").unwrap();
                c.execute_batch(tamper).unwrap();
                let err = verify(&s).unwrap_err().to_string();
                assert!(err.contains(needle), "{tamper}: {err}");
            });
        }
    }

    #[test]
    fn a_refusal_keeps_what_the_work_learnt_and_nothing_of_its_changes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let log = RequestLog::new(Action::Fetch, Source::Local);
        log.set_actor(&"bob".parse().unwrap());
        let case = CaseId::random();
        let c2 = case.clone();
        let err = rt
            .block_on(log.logged(&db, move |s, rec| -> ApiResult<()> {
                append(s, &LogRecord::new("x", Action::Upload), Outcome::Allowed)?;
                rec.case_id = c2.to_string();
                Err(crate::error::ApiError::denied("no grant"))
            }))
            .unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::FORBIDDEN);
        assert_eq!(db.with(|c| Store::new(c).log_head().unwrap().0), 0, "the work's own entry must roll back");
        let refusal = Refusal { code: "access_denied", message: "no grant".into(), why: None };
        rt.block_on(log.write_refusal(&db, &refusal)).unwrap();
        let entries = db.with(|c| Store::new(c).log_entries(0, u64::MAX, None, 10).unwrap());
        let e = &entries[0].entry;
        assert_eq!((e.actor.as_str(), e.action.as_str(), e.outcome.as_str()), ("bob", "fetch", "refused"));
        assert_eq!(e.case_id, case.to_string());
        assert_eq!(e.details, r#"{"refusal":"no grant","why":null}"#);
    }
}
