//! JSON encoding of cached values.
//!
//! Values are stored as JSON bytes and read back as `Bytes` (fred hands over
//! the frame's buffer without a copy), then decoded with
//! `serde_json::from_slice`: no intermediate `String` or `Vec<u8>`.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CacheError;

/// Encodes `value`, refusing results larger than `max` bytes.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Bytes, CacheError> {
    let bytes = serde_json::to_vec(value).map_err(|e| CacheError::Encode(e.into()))?;
    if bytes.len() > max {
        return Err(CacheError::ValueTooLarge {
            size: bytes.len(),
            max,
        });
    }
    Ok(Bytes::from(bytes))
}

/// Why a stored value did not decode, without quoting the value: serde's
/// messages can contain fragments of it, and cached values may hold personal
/// data that must not reach logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecodeFailure {
    pub(crate) category: &'static str,
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl std::fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} error at line {} column {}",
            self.category, self.line, self.column
        )
    }
}

/// Decodes a stored value as `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeFailure> {
    serde_json::from_slice(bytes).map_err(|e| DecodeFailure {
        category: match e.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "type mismatch",
            serde_json::error::Category::Eof => "truncated JSON",
        },
        line: e.line(),
        column: e.column(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Oversize values are refused with both sizes; the limit itself is allowed.
    #[test]
    fn oversize_values_are_refused_and_the_limit_itself_is_allowed() {
        let value = "x".repeat(8); // encodes to 10 bytes with quotes
        assert_eq!(encode(&value, 10).unwrap().len(), 10);
        assert_eq!(
            encode(&value, 9).unwrap_err(),
            CacheError::ValueTooLarge { size: 10, max: 9 }
        );
    }

    // A value JSON cannot hold is refused with serde_json's error kept as
    // the source, not flattened into a string.
    #[test]
    fn an_encode_failure_keeps_serde_jsons_error_as_its_source() {
        use std::error::Error;

        let value: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let err = encode(&value, 1024).unwrap_err();
        assert!(matches!(err, CacheError::Encode(_)), "{err:?}");
        let source = err.source().expect("a source");
        assert!(source.source().is_some_and(|e| e.is::<serde_json::Error>()));
        assert_eq!(err.clone(), err);
    }

    // Decode errors never quote the value.
    #[test]
    fn decode_failure_is_opaque() {
        let err = decode::<u32>(br#""secret-email@example.com""#).unwrap_err();
        assert_eq!(err.category, "type mismatch");
        assert!(!err.to_string().contains("secret"));
        assert_eq!(
            decode::<Vec<u32>>(b"[1,2").unwrap_err().category,
            "truncated JSON"
        );
        assert_eq!(decode::<u32>(b"\xff\xfe").unwrap_err().category, "syntax");
    }
}
