//! A call inside a span, for the hot paths (`get`, `set`).
//!
//! `#[instrument]` on an `async fn` builds the body's future first and then
//! moves it into its `Instrumented` wrapper or into its await: a move of
//! the whole future, several KB when it holds a fred command's (measured:
//! BENCHMARKS.md, issue 15). Here the call is made inside the await, so its
//! future is built in place, and wrapped only while the span is enabled
//! (boxed then, so that the caller's future stays one size).

use std::future::Future;

use tracing::{Instrument, Span};

/// Runs `call()` inside `span`.
pub(crate) async fn in_span<F, Fut>(span: Span, call: F) -> Fut::Output
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    if span.is_disabled() {
        call().await
    } else {
        Box::pin(call().instrument(span)).await
    }
}
