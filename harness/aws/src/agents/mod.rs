//! Load agents on AWS: `isobench agent` processes as Fargate tasks in the run's VPC, in the
//! subnets of the tiers they drive, so traffic goes to the tiers' private addresses, Lambda
//! tiers are invoked through the SDK from inside the account ([`function`]), and probes run
//! where the tenants' network is. A leaf beside the tier modules: it deploys into the same
//! [`DeployContext`] (VPC, subnets, bucket, ledger, tags) and records what it makes under no
//! tier, so the run-wide teardown, its tag query and `sweep` remove agents like any shared
//! resource. The agents join the run's harness security group, which the tiers' rules with
//! source `harness` admit.
//!
//! The harness and its agents talk through the run's bucket ([`transport`]): no listener, no
//! public address on the harness. The lines are opaque here; their content is the agent
//! protocol's.

pub mod function;
pub mod session;
pub mod transport;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use isobench_core::plan::Plan;
use isobench_core::scenario::aws::Architecture;
use isobench_cost::CostError;
use isobench_cost::Pricing;

use crate::api::{TaskDefinitionRequest, TaskExit, TaskRequest};
use crate::context::{DeployContext, DeployError, READY_TIMEOUT, wait_for};
use crate::error::ApiError;
use crate::resource::Resource;
use crate::retry;
use crate::tier::{Counts, PLANNED_RUN, Planned, planned_name};
use crate::tiers;

pub use transport::{AgentEnvError, AgentSink, ChunkWriter, Direction, LineReader};

/// The agents' image: the ECS tier's public Amazon Linux 2023; the task fetches the isobench
/// binary from the run's bucket at start.
pub use crate::tiers::ecs::IMAGE;

/// Billed per agent beyond the traffic: a Fargate task takes up to a minute to start and
/// Fargate bills from the image pull. An allowance, not a measurement.
pub const AGENT_START_UP: Duration = Duration::from_secs(120);

/// The subnet agents get when no tier they drive sits in the VPC (Lambda tiers only).
pub const AGENTS_SUBNET: &str = "agents";

/// The environment an agent task starts with: where its assignment and output live.
pub const ENV_BUCKET: &str = "ISOBENCH_AGENT_BUCKET";
pub const ENV_RUN: &str = "ISOBENCH_AGENT_RUN";
pub const ENV_INDEX: &str = "ISOBENCH_AGENT_INDEX";
/// `s3`: the agent reads its assignment from and writes its lines to the bucket.
pub const ENV_TRANSPORT: &str = "ISOBENCH_AGENT_TRANSPORT";

/// The container port the task definition declares; agents listen on nothing (the request type
/// takes one port).
const AGENT_PORT: i32 = 9099;

/// What `plan` shows of the agents and the guard rails count.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentsPlan {
    pub count: u32,
    /// CPU units (1024 = one vCPU) and MiB of one task.
    pub cpu: u32,
    pub memory: u32,
    pub architecture: Architecture,
    /// Scenario subnet names: those of the tiers they drive.
    pub subnets: Vec<String>,
    /// How long each agent is billed: every tier's traffic (tiers run one after another) and
    /// [`AGENT_START_UP`].
    pub billed: Duration,
}

impl AgentsPlan {
    /// The agents `plan` asks for; `None` without `[aws.agents]`.
    pub fn of(plan: &Plan) -> Option<AgentsPlan> {
        let spec = plan.scenario.aws.agents.as_ref()?;
        let run = &plan.scenario.run;
        let mut subnets: Vec<String> = Vec::new();
        for t in &plan.tiers {
            for s in tiers::module(t.tier).needs(t).subnets {
                if !subnets.contains(&s) {
                    subnets.push(s);
                }
            }
        }
        if subnets.is_empty() {
            subnets.push(AGENTS_SUBNET.into());
        }
        Some(AgentsPlan {
            count: spec.count_for(run.rate.0),
            cpu: spec.cpu,
            memory: spec.memory,
            architecture: spec.architecture.unwrap_or(plan.scenario.aws.architecture),
            subnets,
            billed: run.duration.0 * plan.tiers.len() as u32 + AGENT_START_UP,
        })
    }

