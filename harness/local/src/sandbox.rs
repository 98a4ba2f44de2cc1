//! The sandbox: a small single-threaded executable (`isobench-sandbox`) that turns itself into
//! an instance and starts the workload in it.
//!
//! It exists because the isolation steps (joining cgroups, entering and creating namespaces,
//! mounting, forking, dropping privileges) are unsafe to do in `pre_exec` of a multi-threaded
//! parent such as the harness. Like firecracker's jailer, it performs them in one visible order,
//! in one function, [`isolate`]:
//!
//! 1. die with the harness (`PR_SET_PDEATHSIG`), and refuse to start if it already died;
//! 2. open the instance's cgroups: the v2 directory (for step 8) and the v1 `tasks` files the
//!    child joins through (opened here, in the host's mount namespace, so that step 7 cannot
//!    make them unwritable);
//! 3. join the instance's network namespace (`setns`, from a descriptor the harness passed);
//! 4. `unshare` mount, UTS, IPC and pid namespaces;
//! 5. make every mount private, so nothing below propagates back to the host;
//! 6. (Lambda view) open the sources of read-only binds, hide directories under an empty tmpfs
//!    each (`/var`, `/run`, ...) and bind the function's code read-only at its place
//!    (`/var/task`), its mount point made inside a hidden directory: the host's filesystem is
//!    never modified;
//! 7. (Lambda view) make the whole mount tree read-only (`mount_setattr` with
//!    `MOUNT_ATTR_RDONLY` and `AT_RECURSIVE`; per mount on kernels before 5.12);
//! 8. mount private tmpfs on `/tmp`, `/var/tmp` and `/dev/shm` (mode 1777, size bounded; a
//!    directory the harness shares between instances instead where an isolation fault says so;
//!    only `/tmp` in the Lambda view), and set the hostname to the instance id;
//! 9. fork straight into the v2 cgroup (`clone3` with `CLONE_INTO_CGROUP`; on kernels before
//!    5.7, `fork` and join through `cgroup.procs`). The child is PID 1 of the new pid
//!    namespace and runs `exec_workload`: join the v1 cgroups by moving its only thread
//!    (`0` to each `tasks` file), mount a fresh `/proc`, die with its parent, change to its
//!    working directory (`/`, or `/var/task`), drop all groups, `setgid`, `setuid` to the
//!    instance's own ids, set `no_new_privs`, mark every inherited descriptor above 2
//!    close-on-exec, and `execveat` the workload through the descriptor the harness opened (or,
//!    in the Lambda view, `execve` the function's `/var/task/bootstrap` by path, so that a `#!`
//!    script works as on Lambda);
//! 10. the parent reports the workload's host pid on the status descriptor, forwards SIGTERM
//!     and SIGINT to it, waits, and exits with its status.
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
use std::path::{Component, Path, PathBuf};
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
    /// `(mount point, source)`: a harness-owned directory bound read-write at one of the `tmpfs`
    /// mount points instead of a private tmpfs, shared by every instance given it (the
    /// `shared-tmp` isolation fault, for testing the probes; empty otherwise).
    pub tmp_binds: Vec<(PathBuf, PathBuf)>,
    /// The workload's whole environment, `KEY=VALUE`.
    pub env: Vec<OsString>,
    /// The workload's argv, `argv[0]` first.
    pub argv: Vec<OsString>,
    /// What a Lambda execution environment's filesystem adds; the default adds nothing.
    pub view: FsView,
}

