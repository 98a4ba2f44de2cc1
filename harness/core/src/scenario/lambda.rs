//! Settings of the three Lambda tiers, as a function configuration: memory size, timeout,
//! the idle keep-alive of execution environments (fixed or a range drawn per environment) and
//! their maximum lifetime, the emulator's per-function concurrency cap and the function's
//! reserved concurrency, and optionally the user's own code (a `bootstrap` file, a directory or
//! a zip holding one) and how its
//! successful payloads are read (`response`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::aws::{Architecture, tier_architecture};
use crate::diagnostics::Checker;
use crate::security_groups::{EgressRule, NetworkSpec, SecurityGroupSpec, parse_egress};
use crate::units::{Dur, DurRange, parse_duration, parse_duration_range};

pub(super) const FIELDS: &[&str] = &[
    "id",
    "memory",
    "timeout",
    "keep_alive",
    "max_lifetime",
    "concurrency",
    "reserved_concurrency",
    "architecture",
    "code",
    "handler",
    "environment",
    "response",
    "vpc",
    "security_group",
];

/// Lambda keeps at least this much of the account's concurrency unreserved: "You can reserve
/// up to the Unreserved account concurrency value minus 100" (Lambda developer guide,
/// "Configuring reserved concurrency for a function").
pub const MIN_UNRESERVED: u32 = 100;
/// The account's concurrency when the scenario does not say (`[local]
/// lambda_account_concurrency`): Lambda's default quota per Region.
pub const DEFAULT_ACCOUNT_CONCURRENCY: u32 = 1000;

/// One Lambda function configuration (per tenant, shared, or in tenant isolation mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaSpec {
    /// Memory size in MB (128 to 10240); sets the memory limit and a CPU share in proportion
    /// (one vCPU at 1,769 MB).
    #[serde(default = "default_memory")]
    pub memory: u32,
    /// Function timeout.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// Idle time after which an environment is shut down: fixed (`"10m"`) or a range
    /// (`"5m..15m"`) from which each environment draws its own, from the run's seed.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: DurRange,
    /// Age after which an idle environment is shut down (recycled) whatever its keep-alive, as
    /// Lambda recycles environments after some hours; none when unset.
    #[serde(default)]
    pub max_lifetime: Option<Dur>,
    /// The emulator's cap on one function's concurrent invocations (not an AWS setting: on
    /// Lambda only the account pool and reserved concurrency bound a function); invokes beyond
    /// it are throttled with reason `function`.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// The function's reserved concurrency: taken from the account pool for this function
    /// alone, and its maximum (invokes beyond are throttled with reason `reserved`). In
    /// `lambda-per-tenant` every tenant's function reserves this much.
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// The function's architecture on AWS (`Architectures`); the scenario's `[aws]
    /// architecture` when not given (validation fills it in). The emulator runs the host's.
    #[serde(default, skip_deserializing)]
    pub architecture: Option<Architecture>,
    /// The function's code instead of the sample workload: an executable `bootstrap`, a
    /// directory holding one, or a zip holding one. Relative to the scenario file's directory.
    #[serde(default)]
    pub code: Option<PathBuf>,
    /// The handler name passed as `_HANDLER`.
    #[serde(default = "default_handler")]
    pub handler: String,
    /// Extra environment variables of the function.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// How a successful invoke's payload is read; `None` takes the default of the code
    /// ([`LambdaSpec::response`]). Parsing fills the default in, so the effective scenario in
    /// `summary.json` says which contract the run used.
    #[serde(default)]
    pub response: Option<PayloadContract>,
    /// The function's VPC configuration (`[tier.vpc]` and `[[tier.security_group]]`): its
    /// environments' egress follows the groups' outbound rules instead of reaching the run's
    /// emulated internet. Read apart by [`parse`].
    #[serde(default, skip_deserializing)]
    pub vpc: Option<LambdaVpc>,
}

/// A function's VPC configuration (Lambda's `VpcConfig`): subnets and the security groups its
/// environments' interfaces join, in the form an ECS task's `awsvpcConfiguration` takes, and
/// the groups' outbound rules. Lambda accepts no inbound connection whatever the groups' inbound
/// rules say (they are kept, and have no effect on the function).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LambdaVpc {
    #[serde(flatten)]
    pub network: NetworkSpec,
    /// Outbound rules by group name (template); a group without `egress` has AWS's default
    /// outbound rule (everything).
    pub egress: BTreeMap<String, Vec<EgressRule>>,
}

