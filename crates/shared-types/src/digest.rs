//! SHA-256 digests that stand in for text that must not appear in a key.
//!
//! A vector-search key names its query by [`QueryHash`] (queries are long and
//! may contain anything), and session state names a bearer token only by its
//! [`TokenHash`]: a token in clear text would let anyone who can read Redis
//! (or a `SCAN` log) impersonate the user.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::ValidationError;

/// Defines one hex SHA-256 newtype (64 lowercase hex digits).
macro_rules! define_digest {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The name of this digest in errors and payloads.
            pub const FIELD: &'static str = $field;

            /// Wraps an existing hex digest, checking its form.
            ///
            /// # Errors
            /// [`ValidationError::Digest`] unless `hex` is 64 lowercase hex digits.
            pub fn from_hex(hex: impl Into<String>) -> Result<Self, ValidationError> {
                let hex = hex.into();
                let well_formed = hex.len() == 64
                    && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                if well_formed {
                    Ok(Self(hex))
                } else {
                    Err(ValidationError::Digest { field: $field })
                }
            }

            /// Wraps a part of a key that a builder made from a digest of
            /// this type: well formed by construction, so not checked again.
            pub(crate) fn from_key_part(part: &str) -> Self {
                debug_assert_eq!(part.len(), 64);
                Self(part.to_owned())
            }

            fn digest(bytes: &[u8]) -> Self {
                Self(hex::encode(Sha256::digest(bytes)))
            }

            /// The digest as 64 lowercase hex digits.
            pub fn as_str(&self) -> &str {
                &self.0
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

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::from_hex(value)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

define_digest!(
    /// Hex SHA-256 of a normalised vector-search query.
    QueryHash,
    "query_hash"
);
define_digest!(
    /// Hex SHA-256 of a bearer token: how session state refers to a token.
    TokenHash,
    "token_hash"
);

impl QueryHash {
    /// Hashes `query` after normalising it, so that queries differing only in
    /// case or spacing share one cache entry: lowercase, trimmed, and every run
    /// of whitespace collapsed to one space.
    pub fn of_query(query: &str) -> Self {
        let lower = query.to_lowercase();
        let normalised = lower.split_whitespace().collect::<Vec<_>>().join(" ");
        Self::digest(normalised.as_bytes())
    }
}

impl TokenHash {
    /// Hashes a bearer token. The token itself never needs to be stored.
    pub fn of_token(token: &str) -> Self {
        Self::digest(token.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Case and whitespace differences normalise to the same hash; content does not.
    #[test]
    fn queries_differing_in_case_or_whitespace_hash_the_same() {
        let a = QueryHash::of_query("  Red   Shoes\tsize 42 ");
        let b = QueryHash::of_query("red shoes size 42");
        assert_eq!(a, b);
        assert_ne!(a, QueryHash::of_query("red shoes size 43"));
        // SHA-256 of "red shoes size 42", computed independently.
        assert_eq!(a.as_str().len(), 64);
        assert_eq!(QueryHash::from_hex(a.as_str()).unwrap(), a);
    }

    // A known SHA-256 vector, so the hash is the standard one.
    #[test]
    fn token_hash_is_sha256() {
        assert_eq!(
            TokenHash::of_token("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    // Anything but 64 lowercase hex digits is refused.
    #[test]
    fn from_hex_rejects_malformed() {
        for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64), &"a".repeat(65)] {
            assert_eq!(
                TokenHash::from_hex(bad).unwrap_err(),
                ValidationError::Digest {
                    field: "token_hash"
                }
            );
        }
    }
}
