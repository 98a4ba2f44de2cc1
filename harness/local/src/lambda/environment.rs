//! One execution environment: its process (a sandbox holding the function's runtime), its
//! cgroup, its Runtime API server, and where it is in its lifecycle.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use isobench_rapi::RuntimeApi;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::cgroup::{self, Cgroup, CgroupDriver, FreezeFile};

/// One execution environment, as the kernel and the emulator see it now.
#[derive(Debug, Clone)]
pub struct EnvironmentInfo {
    pub id: String,
    pub function: String,
    /// The tenant it is dedicated to (tenant isolation mode).
    pub tenant: Option<String>,
    pub state: EnvironmentState,
    /// Invocations handed to it so far.
    pub invocations: u64,
    /// How long it has been idle, when it is.
    pub idle_for: Option<Duration>,
    pub age: Duration,
    /// The idle time after which it is shut down (its own draw when the keep-alive is a range).
    pub keep_alive: Duration,
    /// When a spawner thread created it (cgroup, network namespace, sandbox): from the job's
    /// start to its end. Overlapping spans are environments started in parallel.
    pub spawned: (Instant, Instant),
    /// The sandbox holding it (outside its cgroups).
    pub sandbox_pid: u32,
    /// The runtime process (the function's `bootstrap`), as the host sees it.
    pub workload_pid: Option<u32>,
    /// Its cgroup directories, one per hierarchy.
    pub cgroup_dirs: Vec<PathBuf>,
    /// CPU time its processes used, from the cgroup's accounting.
    pub cpu_usage: Option<Duration>,
    /// Whether the cgroup freezer reports it frozen (`cgroup.events` / `freezer.state`).
    pub frozen: Option<bool>,
}

/// Where an environment is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvironmentState {
    /// INIT: started, its runtime has not asked for an invocation yet.
    Initializing,
    /// Running an invocation (thawed).
    Busy,
    /// Between invocations: frozen, kept for the next invoke until its keep-alive runs out.
    Idle,
    /// Its process has exited or it was shut down; it takes no more invocations.
    Gone,
}

/// What an environment's owner changes as it moves through its lifecycle.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    pub state: EnvironmentState,
    /// When it last finished an invocation (or was created).
    pub last_used: Instant,
    /// Invocations handed to it so far.
    pub invocations: u64,
}

/// A running execution environment.
pub(crate) struct Environment {
    pub id: String,
    pub function: String,
    /// The tenant it is dedicated to (tenant isolation mode), else `None`.
    pub tenant: Option<String>,
    pub cgroup: Cgroup,
    pub api: RuntimeApi,
    pub sandbox_pid: libc::pid_t,
    /// The runtime's pid as the host sees it, once read from the sandbox's status pipe
    /// (`Err` holds the pipe until then).
    workload_pid: Mutex<Result<u32, Option<File>>>,
    pub output: File,
    pub created: Instant,
    /// Idle time after which the reaper shuts it down (set by its function after creation).
    pub keep_alive: Duration,
    /// When its spawner thread's job started and ended (set by its function after creation).
    pub spawned: (Instant, Instant),
    pub life: Mutex<Lifecycle>,
    /// The cgroup's freezer control, kept open: a write is the whole freeze or thaw.
    freezer: Mutex<Freezer>,
    /// Its process has exited (seen through the pidfd).
    exited: AtomicBool,
    /// Whether the sandbox has been reaped, under the lock so that it is reaped exactly once
    /// (a second `waitpid` could reap an unrelated child that reused the pid).
    reaped: Mutex<bool>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("id", &self.id)
            .field("sandbox_pid", &self.sandbox_pid)
            .finish_non_exhaustive()
    }
}

