//! Security groups, as the EC2 and ECS tiers share them: a network interface (`[tier.network]`,
//! shaped like ECS's `awsvpcConfiguration`, which `RunInstances` takes too), the groups the
//! tier defines (`[[tier.security_group]]`), their checks, and their expansion per tenant.
//!
//! ```toml
//! [tier.network]                              # awsvpcConfiguration
//! subnets = ["private"]
//! security_groups = ["tenant-{tenant}"]       # the groups each tenant's task or instance joins
//! assign_public_ip = "DISABLED"
//!
//! [[tier.security_group]]                     # ingress rules, default deny, egress open
//! name = "tenant-{tenant}"                    # `{tenant}`: one group per tenant
//! [[tier.security_group.ingress]]
//! protocol = "tcp"                            # tcp | udp | icmp | all
//! port = 8080                                 # or from_port / to_port
//! source_group = "harness"                    # a group name, or `cidr = "10.213.0.0/16"`
//! ```
//!
//! Templates: `{tenant}` in a group name makes one group per tenant; a name without it is one
//! group for every tenant that lists it. In a rule, a templated `source_group` means the same
//! tenant's group when the rule's own group is per tenant, and every tenant's group when it is
//! shared. `harness` is the reserved group of the load generator (the harness itself). `{run}`
//! is replaced by the run id everywhere.
//!
//! Lambda tiers name groups the same way in `[tier.vpc]`, and their groups may add outbound
//! rules ([`EgressRule`], by destination range).
//!
//! One module for both tiers so that they accept, check and report the same; the local
//! backend turns [`ResolvedGroups`] into packet filters, the AWS backend into SDK calls.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::diagnostics::Checker;

/// The reserved source group that stands for the harness (the load generator and its probes).
pub const HARNESS_GROUP: &str = "harness";
/// Most security groups one network interface may have (the AWS default quota).
pub const MAX_GROUPS_PER_TASK: usize = 5;
/// Most inbound rules per security group (the AWS default quota).
pub const MAX_RULES_PER_GROUP: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AssignPublicIp {
    Enabled,
    Disabled,
}

/// `awsvpcConfiguration`: where each task's (or instance's) network interface goes and which
/// groups it joins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsvpcConfiguration {
    /// Subnet names (the AWS backend maps them to subnet ids; the local backend puts every task
    /// on the cluster bridge in the scenario's `local.subnet`).
    #[serde(default = "default_subnets")]
    pub subnets: Vec<String>,
    /// Group names (templates) each tenant's task joins.
    #[serde(default = "default_task_groups")]
    pub security_groups: Vec<String>,
    #[serde(default = "default_public_ip")]
    pub assign_public_ip: AssignPublicIp,
}

fn default_subnets() -> Vec<String> {
    vec!["private".into()]
}
fn default_task_groups() -> Vec<String> {
    vec!["tenant-{tenant}".into()]
}
fn default_public_ip() -> AssignPublicIp {
    AssignPublicIp::Disabled
}

impl Default for AwsvpcConfiguration {
    fn default() -> Self {
        AwsvpcConfiguration {
            subnets: default_subnets(),
            security_groups: default_task_groups(),
            assign_public_ip: default_public_ip(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    /// Every protocol (`IpProtocol = "-1"`).
    All,
}

/// Where an ingress rule admits traffic from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Members of a group (a template), or the harness for [`HARNESS_GROUP`].
    Group(String),
    /// An IPv4 range (`CidrIp`).
    Cidr(Ipv4Addr, u8),
}

/// One inbound rule (`IpPermission`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngressRule {
    pub protocol: Protocol,
    /// Inclusive port range; `None` for every port (and always for `icmp` and `all`).
    pub ports: Option<(u16, u16)>,
    pub source: Source,
}

impl IngressRule {
    /// TCP on `port` from the harness only.
    pub fn harness_only(port: u16) -> IngressRule {
        IngressRule { protocol: Protocol::Tcp, ports: Some((port, port)), source: Source::Group(HARNESS_GROUP.into()) }
    }
}

/// One security group (a template when its name holds `{tenant}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityGroupSpec {
    pub name: String,
    pub description: String,
    pub ingress: Vec<IngressRule>,
}

impl SecurityGroupSpec {
    pub fn per_tenant(&self) -> bool {
        self.name.contains("{tenant}")
    }
}

/// A tier's network: the interface each task or instance gets, and every group the tier
/// defines. Serialised flat into the tier's settings (`network`, `security_groups`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkSpec {
    /// The network interface: subnets and the groups (templates) it joins. `interface` here
    /// because the tier settings hold this struct as their `network`.
    #[serde(rename = "network")]
    pub interface: AwsvpcConfiguration,
    /// Every group the tier defines (templates, not yet expanded per tenant).
    pub security_groups: Vec<SecurityGroupSpec>,
}

