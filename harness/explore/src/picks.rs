//! Picks per sweep point: which tier to choose at this tenant count and rate (cheapest under a
//! p99 bound, fastest or strongest within a budget), with the numbers each rests on.
//!
//! The strategies live in the report crate (`isobench_report::picks`, written beside this
//! crate); this is the one place a sweep asks for them, once per finished point, and stores
//! their sentences in `sweep.json` (`points[].picks`) and the sweep's report.

use isobench_results::Summary;

/// The picks over one point's tiers (its run's summary holds every candidate). Empty until
/// the picks are wired in.
pub fn for_point(_candidates: &Summary) -> Vec<String> {
    Vec::new()
}