impl Environment {
    #[allow(clippy::too_many_arguments, reason = "one call site, every field named there")]
    pub(crate) fn new(
        id: String,
        function: String,
        tenant: Option<String>,
        cgroup: Cgroup,
        api: RuntimeApi,
        sandbox_pid: libc::pid_t,
        output: File,
        created: Instant,
        freeze_file: Option<FreezeFile>,
        status: File,
    ) -> std::io::Result<Environment> {
        let freezer = match freeze_file {
            Some(f) => Freezer {
                file: Some(std::fs::OpenOptions::new().write(true).open(&f.path)?),
                freeze: f.freeze,
                thaw: f.thaw,
                requested: false,
            },
            None => Freezer { file: None, freeze: "", thaw: "", requested: false },
        };
        Ok(Environment {
            id,
            function,
            tenant,
            cgroup,
            api,
            sandbox_pid,
            workload_pid: Mutex::new(Err(Some(status))),
            output,
            created,
            keep_alive: Duration::MAX,
            spawned: (created, created),
            life: Mutex::new(Lifecycle { state: EnvironmentState::Initializing, last_used: created, invocations: 0 }),
            freezer: Mutex::new(freezer),
            exited: AtomicBool::new(false),
            reaped: Mutex::new(false),
        })
    }

    pub(crate) fn life(&self) -> MutexGuard<'_, Lifecycle> {
        lock(&self.life)
    }

    /// Freezes the environment if it is still idle. The freezer lock orders this against
    /// [`Self::thaw`]: an invoke marks the environment busy (under its function's pool lock)
    /// before it thaws, so a freeze that lost the race is skipped and one that won is undone.
    pub(crate) fn freeze_if_idle(&self) -> std::io::Result<()> {
        let mut f = lock(&self.freezer);
        if !f.requested && self.life().state == EnvironmentState::Idle {
            f.write(true)?;
        }
        Ok(())
    }

    /// Thaws the environment if a freeze was requested for it.
    pub(crate) fn thaw(&self) -> std::io::Result<()> {
        let mut f = lock(&self.freezer);
        if f.requested {
            f.write(false)?;
        }
        Ok(())
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// The runtime's host pid: `pid <n>` from the sandbox's status pipe, which the sandbox
    /// writes right after its fork (so usually before the runtime's INIT ends, but the two race
    /// on a busy host). Waits up to `wait` for it; `None` if the sandbox never wrote it.
    pub(crate) fn workload_pid(&self, wait: Duration) -> Option<u32> {
        let mut slot = lock(&self.workload_pid);
        let file = match &mut *slot {
            Ok(pid) => return Some(*pid),
            Err(None) => return None,
            Err(Some(f)) => f,
        };
        let mut fds = [libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: poll(2) on one valid pollfd of an open descriptor, for at most `wait`.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, wait.as_millis().min(i32::MAX as u128) as i32) };
        let mut buf = [0u8; 64];
        match file.read(&mut buf) {
            Ok(n) => {
                let s = String::from_utf8_lossy(&buf[..n]);
                let pid = s.lines().find_map(|l| l.strip_prefix("pid ")?.trim().parse().ok());
                *slot = pid.ok_or(None);
                pid
            }
            // Not written yet: keep the pipe and try again next time.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(_) => {
                *slot = Err(None);
                None
            }
        }
    }

    /// Reaps the sandbox if it has exited; true once it is reaped.
    pub(crate) fn reap(&self) -> bool {
        let mut reaped = lock(&self.reaped);
        if *reaped {
            return true;
        }
        let mut status = 0;
        // SAFETY: waitpid(2) with WNOHANG on our own child, not yet reaped (checked under the lock).
        let r = unsafe { libc::waitpid(self.sandbox_pid, &mut status, libc::WNOHANG) };
        if r == self.sandbox_pid || (r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)) {
            *reaped = true;
        }
        *reaped
    }

    /// The last `max` bytes the sandbox and the runtime wrote.
    pub(crate) fn output_tail(&self, max: usize) -> String {
        use std::os::unix::fs::FileExt;
        let len = self.output.metadata().map(|m| m.len()).unwrap_or(0);
        let start = len.saturating_sub(max as u64);
        let mut buf = vec![0u8; (len - start) as usize];
        let n = self.output.read_at(&mut buf, start).unwrap_or(0);
        buf.truncate(n);
        let text = String::from_utf8_lossy(&buf).trim_end().to_string();
        if text.is_empty() { "(none)".into() } else { text }
    }
}

