//! The sandbox: a small single-threaded executable (`isobench-sandbox`) that turns itself into
//! an instance and starts the workload in it.
//!
//! It exists because the isolation steps (joining cgroups, entering and creating namespaces,
//! mounting, forking, dropping privileges) are unsafe to do in `pre_exec` of a multi-threaded
//! parent such as the harness. Like firecracker's jailer, it performs them in one visible order,
//! in one function, [`isolate`]:
//!
//! 1. die with the harness (`PR_SET_PDEATHSIG`), and refuse to start if it already died;
//! 2. open the instance's v2 cgroup (for step 7);
//! 3. join the instance's network namespace (`setns`, from a descriptor the harness passed);
//! 4. `unshare` mount, UTS, IPC and pid namespaces;
//! 5. make every mount private, so nothing below propagates back to the host;
//! 6. mount private tmpfs on `/tmp`, `/var/tmp` and `/dev/shm` (mode 1777, size bounded), and
//!    set the hostname to the instance id;
//! 7. fork straight into the v2 cgroup (`clone3` with `CLONE_INTO_CGROUP`; on kernels before
//!    5.7, `fork` and join through `cgroup.procs`). The child is PID 1 of the new pid
//!    namespace and runs `exec_workload`: join the v1 cgroups by moving its only thread
//!    (`0` to each `tasks` file), mount a fresh `/proc`, die with its parent, drop all groups,
//!    `setgid`, `setuid` to the instance's own ids, set `no_new_privs`, mark every inherited
//!    descriptor above 2 close-on-exec, and `execveat` the workload through the descriptor the
//!    harness opened;
//! 8. the parent reports the workload's host pid on the status descriptor, forwards SIGTERM and
//!    SIGINT to it, waits, and exits with its status.
//!
//! Only the workload's process tree is in the instance's cgroups; the sandbox waits outside
//! them. So a kill through the cgroup (`cgroup.kill`) ends the workload, the sandbox reaps it
//! and exits, and the harness reaps the sandbox: no process is orphaned, which matters on hosts
//! whose init does not reap orphans. Joining by thread and by `CLONE_INTO_CGROUP` rather than
//! `cgroup.procs` avoids the kernel's global threadgroup lock (see `CgroupDriver::join`).
//!
//! Arguments travel on the command line ([`SandboxSpec::to_args`] / [`SandboxSpec::parse`]);
//! descriptors are inherited at the numbers the arguments name. Errors go to stderr (which the
//! harness captures) as `isobench-sandbox: failed to <step>: <cause>`, with exit status 125.

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::prctl;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::stat::{Mode, umask};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, chdir, fork, getpid, getppid, setgid, setgroups, sethostname, setuid};

/// Exit status of the sandbox when an isolation step failed.
pub const EXIT_SETUP_FAILED: i32 = 125;
/// Exit status of the workload process when `execveat` failed.
pub const EXIT_EXEC_FAILED: i32 = 127;

/// Everything the sandbox needs, as passed on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// v1 cgroup directories the workload joins by moving its only thread (`tasks`).
    pub cgroup_threads: Vec<PathBuf>,
    /// The v2 cgroup directory to fork the workload into.
    pub cgroup_clone_into: Option<PathBuf>,
    /// Inherited descriptor of the instance's network namespace.
    pub netns_fd: RawFd,
    /// Inherited descriptor of the workload executable.
    pub exe_fd: RawFd,
    /// Inherited descriptor the sandbox writes `pid <n>` to once the workload is forked.
    pub status_fd: RawFd,
    /// The harness's pid: if our parent is no longer this, the harness died before we could
    /// arrange to die with it.
    pub parent_pid: i32,
    pub hostname: String,
    pub uid: u32,
    pub gid: u32,
    /// Directories that get a private tmpfs each (skipped where they do not exist).
    pub tmpfs: Vec<PathBuf>,
    pub tmpfs_size: u64,
    /// The workload's whole environment, `KEY=VALUE`.
    pub env: Vec<OsString>,
    /// The workload's argv, `argv[0]` first.
    pub argv: Vec<OsString>,
}

