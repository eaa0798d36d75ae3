//! Encrypting a recording to its case, streaming it to the server and signing it: what
//! `upload` and `ingest` share.
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
//!
//! An upload may carry an id of the recorder's choosing (see
//! [`vault_core::upload_id`]): sent again, it stores nothing and the server answers the
//! recording it has, which counts only if it carries this recorder's own signature for
//! that very id and case.

use std::collections::HashMap;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vault_core::api::{
    Announcement, CallMeta, CaseRecipient, Done, HEADER_CRC32, HEADER_META, HEADER_REPEATED, HEADER_STATEMENT,
    HEADER_UPLOAD_LENGTH, RecordingInfo, RecordingSignature,
};
use vault_core::ids::{CaseId, RecordingId};
use vault_core::trust::{RecordingStatement, Signed, SigningKey, statement};
use vault_core::upload_id::UploadIds;

use crate::client::{Answered, Client};
use crate::transfer;

/// How long a checked case recipient is used before it is read and checked again (a
/// rotated case key is picked up within this time, or at once when the server says so).
const TARGET_FRESH: Duration = Duration::from_secs(300);

/// Where the plaintext comes from.
pub enum Source<'a> {
    /// A regular file, encrypted as it is read.
    File(&'a Path),
    /// Standard input, of unknown length: encrypted into an unnamed temporary file first
    /// (ciphertext only), so that the upload can announce its length.
    Stdin,
}

/// One recording to upload.
pub struct Recording<'a> {
    pub case: &'a CaseId,
    pub source: Source<'a>,
    pub announced: Announcement,
    /// RFC 3339 with milliseconds, UTC: the recorder signs this exact text.
    pub recorded_at: String,
    pub call: CallMeta,
    /// The id to upload under, to make the upload idempotent; `None`: the server picks.
    pub id: Option<RecordingId>,
}

/// What an upload did.
pub enum Stored {
    /// Stored and signed now.
    New(RecordingInfo),
    /// The server had it already (an upload of the same id), signed by this recorder.
    Repeated(RecordingInfo),
}

impl Stored {
    pub fn info(&self) -> &RecordingInfo {
        match self {
            Stored::New(i) | Stored::Repeated(i) => i,
        }
    }
}

/// The server's word that the case key changed since this client checked it: worth
/// trying again once the new recipient is read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyChanged(String);

/// A case recipient a custodian vouched for.
#[derive(Clone)]
struct Target {
    recipient: age::x25519::Recipient,
    version: u32,
    checked: Instant,
}

/// Uploads recordings as one recorder; [`Uploader::copy`] makes one per thread.
pub struct Uploader {
    pub client: Client,
    signer: Arc<SigningKey>,
    ids: Arc<UploadIds>,
    /// The vault's name, from its trust root (known after the first case is checked).
    vault: Arc<OnceLock<String>>,
    targets: Arc<Mutex<HashMap<CaseId, Target>>>,
}

impl Uploader {
    pub fn new(client: Client) -> anyhow::Result<Self> {
        let identity = client.identity()?;
        Ok(Self {
            signer: Arc::new(SigningKey::from_identity(&identity)),
            ids: Arc::new(UploadIds::from_identity(&identity)),
            client,
            vault: Arc::default(),
            targets: Arc::default(),
        })
    }

    /// Another uploader for another thread, sharing keys, checked recipients and the
    /// connection pool.
    pub fn copy(&mut self) -> anyhow::Result<Self> {
        Ok(Self {
            client: self.client.copy()?,
            signer: self.signer.clone(),
            ids: self.ids.clone(),
            vault: self.vault.clone(),
            targets: self.targets.clone(),
        })
    }

    /// The id of the upload named `upload_key` to `case` (see [`vault_core::upload_id`]).
    pub fn upload_id(&mut self, case: &CaseId, upload_key: &str) -> anyhow::Result<RecordingId> {
        self.target(case)?;
        let vault = self.vault.get().expect("set by target");
        Ok(self.ids.id(vault, case, upload_key))
    }

    /// Checks that this recorder can encrypt to `case` (its recipient, vouched for by a
    /// custodian), before any upload.
    pub fn check_case(&mut self, case: &CaseId) -> anyhow::Result<()> {
        self.target(case).map(|_| ())
    }

