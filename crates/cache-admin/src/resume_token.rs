//! The resume token of an interrupted purge: everything a later run needs
//! to continue it, in one line an operator can copy.
//!
//! `v1~{purge|dry}~{tenant}~{family|all}~{cursor}~{scanned}~{deleted}`. The
//! cursor is Redis's `ZSCAN` cursor over the tenant's key index (see
//! `redis_cache::PurgeCursor`), so the token stays valid in another process
//! as long as the same Redis holds the index; the counts carry the totals
//! over. `~` never occurs in an id, so the fields split unambiguously.

use std::fmt;

use redis_cache::PurgeCursor;
use shared_types::TenantId;

use crate::cli::Family;
use crate::error::AdminError;

/// Where an interrupted purge stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResumeToken {
    /// Counting only (`--dry-run`), deleting nothing.
    pub(crate) dry_run: bool,
    pub(crate) tenant: TenantId,
    /// One family of the tenant's cached data, or all of it.
    pub(crate) family: Option<Family>,
    /// The next page to read.
    pub(crate) cursor: PurgeCursor,
    /// Index entries read so far.
    pub(crate) scanned: u64,
    /// Keys deleted so far.
    pub(crate) deleted: u64,
}

impl fmt::Display for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v1~{}~{}~{}~{}~{}~{}",
            if self.dry_run { "dry" } else { "purge" },
            self.tenant,
            self.family.map_or("all", Family::name),
            self.cursor,
            self.scanned,
            self.deleted
        )
    }
}

impl ResumeToken {
    /// Reads a token as [`Display`](fmt::Display) writes it.
    pub(crate) fn parse(token: &str) -> Result<Self, AdminError> {
        let fields: Vec<&str> = token.trim().split('~').collect();
        let [version, mode, tenant, family, cursor, scanned, deleted] = fields.as_slice() else {
            return Err(bad(
                "expected 7 fields separated by '~', as an interrupted purge prints",
            ));
        };
        if *version != "v1" {
            return Err(bad("unknown version (expected v1)"));
        }
        let dry_run = match *mode {
            "purge" => false,
            "dry" => true,
            _ => return Err(bad("the mode must be purge or dry")),
        };
        let tenant = TenantId::new(*tenant).map_err(|e| AdminError::input("--resume", &e))?;
        let family = match *family {
            "all" => None,
            name => Some(Family::from_name(name).ok_or_else(|| bad("unknown family"))?),
        };
        let number = |field: &str, what: &'static str| field.parse::<u64>().map_err(|_| bad(what));
        Ok(Self {
            dry_run,
            tenant,
            family,
            cursor: PurgeCursor::from(number(cursor, "the cursor is not a number")?),
            scanned: number(scanned, "the scanned count is not a number")?,
            deleted: number(deleted, "the deleted count is not a number")?,
        })
    }
}

fn bad(reason: &str) -> AdminError {
    AdminError::Input {
        what: "--resume token",
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A token reads back as the state it was written from.
    #[test]
    fn tokens_read_back_what_they_wrote() {
        let token = ResumeToken {
            dry_run: false,
            tenant: TenantId::new("t1.a@b").unwrap(),
            family: Some(Family::Acl),
            cursor: PurgeCursor::from(1234),
            scanned: 500,
            deleted: 498,
        };
        assert_eq!(token.to_string(), "v1~purge~t1.a@b~acl~1234~500~498");
        assert_eq!(ResumeToken::parse(&token.to_string()).unwrap(), token);
        let all = ResumeToken {
            dry_run: true,
            family: None,
            ..token
        };
        assert_eq!(ResumeToken::parse(&all.to_string()).unwrap(), all);
    }

    // Tokens that are cut, altered or made up are refused as bad input.
    #[test]
    fn damaged_tokens_are_refused_as_input() {
        for bad in [
            "",
            "v1~purge~t1~all~12~3",
            "v2~purge~t1~all~12~3~3",
            "v1~wipe~t1~all~12~3~3",
            "v1~purge~t:1~all~12~3~3",
            "v1~purge~t1~sessions~12~3~3",
            "v1~purge~t1~all~-1~3~3",
            "v1~purge~t1~all~12~x~3",
            "v1~purge~t1~all~12~3~3~extra",
        ] {
            let error = ResumeToken::parse(bad).unwrap_err();
            assert!(matches!(error, AdminError::Input { .. }), "{bad}: {error}");
        }
    }
}
