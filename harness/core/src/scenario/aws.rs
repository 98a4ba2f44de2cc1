//! `[aws]`: settings of the AWS backend, and the guard rails checked before anything is created.
//!
//! ```toml
//! [aws]
//! region = "eu-west-1"          # default: from the profile or AWS_REGION
//! architecture = "arm64"        # x86_64 (default) or arm64
//! harness_cidr = "203.0.113.7/32"  # where the harness's traffic comes from
//! vpc_id = "vpc-0abc"           # an existing VPC, with subnet_ids; default: the run makes one
//! subnet_ids = ["subnet-0def"]
//! max_instances = 4             # guard rails
//! max_tasks = 20
//! max_functions = 20
//! max_cost_usd = 5.0
//! max_lifetime = "2h"           # every resource's isobench:expires-at is start + this
//!
//! [aws.agents]                  # load agents as Fargate tasks in the run's VPC (default: none)
//! count = 2                     # or per_agent_rate: count = ceil(run.rate / per_agent_rate)
//! per_agent_rate = 20000
//! cpu = 1024                    # Fargate task size: CPU units and MiB
//! memory = 2048
//! architecture = "x86_64"       # default: [aws] architecture
//! ```

use serde::{Deserialize, Serialize};

use crate::units::Dur;

/// The CPU architecture instances, tasks and functions run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    Arm64,
}

impl Architecture {
    /// Lambda's and EC2's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// The Rust target the workload is built for: static musl binaries run on Amazon Linux 2023
    /// whatever the build host's glibc is.
    pub fn default_rust_target(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64-unknown-linux-musl",
            Architecture::Arm64 => "aarch64-unknown-linux-musl",
        }
    }
}

/// The validated `[aws]` section; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSpec {
    /// Region; `None`: the SDK's default chain (AWS_REGION, the profile).
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default = "default_architecture")]
    pub architecture: Architecture,
    /// The Rust target triple to build the workload for; default by architecture (musl).
    #[serde(default)]
    pub rust_target: Option<String>,
    /// Where the harness's traffic comes from: rules whose source is `harness` admit this range.
    /// `None`: they admit members of a run-made `harness` security group (a harness in the VPC).
    #[serde(default)]
    pub harness_cidr: Option<String>,
    /// An existing VPC to deploy into (with `subnet_ids`); `None`: the run makes its own.
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// Existing subnets, in the order of the scenario's subnet names.
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    /// Guard rail: most EC2 instances the run may start at once.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Guard rail: most ECS tasks.
    #[serde(default = "default_max_tasks")]
    pub max_tasks: u32,
    /// Guard rail: most Lambda functions.
    #[serde(default = "default_max_functions")]
    pub max_functions: u32,
    /// Guard rail: most projected cost of the run in US dollars.
    #[serde(default = "default_max_cost_usd")]
    pub max_cost_usd: f64,
    /// Guard rail and tag: resources expire this long after the run starts; `sweep` removes
    /// expired ones.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: Dur,
    /// Load agents on Fargate; `None`: traffic comes from where the harness runs (and the
    /// effective scenario in `summary.json` stays as it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentsSpec>,
}

/// The requests per second one agent is planned for when the scenario gives no `count`:
/// one core of the development machine kept generator lag p99 under 1 ms at every rate up to
/// 20k req/s as an ordinary process when this was set. Its own lag now stays that low up to 104k
/// (results/bench/generators/normal-priority; 128k at real-time priority), but this stays at
/// 20k, unmeasured on Fargate: a 1-vCPU task's cores are slower and shared with probes.
pub const DEFAULT_PER_AGENT_RATE: f64 = 20_000.0;

/// `[aws.agents]`: how many load agents run as Fargate tasks, and how big.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsSpec {
    /// A fixed number of agents; `None`: from the run's rate and `per_agent_rate`.
    #[serde(default)]
    pub count: Option<u32>,
    /// Requests per second one agent is planned for (default [`DEFAULT_PER_AGENT_RATE`]).
    #[serde(default)]
    pub per_agent_rate: Option<f64>,
    /// The task's CPU units (1024 = one vCPU).
    #[serde(default = "default_agent_cpu")]
    pub cpu: u32,
    /// The task's memory in MiB.
    #[serde(default = "default_agent_memory")]
    pub memory: u32,
    /// `None`: the `[aws]` architecture.
    #[serde(default)]
    pub architecture: Option<Architecture>,
}

