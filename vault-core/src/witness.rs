//! The witness side of C2SP tlog-witness (<https://c2sp.org/tlog-witness>): the
//! `add-checkpoint` request a log sends, and the witness's decision on it.
//!
//! A witness remembers, per log origin, the size and root of the last checkpoint it
//! cosigned. The log sends a new signed checkpoint with a consistency proof from that
//! size; the witness cosigns ([`crate::cosign`]) only a checkpoint whose signature it
//! trusts and that provably extends what it cosigned before, so it never cosigns two
//! views of one log that contradict each other. [`check`] is that decision, a pure
//! function of the witness's state, the log keys it trusts and the request; the caller
//! stores the new state durably before it releases a cosignature ([`Accepted::cosign`]).
//!
//! ```text
//! request  = "old " || decimal(old size) || "\n"
//!            || base64(proof hash) || "\n"   (0 to 63 times)
//!            || "\n"
//!            || signed checkpoint note
//! answer   = 200: the cosignature line(s)
//!            400 malformed, 403 no trusted log signature, 404 unknown origin,
//!            409 old size is not the witness's (body: its size, text/x.tlog.size),
//!                or same size with another root,
//!            422 the consistency proof does not verify
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::cosign::{CosignError, Cosigner, SignedNote};
use crate::merkle::{self, Hash};
use crate::note::VerifierKey;

/// The largest request body a witness reads: 63 proof lines and a checkpoint note with
/// its signatures are a few kilobytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The most consistency proof lines a request may carry (the protocol's limit).
pub const MAX_PROOF_HASHES: usize = 63;
/// The content type of a 409 answer, whose body is the witness's latest size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// The path of the call, below the witness's submission prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";

/// What a witness remembers of a log: the size and root of the last checkpoint it
/// cosigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// Why a witness refuses to cosign; each maps to the protocol's HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the request or the checkpoint is malformed, or its old size is beyond the
    /// checkpoint's size.
    #[error("bad request: {0}")]
    Malformed(String),
    /// 403: no signature on the checkpoint verifies with a key trusted for its origin.
    #[error("the checkpoint is not signed by a key this witness trusts for {0:?}")]
    Forbidden(String),
    /// 404: the witness follows no log of this origin.
    #[error("this witness follows no log with origin {0:?}")]
    UnknownLog(String),
    /// 409: the old size is not the size the witness last cosigned, or the checkpoint has
    /// that size with another root (a fork). `latest` is the witness's size.
    #[error("conflict: {why}; this witness last cosigned size {latest}")]
    Conflict { latest: u64, why: &'static str },
    /// 422: the consistency proof does not prove the checkpoint extends the one the
    /// witness cosigned: the log rewrote its history, or sent a bad proof.
    #[error("the consistency proof does not verify: {0}")]
    BadProof(String),
}

impl Refusal {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::BadProof(_) => 422,
        }
    }

    /// The content type of the answer's body.
    pub fn content_type(&self) -> &'static str {
        match self {
            Refusal::Conflict { .. } => SIZE_CONTENT_TYPE,
            _ => "text/plain; charset=utf-8",
        }
    }

    /// The answer's body: the witness's size for a conflict (as the protocol requires),
    /// otherwise the message.
    pub fn body(&self) -> String {
        match self {
            Refusal::Conflict { latest, .. } => format!("{latest}\n"),
            other => format!("{other}\n"),
        }
    }
}

fn malformed(why: impl Into<String>) -> Refusal {
    Refusal::Malformed(why.into())
}