impl LambdaVpc {
    /// The outbound rules every environment of the tier has: those of each group its interface
    /// joins (a rule's destination is a range, so they are the same for every tenant).
    pub fn egress_rules(&self) -> Vec<EgressRule> {
        let mut out: Vec<EgressRule> = Vec::new();
        for g in &self.network.interface.security_groups {
            let rules = self.egress.get(g).cloned().unwrap_or_else(|| vec![EgressRule::all()]);
            for r in rules {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out
    }
}

/// The VPC network when `[tier.vpc]` names no groups: each tenant's function in a group of its
/// own, with no inbound rule and the default outbound rule.
fn default_vpc_network() -> NetworkSpec {
    NetworkSpec {
        interface: Default::default(),
        security_groups: vec![SecurityGroupSpec {
            name: "tenant-{tenant}".into(),
            description: "a tenant's function".into(),
            ingress: Vec::new(),
        }],
    }
}

/// `[tier.vpc]` and `[[tier.security_group]]` (with their `egress` lists), or `None` without
/// a `vpc` table (then groups are refused: they mean nothing outside a VPC).
fn parse_vpc(
    vpc: Option<toml::Value>,
    groups: Option<toml::Value>,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) -> Option<LambdaVpc> {
    let Some(vpc) = vpc else {
        if groups.is_some() {
            c.fail(at("security_group"), "security groups need a VPC", "a [tier.vpc] table naming them");
        }
        return None;
    };
    let mut table = toml::Table::new();
    table.insert("network".into(), vpc);
    let mut egress = BTreeMap::new();
    if let Some(mut groups) = groups {
        if let Some(list) = groups.as_array_mut() {
            for (gi, g) in list.iter_mut().enumerate() {
                let Some(t) = g.as_table_mut() else { continue };
                let name = t.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
                if let Some(rules) = t.remove("egress") {
                    let here = |f: &str| at(&format!("security_group[{gi}].egress{f}"));
                    egress.insert(name, parse_egress(&rules, &here, c));
                }
            }
        }
        table.insert("security_group".into(), groups);
    }
    let at_vpc = |f: &str| match f.strip_prefix("network") {
        Some(rest) => at(&format!("vpc{rest}")),
        None => at(f),
    };
    let network = NetworkSpec::parse(&table, default_vpc_network(), &at_vpc, c);
    Some(LambdaVpc { network, egress })
}

/// What a function's successful payload means to the caller (the scenario's `response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadContract {
    /// The sample workload's response document (`{"status": 200, "body": ...}`): its `status`
    /// decides ok or error, as an HTTP answer's does (`response = "workload"`).
    #[serde(rename = "workload")]
    WorkloadStatus,
    /// Any payload, JSON or not, is ok: a successful invoke is a success, as for a Lambda
    /// caller (`response = "any"`). Function errors are still errors.
    #[serde(rename = "any")]
    Opaque,
}

impl LambdaSpec {
    /// The scenario's `response`, else the default of the code: the sample workload's status
    /// document when the tier runs it, any payload when it runs the user's `code`.
    pub fn response(&self) -> PayloadContract {
        self.response.unwrap_or(if self.code.is_some() {
            PayloadContract::Opaque
        } else {
            PayloadContract::WorkloadStatus
        })
    }
}

/// Environment variables a function's configuration may not set: Lambda reserves them
/// ("Defined runtime environment variables" in the Lambda developer guide).
pub const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

fn default_memory() -> u32 {
    512
}
fn default_timeout() -> Dur {
    Dur(Duration::from_secs(3))
}
fn default_keep_alive() -> DurRange {
    DurRange::fixed(Duration::from_secs(600))
}
fn default_concurrency() -> u32 {
    100
}
fn default_handler() -> String {
    "bootstrap".into()
}

/// What `response` accepts, for the located problem.
const RESPONSE_ACCEPTED: &str = "`workload` (the sample workload's status document) or `any` (any payload is ok)";

impl Default for LambdaSpec {
    fn default() -> Self {
        LambdaSpec {
            memory: default_memory(),
            timeout: default_timeout(),
            keep_alive: default_keep_alive(),
            max_lifetime: None,
            concurrency: default_concurrency(),
            reserved_concurrency: None,
            architecture: None,
            code: None,
            handler: default_handler(),
            environment: BTreeMap::new(),
            response: None,
            vpc: None,
        }
    }
}

/// `base` is the scenario file's directory, which a relative `code` is read from.
pub(super) fn parse(
    table: &toml::Table,
    base: &Path,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) -> Option<LambdaSpec> {
    let mut fields = table.clone();
    fields.remove("id");
    // Checked apart, so a bad value is located at its own line with what is accepted.
    let response = match fields.remove("response") {
        None => None,
        Some(v) => match v.as_str() {
            Some("workload") => Some(PayloadContract::WorkloadStatus),
            Some("any") => Some(PayloadContract::Opaque),
            _ => {
                let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                c.fail(at("response"), format!("`{shown}` is not a response contract"), RESPONSE_ACCEPTED);
                None
            }
        },
    };
    let vpc = parse_vpc(fields.remove("vpc"), fields.remove("security_group"), at, c);
    let architecture = tier_architecture(fields.remove("architecture").as_ref(), at, c);
    // Durations checked here, so that a bad one is reported at its own field (and line).
    for (key, range) in [("keep_alive", true), ("max_lifetime", false)] {
        let Some(v) = fields.get(key) else { continue };
        let text = v.as_str().unwrap_or_default();
        let parsed = if range { parse_duration_range(text).map(|_| ()) } else { parse_duration(text).map(|_| ()) };
        if let Err(e) = parsed {
            let message = if v.is_str() {
                format!("`{text}` is not valid: {}", e.reason)
            } else {
                format!("{v} is not a string")
            };
            c.fail(at(key), message, e.accepted);
            fields.remove(key);
        }
    }
    let spec: LambdaSpec = match toml::Value::Table(fields).try_into() {
        Ok(s) => LambdaSpec { response, vpc, architecture, ..s },
        Err(e) => {
            c.fail(at(""), e.message().to_string(), "see the Lambda fields in scenarios/lambda.toml");
            return None;
        }
    };
    c.check(
        (128..=10240).contains(&spec.memory),
        &at("memory"),
        format!("{} MB is out of range", spec.memory),
        "128 to 10240 (MB)",
    );
    c.check(
        spec.timeout.0 > Duration::ZERO && spec.timeout.0 <= Duration::from_secs(900),
        &at("timeout"),
        format!("timeout {} is out of range", spec.timeout),
        "more than 0s and at most 15m",
    );
    c.check(
        spec.keep_alive.min > Duration::ZERO,
        &at("keep_alive"),
        "keep-alive must be more than 0s",
        "a duration (`10m`) or a range (`5m..15m`), more than 0s",
    );
    if let Some(m) = spec.max_lifetime {
        c.check(m.0 > Duration::ZERO, &at("max_lifetime"), "a maximum lifetime must be more than 0s", "e.g. `2h`");
    }
    c.check((1..=10_000).contains(&spec.concurrency), &at("concurrency"), "out of range", "1 to 10000");
    if let Some(r) = spec.reserved_concurrency {
        c.check(
            r <= spec.concurrency,
            &at("reserved_concurrency"),
            format!("reserved concurrency {r} is above the function's cap `concurrency` = {}", spec.concurrency),
            "at most `concurrency` (raise `concurrency` too)",
        );
    }
    let spec = LambdaSpec { response: Some(spec.response()), ..spec };
    // Relative to the scenario, as a trace file is, so a scenario runs from any directory.
    let spec = LambdaSpec { code: spec.code.as_ref().map(|p| base.join(p)), ..spec };
    for key in spec.environment.keys() {
        let valid = key.len() >= 2
            && key.starts_with(|c: char| c.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        c.check(
            valid,
            &at(&format!("environment.{key}")),
            format!("`{key}` is not a valid environment variable name"),
            "a letter followed by letters, digits and `_` (Lambda's rule)",
        );
        c.check(
            !RESERVED_ENV.contains(&key.as_str()),
            &at(&format!("environment.{key}")),
            format!("`{key}` is reserved: Lambda sets it"),
            "any name but the reserved ones",
        );
    }
    if let Some(code) = &spec.code
        && !code.exists()
    {
        c.fail(
            at("code"),
            format!("`{}` does not exist", code.display()),
            "an executable bootstrap, a directory or a zip holding one",
        );
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use crate::scenario::{Scenario, TierSettings};

    #[test]
    fn lambda_tiers_parse_and_check_ranges() {
        let src = r#"
format_version = 1
name = "l"
[run]
duration = "1s"
rate = "10"
[tenants]
count = 2
[[tier]]
id = "lambda-shared"
memory = 1769
keep_alive = "300ms"
"#;
        let s = Scenario::parse(src, std::path::Path::new("l.toml")).unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        assert_eq!(l.memory, 1769);
        assert_eq!(l.concurrency, 100);
        let e = Scenario::parse(&src.replace("1769", "64"), std::path::Path::new("l.toml")).unwrap_err();
        assert_eq!(e.problems[0].field, "tier[0].memory");
        assert_eq!(e.problems[0].line, Some(11));
    }

    fn problems(src: &str) -> Vec<crate::diagnostics::Problem> {
        Scenario::parse(src, std::path::Path::new("l.toml")).unwrap_err().problems
    }

    const TIER: &str = "format_version = 1\nname = \"l\"\n[run]\nduration = \"1s\"\nrate = 10\n[tenants]\ncount = 4\n\
                        [[tier]]\nid = \"lambda-per-tenant\"\n";

    #[test]
    fn keep_alive_takes_a_duration_or_a_range_and_max_lifetime_a_duration() {
        let s = Scenario::parse(
            &format!("{TIER}keep_alive = \"5m..15m\"\nmax_lifetime = \"2h\"\n"),
            std::path::Path::new("l.toml"),
        )
        .unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        assert_eq!((l.keep_alive.min.as_secs(), l.keep_alive.max.as_secs()), (300, 900));
        assert_eq!(l.max_lifetime.map(|d| d.0.as_secs()), Some(7200));
        let p = problems(&format!("{TIER}keep_alive = \"15m..5m\"\n"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].keep_alive", Some(10)));
        assert!(p[0].message.contains("lower end is above"), "{p:?}");
        assert!(p[0].accepted.as_deref().unwrap_or("").contains("`5m..15m`"), "{p:?}");
        let p = problems(&format!("{TIER}keep_alive = \"5m..15\"\nmax_lifetime = \"0s\"\n"));
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].keep_alive", Some(10)));
        assert!(p[0].message.contains("unit is missing"), "{p:?}");
        assert_eq!((p[1].field.as_str(), p[1].line), ("tier[0].max_lifetime", Some(11)));
        let p = problems(&format!("{TIER}max_lifetime = 7200\n"));
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].max_lifetime", Some(10)));
        assert!(p[0].accepted.as_deref().unwrap_or("").contains("unit"), "{p:?}");
    }

    #[test]
    fn vpc_settings_name_groups_as_ecs_tasks_do_with_outbound_rules() {
        use crate::security_groups::{EgressRule, Protocol};
        let vpc = format!(
            "{TIER}[tier.vpc]\nsubnets = [\"private\"]\nsecurity_groups = [\"fn-{{tenant}}\", \"shared\"]\n\
             [[tier.security_group]]\nname = \"fn-{{tenant}}\"\n\
             [[tier.security_group.egress]]\nport = 8080\ncidr = \"10.213.0.0/16\"\n\
             [[tier.security_group]]\nname = \"shared\"\n\
             [[tier.security_group.egress]]\nprotocol = \"udp\"\nfrom_port = 53\nto_port = 53\ncidr = \"10.213.0.2/32\"\n"
        );
        let s = Scenario::parse(&vpc, std::path::Path::new("l.toml")).unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        let v = l.vpc.as_ref().expect("a VPC");
        assert_eq!(v.network.interface.security_groups, ["fn-{tenant}", "shared"]);
        let rules = v.egress_rules();
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(rules[0].ports, Some((8080, 8080)));
        assert_eq!((rules[1].protocol, rules[1].destination.1), (Protocol::Udp, 32));
        // A group without outbound rules has the default one (everything).
        let open = vpc.replace("[[tier.security_group.egress]]\nport = 8080\ncidr = \"10.213.0.0/16\"\n", "");
        let s = Scenario::parse(&open, std::path::Path::new("l.toml")).unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        assert!(l.vpc.as_ref().unwrap().egress_rules().contains(&EgressRule::all()));
        // No VPC: no groups, and the default (the run's internet) applies.
        let TierSettings::Lambda(l) = &Scenario::parse(TIER, std::path::Path::new("l.toml")).unwrap().tiers[0].settings
        else {
            panic!("lambda settings")
        };
        assert!(l.vpc.is_none());

        // Problems, each at its own field and line.
        let p = problems(&vpc.replace("security_groups = [\"fn-{tenant}\", ", "security_groups = [\"nope\", "));
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].vpc.security_groups[0]", Some(12)), "{p:?}");
        let p = problems(&vpc.replace("cidr = \"10.213.0.0/16\"", "source_group = \"shared\""));
        assert_eq!(
            (p[0].field.as_str(), p[0].line),
            ("tier[0].security_group[0].egress[0].source_group", Some(17)),
            "{p:?}"
        );
        let p = problems(&vpc.replace("port = 8080", "port = 70000"));
        assert_eq!(p[0].field, "tier[0].security_group[0].egress[0].port", "{p:?}");
        let p = problems(&format!("{TIER}[[tier.security_group]]\nname = \"g\"\n"));
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].security_group", Some(10)), "{p:?}");
        assert!(p[0].accepted.as_deref().unwrap_or("").contains("[tier.vpc]"), "{p:?}");
    }

