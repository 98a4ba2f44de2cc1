//! A sweep's `report.md` and `report.html` (`isobench explore`), drawn from `sweep.json` alone
//! and one finished point's summary (for the "what this run is" statement): the crossovers in
//! words, the points with links to their own reports, each tier's monthly cost against tenants
//! and against rate (measured runs and the cost model told apart), and p99 against load.

use std::collections::BTreeSet;
use std::fmt::Write;

use isobench_results::Summary;
use isobench_results::sweep::{Axis, CostCurve, PointStatus, SweepSummary};

use crate::charts::sweep::{SweepLine, sweep_chart};
use crate::charts::usd;
use crate::error::ReportError;
use crate::fmt::{axis_ms, esc};

/// `report.md` of a sweep.
pub fn markdown(s: &SweepSummary, first: Option<&Summary>) -> String {
    let mut o = format!("# isobench sweep {}\n\n", s.sweep_id);
    match first.and_then(crate::limits::limits) {
        Some(l) => o += &l.markdown(),
        None if first.is_none() => o += "> No point has finished yet: nothing was measured.\n",
        None => {}
    }
    o += "\n";
    for (k, v) in meta(s, first) {
        let _ = writeln!(o, "- **{k}**: {v}");
    }
    o += "\n## Crossovers (modelled)\n\n";
    o += &format!("{COST_NOTE}\n\n");
    if s.crossovers.is_empty() {
        o += NO_CROSSING;
        o += "\n";
    }
    for (title, sentences) in crossover_groups(s) {
        let _ = writeln!(o, "**{title}**\n");
        for line in sentences {
            let _ = writeln!(o, "- {line}");
        }
        o += "\n";
    }
    o += "\n## Points\n\n| point | status | run id | kept from an earlier run | wall time | report |\n|---|---|---|---|---|---|\n";
    for p in &s.points {
        let report =
            if p.status == PointStatus::Complete { format!("[report]({}/report.html)", p.dir) } else { "—".into() };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {report} |",
            p.key,
            status(p.status),
            p.run_id.as_deref().unwrap_or("—"),
            if p.resumed { "yes" } else { "no" },
            p.wall_time_s.map_or("—".into(), |w| format!("{w:.1} s"))
        );
    }
    for p in s.points.iter().filter(|p| !p.picks.is_empty()) {
        let _ = writeln!(o, "\nPicks at {}:\n", p.key);
        for line in &p.picks {
            let _ = writeln!(o, "- {line}");
        }
    }
    for (axis, fixed, curves) in groups(s) {
        let _ = writeln!(o, "\n## {}\n", cost_title(axis, fixed));
        o += &cost_table_md(axis, &curves);
    }
    if !s.latency.is_empty() {
        o += "\n## Corrected p99 against load (measured)\n\n";
        let tiers = tiers_of(s);
        let _ = writeln!(o, "| tenants | rate (req/s) | {} |", tiers.join(" | "));
        let _ = writeln!(o, "|---|---|{}", "---|".repeat(tiers.len()));
        for p in s.points.iter().filter(|p| p.status == PointStatus::Complete) {
            let cells: Vec<String> = tiers
                .iter()
                .map(|t| {
                    s.latency
                        .iter()
                        .find(|l| &l.tier == t && l.point == p.key)
                        .map_or("—".into(), |l| format!("{:.2} ms", l.p99_ms))
                })
                .collect();
            let _ = writeln!(o, "| {} | {} | {} |", p.tenants, rate(p.rate), cells.join(" | "));
        }
    }
    o
}

const COST_NOTE: &str = "Every cost is modelled: the pricing table applied to what a run measured. A *measured* figure is a \
run's own (`points/<key>/summary.json`, `tiers[].cost.monthly_usd`); an *extrapolated* one is the cost model applied to \
the nearest run at another tenant count or rate (`sweep.json`, `curves[].points[]` with `measured: false` and `from`). \
A cost marked ≥ is a lower bound: shared-ec2 above the rate of a run that did not reach its capacity.";

const NO_CROSSING: &str = "No two tiers' cost curves cross within the range sampled (a quarter of the lowest to four times \
the highest value measured on each axis).";

fn status(p: PointStatus) -> &'static str {
    match p {
        PointStatus::Pending => "pending",
        PointStatus::Complete => "complete",
        PointStatus::Interrupted => "interrupted",
        PointStatus::Failed => "failed",
    }
}

