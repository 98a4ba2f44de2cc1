//! What a run left on the host, found by enumerating the host (never from the harness's own
//! records): the checks behind "nothing a run creates outlives it". Each entry is a line a
//! failing assertion can print (`cgroup /sys/fs/cgroup/...`, `process 1234`, `lock ...`).

use std::path::{Path, PathBuf};

use crate::cgroup;
use crate::process::process_running;

/// Where the harness keeps a run's lock, staged code and shared `/tmp`.
const RUN_DIR: &str = "/run/isobench";

/// The run's cgroup directories in every hierarchy, the processes in its cgroups, and its lock
/// file. Zombies are not counted: a zombie holds nothing but its pid, and when a harness was
/// killed, not every container's init reaps the orphans it leaves.
pub fn of_run(run_id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for m in cgroup::mounts() {
        let d = m.path.join("isobench").join(run_id);
        if d.exists() {
            found.push(format!("cgroup {}", d.display()));
        }
    }
    found.extend(processes_of(run_id).into_iter().map(|pid| format!("process {pid}")));
    let lock = Path::new(RUN_DIR).join(format!("{run_id}.lock"));
    if lock.exists() {
        found.push(format!("lock {}", lock.display()));
    }
    found
}

/// Running processes in the run's cgroups (`.../isobench/<run_id>` or below, any hierarchy).
fn processes_of(run_id: &str) -> Vec<u32> {
    let own = format!("/isobench/{run_id}");
    let mut pids = Vec::new();
    for p in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cg = std::fs::read_to_string(p.path().join("cgroup")).unwrap_or_default();
        let inside = cg.lines().any(|l| l.ends_with(&own) || l.contains(&format!("{own}/")));
        if inside && process_running(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// The run's files outside cgroups: staged function code, a shared `/tmp`, and network
/// namespaces pinned under `/run/netns`. (Its other namespaces, veths and nftables rules live
/// only as long as its processes.)
pub fn run_files(run_id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for suffix in ["staged", "shared-tmp"] {
        let p = PathBuf::from(format!("{RUN_DIR}/{run_id}.{suffix}"));
        if p.exists() {
            found.push(p.display().to_string());
        }
    }
    if let Ok(d) = std::fs::read_dir("/run/netns") {
        for e in d.flatten() {
            if e.file_name().to_string_lossy().contains(run_id) {
                found.push(format!("netns {}", e.path().display()));
            }
        }
    }
    found
}

/// Processes (not zombies) still in process group `pgid`, e.g. of a killed harness that ran
/// as its own group: anything it started that escaped its cgroups.
pub fn in_process_group(pgid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces, so split after the `)`.
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            found.push(format!("process {pid} ({})", stat.split(['(', ')']).nth(1).unwrap_or("?")));
        }
    }
    found
}
