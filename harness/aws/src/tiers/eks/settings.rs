//! What the AWS side of `eks-pod` reads of the tier's settings: the fields of core's `EksSpec`
//! that decide what is created, in one plain struct the rest of the module takes, so the
//! control plane, node group, identity and object code do not follow every change of the
//! scenario types ([`Settings::from_spec`] is the one place that maps them).

use isobench_core::scenario::ecs::HttpTokens;
use isobench_core::scenario::eks::{self as core_eks, EksSpec};

use crate::tags::{NAME_PREFIX, name_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// A namespace per tenant, every tenant's pods on one shared node group.
    NamespacePerTenant,
    /// A node group (one node, its own node role) per tenant; pods only on their tenant's node.
    NodePerTenant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// EKS Pod Identity: an association per tenant's service account.
    PodIdentity,
    /// IRSA: the cluster's OIDC provider and a role trusting the service account's token.
    Irsa,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The tier's name in the scenario (`eks-pod` unless named): names the cluster, so tiers
    /// of one run do not share one.
    pub label: String,
    pub pattern: Pattern,
    /// A default-deny NetworkPolicy per tenant namespace.
    pub default_deny: bool,
    pub credentials: Credentials,
    /// Templates: `{tenant}` in the namespace and service account; `{run}` and `{tenant}` in
    /// the roles.
    pub namespace: String,
    pub service_account: String,
    pub role: String,
    pub node_role: String,
    pub instance_type: String,
    /// Nodes of the shared group (the pattern's packing decided it); node-per-tenant: one per tenant.
    pub shared_nodes: u32,
    pub http_tokens_required: bool,
    pub hop_limit: u8,
    pub cpu_millis: u32,
    pub memory_mib: u32,
    /// Security groups for pods were asked for (refused on AWS for now).
    pub pod_security_groups: bool,
}

/// `{run}` and `{tenant}` filled in, as core fills the templates.
pub fn fill(template: &str, run: &str, tenant: Option<&str>) -> String {
    isobench_core::security_groups::fill(template, run, tenant)
}

/// A tier name as an EKS cluster name takes it (letters, digits, `-` and `_`).
fn label(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

impl Settings {
    /// The settings of the tier named `name` for `tenants` tenants.
    pub fn from_spec(spec: &EksSpec, name: &str, tenants: usize) -> Settings {
        Settings {
            label: label(name),
            pattern: match spec.pattern {
                core_eks::Pattern::NamespacePerTenant => Pattern::NamespacePerTenant,
                core_eks::Pattern::NodePerTenant => Pattern::NodePerTenant,
            },
            default_deny: spec.network_policy == core_eks::NetworkPolicy::DefaultDeny,
            credentials: match spec.credentials {
                core_eks::Credentials::PodIdentity => Credentials::PodIdentity,
                core_eks::Credentials::Irsa => Credentials::Irsa,
            },
            namespace: spec.namespace.clone(),
            service_account: spec.service_account.clone(),
            role: spec.role.clone(),
            node_role: spec.node.node_role.clone(),
            instance_type: spec.node.instance_type.name.to_string(),
            // The cost model's packing (pods by requests, ENI limits), so plan, guard rails
            // and cost count the same nodes.
            shared_nodes: spec.nodes(tenants),
            http_tokens_required: spec.node.http_tokens == HttpTokens::Required,
            hop_limit: spec.node.http_put_response_hop_limit,
            cpu_millis: spec.pod.cpu_millis,
            memory_mib: spec.pod.memory_mib,
            pod_security_groups: spec.security_groups.is_some(),
        }
    }

    pub fn namespace(&self, tenant: &str) -> String {
        fill(&self.namespace, "", Some(tenant))
    }
    pub fn service_account(&self, tenant: &str) -> String {
        fill(&self.service_account, "", Some(tenant))
    }
    pub fn pod_role(&self, run: &str, tenant: &str) -> String {
        fill(&self.role, run, Some(tenant))
    }
    /// The node role of the shared group (`tenant` = `None`) or of a tenant's node.
    pub fn node_role(&self, run: &str, tenant: Option<&str>) -> String {
        fill(&self.node_role, run, tenant)
    }
    /// The cluster role: one per cluster, named after it.
    pub fn cluster_role(&self, run: &str) -> String {
        format!("{}-role", self.cluster(run))
    }
    /// The cluster: `isobench-<run>-<label>`.
    pub fn cluster(&self, run: &str) -> String {
        format!("{NAME_PREFIX}{}-{}", name_id(run), self.label)
    }
    /// The node groups, each with the tenant it is for (`None`: the shared group).
    pub fn nodegroups(&self, tenants: &[String]) -> Vec<(String, Option<String>)> {
        match self.pattern {
            Pattern::NamespacePerTenant => vec![("nodes".into(), None)],
            Pattern::NodePerTenant => tenants.iter().map(|t| (format!("nodes-{t}"), Some(t.clone()))).collect(),
        }
    }
    /// Nodes in all: the shared group's, or one per tenant.
    pub fn nodes(&self, tenants: u32) -> u32 {
        match self.pattern {
            Pattern::NamespacePerTenant => self.shared_nodes.max(1),
            Pattern::NodePerTenant => tenants,
        }
    }
    /// Nodes in one group.
    pub fn group_size(&self, tenant: Option<&str>) -> u32 {
        if tenant.is_some() { 1 } else { self.shared_nodes.max(1) }
    }
}
