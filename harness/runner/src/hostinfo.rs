//! Facts about the machine a run happened on, recorded in every summary.

use isobench_results::{HostInfo, ToolInfo};

pub fn host() -> HostInfo {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let memory_bytes = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    HostInfo {
        hostname: read("/proc/sys/kernel/hostname"),
        kernel: read("/proc/sys/kernel/osrelease"),
        os,
        arch: std::env::consts::ARCH.to_string(),
        cpus: cpus(),
        memory_bytes,
        load_at_start: None,
        load_at_end: load_average(),
    }
}

/// The CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut f = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([f.next()??, f.next()??, f.next()??])
}

/// What `isobench --version` prints: the version, the commit and whether the tree the binary
/// was built from had uncommitted changes (captured at build time by `build.rs`).
pub const VERSION: &str = env!("ISOBENCH_BUILD_VERSION");

/// The commit the binary was built from, if known.
pub fn build_commit() -> Option<&'static str> {
    Some(env!("ISOBENCH_BUILD_COMMIT")).filter(|c| !c.is_empty())
}

/// Whether the tree had uncommitted changes at build time; `None` when git could not tell.
pub fn build_dirty() -> Option<bool> {
    match env!("ISOBENCH_BUILD_TREE") {
        "dirty" => Some(true),
        "clean" => Some(false),
        _ => None,
    }
}

pub fn tool() -> ToolInfo {
    ToolInfo {
        name: "isobench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        commit: build_commit().map(str::to_string),
        dirty: build_dirty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_commit_is_a_full_hash_and_the_version_names_it() {
        let Some(c) = build_commit() else {
            assert!(VERSION.contains("commit unknown"), "{VERSION}");
            return;
        };
        assert!(c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()), "{c}");
        assert!(VERSION.contains(c), "{VERSION}");
        assert_eq!(VERSION.contains("uncommitted"), build_dirty() == Some(true), "{VERSION}");
    }
}
