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
    fn rust_target_follows_the_architecture() {
        let s = AwsSpec { architecture: Architecture::Arm64, ..Default::default() };
        assert_eq!(s.rust_target(), "aarch64-unknown-linux-musl");
    }
}
