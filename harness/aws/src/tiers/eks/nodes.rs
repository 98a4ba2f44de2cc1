//! The worker nodes: a launch template carrying the scenario's instance metadata options
//! (`HttpTokens`, `HttpPutResponseHopLimit`: whether a pod reaches its node's role through
//! IMDS), the node role(s), and the managed node group(s), one shared or one per tenant
//! labelled with its tenant, waited for until `ACTIVE`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use isobench_core::TierId;

use super::objects::TENANT_LABEL;
use super::settings::Settings;
use crate::api::{LaunchTemplateRequest, NodegroupRequest};
use crate::context::{DeployContext, DeployError};
use crate::resource::Resource;
use crate::retry;

/// The AWS managed policies a node role needs: join the cluster, pull images, and (the VPC
/// CNI on the node) manage the pods' network interfaces.
pub const NODE_POLICIES: [&str; 3] = [
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
];
/// How long a managed node group typically takes to become `ACTIVE`; for the plan.
pub const NODEGROUP_CREATE: Duration = Duration::from_secs(5 * 60);
pub const NODEGROUP_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The launch template's name.
pub fn launch_template_name(s: &Settings, run: &str) -> String {
    format!("{}-nodes", s.cluster(run))
}

/// Creates the launch template, the node roles and the node groups of `cluster`; waits until
/// every group is `ACTIVE`.
pub async fn create(
    ctx: &mut DeployContext,
    tier: TierId,
    s: &Settings,
    cluster: &str,
    subnets: &[String],
    tenants: &[String],
) -> Result<(), DeployError> {
    let req = LaunchTemplateRequest {
        name: launch_template_name(s, &ctx.run_id),
        http_tokens_required: s.http_tokens_required,
        hop_limit: s.hop_limit,
        tags: ctx.tag_pairs(Some(tier)),
    };
    let template = retry::retry(ctx.backoff, || ctx.apis.ec2.create_launch_template(&req)).await?;
    ctx.record(Some(tier), Resource::LaunchTemplate(template.clone()));
    let mut groups = Vec::new();
    for (group, tenant) in s.nodegroups(tenants) {
        let role = s.node_role(&ctx.run_id, tenant.as_deref());
        let role_arn = ctx.role(tier, &role, "ec2.amazonaws.com").await?;
        for p in NODE_POLICIES {
            retry::retry(ctx.backoff, || ctx.apis.iam.attach_managed_policy(&role, p)).await?;
        }
        let labels: BTreeMap<String, String> = tenant.iter().map(|t| (TENANT_LABEL.to_string(), t.clone())).collect();
        let req = NodegroupRequest {
            cluster: cluster.to_string(),
            name: group.clone(),
            node_role_arn: role_arn,
            subnets: subnets.to_vec(),
            instance_type: s.instance_type.clone(),
            count: s.group_size(tenant.as_deref()),
            launch_template: template.clone(),
            labels,
            tags: ctx.tag_pairs(Some(tier)),
        };
        retry::retry(ctx.backoff, || ctx.apis.eks.create_nodegroup(&req)).await?;
        ctx.record(Some(tier), Resource::Nodegroup { cluster: cluster.to_string(), name: group.clone() });
        groups.push(group);
    }
    for g in &groups {
        wait_active(ctx, cluster, g, NODEGROUP_TIMEOUT).await?;
    }
    Ok(())
}

/// Polls a node group until `ACTIVE`; `CREATE_FAILED` (or `DEGRADED`) or the timeout is an
/// error naming the status.
pub async fn wait_active(
    ctx: &DeployContext,
    cluster: &str,
    group: &str,
    timeout: Duration,
) -> Result<(), DeployError> {
    let start = Instant::now();
    let mut wait = Duration::from_millis(100);
    let mut last = String::new();
    loop {
        let status = ctx.apis.eks.nodegroup_status(cluster, group).await?.unwrap_or_else(|| "MISSING".into());
        if status != last {
            tracing::info!("eks node group {group} of {cluster}: {status} after {}s", start.elapsed().as_secs());
            last = status.clone();
        }
        match status.as_str() {
            "ACTIVE" => return Ok(()),
            "CREATE_FAILED" | "DEGRADED" => {
                return Err(DeployError::Other(format!("eks node group {group} of {cluster} is {status}")));
            }
            _ if start.elapsed() > timeout => {
                return Err(DeployError::Other(format!(
                    "eks node group {group} of {cluster} still {status} after {}",
                    humantime::format_duration(timeout)
                )));
            }
            _ => {}
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(15));
    }
}
