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
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes,
    }
}

pub fn tool() -> ToolInfo {
    ToolInfo {
        name: "isobench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        commit: option_env!("ISOBENCH_COMMIT").map(str::to_string).or_else(git_commit),
    }
}

/// The commit of the checkout the binary runs from, if any (best effort, no git binary needed).
fn git_commit() -> Option<String> {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let head = std::fs::read_to_string(root.join(".git/HEAD")).ok()?;
    let head = head.trim();
    match head.strip_prefix("ref: ") {
        Some(r) => {
            let loose = std::fs::read_to_string(root.join(".git").join(r)).ok();
            let packed = || {
                std::fs::read_to_string(root.join(".git/packed-refs"))
                    .ok()?
                    .lines()
                    .find(|l| l.ends_with(r))
                    .map(|l| l[..40.min(l.len())].to_string())
            };
            loose.map(|s| s.trim().to_string()).or_else(packed)
        }
        None => Some(head.to_string()),
    }
}
