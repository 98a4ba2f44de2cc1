//! Settings of the `ecs-awsvpc` tier, shaped like the real task definition, the
//! `awsvpcConfiguration` of `RunTask` and the EC2 security groups, so that the same scenario can
//! later drive the AWS backend:
//!
//! ```toml
//! [[tier]]
//! id = "ecs-awsvpc"
//! launch_type = "ec2"                        # ec2 | fargate (RunTask's launchType)
//!
//! [tier.task_definition]
//! family = "isobench-tenant-app"
//! cpu = 256                                   # ECS CPU units: 1024 = one vCPU
//! memory = 512                                # MiB
//! task_role = "isobench-{run}-task-{tenant}"  # one role per tenant (taskRoleArn)
//!
//! [tier.network]                              # awsvpcConfiguration
//! subnets = ["private"]
//! security_groups = ["tenant-{tenant}"]       # the groups each tenant's task joins
//! assign_public_ip = "DISABLED"
//!
//! [[tier.security_group]]                     # ingress rules, default deny, egress open
//! name = "tenant-{tenant}"                    # `{tenant}`: one group per tenant
//! [[tier.security_group.ingress]]
//! protocol = "tcp"                            # tcp | udp | icmp | all
//! port = 8080                                 # or from_port / to_port
//! source_group = "harness"                    # a group name, or `cidr = "10.213.0.0/16"`
//!
//! [tier.container_instance]                   # ec2 launch type only
//! block_imds = false                          # ECS_AWSVPC_BLOCK_IMDS
//! http_tokens = "optional"                    # IMDS MetadataOptions.HttpTokens
//! ```
//!
//! Templates: `{tenant}` in a group name makes one group per tenant; a name without it is one
//! group for every tenant that lists it. In a rule, a templated `source_group` means the same
//! tenant's group when the rule's own group is per tenant, and every tenant's group when it is
//! shared. `harness` is the reserved group of the load generator (the harness itself). `{run}`
//! is replaced by the run id everywhere.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{Checker, TierSettings};
use crate::tier::TierId;
use crate::workload_api::DEFAULT_PORT;

pub(super) const FIELDS: &[&str] =
    &["id", "launch_type", "task_definition", "network", "security_group", "container_instance"];

/// The reserved source group that stands for the harness (the load generator and its probes).
pub const HARNESS_GROUP: &str = "harness";
/// The account id in every ARN the emulator makes up.
pub const ACCOUNT_ID: &str = "000000000000";
/// Most security groups one task's network interface may have (the AWS default quota).
pub const MAX_GROUPS_PER_TASK: usize = 5;
/// Most inbound rules per security group (the AWS default quota).
pub const MAX_RULES_PER_GROUP: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaunchType {
    Fargate,
    Ec2,
}

impl LaunchType {
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchType::Fargate => "FARGATE",
            LaunchType::Ec2 => "EC2",
        }
    }
}

/// The validated settings of the tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EcsSpec {
    pub launch_type: LaunchType,
    pub task_definition: TaskDefinition,
    pub network: AwsvpcConfiguration,
    /// Every security group the scenario defines (templates, not yet expanded per tenant).
    pub security_groups: Vec<SecurityGroupSpec>,
    /// The EC2 container instance; `None` on Fargate.
    pub container_instance: Option<ContainerInstance>,
}

/// The parts of an ECS task definition the harness uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDefinition {
    #[serde(default = "default_family")]
    pub family: String,
    /// Task CPU in ECS units (1024 = one vCPU).
    #[serde(default = "default_cpu")]
    pub cpu: u32,
    /// Task memory in MiB.
    #[serde(default = "default_memory")]
    pub memory: u32,
    /// The task role's name, templated with `{run}` and `{tenant}`.
    #[serde(default = "default_task_role")]
    pub task_role: String,
}

