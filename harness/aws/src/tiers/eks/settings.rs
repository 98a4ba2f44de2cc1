//! What the AWS side of `eks-pod` reads of the tier's settings: the fields of core's `EksSpec`
//! that decide what is created, in one plain struct the rest of the module takes, so the
//! control plane, node group, identity and object code do not follow every change of the
//! scenario types (`from_spec` is the one place that maps them).

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

/// `{run}` and `{tenant}` filled in; a run id as names take it.
pub fn fill(template: &str, run: &str, tenant: Option<&str>) -> String {
    let t = template.replace("{run}", &name_id(run));
    match tenant {
        Some(x) => t.replace("{tenant}", x),
        None => t,
    }
}

impl Settings {
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
