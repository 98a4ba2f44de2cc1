//! One module per kind of tier, each behind [`TierDriver`] (as each cgroup layout is behind
//! `CgroupDriver`), chosen once per deploy from the tier's id by [`tier_driver`]:
//!
//! | tier | module | driver |
//! |---|---|---|
//! | `silo-ec2`, `shared-ec2` | [`ec2`] | [`Ec2Tier`] |
//! | `ecs-awsvpc` | [`ecs`] | [`EcsTier`] |
//! | `lambda-per-tenant`, `lambda-shared`, `lambda-tenant-isolation` | [`lambda`] | [`LambdaTier`] |
//!
//! A tier module is the one place that says, for its tiers, how tenants map onto instances or
//! functions (layout), how big each is (sizing, from the instance type, the task definition or
//! the function's memory), what they need before they start (security groups, metadata
//! endpoints, a cluster bridge), and how all of it is deployed and torn down. The machinery
//! they call knows no tier: [`crate::instance`], [`crate::lambda`],
//! [`crate::security_groups`], [`crate::metadata`], the launcher thread, cgroups, netlink and
//! the sandbox. What every tier of a backend shares (the run, uids, addresses, the harness
//! namespace) comes in [`Context`](crate::context::Context). No tier module uses another.
//!
//! Adding a tier: a module here (or a variant of one), an arm in [`tier_driver`], and the tier's
//! views on `LocalBackend` if it has any.

pub(crate) mod driver;
pub(crate) mod ec2;
pub(crate) mod ecs;
pub(crate) mod lambda;

use isobench_core::tier::TierId;

pub(crate) use driver::TierDriver;
pub(crate) use ec2::Ec2Tier;
pub(crate) use ecs::EcsTier;
pub(crate) use lambda::{LambdaTier, Mapping};

/// The driver for a deploy of `tier`.
pub(crate) fn tier_driver(tier: TierId) -> Box<dyn TierDriver> {
    match tier {
        TierId::SiloEc2 => Box::new(Ec2Tier::silo()),
        TierId::SharedEc2 => Box::new(Ec2Tier::shared()),
        TierId::EcsAwsvpc => Box::new(EcsTier::default()),
        TierId::LambdaPerTenant => Box::new(LambdaTier::new(Mapping::PerTenant)),
        TierId::LambdaShared => Box::new(LambdaTier::new(Mapping::Shared)),
        TierId::LambdaTenantIsolation => Box::new(LambdaTier::new(Mapping::TenantIsolation)),
        // Stub until the eks-pod module lands (branch eksl18 replaces this arm).
        TierId::EksPod => Box::new(NotBuilt(tier)),
    }
}

/// A tier whose local module is not built yet: its deploy says so, its teardown has nothing.
struct NotBuilt(TierId);

impl TierDriver for NotBuilt {
    fn deploy(
        &mut self,
        _cx: &mut crate::context::Context,
        _plan: &isobench_core::plan::TierPlan,
    ) -> Result<isobench_core::backend::Deployment, isobench_core::backend::BackendError> {
        Err(isobench_core::backend::BackendError::UnsupportedTier { backend: "local (not built yet)", tier: self.0 })
    }

    fn teardown(&mut self, _cx: &mut crate::context::Context) -> isobench_core::backend::TeardownReport {
        isobench_core::backend::TeardownReport::default()
    }
}
