//! `vault-cli fetch RECORDING --reason --out FILE`: fetch, unwrap, decrypt locally.
//!
//! The plaintext is written to a temporary file (0600) beside `--out` and renamed into
//! place only when decryption finished and authenticated every chunk, and the
//! ciphertext's SHA-256 is the one its recorder signed; on any error the temporary file
//! is removed, so `--out` never holds a partial or forged recording.
//!
//! Before a byte is decrypted, the case key is checked against a custodian's signed
//! statement of its recipient, and the recording against its recorder's signature, both
//! from the pinned trust root: a server that made up a key pair and a recording of its
//! own is refused.

use std::io;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use vault_core::api::{
    CallMeta, HEADER_CASE_RECIPIENT, HEADER_ENVELOPE, HEADER_KEY_STATEMENT, HEADER_META, HEADER_STATEMENT, Reason,
};
use vault_core::crypto::CaseKey;
use vault_core::durable::{FLUSH_EVERY, SyncingFile};
use vault_core::ids::RecordingId;
use vault_core::trust::{CaseKeyStatement, RecordingStatement, Signed};

use crate::Global;
use crate::client::Client;
use crate::transfer;

#[derive(Args)]
pub struct Fetch {
    recording: RecordingId,
    /// Why you open this recording (kept in the access log).
    #[arg(long)]
    reason: String,
    /// Where to write the decrypted recording (must not exist yet).
    #[arg(long)]
    out: PathBuf,
}

impl Fetch {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let dir = crate::output::new_output(&self.out)?;
        let mut client = Client::new(g)?;
        let Opened { download, case_key, signed, .. } = open(&mut client, &self.recording, &self.reason)?;
        let expected_sha = signed.sha256.clone();
        let header = |name: &str| {
            download.header(name).map(str::to_owned).ok_or_else(|| anyhow!("the server's answer lacks {name}"))
        };
        // The call metadata travels encrypted to the case, like the recording.
        let call: Option<CallMeta> = match header(HEADER_META) {
            Err(_) => None,
            Ok(b64) => Some(
                vault_core::crypto::open_call_meta(case_key.identity(), &b64)
                    .context("cannot decrypt the call metadata")?,
            ),
        };

        let tmp = tempfile::Builder::new()
            .prefix(".vault-fetch-")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        let pb = crate::output::progress(download.content_length(), "fetching and decrypting");
        let (chunks, reader) = transfer::reader_channel();
        let out_file = tmp.as_file().try_clone()?;
        let reader = pb.wrap_read(reader);
        // Three stages overlap: this thread downloads and hashes the ciphertext, one thread
        // decrypts, and one writes the plaintext into the temporary file.
        // The file is flushed to disk as it grows, so the final sync has little left to do.
        let out_file = SyncingFile::new(out_file, FLUSH_EVERY);
        let decryptor = std::thread::spawn(move || -> anyhow::Result<(u64, SyncingFile)> {
            let mut reader = reader;
            let mut out = transfer::write_behind(out_file);
            let n = vault_core::crypto::decrypt_stream(case_key.identity(), &mut reader, &mut out)?;
            let out_file = out.finish()?;
            // Take in any trailing bytes, so the download ends and its hash covers them.
            io::copy(&mut reader, &mut io::sink())?;
            Ok((n, out_file))
        });
        let downloaded = download.forward_hashed(&chunks);
        let decrypted = decryptor.join().map_err(|_| anyhow!("the decryption thread panicked"))?;
        pb.finish_and_clear();
        let (n, mut out_file) = decrypted.with_context(|| {
            format!("cannot decrypt recording {}; nothing was written to {}", self.recording, self.out.display())
        })?;
        let sha = downloaded
            .map_err(|e| anyhow!("the download broke off: {e}; nothing was written"))?
            .ok_or_else(|| anyhow!("decryption stopped before the download ended; nothing was written"))?;
        if sha != expected_sha {
            bail!(
                "the ciphertext's SHA-256 {sha} differs from the {expected_sha} that {} signed; nothing was written",
                signed.by
            );
        }
        out_file.sync_all().with_context(|| format!("cannot write {}", self.out.display()))?;
        tmp.persist_noclobber(&self.out).map_err(|e| anyhow!("cannot write {}: {}", self.out.display(), e.error))?;
        if g.json {
            crate::output::json(&serde_json::json!({
                "recording": self.recording,
                "out": self.out,
                "bytes": n,
                "call": call,
                "recorded_by": signed.by,
                "recorded_at": signed.recorded_at,
                "case": signed.case,
            }))?;
        } else {
            println!("{}", self.out.display());
        }
        eprintln!(
            "decrypted {} ({n} bytes) to {}; recorded by {} at {}, signature verified",
            self.recording,
            self.out.display(),
            signed.by,
            crate::output::printable(&signed.recorded_at)
        );
        if let Some(name) = call.and_then(|c| c.file_name) {
            // The recorder's file name: text from another machine.
            eprintln!("uploaded as {}", crate::output::printable(&name));
        }
        Ok(())
    }
}

