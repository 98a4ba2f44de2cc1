//! How every view words a leak-matrix cell: the verdict beside the expectation, hits of
//! trials with the upper 95% bound on the per-trial leak probability, controls and blind
//! trials; and the notes that say why a cell has no verdict.

use isobench_results::{Expectation, ProbeCell, TierSummary, Verdict};

/// The legend the Markdown and HTML matrices share.
pub const LEGEND: &str = "Each cell: verdict (expected) — cross-tenant hits/trials, the exact upper 95% bound on \
    the per-trial leak probability (Clopper-Pearson: 0 hits in 1,000 trials gives ≤ 0.30%), positive controls \
    passed/run (every trial carries its own: the owner finding its own canary through the same channel in the \
    same trial) and blind trials (a failed call or an unusable answer). A cell is blocked only if every control \
    passed and no trial was blind. *risk*: tenants share a resource by configuration (one principal, one kernel), \
    not a leak by itself. *emulator-limit*: what the probe found is the local emulator's (every local tier shares \
    this host's kernel), not AWS's; the AWS expectation is beside it.";

/// `≤ 0.30%`: the bound as a percentage, `-` without trials.
pub fn bound(c: &ProbeCell) -> String {
    match c.leak_bound_95 {
        None => "-".into(),
        Some(p) if p >= 1.0 => "≤ 100%".into(),
        Some(p) if p >= 0.01 => format!("≤ {:.1}%", p * 100.0),
        Some(p) if p >= 0.001 => format!("≤ {:.2}%", p * 100.0),
        Some(p) => format!("≤ {:.3}%", p * 100.0),
    }
}

/// `0/30, ≤ 9.5%, controls 30/30` (and `, 2 blind` when any).
pub fn counts(c: &ProbeCell) -> String {
    let blind = if c.blind > 0 { format!(", {} blind", c.blind) } else { String::new() };
    format!("{}/{}, {}, controls {}/{}{blind}", c.hits, c.trials, bound(c), c.controls_passed, c.controls)
}

/// The cell's full text, e.g. `blocked (blocked) — 0/30, ≤ 9.5%, controls 30/30`.
pub fn cell_text(c: &ProbeCell) -> String {
    match c.verdict {
        Verdict::NotApplicable if c.expected == Expectation::NotApplicable => "n/a".into(),
        Verdict::NotApplicable => format!("n/a (AWS: {})", c.expected),
        Verdict::EmulatorLimit => {
            format!("emulator-limit (AWS: {}) — shared kernel {}/{}", c.expected, c.hits, c.trials)
        }
        v => {
            let mark = if c.unexpected { " **!**" } else { "" };
            format!("{v}{mark} ({}) — {}", c.expected, counts(c))
        }
    }
}

/// The short form for the terminal: `blocked 0/30 ≤ 9.5%`, `LEAK! 3/30`, `inconclusive 2 blind`.
pub fn short(c: &ProbeCell) -> String {
    match c.verdict {
        Verdict::NotApplicable => "n/a".into(),
        Verdict::EmulatorLimit => "emulator-limit".into(),
        Verdict::Leak | Verdict::Risk if c.unexpected => {
            format!("{}! {}/{}", c.verdict.as_str().to_uppercase(), c.hits, c.trials)
        }
        Verdict::Leak | Verdict::Risk => format!("{} {}/{}", c.verdict, c.hits, c.trials),
        Verdict::Blocked => format!("blocked 0/{} {}", c.trials, bound(c)),
        Verdict::Inconclusive if c.blind > 0 => format!("inconclusive {} blind", c.blind),
        Verdict::Inconclusive => format!("inconclusive ctl {}/{}", c.controls_passed, c.controls),
    }
}

/// Each distinct note, with the probe and the tiers it applies to, in the matrix's row order.
pub fn notes<'a>(tiers: &[&'a TierSummary]) -> Vec<(&'a str, Vec<&'a str>, &'a str)> {
    let row = |probe: &str| tiers[0].probes.iter().position(|c| c.probe == probe).unwrap_or(usize::MAX);
    let mut out: Vec<(&str, Vec<&str>, &str)> = Vec::new();
    for t in tiers {
        for c in &t.probes {
            let Some(note) = c.note.as_deref() else { continue };
            match out.iter_mut().find(|(p, _, n)| *p == c.probe && *n == note) {
                Some((_, tiers, _)) => tiers.push(&t.tier),
                None => out.push((&c.probe, vec![&t.tier], note)),
            }
        }
    }
    out.sort_by_key(|(probe, _, _)| row(probe));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(verdict: Verdict, expected: Expectation, hits: u64, trials: u64, blind: u64) -> ProbeCell {
        ProbeCell {
            probe: "LK-TMP".into(),
            channel: "tmp".into(),
            description: String::new(),
            expected,
            verdict,
            unexpected: false,
            trials,
            hits,
            blind,
            controls: trials,
            controls_passed: trials,
            leak_bound_95: if trials == 0 {
                None
            } else if hits == 0 {
                Some(1.0 - 0.05f64.powf(1.0 / trials as f64))
            } else {
                Some(1.0)
            },
            first_hit_ms: None,
            pairs: vec![],
            failed_calls: 0,
            note: None,
            sources: vec![],
        }
    }

    #[test]
    fn cells_state_counts_bound_controls_and_blind_trials() {
        let c = cell(Verdict::Blocked, Expectation::Blocked, 0, 1000, 0);
        assert_eq!(cell_text(&c), "blocked (blocked) — 0/1000, ≤ 0.30%, controls 1000/1000");
        assert_eq!(short(&c), "blocked 0/1000 ≤ 0.30%");
        let c = cell(Verdict::Inconclusive, Expectation::Blocked, 0, 28, 2);
        assert_eq!(cell_text(&c), "inconclusive (blocked) — 0/28, ≤ 10.1%, controls 28/28, 2 blind");
        assert_eq!(short(&c), "inconclusive 2 blind");
        let c = cell(Verdict::EmulatorLimit, Expectation::Blocked, 30, 30, 0);
        assert_eq!(cell_text(&c), "emulator-limit (AWS: blocked) — shared kernel 30/30");
        let c = cell(Verdict::NotApplicable, Expectation::Leak, 0, 0, 0);
        assert_eq!((cell_text(&c), bound(&c)), ("n/a (AWS: leak)".to_string(), "-".to_string()));
        let mut c = cell(Verdict::Risk, Expectation::Blocked, 3, 30, 0);
        c.unexpected = true;
        assert_eq!(short(&c), "RISK! 3/30");
    }
}