fn rate(r: f64) -> String {
    let s = format!("{r:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn meta(s: &SweepSummary, first: Option<&Summary>) -> Vec<(&'static str, String)> {
    let done = s.points.iter().filter(|p| p.status == PointStatus::Complete).count();
    let kept = s.points.iter().filter(|p| p.resumed).count();
    let mut rows = vec![
        (
            "scenario",
            format!(
                "{} (`{}`, sha256 {})",
                s.scenario.name,
                s.scenario.path,
                &s.scenario.hash[..12.min(s.scenario.hash.len())]
            ),
        ),
        (
            "matrix",
            format!(
                "tenants {:?} × rate [{}] req/s (varied: {}; from {})",
                s.matrix.tenants,
                s.matrix.rate.iter().map(|r| rate(*r)).collect::<Vec<_>>().join(", "),
                s.matrix.varied.join(", "),
                s.matrix.from
            ),
        ),
        ("tiers", s.tiers.join(", ")),
        (
            "status",
            format!(
                "{} — {done} of {} points finished ({kept} kept from an earlier run), wall time {:.1} s over all invocations, started {}",
                status_word(s),
                s.points.len(),
                s.wall_time_s,
                s.started_at
            ),
        ),
        ("target", s.target.clone()),
    ];
    if let Some(t) = &s.tool {
        rows.push(("harness", format!("{} {} ({})", t.name, t.version, crate::fmt::provenance(t))));
    }
    if let Some(f) = first {
        rows.push(("host", format!("{}, {} CPUs, kernel {}", f.host.hostname, f.host.cpus, f.host.kernel)));
    }
    if let Some(e) = &s.error {
        rows.push(("note", e.clone()));
    }
    rows
}

fn status_word(s: &SweepSummary) -> &'static str {
    match s.status {
        isobench_results::RunStatus::Complete => "complete",
        isobench_results::RunStatus::Interrupted => "interrupted (re-run the same command to resume)",
        isobench_results::RunStatus::Failed => "failed",
    }
}

/// The curves grouped by (axis, fixed), in the order they were computed.
fn groups(s: &SweepSummary) -> Vec<(Axis, f64, Vec<&CostCurve>)> {
    let mut out: Vec<(Axis, f64, Vec<&CostCurve>)> = Vec::new();
    for c in &s.curves {
        match out.iter_mut().find(|(a, f, _)| *a == c.axis && *f == c.fixed) {
            Some(g) => g.2.push(c),
            None => out.push((c.axis, c.fixed, vec![c])),
        }
    }
    out
}

fn tiers_of(s: &SweepSummary) -> Vec<String> {
    s.tiers.clone()
}

fn cost_title(axis: Axis, fixed: f64) -> String {
    match axis {
        Axis::Tenants => format!("Monthly cost against tenants, at {} req/s (modelled)", rate(fixed)),
        Axis::Rate => format!("Monthly cost against rate, with {} tenants (modelled)", fixed),
    }
}

/// The rows a cost table shows: every measured x, and the first and last sampled ones.
fn table_rows(curves: &[&CostCurve]) -> Vec<usize> {
    let Some(c) = curves.first() else { return Vec::new() };
    let n = c.points.len();
    let mut rows: BTreeSet<usize> = c.points.iter().enumerate().filter(|(_, p)| p.measured).map(|(i, _)| i).collect();
    if n > 0 {
        rows.insert(0);
        rows.insert(n - 1);
    }
    rows.into_iter().collect()
}

fn kind(curves: &[&CostCurve], i: usize) -> String {
    let p = &curves[0].points[i];
    if p.measured { "measured".into() } else { format!("extrapolated from {}", p.from) }
}

fn x_label(axis: Axis, x: f64) -> String {
    match axis {
        Axis::Tenants => format!("{}", x.round() as u64),
        Axis::Rate => rate(x),
    }
}

fn cost_table_md(axis: Axis, curves: &[&CostCurve]) -> String {
    let mut o = String::new();
    let head: Vec<&str> = curves.iter().map(|c| c.tier.as_str()).collect();
    let _ = writeln!(o, "| {} | kind | {} |", axis_name(axis), head.join(" | "));
    let _ = writeln!(o, "|---|---|{}", "---|".repeat(head.len()));
    for i in table_rows(curves) {
        let cells: Vec<String> = curves.iter().map(|c| cost_cell(&c.points[i])).collect();
        let _ =
            writeln!(o, "| {} | {} | {} |", x_label(axis, curves[0].points[i].x), kind(curves, i), cells.join(" | "));
    }
    o
}

/// A monthly cost, `≥ $69.12` when it is a lower bound.
fn cost_cell(p: &isobench_results::sweep::CurvePoint) -> String {
    if p.lower_bound { format!("≥ {}", usd(p.monthly_usd)) } else { usd(p.monthly_usd) }
}

fn axis_name(axis: Axis) -> &'static str {
    match axis {
        Axis::Tenants => "tenants",
        Axis::Rate => "rate (req/s)",
    }
}

