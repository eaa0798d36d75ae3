//! SQLite: opening, migrations, the writer thread and its group commit, and the pool of
//! readers. What the statements are is `crate::store`'s business; this module only runs
//! them.
//!
//! One thread owns the connection that writes, so the access log is one linear chain,
//! and each log entry is written in the same transaction as the change it records.
//! That thread commits in groups: it opens a transaction, runs every request that is
//! waiting (each in a savepoint of its own, see `accesslog::RequestLog::logged`), commits
//! once, and only then answers them all. One fsync covers many requests, and no request is answered
//! before its entry is durable. Reads that need no log entry (who is calling?) use a
//! small pool of read-only connections and never wait for the writer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::Connection;

use crate::error::{ApiError, ApiResult};
use crate::store::Store;

/// Migrations from `schema/migrations`, applied in order; `PRAGMA user_version` counts them.
const MIGRATIONS: &[&str] = &[
    include_str!("../../schema/migrations/0001_initial.sql"),
    include_str!("../../schema/migrations/0002_lifecycle.sql"),
    include_str!("../../schema/migrations/0003_scale.sql"),
    include_str!("../../schema/migrations/0004_counts.sql"),
    include_str!("../../schema/migrations/0005_trust.sql"),
    include_str!("../../schema/migrations/0006_merkle.sql"),
    include_str!("../../schema/migrations/0007_reopen.sql"),
    include_str!("../../schema/migrations/0008_custody_index.sql"),
];

/// The first schema version with people's signatures (migration 0005); older data dirs
/// are refused rather than migrated, since nothing in them is signed.
const FIRST_TRUSTED_SCHEMA: i64 = 5;

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
        if (1..FIRST_TRUSTED_SCHEMA).contains(&version) {
            anyhow::bail!(
                "database {} was made by a vault-server before signed trust (schema version {version}): its people have \
                 no signing keys and its case keys and recordings carry no signatures, so no client could trust it. \
                 Keep it read-only for the record (`vault-server verify` and `vault-cli audit export` still work with \
                 the old version), and make a new vault with `vault-server init --admin NAME --recipient VAULT1...` \
                 (see README, \"Upgrading from a vault without signed trust\")",
                path.display()
            );
        }
        migrate(&conn)?;
        // A log from before the Merkle tree (migration 0006) gets its tree now.
        let tx = conn.unchecked_transaction()?;
        let added = crate::accesslog::backfill_merkle(&crate::store::Store::new(&tx))?;
        tx.commit()?;
        if added > 0 {
            tracing::info!(entries = added, "added the log's older entries to its Merkle tree");
        }
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

    /// Runs `f` in one read transaction on a fresh read-only connection: a consistent
    /// snapshot however long `f` takes (a log export), that never holds up the writer.
    /// Blocking.
    pub fn snapshot<R>(&self, f: impl FnOnce(&Store<'_>) -> R) -> rusqlite::Result<R> {
        let mut conn = self.reader()?;
        let tx = conn.transaction()?;
        Ok(f(&Store::new(&tx)))
    }

    /// Runs `f` on the writer thread as part of the next group commit, and answers once
    /// the group is durable. `f` must keep its own writes atomic (a savepoint, as
    /// `accesslog` does): the group's other requests commit whatever it leaves.
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

    /// Runs `f` alone on the writer thread in a transaction of its own, committed if `f`
    /// succeeds and rolled back if it fails (start-up, maintenance, tools). Blocking.
    pub fn transaction<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store<'_>) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let r = f(&Store::new(&tx))?;
            tx.commit()?;
            Ok(r)
        })
    }

    /// Runs a read-only `f` on a pooled read-only connection, on the blocking pool. It
    /// sees committed data only.
    pub async fn read<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Store<'_>) -> ApiResult<R> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = db.readers.lock().map_err(|_| ApiError::internal("reader pool poisoned"))?.pop();
            let conn = match pooled {
                Some(c) => c,
                None => db.reader()?,
            };
            let result = f(&Store::new(&conn));
            if let Ok(mut pool) = db.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| ApiError::internal(format!("database task: {e}")))?
    }
}

/// Writes a consistent copy of the database at `src` to the new file `dest` with
/// `VACUUM INTO`: one read transaction on a connection of its own, so a server using
/// `src` goes on writing meanwhile (WAL readers never block the writer) and the copy is
/// the database as of one commit. The copy is switched out of WAL mode, so that it is one
/// self-contained file that can be opened read-only; opening it with [`Db::open`] puts
/// it back in WAL mode. Blocking.
pub fn copy_snapshot(src: &Path, dest: &Path) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(
        src,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", src.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let dest_text = dest.to_str().ok_or_else(|| anyhow::anyhow!("{} is not a UTF-8 path", dest.display()))?;
    conn.execute("VACUUM INTO ?1", [dest_text])
        .map_err(|e| anyhow::anyhow!("cannot copy the database to {}: {e}", dest.display()))?;
    drop(conn);
    let copy = Connection::open(dest)?;
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    drop(copy);
    // As private as the original (`VACUUM INTO` creates it with the umask's mode).
    std::fs::set_permissions(dest, std::fs::metadata(src)?.permissions())?;
    std::fs::File::open(dest)?.sync_all()?;
    Ok(())
}

