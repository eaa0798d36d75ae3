//! Fills an initialised data dir with synthetic metadata for scale benchmarks, directly
//! through the server's store (uploading a million recordings one by one would measure
//! something else):
//!
//! `cargo run --release -p vault-server --example synthetic_data -- DATA_DIR CASE RECORDINGS LOG_ENTRIES`
//!
//! Adds RECORDINGS rows to case CASE (metadata only; no blobs, so do not fetch them) and
//! LOG_ENTRIES access-log entries through the server's own log writer, so the chain
//! stays valid. Run it while the server is stopped.

use vault_core::api::{Announcement, RecordingInfo, Role};
use vault_core::ids::{CaseId, RecordingId};
use vault_core::log::{Action, Outcome};
use vault_server::{Db, LogRecord, Store, append_to_log};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, case, recordings, entries] = &args[..] else {
        anyhow::bail!("usage: synthetic_data DATA_DIR CASE RECORDINGS LOG_ENTRIES");
    };
    let (recordings, entries): (u64, u64) = (recordings.parse()?, entries.parse()?);
    let case: CaseId = case.parse()?;
    let db = Db::open(&std::path::Path::new(dir).join("vault.db"))?;
    db.with(move |c| -> anyhow::Result<()> {
        let tx = c.transaction()?;
        let s = Store::new(&tx);
        let uploader = s
            .users()?
            .into_iter()
            .find(|u| u.role == Role::Recorder)
            .ok_or_else(|| anyhow::anyhow!("enrol a recorder first: the recordings name one as their uploader"))?
            .name;
        let start = chrono::Utc::now() - chrono::Duration::days(60);
        let synthetic = vault_core::trust::Signed { statement: "synthetic\n".into(), signatures: Vec::new() };
        for i in 0..recordings {
            let at =
                (start + chrono::Duration::seconds(i as i64 * 5)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let info = RecordingInfo {
                id: format!("rec_{:032x}", (1u128 << 100) + i as u128).parse::<RecordingId>()?,
                case_id: case.clone(),
                key_version: 1,
                size: 1_000_000 + i % 5000,
                sha256: hex::encode(vault_core::sha256(&i.to_be_bytes())),
                announced: Announcement::SignalTone,
                recorded_at: at.clone(),
                uploaded_by: uploader.clone(),
                uploaded_at: at,
                meta: None,
                statement: None,
            };
            s.insert_recording(&info, None)?;
            // Listed only once signed. Nobody holds the recorder's key here, so the rows
            // carry a placeholder that no client would accept on fetch (there are no
            // blobs to fetch anyway); listing does not look inside.
            s.sign_recording(&info.id, &info.sha256, &synthetic)?;
        }
        tx.commit()?;
        // The entries in transactions of 100,000, so the WAL stays small on a big run.
        let mut done = 0;
        while done < entries {
            let tx = c.transaction()?;
            let s = Store::new(&tx);
            for i in done..(done + 100_000).min(entries) {
                let rec = LogRecord::new(format!("investigator{:02}", i % 40), Action::Fetch)
                    .case(&case)
                    .recording(format!("rec_{:032x}", (1u128 << 100) + i as u128))
                    .reason("complaint 2026-117 follow-up");
                append_to_log(&s, &rec, Outcome::Allowed)?;
            }
            tx.commit()?;
            done = (done + 100_000).min(entries);
        }
        Ok(())
    })?;
    eprintln!("added {recordings} recordings and {entries} log entries");
    Ok(())
}
