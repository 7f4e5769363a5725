//! Parsing `REDIS_URL`.
//!
//! fred's URL parser does the work (hosts, `?node=`, percent-decoded
//! credentials, `/db`), but we decide TLS from the scheme ourselves: fred
//! without a TLS feature connects to `rediss://` in plain text with only a
//! warning, and we refuse that instead.

use fred::types::config::{Config as FredConfig, ServerConfig};
use secrecy::SecretString;

use crate::config::{RedisConfig, TlsOptions, Topology};
use crate::reader::ConfigError;

const SCHEMES: &str = "redis://, rediss://, redis-cluster://, rediss-cluster://, \
                       redis-sentinel:// or rediss-sentinel://";

fn url_error(reason: impl Into<String>) -> ConfigError {
    ConfigError::new("REDIS_URL", reason)
}

impl RedisConfig {
    /// Parses a Redis URL: `redis://`, `rediss://` (TLS), `redis-cluster://`,
    /// `rediss-cluster://`, `redis-sentinel://` (with `?sentinelServiceName=`),
    /// with optional `user:password@` (percent-encoded), `/db`, and more seed
    /// nodes as `?node=host:port` or as a list (`redis-cluster://a:1,b:2`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming `REDIS_URL`. The URL itself is never
    /// repeated in the message: it may hold a password.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        parse(url)
    }
}

fn parse(url: &str) -> Result<RedisConfig, ConfigError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(url_error(format!("must start with {SCHEMES}")));
    };
    let (tls, plain_scheme) = match scheme {
        "redis" | "redis-cluster" | "redis-sentinel" => (false, scheme.to_owned()),
        "rediss" | "rediss-cluster" | "rediss-sentinel" => {
            (true, scheme.replacen("rediss", "redis", 1))
        }
        _ => return Err(url_error(format!("unsupported scheme, expected {SCHEMES}"))),
    };
    // Hand fred the plain-text form: TLS is configured by us (see tls.rs).
    let mut plain = format!("{plain_scheme}://{rest}");
    if scheme.ends_with("-cluster") || scheme.ends_with("-sentinel") {
        plain = seed_list_as_nodes(&plain)?;
    }
    let parsed = FredConfig::from_url(&plain).map_err(|e| url_error(e.details().to_owned()))?;
    if scheme.ends_with("-cluster") {
        // fred ignores a database in a cluster URL; a cluster has only db 0,
        // so asking for another is a mistake worth reporting.
        let path = ::url::Url::parse(&plain)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        if !matches!(path.as_str(), "" | "/" | "/0") {
            return Err(ConfigError::new(
                "REDIS_DB",
                "a Redis Cluster has only database 0",
            ));
        }
    }

    let topology = match parsed.server {
        ServerConfig::Centralized { server } => Topology::Centralized {
            host: server.host.to_string(),
            port: server.port,
        },
        ServerConfig::Clustered { hosts, .. } => Topology::Cluster {
            nodes: hosts
                .into_iter()
                .map(|s| (s.host.to_string(), s.port))
                .collect(),
        },
        ServerConfig::Sentinel {
            hosts,
            service_name,
            ..
        } => Topology::Sentinel {
            nodes: hosts
                .into_iter()
                .map(|s| (s.host.to_string(), s.port))
                .collect(),
            service_name,
        },
    };
    Ok(RedisConfig {
        topology,
        username: parsed.username.filter(|u| !u.is_empty()),
        password: parsed
            .password
            .filter(|p| !p.is_empty())
            .map(SecretString::from),
        tls: tls.then(TlsOptions::default),
        database: parsed.database,
        ..RedisConfig::default()
    })
}

/// `scheme://[auth@]h1:p1,h2:p2[/db][?query]`, a common way to name several
/// seeds, rewritten to the `?node=h2:p2` form fred reads (it takes one host
/// from the authority). URLs without a comma pass unchanged.
fn seed_list_as_nodes(url: &str) -> Result<String, ConfigError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(url.to_owned());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // Credentials end at the last '@' (one inside them must be encoded).
    let (auth, hosts) = authority.split_at(authority.rfind('@').map_or(0, |i| i + 1));
    if !hosts.contains(',') {
        return Ok(url.to_owned());
    }
    let seeds: Vec<&str> = hosts.split(',').collect();
    if seeds.iter().any(|seed| seed.is_empty()) {
        return Err(url_error("the seed list holds an empty host"));
    }
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let mut params: Vec<String> = seeds[1..].iter().map(|s| format!("node={s}")).collect();
    if !query.is_empty() {
        params.push(query.to_owned());
    }
    Ok(format!(
        "{scheme}://{auth}{}{path}?{}",
        seeds[0],
        params.join("&")
    ))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    // Each scheme maps to its topology and TLS setting.
    #[test]
    fn each_url_scheme_maps_to_its_topology_and_tls() {
        let c = parse("redis://localhost:7000/3").unwrap();
        assert_eq!(
            c.topology,
            Topology::Centralized {
                host: "localhost".into(),
                port: 7000
            }
        );
        assert_eq!(c.database, Some(3));
        assert!(c.tls.is_none());

        let c = parse("rediss://cache.example.com:6380").unwrap();
        assert!(c.tls.is_some());

        let c = parse("redis-cluster://a:7000?node=b:7001&node=c:7002").unwrap();
        let Topology::Cluster { mut nodes } = c.topology else {
            panic!("not a cluster")
        };
        nodes.sort();
        assert_eq!(
            nodes,
            vec![("a".into(), 7000), ("b".into(), 7001), ("c".into(), 7002)]
        );
        let c = parse("rediss-cluster://a:7000").unwrap();
        assert!(c.is_cluster() && c.tls.is_some());

        // A comma-separated seed list, alone or with ?node= and credentials.
        for url in [
            "redis-cluster://a:7000,b:7001,c:7002",
            "redis-cluster://a:7000,b:7001?node=c:7002",
            "rediss-cluster://:p%2Cw@a:7000,b:7001,c:7002/0",
        ] {
            let c = parse(url).unwrap();
            if let Some(password) = &c.password {
                assert_eq!(password.expose_secret(), "p,w");
            }
            let Topology::Cluster { mut nodes } = c.topology else {
                panic!("not a cluster: {url}")
            };
            nodes.sort();
            assert_eq!(
                nodes,
                vec![("a".into(), 7000), ("b".into(), 7001), ("c".into(), 7002)],
                "{url}"
            );
        }
        assert!(parse("redis-cluster://a:7000,,b:7001").is_err());
        assert!(
            parse("redis://a:7000,b:7001").is_err(),
            "one server, one host"
        );

        let c = parse("redis-sentinel://s1:26379?sentinelServiceName=mymaster").unwrap();
        assert!(
            matches!(c.topology, Topology::Sentinel { ref service_name, .. } if service_name == "mymaster")
        );
    }

    // Percent-encoded credentials (Azure keys contain / + =) are decoded.
    #[test]
    fn credentials_are_decoded() {
        let c = parse("rediss://alice:ab%2Fc%2Bd%3D@host:6380").unwrap();
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.unwrap().expose_secret(), "ab/c+d=");
        let c = parse("redis://:only-pass@host:6379").unwrap();
        assert_eq!(c.username, None);
        assert_eq!(c.password.unwrap().expose_secret(), "only-pass");
    }

    // Bad URLs are refused without echoing the URL (it may hold a password).
    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for bad in [
            "localhost:6379",
            "http://host",
            "redis://",
            "redis://:hunter2@/0",
            "redis-cluster://:hunter2@a:1,",
        ] {
            let err = parse(bad).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("invalid REDIS_URL"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