impl SandboxSpec {
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut kv = |k: &str, v: OsString| {
            a.push(k.into());
            a.push(v);
        };
        for p in &self.cgroup_threads {
            kv("--cgroup-thread", p.clone().into());
        }
        if let Some(p) = &self.cgroup_clone_into {
            kv("--cgroup-clone-into", p.clone().into());
        }
        kv("--netns-fd", self.netns_fd.to_string().into());
        kv("--exe-fd", self.exe_fd.to_string().into());
        kv("--status-fd", self.status_fd.to_string().into());
        kv("--parent-pid", self.parent_pid.to_string().into());
        kv("--hostname", self.hostname.clone().into());
        kv("--uid", self.uid.to_string().into());
        kv("--gid", self.gid.to_string().into());
        for p in &self.tmpfs {
            kv("--tmpfs", p.clone().into());
        }
        kv("--tmpfs-size", self.tmpfs_size.to_string().into());
        for e in &self.env {
            kv("--env", e.clone());
        }
        a.push("--".into());
        a.extend(self.argv.iter().cloned());
        a
    }

    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<SandboxSpec, String> {
        let mut s = SandboxSpec {
            cgroup_threads: Vec::new(),
            cgroup_clone_into: None,
            netns_fd: -1,
            exe_fd: -1,
            status_fd: -1,
            parent_pid: 0,
            hostname: String::new(),
            uid: 0,
            gid: 0,
            tmpfs: Vec::new(),
            tmpfs_size: 0,
            env: Vec::new(),
            argv: Vec::new(),
        };
        let mut it = args.into_iter();
        fn num<T: std::str::FromStr>(k: &str, v: &OsString) -> Result<T, String> {
            v.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{k} needs a number, got {v:?}"))
        }
        while let Some(k) = it.next() {
            if k == "--" {
                s.argv = it.collect();
                break;
            }
            let key = k.to_string_lossy().into_owned();
            let v = it.next().ok_or_else(|| format!("{key} needs a value"))?;
            match key.as_str() {
                "--cgroup-thread" => s.cgroup_threads.push(v.into()),
                "--cgroup-clone-into" => s.cgroup_clone_into = Some(v.into()),
                "--netns-fd" => s.netns_fd = num(&key, &v)?,
                "--exe-fd" => s.exe_fd = num(&key, &v)?,
                "--status-fd" => s.status_fd = num(&key, &v)?,
                "--parent-pid" => s.parent_pid = num(&key, &v)?,
                "--hostname" => s.hostname = v.to_string_lossy().into_owned(),
                "--uid" => s.uid = num(&key, &v)?,
                "--gid" => s.gid = num(&key, &v)?,
                "--tmpfs" => s.tmpfs.push(v.into()),
                "--tmpfs-size" => s.tmpfs_size = num(&key, &v)?,
                "--env" => s.env.push(v),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if s.argv.is_empty() {
            return Err("no workload argv after `--`".into());
        }
        if s.netns_fd < 3 || s.exe_fd < 3 || s.status_fd < 3 {
            return Err("--netns-fd, --exe-fd and --status-fd are required (3 or more)".into());
        }
        if s.uid == 0 || s.gid == 0 {
            return Err("--uid and --gid must name an unprivileged user (not 0)".into());
        }
        Ok(s)
    }
}

/// A failed isolation step.
#[derive(Debug)]
pub struct StepError {
    step: String,
    cause: String,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.cause)
    }
}

fn step<T, E: std::fmt::Display>(what: impl Into<String>, r: Result<T, E>) -> Result<T, StepError> {
    r.map_err(|e| StepError { step: what.into(), cause: e.to_string() })
}