/// An `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the log believes the witness cosigned last (0: none).
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size (RFC 6962 §2.1.2);
    /// empty when `old_size` is 0 or equals the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, with the log's signature (and perhaps others).
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// Reads a request body. Refused (400): more than [`MAX_REQUEST_BYTES`], not UTF-8,
    /// an old size line that is not `old N` with N canonical decimal, a proof line that
    /// is not the standard base64 of 32 bytes, more than [`MAX_PROOF_HASHES`] of them, no
    /// empty line before the note, a proof with an old size of 0, or a note that is not a
    /// well-formed signed note whose first line is an origin.
    pub fn parse(body: &[u8]) -> Result<Self, Refusal> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(malformed(format!("the body is over {MAX_REQUEST_BYTES} bytes")));
        }
        let body = std::str::from_utf8(body).map_err(|_| malformed("the body is not UTF-8"))?;
        let (head, checkpoint) =
            body.split_once("\n\n").ok_or_else(|| malformed("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .ok_or_else(|| malformed("the first line must be `old SIZE`"))?;
        let old_size = parse_decimal(old).ok_or_else(|| malformed("the old size must be a decimal number"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == MAX_PROOF_HASHES {
                return Err(malformed(format!("more than {MAX_PROOF_HASHES} proof lines")));
            }
            proof.push(parse_hash(line).ok_or_else(|| malformed("a proof line is not the base64 of a 32-byte hash"))?);
        }
        if old_size == 0 && !proof.is_empty() {
            return Err(malformed("a request with old size 0 must carry no proof"));
        }
        let note = SignedNote::parse(checkpoint).map_err(|e| malformed(e.to_string()))?;
        if note.text.split('\n').next().is_none_or(str::is_empty) {
            return Err(malformed("the checkpoint has no origin line"));
        }
        Ok(AddCheckpoint { old_size, proof, checkpoint: checkpoint.to_owned() })
    }

    /// The request body.
    pub fn to_body(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// The checkpoint's origin, its first line: which log's state the witness must look
    /// up before [`check`] (empty if the request did not come from [`AddCheckpoint::parse`]
    /// and has none).
    pub fn origin(&self) -> &str {
        self.checkpoint.split('\n').next().unwrap_or("")
    }
}

/// A decimal number without sign or leading zeros ("0" itself aside).
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// The canonical standard base64 of 32 bytes.
fn parse_hash(s: &str) -> Option<Hash> {
    let h: Hash = B64.decode(s).ok()?.try_into().ok()?;
    (B64.encode(h) == s).then_some(h)
}

/// The first three lines of a checkpoint (<https://c2sp.org/tlog-checkpoint>), read
/// strictly: the cosignature covers these exact bytes, so a size or root that other code
/// could read differently ("+5", "05", non-canonical base64) is refused. Extension lines
/// may follow; the witness states nothing about them.
fn parse_checkpoint(text: &str) -> Result<(&str, TreeHead), Refusal> {
    let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
    let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| malformed("the checkpoint has no origin"))?;
    let size = lines
        .next()
        .and_then(parse_decimal)
        .ok_or_else(|| malformed("the checkpoint's second line must be its size in decimal"))?;
    let root = lines
        .next()
        .and_then(parse_hash)
        .ok_or_else(|| malformed("the checkpoint's third line must be the base64 of its 32-byte root hash"))?;
    if lines.any(str::is_empty) {
        return Err(malformed("the checkpoint has an empty extension line"));
    }
    Ok((origin, TreeHead { size, root }))
}

/// A checkpoint the witness may cosign, once it has stored [`Accepted::head`] as its
/// state for [`Accepted::origin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub origin: String,
    /// The witness's new state for the origin.
    pub head: TreeHead,
    /// The checkpoint's text (the note without its signatures): what is cosigned.
    pub text: String,
}

impl Accepted {
    /// The cosignature line(s) to answer with. Call this only after the new state is
    /// durable: a cosignature released before, then lost in a crash, would let the
    /// witness cosign a fork of it.
    pub fn cosign(&self, key: &Cosigner, timestamp: u64) -> Result<String, CosignError> {
        key.cosign(&self.text, timestamp)
    }
}

