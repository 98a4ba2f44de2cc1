//! `eks-pod`: one pod per tenant on emulated EKS nodes, in the kernel-isolation terms of the
//! ECS tier. A pod is an instance ([`crate::instance`]: its own net, pid, mount and uts
//! namespaces, a cgroup sized from the pod's requests = limits); what EKS with the VPC CNI
//! adds is the node between the pod and everything else:
//!
//! ```text
//!  harness namespace                      node namespace (forwards)       pod namespace
//!  ┌──────────────────────────┐  veth     ┌─────────────────────────┐ veth ┌──────────────┐
//!  │ bridge eks0              ├─nd<n>─eth0┤ 10.213.0.x/24           ├─v<i>─┤ eth0 10.213.… │
//!  │  gw 10.213.0.1/32        │           │ pod/32 dev v<i>         │ eth0 │ /32          │
//!  │  IMDS 169.254.169.254/32 │           │ other nodes' pods via   │      │ default via  │
//!  │  169.254.170.23 or .30   │           │   their node            │      │ 169.254.1.1  │
//!  │  (Pod Identity / STS)    │           │ IMDS/32 via gw (SNAT)   │      │ (static ARP: │
//!  │ pod/32 via node          │           │ .170.23|.30/32 via gw   │      │  node's v<i>)│
//!  │ node/32 dev eks0         │           │ forwarding, rp_filter   │      │ own /run     │
//!  └──────────────────────────┘           │ nft: isobench_eks(_sg)  │      │ (its token)  │
//!                                         └─────────────────────────┘      └──────────────┘
//! ```
//!
//! - **Nodes** are network namespaces acting as routers, as an EKS node's host namespace is
//!   with the VPC CNI: a primary address on the cluster bridge `eks0` (a port `nd<n>` in the
//!   harness namespace), forwarding on (that namespace's own switch), strict reverse-path
//!   filtering (a pod cannot use another's address), and a host route per pod to its veth.
//!   Nodes run no processes: what a node has that matters here is its routing, its packet
//!   filter and its IMDS identity.
//! - **Pods** get a /32 and a default route via `169.254.1.1`, answered by a static neighbour
//!   entry naming the node's end of the veth, as the VPC CNI does. The harness and the other
//!   nodes route each pod's /32 through its node (the VPC fabric does that on AWS), so every
//!   path to or from a pod crosses its node's `forward` hook, and a pod is one router hop
//!   further from IMDS than its node, as on AWS: an IMDS answer whose IP TTL is the hop limit
//!   dies at a hop limit of 1 on the node's forwarding.
//! - **Layout.** `namespace-per-tenant`: one pod per tenant, in its tenant's namespace, spread
//!   round robin over the shared nodes (one node role); as many nodes as the cost model packs
//!   the pods onto ([`EksSpec::nodes`]: at least `node.count`), never more than there are pods.
//!   `node-per-tenant`: one node per tenant with its own node role, the tenant's pod alone on
//!   it.
//! - **NetworkPolicy** objects ([`crate::network_policy`]) are rendered per node into the
//!   table `isobench_eks` of that node's namespace, for the pods on it. With
//!   `network_policy = "default-deny"` every tenant namespace gets one that selects all its
//!   pods for ingress and admits its own namespace's pods, the harness and the load agents.
//! - **IMDS** at `169.254.169.254` is the harness's, bound to `eks0`, answering each node as
//!   itself (its node role); a node reaches it through the gateway, and its pods through the
//!   node, which masquerades them as itself (as the VPC CNI's SNAT does for traffic leaving the
//!   VPC), so IMDS sees the node. The token answer's IP TTL is the node's
//!   `http_put_response_hop_limit`: at 1 it dies on the node's forwarding, as on AWS.
//! - **Pod credentials** ([`crate::metadata::pod_credentials`]): each tenant's service account
//!   is granted its role; the Pod Identity agent (`169.254.170.23`) or the emulated STS for IRSA
//!   is served by the harness on `eks0` and reached through the node (on AWS the agent runs on
//!   the node itself: reduced fidelity, one hop more, same answers). What the EKS webhook
//!   injects goes into the pod's environment, and its projected token into the pod's own `/run`
//!   (a private tmpfs), written through `/proc/<pid>/root` once the pod runs.
//! - **Security groups for pods** (`[[tier.security_group]]`): the ECS tier's rules
//!   ([`crate::security_groups::ruleset`]), in every node namespace (table `isobench_eks_sg`),
//!   where the pods' veths end; a pod's source address is held by the node's strict
//!   reverse-path filter rather than the bridge's source check.
//!
//! Everything lives in the harness namespace or in namespaces held only by descriptors, so a
//! crashed harness leaves nothing on the host but the pods' processes and cgroups, which
//! `sweep` finds under the run's cgroup; teardown removes it explicitly (pods, IMDS, nodes with
//! their tables, the bridge), measured.

