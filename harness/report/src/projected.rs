//! "Projected on AWS (modelled)": each tier's measured latency beside the same latency with
//! published AWS overheads added (`TierSummary::projected`, from `isobench_cost::projection`),
//! and the components with their sources. Absent from runs without projections (AWS runs, and
//! summaries written before the field existed), so their reports do not change.

use std::collections::BTreeMap;
use std::fmt::Write;

use isobench_results::{MsRange, ProjectedComponent, ProjectedLatency, Summary, TierSummary};

use crate::charts::{self, ProjectedBar};
use crate::error::ReportError;
use crate::fmt::esc;
use crate::text::ms;

const TITLE: &str = "Projected on AWS (modelled)";

const INTRO: &str = "Not a measurement: each tier's measured corrected p50 and p99 (this machine) with the published \
                     overheads of the tier's AWS path added, as ranges (lows added to lows, highs to highs). The \
                     projection is kept apart in `summary.json` (`projected`), never recorded into the histograms \
                     and never merged into the measured figures.";

fn projected(s: &Summary) -> Vec<(&TierSummary, &ProjectedLatency)> {
    s.tiers.iter().filter_map(|t| t.projected.as_ref().map(|p| (t, p))).collect()
}

/// A range in milliseconds, in the unit that reads best.
fn range(r: MsRange) -> String {
    if r.high_ms >= 10_000.0 {
        format!("{}–{} s", trim(r.low_ms / 1e3, 1), trim(r.high_ms / 1e3, 1))
    } else if r.high_ms >= 100.0 {
        format!("{:.0}–{:.0} ms", r.low_ms, r.high_ms)
    } else if r.high_ms >= 10.0 {
        format!("{:.1}–{:.1} ms", r.low_ms, r.high_ms)
    } else {
        format!("{:.2}–{:.2} ms", r.low_ms, r.high_ms)
    }
}

fn trim(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The source, and the file's note on the figure (its age, what is a judgement) when it has one.
fn source_and_note(c: &ProjectedComponent) -> String {
    match &c.note {
        Some(n) => format!("{} (note: {n})", c.source),
        None => c.source.clone(),
    }
}

fn component_range(c: &ProjectedComponent) -> String {
    range(MsRange { low_ms: c.low_ms, high_ms: c.high_ms })
}

fn cold_cell(p: &ProjectedLatency) -> String {
    match p.cold_share {
        Some(share) if p.cold_in_p99 => format!("{:.2}% (reaches p99)", share * 100.0),
        Some(share) => format!("{:.2}%", share * 100.0),
        None => "—".into(),
    }
}

fn start_cell(p: &ProjectedLatency) -> String {
    p.start.map_or("—".into(), range)
}

fn overheads_line(s: &Summary) -> String {
    match &s.overheads {
        Some(o) => {
            let sha = o.sha256.as_ref().map_or(String::new(), |h| format!(", sha256 `{}`", &h[..12.min(h.len())]));
            format!("Overheads: {}, as of {}{sha}.", o.source, o.as_of)
        }
        None => "Overheads: source not recorded.".into(),
    }
}

/// Each component once per use (what it adds to), with the tiers that use it so: a cold-start
/// figure may add to p99 in one tier and only to the start in another.
fn components<'a>(rows: &[(&'a TierSummary, &'a ProjectedLatency)]) -> Vec<(&'a ProjectedComponent, Vec<&'a str>)> {
    let mut by_use: BTreeMap<(&str, &[String]), (&ProjectedComponent, Vec<&str>)> = BTreeMap::new();
    for (t, p) in rows {
        for c in &p.components {
            by_use.entry((c.id.as_str(), &c.adds_to[..])).or_insert((c, Vec::new())).1.push(t.tier.as_str());
        }
    }
    by_use.into_values().collect()
}

