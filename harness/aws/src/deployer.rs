//! The deployer: one run's [`DeployContext`] (the run-wide VPC, subnets, bucket, ledger, tags
//! and retries), a deploy dispatched to the tier's module ([`crate::tiers::module`]) and timed,
//! and teardown from the ledger, newest dependency first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::plan::TierPlan;
use isobench_core::scenario::aws::AwsSpec;
use isobench_core::{Deployment, TierId};

use crate::agents::{self, AgentHandle, AgentStatus, AgentsPlan, ChunkWriter, Fleet, LineReader};
use crate::api::Apis;
use crate::capability::Capabilities;
use crate::context::DeployContext;
use crate::error::ApiError;
use crate::resource::{self, Removal, Resource};
use crate::sweep;
use crate::tags::Selector;
use crate::tiers;

// Their old paths, for callers of the deployer.
pub use crate::context::{DeployError, Network, READY_TIMEOUT, VPC_CIDR, WORKLOAD_KEY};

pub struct Deployer {
    /// What every tier deploys into and records in.
    pub ctx: DeployContext,
    /// Deploy time per tier, from the first call to everything answering (or created, where
    /// nothing can answer).
    pub deploy_times: BTreeMap<TierId, Duration>,
    /// The run's load agents, once started.
    pub agents: Option<Fleet>,
    readers: BTreeMap<u32, LineReader>,
    writers: BTreeMap<u32, ChunkWriter>,
}

impl Deployer {
    pub fn new(apis: Apis, run_id: &str, spec: AwsSpec, caps: Capabilities, workload: Arc<Vec<u8>>) -> Deployer {
        Deployer {
            ctx: DeployContext::new(apis, run_id, spec, caps, workload),
            deploy_times: BTreeMap::new(),
            agents: None,
            readers: BTreeMap::new(),
            writers: BTreeMap::new(),
        }
    }

    /// Starts one load agent per assignment (agent `k` takes `assignments[k]`) as Fargate tasks
    /// in the run's VPC, running the isobench `binary` built for `plan.architecture`.
    pub async fn deploy_agents(
        &mut self,
        plan: &AgentsPlan,
        binary: Arc<Vec<u8>>,
        assignments: &[Vec<u8>],
    ) -> Result<Vec<AgentHandle>, DeployError> {
        if self.agents.is_some() {
            return Err(DeployError::Other("the run's agents are deployed already".into()));
        }
        let fleet = agents::deploy(&mut self.ctx, plan, binary, assignments).await?;
        let handles = fleet.agents.clone();
        self.agents = Some(fleet);
        Ok(handles)
    }

    /// The new complete lines of agent `k` since the last call, in order.
    pub async fn read_lines(&mut self, k: u32) -> Result<Vec<Vec<u8>>, ApiError> {
        let fleet = self.agents.as_ref().ok_or_else(no_agents)?;
        if !self.readers.contains_key(&k) {
            self.readers.insert(k, agents::reader(&self.ctx, fleet, k)?);
        }
        self.readers.get_mut(&k).expect("inserted above").read_lines().await
    }

    /// Sends `lines` to agent `k` (after its assignment: a tier's targets, a stop).
    pub async fn send(&mut self, k: u32, lines: &[u8]) -> Result<(), ApiError> {
        let fleet = self.agents.as_ref().ok_or_else(no_agents)?;
        if !self.writers.contains_key(&k) {
            self.writers.insert(k, agents::writer(&self.ctx, fleet, k)?);
        }
        self.writers.get_mut(&k).expect("inserted above").put(lines).await
    }

    /// Whether agent `k`'s task runs, or why it stopped.
    pub async fn agent_status(&self, k: u32) -> Result<AgentStatus, ApiError> {
        agents::status(&self.ctx, self.agents.as_ref().ok_or_else(no_agents)?, k).await
    }

    /// Stops the agents' tasks and removes their task definitions, cluster and roles, newest
    /// dependency first (the run's bucket and network go with the run-wide teardown).
    pub async fn teardown_agents(&mut self) -> Removal {
        let Some(fleet) = self.agents.take() else { return Removal::default() };
        self.readers.clear();
        self.writers.clear();
        let ctx = &mut self.ctx;
        let mine = |r: &Resource| fleet.resources.contains(r) && !is_shared(r);
        let (gone, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut ctx.ledger).into_iter().partition(|(t, r)| t.is_none() && mine(r));
        ctx.ledger = rest;
        let removal = resource::remove_all(&ctx.apis, gone.iter().map(|(_, r)| r.clone()).collect(), ctx.backoff).await;
        for (t, r) in gone {
            if removal.failed.iter().any(|f| f.starts_with(&r.to_string())) {
                ctx.ledger.push((t, r));
            }
        }
        removal
    }

