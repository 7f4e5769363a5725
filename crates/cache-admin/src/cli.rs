//! The command line: what each command takes, as clap reads it.

use clap::{Parser, Subcommand, ValueEnum};
use shared_types::{KeyPattern, TenantId};

use crate::error::AdminError;

/// Look into the Redis cache of the platform and clean it, without writing
/// code. Reads the same `REDIS_*` (and `CACHE_*`) variables as the services.
#[derive(Debug, Parser)]
#[command(name = "cache-admin", version)]
pub(crate) struct Cli {
    /// Print one JSON document (for `watch`, one per line) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Server statistics (keys, memory) and, per tenant named, its indexed keys.
    Stats {
        /// A tenant whose key count to report (one ZCARD each); repeatable.
        #[arg(long = "tenant", value_name = "T")]
        tenants: Vec<String>,
    },
    /// Type, size, TTL, family and tenant of one key; never its value.
    Inspect {
        /// The key, as Redis names it (`tenant:acme:shard:eu-1:structured`).
        #[arg(value_name = "KEY-SPEC")]
        key: String,
    },
    /// A histogram of the remaining TTLs of a tenant's cached keys.
    TtlReport {
        /// The tenant.
        #[arg(long, value_name = "T")]
        tenant: String,
        /// Only this family of the tenant's cached data.
        #[arg(long, value_enum)]
        family: Option<Family>,
    },
    /// Delete a tenant's cached data (never its sessions, rate limits or
    /// counters, never another tenant's), announcing it to running
    /// instances as it goes. Ctrl-C stops it and prints a resume token.
    Purge {
        /// The tenant.
        #[arg(
            long,
            value_name = "T",
            required_unless_present = "resume",
            conflicts_with = "resume"
        )]
        tenant: Option<String>,
        /// Only this family of the tenant's cached data.
        #[arg(long, value_enum, conflicts_with = "resume")]
        family: Option<Family>,
        /// Continue an interrupted purge from the token it printed.
        #[arg(long, value_name = "TOKEN")]
        resume: Option<String>,
        /// At most this many keys a second (`500` or `500/s`).
        #[arg(long, value_name = "N/s", value_parser = parse_rate)]
        rate: Option<u32>,
        /// Count what would be deleted; delete and announce nothing.
        #[arg(long, conflicts_with = "resume")]
        dry_run: bool,
    },
    /// A live tail of the invalidations on the bus, decoded.
    Watch {
        /// Only this tenant's invalidations.
        #[arg(long, value_name = "T")]
        tenant: Option<String>,
        /// Stop after this many invalidations (default: until Ctrl-C).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
}

/// A family of a tenant's cached data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Family {
    /// Shard structured data (`tenant:{t}:shard:*`).
    Shard,
    /// User profiles (`tenant:{t}:user:*`).
    User,
    /// ACL checks (`tenant:{t}:acl:*`).
    Acl,
    /// Vector searches (`tenant:{t}:vsearch:*`).
    Vsearch,
}

impl Family {
    /// The name used in resume tokens and output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Shard => "shard",
            Family::User => "user",
            Family::Acl => "acl",
            Family::Vsearch => "vsearch",
        }
    }

    /// The family named `name` (as [`name`](Self::name) writes it).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [Family::Shard, Family::User, Family::Acl, Family::Vsearch]
            .into_iter()
            .find(|family| family.name() == name)
    }
}

/// The pattern of `tenant`'s cached data, or of one family of it.
pub(crate) fn pattern(tenant: &TenantId, family: Option<Family>) -> KeyPattern {
    match family {
        None => KeyPattern::tenant_cache(tenant),
        Some(Family::Shard) => KeyPattern::tenant_shards(tenant),
        Some(Family::User) => KeyPattern::tenant_user_profiles(tenant),
        Some(Family::Acl) => KeyPattern::tenant_acl(tenant),
        Some(Family::Vsearch) => KeyPattern::tenant_vector_search(tenant),
    }
}

/// A validated tenant id from the `--tenant` argument.
pub(crate) fn tenant(value: &str) -> Result<TenantId, AdminError> {
    TenantId::new(value).map_err(|e| AdminError::input("--tenant", &e))
}

/// `N` or `N/s`, at least 1.
fn parse_rate(value: &str) -> Result<u32, String> {
    let number = value.strip_suffix("/s").unwrap_or(value);
    match number.parse::<u32>() {
        Ok(0) => Err("the rate must be at least 1 key a second".to_owned()),
        Ok(rate) => Ok(rate),
        Err(_) => Err("expected a number of keys a second, such as 500 or 500/s".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Rates read `N` and `N/s` and refuse zero, negatives and words.
    #[test]
    fn rates_read_plain_and_per_second_forms() {
        assert_eq!(parse_rate("500"), Ok(500));
        assert_eq!(parse_rate("20/s"), Ok(20));
        for bad in ["0", "0/s", "-1", "fast", "10/m", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    // The definition is consistent (clap's own check of derive output).
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
