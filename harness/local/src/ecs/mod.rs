//! The `ecs-awsvpc` tier's cluster: what ECS in `awsvpc` mode gives every task beyond a plain
//! instance, and what it still shares.
//!
//! - **Cluster bridge.** A bridge `ecs0` in the harness namespace holds the subnet's gateway
//!   (as a /32) and the two metadata addresses; each task's veth (its "ENI") is a port of it,
//!   with a host route to the task's address. The EC2 tiers' bridge `br0` is another L2
//!   segment: nothing there reaches a task, and the harness namespace routes nothing between
//!   them (forwarding stays off).
//! - **Security groups** are nftables rules in the harness namespace ([`filter`]), installed by
//!   one `nft -f -` per deploy before any task starts, with every task's set elements in the
//!   same batch.
//! - **Task roles.** The ECS agent endpoint at `169.254.170.2` serves each task its own role's
//!   credentials at the path in its `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
//!   ([`crate::metadata::agent`]).
//! - **The container instance.** On the `ec2` launch type, IMDS at `169.254.169.254` serves the
//!   instance role to every task that can reach it: a route via the gateway, unless
//!   `block_imds` (`ECS_AWSVPC_BLOCK_IMDS=true`) puts a blackhole route there instead, as the
//!   ECS ENI plugin does, and the filter's `imds` set admits only tasks without the block.
//!   Fargate has no IMDS at all: no route, no address, no server.
//!
//! Tasks route only to their subnet and to those two /32s through the gateway; the harness
//! namespace has no route out. Everything here lives in the harness namespace and goes with it,
//! so a crashed harness leaves nothing of it on the host; teardown removes it explicitly anyway
//! (endpoints, then the tables, then the bridge), measured.

pub(crate) mod filter;

use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::plan::TierPlan;
use isobench_core::scenario::ecs::{ACCOUNT_ID, EcsSpec, LaunchType};

use crate::error::InstanceError;
use crate::instance::InstanceSpec;
use crate::launcher::{BridgeRef, InstanceRoute, Launcher};
use crate::metadata::agent::{Agent, AgentTask, ClusterInfo};
use crate::metadata::http::Server;
use crate::metadata::imds::{Imds, InstanceIdentity};
use crate::metadata::{Credentials, ECS_AGENT_ADDR, IMDS_ADDR, METADATA_PORT, REGION, random_bytes, uuid4};
use crate::nft::{self, NftError};

/// Name of the cluster bridge in the harness namespace.
pub const CLUSTER_BRIDGE: &str = "ecs0";
/// The availability zone every task and the container instance report.
const AVAILABILITY_ZONE: &str = "us-east-1a";
use crate::launcher::BRIDGE_NF;

/// Why a cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "find `nft`: the ecs-awsvpc tier enforces its security groups with nftables; install it with scripts/deps.sh (or `apt-get install nftables`)"
    )]
    NoNft,
    #[error(
        "filter traffic between tasks: the kernel's bridge netfilter is missing ({BRIDGE_NF}); load it with `modprobe br_netfilter` (which also sends the host's own bridged traffic through its firewall unless `net.bridge.bridge-nf-call-iptables=0` is set on the host)"
    )]
    NoBridgeNetfilter,
    #[error("{what}")]
    Net {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("install the security groups")]
    Filter(#[source] NftError),
    #[error(transparent)]
    Launcher(#[from] InstanceError),
}

impl ClusterError {
    /// Whether this host cannot run the tier at all (as opposed to a failed attempt).
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(self, ClusterError::NoNft | ClusterError::NoBridgeNetfilter)
    }
}

fn net(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Net { what, source }
}

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

