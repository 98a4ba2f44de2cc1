//! Sweep: find and remove what a crashed run left on this host, by enumerating the host
//! itself (never a state file):
//!
//! - processes whose `/proc/<pid>/cgroup` names a path under `/isobench/`;
//! - cgroup directories under `<hierarchy>/isobench/` in every mounted hierarchy, v1 and v2;
//! - run lock files `/run/isobench/<run_id>.lock`;
//! - Lambda code staged for a run, `/run/isobench/<run_id>.staged/` (the execution
//!   environments themselves are processes and cgroups, found above; a frozen one is thawed
//!   before it is killed);
//! - a run's shared `/tmp` (the `shared-tmp` isolation fault), a tmpfs mounted at
//!   `/run/isobench/<run_id>.shared-tmp/` (unmounted, then removed);
//! - network namespaces bind-mounted at `/run/netns/isobench-<run_id>@<name>`: the Lambda
//!   tiers' emulated internet (`@internet`, see `lambda::net`); every other namespace lives only
//!   as long as its descriptors (the internet's veth goes with its namespace);
//! - nftables tables named `isobench*` in the host namespace: none are created today (packet
//!   filters, like the `ecs-awsvpc` security groups, live inside the harness namespace with the
//!   cluster bridge and its endpoints, and vanish with it; the `eks-pod` nodes' policy tables
//!   live in node namespaces held only by the harness's descriptors), so [`find_nft_tables`] is
//!   the place to add them if that changes. An `eks-pod` pod is an instance (processes and
//!   cgroups, found above); its projected token lives in its own `/run` tmpfs and goes with it.
//!
//! Load agents (`isobench run --agents N`, see `agent_net`) leave nothing of their own to find:
//! their namespaces are pinned nowhere (held by their process and the harness's descriptor),
//! their veths and NAT table live in the harness namespace, and each agent process dies with the
//! harness thread that started it (`PR_SET_PDEATHSIG`).
//!
//! A run whose harness is alive holds an advisory lock on its lock file; such a run is skipped
//! unless it is named with `run` and `force` is set. Sweeping takes the lock itself while it
//! works, so a harness cannot start under the same run id meanwhile. A second sweep finds
//! nothing.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroup::{self, ISOBENCH_DIR};
use crate::error::{FsError, SweepError};
use crate::lock::{LOCK_DIR, try_lock};

/// Where bind-mounted network namespaces live (the `ip netns` convention).
pub const NETNS_DIR: &str = "/run/netns";
/// Prefix of any bind-mounted namespace the harness might own.
pub const NETNS_PREFIX: &str = "isobench-";

/// What to sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// List only; remove nothing.
    pub dry_run: bool,
    /// Only this run.
    pub run: Option<String>,
    /// Also sweep `run` if its harness is alive (needs `run`).
    pub force: bool,
}

/// What a sweep found.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// Everything found (and, unless a dry run, removed: failures are also in `failed`).
    pub found: Vec<String>,
    /// Run ids skipped because their harness is alive.
    pub skipped_live: Vec<String>,
    /// What could not be removed, with why.
    pub failed: Vec<String>,
}

/// Everything one run left.
#[derive(Debug, Default)]
struct Leftovers {
    pids: Vec<u32>,
    /// Cgroup directories, each run's own directory included.
    cgroups: Vec<PathBuf>,
    lock: Option<PathBuf>,
    netns_mounts: Vec<PathBuf>,
    /// Staged Lambda code directories.
    staged: Vec<PathBuf>,
    /// The shared `/tmp` of the `shared-tmp` isolation fault.
    shared_tmp: Option<PathBuf>,
}

impl Leftovers {
    fn describe(&self, run: &str) -> Vec<String> {
        let mut out: Vec<String> = self.pids.iter().map(|p| format!("process {p} of run {run}")).collect();
        out.extend(self.netns_mounts.iter().map(|p| format!("netns {}", p.display())));
        out.extend(self.cgroups.iter().map(|p| format!("cgroup {}", p.display())));
        out.extend(self.staged.iter().map(|p| format!("staged code {}", p.display())));
        out.extend(self.shared_tmp.iter().map(|p| format!("shared /tmp {}", p.display())));
        out.extend(self.lock.iter().map(|p| format!("lock {}", p.display())));
        out
    }
}

