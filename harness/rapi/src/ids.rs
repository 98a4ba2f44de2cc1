//! Identifiers Lambda generates: request ids, X-Ray trace headers, invocation nonces, log streams.

use std::time::{SystemTime, UNIX_EPOCH};

/// A random version-4 UUID in the usual `8-4-4-4-12` lowercase form, the shape of Lambda's request
/// ids (e.g. `8476a536-e9f4-11e8-9739-2dfe598c3fcd` in the guide).
pub fn new_request_id() -> String {
    let mut v: u128 = rand::random();
    v = (v & !(0xF << 76)) | (0x4 << 76); // version 4
    v = (v & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        v >> 96,
        (v >> 80) & 0xffff,
        (v >> 64) & 0xffff,
        (v >> 48) & 0xffff,
        v & 0xffff_ffff_ffff
    )
}

/// An X-Ray tracing header as Lambda passes it (`Root=1-<epoch hex>-<96 random bits>;Parent=...;
/// Sampled=0`).
pub(crate) fn new_trace_header() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let r: u128 = rand::random();
    format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        secs as u32,
        (r >> 32) & ((1u128 << 96) - 1),
        (r as u64) ^ rand::random::<u64>()
    )
}

/// A per-invoke nonce for the `Lambda-Runtime-Invocation-Id` header.
pub(crate) fn new_invocation_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Whether `id` can be used as a request id: it travels in a URL path segment and a header, so it
/// is limited to RFC 3986 unreserved characters.
pub(crate) fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `id` is a UUID in the `8-4-4-4-12` hex form: RIE refuses any other
/// `Lambda-Extension-Identifier` with `Extension.InvalidExtensionIdentifier`.
pub(crate) fn valid_uuid(id: &str) -> bool {
    id.len() == 36
        && id
            .bytes()
            .enumerate()
            .all(|(i, b)| if [8, 13, 18, 23].contains(&i) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// A log stream name in Lambda's `YYYY/MM/DD/[version]<32 hex>` form.
pub(crate) fn new_log_stream_name(version: &str) -> String {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}/{m:02}/{d:02}/[{version}]{:032x}", rand::random::<u128>())
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_v4_uuids_and_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'), "{a}");
        assert!("89ab".contains(&parts[3][..1]), "{a}");
        assert!(valid_request_id(&a));
    }

    #[test]
    fn trace_header_has_the_xray_shape() {
        let t = new_trace_header();
        let (root, rest) = t.split_once(';').unwrap();
        let root = root.strip_prefix("Root=1-").unwrap();
        let (time, id) = root.split_once('-').unwrap();
        assert_eq!((time.len(), id.len()), (8, 24), "{t}");
        assert!(rest.starts_with("Parent=") && rest.ends_with(";Sampled=0"), "{t}");
    }

    #[test]
    fn request_id_validation_rejects_path_breakers() {
        for bad in ["", "a/b", "a b", "a?b", "é", "a%2F"] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
        assert!(valid_request_id("tenant-a.req_1~x"));
    }

    #[test]
    fn uuid_validation() {
        assert!(valid_uuid(&new_request_id()));
        assert!(valid_uuid("A1B2C3D4-5678-90ab-cdef-000000000000"));
        for bad in ["", "not-a-uuid", "a1b2c3d4567890abcdef000000000000", "g1b2c3d4-5678-90ab-cdef-000000000000"] {
            assert!(!valid_uuid(bad), "{bad:?}");
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
    }
}
