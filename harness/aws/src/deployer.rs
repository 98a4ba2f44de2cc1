//! The deployer: one run's [`DeployContext`] (the run-wide VPC, subnets, bucket, ledger, tags
//! and retries), a deploy dispatched to the tier's module ([`crate::tiers::module`]) and timed,
//! and teardown from the ledger, newest dependency first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::plan::TierPlan;
use isobench_core::scenario::aws::AwsSpec;
use isobench_core::{Deployment, TierId};

use crate::api::Apis;
use crate::capability::Capabilities;
use crate::context::DeployContext;
use crate::resource::{self, Removal};
use crate::tiers;

// Their old paths, for callers of the deployer.
pub use crate::context::{DeployError, Network, READY_TIMEOUT, VPC_CIDR, WORKLOAD_KEY};

pub struct Deployer {
    /// What every tier deploys into and records in.
    pub ctx: DeployContext,
    /// Deploy time per tier, from the first call to everything answering (or created, where
    /// nothing can answer).
    pub deploy_times: BTreeMap<TierId, Duration>,
}

impl Deployer {
    pub fn new(apis: Apis, run_id: &str, spec: AwsSpec, caps: Capabilities, workload: Arc<Vec<u8>>) -> Deployer {
        Deployer { ctx: DeployContext::new(apis, run_id, spec, caps, workload), deploy_times: BTreeMap::new() }
    }

    /// Deploys one tier through its module.
    pub async fn deploy(&mut self, tp: &TierPlan) -> Result<Deployment, DeployError> {
        let start = Instant::now();
        let d = tiers::module(tp.tier).deploy(&mut self.ctx, tp).await?;
        self.deploy_times.insert(tp.tier, start.elapsed());
        Ok(d)
    }

    /// Removes what `tier` created (`None`: everything left), newest dependency first.
    pub async fn teardown(&mut self, tier: Option<TierId>) -> Removal {
        let ctx = &mut self.ctx;
        let (mine, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut ctx.ledger).into_iter().partition(|(t, _)| tier.is_none() || *t == tier);
        ctx.ledger = rest;
        let removal = resource::remove_all(&ctx.apis, mine.iter().map(|(_, r)| r.clone()).collect(), ctx.backoff).await;
        if tier.is_none() {
            ctx.network = None;
            ctx.workload_url = None;
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
