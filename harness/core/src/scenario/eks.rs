//! Settings of the `eks-pod` tier: one Kubernetes pod per tenant on EKS worker nodes, in the
//! isolation pattern the scenario chooses, shaped like the objects EKS and Kubernetes take so
//! the same scenario can drive the AWS backend:
//!
//! ```toml
//! [[tier]]
//! id = "eks-pod"
//! name = "eks-ns-deny"                 # optional, unique in the scenario; default: the id
//! pattern = "namespace-per-tenant"     # | "node-per-tenant" (a node, and its role, per tenant)
//! network_policy = "default-deny"      # | "none": a NetworkPolicy per tenant namespace selecting
//!                                      #   all its pods, ingress only from its namespace and the harness
//! credentials = "pod-identity"         # | "irsa": a role per tenant's service account
//! namespace = "tenant-{tenant}"
//! role = "isobench-{run}-pod-{tenant}"
//! service_account = "tenant-{tenant}"
//! [tier.node]                          # the node group(s)
//! instance_type = "m5.large"
//! count = 2                            # namespace-per-tenant only; default: as many as the pods need
//! http_tokens = "required"             # | "optional" (IMDS on the nodes)
//! http_put_response_hop_limit = 1      # 1..=64; EKS best practice: 1
//! node_role = "isobench-{run}-node"    # node-per-tenant: default "isobench-{run}-node-{tenant}"
//! [tier.pod]                           # requests = limits (Guaranteed QoS)
//! cpu = "250m"
//! memory = "256Mi"
//! [[tier.security_group]]              # optional: security groups for pods (the ECS tier's syntax)
//! name = "tenant-{tenant}"
//! ingress = [{ port = 8080, source_group = "harness" }]
//! ```
//!
//! Without `[[tier.security_group]]` or `[tier.network]` pods have no groups of their own (they
//! share the node's), and only the network policy separates tenants.

use serde::{Deserialize, Serialize};

use super::aws::Architecture;
use super::ecs::{HttpTokens, default_network, instance_architecture};
use crate::diagnostics::Checker;
use crate::instance_types::{self, InstanceType};
use crate::security_groups::{NetworkSpec, fill, valid_template};

pub(super) const FIELDS: &[&str] = &[
    "id",
    "pattern",
    "network_policy",
    "credentials",
    "namespace",
    "role",
    "service_account",
    "node",
    "pod",
    "network",
    "security_group",
];

/// How tenants' pods are laid out on nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// A namespace per tenant; every tenant's pods on one shared node group.
    NamespacePerTenant,
    /// A node (a node group with its own node role) per tenant; pods only on their tenant's node.
    NodePerTenant,
}

impl Pattern {
    pub const ACCEPTED: &str = "`namespace-per-tenant` or `node-per-tenant`";
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::NamespacePerTenant => "namespace-per-tenant",
            Pattern::NodePerTenant => "node-per-tenant",
        }
    }
}

/// The NetworkPolicy each tenant namespace gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkPolicy {
    /// No policy: Kubernetes allows all traffic between pods.
    None,
    /// A policy selecting every pod of the namespace, admitting ingress only from the same
    /// namespace and the harness: every other source is denied.
    DefaultDeny,
}

impl NetworkPolicy {
    pub const ACCEPTED: &str = "`none` or `default-deny`";
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkPolicy::None => "none",
            NetworkPolicy::DefaultDeny => "default-deny",
        }
    }
}

/// How a tenant's pod gets its role's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Credentials {
    /// EKS Pod Identity: the agent on the node's link-local address, per service account.
    PodIdentity,
    /// IAM roles for service accounts: a projected token and `AssumeRoleWithWebIdentity`.
    Irsa,
}

impl Credentials {
    pub const ACCEPTED: &str = "`pod-identity` or `irsa`";
    pub fn as_str(self) -> &'static str {
        match self {
            Credentials::PodIdentity => "pod-identity",
            Credentials::Irsa => "irsa",
        }
    }
}

