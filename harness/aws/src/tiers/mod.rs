//! One module per tier, each behind [`AwsTier`](crate::tier::AwsTier), chosen once per deploy
//! from the tier's id by [`module`]:
//!
//! - [`ec2`]: `silo-ec2` and `shared-ec2` ([`ec2::Ec2Tier`], its [`ec2::Layout`] maps tenants to
//!   instances);
//! - [`ecs`]: `ecs-awsvpc` ([`ecs::EcsTier`], one task per tenant);
//! - [`eks`]: `eks-pod` ([`eks::EksTier`]: a cluster, its node groups, the tenants' pod
//!   identities and Kubernetes objects);
//! - [`lambda`]: `lambda-per-tenant`, `lambda-shared` and `lambda-tenant-isolation`
//!   ([`lambda::LambdaTier`], its [`lambda::Layout`] maps tenants to functions).
//!
//! A module owns its tier's layout, sizing, preparation, deploy and what it records for
//! teardown; the run's VPC, bucket, ledger and tags are the [`DeployContext`] it deploys into,
//! and security groups are [`crate::security_groups`]. No tier module uses another.
//!
//! [`DeployContext`]: crate::context::DeployContext

pub mod ec2;
pub mod ecs;
pub mod eks;
pub mod lambda;

use isobench_core::TierId;

use crate::tier::AwsTier;

/// The module that deploys `tier`.
pub fn module(tier: TierId) -> &'static dyn AwsTier {
    match tier {
        TierId::SiloEc2 => &ec2::Ec2Tier { layout: ec2::Layout::Silo },
        TierId::SharedEc2 => &ec2::Ec2Tier { layout: ec2::Layout::Shared },
        TierId::EcsAwsvpc => &ecs::EcsTier,
        TierId::LambdaPerTenant => &lambda::LambdaTier { layout: lambda::Layout::PerTenant },
        TierId::LambdaShared => &lambda::LambdaTier { layout: lambda::Layout::Shared },
        TierId::LambdaTenantIsolation => &lambda::LambdaTier { layout: lambda::Layout::TenantIsolation },
        TierId::EksPod => &eks::EksTier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tier_has_the_module_that_says_so() {
        for tier in TierId::ALL {
            assert_eq!(module(tier).id(), tier);
        }
    }
}
