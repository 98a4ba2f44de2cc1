//! `eks-pod` on AWS: an EKS cluster per tier, its managed node group(s) (one shared, or one
//! node per tenant with its own node role) from a launch template carrying the scenario's IMDS
//! options, each tenant's pod role (EKS Pod Identity or IRSA), and each tenant's Kubernetes
//! objects applied through the cluster's API. Everything AWS makes is tagged and recorded;
//! the Kubernetes objects go with the cluster.
//!
//! - [`settings`]: what of the scenario's settings decides what is made;
//! - [`control_plane`]: the cluster, its role, the wait until `ACTIVE`;
//! - [`nodes`]: launch template, node roles, node groups;
//! - [`identities`]: add-ons, pod roles, associations or the OIDC provider;
//! - [`objects`]: the tenants' Kubernetes objects, rendered;
//! - [`apply`] and [`token`]: the Kubernetes API client and its token.

pub mod apply;
pub mod control_plane;
pub mod identities;
pub mod nodes;
pub mod objects;
pub mod settings;
pub mod token;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use isobench_core::backend::{Endpoint, InstanceInfo, TenantTarget};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::workload_api::DEFAULT_PORT;
use isobench_core::{Deployment, TierId};

use self::objects::{HarnessSource, TenantInput, TenantObjects};
use self::settings::{Credentials, Settings};
use crate::context::{DeployContext, DeployError, Network, READY_TIMEOUT, VPC_CIDR};
use crate::tier::{AwsTier, Counts, Needs, PLANNED_RUN, Planned, Refusal};

/// The `eks-pod` tier: a cluster per tier, one pod per tenant.
#[derive(Debug)]
pub struct EksTier;

fn spec_settings(tp: &TierPlan, tenants: usize) -> Result<Settings, DeployError> {
    match &tp.settings {
        TierSettings::Eks(spec) => Ok(Settings::from_spec(spec, &tp.name, tenants)),
        _ => Err(DeployError::Other(format!("the {} tier has no EKS settings", tp.tier))),
    }
}

#[async_trait]
impl AwsTier for EksTier {
    fn id(&self) -> TierId {
        TierId::EksPod
    }

    fn needs(&self, _tp: &TierPlan) -> Needs {
        Needs { subnets: SUBNETS.iter().map(|s| s.to_string()).collect(), workload_bucket: true }
    }

    /// Without the settings: one node per tenant, the most either pattern starts.
    fn counts(&self, tenants: u32) -> Counts {
        Counts { instances: tenants, ..Counts::default() }
    }

    fn counts_for(&self, tp: &TierPlan, tenants: u32) -> Counts {
        match spec_settings(tp, tenants as usize) {
            Ok(s) => counts(&s, tenants),
            Err(_) => self.counts(tenants),
        }
    }

    fn planned(&self, tp: &TierPlan, tenants: &[String]) -> Vec<Planned> {
        spec_settings(tp, tenants.len()).map(|s| planned(self.id(), &s, tenants)).unwrap_or_default()
    }

    fn refused(&self, tp: &TierPlan) -> Vec<Refusal> {
        spec_settings(tp, tp.tenants.len()).map(|s| refused(&s)).unwrap_or_default()
    }

    fn allowance(&self, _tp: &TierPlan) -> Duration {
        DEPLOY_TEARDOWN
    }

    fn allowance_usd(&self, tp: &TierPlan, tenants: u32, pricing: &isobench_cost::Pricing) -> f64 {
        let Ok(s) = spec_settings(tp, tenants as usize) else { return 0.0 };
        let node = pricing.prices.get(&format!("ec2.{}", s.instance_type)).map(|p| p.usd);
        let control = pricing.prices.get("eks.cluster-hour").map_or(CONTROL_PLANE_USD_PER_HOUR, |p| p.usd);
        let hours = DEPLOY_TEARDOWN.as_secs_f64() / 3600.0;
        let (_, nodes) = modelled_cost(&s, tenants, hours, node);
        hours * control + nodes.unwrap_or(0.0)
    }