fn default_family() -> String {
    "isobench-tenant-app".into()
}
fn default_cpu() -> u32 {
    256
}
fn default_memory() -> u32 {
    512
}
fn default_task_role() -> String {
    "isobench-{run}-task-{tenant}".into()
}

impl Default for TaskDefinition {
    fn default() -> Self {
        TaskDefinition {
            family: default_family(),
            cpu: default_cpu(),
            memory: default_memory(),
            task_role: default_task_role(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AssignPublicIp {
    Enabled,
    Disabled,
}

/// `awsvpcConfiguration`: where each task's network interface goes and which groups it joins.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpTokens {
    /// IMDSv1 and IMDSv2 both answer.
    Optional,
    /// Only IMDSv2 (a session token from `PUT /latest/api/token`) answers.
    Required,
}

/// The EC2 container instance tasks of the `ec2` launch type share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerInstance {
    /// `ECS_AWSVPC_BLOCK_IMDS=true` in the agent's configuration: tasks cannot reach IMDS.
    #[serde(default)]
    pub block_imds: bool,
    #[serde(default = "default_http_tokens")]
    pub http_tokens: HttpTokens,
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    /// The instance profile's role, templated with `{run}`.
    #[serde(default = "default_instance_role")]
    pub instance_role: String,
}

fn default_http_tokens() -> HttpTokens {
    HttpTokens::Optional
}
fn default_instance_type() -> String {
    "m5.large".into()
}
fn default_instance_role() -> String {
    "isobench-{run}-container-instance".into()
}

impl Default for ContainerInstance {
    fn default() -> Self {
        ContainerInstance {
            block_imds: false,
            http_tokens: default_http_tokens(),
            instance_type: default_instance_type(),
            instance_role: default_instance_role(),
        }
    }
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

/// Every concrete group of a run, and the groups of each tenant's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedGroups {
    pub groups: Vec<ResolvedGroup>,
    /// (tenant, indices of its groups), in tenant order.
    pub tasks: Vec<(String, Vec<usize>)>,
}

fn fill(template: &str, run: &str, tenant: Option<&str>) -> String {
    let s = template.replace("{run}", run);
    match tenant {
        Some(t) => s.replace("{tenant}", t),
        None => s,
    }
}

impl EcsSpec {
    /// The name of `tenant`'s task role in run `run`.
    pub fn task_role(&self, run: &str, tenant: &str) -> String {
        fill(&self.task_definition.task_role, run, Some(tenant))
    }

    /// The ARN of `tenant`'s task role.
    pub fn task_role_arn(&self, run: &str, tenant: &str) -> String {
        format!("arn:aws:iam::{ACCOUNT_ID}:role/{}", self.task_role(run, tenant))
    }

    /// The container instance's role name, on the `ec2` launch type.
    pub fn instance_role(&self, run: &str) -> Option<String> {
        self.container_instance.as_ref().map(|c| fill(&c.instance_role, run, None))
    }

    /// Whether tasks reach the container instance's metadata endpoint: only on the `ec2`
    /// launch type, and only without `block_imds`.
    pub fn imds_reachable(&self) -> bool {
        self.container_instance.as_ref().is_some_and(|c| !c.block_imds)
    }

    /// Expands the group templates for `tenants` of run `run`: one group per tenant for a
    /// templated name, one group otherwise; memberships from `network.security_groups`; rule
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
            for name in &self.network.security_groups {
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
const ROLE_ACCEPTED: &str =
    "1 to 64 of A-Z, a-z, 0-9 and `+=,.@_-` once `{run}` (up to 64 characters) and `{tenant}` are filled in";

/// Checks a name template: placeholders removed, the rest is a plain name.
fn valid_template(s: &str, max: usize, extra: &str) -> bool {
    let bare = s.replace("{tenant}", "").replace("{run}", "");
    !s.is_empty()
        && s.len() <= max
        && !bare.contains(['{', '}'])
        && bare.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch) || extra.contains(ch))
}

/// Deserialises `table[key]` as `T`, recording a located problem if it does not fit.
fn section<T: serde::de::DeserializeOwned>(
    table: &toml::Table,
    key: &str,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
    accepted: &str,
) -> Option<Option<T>> {
    let Some(v) = table.get(key) else { return Some(None) };
    match v.clone().try_into() {
        Ok(t) => Some(Some(t)),
        Err(e) => {
            c.fail(at(key), e.message().trim().to_string(), accepted);
            None
        }
    }
}

/// Valid Fargate task sizes: for each CPU value, the memory range (MiB) and its step.
const FARGATE_SIZES: &[(u32, u32, u32, u32)] = &[
    (256, 512, 2048, 512),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122_880, 8192),
];

fn fargate_size_ok(cpu: u32, memory: u32) -> bool {
    // 256 CPU units take 512, 1024 or 2048 MiB (not 1536).
    if cpu == 256 {
        return [512, 1024, 2048].contains(&memory);
    }
    FARGATE_SIZES
        .iter()
        .any(|&(c, lo, hi, step)| c == cpu && (lo..=hi).contains(&memory) && (memory - lo).is_multiple_of(step))
}

pub(super) fn parse(
    _id: TierId,
    table: &toml::Table,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) -> Option<TierSettings> {
    let before = c.problems.len();
    let launch_type = match table.get("launch_type").map(|v| v.clone().try_into::<LaunchType>()) {
        Some(Ok(l)) => Some(l),
        Some(Err(_)) | None => {
            c.fail(
                at("launch_type"),
                if table.contains_key("launch_type") {
                    "unknown launch type"
                } else {
                    "the ecs-awsvpc tier needs a `launch_type`"
                },
                "`ec2` or `fargate`",
            );
            None
        }
    };
    let task_definition: TaskDefinition = section(
        table,
        "task_definition",
        at,
        c,
        "a table with `family`, `cpu` (ECS units), `memory` (MiB) and `task_role`",
    )
    .flatten()
    .unwrap_or_default();
    let network: AwsvpcConfiguration = section(
        table,
        "network",
        at,
        c,
        "a table with `subnets`, `security_groups` and `assign_public_ip` (ENABLED or DISABLED)",
    )
    .flatten()
    .unwrap_or_default();
    let container_instance: Option<ContainerInstance> = section(
        table,
        "container_instance",
        at,
        c,
        "a table with `block_imds`, `http_tokens` (optional or required), `instance_type` and `instance_role`",
    )
    .flatten();
    let security_groups = parse_groups(table, at, c);

    // Task size.
    let td = &task_definition;
    c.check(
        (128..=16384).contains(&td.cpu),
        &at("task_definition.cpu"),
        format!("{} CPU units is out of range", td.cpu),
        "128 to 16384 (1024 = one vCPU)",
    );
    c.check(
        (256..=122_880).contains(&td.memory),
        &at("task_definition.memory"),
        format!("{} MiB is out of range", td.memory),
        "256 to 122880 (MiB)",
    );
    if launch_type == Some(LaunchType::Fargate) && !fargate_size_ok(td.cpu, td.memory) {
        let sizes: Vec<String> = FARGATE_SIZES
            .iter()
            .map(|(cpu, lo, hi, step)| {
                if *cpu == 256 {
                    "256: 512, 1024 or 2048".to_string()
                } else {
                    format!("{cpu}: {lo} to {hi} in steps of {step}")
                }
            })
            .collect();
        c.fail(
            at("task_definition.memory"),
            format!("Fargate has no task size of {} CPU units with {} MiB", td.cpu, td.memory),
            format!("per CPU value, memory in MiB: {}", sizes.join("; ")),
        );
    }
    c.check(
        valid_template(&td.family, 255, "") && !td.family.contains('{'),
        &at("task_definition.family"),
        format!("`{}` is not a valid family name", td.family),
        "1 to 255 of A-Z, a-z, 0-9, `-` and `_`",
    );
    // `{run}` may take up to 64 characters, a tenant id up to 32.
    let role_len = td.task_role.replace("{run}", &"r".repeat(64)).replace("{tenant}", &"t".repeat(32)).len();
    let role_ok = valid_template(&td.task_role, 64 + 32 + 64, "+=,@") && role_len <= 64 + 64 + 32;
    c.check(
        role_ok,
        &at("task_definition.task_role"),
        format!("`{}` is not a valid role name", td.task_role),
        ROLE_ACCEPTED,
    );

    // The network configuration.
    c.check(
        !network.subnets.is_empty() && network.subnets.iter().all(|s| valid_template(s, 255, "")),
        &at("network.subnets"),
        "every task needs at least one subnet, each a plain name",
        "e.g. `subnets = [\"private\"]`",
    );
    let known = |name: &str| security_groups.iter().any(|g| g.name == name);
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
                names(&security_groups, false),
            );
        }
    }

    // Rules refer to groups that exist.
    for (gi, g) in security_groups.iter().enumerate() {
        for (ri, r) in g.ingress.iter().enumerate() {
            if let Source::Group(name) = &r.source
                && name != HARNESS_GROUP
                && !known(name)
            {
                c.fail(
                    at(&format!("security_group[{gi}].ingress[{ri}].source_group")),
                    format!("no [[tier.security_group]] is named `{name}`"),
                    names(&security_groups, true),
                );
            }
        }
    }

    match (launch_type, &container_instance) {
        (Some(LaunchType::Fargate), Some(_)) => c.fail(
            at("container_instance"),
            "Fargate tasks have no container instance (and never reach IMDS)",
            "omit [tier.container_instance], or launch_type = \"ec2\"",
        ),
        (_, Some(ci)) => {
            c.check(
                crate::instance_types::lookup(&ci.instance_type).is_some(),
                &at("container_instance.instance_type"),
                format!("unknown instance type `{}`", ci.instance_type),
                &crate::instance_types::accepted(),
            );
            c.check(
                valid_template(&ci.instance_role, 64 + 64, "+=,@") && !ci.instance_role.contains("{tenant}"),
                &at("container_instance.instance_role"),
                format!("`{}` is not a valid role name", ci.instance_role),
                "1 to 64 of A-Z, a-z, 0-9 and `+=,.@_-`, with `{run}` for the run id (no `{tenant}`: one instance serves every tenant)",
            );
        }
        _ => {}
    }
    let launch_type = launch_type?;
    if c.problems.len() > before {
        return None;
    }
    let container_instance = match launch_type {
        LaunchType::Ec2 => Some(container_instance.unwrap_or_default()),
        LaunchType::Fargate => None,
    };
    Some(TierSettings::Ecs(EcsSpec { launch_type, task_definition, network, security_groups, container_instance }))
}

