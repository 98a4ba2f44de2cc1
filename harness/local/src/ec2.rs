//! What AWS gives an EC2 instance beyond the machine, for `silo-ec2` and `shared-ec2`: its
//! security groups and its instance profile, reached through IMDS. (The tier modules still only
//! decide how tenants map onto instances.)
//!
//! - **Security groups** are the `ecs-awsvpc` tier's nftables rules ([`crate::ecs::filter`]),
//!   in a table pair of each EC2 tier's own (`isobench_silo_ec2`, `isobench_shared_ec2`) in the
//!   harness namespace, installed by one `nft -f -` per deploy before any instance starts, with
//!   every instance's set elements in the same batch; the harness bridge `br0` passes the frames
//!   it bridges between instances through them (bridge netfilter). The groups come from the
//!   tier's `[tier.network]` and `[[tier.security_group]]` ([`isobench_core::scenario::Ec2Spec`]);
//!   by default each silo instance is in a group of its own and the shared instance in one
//!   group, each admitting only the harness on the workload's port, so silo tenants cannot
//!   reach each other. The bridge table also drops frames whose source address is not their
//!   port's instance's (the source/destination check), so nobody can pass for another instance.
//! - **Instance profiles**: one IMDS server per backend at `169.254.169.254:80` on `br0`
//!   (IMDSv2 tokens and IMDSv1; [`crate::metadata::imds`]), which answers each caller as its
//!   own instance, chosen by source address: on silo the role `isobench-<run>-instance-<tenant>`,
//!   on shared `isobench-<run>-instance-shared`, every tenant's. It starts with the first EC2
//!   deploy and stops with the last EC2 tier's teardown; its listener is bound to `br0`, so an
//!   ECS cluster's IMDS (bound to `ecs0`) shares the address.
//! - **Routes**: an instance routes only its subnet and the IMDS /32 through the gateway.
//!
//! Everything here lives in the harness namespace and goes with it after a crash; teardown
//! removes it explicitly anyway, measured.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::ecs::ACCOUNT_ID;
use isobench_core::tier::TierId;

use crate::ecs::filter::{self, FilterTask, Table};
use crate::error::InstanceError;
use crate::instance::InstanceSpec;
use crate::launcher::{Attach, BRIDGE, BRIDGE_NF, InstanceRoute, Launcher, instance_mac};
use crate::metadata::http::Server;
use crate::metadata::imds::{Imds, InstanceIdentity};
use crate::metadata::{Credentials, IMDS_ADDR, METADATA_PORT, REGION, listen_on_device, random_bytes};
use crate::nft::{self, NftError};

/// The availability zone every instance reports.
const AVAILABILITY_ZONE: &str = "us-east-1a";

/// Why an EC2 tier's network could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Ec2NetError {
    #[error(
        "find `nft`: the EC2 tiers enforce their security groups with nftables; install it with scripts/deps.sh (or `apt-get install nftables`)"
    )]
    NoNft,
    #[error(
        "filter traffic between instances: the kernel's bridge netfilter is missing ({BRIDGE_NF}); load it with `modprobe br_netfilter` (which also sends the host's own bridged traffic through its firewall unless `net.bridge.bridge-nf-call-iptables=0` is set on the host)"
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

impl Ec2NetError {
    /// Whether this host cannot run the EC2 tiers at all (as opposed to a failed attempt).
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(self, Ec2NetError::NoNft | Ec2NetError::NoBridgeNetfilter)
    }
}

/// One instance as its network sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Instance {
    /// The instance id (as in [`isobench_core::InstanceInfo::id`]).
    pub id: String,
    pub tenants: Vec<String>,
    pub addr: Ipv4Addr,
    /// The EC2 instance id IMDS reports (`i-0...`).
    pub instance_id: String,
    /// Its instance profile's role.
    pub role_arn: String,
    /// The names of its security groups.
    pub groups: Vec<String>,
}

/// A deployed EC2 tier's network, and what setting it up cost.
#[derive(Debug, Clone)]
pub struct InstanceNetwork {
    pub tier: TierId,
    /// Name of its nftables tables (`ip` and `bridge` families) in the harness namespace.
    pub table: &'static str,
    pub instances: Vec<Ec2Instance>,
    /// Starting the IMDS server (address, listener, server; zero when another EC2 tier had
    /// already started it) and the tier's bridge netfilter switch.
    pub imds_setup: Duration,
    /// Issuing and registering every instance's identity and credentials.
    pub identities: Duration,
    /// The one `nft -f -` run that installs tables, sets, rules and every instance's elements.
    pub filter_install: Duration,
    /// The ruleset as installed.
    pub ruleset: String,
}

