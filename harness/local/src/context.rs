//! What every tier of one backend draws on, in one [`Context`]: the run (its lock and its
//! cgroups), the launcher thread with the harness network namespace, uid and address
//! allocation, the isolation faults, and the services tiers share (the EC2 instances' IMDS, the
//! Lambda runtime). A tier module gets it as `&mut Context` in each call of its
//! [`TierDriver`](crate::tiers::TierDriver); nothing here knows which tiers exist.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use isobench_core::backend::{BackendError, Deployment, Endpoint, TeardownReport, TenantTarget};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::IsolationFault;
use isobench_core::tier::TierId;

use crate::cgroup::{self, CgroupDriver};
use crate::config::{LocalConfig, valid_run_id};
use crate::error::{FsError, InstanceError, NetworkError, deploy_error, unavailable};
use crate::instance::{self, Extras, Instance, InstanceRequest, InstanceSpec, Shared, Sizing};
use crate::launcher::Launcher;
use crate::lock::RunLock;
use crate::metadata::instance_profiles::InstanceProfiles;
use crate::{caps, faults, lambda, workload};

/// The backend-wide state the tiers share.
pub(crate) struct Context {
    shared: Arc<Shared>,
    launcher: Option<Launcher>,
    lock: RunLock,
    /// The run's cgroup directories, once created.
    run_dirs: Option<Vec<PathBuf>>,
    next_index: u32,
    next_host: HashMap<(Ipv4Addr, u8), u32>,
    /// Each Lambda tier's block of addresses, kept for its next deploy: a tier is deployed
    /// once at a time, and a bench or a test redeploys one many times in one backend.
    lambda_blocks: HashMap<(TierId, Ipv4Addr, u8), (Ipv4Addr, u8)>,
    /// Uids and gids of real users and groups, never given to an instance.
    taken_ids: BTreeSet<u32>,
    host_cpus: u32,
    /// The run's shared `/tmp` (isolation fault `shared-tmp`), once mounted.
    shared_tmp: Option<PathBuf>,
    /// The EC2 instances' IMDS on the harness bridge, while an EC2 tier is deployed.
    profiles: InstanceProfiles,
    /// The Lambda tiers' runtime and spawner threads (from the first Lambda deploy).
    lambda: Option<lambda::Host>,
}

impl Context {
    /// Checks that this host and process can run the emulator (privileges, cgroups, network
    /// namespaces, the two executables), takes the run's lock and creates the harness network
    /// namespace. Every problem found here is [`BackendError::Unavailable`] with a plain
    /// reason.
    pub(crate) fn new(config: LocalConfig) -> Result<Context, BackendError> {
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
        let cgroups = cgroup::detect::driver().map_err(unavailable)?;
        let lock =
            RunLock::acquire(&config.run_id).map_err(|e| unavailable(format!("cannot take the run lock: {e}")))?;
        let launcher =
            Launcher::start().map_err(|e| unavailable(format!("cannot create a network namespace and bridge: {e}")))?;
        // SAFETY: sysconf(3) has no preconditions.
        let host_cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
        tracing::debug!(run = %config.run_id, cgroups = cgroups.name(), host_cpus, "local backend ready");
        Ok(Context {
            shared: Arc::new(Shared { config, cgroups, workload }),
            launcher: Some(launcher),
            lock,
            run_dirs: None,
            next_index: 0,
            next_host: HashMap::new(),
            lambda_blocks: HashMap::new(),
            taken_ids: system_ids(),
            host_cpus,
            shared_tmp: None,
            profiles: InstanceProfiles::default(),
            lambda: None,
        })
    }

    pub(crate) fn config(&self) -> &LocalConfig {
        &self.shared.config
    }

    pub(crate) fn cgroups(&self) -> &dyn CgroupDriver {
        &*self.shared.cgroups
    }

    /// CPUs online on this host (every tier's CPU limits are capped by it).
    pub(crate) fn host_cpus(&self) -> u32 {
        self.host_cpus
    }

    /// The launcher thread, or `Unavailable` once it has stopped.
    pub(crate) fn launcher(&self) -> Result<&Launcher, BackendError> {
        self.launcher.as_ref().ok_or_else(|| unavailable("the launcher thread has stopped"))
    }

    /// The launcher thread, if it still runs (teardown does what it can without it).
    pub(crate) fn launcher_if_running(&self) -> Option<&Launcher> {
        self.launcher.as_ref()
    }

    /// The harness network namespace (where instance addresses are reachable).
    pub(crate) fn netns(&self) -> Option<Arc<OwnedFd>> {
        self.launcher.as_ref().map(|l| l.netns().clone())
    }

    /// The run's shared `/tmp`, once the isolation fault `shared-tmp` made one.
    pub(crate) fn shared_tmp(&self) -> Option<&Path> {
        self.shared_tmp.as_deref()
    }

