//! `silo-ec2` and `shared-ec2`: EC2 instances, one per tenant (silo) or one serving every
//! tenant (shared). Everything the emulator does for these two tiers is decided here; the
//! machinery it calls (instances, security groups, IMDS) knows no tier.
//!
//! - **Layout** ([`layout`]): silo gives each tenant an instance whose workload is pinned to it;
//!   shared gives all tenants one instance, whose workload takes the tenant from each request.
//! - **Sizing** ([`sizing`]): from the instance type: its vCPUs × 100 ms per 100 ms period
//!   (capped at the host's CPUs), its memory, a pids limit; one workload worker per vCPU.
//! - **Security groups**: nftables rules ([`crate::security_groups`]) in a table pair of each
//!   tier's own (`isobench_silo_ec2`, `isobench_shared_ec2`) in the harness namespace, installed
//!   by one `nft -f -` per deploy before any instance starts; the harness bridge `br0` passes the
//!   frames it bridges between instances through them. The groups come from the tier's
//!   `[tier.network]` and `[[tier.security_group]]` ([`ec2_groups`]); by default each silo
//!   instance is in a group of its own and the shared instance in one group, each admitting only
//!   the harness on the workload's port, so silo tenants cannot reach each other.
//! - **Instance profiles**: the backend's one IMDS on `br0`
//!   ([`InstanceProfiles`](crate::metadata::instance_profiles::InstanceProfiles)) answers each
//!   instance as itself: on silo with the role `isobench-<run>-instance-<tenant>`, on shared
//!   `isobench-<run>-instance-shared`, every tenant's.
//! - **Routes**: an instance routes only its subnet and the IMDS /32, through the gateway.
//! - **Teardown**: the instances stop first, then the groups and identities go (the IMDS with the
//!   last EC2 tier), measured.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use isobench_core::backend::{BackendError, Deployment, TeardownReport};
use isobench_core::instance_types::InstanceType;
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::ec2::default_network;
use isobench_core::scenario::ecs::ResolvedGroups;
use isobench_core::tier::TierId;

use super::driver::{TierDriver, deployed, teardown_instances};
use crate::cgroup::CPU_PERIOD_US;
use crate::context::Context;
use crate::error::{InstanceError, NetworkError, wrong_settings};
use crate::instance::{Instance, InstanceRequest, InstanceSpec, Sizing};
use crate::launcher::{Attach, InstanceRoute, gateway_of, instance_mac};
use crate::metadata::IMDS_ADDR;
use crate::metadata::imds::InstanceIdentity;
use crate::security_groups::{Member, SecurityGroups, Table};

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
    /// Starting the IMDS server (address, listener, server; next to nothing when another EC2
    /// tier had already started it) and the tier's bridge netfilter switch.
    pub imds_setup: Duration,
    /// Issuing and registering every instance's identity and credentials.
    pub identities: Duration,
    /// The one `nft -f -` run that installs tables, sets, rules and every instance's elements.
    pub filter_install: Duration,
    /// The ruleset as installed.
    pub ruleset: String,
}

/// A `silo-ec2` or `shared-ec2` deploy.
pub(crate) struct Ec2Tier {
    tier: TierId,
    instances: Vec<Instance>,
    network: Option<Network>,
}

/// What the tier added to its instances' network: what teardown removes.
struct Network {
    info: InstanceNetwork,
    groups: SecurityGroups,
    /// Whether the tier holds the backend's instance IMDS.
    profiles: bool,
}

impl Network {
    /// Removes the instances' identities and security groups (the instances must be stopped
    /// first) and lets go of the IMDS. Idempotent. Returns what was removed and what was left.
    fn remove(&mut self, cx: &mut Context) -> (Vec<String>, Vec<String>) {
        if self.profiles {
            for i in &self.info.instances {
                cx.profiles().deregister(i.addr);
            }
        }
        let (mut removed, mut left) = self.groups.remove(cx.launcher_if_running());
        if std::mem::take(&mut self.profiles) {
            let (r, l) = cx.release_profiles(self.info.tier.as_str());
            removed.extend(r);
            left.extend(l);
        }
        (removed, left)
    }
}