/// The worker nodes: one shared group, or one node per tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeGroup {
    #[serde(serialize_with = "ser_instance_type")]
    pub instance_type: InstanceType,
    /// Fewest nodes of the shared group; `None`: as many as the pods need
    /// ([`EksSpec::nodes`]). Always `None` for node-per-tenant.
    pub count: Option<u32>,
    /// IMDS `MetadataOptions.HttpTokens` on the nodes.
    pub http_tokens: HttpTokens,
    /// IMDS `MetadataOptions.HttpPutResponseHopLimit`: how many hops the IMDSv2 token answer
    /// survives. A pod is one hop behind its node, so 1 keeps the token from pods.
    pub http_put_response_hop_limit: u8,
    /// The node role's name, templated with `{run}` (and `{tenant}` for node-per-tenant).
    pub node_role: String,
}

fn ser_instance_type<S: serde::Serializer>(t: &InstanceType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.name)
}

/// A pod's requests, equal to its limits (Guaranteed QoS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PodResources {
    /// CPU in millicores (`250m` = 250, `1` = 1000).
    pub cpu_millis: u32,
    /// Memory in MiB (`256Mi` = 256, `1Gi` = 1024).
    pub memory_mib: u32,
}

/// The validated settings of the tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EksSpec {
    pub pattern: Pattern,
    pub network_policy: NetworkPolicy,
    pub credentials: Credentials,
    /// Each tenant's namespace, templated with `{tenant}`.
    pub namespace: String,
    /// Each tenant's pod role, templated with `{run}` and `{tenant}`.
    pub role: String,
    /// Each tenant's service account, templated with `{tenant}`.
    pub service_account: String,
    pub node: NodeGroup,
    pub pod: PodResources,
    /// Security groups for pods, when the scenario asks for them (serialised flat, as
    /// `network` and `security_groups`); `None`: pods share their node's group.
    #[serde(flatten)]
    pub security_groups: Option<NetworkSpec>,
}

// ---- node sizing (modelled) ------------------------------------------------------------------

/// Where the kubelet's reservation comes from: the EKS-optimized AMI's bootstrap
/// (`get_memory_mebibytes_to_reserve`, `get_cpu_millicores_to_reserve`).
pub const RESERVATION_SOURCE: &str = "https://github.com/awslabs/amazon-eks-ami";
/// Where the pods-per-node limit comes from (the VPC CNI's max-pods formula).
pub const MAX_PODS_SOURCE: &str = "https://docs.aws.amazon.com/eks/latest/userguide/choosing-instance-type.html";
/// The kubelet's hard eviction threshold on the EKS AMI (`memory.available<100Mi`).
pub const EVICTION_HARD_MIB: u64 = 100;

/// Most pods a node of `t` holds under the VPC CNI without prefix delegation:
/// ENIs × (IPv4 addresses per ENI − 1) + 2 (the two host-network pods, `aws-node` and
/// `kube-proxy`, use the node's own address).
pub fn max_pods(t: &InstanceType) -> u32 {
    let enis = instance_types::max_network_interfaces(t.name).unwrap_or(1);
    let ips = instance_types::ipv4_per_interface(t.name).unwrap_or(1);
    enis * ips.saturating_sub(1) + 2
}

/// The kubelet's CPU reservation (`kubeReserved`) in millicores: 6% of the first core, 1% of
/// the second, 0.5% of the third and fourth, 0.25% of every further one.
pub fn kube_reserved_cpu_millis(vcpus: u32) -> u32 {
    // (cores in the band, hundredths of a percent reserved of each core's 1000 millicores)
    let bands = [(1u32, 600u32), (1, 100), (2, 50), (u32::MAX, 25)];
    let (mut left, mut reserved) = (vcpus, 0u32);
    for (cores, hundredths) in bands {
        let n = left.min(cores);
        reserved += n * 1000 * hundredths / 10_000;
        left -= n;
    }
    reserved
}

