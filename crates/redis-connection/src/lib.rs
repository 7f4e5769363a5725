//! Connection manager on fred: retry with backoff, pooling, lifecycle, health checks.
