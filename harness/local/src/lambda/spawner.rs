//! The spawners: a pool of long-lived threads that create the execution environments of a
//! backend (each one's cgroup, its network namespace with the Runtime API socket, its sandbox
//! process).
//!
//! Why threads of their own: `PR_SET_PDEATHSIG` fires when the *thread* that forked a process
//! exits, so sandboxes must be started from threads that live as long as they do, never from a
//! runtime's pool thread; and entering a fresh network namespace to bind `127.0.0.1:9001` moves
//! the calling thread, which must not be a thread the Runtime API servers run on. Jobs arrive
//! on a channel and answer on a `tokio` oneshot, so an invoke awaits its environment without
//! blocking a runtime thread.
//!
//! Why a pool: a storm of cold starts (a thousand functions' first invokes at once) queued on
//! one thread waits for every start before it (cgroup, network namespace, spawn: about 1 ms
//! alone, tens of milliseconds under a storm), so the last INIT ends seconds after the first.
//! Each job goes to the thread with the fewest jobs queued; the threads are independent (each
//! returns to the backend's network namespace after its own job), so starts overlap as far as
//! the kernel lets them.
//!
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::memfd::{MFdFlags, memfd_create};
use tokio::sync::oneshot;

use super::net::TierNet;
use crate::cgroup::{self, Cgroup, CgroupDriver, CgroupLimits};
use crate::netlink::{self, Netlink};
use crate::netns;
use crate::sandbox::SandboxSpec;

/// Where the Runtime API listens inside every environment, as on Lambda.
pub(crate) const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";

enum Msg {
    Job(Box<dyn FnOnce(&Context) + Send>),
    Stop,
}

/// What a spawner thread keeps: the network namespace it returns to after each job.
pub(crate) struct Context {
    home_netns: OwnedFd,
}

/// One thread's queue: where its jobs go and how many are queued or running there.
struct Lane {
    tx: mpsc::Sender<Msg>,
    queued: Arc<AtomicUsize>,
}

/// Handle to the spawner threads. Cloneable: each function keeps one to start environments.
#[derive(Clone)]
pub(crate) struct Spawner {
    lanes: Arc<Vec<Lane>>,
}

impl std::fmt::Debug for Spawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spawner({} threads)", self.lanes.len())
    }
}

/// How many spawner threads a host gets: four per CPU, 4 to 32. A start is mostly waiting, not
/// CPU: `posix_spawn` returns once the child has run up to its `exec`, so under a storm each
/// start waits for a CPU the starting runtimes are using (12 ms median of 20 ms per start with
/// 4 threads). Measured on a 2-core host (other jobs running, load 7 to 30), 1,000 first invokes
/// at once, last INIT done after: 1 thread 6.5 s, 4 threads 4.4 s, 8 threads 3.3 s, 16 3.3 s,
/// 32 3.3 s, 64 3.7 s (cgroup and network namespace creation then contend in the kernel: p90
/// 0.2 s and 0.4 s per start).
pub(crate) fn threads_for(cpus: usize) -> usize {
    (cpus * 4).clamp(4, 32)
}

/// The threads themselves; stopping them (after every environment is gone) joins them.
pub(crate) struct SpawnerThreads {
    spawner: Spawner,
    threads: Vec<JoinHandle<()>>,
}

impl SpawnerThreads {
    /// Starts `n` threads (at least one).
    pub(crate) fn start(n: usize) -> io::Result<SpawnerThreads> {
        let mut lanes = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            match start_thread(i) {
                Ok((lane, thread)) => {
                    lanes.push(lane);
                    threads.push(thread);
                }
                Err(e) => {
                    stop_all(&lanes, &mut threads);
                    return Err(e);
                }
            }
        }
        Ok(SpawnerThreads { spawner: Spawner { lanes: Arc::new(lanes) }, threads })
    }

    pub(crate) fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    /// Stops the threads and waits for them. Every sandbox they started gets its death signal,
    /// so call this only after every environment is gone.
    pub(crate) fn stop(&mut self) {
        stop_all(&self.spawner.lanes, &mut self.threads);
    }
}

