//! The one error type of this crate.

use std::fmt;

/// Why an identifier was rejected.
///
/// The offending character is reported, never the whole input: ids arrive from
/// HTTP paths and message payloads, and echoing them back whole would let a caller
/// put arbitrary text into logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdRejection {
    /// The id is the empty string.
    Empty,
    /// The id is longer than [`crate::MAX_ID_LEN`] bytes.
    TooLong {
        /// Length of the rejected input, in bytes.
        len: usize,
    },
    /// The id contains a character outside `A-Z a-z 0-9 - _ . @ +`.
    Forbidden {
        /// The rejected character.
        ch: char,
        /// Its byte offset in the input.
        at: usize,
        /// Why it is not allowed (for example "the key separator").
        why: &'static str,
    },
}

impl fmt::Display for IdRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdRejection::Empty => f.write_str("must not be empty"),
            IdRejection::TooLong { len } => {
                write!(
                    f,
                    "is {len} bytes long, at most {} allowed",
                    crate::MAX_ID_LEN
                )
            }
            IdRejection::Forbidden { ch, at, why } => {
                write!(f, "contains {ch:?} at byte {at} ({why})")
            }
        }
    }
}

/// Every way a value of this crate can be rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// An identifier (`tenant_id`, `user_id`, ...) failed validation.
    #[error("invalid {field}: {reason}")]
    Id {
        /// Name of the field, as callers see it (`tenant_id`).
        field: &'static str,
        /// What is wrong with it.
        reason: IdRejection,
    },
    /// A hex digest (`query_hash`, `token_hash`) is not 64 lowercase hex digits.
    #[error("invalid {field}: expected 64 lowercase hex digits")]
    Digest {
        /// Name of the field.
        field: &'static str,
    },
    /// A TTL policy was configured outside its allowed range.
    #[error("invalid TTL for {policy}: {reason}")]
    Ttl {
        /// The policy being configured (`shard_structured`).
        policy: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// A string is not a key of any family of this layer
    /// ([`crate::RedisKey::parse`]).
    #[error("not a key of this layer: {reason}")]
    Key {
        /// Which part did not match (never the input itself).
        reason: &'static str,
    },
    /// A string is not one of our invalidation channels.
    #[error("not an invalidation channel: {reason}")]
    Channel {
        /// What did not match.
        reason: String,
    },
}
