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
use isobench_core::scenario::IsolationFault;
use isobench_core::scenario::TierSettings;
use isobench_core::tier::TierId;

use crate::cgroup::{self, CgroupLimits};
use crate::config::{LocalConfig, valid_run_id};
use crate::ecs::{self, Cluster, EcsCluster};
use crate::error::{FsError, InstanceError};
use crate::instance::{self, Extras, Instance, InstanceSpec, Shared};
use crate::lambda::{self, EnvironmentInfo, FunctionInfo};
use crate::launcher::Launcher;
use crate::lock::RunLock;
use crate::{caps, tiers, workload};
use crate::{ec2, faults};

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
    /// The `ecs-awsvpc` tier's cluster (bridge, security groups, endpoints) while deployed.
    ecs: Option<Cluster>,
    /// The Lambda tiers' runtime, spawner thread and functions (from the first Lambda deploy).
    lambda: Option<lambda::Host>,
    /// The EC2 tiers' security groups and IMDS, while deployed.
    ec2: ec2::Host,
    /// The run's shared `/tmp` (isolation fault `shared-tmp`), once mounted.
    shared_tmp: Option<PathBuf>,
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
            ecs: None,
            lambda: None,
            ec2: ec2::Host::default(),
            shared_tmp: None,
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

    /// The deployed `ecs-awsvpc` cluster: its bridge, tasks (address, role, credentials path,
    /// groups) and what setting it up cost.
    pub fn ecs_cluster(&self) -> Option<&EcsCluster> {
        self.ecs.as_ref().map(|c| &c.info)
    }

    /// Requests the cluster's ECS agent endpoint and IMDS (if any) have answered so far.
    pub fn ecs_endpoint_requests(&self) -> Option<(u64, Option<u64>)> {
        self.ecs.as_ref().map(Cluster::served)
    }

    /// A deployed EC2 tier's network: each instance's security groups and role, and what
    /// setting them up cost.
    pub fn instance_network(&self, tier: TierId) -> Option<&ec2::InstanceNetwork> {
        self.ec2.info(tier)
    }

    /// Requests the EC2 instances' IMDS has answered so far, while an EC2 tier is deployed.
    pub fn imds_requests(&self) -> Option<u64> {
        self.ec2.imds_served()
    }

    /// The run's shared `/tmp`, once the isolation fault `shared-tmp` made one.
    pub fn shared_tmp(&self) -> Option<&std::path::Path> {
        self.shared_tmp.as_deref()
    }

    /// Stops one `ecs-awsvpc` task on its own, as a task that exits or is stopped while its
    /// service runs: its processes, cgroups and namespace go, and so do its security-group set
    /// elements (one `nft` run) and its credentials. The other tasks are untouched.
    pub fn stop_task(&mut self, id: &str) -> Result<TeardownReport, BackendError> {
        let t0 = Instant::now();
        let tasks = self.deployed.get_mut(&TierId::EcsAwsvpc);
        let Some(i) = tasks.as_ref().and_then(|t| t.iter().position(|i| i.spec.id == id)) else {
            return Err(BackendError::Teardown {
                what: format!("task {id}"),
                source: Box::new(InstanceError::Unknown { id: id.into() }),
            });
        };
        let inst = tasks.expect("found above").remove(i);
        let mut report = TeardownReport::default();
        self.stop(vec![inst], &mut report);
        match self.ecs.as_mut().and_then(|c| c.remove_task(id)) {
            Some(Ok(d)) => report
                .removed
                .push(format!("task {id}: security-group elements and credentials ({:.1} ms)", d.as_secs_f64() * 1e3)),
            Some(Err(e)) => report.left_behind.push(format!("task {id}: security-group elements: failed to {e}")),
            None => {}
        }
        report.duration = t0.elapsed();
        Ok(report)
    }

    /// The execution environments of a Lambda tier (of every Lambda tier when `None`), with
    /// their lifecycle state, and their CPU time and frozen state read from their cgroups.
    pub fn environments(&self, tier: Option<TierId>) -> Vec<EnvironmentInfo> {
        self.lambda.as_ref().map(|l| l.environments(tier)).unwrap_or_default()
    }

    /// The functions of a Lambda tier (of every Lambda tier when `None`).
    pub fn functions(&self, tier: Option<TierId>) -> Vec<FunctionInfo> {
        self.lambda.as_ref().map(|l| l.functions(tier)).unwrap_or_default()
    }

    /// What an execution environment's runtime wrote to stdout and stderr (the last `max` bytes).
    pub fn environment_output(&self, env_id: &str, max: usize) -> Option<String> {
        self.lambda.as_ref()?.output(env_id, max)
    }

    /// Deploys a Lambda tier: stages its code and creates its functions; no environment starts
    /// before the first invoke, as on Lambda.
    fn deploy_functions(
        &mut self,
        plan: &TierPlan,
        functions: Vec<tiers::FunctionRequest>,
    ) -> Result<Deployment, BackendError> {
        let tier = plan.tier;
        if self.lambda.as_ref().is_some_and(|l| l.has(tier)) {
            return Err(Self::deploy_error(
                tier,
                "the tier".into(),
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it is already deployed; tear it down first"),
            ));
        }
        let run_dirs = self.ensure_run().map_err(|e| Self::deploy_error(tier, "the run's cgroups".into(), e))?;
        let uids = functions.iter().map(|_| self.next_uid()).collect();
        if self.lambda.is_none() {
            let c = &self.shared.config;
            let host = lambda::Host::start(self.shared.cgroups.clone(), c.sandbox_exe.clone(), &c.run_id)
                .map_err(|e| Self::deploy_error(tier, "the Lambda runtime and spawner thread".into(), e))?;
            self.lambda = Some(host);
        }
        let c = &self.shared.config;
        let input = lambda::DeployInput {
            plan,
            functions,
            run_dirs,
            uids,
            host_cpus: self.host_cpus,
            pids_max: c.pids_max,
            workload_exe: &c.workload_exe,
            workload_env: &c.workload_env,
        };
        let host = self.lambda.as_mut().expect("started above");
        host.deploy(input).map_err(|e| Self::deploy_error(tier, "the Lambda functions".into(), e))
    }

    fn launcher(&self) -> Result<&Launcher, BackendError> {
        self.launcher.as_ref().ok_or_else(|| unavailable("the launcher thread has stopped"))
    }

    /// Limits from the tier's instance type (EC2) or task size (ECS: 1024 CPU units are one
    /// vCPU); anything else is refused rather than guessed.
    fn limits(&self, plan: &TierPlan) -> Result<(CgroupLimits, Limits, u32), BackendError> {
        let t = match &plan.settings {
            TierSettings::Ec2(e) => e.instance_type,
            TierSettings::Ecs(spec) => {
                let td = &spec.task_definition;
                let host_quota = u64::from(self.host_cpus) * CPU_PERIOD_US;
                // cgroups refuse a quota under 1 ms per period.
                let quota = (u64::from(td.cpu) * CPU_PERIOD_US / 1024).clamp(1000, host_quota);
                let memory_bytes = u64::from(td.memory) << 20;
                let cg = CgroupLimits {
                    cpu_quota_us: quota,
                    cpu_period_us: CPU_PERIOD_US,
                    memory_bytes,
                    pids_max: self.shared.config.pids_max,
                };
                let workers = td.cpu.div_ceil(1024).min(self.host_cpus).max(1);
                return Ok((cg, Limits { cpu_millis: quota * 1000 / CPU_PERIOD_US, memory_bytes }, workers));
            }
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

    /// Removes the ECS cluster (after its tasks are stopped): endpoints, rules, bridge.
    fn teardown_cluster(&mut self, report: &mut TeardownReport) {
        if let Some(mut c) = self.ecs.take() {
            let (removed, left, _) = c.teardown(self.launcher.as_ref());
            report.removed.extend(removed);
            if !left.is_empty() {
                report.left_behind.extend(left);
                // Kept, so a later teardown can try again.
                self.ecs = Some(c);
            }
        }
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
        if let Some(functions) = tiers::functions(plan) {
            return self.deploy_functions(plan, functions);
        }
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
                extras: Extras::default(),
            });
        }

        // Deliberately broken isolation (a test of the probes): one /tmp for every instance.
        if plan.faults.contains(&IsolationFault::SharedTmp) {
            let c = &self.shared.config;
            let dir = faults::ensure_shared_tmp(&mut self.shared_tmp, &c.run_id, c.tmpfs_size)
                .map_err(|e| Self::deploy_error(tier, "the shared /tmp of isolation fault shared-tmp".into(), e))?;
            specs.iter_mut().for_each(|s| s.extras.shared_tmp = Some(dir.clone()));
        }
        // EC2 instances get their security groups and instance profiles (IMDS) before any starts.
        if matches!(plan.settings, TierSettings::Ec2(_)) {
            let launcher = self.launcher.as_ref().ok_or_else(|| unavailable("the launcher thread has stopped"))?;
            self.ec2.prepare(launcher, plan, &mut specs).map_err(|e| {
                if e.is_unavailable() {
                    unavailable(format!("failed to {e}"))
                } else {
                    Self::deploy_error(tier, "the instances' security groups and IMDS".into(), e)
                }
            })?;
        }
        // ECS tasks get the cluster (bridge, security groups, endpoints) before any starts.
        let mut cluster = match &plan.settings {
            TierSettings::Ecs(spec) => Some(ecs::create(self.launcher()?, plan, spec, &mut specs).map_err(|e| {
                if e.is_unavailable() {
                    unavailable(format!("failed to {e}"))
                } else {
                    Self::deploy_error(tier, "the ECS cluster".into(), e)
                }
            })?),
            _ => None,
        };

        let shared = self.shared.clone();
        let started = self
            .launcher()?
            .run(move |h| instance::start_all(h, &shared, &run_dirs, specs))
            .map_err(|e| Self::deploy_error(tier, "instances".into(), e));
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                if let Some(c) = cluster.as_mut() {
                    c.teardown(self.launcher.as_ref());
                }
                self.ec2.teardown(tier, self.launcher.as_ref());
                return Err(e);
            }
        };
        let instances = match started {
            Ok(i) => i,
            Err(f) => {
                let mut r = TeardownReport::default();
                self.stop(f.started, &mut r);
                if let Some(c) = cluster.as_mut() {
                    let (_, left, _) = c.teardown(self.launcher.as_ref());
                    r.left_behind.extend(left);
                }
                r.left_behind.extend(self.ec2.teardown(tier, self.launcher.as_ref()).1);
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
        if cluster.is_some() {
            self.ecs = cluster;
        }
        Ok(Deployment { tier, targets, instances: infos, netns: self.netns() })
    }

    fn teardown(&mut self, tier: TierId) -> Result<TeardownReport, BackendError> {
        let t0 = Instant::now();
        let mut report = TeardownReport::default();
        if let Some(instances) = self.deployed.remove(&tier) {
            self.stop(instances, &mut report);
        }
        if tier == TierId::EcsAwsvpc {
            self.teardown_cluster(&mut report);
        }
        let (removed, left) = self.ec2.teardown(tier, self.launcher.as_ref());
        report.removed.extend(removed);
        report.left_behind.extend(left);
        if let Some(r) = self.lambda.as_mut().and_then(|l| l.teardown(tier)) {
            report.merge(r);
        }
        report.duration = t0.elapsed();
        Ok(report)
    }

    fn teardown_all(&mut self) -> Result<TeardownReport, BackendError> {
        let t0 = Instant::now();
        let mut report = TeardownReport::default();
        let all: Vec<Instance> = std::mem::take(&mut self.deployed).into_values().flatten().collect();
        self.stop(all, &mut report);
        self.teardown_cluster(&mut report);
        let (removed, left) = self.ec2.teardown_all(self.launcher.as_ref());
        report.removed.extend(removed);
        report.left_behind.extend(left);
        faults::teardown_shared_tmp(&mut self.shared_tmp, &mut report);
        // Before the run's cgroups go: environments live in them.
        if let Some(host) = self.lambda.take() {
            report.merge(host.shutdown());
        }
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

    /// The run's memory cgroup: every instance, task and execution environment of the run
    /// lives below it, and nothing else does.
    fn memory_in_use(&self) -> Option<u64> {
        let dirs = self.run_dirs.clone()?;
        match self.shared.cgroups.memory_usage(&cgroup::Cgroup { dirs }) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(error = %e, "failed to read the run's memory usage");
                None
            }
        }
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