use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::backend::{BackendError, Deployment, TeardownReport};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::ecs::HttpTokens;
use isobench_core::scenario::eks::{Credentials as CredentialsMode, EksSpec, NetworkPolicy as PolicyMode, Pattern};
use isobench_core::security_groups::ResolvedGroups;

use super::driver::{TierDriver, deployed, teardown_instances};
use crate::cgroup::CPU_PERIOD_US;
use crate::context::Context;
use crate::error::{NetworkError, deploy_error, wrong_settings};
use crate::instance::{Instance, InstanceRequest, InstanceSpec, Sizing};
use crate::launcher::{Attach, BridgeRef, InstanceRoute, Launcher, NodeRef, NodeSpec, gateway_of};
use crate::metadata::http::Server;
use crate::metadata::imds::{Imds, InstanceIdentity};
use crate::metadata::pod_credentials::{PodCredentialSource, PodCredentials};
use crate::metadata::{IMDS_ADDR, METADATA_PORT, REGION, listen_on_device};
use crate::network_policy::{self, Namespace, NetworkPolicy, Pod};
use crate::nft;
use crate::sandbox::FsView;
use crate::security_groups::{self, Member, Table};

/// The nftables table of the harness's own in every node namespace: the network policies
/// and the masquerading of pods' IMDS traffic.
pub const NODE_TABLE: &str = "isobench_eks";
/// The security groups for pods, in every node namespace (the pods' "branch ENIs" end there).
const SG_TABLE: Table = Table { name: "isobench_eks_sg", ecs_agent: false };
/// Prefix of the cluster bridge's name in the harness namespace (`eks0`, `eks1` if a second
/// EKS tier is deployed at once).
pub const CLUSTER_BRIDGE_PREFIX: &str = "eks";
/// The pod's directory the projected tokens live under: a private tmpfs in every pod, so a
/// token written there is the pod's alone.
const POD_RUN: &str = "/run";

/// One node of a deployed cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksNode {
    pub name: String,
    pub addr: Ipv4Addr,
    pub role: String,
    /// The tenant it is dedicated to (`node-per-tenant`).
    pub tenant: Option<String>,
    /// The instance ids of its pods.
    pub pods: Vec<String>,
    /// The inode of its network namespace (as `lsns` shows it).
    pub netns_inode: u64,
    /// The `nft` script installed in its namespace.
    pub ruleset: String,
}

/// One pod of a deployed cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksPod {
    /// The instance id (as in [`isobench_core::InstanceInfo::id`]).
    pub id: String,
    pub tenant: String,
    pub namespace: String,
    pub service_account: String,
    /// The role its service account is granted.
    pub role_arn: String,
    pub addr: Ipv4Addr,
    /// The name of the node it runs on.
    pub node: String,
    /// The names of its security groups (none: it shares its node's).
    pub groups: Vec<String>,
}

