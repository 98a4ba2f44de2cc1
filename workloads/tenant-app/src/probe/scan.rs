//! Finding canaries in bytes. The agent never interprets a canary: a sweep returns every
//! substring that *is* one — `isobench-canary:v1:` followed by 1 to 200 characters of
//! `[A-Za-z0-9._:-]` — exactly, once, and nothing that merely contains one.
//!
//! A match is the prefix plus the maximal run of allowed characters after it. A run longer
//! than 200 characters is not a canary and is skipped whole (never cut down to a partial
//! token), and scanning resumes after the run, so matches never overlap.

use std::collections::HashSet;

/// What every canary starts with.
pub const CANARY_PREFIX: &str = "isobench-canary:v1:";
/// Most characters after the prefix.
pub const MAX_CANARY_SUFFIX: usize = 200;
/// Most tokens one sweep returns; beyond it the sweep says `found_truncated`.
pub const MAX_FOUND: usize = 10_000;
/// What a principal token found by the `cred` channel starts with.
pub const PRINCIPAL_PREFIX: &str = "isobench-principal:";

/// A character allowed after the prefix.
pub fn is_canary_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

/// Whether `s` is exactly one canary.
pub fn is_canary(s: &str) -> bool {
    s.as_bytes().strip_prefix(CANARY_PREFIX.as_bytes()).is_some_and(|suffix| {
        (1..=MAX_CANARY_SUFFIX).contains(&suffix.len()) && suffix.iter().all(|&b| is_canary_char(b))
    })
}

/// Every canary in `haystack`, in order, duplicates included.
pub fn canaries(haystack: &[u8]) -> Canaries<'_> {
    Canaries { haystack, pos: 0 }
}

/// Iterator returned by [`canaries`].
#[derive(Debug, Clone)]
pub struct Canaries<'a> {
    haystack: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Canaries<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let prefix = CANARY_PREFIX.as_bytes();
        loop {
            let start = self.pos + find(&self.haystack[self.pos..], prefix)?;
            let suffix = start + prefix.len();
            let run = self.haystack[suffix..].iter().take_while(|&&b| is_canary_char(b)).count();
            self.pos = suffix + run;
            if (1..=MAX_CANARY_SUFFIX).contains(&run) {
                // Only ASCII bytes were taken.
                return std::str::from_utf8(&self.haystack[start..self.pos]).ok();
            }
        }
    }
}

/// The first position of `needle` (non-empty) in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from + haystack[from..=haystack.len() - needle.len()].iter().position(|&b| b == first)?;
        if haystack[at + 1..at + needle.len()] == *rest {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The tokens a sweep found: deduplicated, in the order first seen, at most [`MAX_FOUND`].
#[derive(Debug, Default)]
pub struct Found {
    tokens: Vec<String>,
    seen: HashSet<String>,
    truncated: bool,
}

impl Found {
    pub fn new() -> Found {
        Found::default()
    }

    /// Adds every canary in `bytes`; returns how many occurrences there were (new or not).
    pub fn scan(&mut self, bytes: &[u8]) -> usize {
        canaries(bytes).map(|token| self.add(token)).count()
    }

    /// Adds one token (a canary or a principal) unless already there or the list is full.
    pub fn add(&mut self, token: &str) {
        if self.seen.contains(token) {
            return;
        }
        if self.tokens.len() >= MAX_FOUND {
            self.truncated = true;
            return;
        }
        self.seen.insert(token.to_owned());
        self.tokens.push(token.to_owned());
    }

    /// Whether a distinct token was dropped because the list was full.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    pub fn into_tokens(self) -> Vec<String> {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(haystack: &str) -> Vec<&str> {
        canaries(haystack.as_bytes()).collect()
    }

    #[test]
    fn extracts_exact_tokens() {
        let c = "isobench-canary:v1:run1:acme:tmp:0:0123456789abcdef0123456789abcdef";
        assert!(is_canary(c));
        assert_eq!(all(c), [c]);
        // Surrounded by separators that are not canary characters.
        assert_eq!(all(&format!("A={c}\0B=x\n{c} \"{c}\"")), [c, c, c]);
        // A preceding canary character does not matter: the token starts at the prefix.
        assert_eq!(all(&format!("xx{c}")), [c]);
        // Two different ones, and the shortest and longest allowed.
        let short = "isobench-canary:v1:a";
        let long = format!("isobench-canary:v1:{}", "Z".repeat(200));
        assert_eq!(all(&format!("{short}/{long}/")), [short, long.as_str()]);
        assert!(is_canary(short) && is_canary(&long));
    }

    #[test]
    fn no_partial_or_overlapping_matches() {
        // Nothing after the prefix, or a disallowed character right after it.
        assert!(all("isobench-canary:v1:").is_empty());
        assert!(all("isobench-canary:v1: x isobench-canary:v1:/x").is_empty());
        // Too long: skipped whole, not cut to 200 characters.
        let too_long = format!("isobench-canary:v1:{}", "a".repeat(201));
        assert!(all(&too_long).is_empty());
        assert!(!is_canary(&too_long));
        // Glued together, the run is one token (the second prefix is part of it), not two.
        let glued = "isobench-canary:v1:aaaisobench-canary:v1:bbb";
        assert_eq!(all(glued), [glued]);
        // Other versions, truncated prefixes and case differences are not canaries.
        assert!(all("isobench-canary:v2:abc isobench-canary:v1 ISOBENCH-CANARY:v1:abc isobench-canar").is_empty());
        // Non-UTF-8 around a canary.
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend_from_slice(b"isobench-canary:v1:k\xff");
        assert_eq!(canaries(&bytes).collect::<Vec<_>>(), ["isobench-canary:v1:k"]);
        assert!(!is_canary("isobench-canary:v1:a b") && !is_canary("xisobench-canary:v1:a"));
    }

    #[test]
    fn found_deduplicates_and_caps() {
        let mut found = Found::new();
        assert_eq!(found.scan(b"isobench-canary:v1:a isobench-canary:v1:b isobench-canary:v1:a"), 3);
        assert_eq!(found.tokens(), ["isobench-canary:v1:a", "isobench-canary:v1:b"]);
        found.add("isobench-principal:AKIA1");
        assert_eq!(found.tokens().len(), 3);
        for i in 0..MAX_FOUND {
            found.add(&format!("isobench-canary:v1:{i}"));
        }
        assert_eq!(found.tokens().len(), MAX_FOUND);
        assert!(found.truncated());
        // Adding one already there is not a truncation.
        let mut full = Found::new();
        (0..MAX_FOUND).for_each(|i| full.add(&i.to_string()));
        full.add("0");
        assert!(!full.truncated());
    }
}
