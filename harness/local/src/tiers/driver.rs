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
pub(crate) trait TierDriver: AsAny + Send {
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
}

/// For the views only one kind of tier has (an ECS cluster, Lambda functions): the backend
/// downcasts a driver to its tier module's type. Every driver has it by the blanket impl. Call
/// it on a `&dyn TierDriver`, never on the `Box` holding one (a `Box` is `Any` too).
pub(crate) trait AsAny: Any {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Stops an instance tier's `instances`, then removes what it prepared for them with `remove`
/// (which returns what it removed and what it left behind); `prepared` is kept when something
/// was left, so a later teardown can try again.
pub(crate) fn teardown_instances<P>(
    cx: &mut Context,
    instances: &mut Vec<Instance>,
    prepared: &mut Option<P>,
    remove: impl FnOnce(&mut P, &mut Context) -> (Vec<String>, Vec<String>),
) -> TeardownReport {
    let mut report = TeardownReport::default();
    cx.stop_instances(std::mem::take(instances), &mut report);
    if let Some(mut p) = prepared.take() {
        let (removed, left) = remove(&mut p, cx);
        report.removed.extend(removed);
        if !left.is_empty() {
            report.left_behind.extend(left);
            *prepared = Some(p);
        }
    }
    report
}

/// The deployment of an instance tier once `started` says how starting its instances went; on
/// error, after the tier's own teardown undid what it had made.
pub(crate) fn deployed(
    tier: &mut dyn TierDriver,
    cx: &mut Context,
    plan: &TierPlan,
    started: Result<(), BackendError>,
) -> Result<Deployment, BackendError> {
    match started {
        Ok(()) => Ok(cx.deployment(plan, tier.instances())),
        Err(e) => {
            undo(tier.teardown(cx));
            Err(e)
        }
    }
}

/// After a failed deploy: the tier's own teardown of what it had made, with only a warning
/// for what that left behind (the deploy's error is what the caller hears).
pub(crate) fn undo(report: TeardownReport) {
    if !report.left_behind.is_empty() {
        tracing::warn!(left = ?report.left_behind, "cleanup after a failed deploy left resources behind");
    }
}