fn default_agent_cpu() -> u32 {
    1024
}
fn default_agent_memory() -> u32 {
    2048
}

impl Default for AgentsSpec {
    fn default() -> Self {
        AgentsSpec {
            count: None,
            per_agent_rate: None,
            cpu: default_agent_cpu(),
            memory: default_agent_memory(),
            architecture: None,
        }
    }
}

impl AgentsSpec {
    /// How many agents drive `rate` requests per second (at least one).
    pub fn count_for(&self, rate: f64) -> u32 {
        self.count.unwrap_or_else(|| {
            let per = self.per_agent_rate.unwrap_or(DEFAULT_PER_AGENT_RATE);
            ((rate / per).ceil() as u32).max(1)
        })
    }

    fn problems(&self) -> Vec<(&'static str, String, &'static str)> {
        let mut out = Vec::new();
        if self.count == Some(0) {
            out.push(("aws.agents.count", "0 agents drive nothing".into(), "1 or more, or leave out [aws.agents]"));
        }
        if self.count.is_some() && self.per_agent_rate.is_some() {
            out.push(("aws.agents.per_agent_rate", "`count` and `per_agent_rate` both set".into(), "one of them"));
        }
        if let Some(r) = self.per_agent_rate
            && !(r.is_finite() && r > 0.0)
        {
            out.push(("aws.agents.per_agent_rate", format!("{r} is not a rate"), "more than 0 requests per second"));
        }
        // The ECS tier's table of Fargate sizes: one statement of what Fargate offers.
        match super::ecs::FARGATE_SIZES.iter().find(|s| s.0 == self.cpu) {
            None => out.push((
                "aws.agents.cpu",
                format!("{} is not a Fargate CPU size", self.cpu),
                "256, 512, 1024, 2048, 4096, 8192 or 16384",
            )),
            Some(&(_, min, max, step)) if !super::ecs::fargate_size_ok(self.cpu, self.memory) => out.push((
                "aws.agents.memory",
                format!(
                    "{} MiB does not fit {} CPU units (from {min} to {max} MiB in steps of {step})",
                    self.memory, self.cpu
                ),
                "a Fargate memory size for the task's CPU",
            )),
            Some(_) => {}
        }
        out
    }
}

fn default_architecture() -> Architecture {
    Architecture::X86_64
}
fn default_max_instances() -> u32 {
    10
}
fn default_max_tasks() -> u32 {
    20
}
fn default_max_functions() -> u32 {
    20
}
fn default_max_cost_usd() -> f64 {
    5.0
}
fn default_max_lifetime() -> Dur {
    Dur(std::time::Duration::from_secs(2 * 3600))
}

impl Default for AwsSpec {
    fn default() -> Self {
        AwsSpec {
            region: None,
            architecture: default_architecture(),
            rust_target: None,
            harness_cidr: None,
            vpc_id: None,
            subnet_ids: Vec::new(),
            max_instances: default_max_instances(),
            max_tasks: default_max_tasks(),
            max_functions: default_max_functions(),
            max_cost_usd: default_max_cost_usd(),
            max_lifetime: default_max_lifetime(),
            agents: None,
        }
    }
}

impl AwsSpec {
    /// The Rust target triple the workload is built for.
    pub fn rust_target(&self) -> &str {
        self.rust_target.as_deref().unwrap_or(self.architecture.default_rust_target())
    }