    /// Deploys one tier through its module.
    pub async fn deploy(&mut self, tp: &TierPlan) -> Result<Deployment, DeployError> {
        let start = Instant::now();
        let d = tiers::module(tp.tier).deploy(&mut self.ctx, tp).await?;
        self.deploy_times.insert(tp.tier, start.elapsed());
        Ok(d)
    }

    /// Removes what `tier` created (`None`: everything left), newest dependency first. The
    /// run-wide teardown also asks the account (a tag query for this run) and removes what it
    /// finds in the same pass: a create whose answer was lost made a resource the ledger never
    /// recorded, and it holds the subnets and groups the ledger's own resources sit in.
    pub async fn teardown(&mut self, tier: Option<TierId>) -> Removal {
        let ctx = &mut self.ctx;
        let (mine, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut ctx.ledger).into_iter().partition(|(t, _)| tier.is_none() || *t == tier);
        ctx.ledger = rest;
        match tier {
            Some(t) => drop(ctx.private_targets.remove(&t)),
            None => ctx.private_targets.clear(),
        }
        let recorded: Vec<Resource> = mine.iter().map(|(_, r)| r.clone()).collect();
        let unrecorded = if tier.is_none() { untracked(ctx, &recorded).await } else { Vec::new() };
        let all = recorded.iter().chain(&unrecorded).cloned().collect();
        let mut removal = resource::remove_all(&ctx.apis, all, ctx.backoff).await;
        label_found(&mut removal, &unrecorded);
        if tier.is_none() {
            ctx.network = None;
            ctx.workload_url = None;
            self.agents = None;
            self.readers.clear();
            self.writers.clear();
        }
        // What failed stays in the ledger so a later teardown_all tries again.
        for (t, r) in mine {
            if removal.failed.iter().any(|f| f.starts_with(&r.to_string())) {
                ctx.ledger.push((t, r));
            }
        }
        removal
    }
}

fn no_agents() -> ApiError {
    ApiError::new("agents", "NoAgents", "the run has no agents deployed")
}

/// The run's network and bucket, which agents may have made but tiers use too.
fn is_shared(r: &Resource) -> bool {
    matches!(
        r,
        Resource::Vpc(_)
            | Resource::Subnet(_)
            | Resource::InternetGateway { .. }
            | Resource::SecurityGroup(_)
            | Resource::SecurityGroupRules(_)
            | Resource::Bucket(_)
    )
}

/// What a tag query for the run finds that the ledger does not hold. A service that cannot be
/// listed is logged: the ledger's own removal still goes ahead.
async fn untracked(ctx: &DeployContext, recorded: &[Resource]) -> Vec<Resource> {
    let sel = Selector::Run(ctx.run_id.clone());
    let (found, report) = sweep::find(&ctx.apis, &ctx.caps, &sel).await;
    for f in &report.failed {
        tracing::warn!("teardown's tag query: {f}");
    }
    let extra: Vec<Resource> = found.into_iter().filter(|r| !is_recorded(r, recorded)).collect();
    for r in &extra {
        tracing::warn!("{r} is tagged with this run but was not recorded; removing it");
    }
    extra
}

/// Whether the ledger holds `r`: a group's rules go with the group, and a gateway is known by
/// its id (the VPC a listing names for it may differ from the one recorded).
fn is_recorded(r: &Resource, recorded: &[Resource]) -> bool {
    recorded.iter().any(|x| match (r, x) {
        (Resource::SecurityGroupRules(a), Resource::SecurityGroup(b)) => a == b,
        (Resource::InternetGateway { id: a, .. }, Resource::InternetGateway { id: b, .. }) => a == b,
        _ => r == x,
    })
}

/// Marks the removed and failed entries of resources the ledger did not hold.
fn label_found(removal: &mut Removal, unrecorded: &[Resource]) {
    let names: Vec<String> = unrecorded.iter().map(Resource::to_string).collect();
    let label = |entry: &mut String| {
        if let Some(n) = names.iter().find(|n| entry == *n || entry.starts_with(&format!("{n}: "))) {
            entry.insert_str(n.len(), FOUND_BY_TAG);
        }
    };
    removal.removed.iter_mut().for_each(label);
    removal.failed.iter_mut().for_each(label);
}

/// Appended to what teardown removed (or failed to) that only the tag query found.
pub const FOUND_BY_TAG: &str = " (found by the tag query)";
