//! The access-log export: a self-contained file an auditor verifies offline, and the
//! stream `vault-cli audit verify` reads from the server.
//!
//! ```text
//! export = MAGIC || u32be(len(note)) || note || record*
//! record = u32be(len(encoding)) || encoding || prev(32) || hash(32)
//! ```
//!
//! `note` is the signed checkpoint (a C2SP signed note) for the log's first `size`
//! entries; the records are entries `from..size` in order, each in the canonical
//! encoding of [`crate::log`]. `schema/LOG-FORMAT.md` states the same in prose.

use std::io::{self, Read, Write};

use crate::log::{ChainError, ChainVerifier, genesis};
use crate::note::{Checkpoint, NoteError, VerifierKey};

/// First bytes of every export.
pub const MAGIC: &[u8] = b"recording-vault log export v1\n";
/// Bound on one record and on the note, so a damaged length cannot exhaust memory.
const MAX_RECORD: usize = 1 << 20;

/// Writes an export.
pub struct ExportWriter<W: Write> {
    w: W,
}

impl<W: Write> ExportWriter<W> {
    pub fn new(mut w: W, signed_note: &str) -> io::Result<Self> {
        w.write_all(MAGIC)?;
        w.write_all(&(signed_note.len() as u32).to_be_bytes())?;
        w.write_all(signed_note.as_bytes())?;
        Ok(Self { w })
    }

    pub fn entry(&mut self, encoding: &[u8], prev: &[u8; 32], hash: &[u8; 32]) -> io::Result<()> {
        self.w.write_all(&(encoding.len() as u32).to_be_bytes())?;
        self.w.write_all(encoding)?;
        self.w.write_all(prev)?;
        self.w.write_all(hash)
    }

    /// The underlying writer (to drain a buffer between entries).
    pub fn buffer(&mut self) -> &mut W {
        &mut self.w
    }

    pub fn finish(self) -> W {
        self.w
    }
}

/// What the auditor verified last: the size and head of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub size: u64,
    pub head: [u8; 32],
}

/// Why an export or log stream was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("not a log export: {0}")]
    Format(String),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(
        "the log has {now} entries but the checkpoint you verified last covers {pinned}: the log was truncated or rolled back"
    )]
    RolledBack { pinned: u64, now: u64 },
    #[error(
        "entry {seq}: differs from the checkpoint you verified last (its hash is not the pinned head): the log was rewritten at or before this entry"
    )]
    Rewritten { seq: u64 },
    #[error("entry {seq}: missing; the export ends before the {size} entries its checkpoint covers (truncated)")]
    Truncated { seq: u64, size: u64 },
    #[error("entry {seq}: beyond the {size} entries the signed checkpoint covers")]
    Extra { seq: u64, size: u64 },
    #[error("entry {seq}: the chain's head differs from the signed checkpoint's head (entries altered and re-hashed)")]
    HeadMismatch { seq: u64 },
    #[error("reading the export failed: {0}")]
    Io(#[from] io::Error),
}

/// The result of a successful verification.
#[derive(Debug, Clone)]
pub struct Verified {
    pub checkpoint: Checkpoint,
    /// The signed note, to keep as the new pin.
    pub note: String,
    /// Entries checked in this run.
    pub checked: u64,
}

/// Reads the header of an export: returns the signed note.
fn read_header<R: Read>(r: &mut R) -> Result<String, VerifyError> {
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(|_| VerifyError::Format("too short".into()))?;
    if magic != MAGIC {
        return Err(VerifyError::Format("wrong magic; is this a file from `vault-cli audit export`?".into()));
    }
    let len = read_u32(r)?.ok_or_else(|| VerifyError::Format("no checkpoint".into()))? as usize;
    if len > MAX_RECORD {
        return Err(VerifyError::Format("checkpoint too large".into()));
    }
    let mut note = vec![0u8; len];
    r.read_exact(&mut note).map_err(|_| VerifyError::Format("checkpoint cut off".into()))?;
    String::from_utf8(note).map_err(|_| VerifyError::Format("checkpoint is not UTF-8".into()))
}

fn read_u32<R: Read>(r: &mut R) -> Result<Option<u32>, VerifyError> {
    let mut b = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(VerifyError::Format("record length cut off".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(u32::from_be_bytes(b)))
}

/// Verifies an export (or the server's export stream) against the server's verifier
/// key.
///
/// The records must start at entry `pin.size` (or 0 without a pin) and chain from the
/// pinned head; with `full`, they start at 0 and the pinned head must reappear at entry
/// `pin.size - 1`. Either way, a log that does not extend the pin fails. Every record is
/// checked (sequence, link, hash), then the last hash against the signed head.
pub fn verify<R: Read>(mut r: R, key: &VerifierKey, pin: Option<Pin>, full: bool) -> Result<Verified, VerifyError> {
    let note = read_header(&mut r)?;
    let cp = Checkpoint::open(&note, key)?;
    if let Some(p) = pin
        && cp.size < p.size
    {
        return Err(VerifyError::RolledBack { pinned: p.size, now: cp.size });
    }
    let (start, prev) = match pin {
        Some(p) if !full && p.size > 0 => (p.size, p.head),
        _ => (0, genesis()),
    };
    let mut v = ChainVerifier::new(start, prev);
    let mut buf = Vec::with_capacity(1024);
    let mut links = [0u8; 64];
    while let Some(len) = read_u32(&mut r)? {
        let seq = v.next_seq();
        let len = len as usize;
        if len > MAX_RECORD {
            return Err(ChainError::Malformed { seq }.into());
        }
        buf.resize(len, 0);
        r.read_exact(&mut buf).map_err(|_| VerifyError::Format(format!("entry {seq} cut off")))?;
        r.read_exact(&mut links).map_err(|_| VerifyError::Format(format!("entry {seq} cut off")))?;
        if seq >= cp.size {
            return Err(VerifyError::Extra { seq, size: cp.size });
        }
        let (p, h) = links.split_at(32);
        let (p, h): (&[u8; 32], &[u8; 32]) = (p.try_into().expect("32"), h.try_into().expect("32"));
        if seq == start && start > 0 && *p != prev {
            return Err(VerifyError::Rewritten { seq: seq - 1 });
        }
        v.push(&buf, p, h)?;
        if let Some(pin) = pin
            && full
            && pin.size > 0
            && seq == pin.size - 1
            && *h != pin.head
        {
            return Err(VerifyError::Rewritten { seq });
        }
    }
    if v.next_seq() < cp.size {
        return Err(VerifyError::Truncated { seq: v.next_seq(), size: cp.size });
    }
    if v.head() != cp.head {
        return Err(VerifyError::HeadMismatch { seq: cp.size.saturating_sub(1) });
    }
    Ok(Verified { checked: v.next_seq() - start, checkpoint: cp, note })
}