    pub fn vcpu(&self) -> f64 {
        self.cpu as f64 / 1024.0
    }

    pub fn gb(&self) -> f64 {
        self.memory as f64 / 1024.0
    }

    /// One task's size and place: `1 vCPU, 2 GB, x86_64, fargate awsvpc in subnets a, b`.
    pub fn describe(&self) -> String {
        format!(
            "{} vCPU, {} GB, {}, fargate awsvpc in subnet(s) {}",
            self.vcpu(),
            self.gb(),
            self.architecture.as_str(),
            self.subnets.join(", ")
        )
    }
}

/// What the agents add to the run's compute: one task and one network interface each.
pub fn counts(plan: &Plan) -> Counts {
    AgentsPlan::of(plan).map_or_else(Counts::default, |a| Counts { tasks: a.count, ..Counts::default() })
}

/// The agents' resources, in creation order, for `isobench plan`.
pub fn planned(plan: &Plan) -> Vec<Planned> {
    let Some(a) = AgentsPlan::of(plan) else { return Vec::new() };
    let mut out = Vec::new();
    let mut add = |kind, name: String| out.push(Planned { tier: None, kind, name });
    add(
        "iam role",
        format!("{} (s3 get/put under runs/{PLANNED_RUN}/agents/, lambda invoke)", planned_name("agents-task")),
    );
    add("iam role", format!("{} (execution)", planned_name("agents-exec")));
    add("s3 object", format!("{}/{}", planned_name("workload"), transport::binary_key(PLANNED_RUN)));
    add("ecs cluster", planned_name("agents"));
    for k in 0..a.count {
        add("s3 object", format!("{}/{}", planned_name("workload"), transport::assignment_key(PLANNED_RUN, k)));
        add("ecs task definition", planned_name(&format!("agent-{k}")));
        add("ecs task", format!("agent {k} ({}; one ENI, in the harness group)", a.describe()));
    }
    out
}

/// The agents' modelled cost: Fargate vCPU-hours and GB-hours for [`AgentsPlan::billed`].
#[derive(Debug, Clone, PartialEq)]
pub struct AgentCost {
    pub usd: f64,
    pub formula: String,
}

/// `None` without agents; an error names the missing price.
// The cost crate's own error, as its `project` returns it (the caller handles both alike).
#[allow(clippy::result_large_err)]
pub fn modelled_cost(plan: &Plan, pricing: &Pricing) -> Result<Option<AgentCost>, CostError> {
    let Some(a) = AgentsPlan::of(plan) else { return Ok(None) };
    let arch = a.architecture.as_str();
    let (kv, kg) = (format!("fargate.vcpu-{arch}"), format!("fargate.gb-{arch}"));
    let pv = pricing.get(&kv, "agents")?.usd;
    let pg = pricing.get(&kg, "agents")?.usd;
    // Fargate bills per second with a one-minute minimum.
    let hours = a.billed.as_secs_f64().max(60.0) / 3600.0;
    let usd = a.count as f64 * hours * (a.vcpu() * pv + a.gb() * pg);
    let formula = format!(
        "agents (modelled): N × T/3600 × (vCPU × Pv + GB × Pg); N = {}, T = {:.0} s (traffic of {} tier(s) + {} s \
         start-up), vCPU = {}, GB = {}, Pv = ${pv}/vCPU-hour ({kv}), Pg = ${pg}/GB-hour ({kg})",
        a.count,
        a.billed.as_secs_f64(),
        plan.tiers.len(),
        AGENT_START_UP.as_secs(),
        a.vcpu(),
        a.gb()
    );
    Ok(Some(AgentCost { usd, formula }))
}

/// One agent the harness started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHandle {
    pub index: u32,
    pub task: String,
    /// Its private address, once the task has one.
    pub address: Option<IpAddr>,
}