// ---- expansion per tenant ------------------------------------------------------------------

/// One concrete security group of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedGroup {
    pub name: String,
    /// The tenant this group was made for, when its template is per tenant.
    pub tenant: Option<String>,
    /// Tenants whose task joins the group.
    pub members: Vec<String>,
    pub ingress: Vec<ResolvedRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedSource {
    /// Members of the group with this index in [`ResolvedGroups::groups`].
    Group(usize),
    /// The harness.
    Harness,
    Cidr(Ipv4Addr, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedRule {
    pub protocol: Protocol,
    pub ports: Option<(u16, u16)>,
    pub source: ResolvedSource,
}

/// Every concrete group of a run, and the groups of each tenant's task (or instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedGroups {
    pub groups: Vec<ResolvedGroup>,
    /// (tenant, indices of its groups), in tenant order. An instance serving several tenants
    /// is in the union of theirs.
    pub tasks: Vec<(String, Vec<usize>)>,
}

/// Fills `{run}`, and `{tenant}` when given, into a name template.
pub fn fill(template: &str, run: &str, tenant: Option<&str>) -> String {
    let s = template.replace("{run}", run);
    match tenant {
        Some(t) => s.replace("{tenant}", t),
        None => s,
    }
}

impl NetworkSpec {
    /// Expands the group templates for `tenants` of run `run`: one group per tenant for a
    /// templated name, one group otherwise; memberships from `interface.security_groups`; rule
    /// sources resolved to groups (see the module docs). Validation guarantees every name
    /// resolves.
    pub fn resolve(&self, run: &str, tenants: &[String]) -> ResolvedGroups {
        let mut groups: Vec<ResolvedGroup> = Vec::new();
        // (template index, tenant) -> group index
        let mut index: Vec<(usize, Option<String>, usize)> = Vec::new();
        for (ti, g) in self.security_groups.iter().enumerate() {
            let instances: Vec<Option<&str>> =
                if g.per_tenant() { tenants.iter().map(|t| Some(t.as_str())).collect() } else { vec![None] };
            for t in instances {
                index.push((ti, t.map(str::to_string), groups.len()));
                groups.push(ResolvedGroup {
                    name: fill(&g.name, run, t),
                    tenant: t.map(str::to_string),
                    members: Vec::new(),
                    ingress: Vec::new(),
                });
            }
        }
        let template_of = |name: &str| self.security_groups.iter().position(|g| g.name == name);
        let lookup = |ti: usize, tenant: Option<&str>| {
            index.iter().find(|(i, t, _)| *i == ti && (t.as_deref() == tenant || t.is_none())).map(|(_, _, g)| *g)
        };
        let mut tasks = Vec::new();
        for t in tenants {
            let mut mine = Vec::new();
            for name in &self.interface.security_groups {
                if let Some(g) = template_of(name).and_then(|ti| lookup(ti, Some(t)))
                    && !mine.contains(&g)
                {
                    mine.push(g);
                    groups[g].members.push(t.clone());
                }
            }
            tasks.push((t.clone(), mine));
        }
        for (ti, tenant, gi) in &index {
            for rule in &self.security_groups[*ti].ingress {
                let sources: Vec<ResolvedSource> = match &rule.source {
                    Source::Cidr(a, p) => vec![ResolvedSource::Cidr(*a, *p)],
                    Source::Group(name) if name == HARNESS_GROUP => vec![ResolvedSource::Harness],
                    Source::Group(name) => {
                        let Some(si) = template_of(name) else { continue };
                        match (self.security_groups[si].per_tenant(), tenant) {
                            (true, Some(t)) => lookup(si, Some(t)).map(ResolvedSource::Group).into_iter().collect(),
                            (true, None) => {
                                tenants.iter().filter_map(|t| lookup(si, Some(t))).map(ResolvedSource::Group).collect()
                            }
                            (false, _) => lookup(si, None).map(ResolvedSource::Group).into_iter().collect(),
                        }
                    }
                };
                for source in sources {
                    groups[*gi].ingress.push(ResolvedRule { protocol: rule.protocol, ports: rule.ports, source });
                }
            }
        }
        ResolvedGroups { groups, tasks }
    }
}

// ---- raw form and validation ---------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    ingress: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default = "default_protocol")]
    protocol: Protocol,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    from_port: Option<i64>,
    #[serde(default)]
    to_port: Option<i64>,
    #[serde(default)]
    source_group: Option<String>,
    #[serde(default)]
    cidr: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}

const GROUP_NAME_ACCEPTED: &str =
    "1 to 255 of A-Z, a-z, 0-9, `-`, `_`, `.`, with `{tenant}` for one group per tenant and `{run}` for the run id";

