//! cgroups: one small trait, [`CgroupDriver`], with one implementation per kernel layout,
//! chosen once at start-up by [`detect::driver`]:
//!
//! - [`v2::V2`]: a pure unified host (`cpu.max`, `memory.max`, `pids.max`, `cgroup.freeze`,
//!   `cgroup.kill`), controllers enabled in the parents' `cgroup.subtree_control`;
//! - [`v1::V1`]: v1 controllers (`cpu.cfs_quota_us`, `memory.limit_in_bytes`, `pids.max`), plus
//!   the v2 tree of a hybrid host when there is one, used for `cgroup.kill` and
//!   `cgroup.freeze` (the v1 freezer is the fallback: under it SIGKILL waits for a thaw).
//!
//! Every instance gets `<hierarchy>/isobench/<run_id>/<instance_id>` in each hierarchy the
//! driver uses. Creation, joining and removal are shared; limits, freezing, killing and CPU
//! accounting differ per layout.

pub(crate) mod detect;
pub(crate) mod v1;
pub(crate) mod v2;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::FsError;

/// Name of the directory that holds every run's cgroups, in every hierarchy.
pub const ISOBENCH_DIR: &str = "isobench";

/// The CFS period every instance's and execution environment's CPU quota is expressed in.
pub(crate) const CPU_PERIOD_US: u64 = 100_000;

/// Limits for one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CgroupLimits {
    /// CPU time allowed per period, in microseconds.
    pub cpu_quota_us: u64,
    /// The CFS period, in microseconds.
    pub cpu_period_us: u64,
    pub memory_bytes: u64,
    pub pids_max: u64,
}

/// One instance's cgroup: the same relative path in every hierarchy the driver uses.
#[derive(Debug, Clone)]
pub(crate) struct Cgroup {
    /// One directory per hierarchy, in the driver's order.
    pub dirs: Vec<PathBuf>,
}

/// How a process joins a [`Cgroup`]; see [`CgroupDriver::join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Join {
    /// v1 directories the (single-threaded) workload joins by writing `0` to `tasks`.
    pub threads: Vec<PathBuf>,
    /// The v2 directory its workload is forked straight into (`clone3(CLONE_INTO_CGROUP)`).
    pub clone_into: Option<PathBuf>,
}

/// What differs between cgroup layouts.
pub(crate) trait CgroupDriver: Send + Sync + fmt::Debug {
    /// A short name for logs and reports (`v2`, `v1+unified`, `v1`).
    fn name(&self) -> &'static str;
    /// The mount points of the hierarchies instances are placed in.
    fn hierarchies(&self) -> &[PathBuf];
    /// Prepares `<hierarchy>/isobench/<run>` (a v2 host enables controllers on the way down).
    fn prepare_run(&self, run_dirs: &[PathBuf]) -> Result<(), FsError>;
    /// Writes the limits into a freshly created cgroup.
    fn apply_limits(&self, cg: &Cgroup, limits: &CgroupLimits) -> Result<(), FsError>;
    /// Stops every process in the cgroup and waits until they are stopped.
    fn freeze(&self, cg: &Cgroup) -> Result<(), FsError>;
    /// Lets the processes run again.
    fn thaw(&self, cg: &Cgroup) -> Result<(), FsError>;
    /// The file that freezes and thaws the cgroup, for a caller that keeps it open and writes
    /// without waiting for the change to complete (a Lambda environment's hot path: thaw before
    /// each invoke, freeze after it); `None` without a freezer.
    fn freeze_file(&self, cg: &Cgroup) -> Option<FreezeFile>;
    /// Whether every process of the cgroup is frozen now (`frozen 1` in v2's `cgroup.events`,
    /// `FROZEN` in v1's `freezer.state`).
    fn is_frozen(&self, cg: &Cgroup) -> Result<bool, FsError>;
    /// Sends SIGKILL to every process in the cgroup, also to ones that fork meanwhile
    /// (where the kernel offers `cgroup.kill`); thaws first where a frozen process would not die.
    fn kill(&self, cg: &Cgroup) -> Result<(), FsError>;
    /// CPU time the cgroup's processes used so far.
    fn cpu_usage(&self, cg: &Cgroup) -> Result<Duration, FsError>;
    /// Memory charged to the cgroup and its descendants now (anonymous and page cache), in
    /// bytes: `memory.usage_in_bytes` (v1) or `memory.current` (v2).
    fn memory_usage(&self, cg: &Cgroup) -> Result<u64, FsError>;
    /// How the workload joins `cg`. Writing a pid to `cgroup.procs` takes the kernel's global
    /// threadgroup lock, whose first use after an idle spell waits for an RCU grace period
    /// (6–18 ms, once 113 ms, measured on this project's machines), which would dominate an
    /// instance's start. Two paths avoid it: a process moving its *own only thread* (`0` to a
    /// v1 `tasks` file) skips that lock, and a child forked with `CLONE_INTO_CGROUP` is born in
    /// the v2 cgroup. So the sandbox forks the workload into the v2 cgroup, and the forked
    /// (single-threaded) workload moves itself into the v1 ones before it executes.
    fn join(&self, cg: &Cgroup) -> Join;
}

