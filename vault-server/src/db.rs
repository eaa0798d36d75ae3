//! SQLite storage: opening, migrations, the writer thread, and the access-log writer.
//!
//! One thread owns the connection that writes, so the access log is one linear chain,
//! and each log entry is written in the same transaction as the change it records.
//! That thread commits in groups: it opens a transaction, runs every request that is
//! waiting (each in a savepoint of its own, see `routes::logged`), commits once, and only
//! then answers them all. One fsync covers many requests, and no request is answered
//! before its entry is durable. Reads that need no log entry (who is calling?) use a
//! small pool of read-only connections and never wait for the writer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OptionalExtension, params};
use vault_core::log::{Entry, genesis};

use crate::error::{ApiError, ApiResult};

/// Migrations from `schema/migrations`, applied in order; `PRAGMA user_version` counts them.
const MIGRATIONS: &[&str] = &[
    include_str!("../../schema/migrations/0001_initial.sql"),
    include_str!("../../schema/migrations/0002_lifecycle.sql"),
    include_str!("../../schema/migrations/0003_scale.sql"),
    include_str!("../../schema/migrations/0004_counts.sql"),
];

/// Most requests committed together.
const MAX_GROUP: usize = 256;

/// Delivers a job's result once the fate of its group's commit is known.
type Deliver = Box<dyn FnOnce(bool) + Send>;

enum Job {
    /// Runs inside the group transaction; must keep its own changes atomic (savepoint).
    Grouped(Box<dyn FnOnce(&mut Connection) -> Deliver + Send>),
    /// Runs alone, outside any transaction (maintenance, start-up, tools).
    Alone(Box<dyn FnOnce(&mut Connection) + Send>),
}

#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: Arc<std::path::PathBuf>,
}

impl Db {
    /// Opens an existing database and checks it is at the schema version we know.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
        configure(&conn)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            anyhow::bail!(
                "database {} has schema version {version}, newer than this server knows ({}); use a newer vault-server",
                path.display(),
                MIGRATIONS.len()
            );
        }
        migrate(&conn)?;
        Ok(Self::start(conn, path))
    }

    /// Creates a new database with the current schema.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let conn =
            Connection::open(path).map_err(|e| anyhow::anyhow!("cannot create database {}: {e}", path.display()))?;
        configure(&conn)?;
        migrate(&conn)?;
        Ok(Self::start(conn, path))
    }

    fn start(conn: Connection, path: &Path) -> Self {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("vault-db-writer".into())
            .spawn(move || writer(conn, rx))
            .expect("cannot start the database writer thread");
        Self { jobs, readers: Arc::new(Mutex::new(Vec::new())), path: Arc::new(path.to_owned()) }
    }

    /// A separate read-only connection, for long reads (log exports) that must not hold
    /// up writers; in WAL mode it reads a consistent snapshot inside a transaction.
    pub fn reader(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(
            &*self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(c)
    }

    /// Runs `f` on the writer thread as part of the next group commit, and answers once
    /// the group is durable. `f` must keep its own writes atomic (a savepoint, as
    /// `routes::logged` does): the group's other requests commit whatever it leaves.
    pub async fn call<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> ApiResult<R> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<ApiResult<R>>();
        let job = Job::Grouped(Box::new(move |c: &mut Connection| {
            let result = f(c);
            Box::new(move |committed: bool| {
                let _ = tx.send(if committed { result } else { Err(ApiError::internal("the commit failed")) });
            })
        }));
        self.jobs.send(job).map_err(|_| ApiError::internal("the database writer stopped"))?;
        rx.await.map_err(|_| ApiError::internal("the database writer stopped"))?
    }

    /// Runs `f` on the writer thread alone, outside any transaction, and waits for it
    /// on the blocking pool.
    pub async fn alone<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> ApiResult<R> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.with(f))
            .await
            .map_err(|e| ApiError::internal(format!("database task: {e}")))?
    }

    /// Runs `f` on the writer thread alone and blocks until it is done (start-up and
    /// command-line tools; never on an async thread).
    pub fn with<R: Send + 'static>(&self, f: impl FnOnce(&mut Connection) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Job::Alone(Box::new(move |c| {
                let _ = tx.send(f(c));
            })))
            .expect("the database writer stopped");
        rx.recv().expect("the database writer stopped")
    }

    /// Runs a read-only `f` on a pooled read-only connection, on the blocking pool. It
    /// sees committed data only.
    pub async fn read<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> ApiResult<R> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = db.readers.lock().map_err(|_| ApiError::internal("reader pool poisoned"))?.pop();
            let conn = match pooled {
                Some(c) => c,
                None => db.reader()?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = db.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| ApiError::internal(format!("database task: {e}")))?
    }

    /// Appends one entry on its own.
    pub async fn log(&self, rec: LogRecord) -> ApiResult<()> {
        self.call(move |c| {
            let sp = c.savepoint()?;
            append_log(&sp, &rec)?;
            sp.commit()?;
            Ok(())
        })
        .await
    }

    /// Records a refused request, then returns `err` so the caller can
    /// `return Err(db.refuse(..).await)`. If the entry cannot be written the request
    /// still fails, with an internal error (fail closed).
    pub async fn refuse(&self, rec: LogRecord, err: ApiError) -> ApiError {
        match self.log(rec).await {
            Ok(()) => err,
            Err(e) => e,
        }
    }
}

