//! The instance machinery every instance tier uses (the EC2 tiers' instances, the ECS tier's
//! tasks): start instances (cgroup, network namespace and veth, sandbox, readiness) on the
//! launcher thread, and stop them again. It knows nothing of tiers: a tier says which instances
//! it wants ([`InstanceRequest`]), how big ([`Sizing`]) and what it adds to each ([`Extras`]).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::backend::{InstanceInfo, Limits};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::cgroup::{self, CPU_PERIOD_US, Cgroup, CgroupDriver, CgroupLimits};
use crate::config::LocalConfig;
use crate::error::InstanceError;
use crate::launcher::Harness;
use crate::sandbox::{SandboxSpec, env_pairs};

/// What stays the same for every instance of a backend.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: LocalConfig,
    pub cgroups: Arc<dyn CgroupDriver>,
    /// The workload executable, opened once by the harness (as root), so that an instance's
    /// uid needs no permission on the directories above it.
    pub workload: OwnedFd,
}

/// One instance a tier wants: the tenants it serves, and the tenant its workload is pinned
/// to (`--tenant`), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceRequest {
    pub tenants: Vec<String>,
    pub pinned_tenant: Option<String>,
}

impl InstanceRequest {
    /// An instance of its own for `tenant`, its workload pinned to it.
    pub(crate) fn pinned(tenant: &str) -> InstanceRequest {
        InstanceRequest { tenants: vec![tenant.to_string()], pinned_tenant: Some(tenant.to_string()) }
    }
}

/// How big each instance of a tier is: its cgroup limits, the same as reported, and how many
/// worker threads its workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizing {
    pub limits: CgroupLimits,
    pub info_limits: Limits,
    pub workers: u32,
}

impl Sizing {
    /// `cpu_quota_us` of CPU time per [`CPU_PERIOD_US`], `memory_bytes`, at most `pids_max`
    /// processes, and `workers` worker threads.
    pub(crate) fn new(cpu_quota_us: u64, memory_bytes: u64, pids_max: u64, workers: u32) -> Sizing {
        Sizing {
            limits: CgroupLimits { cpu_quota_us, cpu_period_us: CPU_PERIOD_US, memory_bytes, pids_max },
            info_limits: Limits { cpu_millis: cpu_quota_us * 1000 / CPU_PERIOD_US, memory_bytes },
            workers,
        }
    }
}

/// One instance to start.
#[derive(Debug, Clone)]
pub(crate) struct InstanceSpec {
    pub id: String,
    pub tenants: Vec<String>,
    /// Run-wide instance number: names the host veth (`v<n>`) and picks the uid.
    pub index: u32,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub uid: u32,
    pub limits: CgroupLimits,
    pub info_limits: Limits,
    /// The workload's arguments after `argv[0]`.
    pub args: Vec<String>,
    /// What a tier adds to a plain instance (another bridge, routes, environment).
    pub extras: Extras,
}

/// What a tier adds to a plain instance; the default adds nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    pub attach: crate::launcher::Attach,
    /// Environment variables for the workload, after the backend's own.
    pub env: Vec<(String, String)>,
    /// A harness-owned directory mounted at `/tmp` instead of a private tmpfs (the `shared-tmp`
    /// isolation fault).
    pub shared_tmp: Option<PathBuf>,
    /// What the instance's filesystem view adds (an EKS pod's own `/run`); the default adds
    /// nothing.
    pub view: crate::sandbox::FsView,
}

/// A running instance.
#[derive(Debug)]
pub(crate) struct Instance {
    pub spec: InstanceSpec,
    pub cgroup: Cgroup,
    /// Keeps the instance's network namespace (and so its veth) alive; dropping it after the
    /// processes are gone deletes both at once.
    pub netns: OwnedFd,
    pub sandbox: Child,
    pub workload_pid: Option<u32>,
    /// The sandbox's and the workload's stdout and stderr (an anonymous memory file).
    pub output: File,
    pub start_time: Duration,
}

impl Instance {
    pub(crate) fn endpoint(&self, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.spec.addr, port))
    }

    pub(crate) fn info(&self) -> InstanceInfo {
        InstanceInfo {
            id: self.spec.id.clone(),
            tenants: self.spec.tenants.clone(),
            address: Some(self.spec.addr.into()),
            start_time: self.start_time,
            pid: self.workload_pid,
            limits: Some(self.spec.info_limits),
        }
    }

    /// The last `max` bytes the sandbox and the workload wrote.
    pub(crate) fn output_tail(&self, max: usize) -> String {
        tail(&self.output, max)
    }
}

fn tail(f: &File, max: usize) -> String {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max as u64);
    let mut buf = vec![0u8; (len - start) as usize];
    let n = f.read_at(&mut buf, start).unwrap_or(0);
    buf.truncate(n);
    let text = String::from_utf8_lossy(&buf).trim_end().to_string();
    if text.is_empty() { "(none)".into() } else { text }
}

