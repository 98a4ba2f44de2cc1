//! `silo-ec2` (one instance per tenant, each with its own role and group) and `shared-ec2` (one
//! instance, one role, for every tenant), on the current Amazon Linux 2023 image. One module
//! for both: [`Layout`] is the one place that says how each maps tenants to instances.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use async_trait::async_trait;
use isobench_core::backend::{Endpoint, InstanceInfo, TenantTarget};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::ec2::default_network;
use isobench_core::scenario::ecs::ResolvedGroups;
use isobench_core::security_groups::NetworkSpec;
use isobench_core::workload_api::DEFAULT_PORT;
use isobench_core::{Deployment, TierId};

use crate::api::InstanceRequest;
use crate::context::{DeployContext, DeployError, READY_TIMEOUT, wait_for, wait_listening};
use crate::resource::Resource;
use crate::retry;
use crate::security_groups;
use crate::tier::{AwsTier, Counts, Needs, PLANNED_RUN, Planned, planned_name};

/// How an EC2 tier maps tenants to instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `silo-ec2`: one instance per tenant, its workload fixed to that tenant.
    Silo,
    /// `shared-ec2`: one instance for every tenant, in the union of their groups.
    Shared,
}

/// The EC2 tier with one layout.
#[derive(Debug)]
pub struct Ec2Tier {
    pub layout: Layout,
}

/// One instance of the layout.
struct Unit {
    /// Its role, instance profile and `Name` tag: `isobench-<run>-<suffix>`.
    suffix: String,
    tenants: Vec<String>,
}

impl Layout {
    fn units(self, tenants: &[String]) -> Vec<Unit> {
        match self {
            Layout::Silo => {
                tenants.iter().map(|t| Unit { suffix: format!("silo-{t}"), tenants: vec![t.clone()] }).collect()
            }
            Layout::Shared => vec![Unit { suffix: "shared-ec2".into(), tenants: tenants.to_vec() }],
        }
    }

    /// The tenant the instance's workload is started for (`TENANT_APP_TENANT`).
    fn fixed_tenant(self, unit: &Unit) -> Option<&str> {
        match self {
            Layout::Silo => unit.tenants.first().map(String::as_str),
            Layout::Shared => None,
        }
    }

    /// Indices of the groups the instance joins: its tenants' groups.
    fn groups(self, groups: &ResolvedGroups, unit: &Unit) -> Vec<usize> {
        let mut mine: Vec<usize> =
            groups.tasks.iter().filter(|(t, _)| unit.tenants.contains(t)).flat_map(|(_, g)| g.clone()).collect();
        if self == Layout::Shared {
            mine.sort();
            mine.dedup();
        }
        mine
    }
}

/// An EC2 tier's network interface and security groups. The one place that reads them from
/// the plan.
pub fn ec2_network(tp: &TierPlan) -> NetworkSpec {
    match &tp.settings {
        TierSettings::Ec2(e) => e.network.clone(),
        _ => default_network(tp.tier),
    }
}

/// The instance type the scenario gives the tier.
fn instance_type(tp: &TierPlan) -> Result<&'static str, DeployError> {
    match &tp.settings {
        TierSettings::Ec2(e) => Ok(e.instance_type.name),
        _ => Err(DeployError::Other(format!("the {} tier has no EC2 settings", tp.tier))),
    }
}

/// The AL2023 image names, newest first by creation date (looked up, never hard-coded).
pub fn image_pattern(arch: &str) -> String {
    format!("al2023-ami-2023.*-kernel-*-{arch}")
}

/// The instance's boot script: fetch the workload, run it as a service.
pub fn user_data(url: &str, tenant: Option<&str>) -> String {
    let tenant_env = tenant.map(|t| format!("Environment=TENANT_APP_TENANT={t}\n")).unwrap_or_default();
    format!(
        "#!/bin/bash\nset -euo pipefail\n\
         curl -fsSL --retry 10 -o /usr/local/bin/tenant-app '{url}'\n\
         chmod 755 /usr/local/bin/tenant-app\n\
         cat > /etc/systemd/system/tenant-app.service <<'UNIT'\n\
         [Unit]\nDescription=isobench tenant-app\n[Service]\n{tenant_env}\
         ExecStart=/usr/local/bin/tenant-app serve --listen 0.0.0.0:{DEFAULT_PORT}\nRestart=always\n\
         [Install]\nWantedBy=multi-user.target\nUNIT\n\
         systemctl daemon-reload\nsystemctl enable --now tenant-app\n"
    )
}

/// What a deploy readies before any instance: the network, the groups, the workload and the
/// image.
struct Prepared {
    subnet: String,
    groups: ResolvedGroups,
    group_ids: Vec<String>,
    url: String,
    image: String,
}

#[async_trait]
impl AwsTier for Ec2Tier {
    fn id(&self) -> TierId {
        match self.layout {
            Layout::Silo => TierId::SiloEc2,
            Layout::Shared => TierId::SharedEc2,
        }
    }

    fn needs(&self, tp: &TierPlan) -> Needs {
        Needs { subnets: ec2_network(tp).interface.subnets, workload_bucket: true }
    }

    fn counts(&self, tenants: u32) -> Counts {
        let instances = match self.layout {
            Layout::Silo => tenants,
            Layout::Shared => 1,
        };
        Counts { instances, ..Counts::default() }
    }

