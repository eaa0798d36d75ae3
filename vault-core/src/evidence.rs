//! Evidence bundles: one recording with everything a court needs to check its custody
//! offline, with only the log's verifier key and the organisation's trust root.
//!
//! A bundle is a POSIX tar file (any `tar` lists and unpacks it) holding, in this order:
//!
//! ```text
//! evidence.json       the manifest: what is in the bundle, the trust material, the log
//! custody.txt         the custody report, for people (what `evidence verify` prints)
//! recording.age       the recording's ciphertext, as its recorder uploaded and signed it
//! recording.key.age   with --to: the case's secret key, age-encrypted to that recipient
//! recording.plain     without --to: the decrypted recording
//! ```
//!
//! The manifest carries the trust root's text and every enrolment and disabling (so the
//! recorder's certificate chain can be followed from the root), the recorder's signed
//! statement of the ciphertext, the custodian's signed statement of the case key, and the
//! log entries of the recording's life (its upload and signature, every fetch, every
//! case-level event: grants, approvals, closing) with an inclusion proof each, under one
//! signed (and, with witnesses, cosigned) checkpoint. The last of those entries is the
//! export itself, logged by the server before it answered: its details commit to how many
//! custody entries the server selected and to the SHA-256 of their leaf hashes, so that a
//! bundle missing one of them does not verify. `schema/EVIDENCE.md` states the format.

use serde::{Deserialize, Serialize};

use crate::log::Entry;
use crate::merkle::{self, Hash};
use crate::proof::SliceEntry;

/// The format name in a manifest.
pub const FORMAT: &str = "recording-vault evidence v1";
/// File names in a bundle, in their order.
pub const MANIFEST: &str = "evidence.json";
pub const REPORT: &str = "custody.txt";
pub const CIPHERTEXT: &str = "recording.age";
pub const WRAPPED_KEY: &str = "recording.key.age";
pub const PLAINTEXT: &str = "recording.plain";
/// Largest manifest read (it holds statements and proofs, not recordings).
pub const MAX_MANIFEST: u64 = 64 << 20;

/// The case-level actions whose entries are part of every recording's custody.
pub const CASE_ACTIONS: &[&str] = &[
    "case-create",
    "case-approve",
    "case-close",
    "release-hold",
    "case-reopen",
    "case-reopen-approve",
    "rotate-key",
    "add-custodian",
    "grant",
    "grant-approve",
    "grant-deliver",
    "revoke",
];

/// What the server answers an evidence export with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Custody {
    /// The checkpoint the proofs lead to (the witnessed one, when the server has
    /// witnesses), a signed note.
    pub checkpoint: String,
    /// The custody entries, then the export's own entry, each with its inclusion proof.
    pub entries: Vec<SliceEntry>,
}

/// What the exporter asks the server to log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub reason: String,
    /// Hex SHA-256 of the decrypted recording in the bundle, if it holds one.
    pub plaintext_sha256: Option<String>,
    /// The age recipient the case key is wrapped to, if the bundle holds a wrapped key.
    pub to: Option<String>,
}

/// The `details` of an `evidence-export` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportDetails {
    /// How many custody entries the server selected, all below `custody_through`.
    pub custody_entries: u64,
    /// The log's size when they were selected.
    pub custody_through: u64,
    /// Hex SHA-256 of their leaf hashes, concatenated in order.
    pub custody_digest: String,
    pub plaintext_sha256: Option<String>,
    pub to: Option<String>,
    #[serde(default)]
    pub legal_hold: bool,
}

/// `SHA-256(leaf(e1) || leaf(e2) || ...)` of custody entries given as encodings.
pub fn custody_digest<'a>(encodings: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for e in encodings {
        ctx.update(&merkle::leaf_hash(e));
    }
    hex::encode(ctx.finish().as_ref())
}

/// Whether `e` belongs to the custody of `recording` of `case`.
pub fn is_custody(e: &Entry, case: &str, recording: &str) -> bool {
    e.recording_id == recording
        || (e.case_id == case && e.recording_id.is_empty() && CASE_ACTIONS.contains(&e.action.as_str()))
}

