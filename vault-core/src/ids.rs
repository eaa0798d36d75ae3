//! Identifiers, one type per kind of thing.
//!
//! Every id that reaches the server from outside is parsed into one of these types
//! first, so a path-like or otherwise malformed id is refused before it can touch the
//! database or the blob directory. Case and recording ids are random, with a prefix that
//! says what they name; user names are chosen by admins but kept to a safe alphabet.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} {value:?} is not valid: {rule}")]
pub struct InvalidId {
    what: &'static str,
    value: String,
    rule: &'static str,
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id (128 bits from the system's secure generator).
            pub fn random() -> Self {
                Self(format!("{}{}", $prefix, random_hex16()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                let ok = s
                    .strip_prefix($prefix)
                    .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidId {
                        what: $what,
                        value: truncate_for_message(s),
                        rule: concat!("expected \"", $prefix, "\" followed by 32 lowercase hex digits, as printed when it was created"),
                    })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

random_id!(
    /// A case: one investigation or recording purpose, with its own key.
    CaseId,
    "case_",
    "case id"
);
random_id!(
    /// One encrypted recording.
    RecordingId,
    "rec_",
    "recording id"
);

/// A person or service account, as enrolled by an admin.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl UserName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UserName {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let b = s.as_bytes();
        let ok = (1..=64).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b.iter().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId {
                what: "user name",
                value: truncate_for_message(s),
                rule: "use 1 to 64 characters from a-z, 0-9, '.', '_' and '-', starting with a letter",
            })
        }
    }
}

impl TryFrom<String> for UserName {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        s.parse()
    }
}

impl From<UserName> for String {
    fn from(n: UserName) -> String {
        n.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserName({})", self.0)
    }
}

/// 16 random bytes as 32 lowercase hex digits.
pub fn random_hex16() -> String {
    hex::encode(random_bytes::<16>())
}

/// `N` bytes from the operating system's secure random generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut out).expect("the operating system's random generator failed");
    out
}

fn truncate_for_message(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_parse_back() {
        let c = CaseId::random();
        assert_eq!(c.as_str().parse::<CaseId>().unwrap(), c);
        let r = RecordingId::random();
        assert_eq!(r.to_string().parse::<RecordingId>().unwrap(), r);
        assert_ne!(CaseId::random(), CaseId::random());
    }

    #[test]
    fn fail_path_like_and_malformed_ids() {
        for bad in [
            "",
            "case_",
            "../etc/passwd",
            "case_../../../../etc/passwd0000000000",
            "case_0123456789ABCDEF0123456789abcdef",
            "case_0123456789abcdef0123456789abcde",
            "rec_0123456789abcdef0123456789abcdef",
            "case_0123456789abcdef0123456789abcdef/",
        ] {
            assert!(bad.parse::<CaseId>().is_err(), "{bad:?} accepted");
        }
        assert!("case_0123456789abcdef0123456789abcdef".parse::<RecordingId>().is_err());
    }

    #[test]
    fn user_names() {
        for good in ["alice", "bob.smith", "pbx-01", "a"] {
            assert!(good.parse::<UserName>().is_ok(), "{good}");
        }
        for bad in ["", "Alice", "1abc", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<UserName>().is_err(), "{bad:?}");
        }
    }
}