/// The filesystem view of a Lambda execution environment (steps 6 and 7 of [`isolate`]) and
/// where its process is executed from. The default is an instance's view: the host's
/// filesystem with private scratch space, the workload executed through `exe_fd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsView {
    /// Directories each covered by an empty, root-owned tmpfs (skipped where they do not exist).
    pub hide: Vec<PathBuf>,
    /// `(mount point, source)`: the source bound read-only (nosuid, nodev) at the mount point,
    /// which must exist or lie inside a `hide` directory.
    pub ro_binds: Vec<(PathBuf, PathBuf)>,
    /// Make the whole mount tree read-only before the private tmpfs mounts.
    pub read_only: bool,
    /// The workload's working directory (`/` when unset).
    pub cwd: Option<PathBuf>,
    /// Execute this path (as the workload's view has it) instead of `exe_fd`.
    pub exe_path: Option<PathBuf>,
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
        for (at, src) in &self.tmp_binds {
            let mut pair = at.clone().into_os_string();
            pair.push("=");
            pair.push(src);
            kv("--tmp-bind", pair);
        }
        for e in &self.env {
            kv("--env", e.clone());
        }
        let v = &self.view;
        for p in &v.hide {
            kv("--hide", p.clone().into());
        }
        for (at, src) in &v.ro_binds {
            // `AT=SOURCE`: the mount point is the harness's choice and never holds a `=`.
            let mut pair = at.clone().into_os_string();
            pair.push("=");
            pair.push(src);
            kv("--bind-ro", pair);
        }
        if v.read_only {
            kv("--read-only", "true".into());
        }
        if let Some(p) = &v.cwd {
            kv("--cwd", p.clone().into());
        }
        if let Some(p) = &v.exe_path {
            kv("--exe-path", p.clone().into());
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
            tmp_binds: Vec::new(),
            env: Vec::new(),
            argv: Vec::new(),
            view: FsView::default(),
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
                "--tmp-bind" => {
                    let bytes = v.as_bytes();
                    let eq = bytes.iter().position(|b| *b == b'=').ok_or("--tmp-bind needs AT=SOURCE")?;
                    let at = OsString::from_vec(bytes[..eq].to_vec());
                    let src = OsString::from_vec(bytes[eq + 1..].to_vec());
                    s.tmp_binds.push((at.into(), src.into()));
                }
                "--env" => s.env.push(v),
                "--hide" => s.view.hide.push(v.into()),
                "--bind-ro" => {
                    let bytes = v.as_bytes();
                    let eq = bytes.iter().position(|b| *b == b'=').ok_or("--bind-ro needs AT=SOURCE")?;
                    let at = OsString::from_vec(bytes[..eq].to_vec());
                    let src = OsString::from_vec(bytes[eq + 1..].to_vec());
                    s.view.ro_binds.push((at.into(), src.into()));
                }
                "--read-only" => s.view.read_only = v == "true",
                "--cwd" => s.view.cwd = Some(v.into()),
                "--exe-path" => s.view.exe_path = Some(v.into()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if s.argv.is_empty() {
            return Err("no workload argv after `--`".into());
        }
        if s.netns_fd < 3 || (s.exe_fd < 3 && s.view.exe_path.is_none()) || s.status_fd < 3 {
            return Err("--netns-fd, --exe-fd (or --exe-path) and --status-fd are required (3 or more)".into());
        }
        for (at, _) in &s.view.ro_binds {
            if !at.is_absolute() || !at.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))) {
                return Err(format!("--bind-ro mount point {} must be an absolute path without `..`", at.display()));
            }
        }
        for (at, _) in &s.tmp_binds {
            if !s.tmpfs.contains(at) {
                return Err(format!("--tmp-bind mount point {} is not a --tmpfs mount point", at.display()));
            }
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
    let exe = match spec.view.exe_path {
        Some(_) => None,
        None => Some(inherited(spec.exe_fd, "workload executable")?),
    };
    let status = inherited(spec.status_fd, "status")?;

    // 1. Die with the harness; if it is already gone, stop here.
    step("set PR_SET_PDEATHSIG", prctl::set_pdeathsig(Signal::SIGKILL))?;
    if getppid().as_raw() != spec.parent_pid {
        return Err(StepError { step: "start".into(), cause: "the harness exited before the sandbox started".into() });
    }

    // 2. The v2 cgroup the workload is forked into (step 9) and the v1 `tasks` files it joins
    //    through, opened in the host's mount namespace, before anything is made read-only.
    let v2 = match &spec.cgroup_clone_into {
        Some(dir) => Some(step(
            format!("open cgroup {}", dir.display()),
            std::fs::File::open(dir).map(|f| (OwnedFd::from(f), dir.clone())),
        )?),
        None => None,
    };
    let mut tasks = Vec::with_capacity(spec.cgroup_threads.len());
    for dir in &spec.cgroup_threads {
        let path = dir.join("tasks");
        let f = step(format!("open {}", path.display()), std::fs::OpenOptions::new().write(true).open(&path))?;
        tasks.push((f, path));
    }
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

    // 6. Hidden directories (an empty tmpfs each) and the read-only binds, whose mount points
    //    are made only inside a hidden directory: the host's filesystem is never written. The
    //    sources are opened first (a bind's source must be in this mount namespace, and may lie
    //    in a directory about to be hidden).
    // The shared scratch directories of step 8 too, before anything is hidden.
    let mut tmp_sources = Vec::with_capacity(spec.tmp_binds.len());
    for (at, src) in &spec.tmp_binds {
        let fd = step(format!("open the shared directory {}", src.display()), open_path(src))?;
        tmp_sources.push((at, src, fd));
    }
    let mut bind_sources = Vec::with_capacity(spec.view.ro_binds.len());
    for (_, src) in &spec.view.ro_binds {
        let fd = step(format!("open the bind source {}", src.display()), open_path(src))?;
        bind_sources.push(fd);
    }
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for dir in &spec.view.hide {
        if dir.is_dir() {
            step(
                format!("hide {} under an empty tmpfs", dir.display()),
                mount(Some("tmpfs"), dir, Some("tmpfs"), nosuid_nodev, Some("mode=0755,size=1m")),
            )?;
        }
    }
    for ((at, src), fd) in spec.view.ro_binds.iter().zip(&bind_sources) {
        if !at.exists() {
            if !spec.view.hide.iter().any(|h| at.starts_with(h)) {
                return Err(StepError {
                    step: format!("bind {} at {}", src.display(), at.display()),
                    cause: "the mount point does not exist and lies in no hidden directory".into(),
                });
            }
            step(format!("create the mount point {}", at.display()), std::fs::create_dir_all(at))?;
        }
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let what = format!("bind {} read-only at {}", src.display(), at.display());
        step(what.clone(), mount(Some(proc_path.as_str()), at, None::<&str>, MsFlags::MS_BIND, None::<&str>))?;
        let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | nosuid_nodev;
        step(what, mount(None::<&str>, at, None::<&str>, ro, None::<&str>))?;
    }
    drop(bind_sources);

    // 7. Everything read-only: what remains writable is the private tmpfs of step 8.
    if spec.view.read_only {
        step("make every mount read-only", read_only_tree())?;
    }

    // 8. Private, bounded, world-writable scratch space, and the instance's own hostname.
    let opts = format!("mode=1777,size={}", spec.tmpfs_size);
    for dir in &spec.tmpfs {
        if let Some((_, src, fd)) = tmp_sources.iter().find(|(at, _, _)| *at == dir) {
            let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let what = format!("bind the shared directory {} at {}", src.display(), dir.display());
            step(what.clone(), mount(Some(proc_path.as_str()), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>))?;
            let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | nosuid_nodev;
            step(what, mount(None::<&str>, dir, None::<&str>, flags, None::<&str>))?;
        } else if dir.is_dir() {
            step(
                format!("mount a private tmpfs on {}", dir.display()),
                mount(Some("tmpfs"), dir, Some("tmpfs"), nosuid_nodev, Some(opts.as_str())),
            )?;
        }
    }
    drop(tmp_sources);

    step(format!("set the hostname to {}", spec.hostname), sethostname(&spec.hostname))?;

    // 9. Fork the workload, into the v2 cgroup, as PID 1 of the new pid namespace. The pipe
    //    tells the child whether we are still alive after it set its own death signal.
    let (alive_r, alive_w) = step("create a pipe", nix::unistd::pipe())?;
    // SAFETY: this program is single-threaded (no thread is ever started), so the child may
    // run arbitrary code, including allocation, after the fork.
    match step("fork the workload process", unsafe { fork_into(v2.as_ref()) })? {
        ForkResult::Child => {
            drop(alive_w);
            drop(status);
            let e = exec_workload(spec, exe.as_ref(), &tasks, alive_r);
            eprintln!("isobench-sandbox: failed to {e}");
            // SAFETY: _exit(2) ends the child without running the parent's atexit handlers
            // or flushing buffers it shares with the parent.
            unsafe { libc::_exit(EXIT_EXEC_FAILED) }
        }
        ForkResult::Parent { child } => {
            drop(v2);
            drop(tasks);
            drop(alive_r);
            drop(exe);
            supervise(child, status, alive_w)
        }
    }
}

