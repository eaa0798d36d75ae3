//! Fills an initialised data dir with synthetic metadata for scale benchmarks, directly
//! in SQLite (uploading a million recordings one by one would measure something else):
//!
//! `cargo run --release -p vault-server --example synthetic_data -- DATA_DIR CASE RECORDINGS LOG_ENTRIES`
//!
//! Adds RECORDINGS rows to case CASE (metadata only; no blobs, so do not fetch them) and
//! LOG_ENTRIES access-log entries through the server's own log writer, so the chain
//! stays valid. Run it while the server is stopped.

use rusqlite::params;
use vault_server::db::{Db, LogRecord, append_log};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, case, recordings, entries] = &args[..] else {
        anyhow::bail!("usage: synthetic_data DATA_DIR CASE RECORDINGS LOG_ENTRIES");
    };
    let (recordings, entries): (u64, u64) = (recordings.parse()?, entries.parse()?);
    let db = Db::open(&std::path::Path::new(dir).join("vault.db"))?;
    let case = case.clone();
    db.with(move |c| -> anyhow::Result<()> {
        let tx = c.transaction()?;
        let uploader: String = tx
            .query_row("SELECT name FROM users WHERE role = 'recorder' ORDER BY name LIMIT 1", [], |r| r.get(0))
            .map_err(|_| anyhow::anyhow!("enrol a recorder first: the recordings name one as their uploader"))?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO recordings (id, case_id, key_version, size, sha256, announced, recorded_at, uploaded_by, uploaded_at, meta)
                 VALUES (?1, ?2, 1, ?3, ?4, 'signal-tone', ?5, ?6, ?5, NULL)",
            )?;
            let start = chrono::Utc::now() - chrono::Duration::days(60);
            for i in 0..recordings {
                let at = (start + chrono::Duration::seconds(i as i64 * 5))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                insert.execute(params![
                    format!("rec_{:032x}", (1u128 << 100) + i as u128),
                    &case,
                    1_000_000 + (i % 5000) as i64,
                    hex::encode(vault_core::sha256(&i.to_be_bytes())),
                    at,
                    uploader
                ])?;
            }
        }
        for i in 0..entries {
            let rec = LogRecord::new(format!("investigator{:02}", i % 40), "fetch", "allowed")
                .case(&case)
                .recording(format!("rec_{:032x}", (1u128 << 100) + i as u128))
                .reason("complaint 2026-117 follow-up");
            append_log(&tx, &rec)?;
        }
        tx.commit()?;
        Ok(())
    })?;
    eprintln!("added {recordings} recordings and {entries} log entries");
    Ok(())
}