/// A deployed cluster, and what setting it up cost.
#[derive(Debug, Clone)]
pub struct EksCluster {
    pub name: String,
    pub bridge: String,
    pub pattern: Pattern,
    /// The subnet's gateway: the harness, as nodes see it.
    pub gateway: Ipv4Addr,
    pub nodes: Vec<EksNode>,
    pub pods: Vec<EksPod>,
    /// The `NetworkPolicy` objects applied, one line each (`namespace/name`).
    pub policies: Vec<String>,
    /// `http_put_response_hop_limit` on the nodes' IMDS.
    pub hop_limit: u8,
    /// Where pods get their role's credentials: the Pod Identity agent or the emulated STS.
    pub credentials_endpoint: Ipv4Addr,
    /// The bridge, its addresses, the endpoints' listeners and every node namespace.
    pub network_setup: Duration,
    /// The `nft` runs, one per node.
    pub filter_install: Duration,
}

/// A pod's projected token files: path inside the pod, contents.
type TokenFiles = Vec<(std::path::PathBuf, Vec<u8>)>;

/// An `eks-pod` deploy.
#[derive(Default)]
pub(crate) struct EksTier {
    instances: Vec<Instance>,
    cluster: Option<Cluster>,
}

/// The live cluster: what teardown must remove.
struct Cluster {
    info: EksCluster,
    bridge: Option<BridgeRef>,
    /// Each node, and a descriptor of its namespace (for `nft`).
    nodes: Vec<(NodeRef, Arc<OwnedFd>)>,
    /// Each pod as the security groups see it.
    members: Vec<Member>,
    credentials: Option<PodCredentials>,
    /// Each pod's projected token files (path inside the pod, contents), by instance id.
    tokens: Vec<(String, TokenFiles)>,
    imds: Option<Server>,
    endpoint: Option<Server>,
}

impl EksTier {
    /// The deployed cluster: nodes, pods, policies and what setting them up cost.
    pub(crate) fn cluster(&self) -> Option<&EksCluster> {
        self.cluster.as_ref().map(|c| &c.info)
    }

    /// Requests the nodes' IMDS and the pods' credentials endpoint have answered so far.
    pub(crate) fn endpoint_requests(&self) -> Option<(u64, u64)> {
        let c = self.cluster.as_ref()?;
        Some((c.imds.as_ref().map_or(0, Server::served), c.endpoint.as_ref().map_or(0, Server::served)))
    }

    fn start(
        &mut self,
        cx: &mut Context,
        plan: &TierPlan,
        spec: &EksSpec,
        mut specs: Vec<InstanceSpec>,
    ) -> Result<(), BackendError> {
        let tier = plan.tier;
        let nodes = node_plans(plan, spec, specs.len());
        let mut addrs = Vec::with_capacity(nodes.len());
        for n in &nodes {
            addrs.push(cx.next_addr(plan.subnet).map_err(|e| deploy_error(tier, format!("node {}", n.name), e))?);
        }
        create_cluster(&mut self.cluster, cx.launcher()?, plan, spec, nodes, addrs, &mut specs)
            .map_err(|e| e.into_backend(tier, "the EKS cluster"))?;
        self.instances = cx.start_instances(tier, specs)?;
        let cluster = self.cluster.as_ref().expect("created above");
        for (id, files) in &cluster.tokens {
            let inst = self.instances.iter().find(|i| i.spec.id == *id).expect("every pod started");
            write_tokens(inst, files).map_err(|e| deploy_error(tier, format!("pod {id}'s projected token"), e))?;
        }
        Ok(())
    }
}

