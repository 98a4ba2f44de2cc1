//! `ecs-awsvpc`: one ECS task per tenant in `awsvpc` mode, its workload pinned to that tenant.
//! Everything the emulator does for this tier is decided here; the machinery it calls
//! (instances, security groups, metadata endpoints) knows no tier. A task is an instance
//! ([`crate::instance`]) sized from the task definition; what ECS in `awsvpc` mode gives every
//! task beyond that, and what it still shares, is the cluster's:
//!
//! - **Cluster bridge.** A bridge `ecs0` in the harness namespace holds the subnet's gateway
//!   (as a /32) and the two metadata addresses; each task's veth (its "ENI") is a port of it,
//!   with a host route to the task's address. The EC2 tiers' bridge `br0` is another L2
//!   segment: nothing there reaches a task, and the harness namespace routes nothing between
//!   them (forwarding stays off, except while load agents drive traffic or a Lambda tier's
//!   internet is up; the security groups then still drop what does not come from the harness).
//! - **Security groups** are nftables rules in the harness namespace
//!   ([`crate::security_groups`], tables `isobench_ecs`), installed by one `nft -f -` per deploy
//!   before any task starts, with every task's set elements in the same batch; a task that stops
//!   alone ([`EcsTier::stop_task`]) takes its elements with it.
//! - **Task roles.** The ECS agent endpoint at `169.254.170.2` serves each task its own role's
//!   credentials at the path in its `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
//!   ([`crate::metadata::agent`]).
//! - **The container instance.** On the `ec2` launch type, IMDS at `169.254.169.254` serves the
//!   instance role to every task that can reach it: a route via the gateway, unless
//!   `block_imds` (`ECS_AWSVPC_BLOCK_IMDS=true`) puts a blackhole route there instead, as the
//!   ECS ENI plugin does, and the filter's `imds` set admits only tasks without the block.
//!   Fargate has no IMDS at all: no route, no address, no server.
//! - **Sizing** ([`sizing`]): 1024 CPU units are one vCPU (at least 1 ms per 100 ms period, at
//!   most the host's CPUs); the task's memory; one workload worker per started vCPU.
//!
//! Tasks route only to their subnet and to those two /32s through the gateway; the harness
//! namespace has no route out. Everything here lives in the harness namespace and goes with it,
//! so a crashed harness leaves nothing of it on the host; teardown removes it explicitly anyway
//! (tasks, then endpoints, then the tables, then the bridge), measured.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::backend::{BackendError, Deployment, TeardownReport};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::ecs::{ACCOUNT_ID, EcsSpec, HttpTokens, LaunchType, TaskDefinition};

use super::driver::{TierDriver, deployed, teardown_instances};
use crate::cgroup::CPU_PERIOD_US;
use crate::context::Context;
use crate::error::{InstanceError, NetworkError, wrong_settings};
use crate::instance::{Instance, InstanceRequest, InstanceSpec, Sizing};
use crate::launcher::{Attach, BridgeRef, InstanceRoute, Launcher, gateway_of};
use crate::metadata::agent::{Agent, AgentTask, ClusterInfo};
use crate::metadata::http::Server;
use crate::metadata::imds::{Imds, InstanceIdentity};
use crate::metadata::{
    AVAILABILITY_ZONE, Credentials, ECS_AGENT_ADDR, IMDS_ADDR, METADATA_PORT, REGION, listen_on_device, random_hex,
    uuid4,
};
use crate::security_groups::{Member, SecurityGroups, Table};

/// Name of the cluster bridge in the harness namespace.
pub const CLUSTER_BRIDGE: &str = "ecs0";
/// The cluster's nftables tables: tasks may reach the ECS agent endpoint.
const TABLE: Table = Table { name: "isobench_ecs", ecs_agent: true };

/// One task of a deployed cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsTask {
    /// The instance id (as in [`isobench_core::InstanceInfo::id`]).
    pub id: String,
    pub tenant: String,
    pub addr: Ipv4Addr,
    pub task_arn: String,
    pub role_arn: String,
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
    pub credentials_uri: String,
    /// The names of its security groups.
    pub groups: Vec<String>,
}

