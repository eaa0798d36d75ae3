//! Changing the key that signs the access log without breaking anyone's trust in it.
//!
//! Auditors pin the log's verifier key and the last checkpoint they verified. A new log
//! key is introduced by a *key transition*: a checkpoint of the log, signed by the key in
//! effect until then **and** by the new key, whose last entry is the logged rotation
//! (`server-key-rotate`) naming the new key. An auditor who trusts the old key trusts
//! what it signed, including "from this tree on, this other key signs": with a
//! consistency proof from their pin to the transition's checkpoint, and from it to the
//! current one, they carry their pin over to the new key without trusting the server
//! (see `schema/LOG-FORMAT.md`, "Key transitions").
//!
//! After the transition the server deletes the old private key: nothing later can carry
//! its signature, so a checkpoint signed by the old key and larger than the transition
//! is evidence of misuse.

use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};

use crate::note::{self, Checkpoint, NoteError, VerifierKey};

/// One change of the log's key, as the server serves it (`GET /v1/log/key-transitions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyTransition {
    /// The key in effect before, as `vault-server log-key` printed it.
    pub old_key: String,
    /// The key in effect from this checkpoint on.
    pub new_key: String,
    /// The checkpoint at the transition, signed by both keys.
    pub note: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransitionError {
    #[error("the transition is from key {found}, not from the key in effect ({expected})")]
    NotFrom { expected: String, found: String },
    #[error("the transition's new key is not a verifier key of this log: {0}")]
    BadNewKey(String),
    #[error("the transition's checkpoint is not signed by the old key: {0}")]
    OldSignature(NoteError),
    #[error("the transition's checkpoint is not signed by the new key: {0}")]
    NewSignature(NoteError),
    #[error("the transition does not change the key")]
    SameKey,
}

impl KeyTransition {
    /// Makes the transition at `checkpoint`: signed by `old` (the key in effect) and by
    /// `new`.
    pub fn sign(checkpoint: &Checkpoint, old: &Ed25519KeyPair, new: &Ed25519KeyPair) -> Self {
        let text = checkpoint.to_text();
        let by_new = note::sign(&text, &checkpoint.origin, new);
        let new_line = by_new.rsplit_once("\n\n").map_or("", |(_, line)| line);
        Self {
            old_key: VerifierKey::from_pair(&checkpoint.origin, old).to_text(),
            new_key: VerifierKey::from_pair(&checkpoint.origin, new).to_text(),
            note: format!("{}{new_line}", checkpoint.sign(old)),
        }
    }

    /// Checks the transition against `current`, the key the reader trusts now: that it is
    /// from that key, that both keys signed its checkpoint, and that the new key belongs
    /// to the same log. Returns the checkpoint and the new key.
    pub fn open(&self, current: &VerifierKey) -> Result<(Checkpoint, VerifierKey), TransitionError> {
        let old = VerifierKey::parse(&self.old_key).map_err(|e| TransitionError::BadNewKey(e.to_string()))?;
        if old != *current {
            return Err(TransitionError::NotFrom { expected: current.to_text(), found: self.old_key.clone() });
        }
        let new = VerifierKey::parse(&self.new_key).map_err(|e| TransitionError::BadNewKey(e.to_string()))?;
        if new.name != current.name {
            return Err(TransitionError::BadNewKey(format!("it names log {:?}", new.name)));
        }
        if new == old {
            return Err(TransitionError::SameKey);
        }
        let cp = Checkpoint::open(&self.note, current).map_err(TransitionError::OldSignature)?;
        let by_new = Checkpoint::open(&self.note, &new).map_err(TransitionError::NewSignature)?;
        debug_assert_eq!(cp, by_new);
        Ok((cp, new))
    }

    /// Whether this transition is from `key`.
    pub fn is_from(&self, key: &VerifierKey) -> bool {
        VerifierKey::parse(&self.old_key).is_ok_and(|k| k == *key)
    }
}

/// The `details` of the `server-key-rotate` entry that a log-key transition ends with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationDetails {
    /// `log` or `token`.
    pub key: String,
    /// For the log key: the keys before and after, as verifier keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_key: Option<String>,
    /// For the token key: the ids of the keys before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_kid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(b: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[b; 32]).unwrap()
    }

    fn cp() -> Checkpoint {
        Checkpoint { origin: "example.org/log".into(), size: 7, root: [9; 32] }
    }

    #[test]
    fn a_transition_opens_with_the_old_key_and_names_the_new() {
        let t = KeyTransition::sign(&cp(), &pair(1), &pair(2));
        let old = VerifierKey::from_pair("example.org/log", &pair(1));
        let (c, new) = t.open(&old).unwrap();
        assert_eq!(c, cp());
        assert_eq!(new, VerifierKey::from_pair("example.org/log", &pair(2)));
        assert!(t.is_from(&old));
        // Both signatures are in the one note.
        assert_eq!(Checkpoint::open(&t.note, &new).unwrap(), cp());
    }

    #[test]
    fn a_transition_from_another_key_is_refused() {
        let t = KeyTransition::sign(&cp(), &pair(1), &pair(2));
        let other = VerifierKey::from_pair("example.org/log", &pair(3));
        assert!(matches!(t.open(&other), Err(TransitionError::NotFrom { .. })));
    }

    #[test]
    fn a_transition_the_old_key_did_not_sign_is_refused() {
        // The attacker holds the new key only and claims the old key's name.
        let mut t = KeyTransition::sign(&cp(), &pair(3), &pair(2));
        t.old_key = VerifierKey::from_pair("example.org/log", &pair(1)).to_text();
        let old = VerifierKey::from_pair("example.org/log", &pair(1));
        assert!(matches!(t.open(&old), Err(TransitionError::OldSignature(_))));
    }

    #[test]
    fn a_transition_without_the_new_keys_signature_is_refused() {
        let mut t = KeyTransition::sign(&cp(), &pair(1), &pair(2));
        // The old key alone, naming a new key that signed nothing.
        t.note = cp().sign(&pair(1));
        let old = VerifierKey::from_pair("example.org/log", &pair(1));
        assert!(matches!(t.open(&old), Err(TransitionError::NewSignature(_))));
    }

    #[test]
    fn a_new_key_of_another_log_is_refused() {
        let mut t = KeyTransition::sign(&cp(), &pair(1), &pair(2));
        t.new_key = VerifierKey::from_pair("other.org/log", &pair(2)).to_text();
        let old = VerifierKey::from_pair("example.org/log", &pair(1));
        assert!(matches!(t.open(&old), Err(TransitionError::BadNewKey(_))));
    }

    #[test]
    fn a_transition_to_the_same_key_is_refused() {
        let t = KeyTransition::sign(&cp(), &pair(1), &pair(1));
        let old = VerifierKey::from_pair("example.org/log", &pair(1));
        assert_eq!(t.open(&old), Err(TransitionError::SameKey));
    }
}