impl Ec2Tier {
    pub(crate) fn silo() -> Ec2Tier {
        Ec2Tier { tier: TierId::SiloEc2, instances: Vec::new(), network: None }
    }

    pub(crate) fn shared() -> Ec2Tier {
        Ec2Tier { tier: TierId::SharedEc2, instances: Vec::new(), network: None }
    }

    /// The deployed tier's network: each instance's groups and role, and what it cost.
    pub(crate) fn network(&self) -> Option<&InstanceNetwork> {
        self.network.as_ref().map(|n| &n.info)
    }

    /// Prepares `specs` (addresses chosen) and starts them. What it made is in `self` for
    /// [`TierDriver::teardown`], also on error.
    fn start(
        &mut self,
        cx: &mut Context,
        plan: &TierPlan,
        instance_type: &InstanceType,
        mut specs: Vec<InstanceSpec>,
    ) -> Result<(), BackendError> {
        self.prepare(cx, plan, instance_type, &mut specs)
            .map_err(|e| e.into_backend(self.tier, "the instances' security groups and IMDS"))?;
        self.instances = cx.start_instances(self.tier, specs)?;
        Ok(())
    }

    /// Before any instance starts: the tier's security groups (bridge netfilter on, one `nft`
    /// batch with every instance's elements), each instance's identity in the instance IMDS,
    /// and each instance's route to it.
    fn prepare(
        &mut self,
        cx: &mut Context,
        plan: &TierPlan,
        instance_type: &InstanceType,
        specs: &mut [InstanceSpec],
    ) -> Result<(), NetworkError> {
        let tier = self.tier;
        let t0 = Instant::now();
        let launcher = cx.launcher_if_running().ok_or(InstanceError::LauncherGone)?;
        let groups = SecurityGroups::enable(launcher, tier, table(tier), tier.to_string())?;
        let info = InstanceNetwork {
            tier,
            table: table(tier).name,
            instances: Vec::new(),
            imds_setup: Duration::ZERO,
            identities: Duration::ZERO,
            filter_install: Duration::ZERO,
            ruleset: String::new(),
        };
        let network = self.network.insert(Network { info, groups, profiles: false });
        let profiles = cx.acquire_profiles()?;
        network.profiles = true;
        network.info.imds_setup = t0.elapsed();

        let t1 = Instant::now();
        let resolved = ec2_groups(plan);
        let mut members = Vec::with_capacity(specs.len());
        for s in specs.iter_mut() {
            s.extras.attach = Attach { bridge: None, routes: vec![InstanceRoute::ViaGateway(IMDS_ADDR)], node: None };
            let groups = groups_of(&resolved, &s.tenants);
            let role = role_name(&plan.run_id, tier, &s.tenants);
            let identity =
                InstanceIdentity::new(&plan.run_id, role, instance_type.name.into(), s.addr, instance_mac(s.index));
            network.info.instances.push(Ec2Instance {
                id: s.id.clone(),
                tenants: s.tenants.clone(),
                addr: s.addr,
                instance_id: identity.instance_id.clone(),
                role_arn: identity.credentials.role_arn.clone(),
                groups: groups.iter().map(|g| resolved.groups[*g].name.clone()).collect(),
            });
            profiles.register(s.addr, identity);
            members.push((s.id.clone(), Member { addr: s.addr, port: format!("v{}", s.index), groups, imds: true }));
        }
        network.info.identities = t1.elapsed();
        let (ruleset, took) = network.groups.install(&resolved, members, gateway_of(plan.subnet))?;
        network.info.filter_install = took;
        network.info.ruleset = ruleset;
        Ok(())
    }
}

impl TierDriver for Ec2Tier {
    fn deploy(&mut self, cx: &mut Context, plan: &TierPlan) -> Result<Deployment, BackendError> {
        let instance_type = instance_type(plan)?;
        let sizing = sizing(instance_type, cx.host_cpus(), cx.config().pids_max);
        let specs = cx.instance_specs(plan, layout(plan), &sizing)?;
        let started = self.start(cx, plan, instance_type, specs);
        deployed(self, cx, plan, started)
    }

    fn teardown(&mut self, cx: &mut Context) -> TeardownReport {
        teardown_instances(cx, &mut self.instances, &mut self.network, Network::remove)
    }