    #[test]
    fn the_commented_vpc_of_the_shipped_lambda_scenario_parses_when_uncommented() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/lambda.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let (head, rest) = text.split_once("# --- vpc ---\n").expect("the vpc block");
        let (block, tail) = rest.split_once("# --- end vpc ---\n").expect("its end");
        let block: String = block.lines().map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l))).collect();
        let s = Scenario::parse(&format!("{head}{block}{tail}"), &path).unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        let rules = l.vpc.as_ref().expect("a VPC on the first tier").egress_rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].ports, Some((80, 80)));
        assert!(matches!(&s.tiers[1].settings, TierSettings::Lambda(l) if l.vpc.is_none()));
    }

    #[test]
    fn reserved_concurrency_leaves_100_of_the_account_unreserved() {
        // Four per-tenant functions reserving 225 each take 900 of 1,000: allowed (100 left).
        let ok = format!("{TIER}reserved_concurrency = 225\nconcurrency = 300\n");
        let s = Scenario::parse(&ok, std::path::Path::new("l.toml")).unwrap();
        assert_eq!(s.local.lambda_account_concurrency, 1000);
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        assert_eq!(l.reserved_concurrency, Some(225));
        let p = problems(&ok.replace("225", "226"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].reserved_concurrency", Some(10)));
        assert!(p[0].message.contains("904 of the account's 1000"), "{p:?}");
        assert!(p[0].accepted.as_deref().unwrap_or("").contains("at most 900"), "{p:?}");
        // A larger account makes room.
        let bigger = format!("{}\n[local]\nlambda_account_concurrency = 2000\n", ok.replace("225", "226"));
        assert_eq!(
            Scenario::parse(&bigger, std::path::Path::new("l.toml")).unwrap().local.lambda_account_concurrency,
            2000
        );
        // Above the function's own cap.
        let p = problems(&format!("{TIER}reserved_concurrency = 150\n"));
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].reserved_concurrency", Some(10)));
        assert!(p[0].accepted.as_deref().unwrap_or("").contains("`concurrency`"), "{p:?}");
        let p = problems(&format!("{TIER}\n[local]\nlambda_account_concurrency = 0\n"));
        assert_eq!((p[0].field.as_str(), p[0].line), ("local.lambda_account_concurrency", Some(12)));
    }

    #[test]
    fn architecture_is_located_and_defaults_to_the_run_wide_one() {
        use crate::scenario::aws::Architecture;
        let arch = |src: &str| {
            let s = Scenario::parse(src, std::path::Path::new("l.toml")).unwrap_or_else(|e| panic!("{e}"));
            let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
            l.architecture
        };
        assert_eq!(arch(TIER), Some(Architecture::X86_64));
        assert_eq!(arch(&format!("{TIER}architecture = \"arm64\"\n")), Some(Architecture::Arm64));
        assert_eq!(arch(&format!("{TIER}\n[aws]\narchitecture = \"arm64\"\n")), Some(Architecture::Arm64));
        let p = problems(&format!("{TIER}architecture = \"arm\"\n"));
        assert_eq!((p[0].field.as_str(), p[0].line), ("tier[0].architecture", Some(10)), "{p:?}");
        assert!(p[0].message.contains("`arm` is not an architecture"), "{p:?}");
    }
}

