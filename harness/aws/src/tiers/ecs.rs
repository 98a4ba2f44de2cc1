//! `ecs-awsvpc`: a cluster, one `awsvpc` task definition per tenant (each with the tenant's task
//! role), and one task per tenant in the tenant's security groups.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use async_trait::async_trait;
use isobench_core::backend::{Endpoint, InstanceInfo, TenantTarget};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::ecs::{AssignPublicIp, EcsSpec, LaunchType};
use isobench_core::workload_api::DEFAULT_PORT;
use isobench_core::{Deployment, TierId};

use crate::api::{TaskDefinitionRequest, TaskRequest, TaskState};
use crate::context::{DeployContext, DeployError, READY_TIMEOUT, wait_for, wait_listening};
use crate::resource::Resource;
use crate::retry;
use crate::security_groups;
use crate::tags::{NAME_PREFIX, name_id};
use crate::tier::{AwsTier, Counts, Needs, PLANNED_RUN, Planned, planned_name};

/// The container image: Amazon Linux 2023 from the public gallery; the task fetches the
/// workload binary at start, as instances do (no image build, no registry of the harness's).
pub const IMAGE: &str = "public.ecr.aws/amazonlinux/amazonlinux:2023";

/// The `ecs-awsvpc` tier: one task per tenant.
#[derive(Debug)]
pub struct EcsTier;

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

fn spec(tp: &TierPlan) -> Result<&EcsSpec, DeployError> {
    match &tp.settings {
        TierSettings::Ecs(spec) => Ok(spec),
        _ => Err(DeployError::Other(format!("the {} tier has no ECS settings", tp.tier))),
    }
}

/// Why the tier cannot be deployed with these settings, before anything is created.
fn unsupported(ctx: &DeployContext, spec: &EcsSpec) -> Option<String> {
    if let Some(reason) = ctx.caps.ecs_unavailable() {
        return Some(reason);
    }
    (spec.launch_type == LaunchType::Ec2).then(|| {
        "the `ec2` launch type needs container instances, which the AWS backend does not start yet; \
         use launch_type = \"fargate\""
            .to_string()
    })
}

#[async_trait]
impl AwsTier for EcsTier {
    fn id(&self) -> TierId {
        TierId::EcsAwsvpc
    }

    fn needs(&self, tp: &TierPlan) -> Needs {
        let subnets = spec(tp).map(|s| s.network.interface.subnets.clone()).unwrap_or_default();
        Needs { subnets, workload_bucket: true }
    }

    fn counts(&self, tenants: u32) -> Counts {
        Counts { tasks: tenants, ..Counts::default() }
    }

    fn planned(&self, tp: &TierPlan, tenants: &[String]) -> Vec<Planned> {
        let Ok(e) = spec(tp) else { return Vec::new() };
        let tier = Some(self.id());
        let mut out = Vec::new();
        let mut add = |kind, name: String| out.push(Planned { tier, kind, name });
        for g in e.resolve(PLANNED_RUN, tenants).groups {
            add("ec2 security group", planned_name(&security_groups::group_suffix(self.id(), &g.name)));
        }
        add("ecs cluster", planned_name("ecs"));
        for x in tenants {
            add("iam role", e.task_role(PLANNED_RUN, x));
            add("ecs task definition", family(e, PLANNED_RUN, x));
            add("ecs task", format!("{} ({} awsvpc)", x, e.launch_type.as_str()));
        }
        if e.launch_type == LaunchType::Ec2 {
            add("(not supported yet)", "ECS container instances for the ec2 launch type".into());
        }
        out
    }

