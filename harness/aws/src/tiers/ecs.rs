//! `ecs-awsvpc`: a cluster, one `awsvpc` task definition per tenant (each with the tenant's task
//! role), and one task per tenant in the tenant's security groups. On the EC2 launch type the
//! cluster's capacity comes first: container instances from the ECS-optimized AMI, as many as
//! the tasks need at the instance type's network-interface limit, registered before any task.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use async_trait::async_trait;
use isobench_core::backend::{Endpoint, InstanceInfo, TenantTarget};
use isobench_core::instance_types;
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::aws::Architecture;
use isobench_core::scenario::ecs::{AssignPublicIp, ContainerInstance, EcsSpec, HttpTokens, instance_architecture};
use isobench_core::workload_api::DEFAULT_PORT;
use isobench_core::{Deployment, TierId};

use crate::api::{InstanceRequest, TaskDefinitionRequest, TaskRequest, TaskState};
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
fn unsupported(ctx: &DeployContext, tp: &TierPlan, spec: &EcsSpec) -> Option<String> {
    if let Some(reason) = ctx.caps.ecs_unavailable() {
        return Some(reason);
    }
    if let Some(why) = crate::tier::architecture_mismatch(tp, ctx.spec.architecture) {
        return Some(why);
    }
    let ci = spec.container_instance.as_ref()?;
    tasks_per_instance(spec, ci).err()
}

/// The AWS managed policy a container instance's role needs (register with the cluster, pull
/// images, report task state).
pub const CONTAINER_INSTANCE_POLICY: &str = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role";

/// The public SSM parameter naming the current ECS-optimized Amazon Linux 2023 AMI.
/// `RunInstances` resolves it itself (`resolve:ssm:`), so the harness needs no SSM client.
pub fn ecs_ami_parameter(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
        Architecture::Arm64 => "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id",
    }
}

/// The image an emulator gets instead: it has no ECS-optimized AMI parameter, and its instances
/// run nothing, so the newest plain Amazon Linux 2023 image (the EC2 tiers' own) stands in.
pub fn fallback_image_pattern(arch: Architecture) -> String {
    format!("al2023-ami-2023.*-kernel-*-{}", arch.as_str())
}

/// What `plan` says of the container instances' image.
pub fn image_text(arch: Architecture) -> String {
    format!(
        "ECS-optimized AMI from SSM `{}`; on an emulator: the newest `{}` image",
        ecs_ami_parameter(arch),
        fallback_image_pattern(arch)
    )
}

/// The container instance's boot script: join the cluster, and block (or not) the tasks'
/// access to its metadata endpoint.
pub fn container_instance_user_data(cluster: &str, block_imds: bool) -> String {
    format!(
        "#!/bin/bash\ncat >> /etc/ecs/ecs.config <<'CONFIG'\nECS_CLUSTER={cluster}\nECS_AWSVPC_BLOCK_IMDS={block_imds}\nCONFIG\n"
    )
}

/// How many of the tier's `awsvpc` tasks one container instance holds: one network interface
/// each (no ENI trunking) beside the instance's own, and within its vCPUs and memory.
pub fn tasks_per_instance(spec: &EcsSpec, ci: &ContainerInstance) -> Result<u32, String> {
    let t = &ci.instance_type;
    let it = instance_types::lookup(t).ok_or_else(|| format!("unknown container instance type `{t}`"))?;
    let enis = instance_types::max_network_interfaces(t)
        .ok_or_else(|| format!("no network-interface limit known for `{t}`"))?;
    let by_cpu = it.vcpus * 1024 / spec.task_definition.cpu.max(1);
    let by_memory = (it.memory_mib / spec.task_definition.memory.max(1) as u64) as u32;
    let n = (enis - 1).min(by_cpu).min(by_memory);
    if n == 0 {
        return Err(format!(
            "a task of {} CPU units / {} MiB does not fit on a {t}",
            spec.task_definition.cpu, spec.task_definition.memory
        ));
    }
    Ok(n)
}