    fn instances(&self) -> &[Instance] {
        &self.instances
    }
}

/// The instances a tier wants: silo one per tenant, pinned to it; shared one for all.
fn layout(plan: &TierPlan) -> Vec<InstanceRequest> {
    match plan.tier {
        TierId::SharedEc2 => {
            vec![InstanceRequest { tenants: plan.tenants.iter().map(|t| t.id.clone()).collect(), pinned_tenant: None }]
        }
        _ => plan.tenants.iter().map(|t| InstanceRequest::pinned(&t.id)).collect(),
    }
}

/// The tier's instance type; any other settings are refused rather than guessed.
fn instance_type(plan: &TierPlan) -> Result<&InstanceType, BackendError> {
    match &plan.settings {
        TierSettings::Ec2(e) => Ok(&e.instance_type),
        _ => Err(wrong_settings(plan, "EC2 settings (an instance type)")),
    }
}

/// An instance of type `t`: its vCPUs (at most the host's) and its memory.
fn sizing(t: &InstanceType, host_cpus: u32, pids_max: u64) -> Sizing {
    let cpus = t.vcpus.min(host_cpus).max(1);
    Sizing::new(u64::from(cpus) * CPU_PERIOD_US, t.memory_mib << 20, pids_max, cpus)
}

/// The tier's security groups, resolved for its tenants: the one place that reads an EC2
/// tier's network settings (the scenario's, or the tier's default).
fn ec2_groups(plan: &TierPlan) -> ResolvedGroups {
    let network = match &plan.settings {
        TierSettings::Ec2(e) => e.network.clone(),
        _ => default_network(plan.tier),
    };
    let tenants: Vec<String> = plan.tenants.iter().map(|t| t.id.clone()).collect();
    network.resolve(&plan.run_id, &tenants)
}

/// The groups of an instance serving `tenants`: every group of each (indices into
/// `resolved.groups`, first seen first).
fn groups_of(resolved: &ResolvedGroups, tenants: &[String]) -> Vec<usize> {
    let mut groups: Vec<usize> = Vec::new();
    for (_, gs) in resolved.tasks.iter().filter(|(tenant, _)| tenants.contains(tenant)) {
        for g in gs {
            if !groups.contains(g) {
                groups.push(*g);
            }
        }
    }
    groups
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

#[cfg(test)]
mod tests {
    use isobench_core::scenario::ecs::ResolvedSource;

    use super::*;
    use crate::security_groups::ruleset;

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
        let net = default_network(TierId::SiloEc2);
        let r = net.resolve("r", &["a".into(), "b".into()]);
        let members = [
            Member { addr: Ipv4Addr::new(10, 213, 0, 2), port: "v0".into(), groups: vec![0], imds: true },
            Member { addr: Ipv4Addr::new(10, 213, 0, 3), port: "v1".into(), groups: vec![1], imds: true },
        ];
        assert!(r.groups.iter().all(|g| g.ingress.iter().all(|i| i.source == ResolvedSource::Harness)));
        let s = ruleset(table(TierId::SiloEc2), &r, &members, Ipv4Addr::new(10, 213, 0, 1));
        assert!(s.contains("table ip isobench_silo_ec2 {"), "{s}");
        assert!(s.contains("ip daddr @sg1 ip saddr @harness tcp dport 8080 accept"), "{s}");
        assert!(s.contains("ip daddr 169.254.169.254 tcp dport 80 ip saddr @imds accept"), "{s}");
        assert!(!s.contains("169.254.170.2"), "no ECS agent for instances: {s}");
        assert!(!s.contains("isobench_ecs"), "{s}");
    }

    #[test]
    fn an_instance_type_sizes_cpu_memory_and_workers() {
        let t = InstanceType { name: "m5.large", vcpus: 2, memory_mib: 8192 };
        let s = sizing(&t, 1, 1024);
        assert_eq!((s.limits.cpu_quota_us, s.limits.memory_bytes, s.workers), (100_000, 8192 << 20, 1));
        assert_eq!(s.info_limits.cpu_millis, 1000, "capped at the host's one CPU");
        assert_eq!(sizing(&t, 4, 1024).info_limits.cpu_millis, 2000);
    }
}