/// The kubelet's memory reservation (`kubeReserved`) in MiB: 11 MiB per pod the node may run,
/// plus 255 MiB.
pub fn kube_reserved_memory_mib(max_pods: u32) -> u64 {
    11 * u64::from(max_pods) + 255
}

/// What a node of `t` offers pods (millicores, MiB): capacity minus the kubelet's
/// reservation, and for memory the eviction threshold too. Modelled: AWS's published
/// capacity, where a real kubelet reports a little less memory.
pub fn allocatable(t: &InstanceType) -> (u32, u64) {
    let cpu = (t.vcpus * 1000).saturating_sub(kube_reserved_cpu_millis(t.vcpus));
    let memory = t.memory_mib.saturating_sub(kube_reserved_memory_mib(max_pods(t)) + EVICTION_HARD_MIB);
    (cpu, memory)
}

/// Tenant pods one node of `t` holds: the fewest of what its allocatable CPU, its allocatable
/// memory and its pod limit admit (the AMI's limit counts the two host-network pods, so they
/// are taken off).
pub fn pods_per_node(t: &InstanceType, pod: PodResources) -> u32 {
    let (cpu, memory) = allocatable(t);
    let by_cpu = cpu / pod.cpu_millis.max(1);
    let by_memory = (memory / u64::from(pod.memory_mib.max(1))) as u32;
    let by_addresses = max_pods(t).saturating_sub(2);
    by_cpu.min(by_memory).min(by_addresses)
}

/// The nodes `tenants` tenants (one pod each) need: one per tenant for node-per-tenant; else
/// the pods packed onto as few nodes as `per_node` allows, and no fewer than `count`.
pub fn nodes_for(pattern: Pattern, count: Option<u32>, per_node: u32, tenants: u64) -> u64 {
    match pattern {
        Pattern::NodePerTenant => tenants,
        Pattern::NamespacePerTenant => {
            tenants.div_ceil(u64::from(per_node.max(1))).max(u64::from(count.unwrap_or(0))).max(1)
        }
    }
}

impl EksSpec {
    /// Tenant pods one node holds ([`pods_per_node`]).
    pub fn pods_per_node(&self) -> u32 {
        pods_per_node(&self.node.instance_type, self.pod)
    }

    /// The nodes `tenants` tenants need ([`nodes_for`]).
    pub fn nodes(&self, tenants: usize) -> u32 {
        nodes_for(self.pattern, self.node.count, self.pods_per_node(), tenants as u64) as u32
    }

    /// Whether a pod reaches its node's instance role through IMDS: IMDSv1 answers any hop
    /// count; IMDSv2's token answer dies at the hop limit, and a pod is one hop behind its node.
    pub fn imds_reachable(&self) -> bool {
        self.node.http_tokens == HttpTokens::Optional || self.node.http_put_response_hop_limit >= 2
    }

    /// Whether tenants' pods share nodes (and so a kernel and a node role).
    pub fn shares_nodes(&self) -> bool {
        self.pattern == Pattern::NamespacePerTenant
    }

    /// The node role's name: one for the shared group, `tenant`'s for node-per-tenant.
    pub fn node_role(&self, run: &str, tenant: Option<&str>) -> String {
        fill(&self.node.node_role, run, tenant)
    }

    /// `tenant`'s pod role name.
    pub fn role(&self, run: &str, tenant: &str) -> String {
        fill(&self.role, run, Some(tenant))
    }

    /// The ARN of `tenant`'s pod role.
    pub fn role_arn(&self, run: &str, tenant: &str) -> String {
        format!("arn:aws:iam::{}:role/{}", super::ecs::ACCOUNT_ID, self.role(run, tenant))
    }

    pub fn namespace(&self, tenant: &str) -> String {
        fill(&self.namespace, "", Some(tenant))
    }

