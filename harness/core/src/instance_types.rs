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
