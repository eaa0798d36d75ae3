//! The access-log export: a self-contained file an auditor verifies offline, and the
//! stream `vault-cli audit verify` reads from the server.
//!
//! ```text
//! export = MAGIC || u32be(len(note)) || note || record*
//! record = u32be(len(encoding)) || encoding || prev(32) || hash(32)
//! ```
//!
//! `note` is the signed checkpoint (a C2SP signed note) of the Merkle tree of the log's
//! first `size` entries; the records are entries `0..size` in order, each in the
//! canonical encoding of [`crate::log`], with the hash chain's links (kept for one
//! release, see `schema/LOG-FORMAT.md`, which states the same in prose).

use std::io::{self, Read, Write};

use crate::log::{ChainError, ChainVerifier, genesis};
use crate::merkle::{Frontier, Hash, ProofError, leaf_hash};
use crate::note::{Checkpoint, NoteError, VerifierKey};

/// First bytes of every export.
pub const MAGIC: &[u8; 30] = b"recording-vault log export v2\n";
/// First bytes of exports of the format before the Merkle tree, whose checkpoint signed
/// the chain's head.
const MAGIC_V1: &[u8; 30] = b"recording-vault log export v1\n";
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

/// What the auditor verified last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// A checkpoint of the Merkle tree: its size and root.
    Tree { size: u64, root: [u8; 32] },
    /// A checkpoint from before the tree, which signed the hash chain's head (the hash of
    /// entry `size - 1`). A full verification carries it over to a tree pin.
    Chain { size: u64, head: [u8; 32] },
}

impl Pin {
    pub fn size(&self) -> u64 {
        match *self {
            Pin::Tree { size, .. } | Pin::Chain { size, .. } => size,
        }
    }
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
        "entry {seq}: differs from the checkpoint you verified last (the first {} entries do not have its tree head or chain head): the log was rewritten at or before this entry", seq + 1
    )]
    Rewritten { seq: u64 },
    #[error(
        "the checkpoint of {now} entries does not extend the one of {pinned} entries you verified last ({why}): the log was rewritten, or you are shown a different log than others"
    )]
    Inconsistent { pinned: u64, now: u64, why: ProofError },
    #[error("entry {seq}: missing; the export ends before the {size} entries its checkpoint covers (truncated)")]
    Truncated { seq: u64, size: u64 },
    #[error("entry {seq}: beyond the {size} entries the signed checkpoint covers")]
    Extra { seq: u64, size: u64 },
    #[error(
        "the Merkle tree head of the {size} entries differs from the signed checkpoint's root (entries altered and re-hashed)"
    )]
    RootMismatch { size: u64 },
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
    if magic == *MAGIC_V1 {
        return Err(VerifyError::Format(
            "this export is of the older format (v1, before the Merkle tree); verify it with the vault-cli version that wrote it".into(),
        ));
    }
    if magic != *MAGIC {
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

/// Verifies an export (or the server's export stream) of the whole log against the
/// server's verifier key, reading every entry.
///
/// Every record is checked (canonical encoding, sequence, chain link and hash), every
/// entry becomes a leaf of the Merkle tree, and the tree head of all of them must be the
/// signed checkpoint's root. With a pin, the first `pin.size` entries must have the
/// pinned tree head (or, for a pin from before the tree, entry `pin.size - 1` the pinned
/// chain head): a log that does not extend the pin fails.
pub fn verify<R: Read>(mut r: R, key: &VerifierKey, pin: Option<Pin>) -> Result<Verified, VerifyError> {
    let note = read_header(&mut r)?;
    let cp = Checkpoint::open(&note, key)?;
    if let Some(p) = pin
        && cp.size < p.size()
    {
        return Err(VerifyError::RolledBack { pinned: p.size(), now: cp.size });
    }
    let mut chain = ChainVerifier::new(0, genesis());
    let mut tree = Frontier::default();
    let mut buf = Vec::with_capacity(1024);
    let mut links = [0u8; 64];
    check_pin(pin, &tree, None)?;
    while let Some(len) = read_u32(&mut r)? {
        let seq = chain.next_seq();
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
        chain.push(&buf, p, h)?;
        tree.push(leaf_hash(&buf));
        check_pin(pin, &tree, Some(h))?;
    }
    if chain.next_seq() < cp.size {
        return Err(VerifyError::Truncated { seq: chain.next_seq(), size: cp.size });
    }
    if !crate::ct_eq(&tree.root(), &cp.root) {
        return Err(VerifyError::RootMismatch { size: cp.size });
    }
    Ok(Verified { checked: chain.next_seq(), checkpoint: cp, note })
}

/// Once `tree` holds the pin's number of entries, checks they are the pinned ones.
fn check_pin(pin: Option<Pin>, tree: &Frontier, last_hash: Option<&[u8; 32]>) -> Result<(), VerifyError> {
    let Some(pin) = pin else { return Ok(()) };
    if tree.size() != pin.size() || pin.size() == 0 {
        return Ok(());
    }
    let same = match pin {
        Pin::Tree { root, .. } => crate::ct_eq(&tree.root(), &root),
        Pin::Chain { head, .. } => last_hash.is_some_and(|h| crate::ct_eq(h, &head)),
    };
    if !same {
        return Err(VerifyError::Rewritten { seq: pin.size() - 1 });
    }
    Ok(())
}

/// Checks that checkpoint `now` extends the pinned tree checkpoint by the consistency
/// `proof` between them (RFC 9162): a logarithmic number of hashes instead of every new
/// entry.
pub fn verify_extends(
    pinned_size: u64,
    pinned_root: &[u8; 32],
    now: &Checkpoint,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if now.size < pinned_size {
        return Err(VerifyError::RolledBack { pinned: pinned_size, now: now.size });
    }
    if pinned_size == 0 {
        return Ok(());
    }
    crate::merkle::verify_consistency(pinned_size, now.size, pinned_root, &now.root, proof)
        .map_err(|why| VerifyError::Inconsistent { pinned: pinned_size, now: now.size, why })
}