#[cfg(test)]
mod response_tests {
    use std::path::Path;

    use super::PayloadContract;
    use crate::scenario::{Scenario, TierSettings};

    const SRC: &str = "format_version = 1\nname = \"l\"\n[run]\nduration = \"1s\"\nrate = 10\n[tenants]\ncount = 2\n\
                       [[tier]]\nid = \"lambda-shared\"\n";

    fn response(extra: &str) -> (Option<PayloadContract>, PayloadContract) {
        let s = Scenario::parse(&format!("{SRC}{extra}"), Path::new("l.toml")).unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        (l.response, l.response())
    }

    #[test]
    fn the_response_contract_defaults_by_code_and_can_be_set() {
        assert_eq!(response("").1, PayloadContract::WorkloadStatus, "the sample workload's document");
        // `code` must exist (it is staged at deploy): any file will do here.
        let code = format!("code = \"{}/Cargo.toml\"\n", env!("CARGO_MANIFEST_DIR"));
        assert_eq!(
            response(&code),
            (Some(PayloadContract::Opaque), PayloadContract::Opaque),
            "the user's code: any payload, filled in for the effective scenario"
        );
        assert_eq!(
            response(&format!("{code}response = \"workload\"\n")).1,
            PayloadContract::WorkloadStatus,
            "the user's code may speak the workload's document"
        );
        assert_eq!(response("response = \"any\"\n").1, PayloadContract::Opaque);
    }