/// Container instances for `tasks` tasks (at least one).
pub fn instances_for(spec: &EcsSpec, ci: &ContainerInstance, tasks: u32) -> u32 {
    tasks_per_instance(spec, ci).map_or(0, |per| tasks.div_ceil(per).max(1))
}

/// How long a deploy waits for its container instances to register with the cluster: an
/// instance boots and its agent registers in one to two minutes.
pub const REGISTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

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

    fn counts_for(&self, tp: &TierPlan, tenants: u32) -> Counts {
        let instances = match spec(tp).ok().and_then(|e| Some((e, e.container_instance.as_ref()?))) {
            Some((e, ci)) => instances_for(e, ci, tenants),
            None => 0,
        };
        Counts { instances, ..self.counts(tenants) }
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
        if let Some(ci) = &e.container_instance {
            let role = fill_run(e, PLANNED_RUN);
            add("iam role", format!("{role} (AmazonEC2ContainerServiceforEC2Role)"));
            add("iam instance profile", role);
            let per = tasks_per_instance(e, ci).map_or_else(|why| why, |n| format!("up to {n} awsvpc tasks each"));
            let enis = instance_types::max_network_interfaces(&ci.instance_type).unwrap_or_default();
            let arch = instance_architecture(&ci.instance_type);
            for i in 0..instances_for(e, ci, tenants.len() as u32) {
                add(
                    "ec2 instance",
                    format!(
                        "{} ({}, ECS container instance: {per} (network interfaces {enis} − 1), \
                         ECS_AWSVPC_BLOCK_IMDS={}, {})",
                        planned_name(&format!("ecs-ci-{i}")),
                        ci.instance_type,
                        ci.block_imds,
                        image_text(arch)
                    ),
                );
            }
        }
        for x in tenants {
            add("iam role", e.task_role(PLANNED_RUN, x));
            add("ecs task definition", family(e, PLANNED_RUN, x));
            let arch = e.architecture.map_or("[aws] architecture", |a| a.as_str());
            add("ecs task", format!("{} ({} awsvpc, {arch})", x, e.launch_type.as_str()));
        }
        out
    }

    async fn deploy(&self, ctx: &mut DeployContext, tp: &TierPlan) -> Result<Deployment, DeployError> {
        let tier = self.id();
        let spec = spec(tp)?;
        if let Some(reason) = unsupported(ctx, tp, spec) {
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
        if let Some(ci) = &spec.container_instance {
            let n = instances_for(spec, ci, tenants.len() as u32);
            capacity(ctx, spec, ci, &cluster, &subnets[0], n).await?;
        }
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
            architecture: spec.architecture.unwrap_or(ctx.spec.architecture).as_str().to_string(),
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

/// The container instance role's name (the scenario's template with the run id).
fn fill_run(spec: &EcsSpec, run: &str) -> String {
    spec.instance_role(run).unwrap_or_else(|| format!("{NAME_PREFIX}{}-container-instance", name_id(run)))
}

/// The cluster's capacity for the EC2 launch type: a role with the managed ECS policy, its
/// instance profile, `n` instances joining `cluster`, each registered before any task runs.
async fn capacity(
    ctx: &mut DeployContext,
    spec: &EcsSpec,
    ci: &ContainerInstance,
    cluster: &str,
    subnet: &str,
    n: u32,
) -> Result<(), DeployError> {
    let tier = TierId::EcsAwsvpc;
    let name = fill_run(spec, &ctx.run_id);
    ctx.role(tier, &name, "ec2.amazonaws.com").await?;
    retry::retry(ctx.backoff, || ctx.apis.iam.attach_managed_policy(&name, CONTAINER_INSTANCE_POLICY)).await?;
    let tags = ctx.tag_pairs(Some(tier));
    retry::retry(ctx.backoff, || ctx.apis.iam.create_instance_profile(&name, &name, &tags)).await?;
    ctx.record(Some(tier), Resource::InstanceProfile(name.clone()));
    let image = container_instance_image(ctx, instance_architecture(&ci.instance_type)).await?;
    let mut ids = Vec::new();
    for i in 0..n {
        let mut tags = ctx.tag_pairs(Some(tier));
        tags.push(("Name".into(), ctx.name(&format!("ecs-ci-{i}"))));
        let req = InstanceRequest {
            image_id: image.clone(),
            instance_type: ci.instance_type.clone(),
            subnet_id: subnet.to_string(),
            // The VPC's default group: the instance's own interface serves nothing.
            security_group_ids: Vec::new(),
            instance_profile: Some(name.clone()),
            user_data: container_instance_user_data(cluster, ci.block_imds),
            imds_v1: ci.http_tokens == HttpTokens::Optional,
            tags,
        };
        // A fresh instance profile is not visible to EC2 for a few seconds: NotReady, retried.
        let id = retry::retry(ctx.backoff, || ctx.apis.ec2.run_instance(&req)).await?;
        ctx.record(Some(tier), Resource::Instance(id.clone()));
        ids.push(id);
    }
    if !ctx.caps.ecs.runs_workloads() {
        // An emulator runs no ECS agent: the harness registers each instance in its place.
        for id in &ids {
            let arn = retry::retry(ctx.backoff, || ctx.apis.ecs.register_container_instance(cluster, id)).await?;
            ctx.record(Some(tier), Resource::ContainerInstance { cluster: cluster.to_string(), arn });
        }
        return Ok(());
    }
    for arn in wait_registered(ctx, cluster, ids.len(), REGISTER_TIMEOUT).await? {
        ctx.record(Some(tier), Resource::ContainerInstance { cluster: cluster.to_string(), arn });
    }
    Ok(())
}

/// The ECS-optimized AMI on AWS (resolved by `RunInstances`); the stand-in on an emulator.
async fn container_instance_image(ctx: &DeployContext, arch: Architecture) -> Result<String, DeployError> {
    if ctx.caps.ec2.runs_workloads() {
        return Ok(format!("resolve:ssm:{}", ecs_ami_parameter(arch)));
    }
    let pattern = fallback_image_pattern(arch);
    ctx.apis
        .ec2
        .latest_image(&pattern, arch.as_str())
        .await?
        .ok_or_else(|| DeployError::Other(format!("no Amazon Linux 2023 image `{pattern}` found on the emulator")))
}

/// Waits until `n` container instances are registered with `cluster`; their ARNs.
pub(crate) async fn wait_registered(
    ctx: &DeployContext,
    cluster: &str,
    n: usize,
    timeout: std::time::Duration,
) -> Result<Vec<String>, DeployError> {
    let ecs = ctx.apis.ecs.clone();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = seen.clone();
    let got = wait_for(&format!("container instances of {cluster}"), timeout, || {
        let (ecs, cluster, counted) = (ecs.clone(), cluster.to_string(), counted.clone());
        async move {
            let found = ecs.container_instances(&cluster).await?;
            counted.store(found.len(), std::sync::atomic::Ordering::Relaxed);
            Ok((found.len() >= n).then(|| found.into_iter().map(|f| f.id).collect::<Vec<_>>()))
        }
    })
    .await;
    got.map_err(|e| match e {
        // The timeout; an API error stays itself.
        DeployError::Other(_) => {
            DeployError::Other(not_registered(cluster, seen.load(std::sync::atomic::Ordering::Relaxed), n, timeout))
        }
        e => e,
    })
}

/// The error of a cluster whose instances did not all register in time.
pub fn not_registered(cluster: &str, seen: usize, n: usize, timeout: std::time::Duration) -> String {
    format!(
        "only {seen} of {n} container instance(s) registered with ecs cluster {cluster} within {}; an instance's \
         ECS agent needs a route to the ECS endpoint (a public address or a NAT) and `ECS_CLUSTER` in \
         /etc/ecs/ecs.config (its user data); the instances are torn down with the run",
        humantime::format_duration(timeout)
    )
}
