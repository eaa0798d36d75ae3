//! The one error type of key handling and encryption, and how `age`'s decryption errors
//! map onto it. Its own module so that [`super::payload`] and the rest of `crypto` both
//! use it without importing each other.

use std::io;

/// Errors of key handling and encryption.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The identity file has no usable `AGE-SECRET-KEY-1...` line.
    #[error(
        "{0}: not an age X25519 identity file; create one with `vault-cli keygen --out FILE` or `age-keygen -o FILE`"
    )]
    BadIdentityFile(String),
    /// A recipient string is not an `age1...` X25519 recipient.
    #[error("{0:?} is not an age X25519 recipient; it starts with \"age1\" and is printed by `vault-cli keygen`")]
    BadRecipient(String),
    /// The data is not age ciphertext, or it was cut off or altered.
    #[error("not valid age ciphertext (truncated, corrupted or not encrypted with age): {0}")]
    Malformed(String),
    /// The ciphertext is well formed but not encrypted to this identity.
    #[error("this identity cannot decrypt it: it was not encrypted to you (check --identity)")]
    NotForThisIdentity,
    /// An envelope decrypted, but does not hold the case key it claims to.
    #[error("the envelope does not hold the key of this case: {0}")]
    WrongCaseKey(String),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub(super) fn decrypt_error(e: age::DecryptError) -> CryptoError {
    match e {
        age::DecryptError::NoMatchingKeys => CryptoError::NotForThisIdentity,
        age::DecryptError::Io(e) if matches!(e.kind(), io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof) => {
            CryptoError::Malformed(e.to_string())
        }
        age::DecryptError::Io(e) => CryptoError::Io(e),
        other => CryptoError::Malformed(other.to_string()),
    }
}
