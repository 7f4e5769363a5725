//! Typed JSON cache over Redis, with an optional in-process L1.
