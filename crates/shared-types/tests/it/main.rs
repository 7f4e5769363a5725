//! Integration and property tests of shared-types.

mod channels;
mod glob_vs_redis;
mod ids;
mod isolation;
mod strategies;