/// The section of `report.md`; nothing when no tier was projected.
pub fn markdown_section(o: &mut String, s: &Summary) {
    let rows = projected(s);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## {TITLE}\n\n{INTRO} {}\n", overheads_line(s));
    let _ = writeln!(
        o,
        "| tier | measured p50 | p50 on AWS (modelled) | measured p99 | p99 on AWS (modelled) | cold share | start on AWS (modelled) |\n\
         |---|---|---|---|---|---|---|"
    );
    for (t, p) in &rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            t.tier,
            ms(p.measured_p50_ms * 1e3),
            range(p.p50),
            ms(p.measured_p99_ms * 1e3),
            range(p.p99),
            cold_cell(p),
            start_cell(p)
        );
    }
    let _ = writeln!(
        o,
        "\nPublished overheads summed in:\n\n| id | what | range | adds to | tiers | quality | source | read on |\n|---|---|---|---|---|---|---|---|"
    );
    for (c, tiers) in components(&rows) {
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
            c.id,
            c.what,
            component_range(c),
            c.adds_to.join(", "),
            tiers.join(", "),
            c.quality,
            source_and_note(c),
            c.read_on
        );
    }
    let _ = writeln!(o, "\nHow each was made:\n");
    for (t, p) in &rows {
        let _ = writeln!(o, "- **{}**: `{}`. {}.", t.tier, p.formula, p.notes.join("; "));
    }
}

/// The section of `report.html`; nothing when no tier was projected.
pub fn html_section(o: &mut String, s: &Summary) -> Result<(), ReportError> {
    let rows = projected(s);
    if rows.is_empty() {
        return Ok(());
    }
    let modelled = "<span class=\"modelled\">modelled</span>";
    let _ = writeln!(
        o,
        "<h2>Projected on AWS {modelled}</h2>\n<p class=\"note\">{} {}</p>",
        esc(INTRO),
        esc(&overheads_line(s))
    );
    let bars: Vec<ProjectedBar> = rows
        .iter()
        .map(|(t, p)| ProjectedBar {
            tier: t.tier.clone(),
            measured_p50_ms: p.measured_p50_ms,
            measured_p99_ms: p.measured_p99_ms,
            p50_ms: (p.p50.low_ms, p.p50.high_ms),
            p99_ms: (p.p99.low_ms, p.p99.high_ms),
        })
        .collect();
    let _ = writeln!(
        o,
        "<figure>\n{}<figcaption>Per tier, p50 (left) and p99 (right): the dot is measured here, the bar is the range \
         projected on AWS from published overheads (modelled, not a measurement).</figcaption>\n</figure>",
        charts::projected(&bars)?
    );
    let _ = writeln!(
        o,
        "<table data-table=\"projected\">\n<tr><th>tier</th><th>measured p50</th><th>p50 on AWS {modelled}</th>\
         <th>measured p99</th><th>p99 on AWS {modelled}</th><th>cold share</th><th>start on AWS {modelled}</th></tr>"
    );
    for (t, p) in &rows {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.tier),
            esc(&ms(p.measured_p50_ms * 1e3)),
            esc(&range(p.p50)),
            esc(&ms(p.measured_p99_ms * 1e3)),
            esc(&range(p.p99)),
            esc(&cold_cell(p)),
            esc(&start_cell(p))
        );
    }
    let _ = writeln!(
        o,
        "</table>\n<h3>Published overheads summed in {modelled}</h3>\n<table data-table=\"projected-components\">\n\
         <tr><th>id</th><th>what</th><th>range</th><th>adds to</th><th>tiers</th><th>quality</th><th>source</th><th>read on</th></tr>"
    );
    for (c, tiers) in components(&rows) {
        let _ = writeln!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.id),
            esc(&c.what),
            esc(&component_range(c)),
            esc(&c.adds_to.join(", ")),
            esc(&tiers.join(", ")),
            esc(&c.quality),
            esc(&source_and_note(c)),
            esc(&c.read_on)
        );
    }
    let _ = writeln!(o, "</table>\n<ul class=\"note\" data-list=\"projected-formulas\">");
    for (t, p) in &rows {
        let _ = writeln!(
            o,
            "<li><b>{}</b>: <code>{}</code>. {}.</li>",
            esc(&t.tier),
            esc(&p.formula),
            esc(&p.notes.join("; "))
        );
    }
    let _ = writeln!(o, "</ul>");
    Ok(())
}

