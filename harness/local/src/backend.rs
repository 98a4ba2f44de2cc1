//! [`LocalBackend`]: the [`Backend`] of the local emulator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::backend::{
    Backend, BackendError, BackendInfo, Deployment, Endpoint, Fidelity, InstanceInfo, Limits, TeardownReport,
    TenantTarget,
};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::tier::TierId;

use crate::cgroup::{self, CgroupLimits};
use crate::config::{LocalConfig, valid_run_id};
use crate::error::{FsError, InstanceError};
use crate::instance::{self, Instance, InstanceSpec, Shared};
use crate::launcher::Launcher;
use crate::lock::RunLock;
use crate::{caps, tiers, workload};

const NAME: &str = "local";
/// The CFS period every instance's CPU quota is expressed in.
const CPU_PERIOD_US: u64 = 100_000;

/// The local emulator. See the crate documentation for what an instance is.
pub struct LocalBackend {
    shared: Arc<Shared>,
    launcher: Option<Launcher>,
    lock: RunLock,
    run_dirs: Option<Vec<PathBuf>>,
    deployed: BTreeMap<TierId, Vec<Instance>>,
    next_index: u32,
    next_host: HashMap<(Ipv4Addr, u8), u32>,
    /// Uids and gids of real users and groups, never given to an instance.
    taken_ids: BTreeSet<u32>,
    host_cpus: u32,
}

fn unavailable(reason: impl Into<String>) -> BackendError {
    BackendError::Unavailable { backend: NAME, reason: reason.into() }
}

impl LocalBackend {
    /// Checks that this host and process can run the emulator (privileges, cgroups, network
    /// namespaces, the two executables), takes the run's lock and creates the harness network
    /// namespace. Every problem found here is [`BackendError::Unavailable`] with a plain
    /// reason.
    pub fn new(config: LocalConfig) -> Result<LocalBackend, BackendError> {
        caps::check().map_err(unavailable)?;
        if !valid_run_id(&config.run_id) {
            return Err(unavailable(format!(
                "run id `{}` cannot name a cgroup: use 1 to 64 of A-Z, a-z, 0-9, `-`, `_`, `.`",
                config.run_id
            )));
        }
        for (what, path) in [("sandbox", &config.sandbox_exe), ("workload", &config.workload_exe)] {
            if !path.is_file() {
                return Err(unavailable(format!(
                    "the {what} executable {} is missing; build it with `cargo build --workspace` (with --release for a release isobench): isobench looks for it beside itself",
                    path.display()
                )));
            }
        }
        let workload: OwnedFd = File::open(&config.workload_exe)
            .map_err(|e| unavailable(format!("cannot open the workload {}: {e}", config.workload_exe.display())))?
            .into();
        let cgroups = cgroup::detect().map_err(unavailable)?;
        let lock =
            RunLock::acquire(&config.run_id).map_err(|e| unavailable(format!("cannot take the run lock: {e}")))?;
        let launcher =
            Launcher::start().map_err(|e| unavailable(format!("cannot create a network namespace and bridge: {e}")))?;
        // SAFETY: sysconf(3) has no preconditions.
        let host_cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
        tracing::debug!(run = %config.run_id, cgroups = cgroups.name(), host_cpus, "local backend ready");
        Ok(LocalBackend {
            shared: Arc::new(Shared { config, cgroups, workload }),
            launcher: Some(launcher),
            lock,
            run_dirs: None,
            deployed: BTreeMap::new(),
            next_index: 0,
            next_host: HashMap::new(),
            taken_ids: system_ids(),
            host_cpus,
        })
    }

    /// The run this backend deploys for.
    pub fn run_id(&self) -> &str {
        &self.shared.config.run_id
    }