/// The run's agents: where they run and what was made for them.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub cluster: String,
    pub bucket: String,
    pub agents: Vec<AgentHandle>,
    /// Everything created for the agents (also in the context's ledger, under no tier).
    pub resources: Vec<Resource>,
}

/// An agent's task as DescribeTasks reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStatus {
    /// Provisioning, pending or activating.
    Starting,
    Running,
    /// The task stopped or is stopping: the agent is dead unless it finished its share.
    Stopped {
        reason: Option<String>,
        exit_code: Option<i32>,
    },
    /// The service no longer knows the task (stopped long ago): dead.
    Gone,
}

impl AgentStatus {
    pub fn of(exit: Option<TaskExit>) -> AgentStatus {
        let Some(x) = exit else { return AgentStatus::Gone };
        match x.last_status.as_str() {
            "RUNNING" => AgentStatus::Running,
            "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" | "STOPPED" => {
                AgentStatus::Stopped { reason: x.stopped_reason, exit_code: x.exit_code }
            }
            _ => AgentStatus::Starting,
        }
    }

    pub fn is_dead(&self) -> bool {
        matches!(self, AgentStatus::Stopped { .. } | AgentStatus::Gone)
    }
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentStatus::Starting => write!(f, "starting"),
            AgentStatus::Running => write!(f, "running"),
            AgentStatus::Stopped { reason, exit_code } => {
                write!(f, "stopped")?;
                if let Some(c) = exit_code {
                    write!(f, " (exit {c})")?;
                }
                if let Some(r) = reason {
                    write!(f, ": {r}")?;
                }
                Ok(())
            }
            AgentStatus::Gone => write!(f, "gone (the service no longer knows its task)"),
        }
    }
}

/// The task role's only permissions: the run's agent objects, and invoking the run's functions.
pub fn task_policy(bucket: &str, run: &str, function_prefix: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": format!("arn:aws:s3:::{bucket}/{}*", transport::agents_prefix(run)),
            },
            {
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": format!("arn:aws:lambda:*:*:function:{function_prefix}*"),
            }
        ]
    })
    .to_string()
}

/// The task's command: fetch the binary, run `isobench agent`, which reads where its
/// assignment is from the environment.
pub fn command(url: &str) -> Vec<String> {
    let script = format!(
        "curl -fsSL --retry 10 -o /tmp/isobench '{url}' && chmod 755 /tmp/isobench && exec /tmp/isobench agent"
    );
    vec!["sh".into(), "-c".into(), script]
}

/// Starts one agent per assignment as Fargate tasks in the run's VPC, after putting the
/// isobench `binary` (built for the agents' architecture) and the assignments in the run's
/// bucket. Everything is tagged and recorded under no tier as it is made, so a failure part
/// way leaves nothing teardown cannot find.
pub async fn deploy(
    ctx: &mut DeployContext,
    plan: &AgentsPlan,
    binary: Arc<Vec<u8>>,
    assignments: &[Vec<u8>],
) -> Result<Fleet, DeployError> {
    if let Some(why) = ctx.caps.ecs_unavailable() {
        return Err(DeployError::Other(format!("agents run as ECS tasks: {why}")));
    }
    if assignments.is_empty() {
        return Err(DeployError::Other("no assignment: agents need one each".into()));
    }
    let first = ctx.ledger.len();
    let net = ctx.network(&plan.subnets).await?;
    let subnets: Vec<String> = plan.subnets.iter().map(|n| net.subnets[n].clone()).collect();
    let group = net.harness_group.clone().ok_or_else(|| {
        DeployError::Other("agents join the run's harness group, which a scenario with harness_cidr has not".into())
    })?;
    let (bucket, url) = stage(ctx, binary, assignments).await?;
    let roles = roles(ctx, &bucket).await?;
    let cluster = ctx.name("agents");
    let tags = ctx.tag_pairs(None);
    retry::retry(ctx.backoff, || ctx.apis.ecs.create_cluster(&cluster, &tags)).await?;
    ctx.record(None, Resource::Cluster(cluster.clone()));
    let place =
        Placement { cluster: &cluster, bucket: &bucket, url: &url, subnets: &subnets, group: &group, roles: &roles };
    let mut agents = Vec::new();
    for k in 0..assignments.len() as u32 {
        let task = place.start(ctx, plan, k).await?;
        agents.push(AgentHandle { index: k, task, address: None });
    }
    for a in &mut agents {
        a.address = wait_started(ctx, &cluster, &a.task).await?;
    }
    let resources = ctx.ledger[first..].iter().map(|(_, r)| r.clone()).collect();
    Ok(Fleet { cluster, bucket, agents, resources })
}