/// Opens a database file read-only, for checking a copy (a backup) without changing it.
/// Blocking.
pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version != MIGRATIONS.len() as i64 {
        anyhow::bail!(
            "database {} has schema version {version}, this vault-server knows {}; use the vault-server that wrote it",
            path.display(),
            MIGRATIONS.len()
        );
    }
    Ok(conn)
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
            // Not run at all: outside a transaction its work would commit on its own
            // while its caller is told it failed. Its caller sees "writer stopped".
            tracing::error!(detail = %e, "cannot begin a transaction");
            drop(first);
            continue;
        }
        let mut group: Vec<Deliver> = run_grouped(first, &mut conn).into_iter().collect();
        // SQLite may roll back the whole transaction when a statement fails, for one with
        // a full disk (SQLITE_FULL while it spills pages). Every job so far is then undone,
        // and a further job's savepoint would start and commit a transaction of its own:
        // so the group ends there, and fails.
        let mut lost = conn.is_autocommit();
        while !lost && group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(Job::Grouped(f)) => {
                    group.extend(run_grouped(f, &mut conn));
                    lost = conn.is_autocommit();
                }
                Ok(alone) => {
                    next = Some(alone);
                    break;
                }
                Err(_) => break,
            }
        }
        let committed = if lost {
            tracing::error!("the database rolled the group's transaction back (disk full?); every request in it fails");
            false
        } else {
            metrics::histogram!(crate::monitoring::COMMIT_GROUP_SIZE).record(group.len() as f64);
            let _commit = crate::monitoring::Timer::start(crate::monitoring::COMMIT_SECONDS);
            match conn.execute_batch("COMMIT") {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(detail = %e, "group commit failed; every request in it fails");
                    let _ = conn.execute_batch("ROLLBACK");
                    false
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_a_panicking_job_does_not_stop_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db")).unwrap();
        let insert = |c: &Connection, key: &str| c.execute("INSERT INTO meta (key, value) VALUES (?1, 'x')", [key]);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let crashed = db
                .call(move |c| -> ApiResult<()> {
                    let sp = c.savepoint()?;
                    insert(&sp, "half-done")?;
                    panic!("a bug in a handler");
                })
                .await;
            assert!(crashed.is_err());
            db.call(move |c| {
                let sp = c.savepoint()?;
                insert(&sp, "after")?;
                sp.commit()?;
                Ok(())
            })
            .await
            .unwrap();
        });
        let keys: Vec<String> = db.with(|c| {
            c.prepare("SELECT key FROM meta ORDER BY key")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        });
        assert_eq!(keys, ["after"], "the panicking job's write must have rolled back");
    }

    #[test]
    fn fail_a_group_whose_transaction_the_database_rolled_back_fails_whole() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        // Hold the writer (it runs the job below, which waits), so that the three jobs
        // below queue up behind it and then run as one group.
        let (hold, release) = std::sync::mpsc::channel::<()>();
        let (running, started) = std::sync::mpsc::channel::<()>();
        let held = db.clone();
        let holder = std::thread::spawn(move || {
            held.with(move |_| {
                running.send(()).unwrap();
                release.recv().unwrap()
            })
        });
        started.recv().unwrap();
        let job = |key: &'static str, rollback: bool| {
            Box::pin(db.call(move |c| -> ApiResult<()> {
                let sp = c.savepoint()?;
                sp.execute("INSERT INTO meta (key, value) VALUES (?1, 'x')", [key])?;
                sp.commit()?;
                if rollback {
                    // What SQLite does to the transaction when a statement finds the
                    // disk full while spilling pages.
                    c.execute_batch("ROLLBACK")?;
                }
                Ok(())
            }))
        };
        let mut jobs = [job("one", false), job("two", true), job("three", false)];
        // Polled once each, in order: that queues them (the answer is still to come).
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for j in &mut jobs {
            assert!(std::future::Future::poll(j.as_mut(), &mut cx).is_pending());
        }
        hold.send(()).unwrap();
        holder.join().unwrap();
        let results: Vec<bool> = jobs.into_iter().map(|j| rt.block_on(j).is_ok()).collect();
        let keys: Vec<String> = db.with(|c| {
            c.prepare("SELECT key FROM meta WHERE value = 'x'")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        });
        // "three" runs after the loss, alone and in a transaction of its own.
        assert_eq!(results, [false, false, true], "{keys:?}");
        assert_eq!(keys, ["three"], "nothing of the lost group may remain, and nothing may commit unreported");
    }
}
