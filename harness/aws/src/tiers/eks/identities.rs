//! The tenants' pod roles and how pods get them: EKS Pod Identity (the agent add-on and one
//! association per tenant's service account) or IRSA (the cluster's OIDC issuer registered as
//! an IAM provider, and roles trusting only `system:serviceaccount:<namespace>:<account>`).

use std::collections::BTreeMap;

use isobench_core::TierId;

use super::settings::{Credentials, Settings};
use crate::api::{EksCluster, PodIdentityRequest};
use crate::context::{DeployContext, DeployError};
use crate::resource::Resource;
use crate::retry;

/// The add-on that runs the EKS Pod Identity agent on every node.
pub const POD_IDENTITY_AGENT: &str = "eks-pod-identity-agent";
/// The VPC CNI add-on; with `enableNetworkPolicy` its node agent enforces NetworkPolicies
/// (without it EKS stores policies and enforces none).
pub const VPC_CNI: &str = "vpc-cni";
pub const VPC_CNI_NETWORK_POLICY: &str = r#"{"enableNetworkPolicy":"true"}"#;
/// The thumbprint IAM records for an EKS OIDC provider: IAM trusts the issuer's CA library
/// for EKS issuers and ignores it, but the API still takes one (the root CA's, as eksctl gives).
pub const OIDC_THUMBPRINT: &str = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

/// The trust policy of a role EKS Pod Identity hands out.
pub fn pod_identity_trust() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]
        }]
    })
    .to_string()
}

/// The trust policy of an IRSA role: web identities from the cluster's issuer whose subject is
/// exactly this service account and whose audience is STS.
pub fn irsa_trust(provider_arn: &str, issuer: &str, namespace: &str, account: &str) -> String {
    let host = issuer.trim_start_matches("https://");
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{host}:sub"): format!("system:serviceaccount:{namespace}:{account}"),
                format!("{host}:aud"): "sts.amazonaws.com"
            }}
        }]
    })
    .to_string()
}

/// The add-ons the settings need: the Pod Identity agent, and the VPC CNI's network policy
/// agent under a default-deny policy.
pub async fn addons(ctx: &mut DeployContext, tier: TierId, s: &Settings, cluster: &str) -> Result<(), DeployError> {
    let mut wanted: Vec<(&str, Option<&str>)> = Vec::new();
    if s.credentials == Credentials::PodIdentity {
        wanted.push((POD_IDENTITY_AGENT, None));
    }
    if s.default_deny {
        wanted.push((VPC_CNI, Some(VPC_CNI_NETWORK_POLICY)));
    }
    for (name, config) in wanted {
        let tags = ctx.tag_pairs(Some(tier));
        let made = retry::retry(ctx.backoff, || ctx.apis.eks.create_addon(cluster, name, config, &tags)).await;
        if emulator_lacks(ctx, &made) {
            continue;
        }
        made?;
        ctx.record(Some(tier), Resource::Addon { cluster: cluster.to_string(), name: name.to_string() });
    }
    Ok(())
}

/// Each tenant's pod role, bound to its service account; tenant -> the role's ARN.
pub async fn create(
    ctx: &mut DeployContext,
    tier: TierId,
    s: &Settings,
    cluster: &EksCluster,
    name: &str,
    tenants: &[String],
) -> Result<BTreeMap<String, String>, DeployError> {
    let mut roles = BTreeMap::new();
    match s.credentials {
        Credentials::PodIdentity => {
            let trust = pod_identity_trust();
            for t in tenants {
                let arn = role(ctx, tier, &s.pod_role(&ctx.run_id, t), &trust).await?;
                let req = PodIdentityRequest {
                    cluster: name.to_string(),
                    namespace: s.namespace(t),
                    service_account: s.service_account(t),
                    role_arn: arn.clone(),
                    tags: ctx.tag_pairs(Some(tier)),
                };
                let made = retry::retry(ctx.backoff, || ctx.apis.eks.create_pod_identity_association(&req)).await;
                if emulator_lacks(ctx, &made) {
                    roles.insert(t.clone(), arn);
                    continue;
                }
                let id = made?;
                ctx.record(Some(tier), Resource::PodIdentityAssociation { cluster: name.to_string(), id });
                roles.insert(t.clone(), arn);
            }
        }
        Credentials::Irsa => {
            let issuer = cluster
                .oidc_issuer
                .clone()
                .ok_or_else(|| DeployError::Other(format!("eks cluster {name} has no OIDC issuer")))?;
            let tags = ctx.tag_pairs(Some(tier));
            let provider =
                retry::retry(ctx.backoff, || ctx.apis.iam.create_oidc_provider(&issuer, OIDC_THUMBPRINT, &tags))
                    .await?;
            ctx.record(Some(tier), Resource::OidcProvider(provider.clone()));
            for t in tenants {
                let trust = irsa_trust(&provider, &issuer, &s.namespace(t), &s.service_account(t));
                let arn = role(ctx, tier, &s.pod_role(&ctx.run_id, t), &trust).await?;
                roles.insert(t.clone(), arn);
            }
        }
    }
    Ok(roles)
}

async fn role(ctx: &mut DeployContext, tier: TierId, name: &str, trust: &str) -> Result<String, DeployError> {
    let tags = ctx.tag_pairs(Some(tier));
    let arn = retry::retry(ctx.backoff, || ctx.apis.iam.create_role_with_trust(name, trust, &tags)).await?;
    ctx.record(Some(tier), Resource::Role(name.to_string()));
    Ok(arn)
}

/// Whether `made` failed because an emulator does not implement the call (moto 4.2 has no
/// add-ons and no Pod Identity): the control plane's other calls are still exercised there, and
/// nothing runs that would need them. On AWS such an error stays an error.
fn emulator_lacks<T>(ctx: &DeployContext, made: &Result<T, crate::error::ApiError>) -> bool {
    match made {
        Err(e) if e.is_unsupported() && !ctx.caps.eks_runs_workloads() => {
            tracing::warn!("skipped on {}: {e}", ctx.caps.ecs.describe());
            true
        }
        _ => false,
    }
}
