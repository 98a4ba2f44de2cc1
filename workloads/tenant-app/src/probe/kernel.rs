//! `kernel`: which kernel this code runs on, by the fingerprints Wang et al. used to find
//! co-resident functions ("Peeking Behind the Curtains of Serverless Platforms", USENIX ATC
//! 2018): the boot id, the boot time from `/proc/stat` and the kernel release. Nothing is
//! planted or found; the harness compares two tenants' fingerprints: equal ones mean one
//! kernel under both.

use serde_json::{Value, json};

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
const STAT: &str = "/proc/stat";
const RELEASE: &str = "/proc/sys/kernel/osrelease";

/// The fingerprint; a field that could not be read is `null`.
pub fn sweep() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
    let btime = read(STAT).and_then(|stat| btime(&stat));
    json!({ "boot_id": read(BOOT_ID), "btime": btime, "release": read(RELEASE) })
}

/// The `btime` line of `/proc/stat`: boot time, seconds since the epoch.
fn btime(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btime_is_read_from_proc_stat() {
        assert_eq!(btime("cpu 1 2 3\nbtime 1733450000\nprocesses 9\n"), Some(1_733_450_000));
        assert_eq!(btime("cpu 1 2 3\n"), None);
    }

    #[test]
    fn this_host_has_a_fingerprint() {
        let f = sweep();
        assert_eq!(f["boot_id"].as_str().map(str::len), Some(36), "{f}");
        assert!(f["btime"].as_u64().is_some() && f["release"].is_string(), "{f}");
    }
}