impl TierDriver for EksTier {
    fn deploy(&mut self, cx: &mut Context, plan: &TierPlan) -> Result<Deployment, BackendError> {
        let spec = eks_spec(plan)?;
        let sizing = sizing(spec, cx.host_cpus(), cx.config().pids_max);
        let layout = plan.tenants.iter().map(|t| InstanceRequest::pinned(&t.id)).collect();
        let specs = cx.instance_specs(plan, layout, &sizing)?;
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

/// The tier's EKS settings; any other settings are refused rather than guessed.
fn eks_spec(plan: &TierPlan) -> Result<&EksSpec, BackendError> {
    match &plan.settings {
        TierSettings::Eks(spec) => Ok(spec),
        _ => Err(wrong_settings(plan, "EKS settings (a node group and a pod size)")),
    }
}

/// A pod of `spec`: its CPU in millicores as a quota per period (at least 1 ms, at most the
/// host's CPUs), its memory, one worker per started CPU.
fn sizing(spec: &EksSpec, host_cpus: u32, pids_max: u64) -> Sizing {
    let millis = spec.pod.cpu_millis;
    let host_quota = u64::from(host_cpus) * CPU_PERIOD_US;
    let quota = (u64::from(millis) * CPU_PERIOD_US / 1000).clamp(1000, host_quota);
    let workers = millis.div_ceil(1000).min(host_cpus).max(1);
    Sizing::new(quota, u64::from(spec.pod.memory_mib) << 20, pids_max, workers)
}

/// The directories every pod gets its own of: `/run`, and `/var/run` unless that is a link to
/// it (as on most hosts).
fn pod_run_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = vec![POD_RUN.into()];
    if !Path::new("/var/run").is_symlink() {
        dirs.push("/var/run".into());
    }
    dirs
}

/// `path` inside a pod without symlinks the harness would resolve against its own root:
/// `/var/run/...` is `/run/...` where `/var/run` links there.
fn physical(path: &Path) -> std::path::PathBuf {
    match path.strip_prefix("/var/run") {
        Ok(rest) if Path::new("/var/run").is_symlink() => Path::new(POD_RUN).join(rest),
        _ => path.to_path_buf(),
    }
}

/// Writes a pod's projected token files into its private `/run` through `/proc/<pid>/root`
/// (the harness as root, into a root-owned tmpfs the pod's uid cannot change, so no link the
/// pod made can redirect the write), readable by the pod.
fn write_tokens(inst: &Instance, files: &TokenFiles) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let pid = inst.workload_pid.ok_or_else(|| std::io::Error::other("the pod's workload has no pid"))?;
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    for (path, contents) in files {
        let inside = physical(path);
        let at = root.join(inside.strip_prefix("/").unwrap_or(&inside));
        if let Some(dir) = at.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&at, contents)?;
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// A node to create: its name, role, and the tenant it is dedicated to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodePlan {
    name: String,
    role: String,
    tenant: Option<String>,
}

/// The nodes of `plan` for `pods` pods: as many shared ones as [`EksSpec::nodes`] packs the
/// pods onto (at least `count`, never more than there are pods), or one per tenant.
fn node_plans(plan: &TierPlan, spec: &EksSpec, pods: usize) -> Vec<NodePlan> {
    let run = &plan.run_id;
    match spec.pattern {
        Pattern::NamespacePerTenant => (0..(spec.nodes(pods) as usize).clamp(1, pods.max(1)))
            .map(|i| NodePlan { name: format!("node-{i}"), role: spec.node_role(run, None), tenant: None })
            .collect(),
        Pattern::NodePerTenant => plan
            .tenants
            .iter()
            .map(|t| NodePlan {
                name: format!("node-{}", t.id),
                role: spec.node_role(run, Some(&t.id)),
                tenant: Some(t.id.clone()),
            })
            .collect(),
    }
}

/// Which node pod `i` (of tenant `tenant`) runs on: round robin over shared nodes, or its
/// tenant's node.
fn node_of(nodes: &[NodePlan], i: usize, tenant: &str) -> usize {
    nodes.iter().position(|n| n.tenant.as_deref() == Some(tenant)).unwrap_or(i % nodes.len().max(1))
}