/// The `isobench-sandbox` entry point.
pub fn main() -> ! {
    let code = match SandboxSpec::parse(std::env::args_os().skip(1)) {
        Err(e) => {
            eprintln!("isobench-sandbox: bad arguments: {e}");
            EXIT_SETUP_FAILED
        }
        Ok(spec) => match isolate(&spec) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("isobench-sandbox: failed to {e}");
                EXIT_SETUP_FAILED
            }
        },
    };
    std::process::exit(code)
}

/// Takes ownership of a descriptor the harness passed us.
fn inherited(fd: RawFd, what: &str) -> Result<OwnedFd, StepError> {
    // SAFETY: fcntl(F_GETFD) only queries the descriptor's flags; it fails on a closed one.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(StepError { step: format!("use the inherited {what} descriptor {fd}"), cause: "not open".into() });
    }
    // SAFETY: the descriptor is open (checked above) and was passed to this process for this
    // purpose only; nothing else in this single-threaded program refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The isolation steps, in order. Returns the workload's exit status (128+signal if killed).
pub fn isolate(spec: &SandboxSpec) -> Result<i32, StepError> {
    let netns = inherited(spec.netns_fd, "network namespace")?;
    let exe = inherited(spec.exe_fd, "workload executable")?;
    let status = inherited(spec.status_fd, "status")?;

    // 1. Die with the harness; if it is already gone, stop here.
    step("set PR_SET_PDEATHSIG", prctl::set_pdeathsig(Signal::SIGKILL))?;
    if getppid().as_raw() != spec.parent_pid {
        return Err(StepError { step: "start".into(), cause: "the harness exited before the sandbox started".into() });
    }

    // 2. The v2 cgroup the workload is forked into (step 7).
    let v2 = match &spec.cgroup_clone_into {
        Some(dir) => Some(step(
            format!("open cgroup {}", dir.display()),
            std::fs::File::open(dir).map(|f| (OwnedFd::from(f), dir.clone())),
        )?),
        None => None,
    };

    // 3. The instance's network namespace (veth `eth0` and `lo`, already configured).
    step("join the instance network namespace", setns(&netns, CloneFlags::CLONE_NEWNET))?;
    drop(netns);

    // 4. New mount, UTS, IPC and pid namespaces (the pid one applies to our children).
    step(
        "unshare mount, uts, ipc and pid namespaces",
        unshare(
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID,
        ),
    )?;

    // 5. Nothing mounted from here on may propagate to the host.
    step(
        "make / private",
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>),
    )?;

    // 6. Private, bounded, world-writable scratch space, and the instance's own hostname.
    let opts = format!("mode=1777,size={}", spec.tmpfs_size);
    for dir in &spec.tmpfs {
        if dir.is_dir() {
            step(
                format!("mount a private tmpfs on {}", dir.display()),
                mount(Some("tmpfs"), dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(opts.as_str())),
            )?;
        }
    }

    step(format!("set the hostname to {}", spec.hostname), sethostname(&spec.hostname))?;

    // 7. Fork the workload, into the v2 cgroup, as PID 1 of the new pid namespace. The pipe
    //    tells the child whether we are still alive after it set its own death signal.
    let (alive_r, alive_w) = step("create a pipe", nix::unistd::pipe())?;
    // SAFETY: this program is single-threaded (no thread is ever started), so the child may
    // run arbitrary code, including allocation, after the fork.
    match step("fork the workload process", unsafe { fork_into(v2.as_ref()) })? {
        ForkResult::Child => {
            drop(alive_w);
            drop(status);
            let e = exec_workload(spec, &exe, alive_r);
            eprintln!("isobench-sandbox: failed to {e}");
            // SAFETY: _exit(2) ends the child without running the parent's atexit handlers
            // or flushing buffers it shares with the parent.
            unsafe { libc::_exit(EXIT_EXEC_FAILED) }
        }
        ForkResult::Parent { child } => {
            drop(v2);
            drop(alive_r);
            drop(exe);
            supervise(child, status, alive_w)
        }
    }
}

