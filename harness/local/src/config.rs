//! The backend's configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the sandbox executable, built from this crate.
pub const SANDBOX_EXE: &str = "isobench-sandbox";
/// File name of the sample workload's executable.
pub const WORKLOAD_EXE: &str = "tenant-app";

/// How the local backend runs. [`LocalConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The run this backend deploys for: names its cgroups and its lock file.
    pub run_id: String,
    /// The `isobench-sandbox` executable.
    pub sandbox_exe: PathBuf,
    /// The workload executable (the sample `tenant-app`).
    pub workload_exe: PathBuf,
    /// Port the workload listens on inside each instance.
    pub port: u16,
    /// How long an instance may take to answer `GET /healthz` with 200.
    pub ready_timeout: Duration,
    /// Instance n runs as uid and gid `uid_base + n` (ids listed in `/etc/passwd` or
    /// `/etc/group` are skipped).
    pub uid_base: u32,
    /// Most processes (and threads) one instance may have.
    pub pids_max: u64,
    /// Size of each private tmpfs (`/tmp`, `/var/tmp`, `/dev/shm`) of an instance.
    pub tmpfs_size: u64,
    /// Extra environment for every workload, beside `PATH` and `HOME`.
    pub workload_env: Vec<(String, String)>,
    /// Threads that start Lambda execution environments; `None`: four per host CPU, 4 to 32.
    pub lambda_spawners: Option<usize>,
}

impl LocalConfig {
    pub fn new(run_id: impl Into<String>, sandbox_exe: impl Into<PathBuf>, workload_exe: impl Into<PathBuf>) -> Self {
        LocalConfig {
            run_id: run_id.into(),
            sandbox_exe: sandbox_exe.into(),
            workload_exe: workload_exe.into(),
            port: isobench_core::workload_api::DEFAULT_PORT,
            ready_timeout: Duration::from_secs(10),
            uid_base: 200_000,
            pids_max: 1024,
            tmpfs_size: 64 << 20,
            workload_env: Vec::new(),
            lambda_spawners: None,
        }
    }

    /// The defaults, with `isobench-sandbox` and `tenant-app` taken from `dir` (the directory
    /// of the running `isobench` executable: cargo builds them side by side).
    pub fn beside_executable(dir: &Path, run_id: &str) -> Self {
        LocalConfig::new(run_id, dir.join(SANDBOX_EXE), dir.join(WORKLOAD_EXE))
    }
}

/// Whether `id` is usable as a run id: it becomes a directory and a file name.
pub(crate) fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_path_safe() {
        assert!(valid_run_id("20261129T045223Z-a1b2c3"));
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_run_id(bad), "{bad}");
        }
    }
}