    async fn deploy(&self, ctx: &mut DeployContext, tp: &TierPlan) -> Result<Deployment, DeployError> {
        let tenants: Vec<String> = tp.tenants.iter().map(|t| t.id.clone()).collect();
        let s = spec_settings(tp, tenants.len())?;
        if let Some(why) = crate::tier::architecture_mismatch(tp, ctx.spec.architecture) {
            return Err(DeployError::Other(why));
        }
        deploy(ctx, self.id(), &s, &tenants).await
    }
}

/// The EKS control plane's price: $0.10 per cluster-hour in standard support, in every
/// commercial region (EKS pricing page, read 2026-11-01). Extended support is $0.60; the
/// harness creates clusters at the service's default (standard) version.
pub const CONTROL_PLANE_USD_PER_HOUR: f64 = 0.10;
pub const CONTROL_PLANE_PRICE_SOURCE: &str = "https://aws.amazon.com/eks/pricing/";
/// The subnets the nodes (and, through the VPC CNI, the pods) get addresses in: two, in two
/// availability zones, as CreateCluster requires.
pub const SUBNETS: [&str; 2] = ["eks-a", "eks-b"];
/// A deploy and teardown beyond traffic: the cluster's creation and a node group's, and both
/// deletions (a node group drains and terminates its nodes, then the cluster goes), with the
/// ten minutes every tier gets. An allowance from the EKS user guide's figures, not measured.
pub const DEPLOY_TEARDOWN: Duration = Duration::from_secs(45 * 60);
/// How long a deploy waits for a tenant's pod to be ready once its objects are applied.
pub const POD_TIMEOUT: Duration = READY_TIMEOUT;
/// The tenants' container image: Amazon Linux 2023 from the public gallery, fetching the
/// workload binary at start (as the ECS tier's tasks do; no image build, no registry).
pub const IMAGE: &str = "public.ecr.aws/amazonlinux/amazonlinux:2023";

/// The container's command: fetch the workload from the run's bucket, serve.
pub fn command(url: &str) -> Vec<String> {
    let script = format!(
        "curl -fsSL --retry 10 -o /tmp/tenant-app '{url}' && chmod 755 /tmp/tenant-app && \
         exec /tmp/tenant-app serve --listen 0.0.0.0:{DEFAULT_PORT}"
    );
    vec!["sh".into(), "-c".into(), script]
}

