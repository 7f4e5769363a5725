//! Deleting every key that matches a pattern, without blocking Redis.
//!
//! `SCAN cursor MATCH pattern COUNT n` walks the keyspace a little at a time,
//! and each page of matches is removed with one `UNLINK` (which frees memory
//! in a background thread). No command ever touches more than about `n`
//! slots of the keyspace, so other clients' commands interleave with ours;
//! `KEYS` would stop the server for the whole walk.
//!
//! SCAN returns every key that exists for the whole walk at least once, may
//! return a key twice, and may or may not return keys added meanwhile. UNLINK
//! counts only keys it actually removed, so the total is exact even with
//! duplicates, and keys written during the walk that do not match are never
//! touched.
//!
//! On a cluster every primary is scanned, concurrently, and each page's
//! UNLINKs are grouped by hash slot (see `Store::unlink_on`). The next page is
//! fetched while the current one is being unlinked.

use redis_connection::RedisOp;
use redis_connection::fred::interfaces::{ClientLike, KeysInterface};
use redis_connection::fred::types::Key;
use redis_connection::fred::types::config::{Options, Server};

use crate::error::CacheError;
use crate::store::Store;

/// Deletes every key matching `pattern`; returns how many were deleted.
pub(crate) async fn delete_pattern(
    store: &Store,
    pattern: &str,
    count: u32,
) -> Result<u64, CacheError> {
    let walks = store
        .nodes()
        .into_iter()
        .map(|node| walk_node(store, node, pattern, count));
    let mut deleted = 0;
    for result in futures::future::join_all(walks).await {
        deleted += result?;
    }
    Ok(deleted)
}

/// SCAN + UNLINK over one node (or the only server, for `None`).
async fn walk_node(
    store: &Store,
    node: Option<Server>,
    pattern: &str,
    count: u32,
) -> Result<u64, CacheError> {
    let client = store.client().clone();
    let scanner = client.with_options(&Options {
        cluster_node: node,
        fail_fast: true,
        ..Options::default()
    });
    let page = |cursor: String| async {
        let scan =
            scanner.scan_page::<(String, Vec<Key>), _, _>(cursor, pattern, Some(count), None);
        store
            .timed(RedisOp::SCAN, scan)
            .await
            .map_err(|e| store.error(&e))
    };

    let mut deleted = 0;
    let (mut cursor, mut keys) = page("0".to_owned()).await?;
    loop {
        if cursor == "0" {
            return Ok(deleted + store.unlink_on(&client, keys).await?);
        }
        // Unlink this page while the next one is fetched.
        let (unlinked, next) = tokio::join!(store.unlink_on(&client, keys), page(cursor));
        deleted += unlinked?;
        (cursor, keys) = next?;
    }
}