/// Puts the binary and the assignments in the run's bucket (made here if no tier made it);
/// returns the bucket and the binary's presigned URL.
async fn stage(
    ctx: &mut DeployContext,
    binary: Arc<Vec<u8>>,
    assignments: &[Vec<u8>],
) -> Result<(String, String), DeployError> {
    ctx.workload_url().await?;
    let bucket = ctx.name("workload");
    let run = ctx.run_id.clone();
    let key = transport::binary_key(&run);
    ctx.apis.s3.put_object(&bucket, &key, binary.as_ref().clone()).await?;
    let ttl = ctx.spec.max_lifetime.0.min(Duration::from_secs(7 * 24 * 3600));
    let url = ctx.apis.s3.presign_get(&bucket, &key, ttl).await?;
    for (k, a) in assignments.iter().enumerate() {
        ctx.apis.s3.put_object(&bucket, &transport::assignment_key(&run, k as u32), a.clone()).await?;
    }
    Ok((bucket, url))
}

/// The agents' task role (with [`task_policy`]) and execution role ARNs.
struct Roles {
    task: String,
    execution: String,
}

async fn roles(ctx: &mut DeployContext, bucket: &str) -> Result<Roles, DeployError> {
    let task = role(ctx, "agents-task").await?;
    let policy = task_policy(bucket, &ctx.run_id, &ctx.name(""));
    let name = ctx.name("agents-task");
    retry::retry(ctx.backoff, || ctx.apis.iam.put_role_policy(&name, "isobench-agent", &policy)).await?;
    let execution = role(ctx, "agents-exec").await?;
    Ok(Roles { task, execution })
}

/// Where and with what an agent's task starts.
struct Placement<'a> {
    cluster: &'a str,
    bucket: &'a str,
    url: &'a str,
    subnets: &'a [String],
    group: &'a str,
    roles: &'a Roles,
}

impl Placement<'_> {
    /// Agent `k`'s task definition and task; returns the task's ARN.
    async fn start(&self, ctx: &mut DeployContext, plan: &AgentsPlan, k: u32) -> Result<String, DeployError> {
        let tags = ctx.tag_pairs(None);
        let req = TaskDefinitionRequest {
            family: ctx.name(&format!("agent-{k}")),
            task_role_arn: self.roles.task.clone(),
            execution_role_arn: Some(self.roles.execution.clone()),
            cpu: plan.cpu.to_string(),
            memory: plan.memory.to_string(),
            launch_type: "FARGATE".into(),
            architecture: plan.architecture.as_str().into(),
            image: IMAGE.into(),
            command: command(self.url),
            port: AGENT_PORT,
            environment: environment(ctx, self.bucket, k),
            tags: tags.clone(),
        };
        // The roles were just created: registration may not see them yet (retried).
        let def = retry::retry(ctx.backoff, || ctx.apis.ecs.register_task_definition(&req)).await?;
        ctx.record(None, Resource::TaskDefinition(def.clone()));
        let run = TaskRequest {
            cluster: self.cluster.to_string(),
            task_definition: def,
            launch_type: "FARGATE".into(),
            subnets: self.subnets.to_vec(),
            security_groups: vec![self.group.to_string()],
            // To pull the public image and fetch the binary; traffic goes to private addresses.
            public_ip: true,
            tags,
        };
        let task = retry::retry(ctx.backoff, || ctx.apis.ecs.run_task(&run)).await?;
        ctx.record(None, Resource::Task { cluster: self.cluster.to_string(), arn: task.clone() });
        Ok(task)
    }
}

