//! `vault-cli upload CASE FILE`: encrypt to the case recipient and stream to the server,
//! then sign what was sent.
//!
//! The case recipient is used only if a custodian of this vault signed it (checked from
//! the pinned trust root), so a lying server cannot make the recorder encrypt to a key of
//! its own. After the upload the recorder signs the recording's case, key version, and
//! the SHA-256 and size of the ciphertext it computed itself; until then the server
//! neither lists nor releases the recording.
//!
//! Encryption runs on its own thread and hands chunks to the HTTP request body (see
//! [`crate::transfer`]), so neither side holds more than a few chunks of the recording.
//! If encryption fails half way, the body ends in an error rather than a clean end, so
//! the server never mistakes a truncated ciphertext for a complete one. The header is
//! made before the upload starts, so the client announces the ciphertext's exact length
//! (`x-vault-upload-length`) and the server stores nothing of any other length.

use std::io;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use vault_core::api::{
    Announcement, CallMeta, CaseRecipient, Done, HEADER_CRC32, HEADER_META, HEADER_UPLOAD_LENGTH, RecordingInfo,
    RecordingSignature,
};
use vault_core::ids::{CaseId, RecordingId};
use vault_core::trust::{RecordingStatement, Signed, statement};

use crate::Global;
use crate::client::Client;
use crate::transfer;

#[derive(Args)]
pub struct Upload {
    case: CaseId,
    file: PathBuf,
    /// How the parties were told the call was recorded; `none` only in covert cases.
    #[arg(long, default_value = "spoken-notice")]
    announced: Announcement,
    /// When the call was recorded (RFC 3339; default: now).
    #[arg(long)]
    recorded_at: Option<String>,
}

impl Upload {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let file = std::fs::File::open(&self.file).with_context(|| format!("cannot open {}", self.file.display()))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            bail!("{} is not a regular file", self.file.display());
        }
        let len = meta.len();
        let recorded_at = recorded_at(self.recorded_at.as_deref())?;
        let mut client = Client::new(g)?;
        let signer = crate::trust::signing_key(&client)?;
        let trust = crate::trust::directory_in_background(&mut client)?;
        let target: CaseRecipient = client.get_json(&format!("/v1/cases/{}/recipient", self.case))?;
        let dir = crate::trust::joined(trust)?;
        dir.check_case_key(&target.statement, &self.case, target.key_version, &target.recipient).with_context(
            || format!("refusing to encrypt to {}: its recipient is not vouched for by a custodian", self.case),
        )?;
        let recipient = vault_core::crypto::parse_recipient(&target.recipient)?;
        let call = CallMeta {
            file_name: self.file.file_name().map(|n| n.to_string_lossy().into_owned()),
            plaintext_size: Some(len),
        };
        let meta_ct = vault_core::crypto::seal_call_meta(&recipient, &call);

        let encryption = vault_core::crypto::Encryption::new(&recipient)?;
        let ciphertext_len = encryption.ciphertext_len(len);
        let upload = client.upload(&format!("/v1/cases/{}/recordings", self.case))?;
        let (writer, body, sent) = transfer::chunk_channel();
        let pb = crate::output::progress(Some(len), "encrypting and uploading");
        let mut input = pb.wrap_read(file);
        let encryptor = std::thread::spawn(move || -> io::Result<u64> {
            let mut writer = writer;
            let read = encryption.encrypt(&mut input, &mut writer)?;
            // A file that changed size since it was measured does not have the announced
            // length: the body then ends in an error, never cleanly.
            if read == len {
                writer.finish()?;
            }
            Ok(read)
        });

        let query = vec![("announced", self.announced.as_str().to_owned()), ("recorded_at", recorded_at.clone())];
        let headers = vec![(HEADER_META, meta_ct), (HEADER_UPLOAD_LENGTH, ciphertext_len.to_string())];
        let answer = upload.send(&query, headers, body);
        let encrypted = encryptor.join().map_err(|_| anyhow!("the encryption thread panicked"))?;
        pb.finish_and_clear();
        if let Ok(read) = encrypted
            && read != len
        {
            bail!(
                "{} changed size while it was uploaded ({len} bytes, then {read}); nothing was stored. \
                 Upload it again once it is no longer being written",
                self.file.display()
            );
        }
        let answer = answer?;
        let crc = answer.headers.get(HEADER_CRC32).and_then(|v| v.to_str().ok());
        let info: RecordingInfo = serde_json::from_slice(&answer.body).context("unexpected answer from the server")?;
        encrypted.context("reading or encrypting the file failed")?;
        let sent = sent.get().context("the server answered before the whole recording was sent")?;
        check_received(&info, crc, sent)?;
        // The hash signed is this client's, of what it sent; the server's CRC-32 of what it
        // received matched above.
        let sha256 = hex::encode(sent.sha256);
        if info.key_version != target.key_version || info.recorded_at != recorded_at {
            bail!(
                "the server recorded {} differently from what was sent (key version {}, recorded at {}); \
                 not signing it. Report this to an admin",
                info.id,
                info.key_version,
                info.recorded_at
            );
        }
        let statement = RecordingStatement {
            vault: dir.vault().to_owned(),
            case: self.case.clone(),
            recording: info.id.clone(),
            version: target.key_version,
            sha256: sha256.clone(),
            size: sent.len,
            recorded_at,
            announced: self.announced,
            by: client.user.clone(),
            at: statement::now(),
        };
        let signature = RecordingSignature { statement: Signed::sign(&statement, &signer) };
        let _: Done<RecordingId> = client.post_json(&format!("/v1/recordings/{}/signature", info.id), &signature)?;
        let info = RecordingInfo { sha256, statement: Some(signature.statement), ..info };
        if g.json {
            crate::output::json(&info)?;
        } else {
            println!("{}", info.id);
        }
        eprintln!(
            "uploaded and signed {} ({} bytes of ciphertext, key version {})",
            info.id, info.size, info.key_version
        );
        Ok(())
    }
}