/// Runs one grouped job. A job that panics is dropped (its caller sees "writer stopped",
/// a server error) and its savepoint rolls back as the panic unwinds; the writer and
/// the rest of the group go on.
fn run_grouped(f: Box<dyn FnOnce(&mut Connection) -> Deliver + Send>, conn: &mut Connection) -> Option<Deliver> {
    match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(deliver) => Some(deliver),
        Err(_) => {
            tracing::error!("a database job panicked");
            None
        }
    }
}

/// The writer thread: group commits, and jobs that run alone.
fn writer(mut conn: Connection, jobs: mpsc::Receiver<Job>) {
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => return, // every Db handle is gone
            },
        };
        let first = match job {
            Job::Alone(f) => {
                if catch_unwind(AssertUnwindSafe(|| f(&mut conn))).is_err() {
                    tracing::error!("a database job panicked");
                    let _ = conn.execute_batch("ROLLBACK");
                }
                continue;
            }
            Job::Grouped(f) => f,
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(detail = %e, "cannot begin a transaction");
            if let Some(deliver) = run_grouped(first, &mut conn) {
                deliver(false);
            }
            continue;
        }
        let mut group: Vec<Deliver> = run_grouped(first, &mut conn).into_iter().collect();
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(Job::Grouped(f)) => group.extend(run_grouped(f, &mut conn)),
                Ok(alone) => {
                    next = Some(alone);
                    break;
                }
                Err(_) => break,
            }
        }
        let committed = match conn.execute_batch("COMMIT") {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(detail = %e, "group commit failed; every request in it fails");
                let _ = conn.execute_batch("ROLLBACK");
                false
            }
        };
        for deliver in group {
            deliver(committed);
        }
    }
}

