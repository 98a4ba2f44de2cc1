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
//! security_groups = ["tenant-{tenant}"]       # the groups each tenant's task joins
//! [[tier.security_group]]                     # the groups themselves (the default:)
//! name = "tenant-{tenant}"                    # one per tenant, admitting only the harness
//! ingress = [{ port = 8080, source_group = "harness" }]
//!
//! architecture = "arm64"                      # x86_64 | arm64 (runtimePlatform.cpuArchitecture);
//!                                             # default: [aws] architecture (on the ec2 launch
//!                                             # type: the container instance type's)
//!
//! [tier.container_instance]                   # ec2 launch type only
//! block_imds = false                          # ECS_AWSVPC_BLOCK_IMDS
//! http_tokens = "optional"                    # IMDS MetadataOptions.HttpTokens
//! ```
//!
//! The network and security groups are the EC2 tiers' too: see [`crate::security_groups`] for
//! their syntax, templates and expansion per tenant.

use serde::{Deserialize, Serialize};

use super::aws::{Architecture, tier_architecture};
use crate::diagnostics::Checker;
use crate::security_groups::{NetworkSpec, valid_template};
// The security groups were defined here before they were shared with the EC2 tiers.
pub use crate::security_groups::{
    AssignPublicIp, AwsvpcConfiguration, HARNESS_GROUP, IngressRule, MAX_GROUPS_PER_TASK, MAX_RULES_PER_GROUP,
    Protocol, ResolvedGroup, ResolvedGroups, ResolvedRule, ResolvedSource, SecurityGroupSpec, Source, fill,
};
use crate::workload_api::DEFAULT_PORT;

pub(super) const FIELDS: &[&str] =
    &["id", "launch_type", "architecture", "task_definition", "network", "security_group", "container_instance"];

/// The account id in every ARN the emulator makes up.
pub const ACCOUNT_ID: &str = "000000000000";

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
    /// Each task's network interface and the groups the tier defines (serialised flat, as
    /// `network` and `security_groups`).
    #[serde(flatten)]
    pub network: NetworkSpec,
    /// The EC2 container instance; `None` on Fargate.
    pub container_instance: Option<ContainerInstance>,
    /// The tasks' CPU architecture on AWS (`runtimePlatform.cpuArchitecture`); filled in by
    /// validation (the container instance type's, else `[aws] architecture`).
    pub architecture: Option<Architecture>,
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

    /// Expands the group templates for `tenants` of run `run` ([`NetworkSpec::resolve`]).
    pub fn resolve(&self, run: &str, tenants: &[String]) -> ResolvedGroups {
        self.network.resolve(run, tenants)
    }
}

/// The architecture of an EC2 instance type.
pub fn instance_architecture(instance_type: &str) -> Architecture {
    if crate::instance_types::is_arm64(instance_type) { Architecture::Arm64 } else { Architecture::X86_64 }
}

/// The tier's network when the scenario gives none: each tenant's task in its own group,
/// admitting only the harness on the workload's port.
pub fn default_network() -> NetworkSpec {
    NetworkSpec {
        interface: AwsvpcConfiguration::default(),
        security_groups: vec![SecurityGroupSpec {
            name: "tenant-{tenant}".into(),
            description: "one tenant's task; admits only the harness".into(),
            ingress: vec![IngressRule::harness_only(DEFAULT_PORT)],
        }],
    }
}

// ---- raw form and validation ---------------------------------------------------------------

const ROLE_ACCEPTED: &str =
    "1 to 64 of A-Z, a-z, 0-9 and `+=,.@_-` once `{run}` (up to 64 characters) and `{tenant}` are filled in";

/// Valid Fargate task sizes: for each CPU value, the memory range (MiB) and its step.
pub(crate) const FARGATE_SIZES: &[(u32, u32, u32, u32)] = &[
    (256, 512, 2048, 512),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122_880, 8192),
];

