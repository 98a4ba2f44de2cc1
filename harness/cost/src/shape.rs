//! What the cost formulas need to know of a tier's configuration, read either from the plan
//! (before and during a run) or from a `summary.json`'s effective scenario (recosting a run).

use isobench_core::TierId;
use isobench_core::instance_types;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::aws::Architecture;
use isobench_core::scenario::ecs::LaunchType;
use isobench_core::scenario::eks::Pattern;

use crate::error::CostError;

/// The priced shape of one tier.
#[derive(Debug, Clone, PartialEq)]
pub enum TierShape {
    /// `silo-ec2` and `shared-ec2`.
    Ec2 { instance_type: String },
    /// `ecs-awsvpc` on Fargate: task CPU units (1024 = one vCPU), memory in MiB and the CPU
    /// architecture (arm64 is priced lower).
    Fargate { cpu_units: u32, memory_mib: u32, arch: Architecture },
    /// `ecs-awsvpc` on the EC2 launch type: tasks packed on container instances.
    EcsEc2 { cpu_units: u32, memory_mib: u32, instance_type: String },
    /// The three Lambda tiers: memory size in MB, the function timeout in seconds and the
    /// architecture (arm64 is priced lower).
    Lambda { memory_mb: u32, timeout_s: f64, arch: Architecture },
    /// `eks-pod`: one pod per tenant of `cpu_millis` and `memory_mib` on nodes of
    /// `instance_type`, shared (at least `count` of them) or one per tenant.
    Eks { cpu_millis: u32, memory_mib: u32, instance_type: String, pattern: Pattern, count: Option<u32> },
}

/// A tier's architecture where neither the settings nor an older summary say: x86_64, the
/// default of `[aws] architecture`.
pub const DEFAULT_ARCH: Architecture = Architecture::X86_64;

impl TierShape {
    pub fn from_settings(s: &TierSettings) -> TierShape {
        match s {
            TierSettings::Ec2(e) => TierShape::Ec2 { instance_type: e.instance_type.name.to_string() },
            TierSettings::Ecs(e) => {
                let (cpu_units, memory_mib) = (e.task_definition.cpu, e.task_definition.memory);
                match (e.launch_type, &e.container_instance) {
                    (LaunchType::Ec2, Some(ci)) => {
                        TierShape::EcsEc2 { cpu_units, memory_mib, instance_type: ci.instance_type.clone() }
                    }
                    (LaunchType::Ec2, None) => {
                        let ci = isobench_core::scenario::ecs::ContainerInstance::default();
                        TierShape::EcsEc2 { cpu_units, memory_mib, instance_type: ci.instance_type }
                    }
                    (LaunchType::Fargate, _) => {
                        TierShape::Fargate { cpu_units, memory_mib, arch: e.architecture.unwrap_or(DEFAULT_ARCH) }
                    }
                }
            }
            TierSettings::Lambda(l) => TierShape::Lambda {
                memory_mb: l.memory,
                timeout_s: l.timeout.0.as_secs_f64(),
                arch: l.architecture.unwrap_or(DEFAULT_ARCH),
            },
            TierSettings::Eks(e) => TierShape::Eks {
                cpu_millis: e.pod.cpu_millis,
                memory_mib: e.pod.memory_mib,
                instance_type: e.node.instance_type.name.to_string(),
                pattern: e.pattern,
                count: e.node.count,
            },
        }
    }