/// The witness's decision on `request`: `log_keys` are the log keys it trusts (a key
/// serves the origin that is its name), `latest` its state for `request.origin()` (None:
/// it never cosigned that log).
///
/// The checks, in the protocol's order: the origin is followed (404), a trusted key
/// signed the checkpoint (403), the checkpoint is well-formed and the old size not
/// beyond it (400), the old size is the witness's latest (409, with that size), and then
/// the checkpoint extends the latest: equal sizes need equal roots (409), larger ones a
/// consistency proof that verifies (422). A checkpoint of size 0 must have the empty
/// tree's root (422).
pub fn check(request: &AddCheckpoint, log_keys: &[VerifierKey], latest: Option<TreeHead>) -> Result<Accepted, Refusal> {
    let note = SignedNote::parse(&request.checkpoint).map_err(|e| malformed(e.to_string()))?;
    let origin = note.text.split('\n').next().unwrap_or("");
    let keys: Vec<&VerifierKey> = log_keys.iter().filter(|k| k.name == origin).collect();
    if keys.is_empty() {
        return Err(Refusal::UnknownLog(origin.chars().take(200).collect()));
    }
    if !keys.iter().any(|k| crate::note::open(&request.checkpoint, k).is_ok()) {
        return Err(Refusal::Forbidden(origin.to_owned()));
    }
    let (_, head) = parse_checkpoint(note.text)?;
    let old = request.old_size;
    if old > head.size {
        return Err(malformed(format!("the old size {old} is beyond the checkpoint's size {}", head.size)));
    }
    if old == 0 && !request.proof.is_empty() {
        return Err(malformed("a request with old size 0 must carry no proof"));
    }
    let latest_size = latest.map_or(0, |l| l.size);
    if old != latest_size {
        return Err(Refusal::Conflict {
            latest: latest_size,
            why: "the old size is not the size this witness cosigned last",
        });
    }
    if head.size == 0 && !crate::ct_eq(&head.root, &merkle::empty_root()) {
        return Err(Refusal::BadProof("a checkpoint of size 0 must have the empty tree's root".into()));
    }
    match latest {
        // Nothing cosigned yet (or only the empty tree): nothing to be consistent with;
        // the proof is empty (parse refuses one with old size 0).
        _ if old == 0 && head.size > 0 => {}
        None => {}
        Some(l) if old == head.size => {
            if !crate::ct_eq(&l.root, &head.root) {
                return Err(Refusal::Conflict {
                    latest: l.size,
                    why: "the checkpoint has the size this witness cosigned last but another root: the log forked",
                });
            }
            if !request.proof.is_empty() {
                return Err(Refusal::BadProof("a proof between two trees of the same size is empty".into()));
            }
        }
        Some(l) => merkle::verify_consistency(l.size, head.size, &l.root, &head.root, &request.proof)
            .map_err(|e| Refusal::BadProof(e.to_string()))?,
    }
    Ok(Accepted { origin: origin.to_owned(), head, text: note.text.to_owned() })
}

/// Reads the body of a 409 answer: the witness's latest size (for a log that lost track
/// of it, to retry with the right old size).
pub fn parse_size_body(body: &str) -> Option<u64> {
    parse_decimal(body.strip_suffix('\n')?)
}

#[cfg(test)]
mod tests {
    use ring::signature::Ed25519KeyPair;

    use super::*;
    use crate::merkle::{consistency_proof, leaf_hash, root};

    const ORIGIN: &str = "recording-vault/0123456789abcdef";