/// A cgroup's freezer control file, open for writing.
struct Freezer {
    /// `None` on a host without a freezer: the environment is never frozen.
    file: Option<File>,
    freeze: &'static str,
    thaw: &'static str,
    /// Whether a freeze was written and not undone.
    requested: bool,
}

impl Freezer {
    fn write(&mut self, frozen: bool) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if let Some(file) = &self.file {
            file.write_at(if frozen { self.freeze } else { self.thaw }.as_bytes(), 0)?;
            self.requested = frozen;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits (on the current tokio runtime) until the sandbox exits, then reaps it and tells the
/// Runtime API server, which fails a pending invoke with `EnvironmentGone`.
pub(crate) async fn watch(env: Arc<Environment>, pidfd: OwnedFd) {
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd` and stays open, the same descriptor,
    // until the `AsyncFd` is dropped at the end of this function.
    let registered = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) };
    match registered {
        Ok(fd) => {
            // A pidfd polls readable once the process has exited.
            let _ = fd.readable().await;
        }
        Err(e) => {
            tracing::warn!(env = %env.id, error = %e, "cannot watch an environment's process; polling it instead");
            while !env.reap() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    env.exited.store(true, Ordering::Release);
    env.life().state = EnvironmentState::Gone;
    env.api.environment_died();
    env.reap();
}

/// Shuts an environment down (blocking): thaws and kills everything in its cgroup and in any
/// cgroup below it (a nested, separately frozen cgroup would otherwise keep a v1-frozen
/// process from dying), waits until they are gone, removes the cgroups deepest first, and
/// reaps the sandbox. Returns what could not be removed.
pub(crate) fn destroy(driver: &dyn CgroupDriver, env: &Environment, wait: Duration) -> Vec<(PathBuf, String)> {
    env.life().state = EnvironmentState::Gone;
    env.api.environment_died();
    let left = remove_tree(driver, &env.cgroup, wait);
    // The sandbox exits as soon as its runtime is gone; reap it without ever blocking long.
    let t0 = Instant::now();
    while !env.reap() && t0.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_micros(200));
    }
    left
}

/// Sends the kill to every environment's cgroup first, so that they die in parallel.
pub(crate) fn kill(driver: &dyn CgroupDriver, env: &Environment) {
    thaw_below(&env.cgroup);
    let _ = driver.kill(&env.cgroup);
}

/// Thaws every cgroup strictly below `cg` (in any hierarchy) that a freezer froze.
fn thaw_below(cg: &Cgroup) {
    for dir in &cg.dirs {
        let mut below = Vec::new();
        subdirs(dir, &mut below);
        for d in below {
            let _ = std::fs::write(d.join("cgroup.freeze"), "0");
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
        }
    }
}

/// Every directory strictly below `dir`, deepest first.
fn subdirs(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                subdirs(&e.path(), out);
                out.push(e.path());
            }
        }
    }
}

fn remove_tree(driver: &dyn CgroupDriver, cg: &Cgroup, wait: Duration) -> Vec<(PathBuf, String)> {
    let mut below = Vec::new();
    for dir in &cg.dirs {
        subdirs(dir, &mut below);
    }
    if below.is_empty() {
        return cgroup::remove(driver, cg, wait);
    }
    thaw_below(cg);
    let _ = driver.kill(cg);
    // Processes in the nested cgroups (v2's cgroup.kill reaches them; v1 needs them named).
    for d in &below {
        let _ = cgroup::kill_listed(d);
    }
    let t0 = Instant::now();
    loop {
        let busy: Vec<&PathBuf> = below.iter().filter(|d| !cgroup::procs(d).unwrap_or_default().is_empty()).collect();
        if busy.is_empty() {
            break;
        }
        if t0.elapsed() > wait {
            return busy.into_iter().map(|d| (d.clone(), format!("processes still running after {wait:?}"))).collect();
        }
        for d in busy {
            let _ = cgroup::kill_listed(d);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut left = Vec::new();
    for d in &below {
        if let Err(e) = cgroup::rmdir_retry(d, Duration::from_secs(1)) {
            left.push((d.clone(), format!("rmdir: {e}")));
        }
    }
    left.extend(cgroup::remove(driver, cg, wait));
    left
}
