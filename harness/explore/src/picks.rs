//! Picks per sweep point: which tier to choose at this tenant count and rate (cheapest under a
//! p99 bound, fastest or strongest within a budget), with the numbers each rests on.
//!
//! The strategies live in the report crate (`isobench_report::picks`); this is the one place a
//! sweep asks for them, once per finished point, and stores their sentences in `sweep.json`
//! (`points[].picks`) and the sweep's report. Every number in a sentence is a field of that
//! point's own `summary.json` (the report crate's `picks` module names which).

use isobench_report::picks::picks;
use isobench_results::Summary;

/// The picks over one point's tiers, one sentence each: the strategy, the chosen tier and its
/// figures, then the tiers ruled out and why.
pub fn for_point(summary: &Summary) -> Vec<String> {
    picks(summary)
        .into_iter()
        .map(|p| {
            let mut line = format!("{}: {}", p.strategy.label(), p.because);
            if !p.ruled_out.is_empty() {
                let out: Vec<String> = p.ruled_out.iter().map(|(t, why)| format!("{t} ({why})")).collect();
                line += &format!("; ruled out: {}", out.join(", "));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_gets_three_picks_with_the_runs_figures() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../results/baselines/quick/summary.json");
        let s: Summary = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let lines = for_point(&s);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("cheapest"), "{lines:?}");
        assert!(lines[2].starts_with("strongest"), "{lines:?}");
        // The strongest pick names the leaks that ruled shared-ec2 out.
        assert!(lines[2].contains("shared-ec2 ("), "{lines:?}");
        assert!(lines[2].contains("LK-TMP"), "{lines:?}");
    }
}
