//! Settings of the `ecs-awsvpc` tier, shaped like the real task definition and
//! `awsvpcConfiguration` so the same scenario can drive the AWS backend.

use serde::{Deserialize, Serialize};

use super::{Checker, TierSettings};
use crate::tier::TierId;

pub(super) const FIELDS: &[&str] = &["id", "launch_type", "cpu", "memory", "security_groups", "block_imds"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaunchType {
    Fargate,
    Ec2,
}

/// How tenants' tasks are grouped into security groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityGroups {
    /// Each tenant its own group, admitting only the harness.
    PerTenant,
    /// One group for every tenant that admits its own members: the classic leak.
    SharedSelfReferencing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsSpec {
    pub launch_type: LaunchType,
    /// Task CPU in ECS units (1024 = one vCPU).
    #[serde(default = "default_cpu")]
    pub cpu: u32,
    /// Task memory in MiB.
    #[serde(default = "default_memory")]
    pub memory: u32,
    #[serde(default = "default_sg")]
    pub security_groups: SecurityGroups,
    /// `ECS_AWSVPC_BLOCK_IMDS=true` on the container instance (EC2 launch type only).
    #[serde(default)]
    pub block_imds: bool,
}

fn default_cpu() -> u32 {
    256
}
fn default_memory() -> u32 {
    512
}
fn default_sg() -> SecurityGroups {
    SecurityGroups::PerTenant
}

pub(super) fn parse(
    _id: TierId,
    table: &toml::Table,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) -> Option<TierSettings> {
    let spec: EcsSpec = match toml::Value::Table(table.clone()).try_into() {
        Ok(s) => s,
        Err(e) => {
            c.fail(at(""), e.message().to_string(), "see the ECS fields in scenarios/ecs.toml");
            return None;
        }
    };
    c.check(
        (128..=16384).contains(&spec.cpu),
        &at("cpu"),
        format!("{} CPU units is out of range", spec.cpu),
        "128 to 16384 (1024 = one vCPU)",
    );
    c.check(
        (256..=122_880).contains(&spec.memory),
        &at("memory"),
        format!("{} MiB is out of range", spec.memory),
        "256 to 122880 (MiB)",
    );
    if spec.block_imds && spec.launch_type == LaunchType::Fargate {
        c.fail(
            at("block_imds"),
            "block_imds applies to the ec2 launch type only (Fargate tasks never reach IMDS)",
            "omit it, or launch_type = \"ec2\"",
        );
    }
    Some(TierSettings::Ecs(spec))
}