    /// Semantic checks serde cannot do: (field, message, accepted).
    pub fn problems(&self) -> Vec<(&'static str, String, &'static str)> {
        let mut out = Vec::new();
        if let Some(c) = &self.harness_cidr
            && !is_ipv4_cidr(c)
        {
            out.push(("aws.harness_cidr", format!("`{c}` is not an IPv4 CIDR"), "e.g. `203.0.113.7/32`"));
        }
        if self.vpc_id.is_some() == self.subnet_ids.is_empty() {
            out.push((
                "aws.vpc_id",
                "`vpc_id` and `subnet_ids` go together".into(),
                "both (an existing VPC and its subnets) or neither (the run makes its own)",
            ));
        }
        if !(self.max_cost_usd.is_finite() && self.max_cost_usd >= 0.0) {
            out.push(("aws.max_cost_usd", format!("{} is not a cost", self.max_cost_usd), "0 or more US dollars"));
        }
        let life = self.max_lifetime.0;
        if life.is_zero() || life > std::time::Duration::from_secs(7 * 24 * 3600) {
            out.push((
                "aws.max_lifetime",
                format!("{} is out of range", self.max_lifetime),
                "more than 0s, at most 7d",
            ));
        }
        if let Some(r) = &self.region
            && (r.is_empty() || !r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            out.push(("aws.region", format!("`{r}` is not a region name"), "e.g. `us-east-1`"));
        }
        if let Some(a) = &self.agents {
            out.extend(a.problems());
            // Tiers admit `harness` sources from the run's harness group, which agents join.
            if self.harness_cidr.is_some() {
                out.push((
                    "aws.harness_cidr",
                    "agents drive traffic from inside the VPC, but tiers would admit only this range".into(),
                    "leave out harness_cidr with [aws.agents] (tiers then admit the agents' group)",
                ));
            }
        }
        out
    }
}

/// What a tier's `architecture` accepts.
pub const ARCHITECTURE_ACCEPTED: &str = "`x86_64` or `arm64`";

/// A tier's `architecture` (Lambda `Architectures`, Fargate `runtimePlatform.cpuArchitecture`),
/// read apart so a bad value is located at its own field; `None` when absent or bad.
pub(super) fn tier_architecture(
    value: Option<&toml::Value>,
    at: &dyn Fn(&str) -> String,
    c: &mut crate::diagnostics::Checker,
) -> Option<Architecture> {
    let v = value?;
    match v.as_str() {
        Some("x86_64") => Some(Architecture::X86_64),
        Some("arm64") => Some(Architecture::Arm64),
        _ => {
            let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            c.fail(at("architecture"), format!("`{shown}` is not an architecture"), ARCHITECTURE_ACCEPTED);
            None
        }
    }
}

fn is_ipv4_cidr(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(a, p)| a.parse::<std::net::Ipv4Addr>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_values_are_named() {
        assert!(AwsSpec::default().problems().is_empty());
        let s = AwsSpec { harness_cidr: Some("1.2.3.4".into()), vpc_id: Some("vpc-1".into()), ..Default::default() };
        let fields: Vec<_> = s.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(fields, ["aws.harness_cidr", "aws.vpc_id"]);
    }

    #[test]
    fn agents_follow_the_rate_and_bad_sizes_are_named() {
        let a = AgentsSpec::default();
        assert_eq!(a.count_for(1.0), 1);
        assert_eq!(a.count_for(DEFAULT_PER_AGENT_RATE), 1);
        assert_eq!(a.count_for(DEFAULT_PER_AGENT_RATE + 1.0), 2);
        assert_eq!(AgentsSpec { count: Some(3), ..Default::default() }.count_for(1e9), 3);
        assert_eq!(AgentsSpec { per_agent_rate: Some(100.0), ..Default::default() }.count_for(250.0), 3);
        assert!(AwsSpec { agents: Some(a), ..Default::default() }.problems().is_empty());
        let bad = AgentsSpec { count: Some(0), cpu: 1024, memory: 512, ..Default::default() };
        let s = AwsSpec { agents: Some(bad), ..Default::default() };
        let fields: Vec<_> = s.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(fields, ["aws.agents.count", "aws.agents.memory"]);
        let cidr = AwsSpec {
            agents: Some(AgentsSpec::default()),
            harness_cidr: Some("203.0.113.7/32".into()),
            ..Default::default()
        };
        let fields: Vec<_> = cidr.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(fields, ["aws.harness_cidr"]);
        let bad = AgentsSpec { cpu: 300, per_agent_rate: Some(-1.0), ..Default::default() };
        let fields: Vec<_> = bad.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(fields, ["aws.agents.per_agent_rate", "aws.agents.cpu"]);
    }

    #[test]
    fn rust_target_follows_the_architecture() {
        let s = AwsSpec { architecture: Architecture::Arm64, ..Default::default() };
        assert_eq!(s.rust_target(), "aarch64-unknown-linux-musl");
    }
}