impl Drop for SpawnerThreads {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stop_all(lanes: &[Lane], threads: &mut Vec<JoinHandle<()>>) {
    for l in lanes {
        let _ = l.tx.send(Msg::Stop);
    }
    for t in threads.drain(..) {
        let _ = t.join();
    }
}

fn start_thread(i: usize) -> io::Result<(Lane, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let (ready_tx, ready_rx) = mpsc::sync_channel::<io::Result<()>>(1);
    let queued = Arc::new(AtomicUsize::new(0));
    let thread = std::thread::Builder::new().name(format!("isobench-spawn-{i}")).spawn(move || {
        let home_netns = match File::open("/proc/thread-self/ns/net") {
            Ok(f) => OwnedFd::from(f),
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        let ctx = Context { home_netns };
        while let Ok(Msg::Job(job)) = rx.recv() {
            // A panicking job drops its reply channel (the caller sees the spawner gone);
            // the thread, and the sandboxes whose death signal is tied to it, live on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&ctx)));
        }
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((Lane { tx, queued }, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other("a Lambda spawner thread exited while starting"))
        }
    }
}

impl Spawner {
    /// Runs `f` on the spawner thread with the fewest jobs queued; the answer arrives on the
    /// returned receiver (which errs if the threads have stopped).
    pub(crate) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Context) -> R + Send + 'static,
    ) -> oneshot::Receiver<R> {
        let (tx, rx) = oneshot::channel();
        let lane = self.lanes.iter().min_by_key(|l| l.queued.load(Ordering::Relaxed)).expect("at least one thread");
        lane.queued.fetch_add(1, Ordering::Relaxed);
        // Counted down when the job is done or dropped (run, panicked, or never run).
        let done = Done(lane.queued.clone());
        let _ = lane.tx.send(Msg::Job(Box::new(move |ctx: &Context| {
            let r = f(ctx);
            drop(done);
            let _ = tx.send(r);
        })));
        rx
    }
}

struct Done(Arc<AtomicUsize>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One environment to create.
pub(crate) struct EnvRequest {
    pub id: String,
    pub run_dirs: Vec<PathBuf>,
    pub limits: CgroupLimits,
    pub sandbox_exe: PathBuf,
    /// The sandbox's arguments, but for the descriptors and cgroup fields this module fills in.
    pub sandbox: SandboxSpec,
    /// The tier's network, which the environment joins (egress only).
    pub net: Option<Arc<TierNet>>,
}

/// A created environment: cgroup, Runtime API socket (listening inside the environment's
/// network namespace), and the sandbox process.
pub(crate) struct Spawned {
    pub cgroup: Cgroup,
    pub listener: TcpListener,
    pub sandbox_pid: libc::pid_t,
    /// A pidfd of the sandbox: readable once it has exited.
    pub pidfd: OwnedFd,
    /// The sandbox's and the runtime's stdout and stderr (an anonymous memory file).
    pub output: File,
    /// The sandbox writes `pid <n>` (the runtime's host pid) here (non-blocking read end).
    pub status: File,
}

/// Why an environment could not be created: the step, and its cause.
#[derive(Debug, thiserror::Error)]
#[error("{step}")]
pub(crate) struct SpawnError {
    pub step: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn fail(step: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> SpawnError {
    SpawnError { step: step.into(), source: Box::new(e) }
}

impl Context {
    /// Creates one environment. On error nothing of it is left.
    pub(crate) fn create(&self, driver: &dyn CgroupDriver, req: EnvRequest) -> Result<Spawned, SpawnError> {
        let cg =
            cgroup::create(driver, &req.run_dirs, &req.id, &req.limits).map_err(|e| fail("create its cgroup", e))?;
        match self.create_in(driver, &cg, req) {
            Ok(s) => Ok(s),
            Err(e) => {
                let _ = cgroup::remove(driver, &cg, Duration::from_secs(2));
                Err(e)
            }
        }
    }

    fn create_in(&self, driver: &dyn CgroupDriver, cg: &Cgroup, req: EnvRequest) -> Result<Spawned, SpawnError> {
        let (netns, listener) = self.environment_net(req.net.as_deref())?;
        let output: File = memfd_create(format!("isobench-{}", req.id).as_str(), MFdFlags::MFD_CLOEXEC)
            .map_err(|e| fail("create its output file", io::Error::from(e)))?
            .into();
        let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| fail("create its status pipe", io::Error::from(e)))?;
        let join = driver.join(cg);
        let mut spec = req.sandbox;
        spec.cgroup_threads = join.threads;
        spec.cgroup_clone_into = join.clone_into;
        spec.netns_fd = 3;
        spec.status_fd = 5;
        spec.exe_fd = -1;
        let exe = &req.sandbox_exe;
        let pid = posix_spawn(exe, &spec.to_args(), &output, &[(&netns, 3), (&status_w, 5)])
            .map_err(|e| fail(format!("start the sandbox {}", exe.display()), e))?;
        drop(status_w);
        drop(netns);
        // SAFETY: pidfd_open(2) takes plain integers; `pid` is our unreaped child, so it
        // cannot have been reused.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            // SAFETY: kill(2) and waitpid(2) on our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(fail("open a pidfd of its sandbox", e));
        }
        // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
        Ok(Spawned { cgroup: cg.clone(), listener, sandbox_pid: pid, pidfd, output, status: File::from(status_r) })
    }

    /// A fresh network namespace with `lo` up and a socket listening on [`RUNTIME_API_ADDR`]
    /// inside it, joined to the tier's network `net` if there is one (see `net`). The thread
    /// enters the namespace only for as long as it takes to bind; the socket keeps the
    /// namespace alive after the descriptor is dropped.
    fn environment_net(&self, net: Option<&TierNet>) -> Result<(OwnedFd, TcpListener), SpawnError> {
        let ns = netns::unshare_net().map_err(|e| fail("create its network namespace", e))?;
        let inside = (|| -> io::Result<(Netlink, TcpListener)> {
            // No IPv6 in the environment, as on the harness network: an interface with IPv6
            // sends DAD and MLD multicast on link-up, which the tier's bridge floods to every
            // other environment's port (a storm of 1,000 cold starts spent its CPU on it).
            if net.is_some() {
                for k in ["all", "default"] {
                    netns::sysctl(&format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1")?;
                }
            }
            let mut nl = Netlink::open()?;
            nl.request(vec![netlink::link_up(1)])?;
            Ok((nl, TcpListener::bind(RUNTIME_API_ADDR)?))
        })();
        if let Err(e) = netns::enter(&self.home_netns) {
            // Harmless for later jobs (each makes a namespace of its own), but worth a word.
            tracing::warn!(error = %e, "the Lambda spawner thread could not return to its network namespace");
        }
        let (mut nl, listener) = inside.map_err(|e| fail(format!("listen on {RUNTIME_API_ADDR}"), e))?;
        if let Some(n) = net {
            n.attach(&ns, &mut nl).map_err(|e| fail(format!("join {}", n.bridge_name), e))?;
        }
        Ok((ns, listener))
    }
}

/// Duplicates `fd` to a number of at least 10, close-on-exec, so that placing descriptors at
/// 3 and 5 in the child can never overwrite one another.
fn high_dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor the caller keeps open for the call.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Starts `exe` with `args`, an empty environment, stdin on `/dev/null`, stdout and stderr on
/// `output`, and each `(descriptor, number)` of `pass` at that number; returns its pid.
fn posix_spawn(exe: &Path, args: &[OsString], output: &File, pass: &[(&OwnedFd, RawFd)]) -> io::Result<libc::pid_t> {
    let nul =
        |b: &[u8]| CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in an argument"));
    let path = nul(exe.as_os_str().as_bytes())?;
    let mut argv_c = vec![path.clone()];
    for a in args {
        argv_c.push(nul(a.as_bytes())?);
    }
    let mut argv: Vec<*mut libc::c_char> = argv_c.iter().map(|a| a.as_ptr() as *mut libc::c_char).collect();
    argv.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = vec![std::ptr::null_mut()];
    let out = high_dup(output.as_raw_fd())?;
    let high: Vec<(OwnedFd, RawFd)> =
        pass.iter().map(|(fd, n)| high_dup(fd.as_raw_fd()).map(|h| (h, *n))).collect::<io::Result<_>>()?;

    // SAFETY: the file actions and attributes are initialised before use and destroyed before
    // returning; every pointer handed to posix_spawn (path, argv, envp, "/dev/null") points at
    // NUL-terminated data that outlives the call; the descriptors named are open (owned above).
    unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let check = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(r)) };
        check(libc::posix_spawn_file_actions_init(&mut fa))?;
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut fa);
            return Err(e);
        }
        let r = (|| -> io::Result<libc::pid_t> {
            check(libc::posix_spawn_file_actions_addopen(&mut fa, 0, c"/dev/null".as_ptr(), libc::O_RDONLY, 0))?;
            check(libc::posix_spawn_file_actions_adddup2(&mut fa, out.as_raw_fd(), 1))?;
            check(libc::posix_spawn_file_actions_adddup2(&mut fa, out.as_raw_fd(), 2))?;
            for (fd, n) in &high {
                check(libc::posix_spawn_file_actions_adddup2(&mut fa, fd.as_raw_fd(), *n))?;
            }
            // Default dispositions and an empty mask: the harness ignores SIGPIPE (as every
            // Rust program does), which an exec would otherwise pass on.
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            check(libc::posix_spawnattr_setsigdefault(&mut attr, &all))?;
            check(libc::posix_spawnattr_setsigmask(&mut attr, &none))?;
            check(libc::posix_spawnattr_setflags(
                &mut attr,
                (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as libc::c_short,
            ))?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(&mut pid, path.as_ptr(), &fa, &attr, argv.as_mut_ptr(), envp.as_mut_ptr()))?;
            Ok(pid)
        })();
        libc::posix_spawn_file_actions_destroy(&mut fa);
        libc::posix_spawnattr_destroy(&mut attr);
        r
    }
}