/// Sets up the cluster into `slot` (where teardown finds it also when a step fails): the
/// bridge with the gateway, IMDS and credentials endpoint addresses and their listeners, the
/// nodes, each pod's place and credentials, the node tables; then starts the endpoints.
fn create_cluster(
    slot: &mut Option<Cluster>,
    launcher: &Launcher,
    plan: &TierPlan,
    spec: &EksSpec,
    nodes: Vec<NodePlan>,
    node_addrs: Vec<Ipv4Addr>,
    specs: &mut [InstanceSpec],
) -> Result<(), NetworkError> {
    let t0 = Instant::now();
    let nft = nft::find().ok_or(NetworkError::NoNft { tier: plan.tier })?;
    let gateway = gateway_of(plan.subnet);
    let source = match spec.credentials {
        CredentialsMode::PodIdentity => PodCredentialSource::PodIdentity,
        CredentialsMode::Irsa => PodCredentialSource::Irsa,
    };
    let credentials = PodCredentials::new(&plan.run_id, source);
    let endpoint = credentials.endpoint_addr();
    let info = EksCluster {
        name: format!("isobench-{}", plan.run_id),
        bridge: String::new(),
        pattern: spec.pattern,
        gateway,
        nodes: Vec::new(),
        pods: Vec::new(),
        policies: Vec::new(),
        hop_limit: spec.node.http_put_response_hop_limit,
        credentials_endpoint: endpoint,
        network_setup: Duration::ZERO,
        filter_install: Duration::ZERO,
    };
    let cluster = slot.insert(Cluster {
        info,
        bridge: None,
        nodes: Vec::new(),
        members: Vec::new(),
        credentials: Some(credentials),
        tokens: Vec::new(),
        imds: None,
        endpoint: None,
    });
    type Setup = (String, BridgeRef, TcpListener, TcpListener);
    let (name, bridge, imds, creds) = launcher.run(move |h| -> Result<Setup, NetworkError> {
        // On the launcher thread, inside the harness namespace.
        let (name, bridge) = (0..16)
            .find_map(|n| {
                let name = format!("{CLUSTER_BRIDGE_PREFIX}{n}");
                match h.add_bridge(&name, &[gateway, IMDS_ADDR, endpoint]) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => None,
                    r => Some(r.map(|b| (name, b))),
                }
            })
            .unwrap_or_else(|| Err(std::io::Error::other("eks0 to eks15 all exist")))
            .map_err(NetworkError::net("create the cluster bridge"))?;
        // Bound to the cluster's bridge: other tiers' IMDS listens on the same address.
        let listen = |a: Ipv4Addr| {
            listen_on_device(a, &name).map_err(NetworkError::net(format!("listen on {a}:{METADATA_PORT} on {name}")))
        };
        match listen(IMDS_ADDR).and_then(|i| Ok((i, listen(endpoint)?))) {
            Ok((i, c)) => Ok((name, bridge, i, c)),
            Err(e) => {
                let _ = h.delete_link(bridge.index);
                Err(e)
            }
        }
    })??;
    cluster.bridge = Some(bridge);
    cluster.info.bridge = name;
    let routes = vec![InstanceRoute::ViaGateway(IMDS_ADDR), InstanceRoute::ViaGateway(endpoint)];
    cluster.add_nodes(launcher, plan.subnet.1, &nodes, &node_addrs, bridge, routes)?;
    cluster.place_pods(plan, spec, &nodes, specs);
    cluster.info.network_setup = t0.elapsed();
    cluster.install_tables(&nft, plan, spec)?;
    cluster.start_endpoints(plan, spec, &nodes, imds, creds, bridge)
}

impl Cluster {
    /// Creates every node namespace, wired to the bridge, with `routes` through the gateway.
    fn add_nodes(
        &mut self,
        launcher: &Launcher,
        prefix: u8,
        nodes: &[NodePlan],
        addrs: &[Ipv4Addr],
        bridge: BridgeRef,
        routes: Vec<InstanceRoute>,
    ) -> Result<(), NetworkError> {
        for (n, addr) in nodes.iter().zip(addrs) {
            let spec = NodeSpec { bridge, addr: *addr, prefix, routes: routes.clone() };
            let (node, netns, ()) = launcher
                .run(move |h| h.add_node(&spec, || Ok(())))?
                .map_err(NetworkError::net(format!("create node {}", n.name)))?;
            let netns_inode = std::fs::metadata(format!("/proc/self/fd/{}", netns.as_raw_fd())).map_or(0, |m| m.ino());
            self.nodes.push((node, netns));
            self.info.nodes.push(EksNode {
                name: n.name.clone(),
                addr: *addr,
                role: n.role.clone(),
                tenant: n.tenant.clone(),
                pods: Vec::new(),
                netns_inode,
                ruleset: String::new(),
            });
        }
        Ok(())
    }

