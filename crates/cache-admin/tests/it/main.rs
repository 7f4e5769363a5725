//! The `cache-admin` binary run as a real process against a real
//! `redis-server` (one per test, on a free port).

mod bad_input;
mod commands;
mod purge;
mod support;
mod watch;