    fn log_pair(b: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[b; 32]).unwrap()
    }

    fn log_key() -> VerifierKey {
        VerifierKey::from_pair(ORIGIN, &log_pair(0x4c))
    }

    fn leaves(n: u64, fork_at: Option<u64>) -> Vec<Hash> {
        (0..n)
            .map(|i| {
                let forked = fork_at.is_some_and(|f| i >= f);
                leaf_hash(format!("entry {i}{}", if forked { " (rewritten)" } else { "" }).as_bytes())
            })
            .collect()
    }

    fn signed(size: u64, root: &Hash, pair: &Ed25519KeyPair) -> String {
        let text = format!("{ORIGIN}\n{size}\n{}\n", B64.encode(root));
        crate::note::sign(&text, ORIGIN, pair)
    }

    fn request(old: u64, size: u64, fork_at: Option<u64>) -> AddCheckpoint {
        let l = leaves(size, fork_at);
        let proof = if old == 0 || old == size { vec![] } else { consistency_proof(&l[..], old, size).unwrap() };
        AddCheckpoint { old_size: old, proof, checkpoint: signed(size, &root(&l), &log_pair(0x4c)) }
    }

    fn head(size: u64) -> TreeHead {
        TreeHead { size, root: root(&leaves(size, None)) }
    }

    fn witness() -> Cosigner {
        Cosigner::from_seed("witness.example.org/dpo", &[0x57; 32]).unwrap()
    }

    #[test]
    fn request_body_round_trips() {
        for r in [request(0, 3, None), request(3, 7, None), request(7, 7, None)] {
            let body = r.to_body();
            assert_eq!(AddCheckpoint::parse(body.as_bytes()).unwrap(), r);
            assert_eq!(r.origin(), ORIGIN);
        }
        assert!(request(0, 3, None).to_body().starts_with("old 0\n\nrecording-vault/"));
    }

    #[test]
    fn first_checkpoint_then_extensions_are_cosigned() {
        let keys = [log_key()];
        let a = check(&request(0, 3, None), &keys, None).unwrap();
        assert_eq!((a.origin.as_str(), a.head), (ORIGIN, head(3)));
        let line = a.cosign(&witness(), 1_795_000_000).unwrap();
        let note = crate::cosign::add_signatures(&request(0, 3, None).checkpoint, &line).unwrap();
        assert_eq!(crate::cosign::verify(&note, &[witness().verifier()]).unwrap()[0].timestamp, 1_795_000_000);
        // Every size from 3 up to 40, in steps, and the same checkpoint again.
        let mut latest = head(3);
        for size in [4, 7, 8, 9, 16, 17, 40, 40] {
            let a = check(&request(latest.size, size, None), &keys, Some(latest)).unwrap();
            assert_eq!(a.head, head(size));
            latest = a.head;
        }
        // A log whose witness state is the empty tree.
        let empty = TreeHead { size: 0, root: merkle::empty_root() };
        let req = AddCheckpoint { old_size: 0, proof: vec![], checkpoint: signed(0, &empty.root, &log_pair(0x4c)) };
        assert_eq!(check(&req, &keys, None).unwrap().head, empty);
        assert_eq!(check(&req, &keys, Some(empty)).unwrap().head, empty);
        assert_eq!(check(&request(0, 5, None), &keys, Some(empty)).unwrap().head, head(5));
    }

    #[test]
    fn fail_wrong_log_signature() {
        let keys = [log_key()];
        // Signed by another key named like the log.
        let mut r = request(0, 3, None);
        r.checkpoint = signed(3, &head(3).root, &log_pair(0x99));
        assert_eq!(check(&r, &keys, None), Err(Refusal::Forbidden(ORIGIN.into())));
        // The log's signature on another checkpoint: altered after signing.
        let mut r = request(0, 3, None);
        r.checkpoint = r.checkpoint.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(check(&r, &keys, None).unwrap_err().status(), 403);
        // Unknown origin: the note names a log the witness does not follow.
        let other = VerifierKey::from_pair("other.example/log", &log_pair(0x4c));
        assert_eq!(check(&request(0, 3, None), &[other], None).unwrap_err().status(), 404);
    }

    #[test]
    fn fail_proof_for_another_size() {
        let keys = [log_key()];
        // The witness cosigned 5, the log thinks 3: 409 with the witness's size.
        let err = check(&request(3, 7, None), &keys, Some(head(5))).unwrap_err();
        assert_eq!(err.status(), 409);
        assert_eq!((err.body(), err.content_type()), ("5\n".to_owned(), SIZE_CONTENT_TYPE));
        assert_eq!(parse_size_body(&err.body()), Some(5));
        // The log thinks 0 after a restart of its own: told the size, nothing cosigned.
        assert_eq!(check(&request(0, 7, None), &keys, Some(head(5))).unwrap_err().body(), "5\n");
        // Old size right, but the proof is the one for 3 to 7.
        let mut r = request(5, 7, None);
        r.proof = request(3, 7, None).proof;
        assert_eq!(check(&r, &keys, Some(head(5))).unwrap_err().status(), 422);
    }

    #[test]
    fn fail_inconsistent_pair() {
        let keys = [log_key()];
        // Same size, another root: a fork, 409.
        let err = check(&request(5, 5, Some(2)), &keys, Some(head(5))).unwrap_err();
        assert!(matches!(err, Refusal::Conflict { latest: 5, .. }), "{err:?}");
        // A larger tree whose history differs from what was cosigned: its own (valid)
        // proof does not lead from the cosigned root.
        let err = check(&request(5, 9, Some(2)), &keys, Some(head(5))).unwrap_err();
        assert!(matches!(err, Refusal::BadProof(_)), "{err:?}");
        // A proof that does not verify: one hash altered, one missing, one too many.
        let good = request(5, 9, None);
        let mut bad = good.clone();
        bad.proof[0][0] ^= 1;
        assert_eq!(check(&bad, &keys, Some(head(5))).unwrap_err().status(), 422);
        bad.proof = good.proof[1..].to_vec();
        assert_eq!(check(&bad, &keys, Some(head(5))).unwrap_err().status(), 422);
        bad.proof = [good.proof.clone(), vec![[0; 32]]].concat();
        assert_eq!(check(&bad, &keys, Some(head(5))).unwrap_err().status(), 422);
        // Same size and root, but a proof where there is nothing to prove.
        let mut same = request(5, 5, None);
        same.proof = vec![[0; 32]];
        assert_eq!(check(&same, &keys, Some(head(5))).unwrap_err().status(), 422);
        // Size 0 with a root that is not the empty tree's.
        let r = AddCheckpoint { old_size: 0, proof: vec![], checkpoint: signed(0, &[7; 32], &log_pair(0x4c)) };
        assert_eq!(check(&r, &keys, None).unwrap_err().status(), 422);
        // The empty tree was cosigned; size 0 with another root is a fork.
        let empty = TreeHead { size: 0, root: merkle::empty_root() };
        assert_eq!(check(&r, &keys, Some(empty)).unwrap_err().status(), 422);
        // And the check never trusted the proof: correct proof, stale root.
        assert!(check(&good, &keys, Some(TreeHead { size: 5, root: [0; 32] })).is_err());
    }

    #[test]
    fn fail_rollback() {
        let keys = [log_key()];
        // A smaller checkpoint than the old size the log names: 400.
        let r = AddCheckpoint { old_size: 7, proof: vec![], checkpoint: request(0, 5, None).checkpoint };
        assert_eq!(check(&r, &keys, Some(head(7))).unwrap_err().status(), 400);
        // A smaller checkpoint than the witness's, with an old size of its own: 409.
        assert_eq!(check(&request(3, 5, None), &keys, Some(head(7))).unwrap_err().body(), "7\n");
        assert_eq!(check(&request(0, 5, None), &keys, Some(head(7))).unwrap_err().status(), 409);
    }

    #[test]
    fn fail_malformed_requests() {
        let good = request(3, 7, None).to_body();
        let note = request(0, 7, None).checkpoint;
        let p = B64.encode([1u8; 32]);
        let bad: Vec<String> = vec![
            String::new(),
            "old 3\n".into(),
            good.replacen("\n\n", "\n", 1),
            good.replacen("old 3", "old 03", 1),
            good.replacen("old 3", "old +3", 1),
            good.replacen("old 3", "old -1", 1),
            good.replacen("old 3", "old  3", 1),
            good.replacen("old 3", "Old 3", 1),
            good.replacen("old 3", "old 3 ", 1),
            good.replacen("old 3", "old 18446744073709551616", 1),
            good.replacen("old 3\n", "old 3\r\n", 1),
            format!("old 3\n{}\n\n{note}", &p[..43]),
            format!("old 3\n{}\n\n{note}", p.trim_end_matches('=')),
            format!("old 3\n{}\n\n{note}", B64.encode([1u8; 31])),
            format!("old 3\n{p} \n\n{note}"),
            format!("old 3\n{}\n{note}", format!("{p}\n").repeat(MAX_PROOF_HASHES + 1)),
            format!("old 0\n{p}\n\n{note}"),
            format!("old 0\n\n{}", note.replace("\n\n", "\n")),
            format!("old 0\n\n{}", &note[..note.len() - 1]),
            format!("old 0\n\n\n{note}"),
            format!("old 0\n\n{note}{}", "x".repeat(MAX_REQUEST_BYTES)),
        ];
        for b in &bad {
            let err = AddCheckpoint::parse(b.as_bytes()).unwrap_err();
            assert_eq!(err.status(), 400, "{b:?}: {err}");
        }
        assert_eq!(AddCheckpoint::parse(b"old 0\n\n\xff\xfe").unwrap_err().status(), 400);
    }

    #[test]
    fn fail_malformed_checkpoints_signed_by_the_log() {
        let keys = [log_key()];
        let root = B64.encode(head(3).root);
        for text in [
            format!("{ORIGIN}\n03\n{root}\n"),
            format!("{ORIGIN}\n+3\n{root}\n"),
            format!("{ORIGIN}\n3\n{}\n", root.trim_end_matches('=')),
            format!("{ORIGIN}\n3\n{}\n", B64.encode([1u8; 31])),
            format!("{ORIGIN}\n3\n"),
            format!("{ORIGIN}\n3\n{root}\n\next\n"),
        ] {
            let r = AddCheckpoint {
                old_size: 0,
                proof: vec![],
                checkpoint: crate::note::sign(&text, ORIGIN, &log_pair(0x4c)),
            };
            let parsed = AddCheckpoint::parse(r.to_body().as_bytes()).and_then(|r| check(&r, &keys, None));
            assert_eq!(parsed.unwrap_err().status(), 400, "{text:?}");
        }
        // An extension line is allowed, and cosigned with the rest.
        let text = format!("{ORIGIN}\n3\n{root}\nextension\n");
        let r =
            AddCheckpoint { old_size: 0, proof: vec![], checkpoint: crate::note::sign(&text, ORIGIN, &log_pair(0x4c)) };
        assert_eq!(check(&r, &keys, None).unwrap().text, text);
    }
}