/// The live cluster: what teardown must remove.
pub(crate) struct Cluster {
    pub info: EcsCluster,
    nft: PathBuf,
    netns: Arc<OwnedFd>,
    bridge: Option<BridgeRef>,
    /// Whether the cluster holds the harness's bridge netfilter switch on.
    nf_held: bool,
    filter: bool,
    /// Every task's set elements, by instance id (to delete them when it stops alone).
    elements: Vec<(String, filter::FilterTask)>,
    /// The agent's state, shared with its server (to revoke a stopped task's credentials).
    agent_state: Option<Arc<Agent>>,
    agent: Option<Server>,
    imds: Option<Server>,
}

/// The first host address of a subnet (the gateway, as for the harness bridge).
fn gateway_of(subnet: (Ipv4Addr, u8)) -> Ipv4Addr {
    let mask = if subnet.1 == 0 { 0 } else { u32::MAX << (32 - u32::from(subnet.1)) };
    Ipv4Addr::from((u32::from(subnet.0) & mask) + 1)
}

fn hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// Sets up the cluster for the tasks in `specs` (one per tenant, addresses already chosen) and
/// fills in their wiring (bridge, routes, environment). On error nothing of it is left.
pub(crate) fn create(
    launcher: &Launcher,
    plan: &TierPlan,
    spec: &EcsSpec,
    specs: &mut [InstanceSpec],
) -> Result<Cluster, ClusterError> {
    let nft = nft::find().ok_or(ClusterError::NoNft)?;
    let run = plan.run_id.clone();
    let gateway = gateway_of(plan.subnet);
    let imds_on = spec.container_instance.is_some();

    let t0 = Instant::now();
    let mut addrs = vec![gateway, ECS_AGENT_ADDR];
    if imds_on {
        addrs.push(IMDS_ADDR);
    }
    type Setup = (BridgeRef, TcpListener, Option<TcpListener>);
    let setup = launcher.run(move |h| -> Result<Setup, ClusterError> {
        // On the launcher thread, inside the harness namespace.
        if !std::path::Path::new(BRIDGE_NF).exists() {
            return Err(ClusterError::NoBridgeNetfilter);
        }
        h.bridge_nf_acquire().map_err(net(format!("enable {BRIDGE_NF}")))?;
        let undo = |h: &mut crate::launcher::Harness, b: Option<BridgeRef>| {
            if let Some(b) = b {
                let _ = h.delete_link(b.index);
            }
            h.bridge_nf_release();
        };
        let bridge = match h.add_bridge(CLUSTER_BRIDGE, &addrs) {
            Ok(b) => b,
            Err(e) => {
                undo(h, None);
                return Err(net(format!("create the cluster bridge {CLUSTER_BRIDGE}"))(e));
            }
        };
        let bind =
            |a: Ipv4Addr| TcpListener::bind((a, METADATA_PORT)).map_err(net(format!("listen on {a}:{METADATA_PORT}")));
        let agent = match bind(ECS_AGENT_ADDR) {
            Ok(l) => l,
            Err(e) => {
                undo(h, Some(bridge));
                return Err(e);
            }
        };
        // Bound to the cluster bridge: the EC2 tiers' IMDS listens on the same address on `br0`.
        let imds = imds_on.then(|| {
            crate::metadata::listen_on_device(IMDS_ADDR, CLUSTER_BRIDGE)
                .map_err(net(format!("listen on {IMDS_ADDR}:{METADATA_PORT} on {CLUSTER_BRIDGE}")))
        });
        let imds = match imds.transpose() {
            Ok(l) => l,
            Err(e) => {
                undo(h, Some(bridge));
                return Err(e);
            }
        };
        Ok((bridge, agent, imds))
    })??;
    let (bridge, agent_listener, imds_listener) = setup;
    let mut cluster = Cluster {
        info: EcsCluster {
            name: format!("isobench-{run}"),
            bridge: CLUSTER_BRIDGE.into(),
            gateway,
            launch_type: spec.launch_type,
            imds_reachable: spec.imds_reachable(),
            tasks: Vec::new(),
            network_setup: t0.elapsed(),
            endpoints_start: Duration::ZERO,
            filter_install: Duration::ZERO,
            ruleset: String::new(),
        },
        nft,
        netns: launcher.netns().clone(),
        bridge: Some(bridge),
        nf_held: true,
        filter: false,
        elements: Vec::new(),
        agent_state: None,
        agent: None,
        imds: None,
    };
    match cluster.start(plan, spec, specs, bridge, agent_listener, imds_listener) {
        Ok(()) => Ok(cluster),
        Err(e) => {
            let (_, left, _) = cluster.teardown(Some(launcher));
            if !left.is_empty() {
                tracing::warn!(?left, "cleanup after a failed cluster setup left resources behind");
            }
            Err(e)
        }
    }
}