/// A fetch the server answered, checked before a byte of it is read: the case key
/// vouched for by a custodian, opened with the caller's identity; the recording signed by
/// a recorder (its SHA-256 still to be compared with what arrives).
pub(crate) struct Opened {
    pub download: crate::client::Download,
    pub case_key: CaseKey,
    pub signed: RecordingStatement,
    pub key_statement: Signed,
    pub recording_statement: Signed,
    pub trust: vault_core::api::TrustInfo,
}

/// Asks the server for `recording` (a logged fetch, with `reason`) and checks what it
/// says about it against the pinned trust root.
pub(crate) fn open(client: &mut Client, recording: &RecordingId, reason: &str) -> anyhow::Result<Opened> {
    let identity = client.identity()?;
    let body = Reason { reason: reason.to_owned() };
    let trust = client.in_background(crate::trust::directory_and_enrolments)?;
    let download = client.fetch_stream(&format!("/v1/recordings/{recording}/fetch"), &body);
    let trusted = trust.join().map_err(|_| anyhow!("the thread checking the trust root panicked"))?;
    // A refused fetch is the answer, whatever the trust material said.
    let (download, (trusted, info)) = (download?, trusted?);
    let header = |name: &str| {
        download.header(name).map(str::to_owned).ok_or_else(|| anyhow!("the server's answer lacks {name}"))
    };
    let envelope = B64.decode(header(HEADER_ENVELOPE)?.as_bytes()).context("malformed envelope from the server")?;
    let recipient = header(HEADER_CASE_RECIPIENT)?;
    let statement = |name: &str| -> anyhow::Result<Signed> {
        let json = B64.decode(header(name)?.as_bytes()).with_context(|| format!("malformed {name}"))?;
        Ok(Signed::from_json(&String::from_utf8_lossy(&json))?)
    };
    let refuse = |what: &str| format!("refusing {recording}: {what}; nothing was decrypted or written");
    let key_statement = statement(HEADER_KEY_STATEMENT)
        .with_context(|| refuse("its case key comes without a custodian's signature"))?;
    let k: CaseKeyStatement = key_statement.parse()?;
    trusted
        .check_case_key(&key_statement, &k.case, k.version, &recipient)
        .with_context(|| refuse("its case key is not vouched for by a custodian"))?;
    let recording_statement = statement(HEADER_STATEMENT).with_context(|| refuse("no recorder signed it"))?;
    let r: RecordingStatement = recording_statement.parse().with_context(|| refuse("its signature is malformed"))?;
    let signed = trusted
        .check_recording(&recording_statement, recording, &k.case, k.version, &r.sha256, r.size)
        .with_context(|| refuse("its recorder's signature does not hold"))?;
    let case_key = CaseKey::unwrap(&envelope, &identity, &recipient)?;
    Ok(Opened { download, case_key, signed, key_statement, recording_statement, trust: info })
}