/// Finds (and unless `dry_run`, removes) what crashed runs left. See the module docs.
pub fn sweep(opts: &SweepOptions) -> Result<SweepReport, SweepError> {
    if opts.force && opts.run.is_none() {
        return Err(SweepError::ForceWithoutRun);
    }
    let mounts = cgroup::mounts().map_err(|e| FsError::new("read", Path::new("/proc/self/mountinfo"), e))?;
    let roots: Vec<PathBuf> = mounts.iter().map(|m| m.path.join(ISOBENCH_DIR)).collect();
    let mut runs: BTreeMap<String, Leftovers> = BTreeMap::new();
    find_cgroups(&roots, &mut runs)?;
    find_processes(&mut runs);
    find_locks(&mut runs);
    find_staged(&mut runs);
    find_shared_tmp(&mut runs);
    find_netns_mounts(&mut runs);
    find_nft_tables(&mut runs);

    let mut report = SweepReport::default();
    for (run, left) in runs {
        if opts.run.as_ref().is_some_and(|r| *r != run) {
            continue;
        }
        let lock = left.lock.as_ref().and_then(|p| File::open(p).ok());
        let live = match &lock {
            Some(f) => !try_lock(f).map_err(|e| FsError::new("lock", &crate::lock::lock_path(&run), e))?,
            None => false,
        };
        if live && !(opts.force && opts.run.as_deref() == Some(run.as_str())) {
            report.skipped_live.push(run);
            continue;
        }
        report.found.extend(left.describe(&run));
        if !opts.dry_run {
            report.failed.extend(remove(&run, &left));
        }
        drop(lock);
    }
    if !opts.dry_run {
        for r in &roots {
            let _ = fs::remove_dir(r);
        }
        let _ = fs::remove_dir(LOCK_DIR);
    }
    Ok(report)
}

/// Every directory below each `<hierarchy>/isobench/<run>`, deepest first, then the run's.
fn find_cgroups(roots: &[PathBuf], runs: &mut BTreeMap<String, Leftovers>) -> Result<(), SweepError> {
    for root in roots {
        let entries = match fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FsError::new("list", root, e).into()),
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let run = e.file_name().to_string_lossy().into_owned();
            let mut dirs = Vec::new();
            subdirs_post_order(&e.path(), &mut dirs);
            runs.entry(run).or_default().cgroups.extend(dirs);
        }
    }
    Ok(())
}

fn subdirs_post_order(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                subdirs_post_order(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// The run id in a `/proc/<pid>/cgroup` line's path, if it is under `/isobench/`.
fn run_of_cgroup_line(line: &str) -> Option<&str> {
    let path = line.splitn(3, ':').nth(2)?;
    let rest = path.strip_prefix("/")?.strip_prefix(ISOBENCH_DIR)?.strip_prefix('/')?;
    rest.split('/').next().filter(|r| !r.is_empty())
}

fn find_processes(runs: &mut BTreeMap<String, Leftovers>) {
    let Ok(procs) = fs::read_dir("/proc") else { return };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if !is_running(pid) {
            continue;
        }
        let text = fs::read_to_string(p.path().join("cgroup")).unwrap_or_default();
        if let Some(run) = text.lines().find_map(run_of_cgroup_line) {
            let l = runs.entry(run.to_string()).or_default();
            if !l.pids.contains(&pid) {
                l.pids.push(pid);
            }
        }
    }
}

/// Whether a process exists and is not a zombie (a zombie holds no resources and is its
/// parent's to reap).
fn is_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()).is_some_and(|s| s != 'Z'),
        Err(_) => false,
    }
}

fn find_locks(runs: &mut BTreeMap<String, Leftovers>) {
    let Ok(entries) = fs::read_dir(LOCK_DIR) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(run) = name.strip_suffix(".lock") {
            runs.entry(run.to_string()).or_default().lock = Some(e.path());
        }
    }
}

/// Directories `<run_id>.staged` in the lock directory (Lambda code staged for a run).
fn find_staged(runs: &mut BTreeMap<String, Leftovers>) {
    let Ok(entries) = fs::read_dir(LOCK_DIR) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(run) = name.strip_suffix(crate::lambda::STAGED_SUFFIX)
            && e.file_type().is_ok_and(|t| t.is_dir())
        {
            runs.entry(run.to_string()).or_default().staged.push(e.path());
        }
    }
}

