//! The cost model at the edge: load the pricing table from the flags, check before deploy that
//! it prices every tier, and fill the summary's cost, calibration and pricing fields after a run.

use isobench_core::plan::{Plan, TierPlan};
use isobench_cost::{Pricing, TierShape};
use isobench_load::LoadReport;
use isobench_results::{CalibrationEntry, Spread, Summary};

use crate::args::PricingArgs;
use crate::errors::CliError;

/// The pricing table the flags ask for; any problem is bad input.
pub fn load_pricing(a: &PricingArgs) -> Result<Pricing, CliError> {
    Pricing::load(a.region.as_deref(), a.pricing.as_deref()).map_err(|e| CliError::BadInput(e.to_string()))
}

/// Projects the plan's cost, which fails, naming the tier and the key, when a price is missing:
/// called before anything is deployed.
pub fn check_prices(
    plan: &Plan,
    pricing: &Pricing,
) -> Result<Vec<(isobench_core::TierId, isobench_cost::ProjectedCost)>, CliError> {
    isobench_cost::project(plan, pricing).map_err(|e| CliError::BadInput(e.to_string()))
}

/// Fills each tier's cost and the pricing header. A tier that cannot be costed (e.g. it sent
/// nothing) keeps no cost and gets a warning; the run's own outcome does not change.
pub fn fill(summary: &mut Summary, plan: &Plan, pricing: &Pricing) {
    summary.pricing = Some(pricing.info.clone());
    for t in &mut summary.tiers {
        let Some(tp) = plan.tiers.iter().find(|tp| tp.tier.as_str() == t.tier) else { continue };
        match isobench_cost::cost_of_tier(t, &TierShape::from_settings(&tp.settings), pricing) {
            Ok(c) => t.cost = Some(c),
            Err(e) => tracing::warn!("no cost for tier {}: {e}", t.tier),
        }
    }
}

/// The calibration entries of a tier measured on the emulator.
pub fn calibration(tp: &TierPlan, instance_start: Spread, report: &LoadReport) -> Vec<CalibrationEntry> {
    isobench_cost::calibrate(tp.tier, &TierShape::from_settings(&tp.settings), instance_start, init_spread(report))
}

/// The spread of every cold start's INIT duration, in milliseconds, over all tenants.
fn init_spread(report: &LoadReport) -> Option<Spread> {
    let mut all = isobench_load::Hist::new();
    for s in report.per.values() {
        all.add(&s.init);
    }
    if all.is_empty() {
        return None;
    }
    let h = all.histogram();
    let ms = |ns: u64| ns as f64 / 1e6;
    Some(Spread { count: h.len(), min: ms(h.min()), median: ms(h.value_at_quantile(0.5)), max: ms(h.max()) })
}
