//! The cluster: its role, CreateCluster, and the wait until it is `ACTIVE` (about ten minutes
//! on AWS), with progress lines; the harness's access to the workload port on the cluster's
//! security group, which the nodes and pods share.

use std::time::{Duration, Instant};

use isobench_core::TierId;
use isobench_core::workload_api::DEFAULT_PORT;

use super::settings::Settings;
use crate::api::{EksCluster, EksClusterRequest, SgRule, SgSource};
use crate::context::{DeployContext, DeployError, Network};
use crate::resource::Resource;
use crate::retry;

/// The AWS managed policy an EKS cluster's role needs.
pub const CLUSTER_POLICY: &str = "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy";
/// How long a new cluster typically takes to become `ACTIVE` (EKS user guide, "Create a
/// cluster": 10 to 15 minutes); for the plan's time estimate.
pub const CLUSTER_CREATE: Duration = Duration::from_secs(10 * 60);
/// How long a deploy waits for it.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(25 * 60);

/// Creates the cluster's role and the cluster in `subnets`, recorded under `tier`; returns
/// the cluster once `ACTIVE`.
pub async fn create(
    ctx: &mut DeployContext,
    tier: TierId,
    s: &Settings,
    subnets: &[String],
) -> Result<EksCluster, DeployError> {
    let name = s.cluster(&ctx.run_id);
    let role = s.cluster_role(&ctx.run_id);
    let role_arn = ctx.role(tier, &role, "eks.amazonaws.com").await?;
    retry::retry(ctx.backoff, || ctx.apis.iam.attach_managed_policy(&role, CLUSTER_POLICY)).await?;
    let req = EksClusterRequest {
        name: name.clone(),
        role_arn,
        subnets: subnets.to_vec(),
        version: None,
        tags: ctx.tag_pairs(Some(tier)),
    };
    // A role made a moment ago may not be assumable by EKS yet: NotReady, retried.
    retry::retry(ctx.backoff, || ctx.apis.eks.create_cluster(&req)).await?;
    ctx.record(Some(tier), Resource::EksCluster(name.clone()));
    wait_active(ctx, &name, CLUSTER_TIMEOUT).await
}

/// Polls the cluster until `ACTIVE`; `FAILED` or the timeout is an error naming the status.
pub async fn wait_active(ctx: &DeployContext, name: &str, timeout: Duration) -> Result<EksCluster, DeployError> {
    let start = Instant::now();
    let mut wait = Duration::from_millis(100);
    let mut last = String::new();
    loop {
        let c = ctx.apis.eks.cluster(name).await?;
        let status = c.as_ref().map_or("MISSING".to_string(), |c| c.status.clone());
        if status != last {
            tracing::info!("eks cluster {name}: {status} after {}s", start.elapsed().as_secs());
            last = status.clone();
        }
        match c {
            Some(c) if c.status == "ACTIVE" => return Ok(c),
            Some(c) if c.status == "FAILED" => {
                return Err(DeployError::Other(format!("eks cluster {name} failed to create (status FAILED)")));
            }
            _ if start.elapsed() > timeout => {
                return Err(DeployError::Other(format!(
                    "eks cluster {name} still {status} after {}",
                    humantime::format_duration(timeout)
                )));
            }
            _ => {}
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(15));
    }
}

/// Lets the harness reach the workload port on the cluster's security group (the group EKS
/// gives the nodes of managed node groups, and so the pods). The rule goes with the group,
/// which EKS deletes with the cluster: nothing to record.
pub async fn admit_harness(ctx: &DeployContext, cluster: &EksCluster, net: &Network) -> Result<(), DeployError> {
    let Some(group) = &cluster.security_group else { return Ok(()) };
    let source = match (&ctx.spec.harness_cidr, &net.harness_group) {
        (Some(cidr), _) => SgSource::Cidr(cidr.clone()),
        (None, Some(g)) => SgSource::Group(g.clone()),
        (None, None) => return Ok(()),
    };
    let port = i32::from(DEFAULT_PORT);
    let rule = SgRule { protocol: "tcp".into(), from_port: port, to_port: port, source };
    retry::retry(ctx.backoff, || ctx.apis.ec2.authorize_ingress(group, std::slice::from_ref(&rule))).await?;
    Ok(())
}