/// `struct clone_args` of clone3(2), up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `fork`, with the child born in the v2 cgroup `v2` when given (on a kernel without
/// `clone3`, the child joins it through `cgroup.procs` instead).
///
/// # Safety
/// As for `fork`: the caller must be single-threaded, or the child may only call
/// async-signal-safe functions.
unsafe fn fork_into(v2: Option<&(OwnedFd, PathBuf)>) -> Result<ForkResult, String> {
    let Some((fd, dir)) = v2 else {
        // SAFETY: forwarded to the caller.
        return unsafe { fork() }.map_err(|e| e.to_string());
    };
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed. Without CLONE_VM and with no
    // stack given, clone3 behaves as fork: the child continues here on a copy of our memory.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, size_of::<CloneArgs>()) };
    match r {
        0 => Ok(ForkResult::Child),
        pid if pid > 0 => Ok(ForkResult::Parent { child: Pid::from_raw(pid as libc::pid_t) }),
        _ => {
            let e = std::io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)) {
                return Err(format!("clone3 into {}: {e}", dir.display()));
            }
            // An older kernel: fork, and the child joins through cgroup.procs (slower).
            // SAFETY: forwarded to the caller.
            let r = unsafe { fork() }.map_err(|e| e.to_string())?;
            if let ForkResult::Child = r {
                let procs = dir.join("cgroup.procs");
                if let Err(e) = std::fs::write(&procs, getpid().to_string()) {
                    eprintln!("isobench-sandbox: failed to join {}: {e}", procs.display());
                    // SAFETY: _exit(2) in the forked child; nothing shared is flushed.
                    unsafe { libc::_exit(EXIT_SETUP_FAILED) };
                }
            }
            Ok(r)
        }
    }
}

/// In the forked child: the last steps before the workload runs. Returns only on failure.
fn exec_workload(spec: &SandboxSpec, exe: &OwnedFd, alive: OwnedFd) -> StepError {
    let r = (|| -> Result<(), StepError> {
        // The v1 cgroups, before anything else: this process is single-threaded, so moving
        // its thread moves all of it, and everything from here on is accounted and limited.
        for dir in &spec.cgroup_threads {
            let tasks = dir.join("tasks");
            step(format!("join cgroup {}", tasks.display()), std::fs::write(&tasks, "0"))?;
        }
        // A /proc that shows this pid namespace only.
        step(
            "mount /proc",
            mount(
                Some("proc"),
                "/proc",
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            ),
        )?;
        step("set PR_SET_PDEATHSIG", prctl::set_pdeathsig(Signal::SIGKILL))?;
        // Our parent is outside this pid namespace (getppid() is 0), so liveness is read from
        // the pipe: a hang-up means the parent died before our death signal was armed.
        let mut fds = [PollFd::new(alive.as_fd(), PollFlags::POLLIN)];
        step("check the sandbox is alive", poll(&mut fds, PollTimeout::ZERO))?;
        if fds[0].revents().is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLIN)) {
            return Err(StepError { step: "start".into(), cause: "the sandbox exited".into() });
        }
        step("chdir to /", chdir("/"))?;
        umask(Mode::from_bits_truncate(0o022));
        // Drop root: no supplementary groups, then gid, then uid (after which no capability
        // is left), and no way back through set-uid executables.
        step("drop supplementary groups", setgroups(&[]))?;
        step(format!("setgid {}", spec.gid), setgid(Gid::from_raw(spec.gid)))?;
        step(format!("setuid {}", spec.uid), setuid(Uid::from_raw(spec.uid)))?;
        step("set no_new_privs", prctl::set_no_new_privs())?;
        cloexec_from(3).map_err(|e| StepError { step: "mark inherited descriptors close-on-exec".into(), cause: e })?;
        Ok(())
    })();
    if let Err(e) = r {
        return e;
    }
    let argv: Vec<CString> = spec.argv.iter().map(|a| cstring(a.as_bytes())).collect();
    let envp: Vec<CString> = spec.env.iter().map(|a| cstring(a.as_bytes())).collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let empty = c"";
    // SAFETY: `exe` is an open descriptor of the executable; `empty`, `argv_p` and `envp_p`
    // are NUL-terminated strings and NULL-terminated pointer arrays that outlive the call
    // (which returns only on failure). execveat is called through syscall(2) so that an older
    // C library without the wrapper still works.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            exe.as_raw_fd(),
            empty.as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    StepError {
        step: format!("execute the workload {:?}", spec.argv[0]),
        cause: std::io::Error::last_os_error().to_string(),
    }
}