/// A deployed cluster, and what setting it up cost.
#[derive(Debug, Clone)]
pub struct EcsCluster {
    pub name: String,
    pub bridge: String,
    /// The subnet's gateway: the harness, as tasks see it.
    pub gateway: Ipv4Addr,
    pub launch_type: LaunchType,
    /// Whether tasks can reach IMDS (`ec2` launch type without `block_imds`).
    pub imds_reachable: bool,
    pub tasks: Vec<EcsTask>,
    /// Creating the bridge with its addresses and binding the endpoints' listeners.
    pub network_setup: Duration,
    /// Starting the endpoint servers (credentials issued for every task).
    pub endpoints_start: Duration,
    /// The one `nft -f -` run that installs tables, sets, rules and every task's elements.
    pub filter_install: Duration,
    /// The ruleset as installed.
    pub ruleset: String,
}

/// An `ecs-awsvpc` deploy.
#[derive(Default)]
pub(crate) struct EcsTier {
    instances: Vec<Instance>,
    cluster: Option<Cluster>,
}

/// The live cluster: what teardown must remove.
struct Cluster {
    info: EcsCluster,
    groups: SecurityGroups,
    bridge: Option<BridgeRef>,
    /// The agent's state, shared with its server (to revoke a stopped task's credentials).
    agent_state: Option<Arc<Agent>>,
    agent: Option<Server>,
    imds: Option<Server>,
}

impl EcsTier {
    /// The deployed cluster: its bridge, tasks and what setting it up cost.
    pub(crate) fn cluster(&self) -> Option<&EcsCluster> {
        self.cluster.as_ref().map(|c| &c.info)
    }

    /// Requests the cluster's ECS agent endpoint and IMDS (if any) have answered so far.
    pub(crate) fn endpoint_requests(&self) -> Option<(u64, Option<u64>)> {
        let c = self.cluster.as_ref()?;
        Some((c.agent.as_ref().map_or(0, Server::served), c.imds.as_ref().map(Server::served)))
    }

    /// Stops one task on its own, as a task that exits or is stopped while its service runs:
    /// its processes, cgroups and namespace go, and so do its security-group set elements (one
    /// `nft` run) and its credentials. The other tasks are untouched.
    pub(crate) fn stop_task(&mut self, cx: &Context, id: &str) -> Result<TeardownReport, BackendError> {
        let Some(i) = self.instances.iter().position(|i| i.spec.id == id) else {
            return Err(BackendError::Teardown {
                what: format!("task {id}"),
                source: Box::new(InstanceError::Unknown { id: id.into() }),
            });
        };
        let mut report = TeardownReport::default();
        cx.stop_instances(vec![self.instances.remove(i)], &mut report);
        match self.cluster.as_mut().and_then(|c| c.remove_task(id)) {
            Some(Ok(d)) => report
                .removed
                .push(format!("task {id}: security-group elements and credentials ({:.1} ms)", d.as_secs_f64() * 1e3)),
            Some(Err(e)) => report.left_behind.push(format!("task {id}: security-group elements: failed to {e}")),
            None => {}
        }
        Ok(report)
    }

    /// Sets up the cluster for `specs` (one per tenant, addresses chosen) and starts them. What
    /// it made is in `self` for [`TierDriver::teardown`], also on error.
    fn start(
        &mut self,
        cx: &mut Context,
        plan: &TierPlan,
        spec: &EcsSpec,
        mut specs: Vec<InstanceSpec>,
    ) -> Result<(), BackendError> {
        create_cluster(&mut self.cluster, cx.launcher()?, plan, spec, &mut specs)
            .map_err(|e| e.into_backend(plan.tier, "the ECS cluster"))?;
        self.instances = cx.start_instances(plan.tier, specs)?;
        Ok(())
    }
}

impl TierDriver for EcsTier {
    fn deploy(&mut self, cx: &mut Context, plan: &TierPlan) -> Result<Deployment, BackendError> {
        let spec = ecs_spec(plan)?;
        let sizing = sizing(&spec.task_definition, cx.host_cpus(), cx.config().pids_max);
        let specs = cx.instance_specs(plan, layout(plan), &sizing)?;
        let started = self.start(cx, plan, spec, specs);
        deployed(self, cx, plan, started)
    }

