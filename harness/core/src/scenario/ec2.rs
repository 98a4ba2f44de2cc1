//! Settings of the two EC2 tiers: the instance type, and the instance's network: the security
//! groups each instance joins (`[tier.network]`, as `RunInstances` takes them) and the groups
//! themselves (`[[tier.security_group]]`), in the syntax and with the checks of the
//! `ecs-awsvpc` tier (see [`crate::security_groups`] for rules and templates):
//!
//! ```toml
//! [[tier]]
//! id = "silo-ec2"
//! instance_type = "t3.micro"
//! [tier.network]
//! security_groups = ["tenant-{tenant}"]
//! [[tier.security_group]]
//! name = "tenant-{tenant}"
//! ingress = [{ port = 8080, source_group = "harness" }]
//! ```
//!
//! Without them (the default), each `silo-ec2` instance is in its own group `tenant-{tenant}`
//! and the `shared-ec2` instance in `shared-instance`, each admitting only the harness on the
//! workload's port. The one `shared-ec2` instance serves every tenant, so its groups name no
//! `{tenant}`.

use serde::{Deserialize, Serialize};

use crate::diagnostics::Checker;
use crate::instance_types::{self, InstanceType};
use crate::security_groups::{AwsvpcConfiguration, IngressRule, NetworkSpec, SecurityGroupSpec};
use crate::tier::TierId;
use crate::workload_api::DEFAULT_PORT;

pub(super) const FIELDS: &[&str] = &["id", "instance_type", "network", "security_group"];

/// The default security group of the `shared-ec2` instance.
pub const SHARED_INSTANCE_GROUP: &str = "shared-instance";
/// The default security group template of each `silo-ec2` instance.
pub const TENANT_INSTANCE_GROUP: &str = "tenant-{tenant}";

/// The validated settings of an EC2 tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ec2Spec {
    #[serde(serialize_with = "ser_instance_type")]
    pub instance_type: InstanceType,
    /// Each instance's network interface and the groups the tier defines (serialised flat, as
    /// `network` and `security_groups`). An instance serving several tenants is in the union
    /// of their groups.
    #[serde(flatten)]
    pub network: NetworkSpec,
}

fn ser_instance_type<S: serde::Serializer>(t: &InstanceType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.name)
}

impl Ec2Spec {
    /// `instance_type` with `tier`'s default network ([`default_network`]).
    pub fn new(tier: TierId, instance_type: InstanceType) -> Ec2Spec {
        Ec2Spec { instance_type, network: default_network(tier) }
    }
}

/// The default of `tier`: per-tenant groups admitting only the harness (silo), or one such
/// group (shared).
pub fn default_network(tier: TierId) -> NetworkSpec {
    let (name, description) = if tier == TierId::SharedEc2 {
        (SHARED_INSTANCE_GROUP, "the shared instance; admits only the harness")
    } else {
        (TENANT_INSTANCE_GROUP, "one tenant's instance; admits only the harness")
    };
    NetworkSpec {
        interface: AwsvpcConfiguration { security_groups: vec![name.into()], ..Default::default() },
        security_groups: vec![SecurityGroupSpec {
            name: name.into(),
            description: description.into(),
            ingress: vec![IngressRule::harness_only(DEFAULT_PORT)],
        }],
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEc2Tier {
    #[allow(dead_code)]
    id: String,
    instance_type: String,
    /// Read by [`NetworkSpec::parse`].
    #[serde(default)]
    #[allow(dead_code)]
    network: Option<toml::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    security_group: Option<toml::Value>,
}

pub(super) fn parse(id: TierId, table: &toml::Table, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Option<Ec2Spec> {
    let raw: RawEc2Tier = match toml::Value::Table(table.clone()).try_into() {
        Ok(r) => r,
        Err(e) => {
            c.fail(
                at("instance_type"),
                e.message().to_string(),
                format!("an instance type: {}", instance_types::accepted()),
            );
            return None;
        }
    };
    let Some(instance_type) = instance_types::lookup(&raw.instance_type) else {
        c.fail(
            at("instance_type"),
            format!("unknown instance type `{}`", raw.instance_type),
            instance_types::accepted(),
        );
        return None;
    };
    let before = c.problems.len();
    let network = NetworkSpec::parse(table, default_network(id), at, c);
    if c.problems.len() > before {
        return None;
    }
    if id == TierId::SharedEc2 {
        for (i, g) in network.interface.security_groups.iter().enumerate() {
            c.check(
                !g.contains("{tenant}"),
                &at(&format!("network.security_groups[{i}]")),
                format!("the one shared-ec2 instance serves every tenant and cannot join a group per tenant (`{g}`)"),
                "group names without `{tenant}`",
            );
        }
    }
    (c.problems.len() == before).then_some(Ec2Spec { instance_type, network })
}