fn configure(conn: &Connection) -> anyhow::Result<()> {
    // WAL with synchronous=FULL: a commit is on disk when it returns, so an acknowledged
    // upload or log entry survives a crash.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql).map_err(|e| anyhow::anyhow!("migration {}: {e}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// The fields of a log entry that a caller chooses; sequence, time and links are added
/// by [`append_log`].
#[derive(Debug, Clone, Default)]
pub struct LogRecord {
    pub actor: String,
    pub action: &'static str,
    pub case_id: String,
    pub recording_id: String,
    pub reason: String,
    pub outcome: &'static str,
    pub details: String,
}

impl LogRecord {
    pub fn new(actor: impl Into<String>, action: &'static str, outcome: &'static str) -> Self {
        Self { actor: actor.into(), action, outcome, ..Default::default() }
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

/// Appends one entry to the access log inside the caller's transaction.
pub fn append_log(conn: &Connection, rec: &LogRecord) -> rusqlite::Result<u64> {
    let (seq, prev) = log_head(conn)?;
    let entry = Entry {
        seq,
        time_ms: chrono::Utc::now().timestamp_millis(),
        actor: rec.actor.clone(),
        action: rec.action.to_owned(),
        case_id: rec.case_id.clone(),
        recording_id: rec.recording_id.clone(),
        reason: rec.reason.clone(),
        outcome: rec.outcome.to_owned(),
        details: rec.details.clone(),
    };
    let hash = entry.chain_hash(&prev, &mut Vec::with_capacity(256));
    conn.prepare_cached(
        "INSERT INTO access_log (seq, time_ms, actor, action, case_id, recording_id, reason, outcome, details, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        seq as i64,
        entry.time_ms,
        entry.actor,
        entry.action,
        entry.case_id,
        entry.recording_id,
        entry.reason,
        entry.outcome,
        entry.details,
        &prev[..],
        &hash[..]
    ])?;
    Ok(seq)
}

/// The columns of a log row, in the order [`for_each_encoded`] reads them.
pub const LOG_COLUMNS: &str =
    "seq, time_ms, actor, action, case_id, recording_id, reason, outcome, details, prev, hash";

/// Calls `f` with the canonical encoding, prev and hash of each entry with
/// `from <= seq < to`, in order, reusing one buffer.
pub fn for_each_encoded(
    conn: &Connection,
    from: u64,
    to: u64,
    mut f: impl FnMut(&[u8], &[u8; 32], &[u8; 32]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut stmt =
        conn.prepare(&format!("SELECT {LOG_COLUMNS} FROM access_log WHERE seq >= ?1 AND seq < ?2 ORDER BY seq"))?;
    let mut rows = stmt.query([from as i64, to as i64])?;
    let mut buf = Vec::with_capacity(1024);
    while let Some(r) = rows.next()? {
        let text = |i| r.get_ref(i).and_then(|v| v.as_bytes().map_err(Into::into));
        let link = |i| -> anyhow::Result<[u8; 32]> {
            r.get_ref(i)?.as_blob()?.try_into().map_err(|_| anyhow::anyhow!("a stored hash is not 32 bytes"))
        };
        buf.clear();
        vault_core::log::encode_parts(
            &mut buf,
            r.get::<_, i64>(0)? as u64,
            r.get(1)?,
            [text(2)?, text(3)?, text(4)?, text(5)?, text(6)?, text(7)?, text(8)?],
        );
        f(&buf, &link(9)?, &link(10)?)?;
    }
    Ok(())
}

/// The number of entries and the head hash, as stored (unverified).
pub fn log_head(conn: &Connection) -> rusqlite::Result<(u64, [u8; 32])> {
    let head: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match head {
        None => (0, genesis()),
        Some((seq, hash)) => (seq as u64 + 1, hash.try_into().map_err(|_| rusqlite::Error::InvalidQuery)?),
    })
}

/// Reads the whole chain and checks every link with the auditor's verifier.
pub fn verify_log(conn: &Connection) -> anyhow::Result<(u64, [u8; 32])> {
    let mut v = vault_core::log::ChainVerifier::new(0, genesis());
    for_each_encoded(conn, 0, i64::MAX as u64, |enc, prev, hash| Ok(v.push(enc, prev, hash)?))?;
    Ok((v.next_seq(), v.head()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_a_panicking_job_does_not_stop_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let crashed = db
                .call(|c| -> ApiResult<()> {
                    let sp = c.savepoint()?;
                    append_log(&sp, &LogRecord::new("x", "half-done", "allowed"))?;
                    panic!("a bug in a handler");
                })
                .await;
            assert!(crashed.is_err());
            db.log(LogRecord::new("alice", "after", "allowed")).await.unwrap();
        });
        let (n, _) = db.with(|c| verify_log(c).unwrap());
        assert_eq!(n, 1, "the panicking job's entry must have rolled back");
    }

    #[test]
    fn log_chains_and_refuses_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db")).unwrap();
        db.with(|c| {
            for i in 0..5 {
                append_log(c, &LogRecord::new("alice", "test", "allowed").reason(format!("r{i}"))).unwrap();
            }
            assert_eq!(verify_log(c).unwrap().0, 5);
            assert!(c.execute("UPDATE access_log SET reason = 'x' WHERE seq = 2", []).is_err());
            assert!(c.execute("DELETE FROM access_log WHERE seq = 4", []).is_err());
            // Tampering below the triggers is caught by verification.
            c.execute_batch("DROP TRIGGER access_log_no_update; UPDATE access_log SET reason = 'x' WHERE seq = 2;")
                .unwrap();
            let err = verify_log(c).unwrap_err().to_string();
            assert!(err.starts_with("entry 2:"), "{err}");
        });
    }
}