    pub fn service_account(&self, tenant: &str) -> String {
        fill(&self.service_account, "", Some(tenant))
    }

    /// The nodes' (and so the pods') architecture.
    pub fn architecture(&self) -> Architecture {
        instance_architecture(self.node.instance_type.name)
    }
}

// ---- raw form and validation ---------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNode {
    #[serde(default)]
    instance_type: Option<String>,
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    http_tokens: Option<String>,
    #[serde(default)]
    http_put_response_hop_limit: Option<i64>,
    #[serde(default)]
    node_role: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPod {
    #[serde(default)]
    cpu: Option<String>,
    #[serde(default)]
    memory: Option<String>,
}

const DEFAULT_INSTANCE_TYPE: &str = "m5.large";
/// EKS managed node groups' launch template default: a hop limit of 2, so pods reach IMDS.
const DEFAULT_HOP_LIMIT: u8 = 2;
const DEFAULT_CPU: &str = "250m";
const DEFAULT_MEMORY: &str = "256Mi";
const CPU_ACCEPTED: &str = "a Kubernetes CPU quantity from `10m` to `64`: millicores (`250m`) or cores (`1`, `0.5`)";
const MEMORY_ACCEPTED: &str =
    "a Kubernetes memory quantity in whole MiB from `16Mi` to `256Gi`: `256Mi`, `1Gi`, or `Ki` in whole MiB";
const ROLE_ACCEPTED: &str =
    "1 to 64 of A-Z, a-z, 0-9 and `+=,.@_-` once `{run}` (up to 64 characters) and `{tenant}` are filled in";

/// Reads one of the string enums, locating a bad or mistyped value at its own field.
fn enum_field<T: serde::de::DeserializeOwned>(
    table: &toml::Table,
    key: &str,
    default: T,
    accepted: &str,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) -> Option<T> {
    let Some(v) = table.get(key) else { return Some(default) };
    match v.clone().try_into::<T>() {
        Ok(t) => Some(t),
        Err(_) => {
            let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            c.fail(at(key), format!("`{shown}` is not a valid `{key}`"), accepted);
            None
        }
    }
}

