//! Cache coherence: how a change made by one instance reaches every other
//! instance's L1 (ARCHITECTURE.md, "The two-tier cache: how an
//! invalidation travels").
//!
//! Here so far: announcing a change with its write
//! ([`atomic_write`]: one script on a single server, and for single-key
//! changes on a cluster; [`announce`]: after the change's reply where no
//! script can hold both, and whatever the outcome). Still elsewhere (issue
//! 17, item 1, to move here): applying remote changes (`listener.rs`), the
//! epochs against resurrection (`l1/`), what to do on gaps (flushing on a
//! resubscribe or lag, `listener.rs`), and the wire format
//! (redis-pubsub's `wire.rs`).

mod announce;
mod atomic_write;

pub(crate) use atomic_write::KeyChange;