/// When the call was recorded, as the server stores it (RFC 3339, milliseconds, UTC): the
/// recorder signs this exact text.
fn recorded_at(given: Option<&str>) -> anyhow::Result<String> {
    let t = match given {
        None => chrono::Utc::now(),
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|_| anyhow!("--recorded-at must be RFC 3339, e.g. 2026-05-01T09:30:00Z"))?
            .with_timezone(&chrono::Utc),
    };
    Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Compares what the server says it received (`size` in its answer, the CRC-32 header)
/// with what this client sent; a mismatch means the stored recording may be damaged.
fn check_received(info: &RecordingInfo, crc_header: Option<&str>, sent: transfer::Sent) -> anyhow::Result<()> {
    let received = crc_header.filter(|c| c.len() == 8).and_then(|c| u32::from_str_radix(c, 16).ok());
    if received != Some(sent.crc32) || info.size != sent.len {
        bail!(
            "the server stored {} as {} bytes with CRC-32 {}, but this client sent {} bytes with CRC-32 {:08x}; \
             the recording may be damaged: report this to an admin and keep your copy",
            info.id,
            info.size,
            crc_header.unwrap_or("(none)"),
            sent.len,
            sent.crc32
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(size: u64) -> RecordingInfo {
        serde_json::from_value(serde_json::json!({
            "id": "rec_0123456789abcdef0123456789abcdef",
            "case_id": "case_0123456789abcdef0123456789abcdef",
            "key_version": 1,
            "size": size,
            "sha256": "00",
            "announced": "spoken-notice",
            "recorded_at": "2026-11-28T10:00:00.000Z",
            "uploaded_by": "pbx",
            "uploaded_at": "2026-11-28T10:00:01.000Z",
        }))
        .unwrap()
    }

    #[test]
    fn matching_checksum_and_size_pass() {
        check_received(&info(10), Some("0000abcd"), transfer::Sent { crc32: 0xabcd, sha256: [0; 32], len: 10 })
            .unwrap();
    }

    #[test]
    fn fail_a_different_checksum_size_or_missing_header_is_reported() {
        let sent = transfer::Sent { crc32: 0xabcd, sha256: [0; 32], len: 10 };
        for (size, header) in
            [(10, Some("0000abce")), (11, Some("0000abcd")), (10, None), (10, Some("abcd")), (10, Some("zzzzzzzz"))]
        {
            let err = check_received(&info(size), header, sent).unwrap_err().to_string();
            assert!(err.contains("may be damaged"), "{size} {header:?}: {err}");
        }
    }
}