/// A cgroup's freezer control file and what to write to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FreezeFile {
    pub path: PathBuf,
    pub freeze: &'static str,
    pub thaw: &'static str,
}

impl FreezeFile {
    fn unified(dir: &Path) -> FreezeFile {
        FreezeFile { path: dir.join("cgroup.freeze"), freeze: "1", thaw: "0" }
    }
}

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub path: PathBuf,
    pub v2: bool,
    /// v1 controllers (and `name=...` for named hierarchies).
    pub controllers: Vec<String>,
}

/// Every cgroup hierarchy mounted in this mount namespace, each once.
pub(crate) fn mounts() -> io::Result<Vec<Mount>> {
    Ok(parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo")?))
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 || left[3] != "/" {
            continue;
        }
        let path = PathBuf::from(unescape(left[4]));
        let m = match right[0] {
            "cgroup2" => Mount { path, v2: true, controllers: Vec::new() },
            "cgroup" => {
                let controllers: Vec<String> = right[2]
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('=') || o.starts_with("name="))
                    .filter(|o| !["noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods"].contains(o))
                    .map(str::to_string)
                    .collect();
                Mount { path, v2: false, controllers }
            }
            _ => continue,
        };
        // The same hierarchy mounted twice (bind mounts): keep the first.
        if !out.iter().any(|o| o.v2 == m.v2 && o.controllers == m.controllers) {
            out.push(m);
        }
    }
    out
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `<hierarchy>/isobench/<run>` for every hierarchy.
pub(crate) fn run_dirs(driver: &dyn CgroupDriver, run_id: &str) -> Vec<PathBuf> {
    driver.hierarchies().iter().map(|h| h.join(ISOBENCH_DIR).join(run_id)).collect()
}

/// Creates the run's directories (idempotent). A concurrent run may remove an empty
/// `isobench` directory between our `mkdir`s, so creation retries a few times.
pub(crate) fn create_run(driver: &dyn CgroupDriver, run_id: &str) -> Result<Vec<PathBuf>, FsError> {
    let dirs = run_dirs(driver, run_id);
    for d in &dirs {
        mkdir_p(d)?;
    }
    driver.prepare_run(&dirs)?;
    Ok(dirs)
}

fn mkdir_p(dir: &Path) -> Result<(), FsError> {
    let mut tries = 0;
    loop {
        match fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 5 => tries += 1,
            Err(e) => return Err(FsError::new("create cgroup", dir, e)),
        }
    }
}

/// Creates an instance's cgroup under the run and writes its limits. On error nothing of it
/// is left.
pub(crate) fn create(
    driver: &dyn CgroupDriver,
    run_dirs: &[PathBuf],
    id: &str,
    limits: &CgroupLimits,
) -> Result<Cgroup, FsError> {
    let cg = Cgroup { dirs: run_dirs.iter().map(|d| d.join(id)).collect() };
    for (i, d) in cg.dirs.iter().enumerate() {
        if let Err(e) = fs::create_dir(d) {
            for made in &cg.dirs[..i] {
                let _ = fs::remove_dir(made);
            }
            return Err(FsError::new("create cgroup", d, e));
        }
    }
    if let Err(e) = driver.apply_limits(&cg, limits) {
        for d in &cg.dirs {
            let _ = fs::remove_dir(d);
        }
        return Err(e);
    }
    Ok(cg)
}

/// The pids in a cgroup directory.
pub(crate) fn procs(dir: &Path) -> Result<Vec<u32>, FsError> {
    let path = dir.join("cgroup.procs");
    match fs::read_to_string(&path) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(FsError::new("read", &path, e)),
    }
}

/// Kills every process, waits until the cgroup is empty, then removes its directories.
/// Returns the directories that could not be removed, with why.
pub(crate) fn remove(driver: &dyn CgroupDriver, cg: &Cgroup, wait: Duration) -> Vec<(PathBuf, String)> {
    let mut left = Vec::new();
    if let Err(e) = driver.kill(cg) {
        left.push((cg.dirs[0].clone(), format!("kill: {e}")));
    }
    if let Err((dir, e)) = wait_empty(driver, cg, wait) {
        left.push((dir, e));
        return left;
    }
    for d in &cg.dirs {
        if let Err(e) = rmdir_retry(d, Duration::from_secs(1)) {
            left.push((d.clone(), format!("rmdir: {e}")));
        }
    }
    left
}

