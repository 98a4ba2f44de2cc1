//! The cost model's part of a run: the summary's cost, calibration, pricing, projected-latency
//! and overheads fields. (The caller checks before deploy that the pricing table prices every
//! tier: `isobench_cost::project`.)

use isobench_core::backend::InitRecord;
use isobench_core::plan::{Plan, TierPlan};
use isobench_cost::{Overheads, Pricing, TierShape};
use isobench_load::LoadReport;
use isobench_results::{CalibrationEntry, Fidelity, Spread, Summary};

/// Fills each tier's cost and the pricing header. A tier that cannot be costed (e.g. it sent
/// nothing) keeps no cost and gets a warning; the run's own outcome does not change.
pub fn fill(summary: &mut Summary, plan: &Plan, pricing: &Pricing) {
    summary.pricing = Some(pricing.info.clone());
    for t in &mut summary.tiers {
        let Some(tp) = plan.tiers.iter().find(|tp| tp.name == t.tier) else { continue };
        match isobench_cost::cost_of_tier(t, &TierShape::from_settings(&tp.settings), pricing) {
            Ok(c) => t.cost = Some(c),
            Err(e) => tracing::warn!("no cost for tier {}: {e}", t.tier),
        }
    }
}

/// Fills each tier's projected-AWS latency and the overheads header, for runs on the local
/// emulator only: projecting AWS from AWS (or from an external deployment, or an AWS emulator
/// without a data plane) has nothing to add, so those summaries carry neither.
pub fn fill_projected(summary: &mut Summary, plan: &Plan, overheads: &Overheads) {
    if !matches!(summary.backend.fidelity, Fidelity::Emulated | Fidelity::ProcessOnly) {
        return;
    }
    summary.overheads = Some(overheads.info.clone());
    for t in &mut summary.tiers {
        let Some(tp) = plan.tiers.iter().find(|tp| tp.name == t.tier) else { continue };
        t.projected = isobench_cost::project_latency(t, &TierShape::from_settings(&tp.settings), overheads);
    }
}

/// The calibration entries of a tier measured on the emulator; INIT from the backend's record
/// of every environment started when it keeps one, else from the invoke answers.
pub fn calibration(
    tp: &TierPlan,
    instance_start: Spread,
    report: &LoadReport,
    inits: Option<&[InitRecord]>,
    overheads: &Overheads,
) -> Vec<CalibrationEntry> {
    let init = match inits {
        Some(i) => spread(&crate::summarize::init_histogram(i)),
        None => init_spread(report),
    };
    isobench_cost::calibrate(tp.tier, &TierShape::from_settings(&tp.settings), instance_start, init, overheads)
}

/// The spread of every cold start's INIT duration the invoke answers reported, in
/// milliseconds, over all tenants.
fn init_spread(report: &LoadReport) -> Option<Spread> {
    let mut all = isobench_load::Hist::new();
    for s in report.per.values() {
        all.add(&s.init);
    }
    spread(&all)
}

fn spread(all: &isobench_load::Hist) -> Option<Spread> {
    if all.is_empty() {
        return None;
    }
    let h = all.histogram();
    let ms = |ns: u64| ns as f64 / 1e6;
    Some(Spread { count: h.len(), min: ms(h.min()), median: ms(h.value_at_quantile(0.5)), max: ms(h.max()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use isobench_core::plan::Overrides;

    /// The committed baseline with its projections taken off, as a run's summary is before
    /// `fill_projected`.
    fn baseline() -> (Summary, Plan) {
        let mut s: Summary =
            serde_json::from_str(include_str!("../../../results/baselines/quick/summary.json")).expect("baseline");
        s.overheads = None;
        s.tiers.iter_mut().for_each(|t| t.projected = None);
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/quick.toml"));
        let (scenario, src) = isobench_core::scenario::Scenario::load(path).unwrap();
        let plan = Plan::new("t".into(), scenario, isobench_core::scenario::hash(&src), &Overrides::default());
        (s, plan)
    }

    #[test]
    fn local_runs_are_projected_and_cloud_or_external_runs_are_not() {
        let o = Overheads::built_in().unwrap();
        let (mut s, plan) = baseline();
        fill_projected(&mut s, &plan, &o);
        assert_eq!(s.overheads.as_ref().map(|i| i.source.as_str()), Some("built-in"));
        for t in &s.tiers {
            let p = t.projected.as_ref().unwrap_or_else(|| panic!("{} not projected", t.tier));
            assert_eq!(
                p.measured_p99_ms,
                t.latency.corrected.p99_us / 1e3,
                "{}: the measured field is untouched",
                t.tier
            );
        }
        for fidelity in [Fidelity::Cloud, Fidelity::External, Fidelity::CloudEmulator] {
            let (mut s, plan) = baseline();
            s.backend.fidelity = fidelity;
            fill_projected(&mut s, &plan, &o);
            assert!(s.overheads.is_none() && s.tiers.iter().all(|t| t.projected.is_none()), "{fidelity:?}");
        }
    }
}