/// An instance whose workload has not answered yet.
struct Pending {
    inst: Instance,
    t0: Instant,
    status: File,
    last: String,
}

/// Why starting a batch failed: the instance that failed, why, and every instance of the
/// batch that was started (for the caller to stop).
pub(crate) struct StartFailure {
    pub id: String,
    pub tenants: Vec<String>,
    pub error: InstanceError,
    pub started: Vec<Instance>,
}

/// Starts every instance; runs on the launcher thread. Instances are started one after the
/// other, and between starts the ones already started are checked for readiness, so a slow
/// workload start overlaps the next instance's setup while each start time is still measured
/// to within one polling round.
pub(crate) fn start_all(
    h: &mut Harness,
    shared: &Shared,
    run_dirs: &[PathBuf],
    specs: Vec<InstanceSpec>,
) -> Result<Vec<Instance>, Box<StartFailure>> {
    let mut pending: Vec<Pending> = Vec::new();
    let mut ready: Vec<Instance> = Vec::new();
    let fail = |spec: &InstanceSpec, error, pending: Vec<Pending>, mut ready: Vec<Instance>| {
        ready.extend(pending.into_iter().map(|p| p.inst));
        Box::new(StartFailure { id: spec.id.clone(), tenants: spec.tenants.clone(), error, started: ready })
    };
    for spec in specs {
        match begin(h, shared, run_dirs, spec.clone()) {
            Ok(p) => pending.push(p),
            Err(e) => return Err(fail(&spec, e, pending, ready)),
        }
        if let Err((i, e)) = poll_round(shared, &mut pending, &mut ready) {
            let spec = pending[i].inst.spec.clone();
            return Err(fail(&spec, e, pending, ready));
        }
    }
    while !pending.is_empty() {
        let before = pending.len();
        if let Err((i, e)) = poll_round(shared, &mut pending, &mut ready) {
            let spec = pending[i].inst.spec.clone();
            return Err(fail(&spec, e, pending, ready));
        }
        if pending.len() == before {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    ready.sort_by_key(|i| i.spec.index);
    Ok(ready)
}

/// One readiness attempt for each pending instance; ready ones move to `ready`.
fn poll_round(
    shared: &Shared,
    pending: &mut Vec<Pending>,
    ready: &mut Vec<Instance>,
) -> Result<(), (usize, InstanceError)> {
    let mut i = 0;
    while i < pending.len() {
        let p = &mut pending[i];
        let addr = p.inst.endpoint(shared.config.port);
        match health(addr) {
            Ok(()) => {
                p.inst.start_time = p.t0.elapsed();
                p.inst.workload_pid = read_pid(&mut p.status);
                ready.push(pending.remove(i).inst);
                continue;
            }
            Err(e) => p.last = e,
        }
        if let Ok(Some(status)) = p.inst.sandbox.try_wait() {
            return Err((i, InstanceError::Exited { status: status.to_string(), output: p.inst.output_tail(4096) }));
        }
        if p.t0.elapsed() > shared.config.ready_timeout {
            return Err((
                i,
                InstanceError::NotReady {
                    addr,
                    timeout: shared.config.ready_timeout,
                    last: p.last.clone(),
                    output: p.inst.output_tail(4096),
                },
            ));
        }
        i += 1;
    }
    Ok(())
}

/// `pid <n>` from the sandbox's status pipe (written right after the fork, so present by the
/// time the workload answers).
fn read_pid(status: &mut File) -> Option<u32> {
    let mut buf = [0u8; 64];
    let n = status.read(&mut buf).ok()?;
    let s = String::from_utf8_lossy(&buf[..n]);
    s.lines().find_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
}

/// A minimal blocking `GET /healthz`; `Ok` on a 200.
fn health(addr: SocketAddr) -> Result<(), String> {
    // Short: on this private link an answer (or a refusal) takes microseconds; a lost SYN is
    // better retried at once than waited for.
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(20)).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(Duration::from_secs(1))).map_err(|e| e.to_string())?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: instance\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 128];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let line = head.lines().next().unwrap_or("");
    if line.starts_with("HTTP/1.") && line.split(' ').nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("answered `{line}`"))
    }
}