fn environment(ctx: &DeployContext, bucket: &str, k: u32) -> Vec<(String, String)> {
    let mut env = vec![
        (ENV_TRANSPORT.to_string(), "s3".to_string()),
        (ENV_BUCKET.to_string(), bucket.to_string()),
        (ENV_RUN.to_string(), ctx.run_id.clone()),
        (ENV_INDEX.to_string(), k.to_string()),
    ];
    if let Some(r) = &ctx.spec.region {
        env.push(("AWS_REGION".into(), r.clone()));
    }
    env
}

/// A role ECS tasks may assume, tagged and recorded under no tier; returns its ARN.
async fn role(ctx: &mut DeployContext, suffix: &str) -> Result<String, DeployError> {
    let name = ctx.name(suffix);
    let tags = ctx.tag_pairs(None);
    let arn = retry::retry(ctx.backoff, || ctx.apis.iam.create_role(&name, "ecs-tasks.amazonaws.com", &tags)).await?;
    ctx.record(None, Resource::Role(name));
    Ok(arn)
}

/// Waits until the task runs and returns its private address. On an emulator whose tasks are
/// records (moto) the task's existence is all there is to wait for.
async fn wait_started(ctx: &DeployContext, cluster: &str, task: &str) -> Result<Option<IpAddr>, DeployError> {
    let serves = ctx.caps.ecs.runs_workloads();
    let ecs = ctx.apis.ecs.clone();
    wait_for(&format!("agent task {task}"), READY_TIMEOUT, || {
        let (ecs, cluster, task) = (ecs.clone(), cluster.to_string(), task.to_string());
        async move {
            if serves {
                let status = AgentStatus::of(ecs.task_exit(&cluster, &task).await?);
                if status.is_dead() {
                    return Err(DeployError::Other(format!("agent task {task} {status}")));
                }
                if status != AgentStatus::Running {
                    return Ok(None);
                }
            }
            // moto cycles a task's status on every describe: only its existence counts there.
            let Some(state) = ecs.task_state(&cluster, &task).await? else { return Ok(None) };
            Ok(Some(state.private_ip.and_then(|a| a.parse().ok())))
        }
    })
    .await
}

/// The status of agent `k`'s task.
pub async fn status(ctx: &DeployContext, fleet: &Fleet, k: u32) -> Result<AgentStatus, ApiError> {
    let task = agent(fleet, k)?;
    Ok(AgentStatus::of(ctx.apis.ecs.task_exit(&fleet.cluster, &task.task).await?))
}

/// A reader of agent `k`'s lines.
pub fn reader(ctx: &DeployContext, fleet: &Fleet, k: u32) -> Result<LineReader, ApiError> {
    agent(fleet, k)?;
    Ok(LineReader::new(ctx.apis.s3.clone(), &fleet.bucket, &ctx.run_id, k, Direction::Out))
}

/// A writer of lines to agent `k` (after its assignment).
pub fn writer(ctx: &DeployContext, fleet: &Fleet, k: u32) -> Result<ChunkWriter, ApiError> {
    agent(fleet, k)?;
    Ok(ChunkWriter::new(ctx.apis.s3.clone(), &fleet.bucket, &ctx.run_id, k, Direction::In))
}

fn agent(fleet: &Fleet, k: u32) -> Result<&AgentHandle, ApiError> {
    fleet
        .agents
        .iter()
        .find(|a| a.index == k)
        .ok_or_else(|| ApiError::new("agents", "NoSuchAgent", format!("agent {k}")))
}

#[cfg(test)]
mod tests;