    /// The shape of the tier called `tier` (its name, else its id: summaries written before
    /// tiers had names) in a summary's `scenario.effective` (the serialised scenario).
    pub fn from_effective(effective: &serde_json::Value, tier: &str) -> Result<TierShape, CostError> {
        let bad = |reason: &str| CostError::Input { tier: tier.to_string(), reason: reason.to_string() };
        let tiers =
            effective.get("tiers").and_then(|t| t.as_array()).ok_or_else(|| bad("no `scenario.effective.tiers`"))?;
        let t = tiers
            .iter()
            .find(|t| t.get("name").or_else(|| t.get("id")).and_then(|i| i.as_str()) == Some(tier))
            .ok_or_else(|| bad("the tier is not in `scenario.effective.tiers`"))?;
        let s = t.get("settings").ok_or_else(|| bad("no settings"))?;
        let str_at = |v: &serde_json::Value, p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string);
        let u32_at = |v: &serde_json::Value, p: &str| v.pointer(p).and_then(|x| x.as_u64()).map(|x| x as u32);
        let missing = |p: &str| bad(&format!("settings lack `{p}`"));
        // Summaries written before tiers had an architecture ran x86_64.
        let arch = match str_at(s, "/architecture").as_deref() {
            None | Some("x86_64") => Architecture::X86_64,
            Some("arm64") => Architecture::Arm64,
            Some(other) => return Err(bad(&format!("unknown architecture `{other}`"))),
        };
        match str_at(s, "/kind").as_deref() {
            Some("ec2") => Ok(TierShape::Ec2 {
                instance_type: str_at(s, "/instance_type").ok_or_else(|| missing("instance_type"))?,
            }),
            Some("ecs") => {
                let cpu_units = u32_at(s, "/task_definition/cpu").ok_or_else(|| missing("task_definition.cpu"))?;
                let memory_mib =
                    u32_at(s, "/task_definition/memory").ok_or_else(|| missing("task_definition.memory"))?;
                match str_at(s, "/launch_type").as_deref() {
                    Some("fargate") => Ok(TierShape::Fargate { cpu_units, memory_mib, arch }),
                    Some("ec2") => Ok(TierShape::EcsEc2 {
                        cpu_units,
                        memory_mib,
                        instance_type: str_at(s, "/container_instance/instance_type")
                            .ok_or_else(|| missing("container_instance.instance_type"))?,
                    }),
                    _ => Err(missing("launch_type")),
                }
            }
            Some("lambda") => {
                let timeout = str_at(s, "/timeout").ok_or_else(|| missing("timeout"))?;
                let timeout = isobench_core::units::parse_duration(&timeout).map_err(|e| bad(&e.to_string()))?;
                Ok(TierShape::Lambda {
                    memory_mb: u32_at(s, "/memory").ok_or_else(|| missing("memory"))?,
                    timeout_s: timeout.as_secs_f64(),
                    arch,
                })
            }
            Some("eks") => {
                let pattern = match str_at(s, "/pattern").as_deref() {
                    Some("namespace-per-tenant") => Pattern::NamespacePerTenant,
                    Some("node-per-tenant") => Pattern::NodePerTenant,
                    _ => return Err(missing("pattern")),
                };
                Ok(TierShape::Eks {
                    cpu_millis: u32_at(s, "/pod/cpu_millis").ok_or_else(|| missing("pod.cpu_millis"))?,
                    memory_mib: u32_at(s, "/pod/memory_mib").ok_or_else(|| missing("pod.memory_mib"))?,
                    instance_type: str_at(s, "/node/instance_type").ok_or_else(|| missing("node.instance_type"))?,
                    pattern,
                    count: u32_at(s, "/node/count"),
                })
            }
            _ => Err(missing("kind")),
        }
    }

    /// vCPUs of an EC2 instance type the harness knows.
    pub fn vcpus(instance_type: &str, tier: TierId) -> Result<u32, CostError> {
        instance_types::lookup(instance_type).map(|t| t.vcpus).ok_or_else(|| CostError::Input {
            tier: tier.to_string(),
            reason: format!("unknown instance type `{instance_type}`; accepted: {}", instance_types::accepted()),
        })
    }
}

/// Network interfaces an instance type takes (AWS "maximum network interfaces",
/// [`instance_types::ENI_LIMITS_SOURCE`]); in `awsvpc` mode without ENI trunking each task needs
/// one, and the instance keeps one for itself.
pub fn max_enis(instance_type: &str) -> Option<u32> {
    instance_types::max_network_interfaces(instance_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_from_a_committed_summary() {
        let text = include_str!("../../../results/bench/leakage/summary.json");
        let s: serde_json::Value = serde_json::from_str(text).unwrap();
        let eff = &s["scenario"]["effective"];
        assert_eq!(
            TierShape::from_effective(eff, "silo-ec2").unwrap(),
            TierShape::Ec2 { instance_type: "t3.micro".into() }
        );
        assert_eq!(
            TierShape::from_effective(eff, "ecs-awsvpc").unwrap(),
            TierShape::EcsEc2 { cpu_units: 256, memory_mib: 512, instance_type: "m5.large".into() }
        );
        assert_eq!(
            TierShape::from_effective(eff, "lambda-shared").unwrap(),
            TierShape::Lambda { memory_mb: 256, timeout_s: 3.0, arch: Architecture::X86_64 }
        );
        assert!(TierShape::from_effective(eff, "nope").is_err());
    }
    #[test]
    fn the_architecture_is_read_from_a_summary_and_defaults_to_x86_64() {
        let eff = |arch: &str| {
            serde_json::json!({ "tiers": [{ "id": "lambda-shared", "settings": {
                "kind": "lambda", "memory": 128, "timeout": "3s", "architecture": arch } }] })
        };
        let shape = |v: serde_json::Value| TierShape::from_effective(&v, "lambda-shared");
        assert_eq!(
            shape(eff("arm64")).unwrap(),
            TierShape::Lambda { memory_mb: 128, timeout_s: 3.0, arch: Architecture::Arm64 }
        );
        let mut old = eff("x");
        old["tiers"][0]["settings"].as_object_mut().unwrap().remove("architecture");
        assert_eq!(
            shape(old).unwrap(),
            TierShape::Lambda { memory_mb: 128, timeout_s: 3.0, arch: Architecture::X86_64 }
        );
        assert!(shape(eff("riscv")).unwrap_err().to_string().contains("riscv"));
    }
}