/// Creates an instance and starts its sandbox. On error nothing of it is left.
fn begin(h: &mut Harness, shared: &Shared, run_dirs: &[PathBuf], spec: InstanceSpec) -> Result<Pending, InstanceError> {
    let t0 = Instant::now();
    let driver = &*shared.cgroups;
    let cgroup = cgroup::create(driver, run_dirs, &spec.id, &spec.limits)?;
    let undo_cgroup = |e: InstanceError| {
        let _ = cgroup::remove(driver, &cgroup, Duration::from_secs(2));
        e
    };
    let netns = h.instance_net(spec.index, spec.addr, spec.prefix, &spec.extras.attach).map_err(undo_cgroup)?;
    let (sandbox, output, status) = spawn_sandbox(shared, &spec, &cgroup, &netns).map_err(undo_cgroup)?;
    let inst = Instance { spec, cgroup, netns, sandbox, workload_pid: None, output, start_time: Duration::ZERO };
    Ok(Pending { inst, t0, status, last: "not tried".into() })
}

/// Duplicates `fd` to a number of at least 10, close-on-exec, so that placing the sandbox's
/// descriptors at 3, 4 and 5 can never overwrite one another.
fn high_dup(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: `fd` is open for the duration of this call (borrowed from a live owner).
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let new = fcntl(b, FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(new) })
}

fn spawn_sandbox(
    shared: &Shared,
    spec: &InstanceSpec,
    cgroup: &Cgroup,
    netns: &OwnedFd,
) -> Result<(Child, File, File), InstanceError> {
    let exe = &shared.config.sandbox_exe;
    let io_err = |e: std::io::Error| InstanceError::Spawn { exe: exe.clone(), source: e };
    let output: File = memfd_create(format!("isobench-{}", spec.id).as_str(), MFdFlags::MFD_CLOEXEC)
        .map_err(|e| io_err(e.into()))?
        .into();
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err(e.into()))?;
    let passed = [
        high_dup(netns.as_raw_fd()).map_err(io_err)?,
        high_dup(shared.workload.as_raw_fd()).map_err(io_err)?,
        high_dup(status_w.as_raw_fd()).map_err(io_err)?,
    ];
    drop(status_w);
    let c = &shared.config;
    let mut env = env_pairs([("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), ("HOME", "/")]);
    env.extend(env_pairs(c.workload_env.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
    env.extend(env_pairs(spec.extras.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
    let argv0 = c.workload_exe.file_name().map(OsString::from).unwrap_or_else(|| "workload".into());
    let join = shared.cgroups.join(cgroup);
    let sandbox = SandboxSpec {
        cgroup_threads: join.threads,
        cgroup_clone_into: join.clone_into,
        netns_fd: 3,
        exe_fd: 4,
        status_fd: 5,
        parent_pid: std::process::id() as i32,
        hostname: spec.id.clone(),
        uid: spec.uid,
        gid: spec.uid,
        tmpfs: vec!["/tmp".into(), "/var/tmp".into(), "/dev/shm".into()],
        tmpfs_size: c.tmpfs_size,
        tmp_binds: spec.extras.shared_tmp.iter().map(|d| ("/tmp".into(), d.clone())).collect(),
        env,
        argv: std::iter::once(argv0).chain(spec.args.iter().map(OsString::from)).collect(),
        view: spec.extras.view.clone(),
    };
    let mut cmd = Command::new(exe);
    cmd.args(sandbox.to_args())
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(output.try_clone().map_err(io_err)?)
        .stderr(output.try_clone().map_err(io_err)?);
    let raw: [RawFd; 3] = [passed[0].as_raw_fd(), passed[1].as_raw_fd(), passed[2].as_raw_fd()];
    // SAFETY: the closure runs in the forked child before exec and only calls dup2(2), which
    // is async-signal-safe; it allocates nothing and touches no lock. The sources are at 10 or
    // above and the targets 3..=5, so no dup2 overwrites a later source.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(io_err)?;
    drop(passed);
    Ok((child, output, status_r.into()))
}

/// Stops instances: kills every one through its cgroup first (so they die in parallel), then
/// waits for each, reaps its sandbox, removes its cgroup and drops its namespace. Returns what
/// was removed and what was left behind.
pub(crate) fn stop_all(driver: &dyn CgroupDriver, instances: Vec<Instance>) -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut left = Vec::new();
    for inst in &instances {
        let _ = driver.kill(&inst.cgroup);
    }
    for mut inst in instances {
        let failed = cgroup::remove(driver, &inst.cgroup, Duration::from_secs(5));
        // The sandbox is dead once its cgroup is empty; reap it without ever blocking.
        let t0 = Instant::now();
        while matches!(inst.sandbox.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_micros(100));
        }
        let id = &inst.spec.id;
        let pid = inst.workload_pid.map(|p| format!("pid {p}, ")).unwrap_or_default();
        if failed.is_empty() {
            removed.push(format!("instance {id} ({pid}{}): processes, cgroups, network namespace", inst.spec.addr));
        } else {
            for (path, why) in failed {
                left.push(format!("instance {id}: cgroup {} ({why})", path.display()));
            }
        }
        drop(inst.netns);
    }
    (removed, left)
}