/// `report.html` of a sweep: one self-contained page, as the run's (`crate::html`).
pub fn html(s: &SweepSummary, first: Option<&Summary>) -> Result<String, ReportError> {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>isobench sweep {}</title>\n<style>{}{}</style>\n</head>\n<body>\n",
        crate::html::CSP,
        esc(&s.sweep_id),
        crate::html::STYLE,
        EXTRA_STYLE
    );
    let _ = writeln!(o, "<h1>isobench sweep {}</h1>", esc(&s.sweep_id));
    if let Some(l) = first.and_then(crate::limits::limits) {
        let _ = writeln!(
            o,
            "<div class=\"banner\"><p><b>What this run is: {}.</b> Real here: {}.</p><p>Not AWS:</p><ul>",
            esc(l.title),
            esc(&l.real.join("; "))
        );
        for n in &l.not_aws {
            let _ = writeln!(o, "<li>{}</li>", esc(n));
        }
        let _ = writeln!(o, "</ul></div>");
    }
    let _ = writeln!(o, "<table class=\"meta\">");
    for (k, v) in meta(s, first) {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v).replace('`', ""));
    }
    let _ = writeln!(o, "</table>");
    // Charts first: each with its crossings in words; the full table of crossings and the
    // points (with their picks) follow.
    for (axis, fixed, curves) in groups(s) {
        let _ = writeln!(o, "<h2>{}</h2>", esc(&cost_title(axis, fixed)));
        let lines: Vec<SweepLine> = curves
            .iter()
            .map(|c| SweepLine {
                tier: c.tier.clone(),
                points: c.points.iter().map(|p| (p.x, p.monthly_usd, p.measured)).collect(),
            })
            .collect();
        let id = format!("sweep-cost-{}", axis.as_str());
        let x_desc = match axis {
            Axis::Tenants => "tenants (log)",
            Axis::Rate => "offered rate, req/s (log)",
        };
        let svg = sweep_chart(
            &id,
            &lines,
            x_desc,
            "USD a month, modelled (log)",
            &|v| x_label(axis, *v),
            &|v| axis_usd(*v),
            true,
        )?;
        let _ = writeln!(
            o,
            "<figure>{svg}<figcaption>Filled circles: the measured runs' modelled cost. Dashed: the cost model \
             extrapolating from the nearest run (each sample's run in <code>sweep.json</code>).</figcaption></figure>"
        );
        let sentences: Vec<&str> =
            s.crossovers.iter().filter(|c| c.axis == axis && c.fixed == fixed).map(|c| c.sentence.as_str()).collect();
        if !sentences.is_empty() {
            let _ = writeln!(o, "<ul class=\"crossovers\">");
            for line in sentences {
                let _ = writeln!(o, "<li>{}</li>", esc(line));
            }
            let _ = writeln!(o, "</ul>");
        }
        cost_table_html(&mut o, axis, &curves);
    }
    latency_html(&mut o, s)?;
    let _ = writeln!(
        o,
        "<h2>Crossovers <span class=\"modelled\">modelled</span></h2>\n<p class=\"note\">{}</p>",
        esc(COST_NOTE).replace(['*', '`'], "")
    );
    if s.crossovers.is_empty() {
        let _ = writeln!(o, "<p>{}</p>", esc(NO_CROSSING));
    } else {
        crossover_table(&mut o, s);
    }
    points_html(&mut o, s);
    let _ = writeln!(
        o,
        "<p class=\"note\">Rendered by isobench from <code>sweep.json</code>; each point's own report is linked above.</p>\n</body>\n</html>"
    );
    Ok(o)
}

/// The run report's style, and the one class a sweep adds.
const EXTRA_STYLE: &str = "td.extrapolated { color: #555; font-style: italic; }\n";

/// A dollar axis label without trailing zeros after the point (`$0.5`, `$20`, `$100`).
fn axis_usd(v: f64) -> String {
    let t = usd(v);
    if t.contains('.') { t.trim_end_matches('0').trim_end_matches('.').to_string() } else { t }
}

/// The crossovers grouped as the curves are: (axis, fixed) and their sentences.
fn crossover_groups(s: &SweepSummary) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for c in &s.crossovers {
        let title = match c.axis {
            Axis::Tenants => format!("Against tenants, at {} req/s", rate(c.fixed)),
            Axis::Rate => format!("Against rate, with {} tenants", c.fixed),
        };
        match out.iter_mut().find(|(t, _)| *t == title) {
            Some(g) => g.1.push(&c.sentence),
            None => out.push((title, vec![&c.sentence])),
        }
    }
    out
}

