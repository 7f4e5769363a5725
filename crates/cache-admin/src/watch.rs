//! `watch`: a live tail of the invalidation bus (`cache:invalidate:*`),
//! each message decoded the way every instance reads it: the channel says
//! what is invalidated, a payload of ours says which instance sent it.
//!
//! A session's invalidation names the session by its token's hash; only
//! its first 8 hex digits are printed, enough to tell two apart.

use std::time::{SystemTime, UNIX_EPOCH};

use redis_cache::{InvalidationEvent, Invalidations, ReceivedInvalidation, Sender};
use serde::Serialize;
use shared_types::{Invalidation, TenantId};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli;
use crate::connect::Settings;
use crate::error::AdminError;
use crate::output::{Output, note};

/// One invalidation as printed.
#[derive(Debug, Serialize)]
struct Line<'a> {
    /// When this process received it, in ms since the Unix epoch.
    received_ms: u64,
    kind: &'static str,
    tenant: &'a str,
    /// The channel's type (`shard`, `user`, `acl`, `vsearch`, `tenant`, `session`).
    r#type: &'static str,
    /// The channel's id (`*` for a whole family; a session's hash shortened).
    id: String,
    /// The sending instance's origin, for a payload of ours.
    origin: Option<&'a str>,
    /// Why the payload was not taken as ours, for anyone else's.
    foreign: Option<&'static str>,
}

/// Runs `watch` until Ctrl-C, or until `count` invalidations were printed.
pub(crate) async fn run(
    settings: &Settings,
    output: Output,
    tenant: Option<&str>,
    count: Option<u64>,
) -> Result<(), AdminError> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let tenant = tenant.map(cli::tenant).transpose()?;
    let pubsub = settings.pubsub().await?;
    let mut feed = pubsub.invalidations().await?;
    let mut printed = 0;
    loop {
        let event = tokio::select! {
            _ = interrupt.recv() => return Ok(()),
            event = feed.recv() => event,
        };
        match event {
            None => return Ok(()),
            Some(InvalidationEvent::Subscribed) => {
                note("watching cache:invalidate:* (Ctrl-C to stop)");
            }
            Some(InvalidationEvent::Disconnected) => {
                note("the bus disconnected: invalidations are missed until it is back");
            }
            Some(InvalidationEvent::Lagged { missed }) => {
                note(&format!("fell behind: {missed} invalidations were skipped"));
            }
            Some(InvalidationEvent::Received(received)) => {
                if !wanted(&received.invalidation, tenant.as_ref()) {
                    continue;
                }
                print(output, &received)?;
                printed += 1;
                if count.is_some_and(|count| printed >= count) {
                    return Ok(());
                }
            }
            Some(InvalidationEvent::Unreadable(unreadable)) => {
                if tenant.as_ref().is_none_or(|t| *t == unreadable.tenant_id) {
                    note(&format!(
                        "tenant={}: an invalidation from a newer version of the layer could not be decoded ({:?})",
                        unreadable.tenant_id, unreadable.reason
                    ));
                }
            }
            // Events of a newer redis-pubsub: nothing to show.
            Some(_) => {}
        }
    }
}

/// Whether the filter lets `invalidation` through (ids are compared whole:
/// `t1` never matches `t10`).
fn wanted(invalidation: &Invalidation, tenant: Option<&TenantId>) -> bool {
    tenant.is_none_or(|tenant| invalidation.tenant() == tenant)
}

fn print(output: Output, received: &ReceivedInvalidation) -> Result<(), AdminError> {
    let invalidation = &received.invalidation;
    let mut id = invalidation.channel_id();
    if matches!(invalidation, Invalidation::Session { .. }) {
        id.truncate(8);
        id.push_str("...");
    }
    let (origin, foreign) = match &received.sender {
        Sender::Instance { origin, .. } => (Some(origin.as_str()), None),
        Sender::Foreign { reason } => (None, Some(*reason)),
    };
    let line = Line {
        received_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        kind: invalidation.kind(),
        tenant: invalidation.tenant().as_str(),
        r#type: invalidation.channel_type(),
        id,
        origin,
        foreign,
    };
    let text = format!(
        "{} {:<13} tenant={} id={} from={}",
        line.received_ms,
        line.kind,
        line.tenant,
        line.id,
        line.origin.map_or_else(
            || format!("foreign ({})", line.foreign.unwrap_or("?")),
            str::to_owned
        )
    );
    output.result(&line, &text)
}
