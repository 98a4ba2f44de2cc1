//! [`LocalBackend`]: the [`Backend`] of the local emulator. It holds the backend-wide state
//! ([`Context`]: the run, the launcher thread with the harness namespace, uid and address
//! allocation) and the deployed tiers, and hands each deploy to the tier's driver
//! ([`tiers::tier_driver`]); what a tier is lives in its module under `tiers/`.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, BackendError, BackendInfo, Deployment, Fidelity, InstanceInfo, TeardownReport};
use isobench_core::plan::TierPlan;
use isobench_core::tier::TierId;

use crate::config::LocalConfig;
use crate::context::Context;
use crate::error::{BACKEND, InstanceError, deploy_error};
use crate::instance::Instance;
use crate::lambda::{EnvironmentInfo, FunctionInfo};
use crate::tiers::ec2::InstanceNetwork;
use crate::tiers::ecs::EcsCluster;
use crate::tiers::eks::EksCluster;
use crate::tiers::{self, Ec2Tier, EcsTier, EksTier, LambdaTier, TierDriver};

/// The local emulator. See the crate documentation for what an instance is.
pub struct LocalBackend {
    cx: Context,
    /// Each deployed tier's driver, holding what its deploy created (kept after a teardown
    /// that left something behind, for the run's teardown to try again).
    tiers: BTreeMap<TierId, Box<dyn TierDriver>>,
}

impl LocalBackend {
    /// Checks that this host and process can run the emulator (privileges, cgroups, network
    /// namespaces, the two executables), takes the run's lock and creates the harness network
    /// namespace. Every problem found here is [`BackendError::Unavailable`] with a plain
    /// reason.
    pub fn new(config: LocalConfig) -> Result<LocalBackend, BackendError> {
        Ok(LocalBackend { cx: Context::new(config)?, tiers: BTreeMap::new() })
    }

    /// The run this backend deploys for.
    pub fn run_id(&self) -> &str {
        &self.cx.config().run_id
    }

    /// Which cgroup layout was chosen: `v2`, `v1+unified` or `v1`.
    pub fn cgroup_layout(&self) -> &'static str {
        self.cx.cgroups().name()
    }

    /// The harness network namespace (where instance addresses are reachable).
    pub fn netns(&self) -> Option<Arc<OwnedFd>> {
        self.cx.netns()
    }

    /// Every running instance.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.all_instances().map(Instance::info).collect()
    }

    fn all_instances(&self) -> impl Iterator<Item = &Instance> {
        self.tiers.values().flat_map(|t| t.instances())
    }

    fn find(&self, id: &str) -> Result<&Instance, InstanceError> {
        self.all_instances().find(|i| i.spec.id == id).ok_or_else(|| InstanceError::Unknown { id: id.into() })
    }

    /// Stops every process of an instance (cgroup freezer) and waits until they are stopped.
    pub fn freeze(&self, id: &str) -> Result<(), InstanceError> {
        let i = self.find(id)?;
        Ok(self.cx.cgroups().freeze(&i.cgroup)?)
    }

    /// Lets a frozen instance run again.
    pub fn thaw(&self, id: &str) -> Result<(), InstanceError> {
        let i = self.find(id)?;
        Ok(self.cx.cgroups().thaw(&i.cgroup)?)
    }

    /// CPU time an instance's processes have used.
    pub fn cpu_usage(&self, id: &str) -> Result<Duration, InstanceError> {
        let i = self.find(id)?;
        Ok(self.cx.cgroups().cpu_usage(&i.cgroup)?)
    }

    /// What an instance's sandbox and workload wrote to stdout and stderr (the last `max` bytes).
    pub fn output(&self, id: &str, max: usize) -> Result<String, InstanceError> {
        Ok(self.find(id)?.output_tail(max))
    }

    /// The deployed tier `id`, if its driver is a `T` (for the views only one kind of tier has).
    fn tier<T: TierDriver>(&self, id: TierId) -> Option<&T> {
        self.tiers_of(Some(id)).next()
    }

    /// Every deployed tier whose driver is a `T`, of `id` only if given.
    fn tiers_of<T: TierDriver>(&self, id: Option<TierId>) -> impl Iterator<Item = &T> {
        let of_id = move |t: &TierId| id.is_none_or(|x| x == *t);
        // Through `&dyn TierDriver`: the `Box` is `Any` too, and would downcast as itself.
        self.tiers.iter().filter(move |(t, _)| of_id(t)).filter_map(|(_, d)| d.as_ref().as_any().downcast_ref())
    }

    /// The deployed `ecs-awsvpc` cluster: its bridge, tasks (address, role, credentials path,
    /// groups) and what setting it up cost.
    pub fn ecs_cluster(&self) -> Option<&EcsCluster> {
        self.tier::<EcsTier>(TierId::EcsAwsvpc)?.cluster()
    }

    /// Requests the cluster's ECS agent endpoint and IMDS (if any) have answered so far.
    pub fn ecs_endpoint_requests(&self) -> Option<(u64, Option<u64>)> {
        self.tier::<EcsTier>(TierId::EcsAwsvpc)?.endpoint_requests()
    }

    /// A deployed `eks-pod` tier's cluster: nodes, pods, policies and what setting them up
    /// cost.
    pub fn eks_cluster(&self) -> Option<&EksCluster> {
        self.tier::<EksTier>(TierId::EksPod)?.cluster()
    }

    /// Requests a deployed `eks-pod` tier's IMDS and its pods' credentials endpoint have
    /// answered so far.
    pub fn eks_endpoint_requests(&self) -> Option<(u64, u64)> {
        self.tier::<EksTier>(TierId::EksPod)?.endpoint_requests()
    }

    /// A deployed EC2 tier's network: each instance's security groups and role, and what
    /// setting them up cost.
    pub fn instance_network(&self, tier: TierId) -> Option<&InstanceNetwork> {
        self.tier::<Ec2Tier>(tier)?.network()
    }

    /// Requests the EC2 instances' IMDS has answered so far, while an EC2 tier is deployed.
    pub fn imds_requests(&self) -> Option<u64> {
        self.cx.profiles().served()
    }

    /// The run's shared `/tmp`, once the isolation fault `shared-tmp` made one.
    pub fn shared_tmp(&self) -> Option<&std::path::Path> {
        self.cx.shared_tmp()
    }

    /// Stops one `ecs-awsvpc` task on its own, as a task that exits or is stopped while its
    /// service runs: its processes, cgroups and namespace go, and so do its security-group set
    /// elements (one `nft` run) and its credentials. The other tasks are untouched.
    pub fn stop_task(&mut self, id: &str) -> Result<TeardownReport, BackendError> {
        let t0 = Instant::now();
        let ecs =
            self.tiers.get_mut(&TierId::EcsAwsvpc).and_then(|d| d.as_mut().as_any_mut().downcast_mut::<EcsTier>());
        let Some(ecs) = ecs else {
            return Err(BackendError::Teardown {
                what: format!("task {id}"),
                source: Box::new(InstanceError::Unknown { id: id.into() }),
            });
        };
        let mut report = ecs.stop_task(&self.cx, id)?;
        report.duration = t0.elapsed();
        Ok(report)
    }

    /// The execution environments of a Lambda tier (of every Lambda tier when `None`), with
    /// their lifecycle state, and their CPU time and frozen state read from their cgroups.
    pub fn environments(&self, tier: Option<TierId>) -> Vec<EnvironmentInfo> {
        self.tiers_of::<LambdaTier>(tier).flat_map(LambdaTier::environments).collect()
    }

    /// The functions of a Lambda tier (of every Lambda tier when `None`).
    pub fn functions(&self, tier: Option<TierId>) -> Vec<FunctionInfo> {
        self.tiers_of::<LambdaTier>(tier).flat_map(LambdaTier::functions).collect()
    }

    /// What an execution environment's runtime wrote to stdout and stderr (the last `max` bytes).
    pub fn environment_output(&self, env_id: &str, max: usize) -> Option<String> {
        self.tiers_of::<LambdaTier>(None).find_map(|t| t.output(env_id, max))
    }

    /// Tears one tier down; its driver is kept while it holds something it could not remove.
    fn teardown_tier(&mut self, tier: TierId) -> TeardownReport {
        let Some(mut driver) = self.tiers.remove(&tier) else { return TeardownReport::default() };
        let report = driver.teardown(&mut self.cx);
        if !report.left_behind.is_empty() {
            self.tiers.insert(tier, driver);
        }
        report
    }
}

