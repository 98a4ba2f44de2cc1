//! The verdict table: one row per tier with what a reader choosing a tier needs, from
//! `summary.json` alone: the leaks observed, the risks shared by design, what was blocked and
//! how tightly, the cells that say nothing about the tier (inconclusive, the emulator's
//! limits), corrected p50/p99, the cold-start share and the modelled cost. The terminal,
//! `report.md` and the page render the same cells.

use std::fmt::Write;

use isobench_results::{ProbeCell, Summary, TierSummary, Verdict};

use crate::fmt::esc;
use crate::text::ms;

/// Column headers; the cells carry their units (µs/ms/s, $).
pub const HEADERS: [&str; 10] = [
    "tier",
    "leaks (hits/trials)",
    "risks (hits/trials)",
    "blocked (95% bound)",
    "inconclusive",
    "emulator-limit",
    "p50 / p99",
    "cold starts",
    "$/tenant-month*",
    "$/M requests*",
];

/// What each column counts.
pub const LEGEND: &str = "Leaks and risks: probe ids with cross-tenant hits/trials (marked ! where AWS \
    promises isolation); a risk is a resource the tenants share by design (one principal), not a leak by itself. Blocked: cells with no hit in any trial, every positive control passed and no blind trial, with \
    the exact one-sided upper 95% bound on the per-trial leak probability. Inconclusive (a blind trial or a failed \
    control) and emulator-limit cells (what this host's shared kernel shows, not AWS's) are counted apart, never as \
    blocked; not-applicable cells are left out. Cold starts: ok invokes of the traffic that started a new \
    execution environment, of all ok invokes (function tiers); n/a for instance and task tiers, which start once \
    at deploy. p50 / p99: latency corrected for coordinated omission. *Costs are modelled from the pricing table \
    at the scenario's rate, not billed.";

/// One tier's cells, in [`HEADERS`] order.
pub struct Row {
    pub cells: [String; 10],
}

/// The table's rows, one per tier in run order.
pub fn rows(s: &Summary) -> Vec<Row> {
    s.tiers.iter().map(row).collect()
}

fn row(t: &TierSummary) -> Row {
    let probed = !t.probes.is_empty();
    let of = |v: Verdict| t.probes.iter().filter(move |c| c.verdict == v);
    let none = |text: &str| if probed { text.to_string() } else { "not probed".into() };
    let found = |v: Verdict| {
        let cells: Vec<&ProbeCell> = of(v).collect();
        if cells.is_empty() { none("none") } else { grouped(&cells) }
    };
    let listed = |v: Verdict| {
        let ids: Vec<&str> = of(v).map(|c| c.probe.as_str()).collect();
        if ids.is_empty() { none("0") } else { format!("{}: {}", ids.len(), ids.join(" ")) }
    };
    let (per_tenant, per_million) = t
        .cost
        .as_ref()
        .map_or(("–".into(), "–".into()), |c| (usd(c.per_tenant_usd), usd(c.per_million_requests_usd)));
    let c = &t.latency.corrected;
    let latency = if c.count == 0 { "–".into() } else { format!("{} / {}", ms(c.p50_us), ms(c.p99_us)) };
    Row {
        cells: [
            t.tier.clone(),
            found(Verdict::Leak),
            found(Verdict::Risk),
            if probed { blocked(&of(Verdict::Blocked).collect::<Vec<_>>()) } else { "not probed".into() },
            listed(Verdict::Inconclusive),
            listed(Verdict::EmulatorLimit),
            latency,
            cold_starts(t),
            per_tenant,
            per_million,
        ],
    }
}

/// `LK-TMP LK-MEM 3/3; LK-PROC! 2/3`: ids grouped by hits/trials, in catalogue order.
fn grouped(cells: &[&ProbeCell]) -> String {
    let mut groups: Vec<((u64, u64), Vec<String>)> = Vec::new();
    for c in cells {
        let id = if c.unexpected { format!("{}!", c.probe) } else { c.probe.clone() };
        match groups.iter_mut().find(|(k, _)| *k == (c.hits, c.trials)) {
            Some((_, ids)) => ids.push(id),
            None => groups.push(((c.hits, c.trials), vec![id])),
        }
    }
    let parts: Vec<String> = groups.iter().map(|((h, n), ids)| format!("{} {h}/{n}", ids.join(" "))).collect();
    parts.join("; ")
}

