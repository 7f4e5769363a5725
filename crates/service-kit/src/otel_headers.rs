//! `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs whose values are often
//! API keys, so parsed into secrets and reported by position only.

use redis_connection::ConfigError;
use secrecy::{ExposeSecret, SecretString};

/// `key1=value1,key2=value2` (values percent-encoded, as the spec says):
/// names in clear, values kept secret. A bad entry is reported by its
/// position only, since a value may be an API key.
pub(crate) fn parse_headers(
    text: &SecretString,
) -> Result<Vec<(String, SecretString)>, ConfigError> {
    const NAME: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    let mut headers = Vec::new();
    for (i, entry) in text.expose_secret().split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(ConfigError::new(
                NAME,
                format!("entry {} is not key=value", i + 1),
            ));
        };
        let key = key.trim();
        let valid_name = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_name {
            return Err(ConfigError::new(
                NAME,
                format!("entry {} has no valid header name", i + 1),
            ));
        }
        let value = percent_decode(value.trim()).ok_or_else(|| {
            ConfigError::new(NAME, format!("entry {} has a bad percent-encoding", i + 1))
        })?;
        headers.push((key.to_owned(), SecretString::from(value)));
    }
    Ok(headers)
}

/// Decodes `%XX` escapes; `None` for a broken escape or non-UTF-8 result.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