/// What `plan` lists for the tier, in creation order.
pub fn planned(tier: TierId, s: &Settings, tenants: &[String]) -> Vec<Planned> {
    let run = PLANNED_RUN;
    let mut out = Vec::new();
    let mut add = |kind, name: String| out.push(Planned { tier: Some(tier), kind, name });
    let cluster = s.cluster(run);
    add("iam role", format!("{} (eks.amazonaws.com, AmazonEKSClusterPolicy)", s.cluster_role(run)));
    add(
        "eks cluster",
        format!(
            "{cluster} (control plane ${CONTROL_PLANE_USD_PER_HOUR:.2}/cluster-hour, modelled; ACTIVE in about {} \
             after CreateCluster; subnets {} in two zones)",
            humantime::format_duration(control_plane::CLUSTER_CREATE),
            SUBNETS.join(", ")
        ),
    );
    if s.credentials == Credentials::PodIdentity {
        add("eks addon", format!("{} (EKS Pod Identity agent)", identities::POD_IDENTITY_AGENT));
    }
    if s.default_deny {
        add(
            "eks addon",
            format!("{} ({}: NetworkPolicy enforced)", identities::VPC_CNI, identities::VPC_CNI_NETWORK_POLICY),
        );
    }
    let tokens = if s.http_tokens_required { "required" } else { "optional" };
    add(
        "ec2 launch template",
        format!(
            "{} (http_tokens = {tokens}, http_put_response_hop_limit = {}: {})",
            nodes::launch_template_name(s, run),
            s.hop_limit,
            imds_text(s)
        ),
    );
    for (group, tenant) in s.nodegroups(tenants) {
        let role = s.node_role(run, tenant.as_deref());
        add("iam role", format!("{role} (ec2.amazonaws.com, worker node, CNI and ECR read policies)"));
        let n = s.group_size(tenant.as_deref());
        let whose = tenant
            .map_or("shared by every tenant".to_string(), |t| format!("tenant {t} only, label isobench/tenant={t}"));
        add(
            "eks node group",
            format!(
                "{cluster}/{group} ({n} x {}, {whose}; ACTIVE in about {})",
                s.instance_type,
                humantime::format_duration(nodes::NODEGROUP_CREATE)
            ),
        );
    }
    if s.credentials == Credentials::Irsa {
        add("iam oidc provider", format!("the issuer of {cluster} (IRSA)"));
    }
    for t in tenants {
        let (ns, sa) = (s.namespace(t), s.service_account(t));
        let how = match s.credentials {
            Credentials::PodIdentity => "pods.eks.amazonaws.com",
            Credentials::Irsa => "web identity system:serviceaccount:<ns>:<sa>",
        };
        add("iam role", format!("{} ({how})", s.pod_role(run, t)).replace("<ns>:<sa>", &format!("{ns}:{sa}")));
        if s.credentials == Credentials::PodIdentity {
            add("eks pod identity", format!("{ns}/{sa} -> {}", s.pod_role(run, t)));
        }
        let mut objects = format!("namespace {ns}, service account {sa}, deployment and service tenant-app");
        if s.default_deny {
            objects.push_str(", network policy default-deny");
        }
        add(
            "kubernetes objects",
            format!("{objects} ({}m CPU, {} MiB, requests = limits)", s.cpu_millis, s.memory_mib),
        );
    }
    out
}

/// Whether the nodes' IMDS answers pods (one hop behind their node), as the plan says it.
fn imds_text(s: &Settings) -> &'static str {
    if !s.http_tokens_required {
        "IMDSv1 answers pods"
    } else if s.hop_limit >= 2 {
        "IMDSv2 tokens reach pods"
    } else {
        "IMDSv2 tokens stop at the node"
    }
}

pub fn counts(s: &Settings, tenants: u32) -> Counts {
    Counts { instances: s.nodes(tenants), ..Counts::default() }
}

/// The settings AWS cannot honour yet.
pub fn refused(s: &Settings) -> Vec<Refusal> {
    let mut out = Vec::new();
    if s.pod_security_groups {
        out.push(Refusal {
            field: "security_group",
            message: "security groups for pods (SecurityGroupPolicy, ENI trunking) are not deployed on AWS yet",
            accepted: "no `[[tier.security_group]]` on an eks-pod tier for --target aws (the network policy separates tenants)",
        });
    }
    out
}

/// The control plane's and the nodes' modelled cost for `hours` of the tier's life:
/// `hours × ($0.10 + nodes × node price)`; `None` for the nodes when the pricing table has no
/// price for their type.
pub fn modelled_cost(s: &Settings, tenants: u32, hours: f64, node_price: Option<f64>) -> (f64, Option<f64>) {
    let control = hours * CONTROL_PLANE_USD_PER_HOUR;
    (control, node_price.map(|p| hours * p * f64::from(s.nodes(tenants))))
}

/// Where the harness's traffic comes from, for the tenants' network policies.
fn harness_source(ctx: &DeployContext, net: &Network) -> HarnessSource {
    match &ctx.spec.harness_cidr {
        Some(c) => HarnessSource::Cidr(c.clone()),
        None => HarnessSource::VpcExcept {
            vpc: VPC_CIDR.to_string(),
            pod_subnets: SUBNETS.iter().filter_map(|n| net.cidrs.get(*n).cloned()).collect(),
        },
    }
}