impl Backend for LocalBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: BACKEND,
            fidelity: Fidelity::Emulated,
            description: format!(
                "Linux namespaces (net, mount, pid, uts, ipc), cgroups ({}), veth pairs on a private bridge, one uid per instance",
                self.cx.cgroups().name()
            ),
        }
    }

    fn deploy(&mut self, plan: &TierPlan) -> Result<Deployment, BackendError> {
        let tier = plan.tier;
        if self.tiers.contains_key(&tier) {
            return Err(deploy_error(
                tier,
                "the tier",
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it is already deployed; tear it down first"),
            ));
        }
        let mut driver = tiers::tier_driver(tier);
        let deployment = driver.deploy(&mut self.cx, plan)?;
        self.tiers.insert(tier, driver);
        Ok(deployment)
    }

    fn teardown(&mut self, tier: TierId) -> Result<TeardownReport, BackendError> {
        let t0 = Instant::now();
        let mut report = self.teardown_tier(tier);
        report.duration = t0.elapsed();
        Ok(report)
    }

    fn teardown_all(&mut self) -> Result<TeardownReport, BackendError> {
        let t0 = Instant::now();
        let mut report = TeardownReport::default();
        for tier in self.tiers.keys().copied().collect::<Vec<_>>() {
            report.merge(self.teardown_tier(tier));
        }
        self.cx.teardown_run(&mut report);
        report.duration = t0.elapsed();
        Ok(report)
    }

    /// The emulator's own record of every environment a Lambda tier started.
    fn inits(&self, tier: TierId) -> Option<Vec<isobench_core::backend::InitRecord>> {
        let mut lambda = self.tiers_of::<LambdaTier>(Some(tier)).peekable();
        lambda.peek()?;
        Some(lambda.flat_map(LambdaTier::inits).collect())
    }

    /// The run's memory cgroup: every instance, task and execution environment of the run
    /// lives below it, and nothing else does.
    fn memory_in_use(&self) -> Option<u64> {
        self.cx.memory_in_use()
    }

    /// No IAM is evaluated here: whether one tenant's credentials read another's data is for
    /// real policies to decide, and the emulator does not imitate them.
    fn unprobeable(&self) -> Vec<(isobench_core::probes::Channel, &'static str)> {
        vec![(
            isobench_core::probes::Channel::Data,
            "no IAM is evaluated locally: whether one tenant's credentials can read another's data is decided by \
             real IAM policies, which the emulator does not model (AWS expectation beside it)",
        )]
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
        self.cx.stop_launcher();
    }
}
