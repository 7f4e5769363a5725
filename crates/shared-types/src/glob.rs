//! Redis glob matching, with the exact semantics of Redis's `stringmatchlen`.
//!
//! Redis matches `SCAN MATCH`, `KEYS` and `PSUBSCRIBE` patterns with these
//! rules, and we need the same answer in-process: to evict L1 entries covered by
//! a pattern invalidation, to tell which pattern a `pmessage` matched (fred drops
//! it), and in tests that prove no key of one tenant matches a pattern of
//! another.
//!
//! - `*` matches any run of bytes (including none), `?` exactly one byte;
//! - `[abc]`, `[a-z]` (reversed ranges are swapped), `[^...]` negates;
//!   `\` escapes inside a class; an unterminated class ends at the pattern's end;
//! - `\x` matches `x` literally;
//! - an empty subject matches only the empty pattern (`KEYS *` and `SCAN`
//!   special-case a lone `*` before calling the matcher; we never need that).

/// Whether `subject` matches the Redis glob `pattern` (case-sensitive).
pub fn glob_match(pattern: &str, subject: &str) -> bool {
    glob_match_bytes(pattern.as_bytes(), subject.as_bytes())
}

/// [`glob_match`] on raw bytes (Redis keys and channels are byte strings).
pub fn glob_match_bytes(pattern: &[u8], subject: &[u8]) -> bool {
    let mut give_up = false;
    match_from(pattern, subject, &mut give_up)
}

/// One step of the matcher. `give_up` is Redis's `skipLongerMatches`: once a
/// `*` has tried every suffix of the subject without success, no outer `*`
/// can succeed by consuming more, which keeps patterns like `*a*a*a*b`
/// linear instead of exponential.
fn match_from(p: &[u8], s: &[u8], give_up: &mut bool) -> bool {
    let (mut pi, mut si) = (0, 0);
    while pi < p.len() && si < s.len() {
        match p[pi] {
            b'*' => {
                while pi + 1 < p.len() && p[pi + 1] == b'*' {
                    pi += 1;
                }
                if pi + 1 == p.len() {
                    return true;
                }
                while si < s.len() {
                    if match_from(&p[pi + 1..], &s[si..], give_up) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    si += 1;
                }
                *give_up = true;
                return false;
            }
            b'?' => si += 1,
            b'[' => {
                let (matched, end) = match_class(p, pi + 1, s[si]);
                if !matched {
                    return false;
                }
                pi = end;
                si += 1;
            }
            b'\\' => {
                if p.len() - pi >= 2 {
                    pi += 1;
                }
                if p[pi] != s[si] {
                    return false;
                }
                si += 1;
            }
            literal => {
                if literal != s[si] {
                    return false;
                }
                si += 1;
            }
        }
        pi += 1;
        if si == s.len() {
            while pi < p.len() && p[pi] == b'*' {
                pi += 1;
            }
            break;
        }
    }
    pi == p.len() && si == s.len()
}

/// Matches byte `c` against the class starting at `p[start]` (just after `[`).
/// Returns whether it matched and the index of the class's last pattern byte
/// (the `]`, or the pattern's last byte when the class is unterminated).
fn match_class(p: &[u8], start: usize, c: u8) -> (bool, usize) {
    let mut pi = start;
    let negate = pi < p.len() && p[pi] == b'^';
    if negate {
        pi += 1;
    }
    let mut matched = false;
    loop {
        if pi >= p.len() {
            // Unterminated class: Redis treats the pattern's end as its end.
            pi -= 1;
            break;
        }
        if p[pi] == b'\\' && p.len() - pi >= 2 {
            pi += 1;
            matched |= p[pi] == c;
        } else if p[pi] == b']' {
            break;
        } else if p.len() - pi >= 3 && p[pi + 1] == b'-' {
            let (lo, hi) = (p[pi].min(p[pi + 2]), p[pi].max(p[pi + 2]));
            pi += 2;
            matched |= (lo..=hi).contains(&c);
        } else {
            matched |= p[pi] == c;
        }
        pi += 1;
    }
    (matched != negate, pi)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    // Cases taken from Redis's documented KEYS/PSUBSCRIBE behaviour.
    #[test]
    fn glob_matches_as_redis_keys_and_psubscribe_do() {
        let cases: &[(&str, &str, bool)] = &[
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "hllo", true),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hello", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("h[\\]]llo", "h]llo", true),
            // stringmatchlen never matches an empty subject against a non-empty
            // pattern (only KEYS/SCAN special-case a lone "*").
            ("*", "", false),
            ("", "", true),
            ("", "a", false),
            ("a*", "a", true),
            ("a**", "a", true),
            ("tenant:a:*", "tenant:a:shard:s:structured", true),
            ("tenant:a:*", "tenant:ab:shard:s:structured", false),
            ("tenant:t:acl:*:s1", "tenant:t:acl:u1:s1", true),
            ("tenant:t:acl:*:s1", "tenant:t:acl:u1:s12", false),
            ("[abc", "b", true),
            ("[", "a", false),
            ("a\\", "a\\", true),
        ];
        for &(pattern, subject, expected) in cases {
            assert_eq!(
                glob_match(pattern, subject),
                expected,
                "pattern {pattern:?} subject {subject:?}"
            );
        }
    }

    // A pathological pattern finishes quickly thanks to the give-up rule.
    #[test]
    fn no_exponential_backtracking() {
        let pattern = "*a".repeat(30) + "b";
        let subject = "a".repeat(5000);
        assert!(!glob_match(&pattern, &subject));
    }
}
