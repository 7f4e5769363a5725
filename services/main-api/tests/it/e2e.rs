//! Placeholder until the real-process suite lands.