    pub(crate) fn next_uid(&mut self) -> u32 {
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
    pub(crate) fn next_addr(&mut self, subnet: (Ipv4Addr, u8)) -> Result<Ipv4Addr, InstanceError> {
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

    /// An aligned block of `subnet` for a Lambda tier's environments: a quarter of the subnet,
    /// at most a /21 (2,046 environments at once) and at least a /30 (two), after every
    /// address handed out so far (instance addresses continue after it).
    /// A tier deployed again gets the block it had.
    pub(crate) fn reserve_block(
        &mut self,
        tier: TierId,
        subnet: (Ipv4Addr, u8),
    ) -> Result<(Ipv4Addr, u8), InstanceError> {
        if let Some(block) = self.lambda_blocks.get(&(tier, subnet.0, subnet.1)) {
            return Ok(*block);
        }
        let block = self.new_block(subnet)?;
        self.lambda_blocks.insert((tier, subnet.0, subnet.1), block);
        Ok(block)
    }

    fn new_block(&mut self, subnet: (Ipv4Addr, u8)) -> Result<(Ipv4Addr, u8), InstanceError> {
        let (base, prefix) = subnet;
        let size = 1u64 << (32 - u32::from(prefix.min(30)));
        let net = u32::from(base) & !((size - 1) as u32);
        let next = self.next_host.entry((Ipv4Addr::from(net), prefix)).or_insert(2);
        let Some((start, block)) = block_after(*next, prefix) else {
            return Err(InstanceError::AddressesExhausted {
                subnet: format!("{}/{prefix}", Ipv4Addr::from(net)),
                capacity: size.saturating_sub(3),
            });
        };
        *next = start + (1u32 << (32 - u32::from(block)));
        Ok((Ipv4Addr::from(net + start), block))
    }

    /// The run's cgroup directories, created (and the run's lock taken again, after a
    /// teardown) on first use.
    pub(crate) fn ensure_run(&mut self) -> Result<Vec<PathBuf>, FsError> {
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

    /// The instances `requests` of `plan`'s tier, each sized by `sizing`, none started yet:
    /// ids, addresses on the plan's subnet, uids, the workload's arguments, and the run's
    /// shared `/tmp` if the plan breaks isolation so. Creates the run's cgroups and the
    /// subnet's address on the harness bridge on first use.
    pub(crate) fn instance_specs(
        &mut self,
        plan: &TierPlan,
        requests: Vec<InstanceRequest>,
        sizing: &Sizing,
    ) -> Result<Vec<InstanceSpec>, BackendError> {
        let tier = plan.tier;
        self.ensure_run().map_err(|e| deploy_error(tier, "the run's cgroups", e))?;
        let subnet = plan.subnet;
        self.launcher()?
            .run(move |h| h.ensure_subnet(subnet))
            .and_then(|r| r)
            .map_err(|e| deploy_error(tier, "the harness bridge", e))?;
        let mut specs = Vec::with_capacity(requests.len());
        for req in requests {
            let index = self.next_index;
            let id = format!("{tier}-{index}");
            let addr = self.next_addr(subnet).map_err(|e| deploy_error(tier, format!("instance {id}"), e))?;
            let uid = self.next_uid();
            let seed = workload::fault_seed(plan.seed, index);
            let port = self.shared.config.port;
            let args = workload::args(&plan.workload, port, req.pinned_tenant.as_deref(), sizing.workers, seed);
            specs.push(InstanceSpec {
                id,
                tenants: req.tenants,
                index,
                addr,
                prefix: subnet.1,
                uid,
                limits: sizing.limits,
                info_limits: sizing.info_limits,
                args,
                extras: Extras::default(),
            });
        }
        // Deliberately broken isolation (a test of the probes): one /tmp for every instance.
        if plan.faults.contains(&IsolationFault::SharedTmp) {
            let c = &self.shared.config;
            let dir = faults::ensure_shared_tmp(&mut self.shared_tmp, &c.run_id, c.tmpfs_size)
                .map_err(|e| deploy_error(tier, "the shared /tmp of isolation fault shared-tmp", e))?;
            specs.iter_mut().for_each(|s| s.extras.shared_tmp = Some(dir.clone()));
        }
        Ok(specs)
    }

    /// Starts the instances of `specs` (from [`Context::instance_specs`], with what the tier
    /// adds). On error the ones already started are stopped again; what the tier prepared for
    /// them is the tier's to undo.
    pub(crate) fn start_instances(
        &self,
        tier: TierId,
        specs: Vec<InstanceSpec>,
    ) -> Result<Vec<Instance>, BackendError> {
        let shared = self.shared.clone();
        let run_dirs = self.run_dirs.clone().unwrap_or_default();
        let started = self
            .launcher()?
            .run(move |h| instance::start_all(h, &shared, &run_dirs, specs))
            .map_err(|e| deploy_error(tier, "instances", e))?;
        started.map_err(|f| {
            let mut r = TeardownReport::default();
            self.stop_instances(f.started, &mut r);
            if !r.left_behind.is_empty() {
                tracing::warn!(left = ?r.left_behind, "cleanup after a failed deploy left resources behind");
            }
            deploy_error(tier, format!("instance {} ({})", f.id, describe(&f.tenants)), f.error)
        })
    }

    /// Stops instances (in parallel), into `report`.
    pub(crate) fn stop_instances(&self, instances: Vec<Instance>, report: &mut TeardownReport) {
        let (removed, left) = instance::stop_all(&*self.shared.cgroups, instances);
        report.removed.extend(removed);
        report.left_behind.extend(left);
    }

    /// The deployment of `plan`'s tier on `instances`: each tenant's endpoint is the workload
    /// of the instance serving it.
    pub(crate) fn deployment(&self, plan: &TierPlan, instances: &[Instance]) -> Deployment {
        let port = self.shared.config.port;
        let mut targets = Vec::new();
        for t in &plan.tenants {
            if let Some(inst) = instances.iter().find(|i| i.spec.tenants.contains(&t.id)) {
                targets.push(TenantTarget { tenant: t.id.clone(), endpoint: Endpoint::Http(inst.endpoint(port)) });
            }
        }
        let infos = instances.iter().map(Instance::info).collect();
        Deployment { tier: plan.tier, targets, instances: infos, netns: self.netns() }
    }

    /// The EC2 instances' IMDS, started for the first tier that uses it; every
    /// [`Context::acquire_profiles`] is matched by one [`Context::release_profiles`].
    pub(crate) fn acquire_profiles(&mut self) -> Result<&InstanceProfiles, NetworkError> {
        let launcher = self.launcher.as_ref().ok_or(InstanceError::LauncherGone)?;
        self.profiles.acquire(launcher)?;
        Ok(&self.profiles)
    }

    pub(crate) fn profiles(&self) -> &InstanceProfiles {
        &self.profiles
    }

    /// One user of the EC2 instances' IMDS fewer (the last stops it); report lines start with
    /// `owner`.
    pub(crate) fn release_profiles(&mut self, owner: &str) -> (Vec<String>, Vec<String>) {
        self.profiles.release(self.launcher.as_ref(), owner)
    }

    /// Starts the Lambda runtime and spawner threads, for an account of `account_concurrency`
    /// (the run's, so the first Lambda tier's), unless they run already.
    pub(crate) fn start_lambda(&mut self, account_concurrency: u32) -> io::Result<()> {
        if self.lambda.is_none() {
            let c = &self.shared.config;
            let spawners = c.lambda_spawners.unwrap_or_else(|| lambda::spawner_threads(self.host_cpus as usize));
            self.lambda = Some(lambda::Host::start(
                self.shared.cgroups.clone(),
                c.sandbox_exe.clone(),
                &c.run_id,
                spawners,
                account_concurrency,
            )?);
        }
        Ok(())
    }

    /// The Lambda runtime and spawner threads, once [`Context::start_lambda`] started them.
    pub(crate) fn lambda(&self) -> Option<&lambda::Host> {
        self.lambda.as_ref()
    }

    /// The run's memory cgroup: every instance, task and execution environment of the run
    /// lives below it, and nothing else does.
    pub(crate) fn memory_in_use(&self) -> Option<u64> {
        let dirs = self.run_dirs.clone()?;
        match self.shared.cgroups.memory_usage(&cgroup::Cgroup { dirs }) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(error = %e, "failed to read the run's memory usage");
                None
            }
        }
    }

    /// Removes what the run holds beyond its tiers (after every tier's teardown): the shared
    /// `/tmp`, the Lambda runtime and staging directory, the run's cgroups and, last, its lock.
    pub(crate) fn teardown_run(&mut self, report: &mut TeardownReport) {
        faults::teardown_shared_tmp(&mut self.shared_tmp, report);
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
    }

    /// Joins the launcher thread; the harness namespace goes with the last descriptor.
    pub(crate) fn stop_launcher(&mut self) {
        self.launcher.take();
    }
}

/// The block [`Context::reserve_block`] takes from a subnet of `prefix` whose next free host
/// offset is `next`: its offset and prefix, or `None` if it does not fit before the subnet's
/// broadcast address.
fn block_after(next: u32, prefix: u8) -> Option<(u32, u8)> {
    let size = 1u64 << (32 - u32::from(prefix.min(30)));
    let block = (prefix + 2).clamp(21, 30);
    let bsize = 1u32 << (32 - u32::from(block));
    let start = next.div_ceil(bsize) * bsize;
    (u64::from(start) + u64::from(bsize) <= size - 1).then_some((start, block))
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

#[cfg(test)]
mod tests {
    use super::block_after;

    #[test]
    fn a_lambda_block_is_aligned_after_the_addresses_handed_out() {
        assert_eq!(block_after(2, 16), Some((2048, 21)), "a /21 of a /16");
        assert_eq!(block_after(2049, 16), Some((4096, 21)));
        assert_eq!(block_after(2, 24), Some((64, 26)), "a quarter of a /24");
        assert_eq!(block_after(200, 24), None, "no room left before the broadcast");
        assert_eq!(block_after(2, 28), Some((4, 30)), "two addresses at least");
        assert_eq!(block_after(2, 29), None, "a /29 has no room for a block after the harness");
    }
}