fn string_field(table: &toml::Table, key: &str, default: &str, at: &dyn Fn(&str) -> String, c: &mut Checker) -> String {
    match table.get(key) {
        None => default.to_string(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => {
            c.fail(at(key), format!("expected a string, found `{v}`"), "a string");
            default.to_string()
        }
    }
}

pub(super) fn parse(table: &toml::Table, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Option<EksSpec> {
    let before = c.problems.len();
    let pattern = enum_field(table, "pattern", Pattern::NamespacePerTenant, Pattern::ACCEPTED, at, c);
    let network_policy = enum_field(table, "network_policy", NetworkPolicy::None, NetworkPolicy::ACCEPTED, at, c);
    let credentials = enum_field(table, "credentials", Credentials::PodIdentity, Credentials::ACCEPTED, at, c);
    let namespace = string_field(table, "namespace", "tenant-{tenant}", at, c);
    let role = string_field(table, "role", "isobench-{run}-pod-{tenant}", at, c);
    let service_account = string_field(table, "service_account", "tenant-{tenant}", at, c);
    let node_accepted =
        "a table with `instance_type`, `count`, `http_tokens`, `http_put_response_hop_limit` and `node_role`";
    let raw_node: RawNode = c.section(table, "node", at, node_accepted).flatten().unwrap_or_default();
    let raw_pod: RawPod = c.section(table, "pod", at, "a table with `cpu` and `memory`").flatten().unwrap_or_default();
    let security_groups = (table.contains_key("network") || table.contains_key("security_group"))
        .then(|| NetworkSpec::parse(table, default_network(), at, c));

    check_name(&namespace, 63, at("namespace"), c);
    check_name(&service_account, 253, at("service_account"), c);
    check_role(&role, true, at("role"), c);
    let pod = parse_pod(&raw_pod, at, c);
    let node = pattern.and_then(|p| parse_node(&raw_node, p, at, c));
    let (pattern, network_policy, credentials, node, pod) = (pattern?, network_policy?, credentials?, node?, pod?);
    if c.problems.len() > before {
        return None;
    }
    let spec =
        EksSpec { pattern, network_policy, credentials, namespace, role, service_account, node, pod, security_groups };
    let (cpu, memory) = allocatable(&spec.node.instance_type);
    if u64::from(pod.cpu_millis) > u64::from(cpu) || u64::from(pod.memory_mib) > memory {
        c.fail(
            at("pod"),
            format!(
                "a pod of {}m CPU and {} MiB does not fit on a `{}` node (allocatable: {cpu}m, {memory} MiB, modelled)",
                pod.cpu_millis, pod.memory_mib, spec.node.instance_type.name
            ),
            "smaller requests, or a larger `node.instance_type`",
        );
        return None;
    }
    Some(spec)
}

fn parse_node(raw: &RawNode, pattern: Pattern, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Option<NodeGroup> {
    let before = c.problems.len();
    let name = raw.instance_type.as_deref().unwrap_or(DEFAULT_INSTANCE_TYPE);
    let instance_type = instance_types::lookup(name);
    c.check(
        instance_type.is_some(),
        &at("node.instance_type"),
        format!("unknown instance type `{name}`"),
        &instance_types::accepted(),
    );
    let count = match (raw.count, pattern) {
        (None, _) => None,
        (Some(_), Pattern::NodePerTenant) => {
            c.fail(
                at("node.count"),
                "node-per-tenant gives every tenant its own node; `count` is for the shared pattern",
                "omit `node.count`, or pattern = \"namespace-per-tenant\"",
            );
            None
        }
        (Some(n), Pattern::NamespacePerTenant) => {
            c.check((1..=1000).contains(&n), &at("node.count"), format!("{n} nodes is out of range"), "1 to 1000");
            u32::try_from(n).ok()
        }
    };
    let http_tokens = match raw.http_tokens.as_deref() {
        None | Some("optional") => HttpTokens::Optional,
        Some("required") => HttpTokens::Required,
        Some(other) => {
            c.fail(
                at("node.http_tokens"),
                format!("`{other}` is not a valid `http_tokens`"),
                "`optional` or `required`",
            );
            HttpTokens::Optional
        }
    };
    let hop = raw.http_put_response_hop_limit.unwrap_or(i64::from(DEFAULT_HOP_LIMIT));
    c.check(
        (1..=64).contains(&hop),
        &at("node.http_put_response_hop_limit"),
        format!("hop limit {hop} is out of range"),
        "1 to 64 (EKS best practice: 1, so pods cannot use the node's IMDSv2 token)",
    );
    let per_tenant = pattern == Pattern::NodePerTenant;
    let default_role = if per_tenant { "isobench-{run}-node-{tenant}" } else { "isobench-{run}-node" };
    let node_role = raw.node_role.clone().unwrap_or_else(|| default_role.to_string());
    check_role(&node_role, per_tenant, at("node.node_role"), c);
    if c.problems.len() > before {
        return None;
    }
    Some(NodeGroup {
        instance_type: instance_type?,
        count,
        http_tokens,
        http_put_response_hop_limit: hop as u8,
        node_role,
    })
}

fn parse_pod(raw: &RawPod, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Option<PodResources> {
    let cpu = raw.cpu.as_deref().unwrap_or(DEFAULT_CPU);
    let memory = raw.memory.as_deref().unwrap_or(DEFAULT_MEMORY);
    let cpu_millis = cpu_millis(cpu).filter(|m| (10..=64_000).contains(m));
    let memory_mib = memory_mib(memory).filter(|m| (16..=256 * 1024).contains(m));
    c.check(cpu_millis.is_some(), &at("pod.cpu"), format!("`{cpu}` is not a valid pod CPU"), CPU_ACCEPTED);
    c.check(memory_mib.is_some(), &at("pod.memory"), format!("`{memory}` is not a valid pod memory"), MEMORY_ACCEPTED);
    Some(PodResources { cpu_millis: cpu_millis?, memory_mib: memory_mib? })
}

/// A Kubernetes CPU quantity in millicores: `250m`, `1`, `0.5` (at most 3 decimals).
pub fn cpu_millis(s: &str) -> Option<u32> {
    if let Some(m) = s.strip_suffix('m') {
        return digits(m)?.parse().ok();
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || (whole.is_empty() && frac.is_empty()) {
        return None;
    }
    let whole: u32 = if whole.is_empty() { 0 } else { digits(whole)?.parse().ok()? };
    let frac: u32 = if frac.is_empty() { 0 } else { format!("{:0<3}", digits(frac)?).parse().ok()? };
    whole.checked_mul(1000)?.checked_add(frac)
}

/// A Kubernetes memory quantity in whole MiB: `256Mi`, `1Gi`, `262144Ki`.
pub fn memory_mib(s: &str) -> Option<u32> {
    let (n, unit_kib): (&str, u64) = if let Some(n) = s.strip_suffix("Gi") {
        (n, 1024 * 1024)
    } else if let Some(n) = s.strip_suffix("Mi") {
        (n, 1024)
    } else if let Some(n) = s.strip_suffix("Ki") {
        (n, 1)
    } else {
        return None;
    };
    let kib = digits(n)?.parse::<u64>().ok()?.checked_mul(unit_kib)?;
    (kib % 1024 == 0).then(|| u32::try_from(kib / 1024).ok()).flatten()
}

fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// A Kubernetes name template (DNS-1123 label or subdomain) with `{tenant}` in it.
fn check_name(template: &str, max: usize, field: String, c: &mut Checker) {
    let filled = template.replace("{tenant}", &"t".repeat(32));
    let ok = template.contains("{tenant}")
        && !template.contains("{run}")
        && filled.len() <= max
        && filled.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && filled.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && filled.ends_with(|ch: char| ch.is_ascii_alphanumeric());
    c.check(
        ok,
        &field,
        format!("`{template}` is not a valid Kubernetes name template"),
        &format!(
            "lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, with `{{tenant}}` \
             (one per tenant), at most {max} characters once filled in"
        ),
    );
}

/// An IAM role name template; `per_tenant`: it must hold `{tenant}`, else must not.
fn check_role(template: &str, per_tenant: bool, field: String, c: &mut Checker) {
    let len = template.replace("{run}", &"r".repeat(64)).replace("{tenant}", &"t".repeat(32)).len();
    let ok = valid_template(template, 64 + 64 + 32, "+=,@")
        && len <= 64 + 64 + 32
        && template.contains("{tenant}") == per_tenant;
    let placeholder =
        if per_tenant { "with `{tenant}`: one per tenant" } else { "without `{tenant}`: one shared node group" };
    c.check(ok, &field, format!("`{template}` is not a valid role name"), &format!("{ROLE_ACCEPTED}; {placeholder}"));
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::{Problem, Scenario, TierSettings};

    const HEAD: &str = r#"format_version = 1
name = "k"

[run]
duration = "5s"
rate = "1k"

[tenants]
count = 3
ids = ["a", "b", "c"]

[[tier]]
id = "eks-pod"
"#;

    fn spec(tier: &str) -> EksSpec {
        let s = Scenario::parse(&format!("{HEAD}{tier}"), Path::new("k.toml")).unwrap_or_else(|e| panic!("{e}"));
        match &s.tiers[0].settings {
            TierSettings::Eks(e) => e.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn problems(tier: &str) -> Vec<Problem> {
        Scenario::parse(&format!("{HEAD}{tier}"), Path::new("k.toml")).unwrap_err().problems
    }

    #[test]
    fn defaults_are_the_out_of_the_box_cluster() {
        let s = spec("");
        assert_eq!(s.pattern, Pattern::NamespacePerTenant);
        assert_eq!(s.network_policy, NetworkPolicy::None);
        assert_eq!(s.credentials, Credentials::PodIdentity);
        assert_eq!((s.node.instance_type.name, s.node.count), ("m5.large", None));
        assert_eq!((s.node.http_tokens, s.node.http_put_response_hop_limit), (HttpTokens::Optional, 2));
        assert_eq!(s.pod, PodResources { cpu_millis: 250, memory_mib: 256 });
        assert_eq!(s.security_groups, None);
        assert!(s.imds_reachable() && s.shares_nodes());
        assert_eq!(s.node_role("r1", None), "isobench-r1-node");
        assert_eq!(s.role_arn("r1", "a"), "arn:aws:iam::000000000000:role/isobench-r1-pod-a");
        assert_eq!((s.namespace("a"), s.service_account("a")), ("tenant-a".into(), "tenant-a".into()));
        assert_eq!(s.architecture(), Architecture::X86_64);
    }

    #[test]
    fn node_per_tenant_gets_a_role_per_tenant_and_no_count() {
        let s = spec("pattern = \"node-per-tenant\"\ncredentials = \"irsa\"\n");
        assert_eq!(s.node_role("r1", Some("b")), "isobench-r1-node-b");
        assert_eq!(s.nodes(3), 3);
        assert!(!s.shares_nodes());
        let p = problems("pattern = \"node-per-tenant\"\n[tier.node]\ncount = 2\n");
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].node.count", Some(16)), "{p:?}");
        let p = problems("pattern = \"node-per-tenant\"\n[tier.node]\nnode_role = \"isobench-{run}-node\"\n");
        assert_eq!(p[0].field, "tier[0].node.node_role");
        assert!(p[0].accepted.as_ref().unwrap().contains("with `{tenant}`"), "{p:?}");
        let p = problems("[tier.node]\nnode_role = \"isobench-{run}-node-{tenant}\"\n");
        assert_eq!(p[0].field, "tier[0].node.node_role");
    }

    #[test]
    fn enums_and_limits_are_located_and_say_what_is_accepted() {
        let p = problems("pattern = \"cluster-per-tenant\"\nnetwork_policy = \"deny\"\ncredentials = \"kiam\"\n");
        let got: Vec<_> = p.iter().map(|p| (p.field.as_str(), p.line, p.accepted.as_deref().unwrap())).collect();
        assert_eq!(
            got,
            [
                ("tier[0].pattern", Some(14), Pattern::ACCEPTED),
                ("tier[0].network_policy", Some(15), NetworkPolicy::ACCEPTED),
                ("tier[0].credentials", Some(16), Credentials::ACCEPTED),
            ]
        );
        for bad in [0, 65] {
            let p = problems(&format!("[tier.node]\nhttp_put_response_hop_limit = {bad}\n"));
            assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].node.http_put_response_hop_limit", Some(15)));
        }
        assert_eq!(spec("[tier.node]\nhttp_put_response_hop_limit = 64\n").node.http_put_response_hop_limit, 64);
        let p = problems("[tier.node]\nhttp_tokens = \"v2\"\n");
        assert_eq!(p[0].accepted.as_deref(), Some("`optional` or `required`"));
        let p = problems("[tier.node]\ninstance_type = \"m5.huge\"\n");
        assert_eq!(p[0].field, "tier[0].node.instance_type");
        assert!(p[0].accepted.as_ref().unwrap().contains("`m5.large`"));
        let p = problems("[tier.node]\ncpus = 2\n");
        assert!(p[0].field == "tier[0].node" && p[0].message.contains("unknown field `cpus`"), "{p:?}");
        let p = problems("role = \"isobench-{run}-pod\"\n");
        assert_eq!(p[0].field, "tier[0].role");
        let p = problems("namespace = \"Tenant_{tenant}\"\n");
        assert_eq!(p[0].field, "tier[0].namespace");
    }

    #[test]
    fn pod_quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("1"), Some(1000));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(cpu_millis("1.25"), Some(1250));
        assert_eq!(cpu_millis(".1"), Some(100));
        for bad in ["", "m", "1.2345", "-1", "1c", "1.5m"] {
            assert_eq!(cpu_millis(bad), None, "{bad}");
        }
        assert_eq!(memory_mib("256Mi"), Some(256));
        assert_eq!(memory_mib("1Gi"), Some(1024));
        assert_eq!(memory_mib("262144Ki"), Some(256));
        for bad in ["256", "256M", "1G", "1000Ki", "1.5Gi", "Mi"] {
            assert_eq!(memory_mib(bad), None, "{bad}");
        }
        let s = spec("[tier.pod]\ncpu = \"1\"\nmemory = \"1Gi\"\n");
        assert_eq!(s.pod, PodResources { cpu_millis: 1000, memory_mib: 1024 });
        let p = problems("[tier.pod]\ncpu = \"2 cores\"\nmemory = \"512MB\"\n");
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].pod.cpu", Some(15)));
        assert_eq!((p[1].field.as_str(), p[1].line), ("tier[0].pod.memory", Some(16)));
        assert_eq!(p[0].accepted.as_deref(), Some(CPU_ACCEPTED));
        // Bigger than a node's allocatable.
        let p = problems("[tier.pod]\ncpu = \"2\"\n");
        assert_eq!(p[0].field, "tier[0].pod");
        assert!(p[0].message.contains("allocatable: 1930m"), "{p:?}");
    }

    #[test]
    fn security_groups_for_pods_use_the_ecs_tiers_checks() {
        let s = spec(
            "[[tier.security_group]]\nname = \"tenant-{tenant}\"\ningress = [{ port = 8080, source_group = \"harness\" }]\n",
        );
        let r = s.security_groups.as_ref().unwrap().resolve("r", &["a".into(), "b".into()]);
        assert_eq!(r.groups.len(), 2);
        let p = problems("[tier.network]\nsecurity_groups = [\"nope\"]\n");
        assert_eq!(p[0].field, "tier[0].network.security_groups[0]");
    }

    #[test]
    fn nodes_are_sized_as_the_eks_ami_reserves_them() {
        let m5 = instance_types::lookup("m5.large").unwrap();
        assert_eq!(max_pods(&m5), 29);
        assert_eq!(max_pods(&instance_types::lookup("t3.medium").unwrap()), 17);
        assert_eq!(max_pods(&instance_types::lookup("t3.micro").unwrap()), 4);
        assert_eq!(kube_reserved_cpu_millis(2), 70);
        assert_eq!(kube_reserved_cpu_millis(8), 90);
        assert_eq!(kube_reserved_memory_mib(29), 574);
        assert_eq!(allocatable(&m5), (1930, 8192 - 574 - 100));
        // 250m pods: CPU admits 7, memory 29, addresses 27.
        let s = spec("");
        assert_eq!(s.pods_per_node(), 7);
        assert_eq!((s.nodes(3), s.nodes(7), s.nodes(8), s.nodes(100)), (1, 1, 2, 15));
        // 100m, 64Mi pods: the address limit binds (29 - 2).
        let s = spec("[tier.pod]\ncpu = \"100m\"\nmemory = \"64Mi\"\n");
        assert_eq!(s.pods_per_node(), 19);
        let s = spec("[tier.pod]\ncpu = \"10m\"\nmemory = \"64Mi\"\n");
        assert_eq!(s.pods_per_node(), 27);
        // `count` is a floor.
        assert_eq!(spec("[tier.node]\ncount = 2\n").nodes(3), 2);
    }
}
