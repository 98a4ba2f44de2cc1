//! How the probe catalogue's configuration-dependent rules read a tier's settings: the
//! concrete expectation of a probe on a tier as configured. Here rather than in
//! [`crate::probes`] so that the catalogue stays a leaf that scenario validation can use.

use super::ecs::LaunchType;
use super::eks::{EksSpec, NetworkPolicy};
use super::model::{Hygiene, TierSettings, WorkloadSpec};
use crate::probes::{Expectation, ProbeDef, Rule};
use crate::security_groups::{NetworkSpec, ResolvedSource};
use crate::tier::TierId;

impl ProbeDef {
    /// The concrete expectation for a tier as configured.
    pub fn expect(&self, tier: TierId, settings: &TierSettings, workload: &WorkloadSpec) -> Expectation {
        match self.rule(tier) {
            Rule::Always(e) => e,
            Rule::NotApplicable(_) => Expectation::NotApplicable,
            Rule::NaiveHygiene => {
                if workload.hygiene == Hygiene::Naive {
                    Expectation::Leak
                } else {
                    Expectation::Blocked
                }
            }
            Rule::SharedSecurityGroup => match settings {
                TierSettings::Ecs(e) if groups_admit_other_tenants(&e.network) => Expectation::Leak,
                _ => Expectation::Blocked,
            },
            Rule::ImdsReachable(e) => match settings {
                TierSettings::Ecs(ecs) if ecs.imds_reachable() => e,
                _ => Expectation::Blocked,
            },
            Rule::Ec2LaunchType(e) => match settings {
                TierSettings::Ecs(ecs) if ecs.launch_type == LaunchType::Ec2 => e,
                _ => Expectation::Blocked,
            },
            Rule::PodNetwork => match settings {
                TierSettings::Eks(eks) if pods_reach_each_other(eks) => Expectation::Leak,
                _ => Expectation::Blocked,
            },
            Rule::NodeImds(e) => match settings {
                TierSettings::Eks(eks) if eks.imds_reachable() && eks.shares_nodes() => e,
                _ => Expectation::Blocked,
            },
            Rule::SharedNode(e) => match settings {
                TierSettings::Eks(eks) if eks.shares_nodes() => e,
                _ => Expectation::Blocked,
            },
        }
    }
}

/// Whether one tenant's pod may connect to another's: no default-deny policy, and no
/// per-pod security groups keeping them apart (without groups for pods, pods share the node's).
fn pods_reach_each_other(eks: &EksSpec) -> bool {
    eks.network_policy == NetworkPolicy::None && eks.security_groups.as_ref().is_none_or(groups_admit_other_tenants)
}