    /// The case's recipient, checked against the trust root (at most [`TARGET_FRESH`]
    /// ago).
    fn target(&mut self, case: &CaseId) -> anyhow::Result<Target> {
        let cached = self.targets.lock().unwrap_or_else(|e| e.into_inner()).get(case).cloned();
        if let Some(t) = cached
            && t.checked.elapsed() < TARGET_FRESH
        {
            return Ok(t);
        }
        let trust = crate::trust::directory_in_background(&mut self.client)?;
        let target: CaseRecipient = self.client.get_json(&format!("/v1/cases/{case}/recipient"))?;
        let dir = crate::trust::joined(trust)?;
        dir.check_case_key(&target.statement, case, target.key_version, &target.recipient).with_context(|| {
            format!("refusing to encrypt to {case}: its recipient is not vouched for by a custodian")
        })?;
        let _ = self.vault.set(dir.vault().to_owned());
        let t = Target {
            recipient: vault_core::crypto::parse_recipient(&target.recipient)?,
            version: target.key_version,
            checked: Instant::now(),
        };
        self.targets.lock().unwrap_or_else(|e| e.into_inner()).insert(case.clone(), t.clone());
        Ok(t)
    }

    fn forget_target(&self, case: &CaseId) {
        self.targets.lock().unwrap_or_else(|e| e.into_inner()).remove(case);
    }

    /// Encrypts, uploads and signs `rec`. `progress` shows a bar on a terminal.
    pub fn upload(&mut self, rec: Recording<'_>, progress: bool) -> anyhow::Result<Stored> {
        let target = self.target(rec.case)?;
        let encryption = vault_core::crypto::Encryption::new(&target.recipient)?;
        let (producer, ciphertext_len, plaintext_len) = match rec.source {
            Source::File(path) => {
                let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                let meta = file.metadata()?;
                if !meta.is_file() {
                    bail!("{} is not a regular file", path.display());
                }
                let len = meta.len();
                if len <= WHOLE_MAX {
                    return self.upload_whole(rec, &target, encryption, file, len);
                }
                let ciphertext_len = encryption.ciphertext_len(len);
                (Producer::Encrypt { file, len, encryption: Box::new(encryption) }, ciphertext_len, Some(len))
            }
            Source::Stdin => {
                let (cipher, plain_len) = encrypt_stdin(encryption)?;
                let len = cipher.metadata()?.len();
                (Producer::Copy { file: cipher }, len, Some(plain_len))
            }
        };
        let mut call = rec.call.clone();
        call.plaintext_size = call.plaintext_size.or(plaintext_len);
        let meta_ct = vault_core::crypto::seal_call_meta(&target.recipient, &call);
        let upload = self.client.upload(&format!("/v1/cases/{}/recordings", rec.case))?;
        let (writer, body, sent) = transfer::chunk_channel();
        let pb = if progress {
            crate::output::progress(plaintext_len, "encrypting and uploading")
        } else {
            indicatif::ProgressBar::hidden()
        };
        let running = producer.start(writer, pb.clone());
        let headers = vec![(HEADER_META, meta_ct), (HEADER_UPLOAD_LENGTH, ciphertext_len.to_string())];
        let answer = upload.send(&query(&rec, rec.id.as_ref()), headers, body);
        let produced = running.join().map_err(|_| anyhow!("the encryption thread panicked"))?;
        pb.finish_and_clear();
        if let Ok(Some((expected, read))) = produced.as_ref().map(|p| p.mismatch()) {
            bail!(
                "the file changed size while it was uploaded ({expected} bytes, then {read}); nothing was stored. \
                 Upload it again once it is no longer being written"
            );
        }
        let answer = answer?;
        let info: RecordingInfo = serde_json::from_slice(&answer.body).context("unexpected answer from the server")?;
        if repeated(&answer) {
            self.check_repeated(&info, rec.id.as_ref(), rec.case)?;
            return Ok(Stored::Repeated(info));
        }
        let crc = answer.headers.get(HEADER_CRC32).and_then(|v| v.to_str().ok());
        produced.context("reading or encrypting the recording failed")?;
        let sent = sent.get().context("the server answered before the whole recording was sent")?;
        check_received(&info, crc, sent)?;
        if rec.id.as_ref().is_some_and(|id| *id != info.id) {
            bail!("the server stored the upload as {} instead of the id it was sent with; not signing it", info.id);
        }
        if info.key_version != target.version {
            self.forget_target(rec.case);
            return Err(KeyChanged(format!(
                "the case key of {} changed (version {} on the server, {} here); nothing was signed: \
                 upload again to encrypt to the new key",
                rec.case, info.key_version, target.version
            ))
            .into());
        }
        if info.recorded_at != rec.recorded_at {
            bail!(
                "the server recorded {} differently from what was sent (recorded at {}); not signing it. \
                 Report this to an admin",
                info.id,
                info.recorded_at
            );
        }
        // The hash signed is this client's, of what it sent; the server's CRC-32 of what it
        // received matched above.
        let signature = RecordingSignature { statement: self.sign(&rec, &info.id, target.version, &sent) };
        let _: Done<RecordingId> =
            self.client.post_json(&format!("/v1/recordings/{}/signature", info.id), &signature)?;
        Ok(Stored::New(RecordingInfo {
            sha256: hex::encode(sent.sha256),
            statement: Some(signature.statement),
            ..info
        }))
    }