    fn teardown(&mut self, cx: &mut Context) -> TeardownReport {
        teardown_instances(cx, &mut self.instances, &mut self.cluster, |c, cx| c.remove(cx.launcher_if_running()))
    }

    fn instances(&self) -> &[Instance] {
        &self.instances
    }
}

/// One task per tenant, its workload pinned to that tenant.
fn layout(plan: &TierPlan) -> Vec<InstanceRequest> {
    plan.tenants.iter().map(|t| InstanceRequest::pinned(&t.id)).collect()
}

/// The tier's ECS settings; any other settings are refused rather than guessed.
fn ecs_spec(plan: &TierPlan) -> Result<&EcsSpec, BackendError> {
    match &plan.settings {
        TierSettings::Ecs(spec) => Ok(spec),
        _ => Err(wrong_settings(plan, "ECS settings (a task definition)")),
    }
}

/// A task of `td`: 1024 CPU units are one vCPU (cgroups refuse a quota under 1 ms per period;
/// at most the host's CPUs), its memory, one worker per started vCPU.
fn sizing(td: &TaskDefinition, host_cpus: u32, pids_max: u64) -> Sizing {
    let host_quota = u64::from(host_cpus) * CPU_PERIOD_US;
    let quota = (u64::from(td.cpu) * CPU_PERIOD_US / 1024).clamp(1000, host_quota);
    let workers = td.cpu.div_ceil(1024).min(host_cpus).max(1);
    Sizing::new(quota, u64::from(td.memory) << 20, pids_max, workers)
}

/// Sets up the cluster for the tasks in `specs` (one per tenant, addresses chosen) into `slot`,
/// where teardown finds it also when a step fails: its security groups' switch, the bridge with
/// its addresses and the endpoints' listeners, then [`Cluster::start`].
fn create_cluster(
    slot: &mut Option<Cluster>,
    launcher: &Launcher,
    plan: &TierPlan,
    spec: &EcsSpec,
    specs: &mut [InstanceSpec],
) -> Result<(), NetworkError> {
    let t0 = Instant::now();
    let name = format!("isobench-{}", plan.run_id);
    let groups = SecurityGroups::enable(launcher, plan.tier, TABLE, format!("cluster {name}"))?;
    let gateway = gateway_of(plan.subnet);
    let info = EcsCluster {
        name,
        bridge: CLUSTER_BRIDGE.into(),
        gateway,
        launch_type: spec.launch_type,
        imds_reachable: spec.imds_reachable(),
        tasks: Vec::new(),
        network_setup: Duration::ZERO,
        endpoints_start: Duration::ZERO,
        filter_install: Duration::ZERO,
        ruleset: String::new(),
    };
    let cluster = slot.insert(Cluster { info, groups, bridge: None, agent_state: None, agent: None, imds: None });

    let imds_on = spec.container_instance.is_some();
    let mut addrs = vec![gateway, ECS_AGENT_ADDR];
    if imds_on {
        addrs.push(IMDS_ADDR);
    }
    type Setup = (BridgeRef, TcpListener, Option<TcpListener>);
    let (bridge, agent, imds) = launcher.run(move |h| -> Result<Setup, NetworkError> {
        // On the launcher thread, inside the harness namespace.
        let bridge = h
            .add_bridge(CLUSTER_BRIDGE, &addrs)
            .map_err(NetworkError::net(format!("create the cluster bridge {CLUSTER_BRIDGE}")))?;
        let listeners = (|| {
            let on = |a: Ipv4Addr| NetworkError::net(format!("listen on {a}:{METADATA_PORT}"));
            let agent = TcpListener::bind((ECS_AGENT_ADDR, METADATA_PORT)).map_err(on(ECS_AGENT_ADDR))?;
            // Bound to the cluster bridge: the EC2 tiers' IMDS listens on the same address on `br0`.
            let imds = imds_on.then(|| {
                listen_on_device(IMDS_ADDR, CLUSTER_BRIDGE)
                    .map_err(NetworkError::net(format!("listen on {IMDS_ADDR}:{METADATA_PORT} on {CLUSTER_BRIDGE}")))
            });
            Ok::<_, NetworkError>((agent, imds.transpose()?))
        })();
        match listeners {
            Ok((agent, imds)) => Ok((bridge, agent, imds)),
            Err(e) => {
                let _ = h.delete_link(bridge.index);
                Err(e)
            }
        }
    })??;
    cluster.bridge = Some(bridge);
    cluster.info.network_setup = t0.elapsed();
    cluster.start(plan, spec, specs, bridge, agent, imds)
}