    /// Which cgroup layout was chosen: `v2`, `v1+unified` or `v1`.
    pub fn cgroup_layout(&self) -> &'static str {
        self.shared.cgroups.name()
    }

    /// The harness network namespace (where instance addresses are reachable).
    pub fn netns(&self) -> Option<Arc<OwnedFd>> {
        self.launcher.as_ref().map(|l| l.netns().clone())
    }

    /// Every running instance.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.deployed.values().flatten().map(Instance::info).collect()
    }

    fn find(&self, id: &str) -> Result<&Instance, InstanceError> {
        self.deployed
            .values()
            .flatten()
            .find(|i| i.spec.id == id)
            .ok_or_else(|| InstanceError::Unknown { id: id.into() })
    }

    /// Stops every process of an instance (cgroup freezer) and waits until they are stopped.
    pub fn freeze(&self, id: &str) -> Result<(), InstanceError> {
        let i = self.find(id)?;
        Ok(self.shared.cgroups.freeze(&i.cgroup)?)
    }

    /// Lets a frozen instance run again.
    pub fn thaw(&self, id: &str) -> Result<(), InstanceError> {
        let i = self.find(id)?;
        Ok(self.shared.cgroups.thaw(&i.cgroup)?)
    }

    /// CPU time an instance's processes have used.
    pub fn cpu_usage(&self, id: &str) -> Result<Duration, InstanceError> {
        let i = self.find(id)?;
        Ok(self.shared.cgroups.cpu_usage(&i.cgroup)?)
    }

    /// What an instance's sandbox and workload wrote to stdout and stderr (the last `max` bytes).
    pub fn output(&self, id: &str, max: usize) -> Result<String, InstanceError> {
        Ok(self.find(id)?.output_tail(max))
    }

    fn launcher(&self) -> Result<&Launcher, BackendError> {
        self.launcher.as_ref().ok_or_else(|| unavailable("the launcher thread has stopped"))
    }

    /// Limits from the tier's instance type; an EC2 tier always has one (the scenario is
    /// validated), anything else is refused rather than guessed.
    fn limits(&self, plan: &TierPlan) -> Result<(CgroupLimits, Limits, u32), BackendError> {
        let t = match &plan.settings {
            TierSettings::Ec2 { instance_type } => *instance_type,
            other => {
                return Err(Self::deploy_error(
                    plan.tier,
                    "the tier".into(),
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("it needs EC2 settings (an instance type), not {other:?}"),
                    ),
                ));
            }
        };
        let cpus = t.vcpus.min(self.host_cpus).max(1);
        let memory_bytes = t.memory_mib << 20;
        let cg = CgroupLimits {
            cpu_quota_us: u64::from(cpus) * CPU_PERIOD_US,
            cpu_period_us: CPU_PERIOD_US,
            memory_bytes,
            pids_max: self.shared.config.pids_max,
        };
        Ok((cg, Limits { cpu_millis: u64::from(cpus) * 1000, memory_bytes }, cpus))
    }

    fn next_uid(&mut self) -> u32 {
        loop {
            let uid = self.shared.config.uid_base.saturating_add(self.next_index);
            self.next_index += 1;
            if !self.taken_ids.contains(&uid) {
                return uid;
            }
        }
    }

    /// The next never-used address of `subnet` (addresses are not reused within a run, so no
    /// neighbour cache can point at a departed instance).
    fn next_addr(&mut self, subnet: (Ipv4Addr, u8)) -> Result<Ipv4Addr, InstanceError> {
        let (base, prefix) = subnet;
        let size = 1u64 << (32 - u32::from(prefix.min(30)));
        let net = u32::from(base) & !((size - 1) as u32);
        let next = self.next_host.entry((Ipv4Addr::from(net), prefix)).or_insert(2);
        // .0 is the network, .1 the harness bridge, the last the broadcast.
        if u64::from(*next) >= size - 1 {
            return Err(InstanceError::AddressesExhausted {
                subnet: format!("{}/{prefix}", Ipv4Addr::from(net)),
                capacity: size.saturating_sub(3),
            });
        }
        let a = Ipv4Addr::from(net + *next);
        *next += 1;
        Ok(a)
    }

    fn ensure_run(&mut self) -> Result<Vec<PathBuf>, FsError> {
        if !self.lock.is_held() {
            self.lock = RunLock::acquire(&self.shared.config.run_id)?;
        }
        if let Some(d) = &self.run_dirs {
            return Ok(d.clone());
        }
        let dirs = cgroup::create_run(&*self.shared.cgroups, &self.shared.config.run_id)?;
        self.run_dirs = Some(dirs.clone());
        Ok(dirs)
    }

    fn deploy_error(tier: TierId, what: String, e: impl std::error::Error + Send + Sync + 'static) -> BackendError {
        BackendError::Deploy { tier, what, source: Box::new(e) }
    }

    fn stop(&self, instances: Vec<Instance>, report: &mut TeardownReport) {
        let (removed, left) = instance::stop_all(&*self.shared.cgroups, instances);
        report.removed.extend(removed);
        report.left_behind.extend(left);
    }
}

/// Ids in `/etc/passwd` and `/etc/group`.
fn system_ids() -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    for f in ["/etc/passwd", "/etc/group"] {
        for line in std::fs::read_to_string(f).unwrap_or_default().lines() {
            for field in line.split(':').skip(2).take(2) {
                if let Ok(id) = field.parse() {
                    ids.insert(id);
                }
            }
        }
    }
    ids
}

fn describe(tenants: &[String]) -> String {
    match tenants {
        [one] => format!("tenant {one}"),
        many => format!("{} tenants", many.len()),
    }
}

