//! `silo-ec2` (one instance per tenant, each with its own role and group) and `shared-ec2` (one
//! instance, one role, for every tenant), on the current Amazon Linux 2023 image.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use isobench_core::backend::{Endpoint, InstanceInfo, TenantTarget};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::Ec2Spec;
use isobench_core::workload_api::DEFAULT_PORT;
use isobench_core::{Deployment, TierId};

use crate::api::InstanceRequest;
use crate::deployer::{DeployError, Deployer, READY_TIMEOUT, wait_for, wait_listening};
use crate::resource::Resource;
use crate::retry;

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

pub async fn deploy(d: &mut Deployer, tp: &TierPlan, spec: &Ec2Spec) -> Result<Deployment, DeployError> {
    let tier = tp.tier;
    let tenants: Vec<String> = tp.tenants.iter().map(|t| t.id.clone()).collect();
    let network = &spec.network;
    let net = d.network(&network.interface.subnets).await?;
    let subnet = net.subnets[&network.interface.subnets[0]].clone();
    let groups = network.resolve(&d.run_id, &tenants);
    let group_ids = d.security_groups(tier, &net.vpc, net.harness_group.as_deref(), &groups).await?;
    let url = d.workload_url().await?;
    let arch = d.spec.architecture.as_str();
    let image = d
        .apis
        .ec2
        .latest_image(&image_pattern(arch), arch)
        .await?
        .ok_or_else(|| DeployError::Other(format!("no Amazon Linux 2023 image `{}` found", image_pattern(arch))))?;
    // silo: one instance per tenant; shared: one for all, in the union of the tenants' groups.
    let units: Vec<(Vec<String>, Vec<usize>)> = if tier == TierId::SharedEc2 {
        let mut all: Vec<usize> = groups.tasks.iter().flat_map(|(_, g)| g.clone()).collect();
        all.sort();
        all.dedup();
        vec![(tenants.clone(), all)]
    } else {
        groups.tasks.iter().map(|(t, g)| (vec![t.clone()], g.clone())).collect()
    };
    let mut launched = Vec::new();
    for (unit_tenants, unit_groups) in &units {
        let start = Instant::now();
        let suffix =
            if tier == TierId::SharedEc2 { "shared-ec2".to_string() } else { format!("silo-{}", unit_tenants[0]) };
        let name = d.name(&suffix);
        d.role(tier, &name, "ec2.amazonaws.com").await?;
        let tags = d.tag_pairs(Some(tier));
        retry::retry(d.backoff, || d.apis.iam.create_instance_profile(&name, &name, &tags)).await?;
        d.record(Some(tier), Resource::InstanceProfile(name.clone()));
        let mut tags = d.tag_pairs(Some(tier));
        tags.push(("Name".into(), name.clone()));
        let req = InstanceRequest {
            image_id: image.clone(),
            instance_type: spec.instance_type.name.to_string(),
            subnet_id: subnet.clone(),
            security_group_ids: unit_groups.iter().map(|&i| group_ids[i].clone()).collect(),
            instance_profile: Some(name.clone()),
            user_data: user_data(&url, (tier == TierId::SiloEc2).then(|| unit_tenants[0].as_str())),
            tags,
        };
        // A fresh instance profile is not visible to EC2 for a few seconds: NotReady, retried.
        let id = retry::retry(d.backoff, || d.apis.ec2.run_instance(&req)).await?;
        d.record(Some(tier), Resource::Instance(id.clone()));
        launched.push((id, unit_tenants.clone(), start));
    }
    let serves = d.caps.ec2.runs_workloads();
    if !serves {
        let reason = format!("{} runs no instances (EC2 there is a mock)", d.caps.ec2.describe());
        d.skip_data_plane(tier, &reason);
    }
    let mut targets = Vec::new();
    let mut instances = Vec::new();
    for (id, unit_tenants, start) in launched {
        let ec2 = d.apis.ec2.clone();
        let state = wait_for(&format!("instance {id}"), READY_TIMEOUT, || {
            let ec2 = ec2.clone();
            let id = id.clone();
            async move { Ok(ec2.instance_state(&id).await?.filter(|s| s.state == "running")) }
        })
        .await?;
        let ip = state.public_ip.or(state.private_ip).and_then(|a| a.parse::<IpAddr>().ok());
        let addr = ip.map(|ip| SocketAddr::new(ip, DEFAULT_PORT));
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