/// Checks a name template: placeholders removed, the rest is a plain name.
pub(crate) fn valid_template(s: &str, max: usize, extra: &str) -> bool {
    let bare = s.replace("{tenant}", "").replace("{run}", "");
    !s.is_empty()
        && s.len() <= max
        && !bare.contains(['{', '}'])
        && bare.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch) || extra.contains(ch))
}

impl NetworkSpec {
    /// Reads and checks a tier's `[tier.network]` and `[[tier.security_group]]`, each
    /// `default`'s when absent. Problems go to `c`, located by `at`; the result is usable only
    /// when none were added.
    pub(crate) fn parse(
        table: &toml::Table,
        default: NetworkSpec,
        at: &dyn Fn(&str) -> String,
        c: &mut Checker,
    ) -> NetworkSpec {
        let interface: AwsvpcConfiguration = c
            .section(
                table,
                "network",
                at,
                "a table with `subnets`, `security_groups` and `assign_public_ip` (ENABLED or DISABLED)",
            )
            .flatten()
            .unwrap_or(default.interface);
        let security_groups = match table.get("security_group") {
            Some(v) => parse_groups(v, at, c),
            None => default.security_groups,
        };
        let spec = NetworkSpec { interface, security_groups };
        spec.check(at, c);
        spec
    }

    /// The interface's subnets and groups exist, and every rule's source group does.
    fn check(&self, at: &dyn Fn(&str) -> String, c: &mut Checker) {
        let (network, groups) = (&self.interface, &self.security_groups);
        c.check(
            !network.subnets.is_empty() && network.subnets.iter().all(|s| valid_template(s, 255, "")),
            &at("network.subnets"),
            "every task needs at least one subnet, each a plain name",
            "e.g. `subnets = [\"private\"]`",
        );
        let known = |name: &str| groups.iter().any(|g| g.name == name);
        if network.security_groups.is_empty() || network.security_groups.len() > MAX_GROUPS_PER_TASK {
            c.fail(
                at("network.security_groups"),
                format!("{} security groups per task is out of range", network.security_groups.len()),
                format!("1 to {MAX_GROUPS_PER_TASK} group names"),
            );
        }
        for (i, name) in network.security_groups.iter().enumerate() {
            if !known(name) {
                c.fail(
                    at(&format!("network.security_groups[{i}]")),
                    format!("no [[tier.security_group]] is named `{name}`"),
                    names(groups, false),
                );
            }
        }
        for (gi, g) in groups.iter().enumerate() {
            for (ri, r) in g.ingress.iter().enumerate() {
                if let Source::Group(name) = &r.source
                    && name != HARNESS_GROUP
                    && !known(name)
                {
                    c.fail(
                        at(&format!("security_group[{gi}].ingress[{ri}].source_group")),
                        format!("no [[tier.security_group]] is named `{name}`"),
                        names(groups, true),
                    );
                }
            }
        }
    }
}

fn names(groups: &[SecurityGroupSpec], harness: bool) -> String {
    let mut n: Vec<String> = groups.iter().map(|g| format!("`{}`", g.name)).collect();
    if harness {
        n.push(format!("`{HARNESS_GROUP}`"));
    }
    if n.is_empty() { "a group defined in [[tier.security_group]]".into() } else { n.join(", ") }
}