    fn planned(&self, tp: &TierPlan, tenants: &[String]) -> Vec<Planned> {
        let tier = Some(self.id());
        let mut out = Vec::new();
        let mut add = |kind, name: String| out.push(Planned { tier, kind, name });
        for g in ec2_network(tp).resolve(PLANNED_RUN, tenants).groups {
            add("ec2 security group", planned_name(&security_groups::group_suffix(self.id(), &g.name)));
        }
        let itype = instance_type(tp).unwrap_or("?");
        for u in self.layout.units(tenants) {
            add("iam role", planned_name(&u.suffix));
            add("iam instance profile", planned_name(&u.suffix));
            add("ec2 instance", format!("{} ({itype}, Amazon Linux 2023)", planned_name(&u.suffix)));
        }
        out
    }

    async fn deploy(&self, ctx: &mut DeployContext, tp: &TierPlan) -> Result<Deployment, DeployError> {
        let tier = self.id();
        let itype = instance_type(tp)?;
        let tenants: Vec<String> = tp.tenants.iter().map(|t| t.id.clone()).collect();
        let prepared = prepare(ctx, tier, tp, &tenants).await?;
        let mut launched = Vec::new();
        for unit in self.layout.units(&tenants) {
            let start = Instant::now();
            let id = self.launch(ctx, &prepared, &unit, itype).await?;
            launched.push((id, unit.tenants, start));
        }
        let serves = ctx.caps.ec2.runs_workloads();
        if !serves {
            let reason = format!("{} runs no instances (EC2 there is a mock)", ctx.caps.ec2.describe());
            ctx.skip_data_plane(tier, &reason);
        }
        let mut targets = Vec::new();
        let mut instances = Vec::new();
        for (id, unit_tenants, start) in launched {
            let (ip, private) = wait_running(ctx, &id).await?;
            let addr = ip.map(|ip| SocketAddr::new(ip, DEFAULT_PORT));
            if let Some(p) = private {
                let private = ctx.private_targets.entry(tier).or_default();
                for t in &unit_tenants {
                    private.insert(t.clone(), SocketAddr::new(p, DEFAULT_PORT));
                }
            }
            if let (true, Some(addr)) = (serves, addr) {
                wait_listening(addr, READY_TIMEOUT).await?;
            }
            for t in &unit_tenants {
                if let Some(addr) = addr {
                    targets.push(TenantTarget { tenant: t.clone(), endpoint: Endpoint::Http(addr) });
                }
            }
            instances.push(InstanceInfo {
                id,
                tenants: unit_tenants,
                address: ip,
                start_time: start.elapsed(),
                pid: None,
                limits: None,
            });
        }
        Ok(Deployment { tier, targets, instances, netns: None })
    }
}

async fn prepare(
    ctx: &mut DeployContext,
    tier: TierId,
    tp: &TierPlan,
    tenants: &[String],
) -> Result<Prepared, DeployError> {
    let network = ec2_network(tp);
    let net = ctx.network(&network.interface.subnets).await?;
    let subnet = net.subnets[&network.interface.subnets[0]].clone();
    let groups = network.resolve(&ctx.run_id, tenants);
    let group_ids = security_groups::create(ctx, tier, &net, &groups).await?;
    let url = ctx.workload_url().await?;
    let arch = ctx.spec.architecture.as_str();
    let image = ctx
        .apis
        .ec2
        .latest_image(&image_pattern(arch), arch)
        .await?
        .ok_or_else(|| DeployError::Other(format!("no Amazon Linux 2023 image `{}` found", image_pattern(arch))))?;
    Ok(Prepared { subnet, groups, group_ids, url, image })
}

impl Ec2Tier {
    /// One instance with its own role and instance profile; returns its id.
    async fn launch(
        &self,
        ctx: &mut DeployContext,
        p: &Prepared,
        unit: &Unit,
        instance_type: &str,
    ) -> Result<String, DeployError> {
        let tier = self.id();
        let name = ctx.name(&unit.suffix);
        ctx.role(tier, &name, "ec2.amazonaws.com").await?;
        let tags = ctx.tag_pairs(Some(tier));
        retry::retry(ctx.backoff, || ctx.apis.iam.create_instance_profile(&name, &name, &tags)).await?;
        ctx.record(Some(tier), Resource::InstanceProfile(name.clone()));
        let mut tags = ctx.tag_pairs(Some(tier));
        tags.push(("Name".into(), name.clone()));
        let req = InstanceRequest {
            image_id: p.image.clone(),
            instance_type: instance_type.to_string(),
            subnet_id: p.subnet.clone(),
            security_group_ids: security_groups::member_ids(&p.group_ids, &self.layout.groups(&p.groups, unit)),
            instance_profile: Some(name.clone()),
            user_data: user_data(&p.url, self.layout.fixed_tenant(unit)),
            imds_v1: false,
            tags,
        };
        // A fresh instance profile is not visible to EC2 for a few seconds: NotReady, retried.
        let id = retry::retry(ctx.backoff, || ctx.apis.ec2.run_instance(&req)).await?;
        ctx.record(Some(tier), Resource::Instance(id.clone()));
        Ok(id)
    }
}

/// Waits until the instance runs; its public address, else its private one (the harness's
/// direct path), and its private one (the agents' path).
async fn wait_running(ctx: &DeployContext, id: &str) -> Result<(Option<IpAddr>, Option<IpAddr>), DeployError> {
    let ec2 = ctx.apis.ec2.clone();
    let state = wait_for(&format!("instance {id}"), READY_TIMEOUT, || {
        let ec2 = ec2.clone();
        let id = id.to_string();
        async move { Ok(ec2.instance_state(&id).await?.filter(|s| s.state == "running")) }
    })
    .await?;
    let parse = |a: Option<&String>| a.and_then(|a| a.parse::<IpAddr>().ok());
    Ok((parse(state.public_ip.as_ref().or(state.private_ip.as_ref())), parse(state.private_ip.as_ref())))
}
