//! Reading typed configuration from environment variables, once, at start-up.

use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;

use secrecy::SecretString;

/// A missing or bad environment variable. Its message names the variable and
/// what is wrong, never the value of a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    /// The variable at fault.
    pub variable: String,
    /// What is wrong with it.
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

impl From<redis_connection::ConnectionError> for ConfigError {
    fn from(error: redis_connection::ConnectionError) -> Self {
        match error {
            redis_connection::ConnectionError::Config { variable, reason } => {
                Self::new(variable, reason)
            }
            other => Self::new("REDIS_URL", other.to_string()),
        }
    }
}

impl From<redis_cache::CacheError> for ConfigError {
    fn from(error: redis_cache::CacheError) -> Self {
        match error {
            redis_cache::CacheError::Config { variable, reason } => Self::new(variable, reason),
            other => Self::new("CACHE", other.to_string()),
        }
    }
}

/// Environment lookups, through a function so that tests can pass a map
/// instead of mutating the process environment. Empty values count as unset.
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> std::fmt::Debug for Env<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Env {
            lookup: |name| std::env::var(name).ok(),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Variables looked up through `lookup`.
    pub fn from_fn(lookup: F) -> Self {
        Self { lookup }
    }

    /// The raw value, if set and non-empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// The lookup function itself, for the library crates' `from_lookup`.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| self.get(name)
    }

    /// A socket address, or `default`.
    ///
    /// # Errors
    /// When set but not `host:port`.
    pub fn addr(&self, name: &str, default: &str) -> Result<SocketAddr, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        value.parse().map_err(|_| {
            ConfigError::new(
                name,
                format!("{value:?} is not an address like 127.0.0.1:8080"),
            )
        })
    }

    /// A number within `min..=max`, or `default`.
    ///
    /// # Errors
    /// When set but not a number in range.
    pub fn number<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let n: T = value
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(name, "is not a whole number"))?;
        if n < min || n > max {
            return Err(ConfigError::new(
                name,
                format!("{n} is out of range ({min} to {max})"),
            ));
        }
        Ok(n)
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

    /// One of `choices`, or `default`.
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

    // Each reader names its variable when the value is bad, and never echoes a secret.
    #[test]
    fn each_reader_names_its_variable_and_never_echoes_a_secret() {
        let e = env(&[
            ("A", "127.0.0.1:1"),
            ("N", "7"),
            ("BAD", "x"),
            ("S", "short-secret"),
            ("C", "JSON"),
        ]);
        assert_eq!(e.addr("A", "0.0.0.0:2").unwrap().port(), 1);
        assert_eq!(e.addr("UNSET", "0.0.0.0:2").unwrap().port(), 2);
        assert!(
            e.addr("BAD", "0.0.0.0:2")
                .unwrap_err()
                .to_string()
                .starts_with("invalid BAD")
        );
        assert_eq!(e.number("N", 1u32, 1, 10).unwrap(), 7);
        assert_eq!(e.number("N", 1u32, 8, 10).unwrap_err().variable, "N");
        assert_eq!(e.number("BAD", 1u32, 0, 10).unwrap_err().variable, "BAD");
        let err = e.secret("S", 32).unwrap_err();
        assert!(!err.to_string().contains("short-secret"));
        assert_eq!(e.secret("S", 5).unwrap().expose_secret(), "short-secret");
        assert_eq!(e.secret("UNSET", 1).unwrap_err().reason, "is required");
        assert_eq!(
            e.choice("C", "pretty", &["json", "pretty"]).unwrap(),
            "json"
        );
        assert!(e.choice("BAD", "pretty", &["json", "pretty"]).is_err());
    }
}
