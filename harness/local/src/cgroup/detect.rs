//! Which [`CgroupDriver`] this host needs (kept apart from the trait's module, which the
//! drivers use).

use std::fs;
use std::sync::Arc;

use super::{CgroupDriver, mounts, v1, v2};

/// Chooses the driver for this host from `/proc/self/mountinfo`.
pub(crate) fn driver() -> Result<Arc<dyn CgroupDriver>, String> {
    let mounts = mounts().map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let v2 = mounts.iter().find(|m| m.v2).map(|m| m.path.clone());
    let v1 = |ctrl: &str| mounts.iter().find(|m| m.controllers.iter().any(|c| c == ctrl)).map(|m| m.path.clone());
    if let (Some(cpu), Some(memory), Some(pids)) = (v1("cpu"), v1("memory"), v1("pids")) {
        return Ok(Arc::new(v1::V1::new(cpu, v1("cpuacct"), memory, pids, v1("freezer"), v2)));
    }
    if let Some(root) = v2 {
        let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let missing: Vec<&str> =
            ["cpu", "memory", "pids"].into_iter().filter(|c| !available.split_whitespace().any(|a| a == *c)).collect();
        if missing.is_empty() {
            return Ok(Arc::new(v2::V2::new(root)));
        }
        return Err(format!(
            "the cgroup v2 hierarchy at {} lacks the {} controller(s)",
            root.display(),
            missing.join(", ")
        ));
    }
    Err("no cgroup hierarchy with the cpu, memory and pids controllers is mounted".into())
}
