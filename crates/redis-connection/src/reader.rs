//! [`Env`]: the one typed reader of environment variables, and
//! [`ConfigError`], the one error every crate's configuration fails with.
//!
//! redis-connection (`REDIS_*`), redis-cache (`CACHE_*`) and service-kit
//! (`HTTP_*` and the services' own variables) all read through it, so that
//! they agree on three rules:
//!
//! - an empty value counts as unset (compose files often write `VAR=`);
//! - a bad value fails with an error naming the variable, quoting the value
//!   only for numbers, flags and addresses, and only when it is short
//!   (secrets and URLs, which may hold a password, are never quoted);
//! - a set variable with one of our prefixes that nothing reads is reported
//!   as a likely typo ([`unknown_variables`]), because a misspelt
//!   `REDIS_PASWORD` would otherwise be silently ignored.

use std::fmt::{self, Display};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

/// A missing or bad configuration value. Its message names the variable and
/// what is wrong, never the value of a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The environment variable (or config field) at fault.
    pub variable: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl ConfigError {
    /// An error about `variable`.
    pub fn new(variable: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            reason: reason.into(),
        }
    }
}

/// Environment lookups, through a function so that tests can pass a map
/// instead of mutating the process environment. Empty values count as unset.
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> fmt::Debug for Env<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Env")
    }
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment. A value that is not valid UTF-8 reads as
    /// the text `"\u{FFFD}"`, so that it fails its parser (naming the
    /// variable) instead of counting as unset.
    pub fn process() -> Self {
        Env {
            lookup: |name| match std::env::var(name) {
                Ok(value) => Some(value),
                Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => Some(NOT_UNICODE.to_owned()),
            },
        }
    }
}

/// What a non-UTF-8 value reads as: no parser accepts it.
const NOT_UNICODE: &str = "\u{FFFD}";

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Variables looked up through `lookup`.
    pub fn from_fn(lookup: F) -> Self {
        Self { lookup }
    }

    /// The raw value, if set and non-empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// The raw value, if set and non-empty; fails when it is not valid
    /// UTF-8 (from [`Env::process`]). For free text such as a host name, a
    /// URL or a path.
    ///
    /// # Errors
    /// When the value is not valid UTF-8.
    pub fn text(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            Some(value) if value == NOT_UNICODE => {
                Err(ConfigError::new(name, "is not valid UTF-8"))
            }
            other => Ok(other),
        }
    }

    /// The lookup itself (empty values filtered out), for readers that take
    /// a function.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| self.get(name)
    }

    /// A number within `min..=max`, or `None` when unset.
    ///
    /// # Errors
    /// When set but not a whole number in range.
    pub fn optional_number<T>(&self, name: &str, min: T, max: T) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        parse_number(name, &value, min, max).map(Some)
    }

    /// A number within `min..=max`, or `default` when unset.
    ///
    /// # Errors
    /// When set but not a whole number in range.
    pub fn number<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        Ok(self.optional_number(name, min, max)?.unwrap_or(default))
    }

    /// A duration given in whole milliseconds within `min_ms..=max_ms`, or
    /// `default` when unset.
    ///
    /// # Errors
    /// When set but not a whole number in range.
    pub fn millis(
        &self,
        name: &str,
        default: Duration,
        min_ms: u64,
        max_ms: u64,
    ) -> Result<Duration, ConfigError> {
        Ok(self
            .optional_number(name, min_ms, max_ms)?
            .map_or(default, Duration::from_millis))
    }

    /// A duration given in whole seconds within `min_secs..=max_secs`, or
    /// `default` when unset.
    ///
    /// # Errors
    /// When set but not a whole number in range.
    pub fn secs(
        &self,
        name: &str,
        default: Duration,
        min_secs: u64,
        max_secs: u64,
    ) -> Result<Duration, ConfigError> {
        Ok(self
            .optional_number(name, min_secs, max_secs)?
            .map_or(default, Duration::from_secs))
    }

    /// A percentage from 1 to 100, with or without a trailing `%`, or
    /// `default` when unset.
    ///
    /// # Errors
    /// When set but not a whole number from 1 to 100.
    pub fn percent(&self, name: &str, default: u8) -> Result<u8, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        parse_number(name, value.trim().trim_end_matches('%'), 1, 100)
    }

    /// A flag (`true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`, any case),
    /// or `default` when unset.
    ///
    /// # Errors
    /// When set to anything else.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(
                name,
                format!("{} is not true or false", shown(&value)),
            )),
        }
    }

    /// One of `choices` (any case), or `default` when unset.
    ///
    /// # Errors
    /// When set to anything else.
    pub fn choice(
        &self,
        name: &str,
        default: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(value.trim()))
            .copied()
            .ok_or_else(|| ConfigError::new(name, format!("must be one of {}", choices.join(", "))))
    }

    /// A socket address, or `default` when unset.
    ///
    /// # Errors
    /// When set (or `default`) but not `host:port`.
    pub fn addr(&self, name: &str, default: &str) -> Result<SocketAddr, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        value.parse().map_err(|_| {
            ConfigError::new(
                name,
                format!("{} is not an address like 127.0.0.1:8080", shown(&value)),
            )
        })
    }

    /// A required secret of at least `min_len` characters. The value never
    /// appears in an error.
    ///
    /// # Errors
    /// When unset or too short.
    pub fn secret(&self, name: &str, min_len: usize) -> Result<SecretString, ConfigError> {
        let value = self
            .get(name)
            .ok_or_else(|| ConfigError::new(name, "is required"))?;
        if value.chars().count() < min_len {
            return Err(ConfigError::new(
                name,
                format!("must be at least {min_len} characters"),
            ));
        }
        Ok(SecretString::from(value))
    }
}

