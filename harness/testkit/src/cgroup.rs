//! Cgroup hierarchies as mounted here (v1, v2 or both) and where a process sits in them, read
//! from `/proc/self/mountinfo` and `/proc/<pid>/cgroup`.

use std::path::PathBuf;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub path: PathBuf,
    /// The unified (v2) hierarchy; else a v1 hierarchy with `controllers`.
    pub v2: bool,
    pub controllers: Vec<String>,
}

/// Every mounted cgroup hierarchy.
pub fn mounts() -> Vec<Mount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((l, r)) = line.split_once(" - ") else { continue };
        let l: Vec<&str> = l.split(' ').collect();
        let r: Vec<&str> = r.split(' ').collect();
        match r[0] {
            "cgroup2" => out.push(Mount { path: PathBuf::from(l[4]), v2: true, controllers: Vec::new() }),
            "cgroup" => out.push(Mount {
                path: PathBuf::from(l[4]),
                v2: false,
                controllers: r[2].split(',').map(str::to_string).collect(),
            }),
            _ => {}
        }
    }
    out
}

/// Where the v2 hierarchy is mounted, if it is.
pub fn v2_mount() -> Option<PathBuf> {
    mounts().into_iter().find(|m| m.v2).map(|m| m.path)
}

/// Where the v1 hierarchy with `controller` is mounted, if it is.
pub fn v1_mount(controller: &str) -> Option<PathBuf> {
    mounts().into_iter().find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller)).map(|m| m.path)
}

/// The directory of `pid`'s cgroup in the hierarchy with `controller` (`""` for v2).
pub fn dir_of(pid: u32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() { ctrls.is_empty() } else { ctrls.split(',').any(|c| c == controller) };
        if !matches {
            continue;
        }
        let mount = if controller.is_empty() { v2_mount() } else { v1_mount(controller) }?;
        return Some(mount.join(path.trim_start_matches('/')));
    }
    None
}