impl Cluster {
    /// Wires the tasks in `specs` into the cluster (each its port on the bridge, routes,
    /// environment, credentials and security groups), starts the endpoint servers on their
    /// listeners and installs the security groups (one `nft` batch for every task).
    fn start(
        &mut self,
        plan: &TierPlan,
        spec: &EcsSpec,
        specs: &mut [InstanceSpec],
        bridge: BridgeRef,
        agent_listener: TcpListener,
        imds_listener: Option<TcpListener>,
    ) -> Result<(), NetworkError> {
        let run = &plan.run_id;
        let tenants: Vec<String> = specs.iter().map(|s| s.tenants.first().cloned().unwrap_or_default()).collect();
        let resolved = spec.resolve(run, &tenants);
        let cluster_arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{}", self.info.name);

        let t0 = Instant::now();
        let mut agent_tasks = Vec::with_capacity(specs.len());
        let mut members = Vec::with_capacity(specs.len());
        for (s, (tenant, groups)) in specs.iter_mut().zip(&resolved.tasks) {
            let task_id = random_hex(16);
            let credentials_id = uuid4();
            let metadata_id = format!("{task_id}-{}", &random_hex(5)[..10]);
            let role_arn = spec.task_role_arn(run, tenant);
            let task_arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task/{}/{task_id}", self.info.name);
            let credentials_uri = format!("/v2/credentials/{credentials_id}");
            s.extras.attach = Attach { bridge: Some(bridge), routes: task_routes(spec), node: None };
            s.extras.env = task_env(spec, &credentials_uri, &metadata_id);
            agent_tasks.push(AgentTask {
                addr: s.addr,
                credentials_id,
                metadata_id,
                task_arn: task_arn.clone(),
                family: spec.task_definition.family.clone(),
                cpu_units: spec.task_definition.cpu,
                memory_mib: spec.task_definition.memory,
                credentials: Credentials::issue(run, &role_arn),
            });
            let imds = spec.imds_reachable();
            members.push((
                s.id.clone(),
                Member { addr: s.addr, port: format!("v{}", s.index), groups: groups.clone(), imds },
            ));
            self.info.tasks.push(EcsTask {
                id: s.id.clone(),
                tenant: tenant.clone(),
                addr: s.addr,
                task_arn,
                role_arn,
                credentials_uri,
                groups: groups.iter().map(|g| resolved.groups[*g].name.clone()).collect(),
            });
        }
        let info = ClusterInfo {
            cluster_arn,
            launch_type: spec.launch_type.as_str(),
            availability_zone: AVAILABILITY_ZONE.into(),
        };
        let agent = Arc::new(Agent::new(info, agent_tasks));
        self.agent_state = Some(agent.clone());
        let agent = Server::start("ecs-agent", agent_listener, agent);
        self.agent = Some(agent.map_err(NetworkError::net("start the ECS agent endpoint"))?);
        if let (Some(l), Some(ci)) = (imds_listener, &spec.container_instance) {
            let role = spec.instance_role(run).unwrap_or_default();
            let mut identity =
                InstanceIdentity::new(run, role, ci.instance_type.clone(), self.info.gateway, bridge.mac);
            identity.tokens_required = ci.http_tokens == HttpTokens::Required;
            let imds = Server::start("imds", l, Arc::new(Imds::new(identity)));
            self.imds = Some(imds.map_err(NetworkError::net("start IMDS"))?);
        }
        self.info.endpoints_start = t0.elapsed();

        let (ruleset, took) = self.groups.install(&resolved, members, self.info.gateway)?;
        self.info.filter_install = took;
        self.info.ruleset = ruleset;
        Ok(())
    }

