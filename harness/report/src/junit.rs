//! `junit.xml`: the probe checks for CI, one suite per tier and one case per probe.

use std::fmt::Write;

use isobench_results::{Summary, Verdict};

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The probe checks as JUnit XML, one suite per tier and one case per probe: an unexpected
/// leak or an inconclusive cell fails; an expected leak passes but says so.
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
            let detail = format!(
                "expected {}, verdict {}: {} hits in {} trials, controls {}/{}",
                c.expected, c.verdict, c.hits, c.trials, c.controls_passed, c.controls
            );
            if c.unexpected {
                let _ = write!(o, "<failure type=\"unexpected-leak\" message=\"{}\"/>", xml(&detail));
            } else if c.verdict == Verdict::Inconclusive {
                let _ = write!(o, "<failure type=\"inconclusive\" message=\"{}\"/>", xml(&detail));
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
