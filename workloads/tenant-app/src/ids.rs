//! Validation of tenant ids and record keys. Both end up in file paths and cache keys, so they
//! are restricted to characters that cannot escape a directory or alias another name.

/// Longest tenant id: 1 leading character plus up to 31 more.
pub const MAX_TENANT_LEN: usize = 32;
/// Longest record key.
pub const MAX_KEY_LEN: usize = 128;

/// A tenant id matches `[a-z0-9][a-z0-9-]{0,31}`.
pub fn is_valid_tenant(id: &str) -> bool {
    let bytes = id.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) if bytes.len() <= MAX_TENANT_LEN => {
            is_lower_alnum(*first) && rest.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// A record key matches `[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}`: no `/`, and no leading `.`, which
/// rules out `.`, `..` and hidden names, so a key is always one plain file name.
pub fn is_valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) if bytes.len() <= MAX_KEY_LEN => {
            is_key_char(*first) && *first != b'.' && rest.iter().all(|&b| is_key_char(b))
        }
        _ => false,
    }
}

/// Parses a tenant id for the command line.
pub fn parse_tenant(id: &str) -> Result<String, String> {
    if is_valid_tenant(id) {
        Ok(id.to_owned())
    } else {
        Err(format!("`{id}` is not a tenant id (expected [a-z0-9][a-z0-9-]{{0,31}})"))
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        for ok in ["a", "0", "tenant-1", "a-", &"a".repeat(32)] {
            assert!(is_valid_tenant(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a/b", "a.b", &"a".repeat(33), "ä"] {
            assert!(!is_valid_tenant(bad), "{bad}");
        }
    }

    #[test]
    fn record_keys() {
        for ok in ["k", "K-1", "a.b", "_x", "a..b", &"k".repeat(128)] {
            assert!(is_valid_key(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "%2e", &"k".repeat(129)] {
            assert!(!is_valid_key(bad), "{bad}");
        }
    }
}
