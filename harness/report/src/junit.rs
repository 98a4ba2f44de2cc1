//! `junit.xml`: the probe checks for CI, one suite per tier and one case per probe.

use std::fmt::Write;

use isobench_results::{Summary, Verdict};

use crate::leak;

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The probe checks as JUnit XML, one suite per tier and one case per probe: an unexpected
/// leak (or shared resource) or an inconclusive cell fails; a not-applicable cell is skipped
/// with its reason; an expected leak passes but says so. Every case states hits, trials, the
/// upper 95% bound, controls and blind trials.
pub fn junit(s: &Summary) -> String {
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let cells: Vec<_> = s.tiers.iter().flat_map(|t| t.probes.iter().map(move |c| (t, c))).collect();
    let failing = |c: &isobench_results::ProbeCell| c.unexpected || c.verdict == Verdict::Inconclusive;
    let failures = cells.iter().filter(|(_, c)| failing(c)).count();
    let _ = writeln!(
        o,
        "<testsuites name=\"isobench {}\" tests=\"{}\" failures=\"{failures}\">",
        xml(&s.run_id),
        cells.len()
    );
    for t in s.tiers.iter().filter(|t| !t.probes.is_empty()) {
        let f = t.probes.iter().filter(|c| failing(c)).count();
        let _ = writeln!(o, "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\">", xml(&t.tier), t.probes.len());
        for c in &t.probes {
            let _ = write!(
                o,
                "    <testcase classname=\"isobench.{}\" name=\"{} {}\">",
                xml(&t.tier),
                xml(&c.probe),
                xml(&c.channel)
            );
            let note = c.note.as_deref().map_or(String::new(), |n| format!("; {n}"));
            let detail = format!(
                "expected {}, verdict {}: {} hits in {} trials, per-trial leak probability {} (95% upper bound), \
                 controls {}/{}, {} blind{note}",
                c.expected,
                c.verdict,
                c.hits,
                c.trials,
                leak::bound(c),
                c.controls_passed,
                c.controls,
                c.blind
            );
            if c.unexpected {
                let _ = write!(o, "<failure type=\"unexpected-leak\" message=\"{}\"/>", xml(&detail));
            } else if c.verdict == Verdict::Inconclusive {
                let _ = write!(o, "<failure type=\"inconclusive\" message=\"{}\"/>", xml(&detail));
            } else if c.verdict == Verdict::NotApplicable {
                let _ = write!(o, "<skipped message=\"{}\"/>", xml(&detail));
            } else {
                let _ = write!(o, "<system-out>{}</system-out>", xml(&detail));
            }
            let _ = writeln!(o, "</testcase>");
        }
        let _ = writeln!(o, "  </testsuite>");
    }
    o.push_str("</testsuites>\n");
    o
}

#[cfg(test)]
mod tests {
    use isobench_results::Expectation;

    use super::*;

    fn leakage() -> Summary {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../results/bench/leakage/summary.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn cases_state_the_bound_and_blind_trials_and_skip_what_does_not_apply() {
        let mut s = leakage();
        s.tiers.truncate(1);
        s.tiers[0].probes.truncate(3);
        let cells = &mut s.tiers[0].probes;
        (cells[0].verdict, cells[0].hits, cells[0].trials, cells[0].blind) = (Verdict::Blocked, 0, 1000, 0);
        cells[0].leak_bound_95 = Some(0.002_991);
        (cells[1].verdict, cells[1].blind) = (Verdict::Inconclusive, 2);
        (cells[2].verdict, cells[2].expected) = (Verdict::NotApplicable, Expectation::Leak);
        cells[2].note = Some("no IAM is evaluated locally".into());
        let x = junit(&s);
        assert!(x.contains("0 hits in 1000 trials, per-trial leak probability ≤ 0.30% (95% upper bound)"), "{x}");
        assert!(x.contains("<failure type=\"inconclusive\"") && x.contains(", 2 blind"), "{x}");
        assert!(x.contains("<skipped message=\"expected leak, verdict not-applicable") && x.contains("no IAM"), "{x}");
    }
}