impl Backend for LocalBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: NAME,
            fidelity: Fidelity::Emulated,
            description: format!(
                "Linux namespaces (net, mount, pid, uts, ipc), cgroups ({}), veth pairs on a private bridge, one uid per instance",
                self.shared.cgroups.name()
            ),
        }
    }

    fn deploy(&mut self, plan: &TierPlan) -> Result<Deployment, BackendError> {
        let tier = plan.tier;
        let requests = tiers::layout(plan).ok_or(BackendError::UnsupportedTier { backend: NAME, tier })?;
        if self.deployed.contains_key(&tier) {
            return Err(Self::deploy_error(
                tier,
                "the tier".into(),
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it is already deployed; tear it down first"),
            ));
        }
        let run_dirs = self.ensure_run().map_err(|e| Self::deploy_error(tier, "the run's cgroups".into(), e))?;
        let subnet = plan.subnet;
        self.launcher()?
            .run(move |h| h.ensure_subnet(subnet))
            .and_then(|r| r)
            .map_err(|e| Self::deploy_error(tier, "the harness bridge".into(), e))?;

        let (limits, info_limits, workers) = self.limits(plan)?;
        let mut specs = Vec::with_capacity(requests.len());
        for req in requests {
            let index = self.next_index;
            let id = format!("{tier}-{index}");
            let addr = self.next_addr(subnet).map_err(|e| Self::deploy_error(tier, format!("instance {id}"), e))?;
            let uid = self.next_uid();
            let seed = workload::fault_seed(plan.seed, index);
            let args =
                workload::args(&plan.workload, self.shared.config.port, req.pinned_tenant.as_deref(), workers, seed);
            specs.push(InstanceSpec {
                id,
                tenants: req.tenants,
                index,
                addr,
                prefix: subnet.1,
                uid,
                limits,
                info_limits,
                args,
            });
        }

        let shared = self.shared.clone();
        let started = self
            .launcher()?
            .run(move |h| instance::start_all(h, &shared, &run_dirs, specs))
            .map_err(|e| Self::deploy_error(tier, "instances".into(), e))?;
        let instances = match started {
            Ok(i) => i,
            Err(f) => {
                let mut r = TeardownReport::default();
                self.stop(f.started, &mut r);
                if !r.left_behind.is_empty() {
                    tracing::warn!(left = ?r.left_behind, "cleanup after a failed deploy left resources behind");
                }
                return Err(Self::deploy_error(tier, format!("instance {} ({})", f.id, describe(&f.tenants)), f.error));
            }
        };

        let port = self.shared.config.port;
        let mut targets = Vec::new();
        for t in &plan.tenants {
            if let Some(inst) = instances.iter().find(|i| i.spec.tenants.contains(&t.id)) {
                targets.push(TenantTarget { tenant: t.id.clone(), endpoint: Endpoint::Http(inst.endpoint(port)) });
            }
        }
        let infos = instances.iter().map(Instance::info).collect();
        self.deployed.insert(tier, instances);
        Ok(Deployment { tier, targets, instances: infos, netns: self.netns() })
    }

    fn teardown(&mut self, tier: TierId) -> Result<TeardownReport, BackendError> {
        let t0 = Instant::now();
        let mut report = TeardownReport::default();
        if let Some(instances) = self.deployed.remove(&tier) {
            self.stop(instances, &mut report);
        }
        report.duration = t0.elapsed();
        Ok(report)
    }

    fn teardown_all(&mut self) -> Result<TeardownReport, BackendError> {
        let t0 = Instant::now();
        let mut report = TeardownReport::default();
        let all: Vec<Instance> = std::mem::take(&mut self.deployed).into_values().flatten().collect();
        self.stop(all, &mut report);
        if self.run_dirs.take().is_some() {
            let left = cgroup::remove_run(&*self.shared.cgroups, &self.shared.config.run_id);
            if left.is_empty() {
                report.removed.push(format!("run cgroups isobench/{}", self.shared.config.run_id));
            }
            for (p, why) in left {
                report.left_behind.push(format!("cgroup {} ({why})", p.display()));
            }
        }
        // The lock goes last: until everything above is gone, a sweep must see a live run.
        match self.lock.release() {
            Some(Ok(p)) => report.removed.push(format!("lock {}", p.display())),
            Some(Err(e)) => report.left_behind.push(format!("lock: failed to {e}")),
            None => {}
        }
        report.duration = t0.elapsed();
        Ok(report)
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        match self.teardown_all() {
            Ok(r) if !r.left_behind.is_empty() => {
                tracing::warn!(left = ?r.left_behind, "local backend dropped; teardown left resources behind")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "local backend dropped; teardown failed"),
        }
        // Joins the launcher thread; the harness namespace goes with the last descriptor.
        self.launcher.take();
    }
}
