//! cgroup v1 controllers, with a hybrid host's v2 tree for killing and freezing.

use std::path::PathBuf;
use std::time::Duration;

use super::{
    Cgroup, CgroupDriver, CgroupLimits, FreezeFile, Join, kill_listed, poll_until, read, unified_freeze,
    unified_frozen, unified_kill, write,
};
use crate::error::FsError;

/// v1 controllers `cpu`, `cpuacct`, `memory`, `pids` (and `freezer` when there is no v2 tree).
#[derive(Debug)]
pub(crate) struct V1 {
    hierarchies: Vec<PathBuf>,
    cpu: usize,
    cpuacct: Option<usize>,
    memory: usize,
    pids: usize,
    freezer: Option<usize>,
    unified: Option<usize>,
}

impl V1 {
    pub(crate) fn new(
        cpu: PathBuf,
        cpuacct: Option<PathBuf>,
        memory: PathBuf,
        pids: PathBuf,
        freezer: Option<PathBuf>,
        unified: Option<PathBuf>,
    ) -> V1 {
        let mut hierarchies: Vec<PathBuf> = Vec::new();
        let mut index = |p: PathBuf| match hierarchies.iter().position(|h| *h == p) {
            Some(i) => i,
            None => {
                hierarchies.push(p);
                hierarchies.len() - 1
            }
        };
        let unified = unified.map(&mut index);
        let cpu = index(cpu);
        let cpuacct = cpuacct.map(&mut index);
        let memory = index(memory);
        let pids = index(pids);
        // With a v2 tree, freezing uses `cgroup.freeze` (faster, and SIGKILL still works on a
        // frozen process), so the v1 freezer is not joined at all.
        let freezer = if unified.is_some() { None } else { freezer.map(&mut index) };
        V1 { hierarchies, cpu, cpuacct, memory, pids, freezer, unified }
    }
}

impl CgroupDriver for V1 {
    fn name(&self) -> &'static str {
        if self.unified.is_some() { "v1+unified" } else { "v1" }
    }

    fn hierarchies(&self) -> &[PathBuf] {
        &self.hierarchies
    }

    fn prepare_run(&self, _run_dirs: &[PathBuf]) -> Result<(), FsError> {
        Ok(())
    }

    fn apply_limits(&self, cg: &Cgroup, l: &CgroupLimits) -> Result<(), FsError> {
        let cpu = &cg.dirs[self.cpu];
        write(cpu, "cpu.cfs_period_us", &l.cpu_period_us.to_string())?;
        write(cpu, "cpu.cfs_quota_us", &l.cpu_quota_us.to_string())?;
        let mem = &cg.dirs[self.memory];
        write(mem, "memory.limit_in_bytes", &l.memory_bytes.to_string())?;
        // No swap beyond the limit, like an instance without a swap volume (only where the
        // kernel accounts swap).
        if mem.join("memory.memsw.limit_in_bytes").exists() {
            write(mem, "memory.memsw.limit_in_bytes", &l.memory_bytes.to_string())?;
        }
        write(&cg.dirs[self.pids], "pids.max", &l.pids_max.to_string())
    }

    fn freeze(&self, cg: &Cgroup) -> Result<(), FsError> {
        match (self.unified, self.freezer) {
            (Some(u), _) => unified_freeze(&cg.dirs[u], true),
            (None, Some(f)) => {
                let dir = &cg.dirs[f];
                write(dir, "freezer.state", "FROZEN")?;
                poll_until(Duration::from_secs(5), || Ok(read(dir, "freezer.state")?.trim() == "FROZEN"))?;
                Ok(())
            }
            (None, None) => Err(FsError::unsupported("freeze", &cg.dirs[self.pids], "no freezer hierarchy is mounted")),
        }
    }

    fn thaw(&self, cg: &Cgroup) -> Result<(), FsError> {
        match (self.unified, self.freezer) {
            (Some(u), _) => unified_freeze(&cg.dirs[u], false),
            (None, Some(f)) => write(&cg.dirs[f], "freezer.state", "THAWED"),
            (None, None) => Ok(()),
        }
    }

    fn freeze_file(&self, cg: &Cgroup) -> Option<FreezeFile> {
        match (self.unified, self.freezer) {
            (Some(u), _) => Some(FreezeFile::unified(&cg.dirs[u])),
            (None, Some(f)) => {
                Some(FreezeFile { path: cg.dirs[f].join("freezer.state"), freeze: "FROZEN", thaw: "THAWED" })
            }
            (None, None) => None,
        }
    }

    fn is_frozen(&self, cg: &Cgroup) -> Result<bool, FsError> {
        match (self.unified, self.freezer) {
            (Some(u), _) => unified_frozen(&cg.dirs[u]),
            (None, Some(f)) => Ok(read(&cg.dirs[f], "freezer.state")?.trim() == "FROZEN"),
            (None, None) => Ok(false),
        }
    }

    fn kill(&self, cg: &Cgroup) -> Result<(), FsError> {
        if let Some(f) = self.freezer {
            // Under the v1 freezer a SIGKILL waits for the thaw.
            if cg.dirs[f].exists() {
                write(&cg.dirs[f], "freezer.state", "THAWED")?;
            }
        }
        match self.unified {
            // The workload and everything it forked, atomically.
            Some(u) => unified_kill(&cg.dirs[u]).map(|_| ()),
            None => kill_listed(&cg.dirs[self.pids]),
        }
    }

    fn cpu_usage(&self, cg: &Cgroup) -> Result<Duration, FsError> {
        if let Some(a) = self.cpuacct {
            let text = read(&cg.dirs[a], "cpuacct.usage")?;
            let ns: u64 = text.trim().parse().map_err(|_| FsError::parse(&cg.dirs[a].join("cpuacct.usage"), &text))?;
            return Ok(Duration::from_nanos(ns));
        }
        match self.unified {
            Some(u) => super::v2::usage_usec(&cg.dirs[u]),
            None => {
                Err(FsError::unsupported("read CPU usage of", &cg.dirs[self.cpu], "no cpuacct hierarchy is mounted"))
            }
        }
    }

    fn memory_usage(&self, cg: &Cgroup) -> Result<u64, FsError> {
        super::read_u64(&cg.dirs[self.memory], "memory.usage_in_bytes")
    }

    fn join(&self, cg: &Cgroup) -> Join {
        let threads =
            cg.dirs.iter().enumerate().filter(|(i, _)| Some(*i) != self.unified).map(|(_, d)| d.clone()).collect();
        Join { threads, clone_into: self.unified.map(|u| cg.dirs[u].clone()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_mounts_are_joined_once_and_the_v2_tree_replaces_the_freezer() {
        let p = |s: &str| PathBuf::from(s);
        let d = V1::new(
            p("/c/cpu,cpuacct"),
            Some(p("/c/cpu,cpuacct")),
            p("/c/memory"),
            p("/c/pids"),
            Some(p("/c/freezer")),
            Some(p("/c/unified")),
        );
        assert_eq!(d.hierarchies, [p("/c/unified"), p("/c/cpu,cpuacct"), p("/c/memory"), p("/c/pids")]);
        assert_eq!((d.cpu, d.cpuacct, d.freezer), (1, Some(1), None));
        assert_eq!(d.name(), "v1+unified");
        let plain = V1::new(p("/c/cpu"), None, p("/c/memory"), p("/c/pids"), Some(p("/c/freezer")), None);
        assert_eq!(plain.hierarchies.len(), 4);
        assert_eq!(plain.freezer, Some(3));
    }
}