impl Cluster {
    fn start(
        &mut self,
        plan: &TierPlan,
        spec: &EcsSpec,
        specs: &mut [InstanceSpec],
        bridge: BridgeRef,
        agent_listener: TcpListener,
        imds_listener: Option<TcpListener>,
    ) -> Result<(), ClusterError> {
        let run = &plan.run_id;
        let tenants: Vec<String> = specs.iter().map(|s| s.tenants.first().cloned().unwrap_or_default()).collect();
        let resolved = spec.resolve(run, &tenants);
        let cluster_arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{}", self.info.name);

        let t0 = Instant::now();
        let mut agent_tasks = Vec::with_capacity(specs.len());
        let mut filter_tasks = Vec::with_capacity(specs.len());
        for (s, (tenant, groups)) in specs.iter_mut().zip(&resolved.tasks) {
            let task_id = hex(16);
            let credentials_id = uuid4();
            let metadata_id = format!("{task_id}-{}", &hex(5)[..10]);
            let role_arn = spec.task_role_arn(run, tenant);
            let task_arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task/{}/{task_id}", self.info.name);
            let credentials_uri = format!("/v2/credentials/{credentials_id}");
            let mut routes = vec![InstanceRoute::ViaGateway(ECS_AGENT_ADDR)];
            match &spec.container_instance {
                Some(ci) if ci.block_imds => routes.push(InstanceRoute::Blackhole(IMDS_ADDR)),
                Some(_) => routes.push(InstanceRoute::ViaGateway(IMDS_ADDR)),
                None => {}
            }
            s.extras.attach = crate::launcher::Attach { bridge: Some(bridge), routes };
            s.extras.env = vec![
                ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".into(), credentials_uri.clone()),
                ("ECS_CONTAINER_METADATA_URI_V4".into(), format!("http://{ECS_AGENT_ADDR}/v4/{metadata_id}")),
                ("AWS_REGION".into(), REGION.into()),
                ("AWS_DEFAULT_REGION".into(), REGION.into()),
                (
                    "AWS_EXECUTION_ENV".into(),
                    match spec.launch_type {
                        LaunchType::Fargate => "AWS_ECS_FARGATE",
                        LaunchType::Ec2 => "AWS_ECS_EC2",
                    }
                    .into(),
                ),
            ];
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
            let ft = filter::FilterTask {
                addr: s.addr,
                port: format!("v{}", s.index),
                groups: groups.clone(),
                imds: spec.imds_reachable(),
            };
            self.elements.push((s.id.clone(), ft.clone()));
            filter_tasks.push(ft);
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
        self.agent =
            Some(Server::start("ecs-agent", agent_listener, agent).map_err(net("start the ECS agent endpoint"))?);
        if let (Some(l), Some(ci)) = (imds_listener, &spec.container_instance) {
            let role = spec.instance_role(run).unwrap_or_default();
            let identity = InstanceIdentity {
                instance_id: format!("i-0{}", &hex(8)[..16]),
                instance_type: ci.instance_type.clone(),
                ami_id: format!("ami-0{}", &hex(8)[..16]),
                local_ipv4: self.info.gateway,
                mac: bridge.mac,
                region: REGION.into(),
                availability_zone: AVAILABILITY_ZONE.into(),
                account_id: ACCOUNT_ID.into(),
                instance_profile_arn: format!("arn:aws:iam::{ACCOUNT_ID}:instance-profile/{role}"),
                credentials: Credentials::issue(run, &format!("arn:aws:iam::{ACCOUNT_ID}:role/{role}")),
                role,
                tokens_required: ci.http_tokens == isobench_core::scenario::ecs::HttpTokens::Required,
            };
            self.imds = Some(Server::start("imds", l, Arc::new(Imds::new(identity))).map_err(net("start IMDS"))?);
        }
        self.info.endpoints_start = t0.elapsed();

        let script = filter::ruleset(&resolved, &filter_tasks, self.info.gateway);
        self.filter = true; // a failed run may have left part of it: teardown removes it either way
        self.info.filter_install = nft::apply(&self.nft, &self.netns, &script).map_err(ClusterError::Filter)?;
        self.info.ruleset = script;
        Ok(())
    }

    /// Forgets a task that stopped on its own: deletes its set elements (one `nft` run), so no
    /// group admits or matches its address any more, and revokes its credentials. Returns how
    /// long the `nft` run took; `None` if the cluster has no such task.
    pub(crate) fn remove_task(&mut self, id: &str) -> Option<Result<Duration, ClusterError>> {
        let i = self.elements.iter().position(|(t, _)| t == id)?;
        let (_, ft) = self.elements.remove(i);
        if let Some(a) = &self.agent_state {
            a.remove(ft.addr);
        }
        self.info.tasks.retain(|t| t.id != id);
        Some(nft::apply(&self.nft, &self.netns, &filter::task_elements("delete", &ft)).map_err(ClusterError::Filter))
    }

    /// Requests each endpoint has answered: (ECS agent, IMDS).
    pub(crate) fn served(&self) -> (u64, Option<u64>) {
        (self.agent.as_ref().map_or(0, Server::served), self.imds.as_ref().map(Server::served))
    }

    /// Removes the endpoints, the tables and the bridge (the tasks must be stopped first).
    /// Idempotent. Returns what was removed, what was left behind, and how long it took.
    pub(crate) fn teardown(&mut self, launcher: Option<&Launcher>) -> (Vec<String>, Vec<String>, Duration) {
        let t0 = Instant::now();
        let (mut removed, mut left) = (Vec::new(), Vec::new());
        let name = self.info.name.clone();
        for (what, server) in [("ECS agent endpoint", self.agent.take()), ("IMDS", self.imds.take())] {
            if let Some(s) = server {
                let (addr, served) = (s.local_addr(), s.served());
                s.stop();
                removed.push(format!("cluster {name}: {what} {addr} ({served} requests served)"));
            }
        }
        if self.filter {
            match nft::apply(&self.nft, &self.netns, &filter::teardown_script()) {
                Ok(d) => {
                    self.filter = false;
                    removed.push(format!(
                        "cluster {name}: security groups (nftables tables ip and bridge {}, {:.1} ms)",
                        filter::TABLE,
                        d.as_secs_f64() * 1e3
                    ));
                }
                Err(e) => left.push(format!("cluster {name}: nftables tables {}: failed to {e}", filter::TABLE)),
            }
        }
        if let Some(b) = self.bridge {
            let t1 = Instant::now();
            let held = std::mem::take(&mut self.nf_held);
            let r = match launcher {
                Some(l) => l
                    .run(move |h| {
                        let r = h.delete_link(b.index);
                        if held {
                            h.bridge_nf_release();
                        }
                        r
                    })
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
                        t1.elapsed().as_secs_f64() * 1e3
                    ));
                }
                Err(e) => left.push(format!("cluster {name}: bridge {}: failed to delete it: {e}", self.info.bridge)),
            }
        }
        (removed, left, t0.elapsed())
    }
}