/// The one IMDS of the backend's EC2 instances.
struct ImdsServer {
    imds: Arc<Imds>,
    server: Server,
}

/// A deployed tier's state: what its teardown must remove.
struct TierNet {
    info: InstanceNetwork,
    filter: bool,
    nf_held: bool,
}

/// The EC2 tiers' networks of one backend.
#[derive(Default)]
pub(crate) struct Host {
    imds: Option<ImdsServer>,
    tiers: BTreeMap<TierId, TierNet>,
}

fn net(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Ec2NetError {
    let what = what.into();
    move |source| Ec2NetError::Net { what, source }
}

/// The tables of an EC2 tier.
fn table(tier: TierId) -> Table {
    let name = if tier == TierId::SharedEc2 { "isobench_shared_ec2" } else { "isobench_silo_ec2" };
    Table { name, ecs_agent: false }
}

/// The role of an instance serving `tenants`: its tenant's on a single-tenant instance,
/// `shared` otherwise.
fn role_name(run: &str, tier: TierId, tenants: &[String]) -> String {
    match tenants {
        [one] if tier != TierId::SharedEc2 => format!("isobench-{run}-instance-{one}"),
        _ => format!("isobench-{run}-instance-shared"),
    }
}

fn hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// The first host address of a subnet: the harness bridge's, the instances' gateway.
fn gateway_of(subnet: (Ipv4Addr, u8)) -> Ipv4Addr {
    let mask = if subnet.1 == 0 { 0 } else { u32::MAX << (32 - u32::from(subnet.1)) };
    Ipv4Addr::from((u32::from(subnet.0) & mask) + 1)
}

impl Host {
    /// The network of a deployed EC2 tier.
    pub(crate) fn info(&self, tier: TierId) -> Option<&InstanceNetwork> {
        self.tiers.get(&tier).map(|t| &t.info)
    }

    /// Requests the EC2 instances' IMDS has answered so far, while it runs.
    pub(crate) fn imds_served(&self) -> Option<u64> {
        self.imds.as_ref().map(|s| s.server.served())
    }

    /// Wires the instances in `specs` (`plan`'s, addresses chosen, none started) into the tier's
    /// security groups and IMDS: their routes, their identities, one `nft` batch. On error
    /// nothing of the tier is left.
    pub(crate) fn prepare(
        &mut self,
        launcher: &Launcher,
        plan: &TierPlan,
        specs: &mut [InstanceSpec],
    ) -> Result<(), Ec2NetError> {
        let nft = nft::find().ok_or(Ec2NetError::NoNft)?;
        let tier = plan.tier;
        let mut t = TierNet {
            info: InstanceNetwork {
                tier,
                table: table(tier).name,
                instances: Vec::new(),
                imds_setup: Duration::ZERO,
                identities: Duration::ZERO,
                filter_install: Duration::ZERO,
                ruleset: String::new(),
            },
            filter: false,
            nf_held: false,
        };
        match self.start(&mut t, launcher, &nft, plan, specs) {
            Ok(()) => {
                self.tiers.insert(tier, t);
                Ok(())
            }
            Err(e) => {
                let (_, left) = self.remove(t, Some(launcher));
                if !left.is_empty() {
                    tracing::warn!(?left, "cleanup after a failed EC2 network setup left resources behind");
                }
                Err(e)
            }
        }
    }

    fn start(
        &mut self,
        t: &mut TierNet,
        launcher: &Launcher,
        nft: &std::path::Path,
        plan: &TierPlan,
        specs: &mut [InstanceSpec],
    ) -> Result<(), Ec2NetError> {
        let t0 = Instant::now();
        let start_imds = self.imds.is_none();
        let listener = launcher.run(move |h| -> Result<Option<std::net::TcpListener>, Ec2NetError> {
            // On the launcher thread, inside the harness namespace.
            if !std::path::Path::new(BRIDGE_NF).exists() {
                return Err(Ec2NetError::NoBridgeNetfilter);
            }
            if !start_imds {
                return Ok(None);
            }
            h.add_bridge_addr(IMDS_ADDR).map_err(net(format!("add {IMDS_ADDR}/32 to {BRIDGE}")))?;
            match listen_on_device(IMDS_ADDR, BRIDGE) {
                Ok(l) => Ok(Some(l)),
                Err(e) => {
                    let _ = h.del_bridge_addr(IMDS_ADDR);
                    Err(net(format!("listen on {IMDS_ADDR}:{METADATA_PORT} on {BRIDGE}"))(e))
                }
            }
        })??;
        if let Some(l) = listener {
            let imds = Arc::new(Imds::per_instance());
            match Server::start("imds-ec2", l, imds.clone()) {
                Ok(server) => self.imds = Some(ImdsServer { imds, server }),
                Err(e) => {
                    let _ = launcher.run(|h| h.del_bridge_addr(IMDS_ADDR));
                    return Err(net("start IMDS")(e));
                }
            }
        }
        launcher
            .run(|h| h.bridge_nf_acquire())?
            .map_err(net(format!("enable {BRIDGE_NF} in the harness namespace")))?;
        t.nf_held = true;
        t.info.imds_setup = t0.elapsed();

        // Groups and identities.
        let t1 = Instant::now();
        let run = &plan.run_id;
        let tier = plan.tier;
        let (network, instance_type) = match &plan.settings {
            TierSettings::Ec2(e) => (e.network.clone(), e.instance_type.name.to_string()),
            _ => (isobench_core::scenario::ec2::default_network(tier), String::new()),
        };
        let tenants: Vec<String> = plan.tenants.iter().map(|t| t.id.clone()).collect();
        let resolved = network.resolve(run, &tenants);
        let imds = self.imds.as_ref().map(|s| s.imds.clone()).expect("started above");
        let mut filter_tasks = Vec::with_capacity(specs.len());
        for s in specs.iter_mut() {
            s.extras.attach = Attach { bridge: None, routes: vec![InstanceRoute::ViaGateway(IMDS_ADDR)] };
            // An instance serving several tenants is in every group of each.
            let mut groups: Vec<usize> = Vec::new();
            for (_, gs) in resolved.tasks.iter().filter(|(tenant, _)| s.tenants.contains(tenant)) {
                for g in gs {
                    if !groups.contains(g) {
                        groups.push(*g);
                    }
                }
            }
            let role = role_name(run, tier, &s.tenants);
            let role_arn = format!("arn:aws:iam::{ACCOUNT_ID}:role/{role}");
            let instance_id = format!("i-0{}", &hex(8)[..16]);
            imds.register(
                s.addr,
                InstanceIdentity {
                    instance_id: instance_id.clone(),
                    instance_type: instance_type.clone(),
                    ami_id: format!("ami-0{}", &hex(8)[..16]),
                    local_ipv4: s.addr,
                    mac: instance_mac(s.index),
                    region: REGION.into(),
                    availability_zone: AVAILABILITY_ZONE.into(),
                    account_id: ACCOUNT_ID.into(),
                    instance_profile_arn: format!("arn:aws:iam::{ACCOUNT_ID}:instance-profile/{role}"),
                    credentials: Credentials::issue(run, &role_arn),
                    role,
                    tokens_required: false,
                },
            );
            t.info.instances.push(Ec2Instance {
                id: s.id.clone(),
                tenants: s.tenants.clone(),
                addr: s.addr,
                instance_id,
                role_arn,
                groups: groups.iter().map(|g| resolved.groups[*g].name.clone()).collect(),
            });
            filter_tasks.push(FilterTask { addr: s.addr, port: format!("v{}", s.index), groups, imds: true });
        }
        t.info.identities = t1.elapsed();

        let script = filter::ruleset_in(table(tier), &resolved, &filter_tasks, gateway_of(plan.subnet));
        t.filter = true; // a failed run may have left part of it: removal deletes it either way
        t.info.filter_install = nft::apply(nft, launcher.netns(), &script).map_err(Ec2NetError::Filter)?;
        t.info.ruleset = script;
        Ok(())
    }

    /// Removes an EC2 tier's groups and identities (its instances must be stopped first); the
    /// IMDS server goes with the last EC2 tier. Returns what was removed and what was left.
    pub(crate) fn teardown(&mut self, tier: TierId, launcher: Option<&Launcher>) -> (Vec<String>, Vec<String>) {
        match self.tiers.remove(&tier) {
            Some(t) => self.remove(t, launcher),
            None => Default::default(),
        }
    }

    /// [`Host::teardown`] of every EC2 tier.
    pub(crate) fn teardown_all(&mut self, launcher: Option<&Launcher>) -> (Vec<String>, Vec<String>) {
        let (mut removed, mut left) = (Vec::new(), Vec::new());
        for tier in self.tiers.keys().copied().collect::<Vec<_>>() {
            let (r, l) = self.teardown(tier, launcher);
            removed.extend(r);
            left.extend(l);
        }
        (removed, left)
    }

    fn remove(&mut self, mut t: TierNet, launcher: Option<&Launcher>) -> (Vec<String>, Vec<String>) {
        let (mut removed, mut left) = (Vec::new(), Vec::new());
        let tier = t.info.tier;
        if let Some(s) = &self.imds {
            for i in &t.info.instances {
                s.imds.deregister(i.addr);
            }
        }
        let netns: Option<&Arc<OwnedFd>> = launcher.map(Launcher::netns);
        if t.filter {
            let table = table(tier);
            let r = match (nft::find(), netns) {
                (Some(nft), Some(ns)) => {
                    nft::apply(&nft, ns, &filter::teardown_script_in(table)).map_err(|e| e.to_string())
                }
                _ => Err("no `nft`, or the launcher thread (with the harness namespace) has stopped".into()),
            };
            match r {
                Ok(d) => {
                    t.filter = false;
                    removed.push(format!(
                        "{tier}: security groups (nftables tables ip and bridge {}, {:.1} ms)",
                        table.name,
                        d.as_secs_f64() * 1e3
                    ));
                }
                Err(e) => left.push(format!("{tier}: nftables tables {}: failed to {e}", table.name)),
            }
        }
        let last = self.tiers.is_empty();
        let imds = if last { self.imds.take() } else { None };
        let stopped = imds.map(|s| {
            let (addr, served) = (s.server.local_addr(), s.server.served());
            s.server.stop();
            format!("{tier}: IMDS {addr} on {BRIDGE} ({served} requests served)")
        });
        if t.nf_held || stopped.is_some() {
            let held = t.nf_held;
            let del = stopped.is_some();
            let r = match launcher {
                Some(l) => l
                    .run(move |h| {
                        if held {
                            h.bridge_nf_release();
                        }
                        if del { h.del_bridge_addr(IMDS_ADDR) } else { Ok(()) }
                    })
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string())),
                None => Err("the launcher thread has stopped (it goes with the harness namespace)".into()),
            };
            match (r, stopped) {
                (Ok(()), Some(s)) => removed.push(format!("{s} and its address")),
                (Err(e), Some(s)) => {
                    removed.push(s);
                    left.push(format!("{tier}: address {IMDS_ADDR}/32 on {BRIDGE}: failed to delete it: {e}"));
                }
                (Err(e), None) => left.push(format!("{tier}: bridge netfilter switch: failed to release it: {e}")),
                (Ok(()), None) => {}
            }
        }
        (removed, left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_name_their_tenant_or_say_shared() {
        let t = |s: &str| vec![s.to_string()];
        assert_eq!(role_name("r", TierId::SiloEc2, &t("acme")), "isobench-r-instance-acme");
        assert_eq!(role_name("r", TierId::SharedEc2, &t("acme")), "isobench-r-instance-shared");
        assert_eq!(role_name("r", TierId::SharedEc2, &["a".into(), "b".into()]), "isobench-r-instance-shared");
        assert_eq!(table(TierId::SiloEc2).name, "isobench_silo_ec2");
        assert!(!table(TierId::SharedEc2).ecs_agent);
        assert_eq!(gateway_of((Ipv4Addr::new(10, 213, 4, 0), 22)), Ipv4Addr::new(10, 213, 4, 1));
    }

    #[test]
    fn an_ec2_table_admits_imds_and_not_the_ecs_agent() {
        use isobench_core::scenario::ecs::ResolvedSource;
        let net = isobench_core::scenario::ec2::default_network(TierId::SiloEc2);
        let r = net.resolve("r", &["a".into(), "b".into()]);
        let tasks = [
            FilterTask { addr: Ipv4Addr::new(10, 213, 0, 2), port: "v0".into(), groups: vec![0], imds: true },
            FilterTask { addr: Ipv4Addr::new(10, 213, 0, 3), port: "v1".into(), groups: vec![1], imds: true },
        ];
        assert!(r.groups.iter().all(|g| g.ingress.iter().all(|i| i.source == ResolvedSource::Harness)));
        let s = filter::ruleset_in(table(TierId::SiloEc2), &r, &tasks, Ipv4Addr::new(10, 213, 0, 1));
        assert!(s.contains("table ip isobench_silo_ec2 {"), "{s}");
        assert!(s.contains("ip daddr @sg1 ip saddr @harness tcp dport 8080 accept"), "{s}");
        assert!(s.contains("ip daddr 169.254.169.254 tcp dport 80 ip saddr @imds accept"), "{s}");
        assert!(!s.contains("169.254.170.2"), "no ECS agent for instances: {s}");
        assert!(!s.contains("isobench_ecs"), "{s}");
    }
}