    /// Puts each pod of `specs` on its node: its attachment, its service account's role and
    /// what the EKS webhooks inject (environment, token), its groups, its record.
    fn place_pods(&mut self, plan: &TierPlan, spec: &EksSpec, nodes: &[NodePlan], specs: &mut [InstanceSpec]) {
        let run = &plan.run_id;
        let tenants: Vec<String> = plan.tenants.iter().map(|t| t.id.clone()).collect();
        let groups: Option<ResolvedGroups> = spec.security_groups.as_ref().map(|n| n.resolve(run, &tenants));
        let credentials = self.credentials.as_ref().expect("set before the pods");
        for (i, s) in specs.iter_mut().enumerate() {
            let tenant = s.tenants.first().cloned().unwrap_or_default();
            let k = node_of(nodes, i, &tenant);
            let (namespace, sa, role_arn) =
                (spec.namespace(&tenant), spec.service_account(&tenant), spec.role_arn(run, &tenant));
            credentials.grant(&namespace, &sa, &role_arn);
            let (env, files) = credentials.env_and_files(&namespace, &sa);
            s.extras.attach = Attach { bridge: None, routes: Vec::new(), node: Some(self.nodes[k].0) };
            s.extras.env = pod_env(env);
            // A pod's own `/run` (as a container's), where its projected token goes.
            s.extras.view = FsView { hide: pod_run_dirs(), ..FsView::default() };
            self.tokens.push((s.id.clone(), files));
            let mine = groups.as_ref().and_then(|g| g.tasks.iter().find(|(t, _)| *t == tenant)).map(|(_, g)| g.clone());
            let mine = mine.unwrap_or_default();
            self.members.push(Member { addr: s.addr, port: format!("v{}", s.index), groups: mine.clone(), imds: true });
            self.info.nodes[k].pods.push(s.id.clone());
            self.info.pods.push(EksPod {
                id: s.id.clone(),
                tenant,
                namespace,
                service_account: sa,
                role_arn,
                addr: s.addr,
                node: self.info.nodes[k].name.clone(),
                groups: groups
                    .as_ref()
                    .map(|g| mine.iter().map(|i| g.groups[*i].name.clone()).collect())
                    .unwrap_or_default(),
            });
        }
    }

    /// The namespaces, pods and policies the node tables are rendered from.
    fn objects(&self, plan: &TierPlan, spec: &EksSpec) -> (Vec<Namespace>, Vec<Pod>, Vec<NetworkPolicy>) {
        let namespaces: Vec<Namespace> =
            plan.tenants.iter().map(|t| Namespace::named(&spec.namespace(&t.id))).collect();
        let pods = self
            .info
            .pods
            .iter()
            .map(|p| Pod {
                name: p.id.clone(),
                namespace: p.namespace.clone(),
                labels: [
                    ("app".to_string(), "tenant-app".to_string()),
                    ("isobench.io/tenant".to_string(), p.tenant.clone()),
                ]
                .into(),
                addr: p.addr,
            })
            .collect();
        let (agents, agents_prefix) = crate::agent_net::AGENT_NET;
        let clients = [(self.info.gateway, 32), (agents, agents_prefix)];
        let policies = match spec.network_policy {
            PolicyMode::DefaultDeny => {
                namespaces.iter().map(|n| NetworkPolicy::default_deny_ingress(&n.name, &clients)).collect()
            }
            PolicyMode::None => Vec::new(),
        };
        (namespaces, pods, policies)
    }

