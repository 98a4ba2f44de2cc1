//! Run ids: sortable and unique, so results directories and the resources of concurrent runs
//! never collide.

use std::time::{Duration, SystemTime};

/// UTC time plus random bits, e.g. `20261129T051500Z-3fa9c2`.
pub fn new_run_id() -> String {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let stamp = humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs()))
        .to_string()
        .replace(['-', ':'], "");
    let mut buf = [0u8; 3];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf));
    let salt = u32::from_le_bytes([buf[0], buf[1], buf[2], 0]) ^ now.subsec_nanos() ^ std::process::id();
    format!("{}-{:06x}", stamp.trim_end_matches('Z').to_string() + "Z", salt & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_sort_by_time_and_differ() {
        let (a, b) = (super::new_run_id(), super::new_run_id());
        assert_eq!(a.len(), "20261129T051500Z-3fa9c2".len(), "{a}");
        assert!(a.as_bytes()[8] == b'T' && a.contains("Z-"), "{a}");
        assert_ne!(a, b);
    }
}