/// Every crossover in one table; each one's sentence is under its chart.
fn crossover_table(o: &mut String, s: &SweepSummary) {
    let _ = writeln!(
        o,
        "<table class=\"crossovers\"><tr><th>along</th><th>held at</th><th>cheaper below</th><th>crossing</th>\
         <th>cheaper above</th><th>figures from</th></tr>"
    );
    for c in &s.crossovers {
        let unit = |v: f64| match c.axis {
            Axis::Tenants => format!("{} tenants", v.round()),
            Axis::Rate => format!("{} req/s", rate(v)),
        };
        let (along, held) = match c.axis {
            Axis::Tenants => ("tenants", format!("{} req/s", rate(c.fixed))),
            Axis::Rate => ("rate", format!("{} tenants", c.fixed)),
        };
        let at = match c.at_high {
            Some(h) => format!("{}–{}", unit(c.at), unit(h)),
            None => unit(c.at),
        };
        let basis =
            if c.at_measured_point { "measured".to_string() } else { format!("model, {}", c.runs.join(" and ")) };
        let _ = writeln!(
            o,
            "<tr><td>{along}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&held),
            esc(&c.cheaper_below),
            esc(&at),
            esc(&c.cheaper_above),
            esc(&basis)
        );
    }
    let _ = writeln!(o, "</table>\n<p class=\"note\">Each crossing is said in words under its chart below.</p>");
}

fn points_html(o: &mut String, s: &SweepSummary) {
    let _ = writeln!(
        o,
        "<h2>Points</h2>\n<table class=\"points\"><tr><th>point</th><th>status</th><th>run id</th><th>kept from an earlier run</th><th>wall time</th><th>report</th></tr>"
    );
    for p in &s.points {
        let link = if p.status == PointStatus::Complete {
            format!("<a href=\"{}/report.html\">report</a>", esc(&p.dir))
        } else {
            "—".into()
        };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{link}</td></tr>",
            esc(&p.key),
            status(p.status),
            esc(p.run_id.as_deref().unwrap_or("—")),
            if p.resumed { "yes" } else { "no" },
            p.wall_time_s.map_or("—".into(), |w| format!("{w:.1} s"))
        );
    }
    let _ = writeln!(o, "</table>");
    for p in s.points.iter().filter(|p| !p.picks.is_empty()) {
        let _ = writeln!(o, "<p>Picks at {}:</p><ul>", esc(&p.key));
        for line in &p.picks {
            let _ = writeln!(o, "<li>{}</li>", esc(line));
        }
        let _ = writeln!(o, "</ul>");
    }
}

fn cost_table_html(o: &mut String, axis: Axis, curves: &[&CostCurve]) {
    let _ = write!(o, "<table class=\"cost\"><tr><th>{}</th><th>kind</th>", axis_name(axis));
    for c in curves {
        let _ = write!(o, "<th>{}</th>", esc(&c.tier));
    }
    let _ = writeln!(o, "</tr>");
    for i in table_rows(curves) {
        let k = kind(curves, i);
        let class = if curves[0].points[i].measured { "measured" } else { "extrapolated" };
        let _ = write!(
            o,
            "<tr class=\"{class}\"><td>{}</td><td class=\"{class}\">{}</td>",
            x_label(axis, curves[0].points[i].x),
            esc(&k)
        );
        for c in curves {
            let _ = write!(o, "<td class=\"{class}\">{}</td>", esc(&cost_cell(&c.points[i])));
        }
        let _ = writeln!(o, "</tr>");
    }
    let _ = writeln!(o, "</table>");
}

fn latency_html(o: &mut String, s: &SweepSummary) -> Result<(), ReportError> {
    if s.latency.is_empty() {
        return Ok(());
    }
    let _ = writeln!(o, "<h2>Corrected p99 against load (measured)</h2>");
    let tenants: BTreeSet<u64> = s.latency.iter().map(|l| l.tenants).collect();
    for n in tenants {
        let lines: Vec<SweepLine> = s
            .tiers
            .iter()
            .map(|t| {
                let mut pts: Vec<(f64, f64, bool)> = s
                    .latency
                    .iter()
                    .filter(|l| &l.tier == t && l.tenants == n)
                    .map(|l| (l.rate, l.p99_ms, true))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                SweepLine { tier: t.clone(), points: pts }
            })
            .filter(|l| !l.points.is_empty())
            .collect();
        let svg = sweep_chart(
            "sweep-p99",
            &lines,
            "offered rate, req/s (log)",
            "corrected p99, measured (log)",
            &|v| rate(*v),
            &|v| axis_ms(*v * 1e3),
            false,
        )?;
        let _ = writeln!(
            o,
            "<h3>{n} tenants</h3>\n<figure>{svg}<figcaption>Every point is a measured run.</figcaption></figure>"
        );
    }
    Ok(())
}