/// Directories `<run_id>.shared-tmp` in the lock directory (a run's shared `/tmp`).
fn find_shared_tmp(runs: &mut BTreeMap<String, Leftovers>) {
    let Ok(entries) = fs::read_dir(LOCK_DIR) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(run) = name.strip_suffix(crate::faults::SHARED_TMP_SUFFIX)
            && e.file_type().is_ok_and(|t| t.is_dir())
        {
            runs.entry(run.to_string()).or_default().shared_tmp = Some(e.path());
        }
    }
}

fn find_netns_mounts(runs: &mut BTreeMap<String, Leftovers>) {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix(NETNS_PREFIX) {
            let run = rest.split_once('@').map_or(rest, |(r, _)| r);
            runs.entry(run.to_string()).or_default().netns_mounts.push(e.path());
        }
    }
}

/// nftables tables named `isobench*` in the host's namespace. The emulator creates none there
/// (its packet filters live in namespaces it owns and vanish with them), so there is nothing
/// to find yet. A feature that adds host tables lists them here (through netlink, as
/// `NFT_MSG_GETTABLE`, not by running `nft`) and removes them in [`remove`].
fn find_nft_tables(_runs: &mut BTreeMap<String, Leftovers>) {}

/// Removes one run's leftovers; returns what failed.
fn remove(run: &str, left: &Leftovers) -> Vec<String> {
    let mut failed = Vec::new();
    // Processes first: thaw (a v1-frozen process ignores SIGKILL until thawed), then kill
    // through each cgroup and each pid, until nothing of the run is running.
    let t0 = Instant::now();
    loop {
        for d in &left.cgroups {
            if d.join("freezer.state").exists() {
                let _ = fs::write(d.join("freezer.state"), "THAWED");
            }
            if d.join("cgroup.freeze").exists() {
                let _ = fs::write(d.join("cgroup.freeze"), "0");
            }
            if fs::write(d.join("cgroup.kill"), "1").is_err() {
                let _ = cgroup::kill_listed(d);
            }
        }
        let mut running: Vec<u32> = left.pids.iter().copied().filter(|p| is_running(*p)).collect();
        for d in &left.cgroups {
            running.extend(cgroup::procs(d).unwrap_or_default().into_iter().filter(|p| is_running(*p)));
        }
        running.sort_unstable();
        running.dedup();
        if running.is_empty() {
            break;
        }
        for pid in &running {
            // SAFETY: kill(2) takes plain integers; a pid that exited meanwhile just fails.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
        if t0.elapsed() > Duration::from_secs(5) {
            failed.extend(running.iter().map(|p| format!("process {p} of run {run} (still running after SIGKILL)")));
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for m in &left.netns_mounts {
        let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: `c` is a NUL-terminated path; a lazy unmount of a namespace bind mount.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if let Err(e) = fs::remove_file(m)
            && e.kind() != io::ErrorKind::NotFound
        {
            failed.push(format!("netns {} ({e})", m.display()));
        }
    }
    for d in &left.cgroups {
        if let Err(e) = cgroup::rmdir_retry(d, Duration::from_secs(1)) {
            failed.push(format!("cgroup {} ({e})", d.display()));
        }
    }
    for d in &left.staged {
        if let Err(e) = fs::remove_dir_all(d)
            && e.kind() != io::ErrorKind::NotFound
        {
            failed.push(format!("staged code {} ({e})", d.display()));
        }
    }
    if let Some(d) = &left.shared_tmp
        && let Err(e) = crate::faults::remove_shared_tmp(d)
    {
        failed.push(format!("shared /tmp {} ({e})", d.display()));
    }
    if let Some(l) = &left.lock
        && let Err(e) = fs::remove_file(l)
        && e.kind() != io::ErrorKind::NotFound
    {
        failed.push(format!("lock {} ({e})", l.display()));
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_lines_name_their_run() {
        assert_eq!(run_of_cgroup_line("4:memory:/isobench/r1/silo-ec2-0"), Some("r1"));
        assert_eq!(run_of_cgroup_line("0::/isobench/r2/x"), Some("r2"));
        assert_eq!(run_of_cgroup_line("4:memory:/process_api/isobench/r1"), None);
        assert_eq!(run_of_cgroup_line("1:cpu:/"), None);
        assert_eq!(run_of_cgroup_line("1:cpu:/isobench"), None);
        assert_eq!(run_of_cgroup_line("1:name=systemd:/isobenchx/r"), None);
    }

    #[test]
    fn force_needs_a_run() {
        let e = sweep(&SweepOptions { dry_run: true, run: None, force: true }).unwrap_err();
        assert!(matches!(e, SweepError::ForceWithoutRun));
    }
}