/// `1 ≤ 63.2%`, `9, each ≤ 63.2%` or `9: 5 ≤ 9.5%, 4 ≤ 10.1%`: the count and every distinct bound.
fn blocked(cells: &[&ProbeCell]) -> String {
    if cells.is_empty() {
        return "0".into();
    }
    let mut bounds: Vec<(String, usize)> = Vec::new();
    for c in cells {
        let b = crate::leak::bound(c);
        match bounds.iter_mut().find(|(k, _)| *k == b) {
            Some((_, n)) => *n += 1,
            None => bounds.push((b, 1)),
        }
    }
    if cells.len() == 1 {
        return format!("1 {}", bounds[0].0);
    }
    if bounds.len() == 1 {
        return format!("{}, each {}", cells.len(), bounds[0].0);
    }
    let parts: Vec<String> = bounds.iter().map(|(b, n)| format!("{n} {b}")).collect();
    format!("{}: {}", cells.len(), parts.join(", "))
}

/// `12/868 (1.38%)` for a function tier: `functions.cold` of `traffic.ok`.
fn cold_starts(t: &TierSummary) -> String {
    match &t.functions {
        Some(f) => format!("{}/{} ({})", f.cold, t.traffic.ok, percent(f.cold_share)),
        None => "n/a".into(),
    }
}

/// Three significant figures below 1, cents above: never shows a cost as $0.0000.
pub(crate) fn usd(v: f64) -> String {
    if v == 0.0 || v >= 1.0 || !v.is_finite() { format!("${v:.2}") } else { format!("${}", significant(v, 3)) }
}

/// A share as a percentage with three significant figures (`0.462%`, `12.5%`, `0%`).
pub(crate) fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p == 0.0 || !p.is_finite() { format!("{p}%") } else { format!("{}%", significant(p, 3)) }
}

fn significant(v: f64, digits: i32) -> String {
    let decimals = (digits - 1 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// The terminal's table: columns as wide as their widest cell, then the legend.
pub fn terminal(s: &Summary) -> String {
    let rows = rows(s);
    let mut width: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(&r.cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let padded: Vec<String> =
            cells.iter().zip(&width).map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count()))).collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut o = String::new();
    let _ = writeln!(o, "\nverdict ({} tiers)", rows.len());
    let _ = writeln!(o, "{}", line(&HEADERS));
    for r in &rows {
        let cells: Vec<&str> = r.cells.iter().map(String::as_str).collect();
        let _ = writeln!(o, "{}", line(&cells));
    }
    let _ = writeln!(o, "{LEGEND}");
    o
}

/// `report.md`'s section.
pub fn markdown(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "## Verdict\n");
    let _ = writeln!(o, "| {} |\n|{}", HEADERS.join(" | "), "---|".repeat(HEADERS.len()));
    for r in rows(s) {
        let _ = writeln!(o, "| {} |", r.cells.join(" | "));
    }
    let _ = writeln!(o, "\n{LEGEND}\n");
}

/// The page's section.
pub fn html(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "<h2>Verdict</h2>\n<table class=\"verdict\" data-table=\"verdict\">\n<tr>");
    for h in HEADERS {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    let _ = writeln!(o, "</tr>");
    for r in rows(s) {
        let cells: Vec<String> = r.cells.iter().map(|c| format!("<td>{}</td>", esc(c))).collect();
        let _ = writeln!(o, "<tr>{}</tr>", cells.concat());
    }
    let _ = writeln!(o, "</table>\n<p class=\"note\">{}</p>", esc(LEGEND));
}

#[cfg(test)]
pub(crate) mod tests {
    use isobench_results::{Expectation, FunctionFigures, Percentiles, ProbeCell, TierCost};

    use super::*;

    pub(crate) fn cell(probe: &str, verdict: Verdict, hits: u64, trials: u64) -> ProbeCell {
        ProbeCell {
            probe: probe.into(),
            channel: String::new(),
            description: String::new(),
            expected: Expectation::Blocked,
            verdict,
            unexpected: false,
            trials,
            hits,
            blind: 0,
            controls: trials,
            controls_passed: trials,
            leak_bound_95: Some(if hits == 0 { 1.0 - 0.05f64.powf(1.0 / trials as f64) } else { 1.0 }),
            first_hit_ms: None,
            pairs: vec![],
            failed_calls: 0,
            note: None,
            sources: vec![],
        }
    }