fn names(groups: &[SecurityGroupSpec], harness: bool) -> String {
    let mut n: Vec<String> = groups.iter().map(|g| format!("`{}`", g.name)).collect();
    if harness {
        n.push(format!("`{HARNESS_GROUP}`"));
    }
    if n.is_empty() { "a group defined in [[tier.security_group]]".into() } else { n.join(", ") }
}

/// The `[[tier.security_group]]` list, or the default: each tenant its own group admitting only
/// the harness on the workload's port.
fn parse_groups(table: &toml::Table, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Vec<SecurityGroupSpec> {
    let Some(v) = table.get("security_group") else {
        return vec![SecurityGroupSpec {
            name: "tenant-{tenant}".into(),
            description: "one tenant's task; admits only the harness".into(),
            ingress: vec![IngressRule {
                protocol: Protocol::Tcp,
                ports: Some((DEFAULT_PORT, DEFAULT_PORT)),
                source: Source::Group(HARNESS_GROUP.into()),
            }],
        }];
    };
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::{Problem, Scenario};

    const HEAD: &str = r#"format_version = 1
name = "e"

[run]
duration = "5s"
rate = "1k"

[tenants]
count = 3
ids = ["a", "b", "c"]

[[tier]]
id = "ecs-awsvpc"
"#;

    fn spec(tier: &str) -> EcsSpec {
        let s = Scenario::parse(&format!("{HEAD}{tier}"), Path::new("e.toml")).unwrap_or_else(|e| panic!("{e}"));
        match &s.tiers[0].settings {
            TierSettings::Ecs(e) => e.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn problems(tier: &str) -> Vec<Problem> {
        Scenario::parse(&format!("{HEAD}{tier}"), Path::new("e.toml")).unwrap_err().problems
    }

    fn tenants() -> Vec<String> {
        ["a", "b", "c"].map(String::from).to_vec()
    }

    #[test]
    fn defaults_give_each_tenant_a_group_admitting_only_the_harness() {
        let s = spec("launch_type = \"ec2\"\n");
        assert_eq!(s.task_definition, TaskDefinition::default());
        assert_eq!(s.container_instance, Some(ContainerInstance::default()));
        assert!(s.imds_reachable());
        assert_eq!(s.task_role_arn("r1", "a"), "arn:aws:iam::000000000000:role/isobench-r1-task-a");
        assert_eq!(s.instance_role("r1").as_deref(), Some("isobench-r1-container-instance"));
        let r = s.resolve("r1", &tenants());
        assert_eq!(r.groups.len(), 3);
        for (i, (t, groups)) in r.tasks.iter().enumerate() {
            assert_eq!(groups, &[i]);
            let g = &r.groups[i];
            assert_eq!(g.name, format!("tenant-{t}"));
            assert_eq!(g.members, std::slice::from_ref(t));
            assert_eq!(
                g.ingress,
                [ResolvedRule {
                    protocol: Protocol::Tcp,
                    ports: Some((DEFAULT_PORT, DEFAULT_PORT)),
                    source: ResolvedSource::Harness
                }]
            );
        }
    }

    #[test]
    fn a_shared_self_referencing_group_is_expressible() {
        let s = spec(
            r#"launch_type = "fargate"
[tier.network]
security_groups = ["tenants"]
[[tier.security_group]]
name = "tenants"
[[tier.security_group.ingress]]
port = 8080
source_group = "harness"
[[tier.security_group.ingress]]
protocol = "all"
source_group = "tenants"
"#,
        );
        assert_eq!(s.container_instance, None);
        assert!(!s.imds_reachable());
        let r = s.resolve("r", &tenants());
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].members, tenants());
        assert_eq!(r.groups[0].ingress[1].source, ResolvedSource::Group(0));
        assert!(r.tasks.iter().all(|(_, g)| g == &[0]));
    }

    #[test]
    fn templated_sources_follow_their_group() {
        let s = spec(
            r#"launch_type = "ec2"
[tier.network]
security_groups = ["tenant-{tenant}", "all-tasks"]
[[tier.security_group]]
name = "tenant-{tenant}"
ingress = [{ from_port = 8000, to_port = 8100, source_group = "tenant-{tenant}" }, { port = 22, cidr = "10.213.0.0/16" }]
[[tier.security_group]]
name = "all-tasks"
ingress = [{ protocol = "udp", port = 53, source_group = "tenant-{tenant}" }]
"#,
        );
        let r = s.resolve("r", &tenants());
        assert_eq!(r.groups.len(), 4);
        // Per tenant: self-reference to the same tenant's group.
        assert_eq!(r.groups[1].ingress[0].source, ResolvedSource::Group(1));
        assert_eq!(r.groups[1].ingress[0].ports, Some((8000, 8100)));
        assert_eq!(r.groups[1].ingress[1].source, ResolvedSource::Cidr(Ipv4Addr::new(10, 213, 0, 0), 16));
        // Shared group: every tenant's group.
        let shared: Vec<_> = r.groups[3].ingress.iter().map(|r| r.source).collect();
        assert_eq!(shared, [0, 1, 2].map(ResolvedSource::Group));
        assert_eq!(r.groups[3].members, tenants());
        assert_eq!(r.tasks[2].1, [2, 3]);
    }

    #[test]
    fn errors_are_located_and_say_what_is_accepted() {
        let p = problems("launch_type = \"lambda\"\n");
        assert_eq!(p[0].field, "tier[0].launch_type");
        assert_eq!(p[0].line, Some(14));

        let p = problems("launch_type = \"fargate\"\n[tier.task_definition]\ncpu = 256\nmemory = 4096\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "tier[0].task_definition.memory");
        assert_eq!(p[0].line, Some(17));
        assert!(p[0].accepted.as_ref().unwrap().contains("256: 512, 1024 or 2048"));

        let p = problems("launch_type = \"fargate\"\n[tier.container_instance]\nblock_imds = true\n");
        assert_eq!(p[0].field, "tier[0].container_instance");

        let p = problems("launch_type = \"ec2\"\n[tier.network]\nsecurity_groups = [\"nope\"]\n");
        assert_eq!(p[0].field, "tier[0].network.security_groups[0]");
        assert!(p[0].accepted.as_ref().unwrap().contains("`tenant-{tenant}`"));

        let p = problems(
            "launch_type = \"ec2\"\n[[tier.security_group]]\nname = \"tenant-{tenant}\"\n[[tier.security_group.ingress]]\nport = 70000\nsource_group = \"harness\"\n",
        );
        assert_eq!(p[0].field, "tier[0].security_group[0].ingress[0].port");
        assert_eq!(p[0].line, Some(18));

        let p = problems(
            "launch_type = \"ec2\"\n[[tier.security_group]]\nname = \"tenant-{tenant}\"\ningress = [{ port = 1, source_group = \"ghost\" }]\n",
        );
        assert_eq!(p[0].field, "tier[0].security_group[0].ingress[0].source_group");
        assert!(p[0].accepted.as_ref().unwrap().contains("`harness`"));

        let p = problems("launch_type = \"ec2\"\n[tier.task_definition]\ncpus = 2\n");
        assert_eq!(p[0].field, "tier[0].task_definition");
        assert!(p[0].message.contains("unknown field `cpus`"), "{}", p[0].message);

        let p = problems("launch_type = \"ec2\"\nblock_imds = true\n");
        assert_eq!(p[0].field, "tier[0].block_imds");
        assert!(p[0].accepted.as_ref().unwrap().contains("`container_instance`"));

        let p = problems(
            "launch_type = \"ec2\"\n[[tier.security_group]]\nname = \"g\"\ningress = [{ protocol = \"icmp\", port = 1, cidr = \"10.0.0.0/8\" }, { port = 1, cidr = \"10.0.0.1/8\" }, { port = 1 }]\n",
        );
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"tier[0].security_group[0].ingress[0].port"), "{fields:?}");
        assert!(fields.contains(&"tier[0].security_group[0].ingress[1].cidr"), "{fields:?}");
        assert!(fields.contains(&"tier[0].security_group[0].ingress[2]"), "{fields:?}");
        // `tenant-{tenant}` is no longer defined, so the default network refers to nothing.
        assert!(fields.contains(&"tier[0].network.security_groups[0]"), "{fields:?}");
    }

    #[test]
    fn fargate_sizes() {
        assert!(fargate_size_ok(256, 512) && fargate_size_ok(256, 2048) && !fargate_size_ok(256, 1536));
        assert!(fargate_size_ok(1024, 3072) && !fargate_size_ok(1024, 1024));
        assert!(fargate_size_ok(8192, 20480) && !fargate_size_ok(8192, 17408));
        assert!(!fargate_size_ok(300, 1024));
    }
}