/// The manifest, `evidence.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub recording: String,
    pub case: String,
    /// Who exported it, and why (also in the export's log entry).
    pub exported_by: String,
    pub reason: String,
    /// Hex SHA-256 and size of `recording.age`.
    pub ciphertext_sha256: String,
    pub ciphertext_size: u64,
    /// Hex SHA-256 and size of `recording.plain`, if the bundle holds it.
    pub plaintext_sha256: Option<String>,
    pub plaintext_size: Option<u64>,
    /// The recipient `recording.key.age` is encrypted to, if the bundle holds it.
    pub to: Option<String>,
    /// The trust root's text, and every enrolment and disabling statement (JSON as
    /// `schema/TRUST.md` §4 gives it).
    pub trust_root: String,
    pub enrolments: Vec<crate::trust::Signed>,
    pub disables: Vec<crate::trust::Signed>,
    /// The recorder's statement of the ciphertext, and the custodian's of the case key.
    pub recording_statement: crate::trust::Signed,
    pub key_statement: crate::trust::Signed,
    /// The custody entries and the export's entry, with proofs, under a checkpoint.
    pub log: Custody,
    /// The log key's transitions up to the export, oldest first (`rotation`): how a
    /// verifier given an earlier log key reaches the key that signed `log`'s checkpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_transitions: Vec<crate::rotation::KeyTransition>,
}

/// The leaf hash of an entry given by its encoding.
pub fn leaf(encoding: &[u8]) -> Hash {
    merkle::leaf_hash(encoding)
}

/// Why a bundle does not verify.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("not an evidence bundle: {0}")]
    Format(String),
    #[error("the trust root: {0}")]
    Root(String),
    #[error("the recording's signatures: {0}")]
    Signature(String),
    #[error(transparent)]
    Log(#[from] crate::proof::SliceError),
    #[error("the custody log: {0}")]
    Custody(String),
    #[error("{0}")]
    Content(String),
}

/// The log key reached from `given` through `transitions` (from the first that is from
/// `given` on, each from the key the one before introduced and signed by both keys), and
/// the size of the last transition's checkpoint (0 if none applied). Offline there are no
/// consistency proofs: a transition is trusted as far as the key that signed it is.
fn follow_key(
    given: &crate::note::VerifierKey,
    transitions: &[crate::rotation::KeyTransition],
) -> Result<(crate::note::VerifierKey, u64), EvidenceError> {
    let (mut key, mut size) = (given.clone(), 0);
    let Some(first) = transitions.iter().position(|t| t.is_from(given)) else { return Ok((key, size)) };
    for t in &transitions[first..] {
        let (cp, next) = t.open(&key).map_err(|e| EvidenceError::Custody(format!("a change of the log key: {e}")))?;
        if cp.size <= size {
            return Err(EvidenceError::Custody("the log key's changes are out of order".into()));
        }
        (key, size) = (next, cp.size);
    }
    Ok((key, size))
}

/// A manifest whose every signature, proof and commitment holds.
#[derive(Debug, Clone)]
pub struct Checked {
    pub checkpoint: crate::note::Checkpoint,
    pub recording: crate::trust::RecordingStatement,
    pub key: crate::trust::CaseKeyStatement,
    /// The custody entries, in log order.
    pub custody: Vec<Entry>,
    /// The export's own entry, and its details.
    pub export: Entry,
    pub details: ExportDetails,
}

