//! Kernel fingerprints (Wang et al., ATC'18): boot id, boot time and release. Two tenants with
//! equal fingerprints run on one kernel; a tenant whose fingerprint is the harness's own runs
//! on this host's kernel, which says something about the emulator, not about AWS.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub boot_id: String,
    pub btime: u64,
    pub release: String,
}

/// A sweep's `detail`; `None` when any part is missing.
pub fn from_detail(detail: &Value) -> Option<Fingerprint> {
    Some(Fingerprint {
        boot_id: detail["boot_id"].as_str()?.to_owned(),
        btime: detail["btime"].as_u64()?,
        release: detail["release"].as_str()?.to_owned(),
    })
}

/// The kernel the harness runs on.
pub fn host() -> Option<Fingerprint> {
    let read = |path: &str| std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
    let btime = read("/proc/stat")?.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    Some(Fingerprint {
        boot_id: read("/proc/sys/kernel/random/boot_id")?,
        btime,
        release: read("/proc/sys/kernel/osrelease")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fingerprints_read_complete_or_not_at_all() {
        let d = json!({"boot_id": "b", "btime": 17, "release": "6.1"});
        assert_eq!(from_detail(&d), Some(Fingerprint { boot_id: "b".into(), btime: 17, release: "6.1".into() }));
        assert_eq!(from_detail(&json!({"boot_id": "b", "btime": null, "release": "6.1"})), None);
        assert!(host().is_some_and(|h| h.boot_id.len() == 36));
    }
}