fn cstring(b: &[u8]) -> CString {
    CString::new(b.iter().copied().filter(|c| *c != 0).collect::<Vec<u8>>()).expect("NULs removed")
}

/// Marks every descriptor from `first` up close-on-exec (`close_range`, or `/proc/self/fd`
/// on kernels before 5.11).
fn cloexec_from(first: RawFd) -> Result<(), String> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range(2) with the CLOEXEC flag only changes descriptor flags.
    let r =
        unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())?;
    let fds: Vec<RawFd> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds.into_iter().filter(|fd| *fd >= first) {
        // SAFETY: F_SETFD on a descriptor number; one that was only the directory's own
        // (now closed) descriptor fails harmlessly.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes plain integers.
        unsafe { libc::kill(pid, sig) };
    }
}

/// 8. The parent's part: report the pid, forward signals, wait, pass on the exit status.
fn supervise(child: Pid, status: OwnedFd, alive: OwnedFd) -> Result<i32, StepError> {
    CHILD.store(child.as_raw(), Ordering::SeqCst);
    let action = SigAction::new(SigHandler::Handler(forward), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only reads an atomic and calls kill(2), both async-signal-safe.
        step(format!("handle {sig}"), unsafe { sigaction(sig, &action) })?;
    }
    let mut f = std::fs::File::from(status);
    // The harness may have stopped listening; the workload runs either way.
    let _ = writeln!(f, "pid {}", child.as_raw());
    drop(f);
    let code = loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(StepError { step: "wait for the workload".into(), cause: e.to_string() }),
        }
    };
    drop(alive);
    Ok(code)
}

/// Splits an OS string list into a `KEY=VALUE` environment, for building a [`SandboxSpec`].
pub fn env_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<OsString> {
    pairs.into_iter().map(|(k, v)| OsString::from_vec(format!("{k}={v}").into_bytes())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            cgroup_threads: vec!["/sys/fs/cgroup/pids/isobench/r/i".into()],
            cgroup_clone_into: Some("/sys/fs/cgroup/unified/isobench/r/i".into()),
            netns_fd: 3,
            exe_fd: 4,
            status_fd: 5,
            parent_pid: 42,
            hostname: "silo-ec2-0".into(),
            uid: 200_000,
            gid: 200_000,
            tmpfs: vec!["/tmp".into(), "/dev/shm".into()],
            tmpfs_size: 1 << 20,
            env: env_pairs([("PATH", "/usr/bin:/bin"), ("HOME", "/")]),
            argv: vec!["tenant-app".into(), "serve".into(), "--tenant".into(), "t1".into()],
        }
    }

    #[test]
    fn arguments_round_trip() {
        let s = spec();
        assert_eq!(SandboxSpec::parse(s.to_args()).unwrap(), s);
    }

    #[test]
    fn root_and_missing_descriptors_are_refused() {
        let mut s = spec();
        s.uid = 0;
        assert!(SandboxSpec::parse(s.to_args()).unwrap_err().contains("unprivileged"));
        let mut s = spec();
        s.exe_fd = -1;
        assert!(SandboxSpec::parse(s.to_args()).is_err());
        assert!(SandboxSpec::parse(vec!["--bogus".into(), "1".into()]).is_err());
    }
}
