//! A pure cgroup v2 host.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    Cgroup, CgroupDriver, CgroupLimits, FreezeFile, Join, read, unified_freeze, unified_frozen, unified_kill, write,
};
use crate::error::FsError;

const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

#[derive(Debug)]
pub(crate) struct V2 {
    hierarchies: Vec<PathBuf>,
}

impl V2 {
    pub(crate) fn new(root: PathBuf) -> V2 {
        V2 { hierarchies: vec![root] }
    }
}

/// Enables `cpu`, `memory` and `pids` for the children of `dir`, where not yet enabled.
fn enable_controllers(dir: &Path) -> Result<(), FsError> {
    let enabled = read(dir, "cgroup.subtree_control")?;
    let missing: Vec<String> =
        CONTROLLERS.iter().filter(|c| !enabled.split_whitespace().any(|e| e == **c)).map(|c| format!("+{c}")).collect();
    if missing.is_empty() { Ok(()) } else { write(dir, "cgroup.subtree_control", &missing.join(" ")) }
}

/// `usage_usec` from a v2 `cpu.stat`.
pub(crate) fn usage_usec(dir: &Path) -> Result<Duration, FsError> {
    let text = read(dir, "cpu.stat")?;
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec ").and_then(|v| v.trim().parse().ok()))
        .map(Duration::from_micros)
        .ok_or_else(|| FsError::parse(&dir.join("cpu.stat"), &text))
}

impl CgroupDriver for V2 {
    fn name(&self) -> &'static str {
        "v2"
    }

    fn hierarchies(&self) -> &[PathBuf] {
        &self.hierarchies
    }

    fn prepare_run(&self, run_dirs: &[PathBuf]) -> Result<(), FsError> {
        // root -> isobench -> run: each level hands the controllers to the next.
        for run in run_dirs {
            let isobench = run.parent().expect("run dir has a parent");
            let root = isobench.parent().expect("isobench dir has a parent");
            for d in [root, isobench, run.as_path()] {
                enable_controllers(d)?;
            }
        }
        Ok(())
    }

    fn apply_limits(&self, cg: &Cgroup, l: &CgroupLimits) -> Result<(), FsError> {
        let d = &cg.dirs[0];
        write(d, "cpu.max", &format!("{} {}", l.cpu_quota_us, l.cpu_period_us))?;
        write(d, "memory.max", &l.memory_bytes.to_string())?;
        if fs::metadata(d.join("memory.swap.max")).is_ok() {
            write(d, "memory.swap.max", "0")?;
        }
        write(d, "pids.max", &l.pids_max.to_string())
    }

    fn freeze(&self, cg: &Cgroup) -> Result<(), FsError> {
        unified_freeze(&cg.dirs[0], true)
    }

    fn thaw(&self, cg: &Cgroup) -> Result<(), FsError> {
        unified_freeze(&cg.dirs[0], false)
    }

    fn freeze_file(&self, cg: &Cgroup) -> Option<FreezeFile> {
        Some(FreezeFile::unified(&cg.dirs[0]))
    }

    fn is_frozen(&self, cg: &Cgroup) -> Result<bool, FsError> {
        unified_frozen(&cg.dirs[0])
    }

    fn kill(&self, cg: &Cgroup) -> Result<(), FsError> {
        unified_kill(&cg.dirs[0]).map(|_| ())
    }

    fn cpu_usage(&self, cg: &Cgroup) -> Result<Duration, FsError> {
        usage_usec(&cg.dirs[0])
    }

    fn memory_usage(&self, cg: &Cgroup) -> Result<u64, FsError> {
        super::read_u64(&cg.dirs[0], "memory.current")
    }

    fn join(&self, cg: &Cgroup) -> Join {
        Join { threads: Vec::new(), clone_into: Some(cg.dirs[0].clone()) }
    }
}