/// Quotes `value` only when it is short: the readers that quote hold
/// numbers, flags and addresses, never secrets, and a long value is noise.
fn shown(value: &str) -> String {
    if value.len() <= 32 && value != NOT_UNICODE {
        format!("{value:?}")
    } else {
        "the value".to_owned()
    }
}

fn parse_number<T>(name: &str, value: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    let n: T = value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(name, format!("{} is not a whole number", shown(value))))?;
    if n < min || n > max {
        return Err(ConfigError::new(
            name,
            format!("{n} is out of range ({min} to {max})"),
        ));
    }
    Ok(n)
}

/// The names among `set` that start with one of `prefixes` but are not in
/// `known`: most likely misspellings of a variable we read, which would
/// otherwise be ignored without a word. The caller reports them (a service
/// logs one warning each at start-up).
pub fn unknown_variables<'a>(
    set: impl IntoIterator<Item = &'a str>,
    prefixes: &[&str],
    known: &[&str],
) -> Vec<&'a str> {
    let mut unknown: Vec<&str> = set
        .into_iter()
        .filter(|name| prefixes.iter().any(|p| name.starts_with(p)))
        .filter(|name| !known.contains(name))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    unknown
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::from_fn(move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    // An empty value is the same as an unset one, for every reader.
    #[test]
    fn an_empty_value_counts_as_unset() {
        let e = env(&[("E", "")]);
        assert_eq!(e.get("E"), None);
        assert_eq!(e.text("E").unwrap(), None);
        assert_eq!(e.number("E", 7u32, 1, 10).unwrap(), 7);
        assert_eq!(e.optional_number("E", 1u32, 10).unwrap(), None);
        assert_eq!(
            e.millis("E", Duration::from_millis(3), 1, 10).unwrap(),
            Duration::from_millis(3)
        );
        assert!(e.flag("E", true).unwrap());
        assert_eq!(e.percent("E", 25).unwrap(), 25);
        assert_eq!(e.choice("E", "json", &["json", "pretty"]).unwrap(), "json");
        assert_eq!(e.addr("E", "0.0.0.0:2").unwrap().port(), 2);
        assert_eq!(e.secret("E", 1).unwrap_err().reason, "is required");
    }

    // Every reader's error names the variable; numbers and flags quote a
    // short bad value, a secret never appears.
    #[test]
    fn a_bad_value_names_its_variable_and_never_a_secret() {
        let e = env(&[
            ("A", "127.0.0.1:1"),
            ("N", "7"),
            ("BAD", "x"),
            ("S", "short-secret"),
            ("C", "JSON"),
            ("P", "10%"),
            ("F", "ON"),
        ]);
        assert_eq!(e.addr("A", "0.0.0.0:2").unwrap().port(), 1);
        assert!(
            e.addr("BAD", "0.0.0.0:2")
                .unwrap_err()
                .to_string()
                .starts_with("invalid BAD")
        );
        assert_eq!(e.number("N", 1u32, 1, 10).unwrap(), 7);
        let out_of_range = e.number("N", 1u32, 8, 10).unwrap_err();
        assert_eq!(out_of_range.variable, "N");
        assert_eq!(out_of_range.reason, "7 is out of range (8 to 10)");
        let not_a_number = e.number("BAD", 1u32, 0, 10).unwrap_err();
        assert_eq!(
            not_a_number.to_string(),
            "invalid BAD: \"x\" is not a whole number"
        );
        assert_eq!(
            e.secs("N", Duration::ZERO, 1, 10).unwrap(),
            Duration::from_secs(7)
        );
        assert_eq!(e.percent("P", 25).unwrap(), 10);
        assert_eq!(e.percent("BAD", 25).unwrap_err().variable, "BAD");
        assert!(e.flag("F", false).unwrap());
        assert_eq!(e.flag("BAD", false).unwrap_err().variable, "BAD");
        let err = e.secret("S", 32).unwrap_err();
        assert!(!err.to_string().contains("short-secret"), "{err}");
        assert_eq!(e.secret("S", 5).unwrap().expose_secret(), "short-secret");
        assert_eq!(
            e.choice("C", "pretty", &["json", "pretty"]).unwrap(),
            "json"
        );
        assert_eq!(
            e.choice("BAD", "pretty", &["json", "pretty"])
                .unwrap_err()
                .reason,
            "must be one of json, pretty"
        );
    }

    // A value that is not UTF-8 fails its reader, naming the variable,
    // instead of counting as unset.
    #[test]
    fn a_value_that_is_not_unicode_is_refused() {
        let e = env(&[("T", NOT_UNICODE)]);
        assert_eq!(e.text("T").unwrap_err().reason, "is not valid UTF-8");
        let err = e.number("T", 1u32, 0, 10).unwrap_err();
        assert_eq!(err.reason, "the value is not a whole number");
    }

    // Set variables with our prefixes that nothing reads are reported, each
    // once; others (and known ones) are not.
    #[test]
    fn unknown_variables_with_our_prefixes_are_likely_typos() {
        let set = [
            "PATH",
            "REDIS_PASWORD",
            "REDIS_PASSWORD",
            "CACHE_L1_TTL",
            "CACHE_L1_TTL",
            "HOME",
        ];
        assert_eq!(
            unknown_variables(set, &["REDIS_", "CACHE_"], &["REDIS_PASSWORD"]),
            ["CACHE_L1_TTL", "REDIS_PASWORD"]
        );
        assert!(unknown_variables(set, &["HTTP_"], &[]).is_empty());
    }
}