/// Waits until no directory of the cgroup lists a process, re-sending the kill now and then
/// in case a process was forked past it (only possible without `cgroup.kill`).
pub(crate) fn wait_empty(driver: &dyn CgroupDriver, cg: &Cgroup, wait: Duration) -> Result<(), (PathBuf, String)> {
    let t0 = Instant::now();
    let mut last_kill = t0;
    let mut pause = Duration::from_micros(50);
    loop {
        let mut busy = None;
        for d in &cg.dirs {
            let pids = procs(d).map_err(|e| (d.clone(), e.to_string()))?;
            if !pids.is_empty() {
                busy = Some((d, pids));
                break;
            }
        }
        let Some((dir, pids)) = busy else { return Ok(()) };
        if t0.elapsed() > wait {
            return Err((dir.clone(), format!("processes {pids:?} still running after {wait:?}")));
        }
        if last_kill.elapsed() > Duration::from_millis(100) {
            let _ = driver.kill(cg);
            last_kill = Instant::now();
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// `rmdir`, retrying while the kernel still reports the cgroup busy (exiting tasks).
pub(crate) fn rmdir_retry(dir: &Path, wait: Duration) -> io::Result<()> {
    let t0 = Instant::now();
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && t0.elapsed() < wait => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Removes the run's directories and then each hierarchy's `isobench` directory if it is
/// empty. A directory another run still uses (`ENOTEMPTY`, `EBUSY`) is not an error.
pub(crate) fn remove_run(driver: &dyn CgroupDriver, run_id: &str) -> Vec<(PathBuf, String)> {
    let mut left = Vec::new();
    for d in run_dirs(driver, run_id) {
        remove_empty_below(&d);
        if let Err(e) = rmdir_retry(&d, Duration::from_secs(1)) {
            left.push((d.clone(), format!("rmdir: {e}")));
        }
        if let Some(parent) = d.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
    left
}

/// Removes the empty cgroups below `dir`, deepest first: what an instance's or environment's
/// removal cut short. One that still holds a process stays (rmdir fails), and the run's own
/// rmdir then reports it.
fn remove_empty_below(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_below(&e.path());
            let _ = fs::remove_dir(e.path());
        }
    }
}

/// Writes `value` to `dir/file`.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), FsError> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(|e| FsError::new("write", &path, e))
}

/// Reads `dir/file` as text.
/// A control file holding one number.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, FsError> {
    let text = read(dir, file)?;
    text.trim().parse().map_err(|_| FsError::parse(&dir.join(file), &text))
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String, FsError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|e| FsError::new("read", &path, e))
}

/// Polls `cond` every 20 µs to 1 ms for up to `wait`.
pub(crate) fn poll_until(wait: Duration, mut cond: impl FnMut() -> Result<bool, FsError>) -> Result<bool, FsError> {
    let t0 = Instant::now();
    let mut pause = Duration::from_micros(20);
    loop {
        if cond()? {
            return Ok(true);
        }
        if t0.elapsed() > wait {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

/// Freezes (`true`) or thaws a cgroup through v2's `cgroup.freeze` and waits until
/// `cgroup.events` agrees.
pub(crate) fn unified_freeze(dir: &Path, frozen: bool) -> Result<(), FsError> {
    write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let done = poll_until(Duration::from_secs(5), || Ok(read(dir, "cgroup.events")?.lines().any(|l| l == want)))?;
    if done {
        Ok(())
    } else {
        let path = dir.join("cgroup.events");
        Err(FsError::new("wait for", &path, io::Error::new(io::ErrorKind::TimedOut, format!("no `{want}` within 5s"))))
    }
}

/// Whether v2's `cgroup.events` says every process of the cgroup is frozen.
pub(crate) fn unified_frozen(dir: &Path) -> Result<bool, FsError> {
    Ok(read(dir, "cgroup.events")?.lines().any(|l| l == "frozen 1"))
}

/// Kills through v2's `cgroup.kill` when the kernel has it (5.14+), else signals each listed
/// process. Returns whether `cgroup.kill` was used.
pub(crate) fn unified_kill(dir: &Path) -> Result<bool, FsError> {
    match fs::write(dir.join("cgroup.kill"), "1") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.exists() => {
            kill_listed(dir)?;
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(FsError::new("write", &dir.join("cgroup.kill"), e)),
    }
}

/// SIGKILL to every process `cgroup.procs` lists.
pub(crate) fn kill_listed(dir: &Path) -> Result<(), FsError> {
    for pid in procs(dir)? {
        // SAFETY: kill(2) takes plain integers; a pid that has exited meanwhile just fails.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
33 31 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
34 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
37 31 0:31 / /mnt/pids\\040again rw - cgroup cgroup rw,pids
38 31 0:32 /sub /srv/nested rw - cgroup cgroup rw,freezer
";

    #[test]
    fn mountinfo_lists_each_hierarchy_once() {
        let m = parse_mountinfo(HYBRID);
        let paths: Vec<_> = m.iter().map(|m| m.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/sys/fs/cgroup/unified",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/pids"
            ]
        );
        assert!(m[0].v2);
        assert_eq!(m[1].controllers, ["name=systemd"]);
        assert_eq!(m[2].controllers, ["cpu", "cpuacct"]);
    }

    #[test]
    fn octal_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }
}
