//! The pub/sub transport knows no message format (ARCHITECTURE.md,
//! "Invariants"): redis-pubsub subscribes, publishes bytes and resubscribes;
//! what an invalidation message says (its channel names, its payload, its
//! version) is redis-cache's `src/coherence/`. A redis-pubsub source file
//! that names the invalidation vocabulary in code has taken part of the
//! format back, and two crates would again have to change together.

use std::fs;
use std::path::Path;

use crate::cmd::{Result, workspace_root};
use crate::tidy::has_word;

/// The transport's code, from the workspace root (its tests may publish
/// on any channel they like).
const TRANSPORT_SRC: &str = "crates/redis-pubsub/src";

/// Names that belong to the invalidation format, as whole words.
const FORMAT_WORDS: &[&str] = &["Invalidation", "InvalidationMessage", "Scope"];

/// What the transport may take from shared-types: its glob matcher (for
/// pattern subscriptions), nothing of the invalidation vocabulary (its
/// channel prefix and pattern constants included).
const SHARED_TYPES_ALLOWED: &str = "glob_match";

/// The channel prefix, as text: a channel name spelt out is the format too.
const FORMAT_TEXT: &str = "cache:invalidate:";

/// Every line of the transport's code that names the message format.
pub(crate) fn check() -> Result<Vec<String>> {
    println!("$ (check) redis-pubsub names no message format");
    let root = workspace_root();
    let mut found = Vec::new();
    let is_rust = |path: &Path| path.extension().is_some_and(|e| e == "rs");
    crate::test_names::files_under(&root.join(TRANSPORT_SRC), &is_rust, &mut found)?;
    found.sort();
    let mut problems = Vec::new();
    for path in &found {
        let text = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let relative = path.strip_prefix(&root).unwrap_or(path).display();
        for line in lines_naming_the_format(&text) {
            problems.push(format!(
                "{relative}:{line} names the invalidation format in the transport \
                 (ARCHITECTURE.md, Invariants; it belongs in redis-cache's coherence)"
            ));
        }
    }
    Ok(problems)
}

/// The 1-based lines of `source` that name the format in code, before any
/// `#[cfg(test)]` module (unit tests may use any channel). Comments, which
/// may say what the transport carries, do not count.
fn lines_naming_the_format(source: &str) -> Vec<usize> {
    source
        .lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            let shared_types =
                has_word(code, "shared_types") && !has_word(code, SHARED_TYPES_ALLOWED);
            shared_types
                || code.contains(FORMAT_TEXT)
                || FORMAT_WORDS.iter().any(|word| has_word(code, word))
        })
        .map(|(index, _)| index + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // An invalidation type, anything of shared-types but its glob matcher,
    // or a channel name spelt out in code is found with its line; in a
    // comment, in a longer word, or in a unit test module it is not.
    #[test]
    fn the_format_named_in_transport_code_is_found_and_elsewhere_is_not() {
        let source = "use shared_types::Invalidation;\n\
                      // carries cache:invalidate:* messages for redis-cache\n\
                      let feed = InvalidationFeedLike::new();\n\
                      let p = \"cache:invalidate:*\";\n\
                      let v = shared_types::CHANNEL_PREFIX; // Invalidation\n\
                      use shared_types::glob_match;\n\
                      #[cfg(test)]\n\
                      let t = Invalidation::Tenant;\n";
        assert_eq!(lines_naming_the_format(source), vec![1, 4, 5]);
    }

    // The workspace as it stands keeps the format out of the transport.
    #[test]
    fn the_workspace_keeps_the_message_format_out_of_redis_pubsub() {
        let problems = check().unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