    /// One `nft` run per node: its pods' policies, the masquerading of their IMDS traffic and
    /// the security groups for pods.
    fn install_tables(&mut self, nft: &Path, plan: &TierPlan, spec: &EksSpec) -> Result<(), NetworkError> {
        let (namespaces, pods, policies) = self.objects(plan, spec);
        self.info.policies = policies.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect();
        let cluster = network_policy::Cluster { namespaces: &namespaces, pods: &pods, policies: &policies };
        let groups = spec.security_groups.as_ref().map(|n| {
            let tenants: Vec<String> = plan.tenants.iter().map(|t| t.id.clone()).collect();
            n.resolve(&plan.run_id, &tenants)
        });
        let t0 = Instant::now();
        for (i, (_, netns)) in self.nodes.iter().enumerate() {
            let node = &self.info.nodes[i];
            let mut script = network_policy::render(NODE_TABLE, cluster, |p| node.pods.contains(&p.name));
            script.push_str(&snat_table(node.addr));
            if let Some(groups) = &groups {
                script.push_str(&security_groups::ruleset(SG_TABLE, groups, &self.members, self.info.gateway));
            }
            nft::apply(nft, netns, &script).map_err(|e| NetworkError::Net {
                what: format!("install the network policies of node {}", node.name),
                source: std::io::Error::other(e),
            })?;
            self.info.nodes[i].ruleset = script;
        }
        self.info.filter_install = t0.elapsed();
        Ok(())
    }

    /// Starts IMDS (answering each node as itself, its token answer's TTL the hop limit) and
    /// the pods' credentials endpoint on their listeners.
    fn start_endpoints(
        &mut self,
        plan: &TierPlan,
        spec: &EksSpec,
        nodes: &[NodePlan],
        imds_listener: TcpListener,
        creds_listener: TcpListener,
        bridge: BridgeRef,
    ) -> Result<(), NetworkError> {
        let imds = Imds::per_instance();
        let instance_type = spec.node.instance_type.name.to_string();
        for (n, node) in nodes.iter().zip(&self.info.nodes) {
            let mut id =
                InstanceIdentity::new(&plan.run_id, n.role.clone(), instance_type.clone(), node.addr, bridge.mac);
            id.tokens_required = spec.node.http_tokens == HttpTokens::Required;
            id.hop_limit = Some(spec.node.http_put_response_hop_limit);
            imds.register(node.addr, id);
        }
        let server = Server::start("imds", imds_listener, Arc::new(imds));
        self.imds = Some(server.map_err(NetworkError::net("start IMDS"))?);
        let credentials = self.credentials.as_ref().expect("set before the endpoints");
        let endpoint = credentials.start(creds_listener);
        self.endpoint = Some(endpoint.map_err(NetworkError::net("start the pods' credentials endpoint"))?);
        Ok(())
    }

