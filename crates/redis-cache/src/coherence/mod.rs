//! Cache coherence: how a change made by one instance reaches every other
//! instance's L1 (ARCHITECTURE.md, "The two-tier cache: how an
//! invalidation travels").
//!
//! Here so far:
//! - announcing a change with its write ([`atomic_write`]: one script for
//!   a change of one key, on a single server and on a cluster;
//!   [`batch`]: an `mset`'s, in its scripts on a single server;
//!   [`announce`]: after the change's reply where no script can hold both,
//!   and whatever the outcome; [`announcer`]: concurrent changes of single
//!   keys on a single server, one script a batch);
//! - the invalidation stream every announcement is appended to, in the
//!   script that publishes it ([`stream`]);
//! - applying remote changes to the L1 ([`listener`]), and on a gap (a
//!   resubscribe, a lag, a message whose predecessor in the stream is not
//!   the last one applied) replaying the stream from the last applied
//!   entry, flushing only when the stream no longer holds it ([`replay`]);
//! - waking `get_or_load` calls that wait for another instance's load of
//!   their key when its announcement (or anything that may hide one)
//!   arrives ([`lease_wait`]).
//!
//! - the wire format with its version ([`wire`]), reading a received
//!   message ([`received`]), the feed of every invalidation ([`feed`]) and
//!   the typed `invalidate` over a [`PubSub`](redis_pubsub::PubSub)
//!   ([`publisher`]): redis-pubsub only carries the bytes.
//!
//! Still elsewhere: the epochs against resurrection (`l1/mod.rs`, which
//! they guard).

mod announce;
mod announcer;
mod atomic_write;
mod batch;
mod feed;
pub(crate) mod lease_wait;
pub(crate) mod listener;
mod publisher;
mod received;
mod replay;
mod stream;
pub(crate) mod wire;

pub(crate) use announcer::{Announcer, announcer};
pub(crate) use atomic_write::KeyChange;
pub(crate) use batch::Messages;
pub(crate) use feed::FeedCounters;
pub use feed::{FeedStats, InvalidationEvent, InvalidationFeed};
pub use publisher::{InvalidationPublisher, Invalidations};
pub use received::{
    ReceivedInvalidation, Sender, StreamPosition, Unreadable, UnreadableInvalidation,
};
pub(crate) use stream::{INVALIDATION_STREAM, retention_args, stream_fn};
pub use wire::{InvalidationMessage, MAX_INVALIDATION_PAYLOAD, WIRE_VERSION};