    /// A summary of the leakage bench with the given tiers' probe cells, costs and latency.
    pub(crate) fn summary(tiers: Vec<(&str, Vec<ProbeCell>, f64, f64)>) -> Summary {
        let mut s: Summary = serde_json::from_str(include_str!("../../../results/bench/leakage/summary.json")).unwrap();
        let template = s.tiers[0].clone();
        s.tiers = tiers
            .into_iter()
            .map(|(tier, probes, p99_us, per_tenant_usd)| {
                let mut t = template.clone();
                t.tier = tier.into();
                t.probes = probes;
                t.latency.corrected = Percentiles { count: 100, p50_us: p99_us / 4.0, p99_us, ..Default::default() };
                let cost = t.cost.get_or_insert_with(|| TierCost {
                    model: "ec2-silo".into(),
                    formula: String::new(),
                    items: vec![],
                    run_usd: 0.0,
                    per_tenant_usd: 0.0,
                    per_million_requests_usd: 0.0,
                    monthly_usd: 0.0,
                    monthly_idle_usd: 0.0,
                    idle_share: 0.0,
                    notes: vec![],
                });
                cost.per_tenant_usd = per_tenant_usd;
                cost.per_million_requests_usd = per_tenant_usd / 100.0;
                t.functions = None;
                t
            })
            .collect();
        s
    }

    #[test]
    fn a_row_states_leaks_risks_blocked_bounds_and_cells_counted_apart() {
        let mut inconclusive = cell("LK-FD", Verdict::Inconclusive, 0, 28);
        inconclusive.blind = 2;
        let mut unexpected = cell("LK-PROC", Verdict::Leak, 2, 3);
        unexpected.unexpected = true;
        let probes = vec![
            cell("LK-TMP", Verdict::Leak, 3, 3),
            cell("LK-MEM", Verdict::Leak, 3, 3),
            unexpected,
            cell("LK-PRINCIPAL", Verdict::Risk, 3, 3),
            cell("LK-ENV", Verdict::Blocked, 0, 3),
            cell("LK-NET", Verdict::Blocked, 0, 3),
            cell("LK-RNG", Verdict::Blocked, 0, 30),
            inconclusive,
            cell("LK-KERNEL", Verdict::EmulatorLimit, 3, 3),
            cell("LK-DATA", Verdict::NotApplicable, 0, 0),
        ];
        let s = summary(vec![("shared-ec2", probes, 2_500.0, 0.000_123_4), ("silo-ec2", vec![], 900.0, 7.488)]);
        let r = rows(&s);
        let c = &r[0].cells;
        assert_eq!(c[1], "LK-TMP LK-MEM 3/3; LK-PROC! 2/3");
        assert_eq!(c[2], "LK-PRINCIPAL 3/3");
        assert_eq!(c[3], "3: 2 ≤ 63.2%, 1 ≤ 9.5%", "never counts inconclusive or emulator-limit cells");
        assert_eq!((c[4].as_str(), c[5].as_str()), ("1: LK-FD", "1: LK-KERNEL"));
        assert_eq!(c[6], "625µs / 2.50ms");
        assert_eq!(c[7], "n/a", "an instance tier has no cold starts per request");
        assert_eq!((c[8].as_str(), c[9].as_str()), ("$0.000123", "$0.00000123"), "small costs keep their digits");
        let c = &r[1].cells;
        assert_eq!((c[1].as_str(), c[3].as_str(), c[4].as_str()), ("not probed", "not probed", "not probed"));
        assert_eq!(c[8], "$7.49");
        let mut same = cell("LK-TMP", Verdict::Blocked, 0, 3);
        same.probe = "LK-ENV".into();
        assert_eq!(blocked(&[&cell("LK-TMP", Verdict::Blocked, 0, 3), &same]), "2, each ≤ 63.2%");
        assert_eq!(blocked(&[&same]), "1 ≤ 63.2%");
    }

    #[test]
    fn function_tiers_show_cold_starts_of_ok_invokes() {
        let mut s = summary(vec![("lambda-shared", vec![], 1_000.0, 1.0)]);
        s.tiers[0].traffic.ok = 868;
        s.tiers[0].functions = Some(FunctionFigures { cold: 4, cold_share: 4.0 / 868.0, ..Default::default() });
        assert_eq!(rows(&s)[0].cells[7], "4/868 (0.461%)");
        s.tiers[0].functions = Some(FunctionFigures::default());
        assert_eq!(rows(&s)[0].cells[7], "0/868 (0%)");
    }

    #[test]
    fn every_view_has_one_row_per_tier_and_the_terminal_ends_with_the_legend() {
        let s = summary(vec![("silo-ec2", vec![], 900.0, 7.49), ("shared-ec2", vec![], 500.0, 11.52)]);
        let t = terminal(&s);
        assert!(t.ends_with(&format!("{LEGEND}\n")), "{t}");
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[lines.len() - 3].starts_with("silo-ec2 ") && lines[lines.len() - 2].starts_with("shared-ec2 "));
        let mut md = String::new();
        markdown(&mut md, &s);
        assert_eq!(md.lines().filter(|l| l.starts_with("| s")).count(), 2, "{md}");
        let mut page = String::new();
        html(&mut page, &s);
        assert_eq!(page.matches("<tr><td>").count(), 2, "{page}");
    }
}
