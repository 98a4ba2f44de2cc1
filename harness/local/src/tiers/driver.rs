//! [`TierDriver`]: what one tier is on the local emulator.

use std::any::Any;

use isobench_core::backend::{BackendError, Deployment, TeardownReport};
use isobench_core::plan::TierPlan;

use crate::context::Context;
use crate::instance::Instance;

/// One tier on the local emulator, from its deploy to its teardown. A driver is made for one
/// deploy ([`super::tier_driver`]) and holds what that deploy created until its teardown; what
/// every tier shares (the run, the launcher thread, uids and addresses, shared services) is the
/// [`Context`] each call gets.
pub(crate) trait TierDriver: Send {
    /// Deploys `plan`'s tier: lays its tenants out on instances or functions, sizes them,
    /// prepares what they need (security groups, metadata endpoints, a cluster bridge) and
    /// starts them. On error nothing of the tier is left.
    fn deploy(&mut self, cx: &mut Context, plan: &TierPlan) -> Result<Deployment, BackendError>;

    /// Removes everything the deploy created. Idempotent: a driver whose teardown left
    /// something behind is asked again by the run's teardown.
    fn teardown(&mut self, cx: &mut Context) -> TeardownReport;

    /// The tier's running instances (a Lambda tier has none: its environments are not
    /// instances).
    fn instances(&self) -> &[Instance] {
        &[]
    }

    /// For the views only one kind of tier has (an ECS cluster, Lambda functions): the backend
    /// downcasts to the tier module's driver type.
    fn as_any(&self) -> &dyn Any;

    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// After a failed deploy: the tier's own teardown of what it had made, with only a warning
/// for what that left behind (the deploy's error is what the caller hears).
pub(crate) fn undo(report: TeardownReport) {
    if !report.left_behind.is_empty() {
        tracing::warn!(left = ?report.left_behind, "cleanup after a failed deploy left resources behind");
    }
}
