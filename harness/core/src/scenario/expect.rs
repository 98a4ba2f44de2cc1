//! How the probe catalogue's configuration-dependent rules read a tier's settings: the
//! concrete expectation of a probe on a tier as configured. Here rather than in
//! [`crate::probes`] so that the catalogue stays a leaf that scenario validation can use.

use super::ecs::LaunchType;
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
        }
    }
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
}
