//! What `/proc` says of a process: whether it exists and runs, its namespaces, its status
//! fields, the environment it started with, its children and listening sockets; and a guard
//! that kills a child a test started.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Child;

/// Whether `pid` is in the process table (zombies included).
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` exists and is not a zombie.
pub fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| !r.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// The inode of a process's namespace of `kind` (`net`, `mnt`, `pid`, ...).
pub fn ns_inode(pid: u32, kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}")).unwrap_or_else(|e| panic!("ns {kind} of {pid}: {e}")).ino()
}

/// The first value of a field of `/proc/<pid>/status` (e.g. the real uid of `Uid`).
pub fn status_field(pid: u32, field: &str) -> String {
    status_value(pid, field)
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no {field} in status of {pid}"))
        .to_string()
}

/// The whole value of a field of `/proc/<pid>/status`, trimmed; empty when there is none.
pub fn status_value(pid: u32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or("").trim().to_string()
}

/// The environment process `pid` was started with (the kernel's copy).
pub fn environ(pid: u32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let s = String::from_utf8_lossy(kv);
            s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// One variable of the environment process `pid` was started with; `None` also when the
/// process is gone.
pub fn env_of(pid: u32, key: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    raw.split(|b| *b == 0).find_map(|kv| {
        let kv = String::from_utf8_lossy(kv);
        kv.strip_prefix(&format!("{key}=")).map(str::to_string)
    })
}

/// The first child of `pid`, from `/proc/<pid>/task/<pid>/children`.
pub fn first_child(pid: u32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// TCP sockets in LISTEN state among `pid`'s open files.
pub fn listening_sockets(pid: u32) -> usize {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd directory")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|link| link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    ["tcp", "tcp6"]
        .iter()
        .flat_map(|table| {
            std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(3) == Some(&"0A") && fields.get(9).is_some_and(|inode| inodes.contains(*inode))
        })
        .count()
}

/// A child process killed and reaped on drop, so a failing test leaves nothing running.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_reads_its_own_status() {
        let me = std::process::id();
        assert!(pid_alive(me) && process_running(me));
        assert_eq!(status_field(me, "Pid"), me.to_string());
        assert_eq!(status_value(me, "NoSuchField"), "");
        assert!(ns_inode(me, "net") > 0);
    }
}
