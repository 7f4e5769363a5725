//! The invalidation stream's node failing over while two two-tier
//! instances run (issue 17, item 5: "cluster (stream on any node,
//! failover)").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis_cache::{CacheService, Expiry};
use shared_types::{Invalidation, RedisKey};
use test_support::{RedisCluster, wait_for};
use tokio::task::JoinHandle;

use crate::cluster::{FAILOVER, instance, scattered};
use crate::shard_key;

const TTL: Duration = Duration::from_secs(600);

/// The stream's key (the cache's `coherence/stream.rs`).
const STREAM: &str = "coherence:invalidations";

/// Whether `b` serves `key`'s old value (from its L1: Redis no longer has
/// it once the key was invalidated).
async fn serves_old(b: &CacheService, key: &RedisKey) -> bool {
    b.get::<String>(key).await.ok().flatten().as_deref() == Some("old")
}

/// A invalidates `keys` one after the other until `stop` is set, then the
/// rest; returns the keys whose invalidation A acknowledged and those it
/// answered with an error (a failover's window).
async fn invalidate_through(
    a: CacheService,
    keys: Vec<RedisKey>,
    stop: Arc<AtomicBool>,
) -> (Vec<RedisKey>, Vec<RedisKey>) {
    let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
    // Spread over the failover (one every 10 ms until it is over, then the
    // rest at once): some before, some while the replica takes over.
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    for key in keys {
        if !stop.load(Ordering::Relaxed) {
            pace.tick().await;
        }
        match a.invalidate(&Invalidation::for_key(&key).unwrap()).await {
            Ok(_) => acknowledged.push(key),
            Err(_) => failed.push(key),
        }
    }
    (acknowledged, failed)
}

/// Three primaries with a replica each, which takes over a second after
/// its primary stops answering.
async fn with_replicas() -> RedisCluster {
    RedisCluster::builder(3, 1)
        .node_timeout(Duration::from_secs(1))
        .start()
        .await
}

/// Two instances on `cluster`, and keys B holds in its L1 with the value
/// "old": the keys A will invalidate, then one nobody touches.
async fn instances_holding(
    cluster: &RedisCluster,
) -> (CacheService, CacheService, Vec<RedisKey>, RedisKey) {
    let (a, b) = (
        instance(cluster, |_| {}).await,
        instance(cluster, |_| {}).await,
    );
    let keys: Vec<RedisKey> = (0..400).map(|i| shard_key("t", &scattered(i))).collect();
    let kept = shard_key("t", "kept");
    let entries: Vec<_> = keys
        .iter()
        .chain([&kept])
        .map(|key| (key.clone(), "old".to_owned(), Expiry::After(TTL)))
        .collect();
    a.mset(&entries).await.unwrap();
    // A's writes announce themselves; B fills its L1 once it heard them
    // all (an announcement heard later would drop the fill).
    let sent = a.stats().invalidations_sent;
    wait_for("B to hear A's writes", Duration::from_secs(5), || async {
        b.stats().invalidations_received >= sent
    })
    .await;
    for key in keys.iter().chain([&kept]) {
        assert!(serves_old(&b, key).await);
    }
    let hits = b.stats().l1_hits;
    assert!(serves_old(&b, &kept).await);
    assert_eq!(b.stats().l1_hits, hits + 1, "B holds the keys in its L1");
    assert!(
        cluster
            .cmd_on_key_owner(STREAM, &["XLEN", STREAM])
            .as_int()
            .unwrap()
            > 0,
        "the stream holds A's writes"
    );
    (a, b, keys, kept)
}

/// Sends again what A answered with an error (as a caller would, once the
/// cluster serves again), then waits until B serves none of the
/// invalidated keys' old values and trusts its L1 again.
async fn b_drops_every_invalidated_key(
    a: &CacheService,
    b: &CacheService,
    acknowledged: &[RedisKey],
    failed: &[RedisKey],
) {
    for key in failed {
        wait_for("A to invalidate again", FAILOVER, || async {
            a.invalidate(&Invalidation::for_key(key).unwrap())
                .await
                .is_ok()
        })
        .await;
    }
    wait_for(
        "B to drop every invalidated key",
        Duration::from_secs(10),
        || async {
            for key in acknowledged.iter().chain(failed) {
                if serves_old(b, key).await {
                    return false;
                }
            }
            b.l1_live()
        },
    )
    .await;
    for key in acknowledged.iter().chain(failed) {
        assert!(!serves_old(b, key).await, "{key} stale on B");
    }
}