    /// Uploads a small recording in one request: encrypted in memory, signed, then sent
    /// with its statement and CRC-32, which the server checks before it stores anything;
    /// it stores and signs it at once (one request and one commit instead of two each).
    fn upload_whole(
        &mut self,
        rec: Recording<'_>,
        target: &Target,
        encryption: vault_core::crypto::Encryption,
        file: std::fs::File,
        len: u64,
    ) -> anyhow::Result<Stored> {
        let id = rec.id.clone().unwrap_or_else(RecordingId::random);
        let mut call = rec.call.clone();
        call.plaintext_size = call.plaintext_size.or(Some(len));
        let meta_ct = vault_core::crypto::seal_call_meta(&target.recipient, &call);
        let mut ciphertext = Vec::with_capacity(encryption.ciphertext_len(len) as usize);
        // One byte more than measured, to notice a file that grew.
        let read = encryption
            .encrypt(&mut file.take(len + 1), &mut ciphertext)
            .context("reading or encrypting the recording failed")?;
        if read != len {
            bail!(
                "the file changed size while it was read ({len} bytes, then {read}); nothing was stored. \
                 Upload it again once it is no longer being written"
            );
        }
        let sent = transfer::Sent {
            crc32: crc32fast::hash(&ciphertext),
            sha256: vault_core::sha256(&ciphertext),
            len: ciphertext.len() as u64,
        };
        let signed = self.sign(&rec, &id, target.version, &sent);
        let headers = vec![
            (HEADER_META, meta_ct),
            (HEADER_UPLOAD_LENGTH, sent.len.to_string()),
            (HEADER_STATEMENT, B64.encode(signed.to_json())),
            (HEADER_CRC32, format!("{:08x}", sent.crc32)),
        ];
        let upload = self.client.upload(&format!("/v1/cases/{}/recordings", rec.case))?;
        let answer = match upload.send_bytes(&query(&rec, Some(&id)), headers, ciphertext) {
            Err(e) if e.downcast_ref::<Answered>().is_some_and(|a| a.code == "key_changed") => {
                self.forget_target(rec.case);
                return Err(KeyChanged(e.to_string()).into());
            }
            other => other?,
        };
        let info: RecordingInfo = serde_json::from_slice(&answer.body).context("unexpected answer from the server")?;
        if repeated(&answer) {
            self.check_repeated(&info, Some(&id), rec.case)?;
            return Ok(Stored::Repeated(info));
        }
        let crc = answer.headers.get(HEADER_CRC32).and_then(|v| v.to_str().ok());
        check_received(&info, crc, sent)?;
        if info.id != id || info.statement.as_ref() != Some(&signed) {
            bail!(
                "the server answered {} with another statement than the one sent for {id}; report this to an admin",
                info.id
            );
        }
        Ok(Stored::New(info))
    }

    /// This recorder's signed statement that `id` of `rec`'s case, under key `version`,
    /// is the ciphertext it `sent`.
    fn sign(&self, rec: &Recording<'_>, id: &RecordingId, version: u32, sent: &transfer::Sent) -> Signed {
        let statement = RecordingStatement {
            vault: self.vault.get().expect("set by target").clone(),
            case: rec.case.clone(),
            recording: id.clone(),
            version,
            sha256: hex::encode(sent.sha256),
            size: sent.len,
            recorded_at: rec.recorded_at.clone(),
            announced: rec.announced,
            by: self.client.user.clone(),
            at: statement::now(),
        };
        Signed::sign(&statement, &self.signer)
    }