/// Whether one tenant's task may connect to another's under the scenario's security groups:
/// some group of tenant `b`'s task admits a group that tenant `a`'s task is in.
fn groups_admit_other_tenants(network: &NetworkSpec) -> bool {
    let tenants = ["tenant-a".to_string(), "tenant-b".to_string()];
    let r = network.resolve("run", &tenants);
    let groups_of = |t: &str| r.tasks.iter().find(|(x, _)| x == t).map(|(_, g)| g.clone()).unwrap_or_default();
    let (a, b) = (groups_of("tenant-a"), groups_of("tenant-b"));
    b.iter().any(|gb| {
        r.groups[*gb].ingress.iter().any(|rule| matches!(rule.source, ResolvedSource::Group(src) if a.contains(&src)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::{Verdict, probe, unexpected_leak};
    use crate::scenario::Ec2Spec;

    #[test]
    fn expectations_follow_configuration() {
        let app = probe("LK-APP").unwrap();
        let t3 = crate::instance_types::lookup("t3.micro").unwrap();
        let ec2 = TierSettings::Ec2(Ec2Spec::new(TierId::SharedEc2, t3));
        let mut w = WorkloadSpec::default();
        assert_eq!(app.expect(TierId::SharedEc2, &ec2, &w), Expectation::Blocked);
        w.hygiene = Hygiene::Naive;
        assert_eq!(app.expect(TierId::SharedEc2, &ec2, &w), Expectation::Leak);
        assert_eq!(app.expect(TierId::SiloEc2, &ec2, &w), Expectation::Blocked);
        assert!(unexpected_leak(Expectation::Blocked, Verdict::Leak));
        assert!(!unexpected_leak(Expectation::Leak, Verdict::Leak));
    }

    fn ecs(tier: &str) -> TierSettings {
        let src = format!(
            "format_version = 1\nname = \"e\"\n[run]\nduration = \"5s\"\nrate = \"1k\"\n[tenants]\ncount = 2\n\
             [[tier]]\nid = \"ecs-awsvpc\"\n{tier}"
        );
        let s =
            crate::scenario::Scenario::parse(&src, std::path::Path::new("e.toml")).unwrap_or_else(|e| panic!("{e}"));
        s.tiers[0].settings.clone()
    }

    #[test]
    fn ecs_expectations_follow_launch_type_and_imds() {
        let w = WorkloadSpec::default();
        let (principal, data, kernel) =
            (probe("LK-PRINCIPAL").unwrap(), probe("LK-DATA").unwrap(), probe("LK-KERNEL").unwrap());
        let open = ecs("launch_type = \"ec2\"\n[tier.container_instance]\nblock_imds = false\n");
        let blocked = ecs("launch_type = \"ec2\"\n[tier.container_instance]\nblock_imds = true\n");
        let fargate = ecs("launch_type = \"fargate\"\n");
        let e = |p: &ProbeDef, s: &TierSettings| p.expect(TierId::EcsAwsvpc, s, &w);
        assert_eq!(
            (e(principal, &open), e(data, &open), e(kernel, &open)),
            (Expectation::Risk, Expectation::Leak, Expectation::Risk)
        );
        assert_eq!(
            (e(principal, &blocked), e(data, &blocked), e(kernel, &blocked)),
            (Expectation::Blocked, Expectation::Blocked, Expectation::Risk)
        );
        assert_eq!(
            (e(principal, &fargate), e(data, &fargate), e(kernel, &fargate)),
            (Expectation::Blocked, Expectation::Blocked, Expectation::Blocked)
        );
        let net = probe("LK-NET").unwrap();
        assert_eq!(net.expect(TierId::SharedEc2, &open, &w), Expectation::NotApplicable);
    }

    fn eks(tier: &str) -> TierSettings {
        let src = format!(
            "format_version = 1\nname = \"k\"\n[run]\nduration = \"5s\"\nrate = \"1k\"\n[tenants]\ncount = 2\n\
             [[tier]]\nid = \"eks-pod\"\n{tier}"
        );
        let s =
            crate::scenario::Scenario::parse(&src, std::path::Path::new("k.toml")).unwrap_or_else(|e| panic!("{e}"));
        s.tiers[0].settings.clone()
    }

    fn on_eks(id: &str, tier: &str) -> Expectation {
        probe(id).unwrap().expect(TierId::EksPod, &eks(tier), &WorkloadSpec::default())
    }

    const PER_TENANT_GROUPS: &str = "[[tier.security_group]]\nname = \"tenant-{tenant}\"\ningress = [{ port = 8080, source_group = \"harness\" }]\n";
    const SHARED_GROUP: &str = "[tier.network]\nsecurity_groups = [\"pods\"]\n[[tier.security_group]]\nname = \"pods\"\n\
                                ingress = [{ protocol = \"all\", source_group = \"pods\" }]\n";

    #[test]
    fn eks_net_leaks_without_a_policy_or_per_tenant_groups() {
        assert_eq!(on_eks("LK-NET", "network_policy = \"none\"\n"), Expectation::Leak);
        assert_eq!(on_eks("LK-NET", "network_policy = \"default-deny\"\n"), Expectation::Blocked);
        assert_eq!(on_eks("LK-NET", &format!("network_policy = \"none\"\n{PER_TENANT_GROUPS}")), Expectation::Blocked);
        assert_eq!(on_eks("LK-NET", &format!("network_policy = \"none\"\n{SHARED_GROUP}")), Expectation::Leak);
        assert_eq!(
            on_eks("LK-NET", &format!("network_policy = \"default-deny\"\n{SHARED_GROUP}")),
            Expectation::Blocked
        );
        // A node per tenant does not separate the pods' flat VPC network.
        assert_eq!(on_eks("LK-NET", "pattern = \"node-per-tenant\"\n"), Expectation::Leak);
    }

    #[test]
    fn eks_node_role_is_reachable_unless_tokens_are_required_with_hop_limit_1() {
        let node = |tokens: &str, hop: u8| {
            format!("[tier.node]\nhttp_tokens = \"{tokens}\"\nhttp_put_response_hop_limit = {hop}\n")
        };
        for (id, hit) in [("LK-PRINCIPAL", Expectation::Risk), ("LK-DATA", Expectation::Leak)] {
            assert_eq!(on_eks(id, &node("required", 2)), hit, "{id}: the token answer reaches the pod");
            assert_eq!(on_eks(id, &node("required", 1)), Expectation::Blocked, "{id}: it dies one hop short");
            // IMDSv1 has no hop limit.
            assert_eq!(on_eks(id, &node("optional", 1)), hit, "{id}");
            assert_eq!(on_eks(id, &node("optional", 2)), hit, "{id}");
            // On a node of its own, the role a pod reaches is its own tenant's.
            let own = format!("pattern = \"node-per-tenant\"\n{}", node("optional", 2));
            assert_eq!(on_eks(id, &own), Expectation::Blocked, "{id}");
        }
    }

    #[test]
    fn eks_kernel_is_shared_on_shared_nodes_only_and_in_process_channels_are_blocked() {
        assert_eq!(on_eks("LK-KERNEL", "pattern = \"namespace-per-tenant\"\n"), Expectation::Risk);
        assert_eq!(on_eks("LK-KERNEL", "pattern = \"node-per-tenant\"\n"), Expectation::Blocked);
        for id in ["LK-TMP", "LK-MEM", "LK-ENV", "LK-FD", "LK-PROC", "LK-RNG", "LK-APP"] {
            for pattern in ["namespace-per-tenant", "node-per-tenant"] {
                assert_eq!(on_eks(id, &format!("pattern = \"{pattern}\"\n")), Expectation::Blocked, "{id} {pattern}");
            }
        }
        // The EKS rules read only EKS settings.
        let ec2 = TierSettings::Ec2(Ec2Spec::new(TierId::SiloEc2, crate::instance_types::lookup("t3.micro").unwrap()));
        assert_eq!(
            probe("LK-KERNEL").unwrap().expect(TierId::EksPod, &ec2, &WorkloadSpec::default()),
            Expectation::Blocked
        );
    }
}