/// The line the terminal prints after a run with projections, pointing at the report; empty
/// without them.
pub fn terminal_line(s: &Summary) -> String {
    if projected(s).is_empty() {
        return String::new();
    }
    format!("projected AWS latency (modelled, from published overheads): see \"{TITLE}\" in report.md or report.html\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed baseline without its projections (older runs have none).
    fn quick() -> Summary {
        let mut s: Summary =
            serde_json::from_str(include_str!("../../../results/baselines/quick/summary.json")).unwrap();
        s.overheads = None;
        s.tiers.iter_mut().for_each(|t| t.projected = None);
        s
    }

    fn with_projection(mut s: Summary) -> Summary {
        let o = isobench_results::OverheadsInfo { as_of: "2026-12-06".into(), source: "built-in".into(), sha256: None };
        s.overheads = Some(o);
        for t in &mut s.tiers {
            t.projected = Some(ProjectedLatency {
                basis: "modelled".into(),
                measured_p50_ms: t.latency.corrected.p50_us / 1e3,
                measured_p99_ms: t.latency.corrected.p99_us / 1e3,
                cold_share: None,
                cold_in_p50: false,
                cold_in_p99: false,
                p50: MsRange { low_ms: 0.4, high_ms: 0.8 },
                p99: MsRange { low_ms: 1.2, high_ms: 1.6 },
                start: Some(MsRange { low_ms: 16_500.0, high_ms: 26_000.0 }),
                formula: "p50 = measured p50 + vpc-hop-ec2".into(),
                components: vec![ProjectedComponent {
                    id: "vpc-hop-ec2".into(),
                    what: "network round trip <same AZ>".into(),
                    low_ms: 0.2,
                    high_ms: 0.56,
                    adds_to: vec!["p50".into(), "p99".into()],
                    source: "ping RTT, 2009".into(),
                    quality: "secondary".into(),
                    read_on: "2026-12-06".into(),
                    note: Some("old figures".into()),
                }],
                notes: vec!["modelled: not a measurement".into()],
            });
        }
        s
    }

    #[test]
    fn a_figure_used_differently_by_two_tiers_gets_a_row_each() {
        let mut s = with_projection(quick());
        s.tiers.truncate(2);
        s.tiers[1].projected.as_mut().unwrap().components[0].adds_to = vec!["start".into()];
        let mut md = String::new();
        markdown_section(&mut md, &s);
        let (a, b) = (&s.tiers[0].tier, &s.tiers[1].tier);
        assert!(md.contains(&format!("| p50, p99 | {a} | secondary")), "{md}");
        assert!(md.contains(&format!("| start | {b} | secondary")), "{md}");
    }

    #[test]
    fn runs_without_projections_have_no_section() {
        let s = quick();
        let (mut md, mut html) = (String::new(), String::new());
        markdown_section(&mut md, &s);
        html_section(&mut html, &s).unwrap();
        assert!(md.is_empty() && html.is_empty() && terminal_line(&s).is_empty());
    }

    #[test]
    fn the_section_shows_measured_beside_projected_with_sources_labelled_modelled() {
        let s = with_projection(quick());
        let mut md = String::new();
        markdown_section(&mut md, &s);
        assert!(md.contains("## Projected on AWS (modelled)"), "{md}");
        assert!(md.contains("| 0.40–0.80 ms |") && md.contains("| 1.20–1.60 ms |"), "{md}");
        assert!(md.contains("16.5–26 s"), "{md}");
        assert!(md.contains("Overheads: built-in, as of 2026-12-06."), "{md}");
        let tiers: Vec<&str> = s.tiers.iter().map(|t| t.tier.as_str()).collect();
        assert!(
            md.contains(&format!(
                "| p50, p99 | {} | secondary | ping RTT, 2009 (note: old figures) | 2026-12-06 |",
                tiers.join(", ")
            )),
            "{md}"
        );
        let mut html = String::new();
        html_section(&mut html, &s).unwrap();
        assert_eq!(html.matches("<g class=\"data\" data-tier=").count(), s.tiers.len(), "one chart group per tier");
        assert!(html.contains("<h2>Projected on AWS <span class=\"modelled\">modelled</span></h2>"), "{html}");
        assert!(html.contains("data-table=\"projected-components\""));
        assert!(html.contains("network round trip &lt;same AZ&gt;"), "text is escaped");
        assert!(terminal_line(&s).contains("Projected on AWS (modelled)"));
        let page = crate::html(&s, None).unwrap();
        assert!(page.contains("data-table=\"projected\""), "the page carries the section");
        assert!(crate::markdown(&s).contains("## Projected on AWS (modelled)"), "report.md carries it");
    }
}