/// Creates the tier: the cluster, node groups, identities and the tenants' objects.
pub async fn deploy(
    ctx: &mut DeployContext,
    tier: TierId,
    s: &Settings,
    tenants: &[String],
) -> Result<Deployment, DeployError> {
    if let Some(why) = ctx.caps.eks_unavailable() {
        return Err(DeployError::Other(why));
    }
    if let Some(r) = refused(s).first() {
        return Err(DeployError::Other(r.message.to_string()));
    }
    let names: Vec<String> = SUBNETS.iter().map(|n| n.to_string()).collect();
    let net = ctx.zoned_network(&names).await?;
    let subnets: Vec<String> = names.iter().map(|n| net.subnets[n].clone()).collect();
    let url = ctx.workload_url().await?;
    let name = s.cluster(&ctx.run_id);
    let cluster = control_plane::create(ctx, tier, s, &subnets).await?;
    control_plane::admit_harness(ctx, &cluster, &net).await?;
    identities::addons(ctx, tier, s, &name).await?;
    nodes::create(ctx, tier, s, &name, &subnets, tenants).await?;
    let roles = identities::create(ctx, tier, s, &cluster, &name, tenants).await?;
    let harness = harness_source(ctx, &net);
    let command = command(&url);
    let rendered: Vec<(String, TenantObjects)> = tenants
        .iter()
        .map(|t| {
            let input = TenantInput {
                settings: s,
                run: &ctx.run_id,
                tenant: t,
                command: command.clone(),
                image: IMAGE,
                role_arn: roles.get(t).map(String::as_str),
                harness: &harness,
            };
            (t.clone(), objects::render(&input))
        })
        .collect();
    if !ctx.caps.eks_runs_workloads() {
        let reason = format!(
            "{} runs no Kubernetes API server (its clusters are records): the tenants' objects were rendered, \
             not applied",
            ctx.caps.ecs.describe()
        );
        ctx.skip_data_plane(tier, &reason);
        return Ok(Deployment { tier, targets: Vec::new(), instances: Vec::new(), netns: None });
    }
    let endpoint =
        cluster.endpoint.clone().ok_or_else(|| DeployError::Other(format!("eks cluster {name} has no endpoint")))?;
    let ca = cluster
        .certificate_authority
        .clone()
        .ok_or_else(|| DeployError::Other(format!("eks cluster {name} has no certificate authority")))?;
    let token = ctx.apis.eks.token(&name).await?;
    let client = apply::client(&endpoint, &ca, token)?;
    serve(tier, &client, s, &rendered).await
}

/// Applies every tenant's objects, then waits for each tenant's pod; its address is the target.
async fn serve(
    tier: TierId,
    client: &kube::Client,
    s: &Settings,
    rendered: &[(String, TenantObjects)],
) -> Result<Deployment, DeployError> {
    let start = Instant::now();
    for (_, o) in rendered {
        apply::apply_tenant(client, o).await?;
    }
    let mut targets = Vec::new();
    let mut instances = Vec::new();
    for (tenant, _) in rendered {
        let (pod, ip) = apply::wait_ready(client, &s.namespace(tenant), POD_TIMEOUT).await?;
        let ip: IpAddr = ip.parse().map_err(|_| DeployError::Other(format!("pod {pod} has the address `{ip}`")))?;
        targets
            .push(TenantTarget { tenant: tenant.clone(), endpoint: Endpoint::Http(SocketAddr::new(ip, DEFAULT_PORT)) });
        instances.push(InstanceInfo {
            id: format!("{}/{pod}", s.namespace(tenant)),
            tenants: vec![tenant.clone()],
            address: Some(ip),
            start_time: start.elapsed(),
            pid: None,
            limits: None,
        });
    }
    Ok(Deployment { tier, targets, instances, netns: None })
}
