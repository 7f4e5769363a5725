//! Pub/sub for cross-instance cache invalidation.