/// The task invalidating keys: what A acknowledged and what it answered
/// with an error; and the flag that ends its pacing.
type Invalidating = (JoinHandle<(Vec<RedisKey>, Vec<RedisKey>)>, Arc<AtomicBool>);

/// A invalidating `keys` (spread over what follows) from a task of its
/// own, returned once B applied the first; set the flag once the failover
/// is over.
async fn start_invalidating(
    a: &CacheService,
    b: &CacheService,
    keys: Vec<RedisKey>,
) -> Invalidating {
    let stop = Arc::new(AtomicBool::new(false));
    let invalidating = tokio::spawn(invalidate_through(a.clone(), keys, stop.clone()));
    wait_for(
        "A to invalidate a first key",
        Duration::from_secs(5),
        || async { b.stats().invalidations_applied > 0 },
    )
    .await;
    (invalidating, stop)
}

/// Once `promoted` took over the stream: what A acknowledged, and what it
/// sent again after an error, is applied on B (see
/// [`b_drops_every_invalidated_key`]).
async fn finish_invalidating(
    cluster: &RedisCluster,
    (a, b): (&CacheService, &CacheService),
    (invalidating, stop): Invalidating,
    promoted: u16,
) {
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed) = invalidating.await.unwrap();
    assert_eq!(cluster.node_for_key(STREAM), promoted);
    assert!(!acknowledged.is_empty());
    b_drops_every_invalidated_key(a, b, &acknowledged, &failed).await;
}

// A coordinated failover of the primary holding the invalidation stream,
// with A invalidating keys B holds in its L1 before, during and after it:
// the replica takes the stream over whole (a coordinated failover loses no
// acknowledged write), so B applies every acknowledged invalidation (live
// or replayed) without flushing its L1, serves none of those keys' old
// values, and keeps the key nobody touched. Invalidations A answered with
// an error are sent again, as a caller would, and applied too.
#[tokio::test]
async fn a_coordinated_failover_of_the_streams_node_keeps_every_invalidation() {
    let cluster = with_replicas().await;
    let (a, b, keys, kept) = instances_holding(&cluster).await;
    let invalidating = start_invalidating(&a, &b, keys).await;
    let stream_node = cluster.node_for_key(STREAM);
    let promoted = cluster.failover(stream_node).await;
    finish_invalidating(&cluster, (&a, &b), invalidating, promoted).await;

    let stats = b.stats();
    assert_eq!(stats.l1_flushes, 0, "the stream survived: {stats:?}");
    let hits = stats.l1_hits;
    assert!(serves_old(&b, &kept).await);
    assert_eq!(b.stats().l1_hits, hits + 1, "B kept the untouched key");
}

// The primary holding the stream crashes (killed) while A invalidates, and
// its replica is promoted. Replication is asynchronous, so the replica may
// lack the stream's last entries; what is correct either way: every
// invalidation A acknowledged (or sent again after an error) is applied on
// B, which serves none of the old values; B replays what the stream still
// holds and flushes its L1 when it cannot (its last entry lost, or the
// stream unreadable while the cluster had no primary for its slot).
#[tokio::test]
async fn a_crash_of_the_streams_node_loses_no_acknowledged_invalidation() {
    let mut cluster = with_replicas().await;
    let (a, b, keys, kept) = instances_holding(&cluster).await;
    let invalidating = start_invalidating(&a, &b, keys).await;
    let stream_node = cluster.node_for_key(STREAM);
    cluster.stop_node(stream_node);
    // B's subscription is lost too, wherever it was: what A publishes
    // meanwhile B only gets back from the stream, on the promoted replica.
    for port in cluster.ports().into_iter().filter(|p| *p != stream_node) {
        cluster.node_cmd(port, &["CLIENT", "KILL", "TYPE", "pubsub"]);
    }
    let promoted = cluster.failover(stream_node).await;
    finish_invalidating(&cluster, (&a, &b), invalidating, promoted).await;

    let stats = b.stats();
    // B caught up after losing its subscription: a replay, or a flush if
    // the stream lost its place; the untouched key is then served from the
    // L1 if it was kept, else read through.
    assert!(stats.l1_replays + stats.l1_flushes >= 1, "{stats:?}");
    let hits = stats.l1_hits;
    assert!(serves_old(&b, &kept).await);
    let from_l1 = b.stats().l1_hits == hits + 1;
    assert_eq!(from_l1, stats.l1_flushes == 0, "{stats:?}");
}
