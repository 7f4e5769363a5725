//! Validated identifiers.
//!
//! Every id that ends up inside a Redis key goes through [`validate`]. The
//! allowed alphabet (`A-Z a-z 0-9 - _ . @ +`) is what makes the key and pattern
//! builders safe: an id can never contain the key separator `:`, a glob
//! character that would widen a pattern, or a hash-tag brace that would move a
//! key to another cluster slot. So a key built for one tenant can never be
//! matched by a pattern built for another.

use std::fmt;
use std::str::FromStr;

use crate::error::{IdRejection, ValidationError};

/// Longest id accepted, in bytes (all accepted characters are one byte).
pub const MAX_ID_LEN: usize = 128;

/// Checks `value` against the id rules, naming `field` in the error.
///
/// # Errors
/// [`ValidationError::Id`] with the first problem found.
pub fn validate(field: &'static str, value: &str) -> Result<(), ValidationError> {
    let reject = |reason| Err(ValidationError::Id { field, reason });
    if value.is_empty() {
        return reject(IdRejection::Empty);
    }
    if value.len() > MAX_ID_LEN {
        return reject(IdRejection::TooLong { len: value.len() });
    }
    for (at, ch) in value.char_indices() {
        if let Some(why) = forbidden_reason(ch) {
            return reject(IdRejection::Forbidden { ch, at, why });
        }
    }
    Ok(())
}

/// Why `ch` may not appear in an id, or `None` when it may.
fn forbidden_reason(ch: char) -> Option<&'static str> {
    match ch {
        'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '@' | '+' => None,
        ':' => Some("the key separator"),
        '*' | '?' | '[' | ']' | '\\' => Some("a Redis glob character"),
        '{' | '}' => Some("a cluster hash-tag brace"),
        c if c.is_whitespace() => Some("whitespace"),
        c if c.is_control() => Some("a control character"),
        c if !c.is_ascii() => Some("a non-ASCII character"),
        _ => Some("outside the allowed set A-Z a-z 0-9 - _ . @ +"),
    }
}

/// Defines one validated id newtype.
macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        ///
        /// Validated on construction (see the module docs for the rules);
        /// deserialising validates too.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The name of this id in errors and payloads.
            pub const FIELD: &'static str = $field;

            /// Validates and wraps `value`.
            ///
            /// # Errors
            /// [`ValidationError::Id`] naming the field and the problem.
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                validate($field, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a part of a key that a builder made from an id of this
            /// type: valid by construction, so not checked again.
            // Not every id type is read back from a key (counter names are not).
            #[allow(dead_code)]
            pub(crate) fn from_key_part(part: &str) -> Self {
                debug_assert!(validate($field, part).is_ok());
                Self(part.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
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
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValidationError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

define_id!(
    /// A tenant of the platform: the outermost scope of every key.
    TenantId,
    "tenant_id"
);
define_id!(
    /// A user within a tenant.
    UserId,
    "user_id"
);
define_id!(
    /// A data shard within a tenant.
    ShardId,
    "shard_id"
);
define_id!(
    /// The name of a counter or rate-limited action (`login`, `session-create`).
    CounterName,
    "counter_name"
);
define_id!(
    /// A background job of a tenant (main-api's purge jobs).
    JobId,
    "job_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    // The error names the field and says what is wrong, without echoing the input.
    #[test]
    fn error_names_field_and_reason() {
        let err = TenantId::new("acme:corp").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid tenant_id: contains ':' at byte 4 (the key separator)"
        );
        let err = UserId::new("").unwrap_err();
        assert_eq!(err.to_string(), "invalid user_id: must not be empty");
        let err = ShardId::new("x".repeat(129)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid shard_id: is 129 bytes long, at most 128 allowed"
        );
    }

    // Each class of forbidden character gets its own explanation.
    #[test]
    fn each_forbidden_character_class_has_its_own_explanation() {
        let why = |s: &str| match TenantId::new(s) {
            Err(ValidationError::Id {
                reason: IdRejection::Forbidden { why, .. },
                ..
            }) => why,
            other => panic!("expected a forbidden-char rejection, got {other:?}"),
        };
        assert_eq!(why("a*"), "a Redis glob character");
        assert_eq!(why("a{b}"), "a cluster hash-tag brace");
        assert_eq!(why("a b"), "whitespace");
        assert_eq!(why("a\u{1}"), "a control character");
        assert_eq!(why("é"), "a non-ASCII character");
        assert_eq!(why("a/b"), "outside the allowed set A-Z a-z 0-9 - _ . @ +");
    }

    // The full allowed alphabet, at the maximum length, is accepted.
    #[test]
    fn accepts_allowed_alphabet() {
        let id = "Az09-_.@+".repeat(14);
        assert_eq!(id.len(), 126);
        assert_eq!(TenantId::new(id.as_str()).unwrap().as_str(), id);
        assert!(TenantId::new("a".repeat(MAX_ID_LEN)).is_ok());
    }

    // Deserialising goes through validation.
    #[test]
    fn deserialising_an_id_goes_through_validation() {
        let ok: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"acme\"");
        let err = serde_json::from_str::<TenantId>("\"ac me\"").unwrap_err();
        assert!(err.to_string().contains("invalid tenant_id"), "{err}");
    }
}