    async fn deploy(&self, ctx: &mut DeployContext, tp: &TierPlan) -> Result<Deployment, DeployError> {
        let tier = self.id();
        let spec = spec(tp)?;
        if let Some(reason) = unsupported(ctx, spec) {
            return Err(DeployError::Other(reason));
        }
        let tenants: Vec<String> = tp.tenants.iter().map(|t| t.id.clone()).collect();
        let net = ctx.network(&spec.network.interface.subnets).await?;
        let subnets: Vec<String> = spec.network.interface.subnets.iter().map(|n| net.subnets[n].clone()).collect();
        let groups = spec.resolve(&ctx.run_id, &tenants);
        let group_ids = security_groups::create(ctx, tier, &net, &groups).await?;
        let url = ctx.workload_url().await?;
        let cluster = ctx.name("ecs");
        let tags = ctx.tag_pairs(Some(tier));
        retry::retry(ctx.backoff, || ctx.apis.ecs.create_cluster(&cluster, &tags)).await?;
        ctx.record(Some(tier), Resource::Cluster(cluster.clone()));
        let mut started = Vec::new();
        for (tenant, tenant_groups) in &groups.tasks {
            let start = Instant::now();
            let task = Task {
                spec,
                cluster: &cluster,
                url: &url,
                subnets: &subnets,
                groups: security_groups::member_ids(&group_ids, tenant_groups),
            };
            let arn = task.run(ctx, tenant).await?;
            started.push((tenant.clone(), arn, start));
        }
        let serves = ctx.caps.ecs.runs_workloads();
        if !serves {
            let reason = format!("{} runs no containers (its tasks are records)", ctx.caps.ecs.describe());
            ctx.skip_data_plane(tier, &reason);
        }
        let mut targets = Vec::new();
        let mut instances = Vec::new();
        for (tenant, task, start) in started {
            let state = wait_started(ctx, &cluster, &task, serves).await?;
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
}

/// What one tenant's task is started with.
struct Task<'a> {
    spec: &'a EcsSpec,
    cluster: &'a str,
    url: &'a str,
    subnets: &'a [String],
    groups: Vec<String>,
}

impl Task<'_> {
    /// The tenant's role and task definition, and the task; returns the task's ARN.
    async fn run(&self, ctx: &mut DeployContext, tenant: &str) -> Result<String, DeployError> {
        let tier = TierId::EcsAwsvpc;
        let spec = self.spec;
        let role_arn = ctx.role(tier, &spec.task_role(&ctx.run_id, tenant), "ecs-tasks.amazonaws.com").await?;
        let req = TaskDefinitionRequest {
            family: family(spec, &ctx.run_id, tenant),
            task_role_arn: role_arn,
            execution_role_arn: None,
            cpu: spec.task_definition.cpu.to_string(),
            memory: spec.task_definition.memory.to_string(),
            launch_type: spec.launch_type.as_str().to_string(),
            architecture: ctx.spec.architecture.as_str().to_string(),
            image: IMAGE.into(),
            command: command(self.url),
            port: DEFAULT_PORT as i32,
            environment: vec![("TENANT_APP_TENANT".into(), tenant.to_string())],
            tags: ctx.tag_pairs(Some(tier)),
        };
        // The task role was just created: registration may not see it yet (NotReady, retried).
        let def = retry::retry(ctx.backoff, || ctx.apis.ecs.register_task_definition(&req)).await?;
        ctx.record(Some(tier), Resource::TaskDefinition(def.clone()));
        let run = TaskRequest {
            cluster: self.cluster.to_string(),
            task_definition: def,
            launch_type: spec.launch_type.as_str().to_string(),
            subnets: self.subnets.to_vec(),
            security_groups: self.groups.clone(),
            public_ip: spec.network.interface.assign_public_ip == AssignPublicIp::Enabled,
            tags: ctx.tag_pairs(Some(tier)),
        };
        let task = retry::retry(ctx.backoff, || ctx.apis.ecs.run_task(&run)).await?;
        ctx.record(Some(tier), Resource::Task { cluster: self.cluster.to_string(), arn: task.clone() });
        Ok(task)
    }
}

/// Waits until the task runs (on an endpoint that `serves`), or until it exists at all.
async fn wait_started(ctx: &DeployContext, cluster: &str, task: &str, serves: bool) -> Result<TaskState, DeployError> {
    let ecs = ctx.apis.ecs.clone();
    wait_for(&format!("task {task}"), READY_TIMEOUT, || {
        let (ecs, cluster, task) = (ecs.clone(), cluster.to_string(), task.to_string());
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
    .await
}
