//! `ecs-awsvpc`: a cluster, one `awsvpc` task definition per tenant (each with the tenant's task
//! role), and one task per tenant in the tenant's security groups.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use isobench_core::backend::{Endpoint, InstanceInfo, TenantTarget};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::ecs::{AssignPublicIp, EcsSpec, LaunchType};
use isobench_core::workload_api::DEFAULT_PORT;
use isobench_core::{Deployment, TierId};

use crate::api::{TaskDefinitionRequest, TaskRequest};
use crate::deployer::{DeployError, Deployer, READY_TIMEOUT, wait_for, wait_listening};
use crate::resource::Resource;
use crate::retry;
use crate::tags::{NAME_PREFIX, name_id};

/// The container image: Amazon Linux 2023 from the public gallery; the task fetches the
/// workload binary at start, as instances do (no image build, no registry of the harness's).
pub const IMAGE: &str = "public.ecr.aws/amazonlinux/amazonlinux:2023";

pub fn command(url: &str) -> Vec<String> {
    let script = format!(
        "curl -fsSL --retry 10 -o /tmp/tenant-app '{url}' && chmod 755 /tmp/tenant-app && \
         exec /tmp/tenant-app serve --listen 0.0.0.0:{DEFAULT_PORT}"
    );
    vec!["sh".into(), "-c".into(), script]
}

/// A tenant's task definition family: the scenario's family, the run and the tenant.
pub fn family(spec: &EcsSpec, run: &str, tenant: &str) -> String {
    let base = spec.task_definition.family.trim_start_matches(NAME_PREFIX);
    format!("{NAME_PREFIX}{}-{base}-{tenant}", name_id(run))
}

pub async fn deploy(d: &mut Deployer, tp: &TierPlan, spec: &EcsSpec) -> Result<Deployment, DeployError> {
    let tier = TierId::EcsAwsvpc;
    if let Some(reason) = d.caps.ecs_unavailable() {
        return Err(DeployError::Other(reason));
    }
    if spec.launch_type == LaunchType::Ec2 {
        return Err(DeployError::Other(
            "the `ec2` launch type needs container instances, which the AWS backend does not start yet; \
             use launch_type = \"fargate\""
                .into(),
        ));
    }
    let tenants: Vec<String> = tp.tenants.iter().map(|t| t.id.clone()).collect();
    let net = d.network(&spec.network.interface.subnets).await?;
    let subnets: Vec<String> = spec.network.interface.subnets.iter().map(|n| net.subnets[n].clone()).collect();
    let groups = spec.resolve(&d.run_id, &tenants);
    let group_ids = d.security_groups(tier, &net.vpc, net.harness_group.as_deref(), &groups).await?;
    let url = d.workload_url().await?;
    let cluster = d.name("ecs");
    let tags = d.tag_pairs(Some(tier));
    retry::retry(d.backoff, || d.apis.ecs.create_cluster(&cluster, &tags)).await?;
    d.record(Some(tier), Resource::Cluster(cluster.clone()));
    let mut started = Vec::new();
    for (tenant, tenant_groups) in &groups.tasks {
        let start = Instant::now();
        let role_arn = d.role(tier, &spec.task_role(&d.run_id, tenant), "ecs-tasks.amazonaws.com").await?;
        let req = TaskDefinitionRequest {
            family: family(spec, &d.run_id, tenant),
            task_role_arn: role_arn,
            execution_role_arn: None,
            cpu: spec.task_definition.cpu.to_string(),
            memory: spec.task_definition.memory.to_string(),
            launch_type: spec.launch_type.as_str().to_string(),
            architecture: d.spec.architecture.as_str().to_string(),
            image: IMAGE.into(),
            command: command(&url),
            port: DEFAULT_PORT as i32,
            environment: vec![("TENANT_APP_TENANT".into(), tenant.clone())],
            tags: d.tag_pairs(Some(tier)),
        };
        // The task role was just created: registration may not see it yet (NotReady, retried).
        let def = retry::retry(d.backoff, || d.apis.ecs.register_task_definition(&req)).await?;
        d.record(Some(tier), Resource::TaskDefinition(def.clone()));
        let run = TaskRequest {
            cluster: cluster.clone(),
            task_definition: def,
            launch_type: spec.launch_type.as_str().to_string(),
            subnets: subnets.clone(),
            security_groups: tenant_groups.iter().map(|&i| group_ids[i].clone()).collect(),
            public_ip: spec.network.interface.assign_public_ip == AssignPublicIp::Enabled,
            tags: d.tag_pairs(Some(tier)),
        };
        let task = retry::retry(d.backoff, || d.apis.ecs.run_task(&run)).await?;
        d.record(Some(tier), Resource::Task { cluster: cluster.clone(), arn: task.clone() });
        started.push((tenant.clone(), task, start));
    }
    let serves = d.caps.ecs.runs_workloads();
    if !serves {
        let reason = format!("{} runs no containers (its tasks are records)", d.caps.ecs.describe());
        d.skip_data_plane(tier, &reason);
    }
    let mut targets = Vec::new();
    let mut instances = Vec::new();
    for (tenant, task, start) in started {
        let ecs = d.apis.ecs.clone();
        let state = wait_for(&format!("task {task}"), READY_TIMEOUT, || {
            let (ecs, cluster, task) = (ecs.clone(), cluster.clone(), task.clone());
            async move {
                let s = ecs.task_state(&cluster, &task).await?;
                match s {
                    // An emulator's task is a record whose status it cycles on every describe
                    // (moto): what it says is all there is to wait for.
                    Some(s) if !serves => Ok(Some(s)),
                    Some(s) if s.last_status == "STOPPED" => {
                        Err(DeployError::Other(format!("task {task} stopped before it ran")))
                    }
                    Some(s) if s.last_status == "RUNNING" => Ok(Some(s)),
                    _ => Ok(None),
                }
            }
        })
        .await?;
        let ip = state.private_ip.and_then(|a| a.parse::<IpAddr>().ok());
        if let Some(ip) = ip {
            let addr = SocketAddr::new(ip, DEFAULT_PORT);
            if serves {
                wait_listening(addr, READY_TIMEOUT).await?;
            }
            targets.push(TenantTarget { tenant: tenant.clone(), endpoint: Endpoint::Http(addr) });
        }
        instances.push(InstanceInfo {
            id: task,
            tenants: vec![tenant],
            address: ip,
            start_time: start.elapsed(),
            pid: None,
            limits: None,
        });
    }
    Ok(Deployment { tier, targets, instances, netns: None })
}