    /// Checks the server's answer to a repeated upload: the recording it names must be
    /// the id this upload asked for, of this case, signed by this recorder's own key.
    /// Anything else (a server that makes up "already stored" to have the plaintext
    /// deleted) is refused.
    fn check_repeated(&self, info: &RecordingInfo, asked: Option<&RecordingId>, case: &CaseId) -> anyhow::Result<()> {
        let refuse = |why: &str| {
            anyhow!(
                "the server answered that it already holds this recording as {}, but {why}; not trusting that \
                 answer (keep your copy and report this to an admin)",
                info.id
            )
        };
        let Some(asked) = asked else { return Err(refuse("this upload asked for no id")) };
        let signed = info.statement.as_ref().expect("checked by the caller");
        let r: RecordingStatement = signed.parse().map_err(|_| refuse("its statement is malformed"))?;
        let me = self.signer.public_id();
        let vault = self.vault.get().map(String::as_str);
        if info.id != *asked || r.recording != *asked || r.case != *case || Some(r.vault.as_str()) != vault {
            return Err(refuse("its signed statement is for another recording"));
        }
        if r.by != self.client.user
            || signed.signatures.first().is_none_or(|s| s.by != self.client.user)
            || !signed.signature_verifies(0, &me)
        {
            return Err(refuse("its statement does not carry this recorder's signature"));
        }
        Ok(())
    }
}

/// The query of an upload of `rec`, under `id` if it has one.
fn query(rec: &Recording<'_>, id: Option<&RecordingId>) -> Vec<(&'static str, String)> {
    let mut q = vec![("announced", rec.announced.as_str().to_owned()), ("recorded_at", rec.recorded_at.clone())];
    if let Some(id) = id {
        q.push(("recording_id", id.to_string()));
    }
    q
}

/// Whether the server answered that it held the upload already.
fn repeated(answer: &crate::client::Answer) -> bool {
    answer.headers.get(HEADER_REPEATED).is_some_and(|v| v == "true")
}

/// Recordings up to this many bytes are encrypted in memory and sent signed, in one
/// request (see [`Uploader::upload_whole`]); larger ones stream, and are signed once the
/// server has them. Memory stays bounded either way.
const WHOLE_MAX: u64 = 1 << 20;

/// What feeds the request body.
enum Producer {
    /// Encrypts a plaintext file of `len` bytes as it is read.
    Encrypt { file: std::fs::File, len: u64, encryption: Box<vault_core::crypto::Encryption> },
    /// Sends a ciphertext made beforehand.
    Copy { file: std::fs::File },
}

/// What a producer read: for a file encrypted as it is read, the length it had and the
/// bytes read, which differ if it changed meanwhile.
struct Produced {
    expected: u64,
    read: u64,
}

impl Produced {
    fn mismatch(&self) -> Option<(u64, u64)> {
        (self.expected != self.read).then_some((self.expected, self.read))
    }
}

impl Producer {
    fn start(
        self,
        writer: transfer::ChunkWriter,
        pb: indicatif::ProgressBar,
    ) -> std::thread::JoinHandle<io::Result<Produced>> {
        std::thread::spawn(move || {
            let mut writer = writer;
            match self {
                Producer::Encrypt { file, len, encryption } => {
                    let mut input = pb.wrap_read(file);
                    let read = encryption.encrypt(&mut input, &mut writer)?;
                    // A file that changed size since it was measured does not have the
                    // announced length: the body then ends in an error, never cleanly.
                    if read == len {
                        writer.finish()?;
                    }
                    Ok(Produced { expected: len, read })
                }
                Producer::Copy { file } => {
                    let mut input = pb.wrap_read(file);
                    let n = io::copy(&mut input, &mut writer)?;
                    writer.finish()?;
                    Ok(Produced { expected: n, read: n })
                }
            }
        })
    }
}

/// Encrypts standard input into an unnamed temporary file (removed when closed), and
/// returns it rewound, with the plaintext's length.
fn encrypt_stdin(encryption: vault_core::crypto::Encryption) -> anyhow::Result<(std::fs::File, u64)> {
    let mut cipher = tempfile::tempfile().context("cannot make a temporary file for the ciphertext")?;
    let mut input = io::stdin().lock();
    let mut counted = Counted { inner: &mut input, n: 0 };
    let out = io::BufWriter::with_capacity(transfer::CHUNK, &mut cipher);
    encryption.encrypt(&mut counted, out).context("reading or encrypting standard input failed")?;
    let n = counted.n;
    cipher.rewind()?;
    Ok((cipher, n))
}

/// A reader that counts what it reads.
struct Counted<'a, R: Read> {
    inner: &'a mut R,
    n: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// When the call was recorded, as the server stores it (RFC 3339, milliseconds, UTC): the
/// recorder signs this exact text.
pub fn recorded_at(given: Option<&str>) -> anyhow::Result<String> {
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
