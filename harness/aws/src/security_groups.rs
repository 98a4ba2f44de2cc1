//! Security groups through the EC2 API, for every tier whose compute sits in the run's VPC
//! (EC2 instances, ECS `awsvpc` tasks): the groups and rules core resolved for the tier's
//! tenants ([`ResolvedGroups`]) become groups in the VPC, each recorded with its inbound rules
//! so teardown revokes the rules (which keep other groups alive) before deleting any group.

use isobench_core::TierId;
use isobench_core::scenario::ecs::{Protocol, ResolvedGroups, ResolvedSource};

use crate::api::{SgRule, SgSource};
use crate::context::{DeployContext, DeployError, Network};
use crate::resource::Resource;
use crate::retry;

/// Creates `groups` of `tier` in the run's VPC with their rules; returns their ids in the
/// order of `groups.groups`.
pub async fn create(
    ctx: &mut DeployContext,
    tier: TierId,
    net: &Network,
    groups: &ResolvedGroups,
) -> Result<Vec<String>, DeployError> {
    let tags = ctx.tag_pairs(Some(tier));
    let mut ids = Vec::new();
    for g in &groups.groups {
        let name = ctx.name(&group_suffix(tier, &g.name));
        let desc = format!("isobench {} group {}", tier.as_str(), g.name);
        let id = ctx.apis.ec2.create_security_group(&net.vpc, &name, &desc, &tags).await?;
        ctx.record(Some(tier), Resource::SecurityGroupRules(id.clone()));
        ctx.record(Some(tier), Resource::SecurityGroup(id.clone()));
        ids.push(id);
    }
    let harness = harness_source(ctx.spec.harness_cidr.as_deref(), net.harness_group.as_deref());
    for (g, id) in groups.groups.iter().zip(&ids) {
        let rules: Vec<SgRule> =
            g.ingress.iter().map(|r| sg_rule(r.protocol, r.ports, source(r.source, &ids, &harness))).collect();
        if !rules.is_empty() {
            retry::retry(ctx.backoff, || ctx.apis.ec2.authorize_ingress(id, &rules)).await?;
        }
    }
    Ok(ids)
}

/// The name suffix of a tier's group: `<tier>-<group>` (the run prefix comes before it).
pub fn group_suffix(tier: TierId, group: &str) -> String {
    format!("{}-{group}", tier.as_str())
}

/// The ids of the groups with these indices, as a member takes them.
pub fn member_ids(ids: &[String], indices: &[usize]) -> Vec<String> {
    indices.iter().map(|&i| ids[i].clone()).collect()
}

/// What `harness` means in a rule: the scenario's `harness_cidr`, else the run's harness group.
fn harness_source(cidr: Option<&str>, harness_group: Option<&str>) -> SgSource {
    match (cidr, harness_group) {
        (Some(c), _) => SgSource::Cidr(c.to_string()),
        (None, Some(g)) => SgSource::Group(g.to_string()),
        // The run's network always has the harness group when there is no CIDR.
        (None, None) => SgSource::Cidr("127.0.0.1/32".into()),
    }
}

fn source(s: ResolvedSource, ids: &[String], harness: &SgSource) -> SgSource {
    match s {
        ResolvedSource::Group(i) => SgSource::Group(ids[i].clone()),
        ResolvedSource::Harness => harness.clone(),
        ResolvedSource::Cidr(a, p) => SgSource::Cidr(format!("{a}/{p}")),
    }
}

/// One scenario rule as EC2 takes it: every port of tcp/udp when none are named, -1 for icmp
/// and all-protocol rules.
pub fn sg_rule(protocol: Protocol, ports: Option<(u16, u16)>, source: SgSource) -> SgRule {
    let (protocol, (from, to)) = match protocol {
        Protocol::Tcp => ("tcp", ports.map_or((0, 65535), |(a, b)| (a as i32, b as i32))),
        Protocol::Udp => ("udp", ports.map_or((0, 65535), |(a, b)| (a as i32, b as i32))),
        Protocol::Icmp => ("icmp", (-1, -1)),
        Protocol::All => ("-1", (-1, -1)),
    };
    SgRule { protocol: protocol.to_string(), from_port: from, to_port: to, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_take_every_port_when_none_are_named() {
        let h = SgSource::Cidr("10.0.0.0/8".into());
        let r = sg_rule(Protocol::Tcp, None, h.clone());
        assert_eq!((r.protocol.as_str(), r.from_port, r.to_port), ("tcp", 0, 65535));
        let r = sg_rule(Protocol::Udp, Some((53, 53)), h.clone());
        assert_eq!((r.protocol.as_str(), r.from_port, r.to_port), ("udp", 53, 53));
        let r = sg_rule(Protocol::All, Some((1, 2)), h);
        assert_eq!((r.protocol.as_str(), r.from_port, r.to_port), ("-1", -1, -1));
    }

    #[test]
    fn harness_is_the_cidr_when_given_else_the_group() {
        assert_eq!(harness_source(Some("1.2.3.4/32"), Some("sg-h")), SgSource::Cidr("1.2.3.4/32".into()));
        assert_eq!(harness_source(None, Some("sg-h")), SgSource::Group("sg-h".into()));
        let ids = vec!["sg-a".to_string(), "sg-b".to_string()];
        assert_eq!(
            source(ResolvedSource::Group(1), &ids, &SgSource::Group("h".into())),
            SgSource::Group("sg-b".into())
        );
    }
}