    /// Removes IMDS, the nodes (their namespaces, tables and routes) and the bridge (the pods
    /// must be stopped first). Idempotent. Returns what was removed and what was left behind.
    fn remove(&mut self, launcher: Option<&Launcher>) -> (Vec<String>, Vec<String>) {
        let name = self.info.name.clone();
        let (mut removed, mut left) = (Vec::new(), Vec::new());
        for (what, server) in [("IMDS", self.imds.take()), ("credentials endpoint", self.endpoint.take())] {
            if let Some(s) = server {
                let (addr, served) = (s.local_addr(), s.served());
                s.stop();
                removed.push(format!("cluster {name}: {what} {addr} ({served} requests served)"));
            }
        }
        self.credentials = None;
        let Some(l) = launcher else {
            if self.bridge.is_some() || !self.nodes.is_empty() {
                left.push(format!(
                    "cluster {name}: nodes and bridge: the launcher thread has stopped (they go with the harness namespace)"
                ));
            }
            return (removed, left);
        };
        let t0 = Instant::now();
        let nodes = std::mem::take(&mut self.nodes);
        let count = nodes.len();
        for (node, netns) in nodes {
            drop(netns);
            match l
                .run(move |h| h.remove_node(node.id))
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                Ok(()) => {}
                Err(e) => left.push(format!("cluster {name}: node {}: failed to remove it: {e}", node.addr)),
            }
        }
        if count > 0 {
            removed.push(format!(
                "cluster {name}: {count} node namespaces with their tables {NODE_TABLE} ({:.1} ms)",
                t0.elapsed().as_secs_f64() * 1e3
            ));
        }
        if let Some(b) = self.bridge {
            let t0 = Instant::now();
            match l
                .run(move |h| h.delete_link(b.index))
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                Ok(()) => {
                    self.bridge = None;
                    removed.push(format!(
                        "cluster {name}: bridge {} with {IMDS_ADDR} and the pod routes ({:.1} ms)",
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

/// The node's masquerading of its pods' IMDS traffic (IMDS sees the node, as on AWS).
fn snat_table(node: Ipv4Addr) -> String {
    format!(
        "table ip {NODE_TABLE} {{\n  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; ip daddr {IMDS_ADDR} ip saddr != {node} masquerade; }}\n}}\n"
    )
}

/// A pod's environment: the region, and what the credentials webhook injects (`injected`).
fn pod_env(injected: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut env = vec![("AWS_REGION".to_string(), REGION.to_string()), ("AWS_DEFAULT_REGION".into(), REGION.into())];
    for (k, v) in injected {
        env.retain(|(e, _)| *e != k);
        env.push((k, v));
    }
    env
}

#[cfg(test)]
mod tests {
    use std::path::Path as StdPath;

    use isobench_core::scenario::Scenario;

    use super::*;

    fn spec(tier: &str) -> EksSpec {
        let src = format!(
            "format_version = 1\nname = \"t\"\n[run]\nduration = \"1s\"\nrate = \"10\"\n[tenants]\ncount = 2\n[[tier]]\nid = \"eks-pod\"\n{tier}"
        );
        let s = Scenario::parse(&src, StdPath::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        match &s.tiers[0].settings {
            TierSettings::Eks(e) => e.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn millicores_size_the_pod() {
        let s = sizing(&spec(""), 2, 1024);
        assert_eq!((s.limits.cpu_quota_us, s.limits.memory_bytes, s.workers), (25_000, 256 << 20, 1));
        let big = spec("[tier.pod]\ncpu = \"1500m\"\n");
        assert_eq!((sizing(&big, 2, 1024).limits.cpu_quota_us, sizing(&big, 2, 1024).workers), (150_000, 2));
        assert_eq!(sizing(&big, 1, 1024).limits.cpu_quota_us, 100_000, "capped at the host's CPUs");
        assert_eq!(sizing(&big, 1, 1024).workers, 1);
        let small = spec("[tier.pod]\ncpu = \"10m\"\n");
        assert_eq!(sizing(&small, 2, 1024).limits.cpu_quota_us, 1000, "at least 1 ms per period");
    }

    #[test]
    fn shared_nodes_round_robin_and_dedicated_nodes_per_tenant() {
        let nodes: Vec<NodePlan> =
            (0..2).map(|i| NodePlan { name: format!("node-{i}"), role: "r".into(), tenant: None }).collect();
        let placed: Vec<usize> = (0..5).map(|i| node_of(&nodes, i, "x")).collect();
        assert_eq!(placed, [0, 1, 0, 1, 0]);
        let dedicated: Vec<NodePlan> = ["a", "b"]
            .iter()
            .map(|t| NodePlan { name: format!("node-{t}"), role: "r".into(), tenant: Some(t.to_string()) })
            .collect();
        assert_eq!(node_of(&dedicated, 0, "b"), 1);
        assert!(
            snat_table(Ipv4Addr::new(10, 0, 0, 5)).contains("ip daddr 169.254.169.254 ip saddr != 10.0.0.5 masquerade")
        );
        let env = pod_env(vec![("AWS_REGION".into(), "us-east-1".into()), ("AWS_ROLE_ARN".into(), "x".into())]);
        assert_eq!(env.iter().filter(|(k, _)| k == "AWS_REGION").count(), 1, "{env:?}");
    }
}