/// Checks a manifest offline: the trust root against `fingerprint`, the recorder's
/// certificate chain and signature, the custodian's key statement, every log entry's
/// inclusion in the checkpoint `log_key` signed, and that the custody entries are exactly
/// those the export's own log entry commits to. The files the manifest describes are the
/// caller's to hash.
pub fn verify_manifest(
    m: &Manifest,
    log_key: &crate::note::VerifierKey,
    fingerprint: &str,
) -> Result<Checked, EvidenceError> {
    use crate::ids::{CaseId, RecordingId};
    use crate::trust::{CaseKeyStatement, Directory, Root};

    if m.format != FORMAT {
        return Err(EvidenceError::Format(format!("format {:?}, not {FORMAT:?}", m.format)));
    }
    let root = Root::parse(&m.trust_root).map_err(|e| EvidenceError::Root(e.to_string()))?;
    if root.fingerprint() != fingerprint.trim() {
        return Err(EvidenceError::Root(format!(
            "the bundle's trust root is {}, not the organisation's {}",
            root.fingerprint(),
            fingerprint.trim()
        )));
    }
    if root.vault != log_key.name {
        return Err(EvidenceError::Root(format!(
            "the trust root is of vault {}, the log key of {}",
            root.vault, log_key.name
        )));
    }
    let dir = Directory::build(&root, &m.enrolments, &m.disables);
    let case: CaseId = m.case.parse().map_err(|_| EvidenceError::Format("bad case id".into()))?;
    let recording: RecordingId = m.recording.parse().map_err(|_| EvidenceError::Format("bad recording id".into()))?;
    let k: CaseKeyStatement = m.key_statement.parse().map_err(|e| EvidenceError::Signature(e.to_string()))?;
    let key = dir
        .check_case_key(&m.key_statement, &case, k.version, &k.recipient)
        .map_err(|e| EvidenceError::Signature(format!("the case key: {e}")))?;
    let rec = dir
        .check_recording(
            &m.recording_statement,
            &recording,
            &case,
            key.version,
            &m.ciphertext_sha256,
            m.ciphertext_size,
        )
        .map_err(|e| EvidenceError::Signature(e.to_string()))?;

    let slice = crate::proof::Slice {
        format: crate::proof::SLICE_FORMAT.into(),
        selection: format!("recording {recording}"),
        checkpoint: m.log.checkpoint.clone(),
        entries: m.log.entries.clone(),
    };
    let (signer, since) = follow_key(log_key, &m.key_transitions)?;
    let (checkpoint, mut entries) = slice.verify(&signer)?;
    if checkpoint.size < since {
        return Err(EvidenceError::Custody(format!(
            "the custody checkpoint ({} entries) is older than the change of the log key it is signed with ({since})",
            checkpoint.size
        )));
    }
    let custody_err = |s: String| EvidenceError::Custody(s);
    let export = entries.pop().ok_or_else(|| custody_err("no entries".into()))?;
    if export.action != "evidence-export" || export.outcome != "allowed" || export.recording_id != m.recording {
        return Err(custody_err(format!(
            "its last entry ({}) is not this recording's allowed evidence export",
            export.seq
        )));
    }
    if export.actor != m.exported_by || export.reason != m.reason {
        return Err(custody_err(format!("the export entry {} names another exporter or reason", export.seq)));
    }
    let details: ExportDetails =
        serde_json::from_str(&export.details).map_err(|e| custody_err(format!("the export entry's details: {e}")))?;
    if details.plaintext_sha256 != m.plaintext_sha256 || details.to != m.to {
        return Err(custody_err("the export entry names other contents than the bundle holds".into()));
    }
    for e in &entries {
        if e.seq >= details.custody_through || !is_custody(e, &m.case, &m.recording) {
            return Err(custody_err(format!("entry {} is not part of this recording's custody", e.seq)));
        }
    }
    let encodings: Vec<Vec<u8>> = m.log.entries[..entries.len()].iter().map(|e| e.encoding.clone()).collect();
    if entries.len() as u64 != details.custody_entries
        || custody_digest(encodings.iter().map(Vec::as_slice)) != details.custody_digest
    {
        return Err(custody_err(format!(
            "the bundle holds {} custody entries, but the server logged the export of {} (by their digest, a \
             different set): an entry was removed, added or altered",
            entries.len(),
            details.custody_entries
        )));
    }
    if !entries.iter().any(|e| e.action == "upload" && e.outcome == "allowed") {
        return Err(custody_err("the recording's upload is not among its custody entries".into()));
    }
    Ok(Checked { checkpoint, recording: rec, key, custody: entries, export, details })
}

/// The custody report: what the bundle proves, for people.
pub fn report(m: &Manifest, c: &Checked) -> String {
    use std::fmt::Write;
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
    };
    let mut out = String::new();
    let _ = writeln!(out, "EVIDENCE BUNDLE: recording {} of case {}", m.recording, m.case);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Recorded at {} by {} (announced: {}); uploaded as {} bytes of age ciphertext, SHA-256 {}.",
        c.recording.recorded_at, c.recording.by, c.recording.announced, m.ciphertext_size, m.ciphertext_sha256
    );
    let _ = writeln!(
        out,
        "The recorder's signature holds, under an enrolment chained to trust root {}.",
        crate::trust::Root::parse(&m.trust_root).map(|r| r.fingerprint()).unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "Encrypted to the case key version {} that {} vouched for ({}).",
        c.key.version, c.key.by, c.key.recipient
    );
    match (&m.plaintext_sha256, &m.to) {
        (Some(sha), _) => {
            let _ = writeln!(
                out,
                "The bundle holds the decrypted recording (SHA-256 {sha}), as {} stated when exporting it.",
                m.exported_by
            );
        }
        (None, Some(to)) => {
            let _ = writeln!(
                out,
                "The bundle holds the case key encrypted to {to}; only that recipient can decrypt the recording."
            );
        }
        (None, None) => {}
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Custody, from the access log ({} entries, each proven to be in the log whose checkpoint of {} entries the log key signed):",
        c.custody.len() + 1,
        c.checkpoint.size
    );
    for e in c.custody.iter().chain(std::iter::once(&c.export)) {
        let reason = if e.reason.is_empty() { String::new() } else { format!(" reason {:?}", e.reason) };
        let _ = writeln!(
            out,
            "  #{:<8} {}  {:<20} {:<8} {}{}",
            e.seq,
            time(e.time_ms),
            e.action,
            e.outcome,
            e.actor,
            reason
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Exported by {} at {} with reason {:?}. The export's log entry commits to the {} custody entries above.",
        m.exported_by,
        time(c.export.time_ms),
        m.reason,
        c.details.custody_entries
    );
    out
}