/// An `O_PATH` descriptor of `path` (what a bind mount through `/proc/self/fd` needs).
fn open_path(path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_CLOEXEC).open(path)?;
    Ok(f.into())
}

/// `struct mount_attr` of mount_setattr(2) (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_int = 0x8000;

/// Makes every mount of this mount namespace read-only: `mount_setattr` on `/` with
/// `AT_RECURSIVE` (Linux 5.12+), else a read-only bind remount of each mount point listed in
/// `/proc/self/mountinfo` (keeping its nosuid, nodev and noexec flags).
fn read_only_tree() -> Result<(), String> {
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: a NUL-terminated path and a valid mount_attr of the size passed, both live for
    // the call; mount_setattr only changes mount flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c"/".as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(format!("mount_setattr: {e}"));
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("read mountinfo: {e}"))?;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(opts)) = (fields.get(4), fields.get(5)) else { continue };
        let point = unescape_mount_point(point);
        let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        let kept = [("nosuid", MsFlags::MS_NOSUID), ("nodev", MsFlags::MS_NODEV), ("noexec", MsFlags::MS_NOEXEC)];
        for (name, f) in kept {
            if opts.split(',').any(|o| o == name) {
                flags |= f;
            }
        }
        match mount(None::<&str>, point.as_str(), None::<&str>, flags, None::<&str>) {
            // A mount point under another mount (shadowed) cannot be reached, nor written.
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(format!("remount {point} read-only: {e}")),
        }
    }
    Ok(())
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mount_point(s: &str) -> String {
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
fn exec_workload(
    spec: &SandboxSpec,
    exe: Option<&OwnedFd>,
    tasks: &[(std::fs::File, PathBuf)],
    alive: OwnedFd,
) -> StepError {
    let r = (|| -> Result<(), StepError> {
        // The v1 cgroups, before anything else: this process is single-threaded, so moving
        // its thread moves all of it, and everything from here on is accounted and limited.
        for (file, path) in tasks {
            step(format!("join cgroup {}", path.display()), (&*file).write_all(b"0"))?;
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
        let cwd = spec.view.cwd.as_deref().unwrap_or(Path::new("/"));
        step(format!("chdir to {}", cwd.display()), chdir(cwd))?;
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
    match (exe, &spec.view.exe_path) {
        (_, Some(path)) => {
            let path = cstring(path.as_os_str().as_bytes());
            // SAFETY: `path`, `argv_p` and `envp_p` are a NUL-terminated string and
            // NULL-terminated pointer arrays that outlive the call (which returns only on
            // failure).
            unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        }
        (Some(exe), None) => {
            // SAFETY: `exe` is an open descriptor of the executable; `empty`, `argv_p` and
            // `envp_p` are NUL-terminated strings and NULL-terminated pointer arrays that
            // outlive the call (which returns only on failure). execveat is called through
            // syscall(2) so that an older C library without the wrapper still works.
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
        }
        (None, None) => {
            return StepError { step: "execute the workload".into(), cause: "no executable was given".into() };
        }
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
    // One write(2) (atomic on a pipe): `writeln!` would issue several, and a reader could see
    // `pid ` without the number.
    let _ = f.write_all(format!("pid {}\n", child.as_raw()).as_bytes());
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
            tmp_binds: Vec::new(),
            env: env_pairs([("PATH", "/usr/bin:/bin"), ("HOME", "/")]),
            argv: vec!["tenant-app".into(), "serve".into(), "--tenant".into(), "t1".into()],
            view: FsView::default(),
        }
    }

    #[test]
    fn arguments_round_trip() {
        let s = spec();
        assert_eq!(SandboxSpec::parse(s.to_args()).unwrap(), s);
    }

    #[test]
    fn a_lambda_view_round_trips_and_needs_no_executable_descriptor() {
        let mut s = spec();
        s.exe_fd = -1;
        s.view = FsView {
            hide: vec!["/var".into(), "/run".into()],
            ro_binds: vec![("/var/task".into(), "/run/isobench/r.staged/f=x".into())],
            read_only: true,
            cwd: Some("/var/task".into()),
            exe_path: Some("/var/task/bootstrap".into()),
        };
        assert_eq!(SandboxSpec::parse(s.to_args()).unwrap(), s);
        s.view.ro_binds = vec![("/var/../etc".into(), "/x".into())];
        assert!(SandboxSpec::parse(s.to_args()).unwrap_err().contains("without `..`"));
        s.view = FsView::default();
        assert!(SandboxSpec::parse(s.to_args()).is_err(), "no executable at all");
    }

    #[test]
    fn a_shared_tmp_round_trips_and_must_replace_a_tmpfs() {
        let mut s = spec();
        s.tmp_binds = vec![("/tmp".into(), "/run/isobench/r.shared-tmp".into())];
        assert_eq!(SandboxSpec::parse(s.to_args()).unwrap(), s);
        s.tmp_binds = vec![("/etc".into(), "/x".into())];
        assert!(SandboxSpec::parse(s.to_args()).unwrap_err().contains("not a --tmpfs"));
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount_point("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_point("/plain"), "/plain");
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