    /// Forgets a task that stopped on its own: revokes its credentials and deletes its set
    /// elements (one `nft` run). Returns how long the `nft` run took; `None` if the cluster has
    /// no such task.
    fn remove_task(&mut self, id: &str) -> Option<Result<Duration, NetworkError>> {
        let i = self.info.tasks.iter().position(|t| t.id == id)?;
        let task = self.info.tasks.remove(i);
        if let Some(a) = &self.agent_state {
            a.remove(task.addr);
        }
        self.groups.remove_member(id)
    }

    /// Removes the endpoints, the tables and the bridge (the tasks must be stopped first).
    /// Idempotent. Returns what was removed and what was left behind.
    fn remove(&mut self, launcher: Option<&Launcher>) -> (Vec<String>, Vec<String>) {
        let name = self.info.name.clone();
        let mut removed = Vec::new();
        for (what, server) in [("ECS agent endpoint", self.agent.take()), ("IMDS", self.imds.take())] {
            if let Some(s) = server {
                let (addr, served) = (s.local_addr(), s.served());
                s.stop();
                removed.push(format!("cluster {name}: {what} {addr} ({served} requests served)"));
            }
        }
        let (r, mut left) = self.groups.remove(launcher);
        removed.extend(r);
        if let Some(b) = self.bridge {
            let t0 = Instant::now();
            let r = match launcher {
                Some(l) => l
                    .run(move |h| h.delete_link(b.index))
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string())),
                None => Err("the launcher thread has stopped (it goes with the harness namespace)".into()),
            };
            match r {
                Ok(()) => {
                    self.bridge = None;
                    removed.push(format!(
                        "cluster {name}: bridge {} with {ECS_AGENT_ADDR}, {IMDS_ADDR} and the task routes ({:.1} ms)",
                        self.info.bridge,
                        t0.elapsed().as_secs_f64() * 1e3
                    ));
                }
                Err(e) => left.push(format!("cluster {name}: bridge {}: failed to delete it: {e}", self.info.bridge)),
            }
        }
        (removed, left)
    }
}

/// A task's routes beside its subnet: the ECS agent endpoint, and IMDS on the EC2 launch type
/// (a blackhole instead with `block_imds`, as the ECS ENI plugin does).
fn task_routes(spec: &EcsSpec) -> Vec<InstanceRoute> {
    let mut routes = vec![InstanceRoute::ViaGateway(ECS_AGENT_ADDR)];
    match &spec.container_instance {
        Some(ci) if ci.block_imds => routes.push(InstanceRoute::Blackhole(IMDS_ADDR)),
        Some(_) => routes.push(InstanceRoute::ViaGateway(IMDS_ADDR)),
        None => {}
    }
    routes
}

/// What the ECS agent puts in a task's environment.
fn task_env(spec: &EcsSpec, credentials_uri: &str, metadata_id: &str) -> Vec<(String, String)> {
    let execution_env = match spec.launch_type {
        LaunchType::Fargate => "AWS_ECS_FARGATE",
        LaunchType::Ec2 => "AWS_ECS_EC2",
    };
    vec![
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".into(), credentials_uri.into()),
        ("ECS_CONTAINER_METADATA_URI_V4".into(), format!("http://{ECS_AGENT_ADDR}/v4/{metadata_id}")),
        ("AWS_REGION".into(), REGION.into()),
        ("AWS_DEFAULT_REGION".into(), REGION.into()),
        ("AWS_EXECUTION_ENV".into(), execution_env.into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_units_size_the_task() {
        let td = |cpu, memory| TaskDefinition { cpu, memory, ..TaskDefinition::default() };
        let s = sizing(&td(256, 512), 2, 1024);
        assert_eq!((s.limits.cpu_quota_us, s.limits.memory_bytes, s.workers), (25_000, 512 << 20, 1));
        assert_eq!(s.info_limits.cpu_millis, 250);
        assert_eq!(sizing(&td(4096, 512), 2, 1024).limits.cpu_quota_us, 200_000, "capped at the host's CPUs");
        assert_eq!(sizing(&td(4096, 512), 2, 1024).workers, 2);
        assert_eq!(sizing(&td(1, 512), 2, 1024).limits.cpu_quota_us, 1000, "at least 1 ms per period");
    }
}