pub(crate) fn fargate_size_ok(cpu: u32, memory: u32) -> bool {
    // 256 CPU units take 512, 1024 or 2048 MiB (not 1536).
    if cpu == 256 {
        return [512, 1024, 2048].contains(&memory);
    }
    FARGATE_SIZES
        .iter()
        .any(|&(c, lo, hi, step)| c == cpu && (lo..=hi).contains(&memory) && (memory - lo).is_multiple_of(step))
}

pub(super) fn parse(table: &toml::Table, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Option<EcsSpec> {
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
    let task_definition: TaskDefinition = c
        .section(
            table,
            "task_definition",
            at,
            "a table with `family`, `cpu` (ECS units), `memory` (MiB) and `task_role`",
        )
        .flatten()
        .unwrap_or_default();
    let container_instance: Option<ContainerInstance> = c
        .section(
            table,
            "container_instance",
            at,
            "a table with `block_imds`, `http_tokens` (optional or required), `instance_type` and `instance_role`",
        )
        .flatten();
    let network = NetworkSpec::parse(table, default_network(), at, c);
    let architecture = tier_architecture(table.get("architecture"), at, c);
    check_task_definition(&task_definition, launch_type, at, c);
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
    if let Some(ci) = &container_instance {
        let own = instance_architecture(&ci.instance_type);
        if let Some(a) = architecture.filter(|a| *a != own) {
            c.fail(
                at("architecture"),
                format!(
                    "`{}` tasks cannot run on container instances of type `{}` ({})",
                    a.as_str(),
                    ci.instance_type,
                    own.as_str()
                ),
                "the container instance type's architecture (Graviton types such as `m7g.large` are arm64), \
                 or omit `architecture`",
            );
            return None;
        }
    }
    // The ec2 launch type's architecture is its instances'; Fargate's is filled in from
    // `[aws]` by the scenario's validation when not given.
    let architecture = architecture.or(container_instance.as_ref().map(|ci| instance_architecture(&ci.instance_type)));
    Some(EcsSpec { launch_type, task_definition, network, container_instance, architecture })
}

/// The task's size (and on Fargate, that Fargate offers it), family and role name.
fn check_task_definition(
    td: &TaskDefinition,
    launch_type: Option<LaunchType>,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) {
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
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use super::*;
    use crate::scenario::{Problem, Scenario, TierSettings};

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
    #[test]
    fn architecture_is_located_checked_against_the_instance_type_and_filled_in() {
        use crate::scenario::aws::Architecture;
        // Fargate: given, or `[aws] architecture`.
        assert_eq!(
            spec("launch_type = \"fargate\"\narchitecture = \"arm64\"\n").architecture,
            Some(Architecture::Arm64)
        );
        assert_eq!(spec("launch_type = \"fargate\"\n").architecture, Some(Architecture::X86_64));
        let s = Scenario::parse(
            &format!("{HEAD}launch_type = \"fargate\"\n[aws]\narchitecture = \"arm64\"\n"),
            Path::new("e.toml"),
        )
        .unwrap();
        let TierSettings::Ecs(e) = &s.tiers[0].settings else { panic!("ecs") };
        assert_eq!(e.architecture, Some(Architecture::Arm64));
        // The ec2 launch type: the instances' own.
        let graviton = "launch_type = \"ec2\"\n[tier.container_instance]\ninstance_type = \"m7g.large\"\n";
        assert_eq!(spec(graviton).architecture, Some(Architecture::Arm64));
        let p = problems("launch_type = \"ec2\"\narchitecture = \"arm64\"\n");
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].architecture", Some(15)), "{p:?}");
        assert!(p[0].message.contains("`m5.large` (x86_64)"), "{p:?}");
        let p = problems("launch_type = \"fargate\"\narchitecture = \"aarch64\"\n");
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].architecture", Some(15)), "{p:?}");
        assert_eq!(p[0].accepted.as_deref(), Some("`x86_64` or `arm64`"));
    }
}
