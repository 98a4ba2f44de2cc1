//! EC2 instance types the emulator can size a cgroup from. The figures are AWS's published
//! vCPU counts and memory; on a smaller host the CPU quota is capped at what the host has.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_mib: u64,
}

pub const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType { name: "t3.nano", vcpus: 2, memory_mib: 512 },
    InstanceType { name: "t3.micro", vcpus: 2, memory_mib: 1024 },
    InstanceType { name: "t3.small", vcpus: 2, memory_mib: 2048 },
    InstanceType { name: "t3.medium", vcpus: 2, memory_mib: 4096 },
    InstanceType { name: "t4g.micro", vcpus: 2, memory_mib: 1024 },
    InstanceType { name: "t4g.small", vcpus: 2, memory_mib: 2048 },
    InstanceType { name: "m7g.medium", vcpus: 1, memory_mib: 4096 },
    InstanceType { name: "m7g.large", vcpus: 2, memory_mib: 8192 },
    InstanceType { name: "c7g.medium", vcpus: 1, memory_mib: 2048 },
    InstanceType { name: "c7g.large", vcpus: 2, memory_mib: 4096 },
    InstanceType { name: "m5.large", vcpus: 2, memory_mib: 8192 },
    InstanceType { name: "c5.large", vcpus: 2, memory_mib: 4096 },
];

pub fn lookup(name: &str) -> Option<InstanceType> {
    INSTANCE_TYPES.iter().copied().find(|t| t.name == name)
}

pub fn accepted() -> String {
    INSTANCE_TYPES.iter().map(|t| format!("`{}`", t.name)).collect::<Vec<_>>().join(", ")
}

/// Where [`max_network_interfaces`] comes from: AWS's table of network interfaces per instance
/// type ("Maximum network interfaces").
pub const ENI_LIMITS_SOURCE: &str = "https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html#gp_network";

/// Network interfaces an instance type takes, for the types above. In `awsvpc` mode without ENI
/// trunking each ECS task needs one and the instance keeps one for itself, so an instance holds
/// at most this − 1 tasks.
pub fn max_network_interfaces(name: &str) -> Option<u32> {
    Some(match name {
        "t3.nano" | "t3.micro" | "t4g.micro" | "m7g.medium" | "c7g.medium" => 2,
        "t3.small" | "t3.medium" | "t4g.small" | "m7g.large" | "c7g.large" | "m5.large" | "c5.large" => 3,
        _ => return None,
    })
}

/// Private IPv4 addresses each network interface of the type takes ("IPv4 addresses per
/// interface", same table as [`max_network_interfaces`]); the EKS VPC CNI gives each pod one.
pub fn ipv4_per_interface(name: &str) -> Option<u32> {
    Some(match name {
        "t3.nano" | "t3.micro" | "t4g.micro" => 2,
        "t3.small" | "t4g.small" | "m7g.medium" | "c7g.medium" => 4,
        "t3.medium" => 6,
        "m7g.large" | "c7g.large" | "m5.large" | "c5.large" => 10,
        _ => return None,
    })
}

/// Whether the instance type runs arm64 (Graviton: the family ends in `g`, as `t4g`, `m7g`).
pub fn is_arm64(name: &str) -> bool {
    name.split('.').next().is_some_and(|family| family.ends_with('g'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_has_an_eni_limit_and_an_architecture() {
        for t in INSTANCE_TYPES {
            assert!(max_network_interfaces(t.name).is_some_and(|n| n >= 2), "{}", t.name);
            assert!(ipv4_per_interface(t.name).is_some_and(|n| n >= 2), "{}", t.name);
        }
        assert_eq!(max_network_interfaces("m5.large"), Some(3));
        assert!(is_arm64("m7g.large") && is_arm64("t4g.micro") && !is_arm64("m5.large") && !is_arm64("t3.micro"));
    }
}