    #[test]
    fn a_relative_code_path_is_read_from_the_scenario_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let src = format!("{SRC}code = \"src/lib.rs\"\n");
        let s = Scenario::parse(&src, &dir.join("s.toml")).unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        assert_eq!(l.code.as_deref(), Some(dir.join("src/lib.rs").as_path()));
        let e = Scenario::parse(&src, &dir.join("src/s.toml")).unwrap_err();
        assert!(e.problems[0].message.contains("src/src/lib.rs` does not exist"), "{e}");
    }

    #[test]
    fn a_bad_response_is_located_with_what_is_accepted() {
        for bad in ["\"json\"", "1"] {
            let e = Scenario::parse(&format!("{SRC}response = {bad}\n"), Path::new("l.toml")).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            let p = &e.problems[0];
            assert_eq!((p.field.as_str(), p.line), ("tier[0].response", Some(10)), "{e}");
            assert!(
                p.message.contains("is not a response contract")
                    && p.accepted.as_deref().is_some_and(|a| a.contains("`any`")),
                "{e}"
            );
        }
    }
}

#[cfg(test)]
mod environment_tests {
    use std::path::Path;

    use crate::scenario::Scenario;

    #[test]
    fn reserved_and_malformed_environment_names_are_refused() {
        let src = "format_version = 1\nname = \"l\"\n[run]\nduration = \"1s\"\nrate = 10\n[tenants]\ncount = 2\n\
                   [[tier]]\nid = \"lambda-per-tenant\"\n[tier.environment]\nAWS_REGION = \"eu-west-1\"\n\
                   \"1BAD\" = \"x\"\nGOOD_ONE = \"y\"\n";
        let e = Scenario::parse(src, Path::new("l.toml")).unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(e.problems.iter().any(|p| p.message.contains("`AWS_REGION` is reserved")), "{e}");
        assert!(e.problems.iter().any(|p| p.message.contains("`1BAD` is not a valid")), "{e}");
        assert!(e.problems.iter().all(|p| p.line.is_some()), "located: {e}");
    }
}