/// The `[[tier.security_group]]` list.
fn parse_groups(v: &toml::Value, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Vec<SecurityGroupSpec> {
    let Some(list) = v.as_array() else {
        c.fail(at("security_group"), "expected a list of groups", "[[tier.security_group]] tables");
        return Vec::new();
    };
    let mut out: Vec<SecurityGroupSpec> = Vec::new();
    for (gi, raw) in list.iter().enumerate() {
        let here = |f: &str| at(&format!("security_group[{gi}]{f}"));
        let g: RawGroup = match raw.clone().try_into() {
            Ok(g) => g,
            Err(e) => {
                c.fail(here(""), e.message().trim().to_string(), "`name`, `description` and [[...ingress]] rules");
                continue;
            }
        };
        if !valid_template(&g.name, 255, "") || g.name == HARNESS_GROUP {
            c.fail(here(".name"), format!("`{}` is not a valid group name", g.name), GROUP_NAME_ACCEPTED);
        } else if out.iter().any(|o| o.name == g.name) {
            c.fail(here(".name"), format!("group `{}` is defined twice", g.name), "unique group names");
        }
        if g.ingress.len() > MAX_RULES_PER_GROUP {
            c.fail(
                here(".ingress"),
                format!("{} inbound rules", g.ingress.len()),
                format!("at most {MAX_RULES_PER_GROUP} per group"),
            );
        }
        let mut ingress = Vec::new();
        for (ri, raw) in g.ingress.iter().enumerate() {
            let field = |f: &str| here(&format!(".ingress[{ri}]{f}"));
            match raw.clone().try_into::<RawRule>() {
                Ok(r) => {
                    if let Some(rule) = validate_rule(r, &field, c) {
                        ingress.push(rule);
                    }
                }
                Err(e) => c.fail(
                    field(""),
                    e.message().trim().to_string(),
                    "`protocol`, `port` or `from_port`/`to_port`, and `source_group` or `cidr`",
                ),
            }
        }
        out.push(SecurityGroupSpec { name: g.name, description: g.description, ingress });
    }
    out
}

fn validate_rule(r: RawRule, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Option<IngressRule> {
    let port_ok = |p: i64| (0..=65535).contains(&p);
    let ports = match (r.protocol, r.port, r.from_port, r.to_port) {
        (Protocol::Icmp | Protocol::All, None, None, None) => None,
        (Protocol::Icmp | Protocol::All, ..) => {
            c.fail(at(".port"), "icmp and all rules take no ports", "omit `port`, `from_port` and `to_port`");
            return None;
        }
        (_, Some(p), None, None) if port_ok(p) => Some((p as u16, p as u16)),
        (_, None, Some(a), Some(b)) if port_ok(a) && port_ok(b) && a <= b => Some((a as u16, b as u16)),
        (_, None, None, None) => {
            c.fail(at(""), "a tcp or udp rule needs its ports", "`port = N`, or `from_port` and `to_port`");
            return None;
        }
        _ => {
            let f = if r.port.is_some() { ".port" } else { ".from_port" };
            c.fail(at(f), "invalid port range", "`port` alone, or `from_port` <= `to_port`, each 0 to 65535");
            return None;
        }
    };
    let source = match (r.source_group, r.cidr) {
        (Some(g), None) => Source::Group(g),
        (None, Some(cidr)) => match parse_cidr(&cidr) {
            Some((a, p)) => Source::Cidr(a, p),
            None => {
                c.fail(at(".cidr"), format!("`{cidr}` is not an IPv4 CIDR"), "e.g. `10.213.0.0/16`");
                return None;
            }
        },
        _ => {
            c.fail(at(""), "a rule needs exactly one source", "`source_group = \"...\"` or `cidr = \"...\"`");
            return None;
        }
    };
    Some(IngressRule { protocol: r.protocol, ports, source })
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let a: Ipv4Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok().filter(|p| *p <= 32)?;
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    (u32::from(a) & !mask == 0).then_some((a, p))
}

// ---- egress rules (Lambda tiers) -----------------------------------------------------------

/// One outbound rule (`IpPermissionsEgress`) by destination range. Only the Lambda tiers take
/// them (`[[tier.security_group.egress]]`): the EC2 and ECS tiers keep a group's default
/// outbound rule (everything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressRule {
    pub protocol: Protocol,
    /// Inclusive port range; `None` for every port.
    pub ports: Option<(u16, u16)>,
    /// An IPv4 range (`CidrIp`).
    pub destination: (Ipv4Addr, u8),
}

impl EgressRule {
    /// A group's default outbound rule: everything, anywhere.
    pub fn all() -> EgressRule {
        EgressRule { protocol: Protocol::All, ports: None, destination: (Ipv4Addr::UNSPECIFIED, 0) }
    }
}

/// Reads a group's `egress` list (rules shaped as inbound ones, with `cidr` as the
/// destination); problems go to `c`, located by `at` (`security_group[N].egress[M]...`).
pub fn parse_egress(v: &toml::Value, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Vec<EgressRule> {
    let Some(list) = v.as_array() else {
        c.fail(at(""), "expected a list of rules", "[[tier.security_group.egress]] tables");
        return Vec::new();
    };
    if list.len() > MAX_RULES_PER_GROUP {
        c.fail(at(""), format!("{} outbound rules", list.len()), format!("at most {MAX_RULES_PER_GROUP} per group"));
    }
    let mut out = Vec::new();
    for (ri, raw) in list.iter().enumerate() {
        let field = |f: &str| at(&format!("[{ri}]{f}"));
        let r: RawRule = match raw.clone().try_into() {
            Ok(r) => r,
            Err(e) => {
                c.fail(
                    field(""),
                    e.message().trim().to_string(),
                    "`protocol`, `port` or `from_port`/`to_port`, and `cidr`",
                );
                continue;
            }
        };
        if r.source_group.is_some() {
            c.fail(
                field(".source_group"),
                "an outbound rule names its destination by range",
                "`cidr = \"...\"` (a group as destination is not emulated)",
            );
            continue;
        }
        if let Some(IngressRule { protocol, ports, source: Source::Cidr(a, p) }) = validate_rule(r, &field, c) {
            out.push(EgressRule { protocol, ports, destination: (a, p) });
        }
    }
    out
}
