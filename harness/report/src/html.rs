//! `report.html`: the run on one page, tables and inline SVG charts, nothing to fetch.

use std::fmt::Write;

use isobench_results::hlog::Histograms;
use isobench_results::{NoisyNeighbour, Summary, TierSummary};

use crate::charts::{self, ColdStart, CostPoint, Curve, Slowdown, usd};
use crate::error::ReportError;
use crate::fmt::{esc, ms};
use crate::leak;
use crate::text::ttfb_cell;

/// Forbids every request from the page: no scripts, fonts, frames or fetches; inline styles and
/// `data:` images only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

pub(crate) const STYLE: &str = "
body { font-family: sans-serif; margin: 24px auto; max-width: 1100px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
table.meta td, table.meta th { text-align: left; }
table.verdict td, table.verdict th { text-align: left; }
svg { max-width: 100%; height: auto; display: block; }
figure { margin: 0.8em 0; }
figcaption { font-size: 0.9em; color: #555; margin-top: 0.3em; }
.banner { padding: 8px 12px; border-left: 4px solid #999; background: #f6f6f6; margin: 0.8em 0; }
.banner.warn { border-color: #c62828; background: #fdecea; }
.modelled { display: inline-block; font-size: 0.75em; font-weight: bold; color: #6a1b9a; border: 1px solid #6a1b9a; border-radius: 3px; padding: 0 4px; vertical-align: middle; }
.note { color: #555; font-style: italic; }
.unexpected { color: #c62828; font-weight: bold; }
";

/// The whole page. `histograms` gives the full percentile curves; without it the latency
/// chart falls back to the five percentiles in the summary, and says so.
pub fn html(s: &Summary, histograms: Option<&Histograms>) -> Result<String, ReportError> {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>isobench run {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&s.run_id)
    );
    header(&mut o, s);
    crate::verdict::html(&mut o, s);
    crate::picks::html(&mut o, s);
    key_figures(&mut o, s);
    latency(&mut o, s, histograms)?;
    cold_starts(&mut o, s)?;
    cost(&mut o, s)?;
    crate::projected::html_section(&mut o, s)?;
    leak_matrix(&mut o, s)?;
    noisy(&mut o, s)?;
    let _ = write!(
        o,
        "<p class=\"note\">Rendered by isobench from <code>summary.json</code> and <code>{}</code>. \
         Latency is measured from each request's intended start (corrected for coordinated omission).</p>\n</body>\n</html>\n",
        esc(&s.histograms)
    );
    Ok(o)
}

const MODELLED: &str = "<span class=\"modelled\">modelled</span>";

fn header(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "<h1>isobench run {}</h1>", esc(&s.run_id));
    let commit = crate::fmt::provenance(&s.tool);
    let rows = [
        (
            "scenario",
            format!(
                "{} (<code>{}</code>, sha256 {})",
                esc(&s.scenario.name),
                esc(&s.scenario.path),
                esc(&s.scenario.hash[..12.min(s.scenario.hash.len())])
            ),
        ),
        ("status", format!("{:?}, started {}, wall time {:.1} s", s.status, esc(&s.started_at), s.wall_time_s)),
        ("backend", format!("{} — fidelity <b>{}</b>", esc(&s.backend.name), esc(s.backend.fidelity.as_str()))),
        (
            "host",
            format!(
                "<code>{}</code>: {} ({}), kernel {}, {} CPUs, {} GiB",
                esc(&s.host.hostname),
                esc(&s.host.os),
                esc(&s.host.arch),
                esc(&s.host.kernel),
                s.host.cpus,
                s.host.memory_bytes >> 30
            ),
        ),
        ("harness", format!("{} {} ({})", esc(&s.tool.name), esc(&s.tool.version), esc(&commit))),
    ];
    let _ = writeln!(o, "<table class=\"meta\">");
    for (k, v) in rows {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    if let Some((load, loaded)) = crate::fmt::load(&s.host) {
        let warn = if loaded { " <b>loaded machine</b>: not a quiet machine's figures" } else { "" };
        let _ = writeln!(o, "<tr><th>load</th><td>{}{warn}</td></tr>", esc(&load));
    }
    if let Some(p) = &s.pricing {
        let _ = writeln!(
            o,
            "<tr><th>pricing</th><td>{} {MODELLED}: {}, prices as of {}, from {}</td></tr>",
            esc(&p.currency),
            esc(&p.region),
            esc(&p.as_of),
            esc(&p.source)
        );
    }
    let _ = writeln!(o, "</table>");
    if let Some(l) = crate::limits::limits(s) {
        let _ = writeln!(
            o,
            "<div class=\"banner\" data-fidelity=\"{}\"><p><b>What this run is: {}.</b> Real here: {}.</p><p>Not AWS:</p><ul>",
            esc(s.backend.fidelity.as_str()),
            esc(l.title),
            esc(&l.real.join("; "))
        );
        for n in &l.not_aws {
            let _ = writeln!(o, "<li>{}</li>", esc(n));
        }
        let _ = writeln!(o, "</ul></div>");
    }
    if let Some(e) = &s.error {
        let _ = writeln!(o, "<p class=\"banner warn\">Run did not complete: {}</p>", esc(e));
    }
    if let Some(f) = s.scenario.effective["local"]["break_isolation"].as_array().filter(|f| !f.is_empty()) {
        let names: Vec<String> = f.iter().map(|v| esc(&v.to_string())).collect();
        let _ = writeln!(
            o,
            "<p class=\"banner warn\">Test faults injected into the emulator: {}. This run deliberately breaks isolation; \
             it measures the harness, not a tier.</p>",
            names.join(", ")
        );
    }
    if !s.left_behind.is_empty() {
        let items: Vec<String> = s.left_behind.iter().map(|r| esc(r)).collect();
        let _ = writeln!(
            o,
            "<p class=\"banner warn\">Left behind after teardown (run <code>isobench sweep</code>): {}</p>",
            items.join(", ")
        );
    }
}

fn start_p50_ms(t: &TierSummary) -> f64 {
    match &t.functions {
        Some(f) if f.init.count > 0 => f.init.p50_us / 1e3,
        _ => t.instance_start_ms.median,
    }
}

fn key_figures(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "<h2>Tiers side by side</h2>");
    // A column for time to first byte only in runs with streamed responses.
    let streams = s.tiers.iter().any(|t| crate::text::ttfb(t).is_some());
    let _ = writeln!(
        o,
        "<table data-table=\"tiers\">\n<tr><th>tier</th><th>tenants</th><th>req/s target / achieved / ok</th><th>sent</th><th>ok</th><th>errors</th><th>timeouts</th>\
         <th>p50</th><th>p99</th><th>p99.9</th>{}<th>lag p99</th><th>start p50</th>\
         <th>per million requests {MODELLED}</th><th>monthly {MODELLED}</th></tr>",
        if streams { "<th>TTFB p50 / p99 (streamed)</th>" } else { "" }
    );
    for t in &s.tiers {
        let c = &t.latency.corrected;
        let (per_m, month) = t
            .cost
            .as_ref()
            .map_or(("–".into(), "–".into()), |c| (usd(c.per_million_requests_usd), usd(c.monthly_usd)));
        let ttfb = if streams { format!("<td>{}</td>", esc(&ttfb_cell(t))) } else { String::new() };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             {ttfb}<td>{}</td><td>{:.2} ms</td><td>{per_m}</td><td>{month}</td></tr>",
            esc(&t.tier),
            t.tenants,
            crate::text::rates(t),
            t.traffic.sent,
            t.traffic.ok,
            t.traffic.errors,
            t.traffic.timeouts,
            ms(c.p50_us),
            ms(c.p99_us),
            ms(c.p999_us),
            ms(t.latency.generator_lag.p99_us),
            start_p50_ms(t)
        );
    }
    let _ = writeln!(
        o,
        "</table>\n<p class=\"note\">Corrected latency (from each request's intended start). Start: instance or task start \
         to the workload answering; for functions, the median cold-start INIT. Rates: the target; achieved, what went on the wire \
         within the traffic window; ok, the ok requests completed within it.{}</p>",
        if streams {
            " TTFB: time to the first byte of streamed function responses, from the intended start."
        } else {
            ""
        }
    );
}

fn figure(o: &mut String, svg: &str, caption: &str) {
    let _ = writeln!(o, "<figure>\n{svg}<figcaption>{caption}</figcaption>\n</figure>");
}

fn latency(o: &mut String, s: &Summary, histograms: Option<&Histograms>) -> Result<(), ReportError> {
    let _ = writeln!(o, "<h2>Latency percentiles (corrected)</h2>");
    let mut from_summary = false;
    let curves: Vec<Curve> = s
        .tiers
        .iter()
        .filter(|t| t.latency.corrected.count > 0)
        .map(|t| match histograms.and_then(|h| h.corrected.get(&t.tier)) {
            Some(h) => Curve { tier: t.tier.clone(), points: charts::curve(h) },
            None => {
                from_summary = true;
                let c = &t.latency.corrected;
                let points = [(0.3, c.p50_us), (1.0, c.p90_us), (2.0, c.p99_us), (3.0, c.p999_us), (4.0, c.max_us)];
                Curve { tier: t.tier.clone(), points: points.iter().map(|(n, us)| (*n, us / 1e3)).collect() }
            }
        })
        .collect();
    if curves.is_empty() {
        let _ = writeln!(o, "<p class=\"note\" data-empty=\"latency\">No requests completed in this run.</p>");
        return Ok(());
    }
    let source = if from_summary {
        "Drawn through the summary's p50, p90, p99, p99.9 and max (the histogram log was not available)."
    } else {
        "From the full histograms in the run's histogram log, merged over each tier's tenants and operations."
    };
    figure(
        o,
        &charts::latency(&curves)?,
        &format!(
            "Latency from each request's intended start against percentile, on a “nines” scale (p90, p99, p99.9 equally \
             spaced). {source}"
        ),
    );
    Ok(())
}

fn cold_starts(o: &mut String, s: &Summary) -> Result<(), ReportError> {
    let tiers: Vec<(&TierSummary, ColdStart)> = s
        .tiers
        .iter()
        .filter_map(|t| {
            let f = t.functions.as_ref()?;
            Some((
                t,
                ColdStart {
                    tier: t.tier.clone(),
                    cold_share: f.cold_share,
                    cold: f.cold,
                    ok: t.traffic.ok,
                    init_p50_ms: f.init.p50_us / 1e3,
                    init_p99_ms: f.init.p99_us / 1e3,
                    init_max_ms: f.init.max_us / 1e3,
                },
            ))
        })
        .collect();
    if tiers.is_empty() {
        return Ok(());
    }
    let _ = writeln!(o, "<h2>Cold starts</h2>");
    let data: Vec<ColdStart> = tiers.iter().map(|(_, c)| c.clone()).collect();
    figure(
        o,
        &charts::cold_starts(&data)?,
        "Share of ok invokes that started a new execution environment, and the INIT time of those starts.",
    );
    let _ = writeln!(
        o,
        "<table data-table=\"functions\">\n<tr><th>tier</th><th>cold / ok</th><th>INIT p50</th><th>INIT p99</th><th>INIT max</th>\
         <th>cold p99</th><th>warm p99</th><th>environments created</th><th>reused</th><th>GB-s billed</th></tr>"
    );
    for (t, c) in &tiers {
        let f = t.functions.as_ref().expect("filtered on functions");
        let env = t.environments.unwrap_or_default();
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{} / {} ({:.1}%)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td></tr>",
            esc(&t.tier),
            c.cold,
            c.ok,
            c.cold_share * 100.0,
            ms(f.init.p50_us),
            ms(f.init.p99_us),
            ms(f.init.max_us),
            ms(f.corrected_cold.p99_us),
            ms(f.corrected_warm.p99_us),
            env.created,
            env.reused,
            f.gb_seconds
        );
    }
    let _ = writeln!(o, "</table>");
    Ok(())
}

fn cost(o: &mut String, s: &Summary) -> Result<(), ReportError> {
    let _ = writeln!(o, "<h2>Cost against p99 {MODELLED}</h2>");
    let points: Vec<CostPoint> = s
        .tiers
        .iter()
        .filter_map(|t| {
            let c = t.cost.as_ref()?;
            Some(CostPoint {
                tier: t.tier.clone(),
                p99_ms: t.latency.corrected.p99_us / 1e3,
                per_million_usd: c.per_million_requests_usd,
                monthly_usd: c.monthly_usd,
            })
        })
        .collect();
    if points.is_empty() {
        let _ = writeln!(o, "<p class=\"note\" data-empty=\"cost\">No cost figures in this run.</p>");
    } else {
        figure(
            o,
            &charts::cost_vs_p99(&points)?,
            "Each tier's modelled AWS cost per million requests (from the pricing table, at the measured load) against \
             its measured corrected p99: down and to the left is cheaper and faster. Costs are modelled, latencies measured.",
        );
        let _ = writeln!(
            o,
            "<table data-table=\"cost\">\n<tr><th>tier</th><th>model</th><th>run</th><th>per tenant</th><th>per million requests</th>\
             <th>monthly</th><th>idle share</th><th>formula</th></tr>"
        );
        for t in &s.tiers {
            let Some(c) = &t.cost else { continue };
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}%</td><td>{}</td></tr>",
                esc(&t.tier),
                esc(&c.model),
                usd(c.run_usd),
                usd(c.per_tenant_usd),
                usd(c.per_million_requests_usd),
                format!("{}{}", usd(c.monthly_usd), crate::cost::mark(c)),
                c.idle_share * 100.0,
                esc(&c.formula)
            );
        }
        let _ = writeln!(o, "</table>");
        let keys = crate::cost::unverified_keys(s.tiers.iter().filter_map(|t| t.cost.as_ref()));
        if !keys.is_empty() {
            let note = crate::cost::unverified_note(&keys);
            let _ = writeln!(o, "<p class=\"note\" data-unverified=\"{}\">{}.</p>", keys.len(), esc(&note));
        }
    }
    calibration(o, s);
    Ok(())
}

fn calibration(o: &mut String, s: &Summary) {
    let rows: Vec<_> = s.tiers.iter().flat_map(|t| t.calibration.iter().map(move |c| (t, c))).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "<h3>Measured here against published AWS figures {MODELLED}</h3>\n<table data-table=\"calibration\">\n\
         <tr><th>tier</th><th>event</th><th>measured median</th><th>measured min–max</th><th>published on AWS</th><th>source</th></tr>"
    );
    for (t, c) in rows {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{:.2} ms</td><td>{:.2}–{:.2} ms</td><td>{:.0}–{:.0} ms</td><td>{}</td></tr>",
            esc(&t.tier),
            esc(&c.event),
            c.measured_ms.median,
            c.measured_ms.min,
            c.measured_ms.max,
            c.published_low_ms,
            c.published_high_ms,
            esc(&c.source)
        );
    }
    let _ = writeln!(o, "</table>");
}

fn leak_matrix(o: &mut String, s: &Summary) -> Result<(), ReportError> {
    let tiers: Vec<&TierSummary> = s.tiers.iter().filter(|t| !t.probes.is_empty()).collect();
    if tiers.is_empty() {
        return Ok(());
    }
    let _ = writeln!(o, "<h2>Leak matrix</h2>");
    let mut probes: Vec<(String, String, String)> = Vec::new();
    for c in tiers.iter().flat_map(|t| &t.probes) {
        if !probes.iter().any(|p| p.0 == c.probe) {
            probes.push((c.probe.clone(), c.channel.clone(), c.description.clone()));
        }
    }
    let cells: Vec<charts::Cell> = tiers
        .iter()
        .flat_map(|t| {
            t.probes.iter().map(|c| charts::Cell {
                probe: c.probe.clone(),
                channel: c.channel.clone(),
                tier: t.tier.clone(),
                verdict: c.verdict,
                expected: c.expected,
                unexpected: c.unexpected,
                hits: c.hits,
                trials: c.trials,
                controls_passed: c.controls_passed,
                controls: c.controls,
                blind: c.blind,
                bound: leak::bound(c),
            })
        })
        .collect();
    let names: Vec<String> = tiers.iter().map(|t| t.tier.clone()).collect();
    let rows: Vec<(String, String)> = probes.iter().map(|p| (p.0.clone(), p.1.clone())).collect();
    let unexpected: Vec<String> =
        cells.iter().filter(|c| c.unexpected).map(|c| format!("{} on {}", c.probe, c.tier)).collect();
    figure(
        o,
        &charts::leak_matrix(&rows, &names, &cells)?,
        &format!("{} Expected leaks are shown but do not fail the run.", leak::LEGEND),
    );
    if !unexpected.is_empty() {
        let _ = writeln!(o, "<p class=\"unexpected\">Unexpected leaks: {}.</p>", esc(&unexpected.join(", ")));
    }
    let _ = writeln!(o, "<ul>");
    for (id, channel, description) in &probes {
        let sources = tiers.iter().flat_map(|t| &t.probes).find(|c| &c.probe == id).map_or(&[][..], |c| &c.sources[..]);
        let links: Vec<String> = sources.iter().map(|u| format!("<code>{}</code>", esc(u))).collect();
        let cite = if links.is_empty() { String::new() } else { format!(" (AWS: {})", links.join(", ")) };
        let _ = writeln!(o, "<li><b>{}</b> ({}): {}{cite}</li>", esc(id), esc(channel), esc(description));
    }
    for (probe, on, note) in leak::notes(&tiers) {
        let _ = writeln!(o, "<li><b>{}</b> on {}: {}</li>", esc(probe), esc(&on.join(", ")), esc(note));
    }
    let _ = writeln!(o, "</ul>");
    Ok(())
}

fn noisy(o: &mut String, s: &Summary) -> Result<(), ReportError> {
    let tiers: Vec<_> = s.tiers.iter().filter_map(|t| t.noisy_neighbour.as_ref().map(|n| (t, n))).collect();
    let Some((_, n0)) = tiers.first() else { return Ok(()) };
    let _ = writeln!(o, "<h2>Noisy neighbour (NN-CPU)</h2>");
    let slowdown = |(t, n): &(&TierSummary, &NoisyNeighbour)| Slowdown {
        tier: t.tier.clone(),
        min: n.slowdown.min,
        median: n.slowdown.median,
        max: n.slowdown.max,
        count: n.slowdown.count,
    };
    let method = format!(
        "Aggressor <code>{}</code> sends {:.0} req/s of {} µs CPU each; each victim's corrected p99 in contended windows \
         over its p99 in the solo window of the same round ({} rounds of {:.1} s).",
        esc(&n0.aggressor),
        n0.aggressor_rate,
        n0.aggressor_compute_us,
        n0.rounds,
        n0.window_s
    );
    // Host-bound figures measure this host, so they stay out of the chart that compares tiers.
    let own: Vec<Slowdown> = tiers.iter().filter(|(_, n)| n.host_bound.is_none()).map(slowdown).collect();
    if own.is_empty() {
        let _ = writeln!(o, "<p>{method}</p>");
    } else {
        let caption = format!("{method} Dot: median; bar: min to max; line: 1× (no effect).");
        figure(o, &charts::slowdowns(&own)?, &caption);
    }
    if tiers.iter().any(|(_, n)| n.host_bound.is_some()) {
        let _ = writeln!(
            o,
            "<p class=\"banner warn\">Host-bound figures: the rows marked so measure this host's contention, not the tier. \
             Every tenant and the load generator share this host's cores, so each tier's CPU quota sets its ranking; \
             they are not a comparison of tiers and are left out of the chart. On AWS, tenants on separate instances, \
             Fargate tasks or Lambda environments do not share vCPUs.</p>"
        );
    }
    let _ = writeln!(
        o,
        "<table data-table=\"noisy-neighbour\">\n<tr><th>tier</th><th>median</th><th>min</th><th>max</th><th>victims × rounds</th><th>CPUs</th></tr>"
    );
    for (t, n) in &tiers {
        let d = slowdown(&(t, n));
        let cpus = crate::text::cpus_cell(n);
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{:.2}×</td><td>{:.2}×</td><td>{:.2}×</td><td>{}</td><td>{}</td></tr>",
            esc(&d.tier),
            d.median,
            d.min,
            d.max,
            d.count,
            esc(&cpus)
        );
    }
    let _ = writeln!(o, "</table>");
    Ok(())
}

#[cfg(test)]
mod tests {
    use isobench_results::{TierCost, Verdict};

    use super::*;

    fn leakage() -> (Summary, Histograms) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../results/bench/leakage/");
        let s: Summary = serde_json::from_str(&std::fs::read_to_string(format!("{dir}summary.json")).unwrap()).unwrap();
        let h = isobench_results::hlog::read(&std::fs::read(format!("{dir}histograms.hlog")).unwrap()).unwrap();
        (own_cpus(s), h)
    }

    /// The run as if each tier had CPUs of its own, so the noisy-neighbour chart draws them all.
    fn own_cpus(mut s: Summary) -> Summary {
        for n in s.tiers.iter_mut().filter_map(|t| t.noisy_neighbour.as_mut()) {
            n.host_bound = None;
        }
        s
    }

    /// The opening tags of a chart's data groups.
    fn groups<'a>(page: &'a str, chart: &str) -> Vec<&'a str> {
        let start = page.find(&format!("<svg data-chart=\"{chart}\"")).unwrap_or_else(|| panic!("no chart {chart}"));
        let svg = &page[start..start + page[start..].find("</svg>").unwrap()];
        svg.match_indices("<g class=\"data\"").map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()]).collect()
    }

    #[test]
    fn every_chart_draws_its_data() {
        let (mut s, h) = leakage();
        let page = html(&s, Some(&h)).unwrap();
        let latency = groups(&page, "latency");
        assert_eq!(latency.len(), 6, "one curve per tier");
        assert!(latency.iter().all(|g| g.contains("data-points=\"201\"")), "{latency:?}");
        assert_eq!(groups(&page, "cold-starts").len(), 3, "the three function tiers");
        let cells = groups(&page, "leak-matrix");
        let probes = isobench_core::probes::CATALOGUE.len();
        assert_eq!(cells.len(), 6 * probes, "one cell per probe and tier");
        assert!(cells.iter().any(|c| c.contains("data-verdict=\"leak\"")));
        assert!(cells.iter().any(|c| c.contains("data-verdict=\"blocked\"")));
        assert_eq!(groups(&page, "noisy-neighbour").len(), 6);
        assert_eq!(groups(&page, "cost").len(), 6, "one point per costed tier");
        for t in &mut s.tiers {
            t.cost = None;
        }
        let page = html(&s, Some(&h)).unwrap();
        assert!(page.contains("data-empty=\"cost\""), "no cost figures: a note instead of a chart");
        assert!(!page.contains("data-chart=\"cost\""));
    }

    #[test]
    fn host_bound_noisy_figures_stay_out_of_the_tier_chart() {
        let (mut s, h) = leakage();
        let bound = |cpus| isobench_results::HostBound { quota_vcpus: 2.0, host_cpus: cpus, note: "host-bound".into() };
        for t in &mut s.tiers {
            t.noisy_neighbour.as_mut().unwrap().host_bound = Some(bound(2));
        }
        s.tiers[1].noisy_neighbour.as_mut().unwrap().host_bound = None;
        let page = html(&s, Some(&h)).unwrap();
        let drawn = groups(&page, "noisy-neighbour");
        assert!(drawn.len() == 1 && drawn[0].contains("data-tier=\"shared-ec2\""), "{drawn:?}");
        assert!(page.contains("Host-bound figures"));
        assert_eq!(page.matches("host-bound: 2.00 vCPUs of quota on 2 cores").count(), 5);
        for t in &mut s.tiers {
            t.noisy_neighbour.as_mut().unwrap().host_bound = Some(bound(2));
        }
        let page = html(&s, Some(&h)).unwrap();
        assert!(!page.contains("data-chart=\"noisy-neighbour\""), "no tier comparison drawn from host contention");
    }

    #[test]
    fn tiers_with_streamed_responses_show_time_to_first_byte_beside_latency() {
        let (mut s, h) = leakage();
        let page = html(&s, Some(&h)).unwrap();
        assert!(!page.contains("TTFB"), "no column without streamed responses");
        let f = s.tiers.iter_mut().find_map(|t| t.functions.as_mut()).expect("a function tier");
        f.streamed = 7;
        f.ttfb = isobench_results::Percentiles { count: 7, p50_us: 1_500.0, p99_us: 4_250.0, ..Default::default() };
        let page = html(&s, Some(&h)).unwrap();
        assert!(page.contains("<th>p99.9</th><th>TTFB p50 / p99 (streamed)</th>"), "beside the latency");
        assert!(page.contains("<td>1.50ms / 4.25ms (7 streamed)</td>"));
        let rows = page.matches("<td>1.50ms / 4.25ms (7 streamed)</td>").count();
        assert_eq!(rows, 1, "only the tier that streamed");
    }

    #[test]
    fn page_fetches_nothing() {
        let (s, h) = leakage();
        let page = html(&s, Some(&h)).unwrap();
        assert!(page.contains(&format!("content=\"{CSP}\"")));
        for banned in ["<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import"] {
            assert!(!page.contains(banned), "the page must not reference anything: found {banned}");
        }
    }

    #[test]
    fn cost_chart_has_one_labelled_point_per_costed_tier() {
        let (mut s, h) = leakage();
        for t in &mut s.tiers {
            t.cost = None;
        }
        for (i, t) in s.tiers.iter_mut().enumerate().take(4) {
            let per_million = 0.5 * (i + 1) as f64;
            t.cost = Some(TierCost {
                model: "test".into(),
                formula: "a × b".into(),
                items: Vec::new(),
                run_usd: 0.01,
                per_tenant_usd: 0.0025,
                per_million_requests_usd: per_million,
                monthly_usd: 100.0 * (i + 1) as f64,
                monthly_idle_usd: 10.0,
                idle_share: 0.1,
                notes: Vec::new(),
            });
        }
        let page = html(&s, Some(&h)).unwrap();
        let points = groups(&page, "cost");
        assert_eq!(points.len(), 4, "{points:?}");
        assert!(
            points[1].contains("data-tier=\"shared-ec2\"") && points[1].contains("data-usd-per-million=\"1.000000\"")
        );
        assert!(!page.contains("data-empty=\"cost\""));
        assert!(page.contains("<span class=\"modelled\">modelled</span>"), "cost figures are labelled modelled");
        assert!(page.contains("data-table=\"cost\""));
    }

    #[test]
    fn without_histograms_the_curves_come_from_the_summary() {
        let (s, _) = leakage();
        let page = html(&s, None).unwrap();
        let latency = groups(&page, "latency");
        assert_eq!(latency.len(), 6);
        assert!(latency.iter().all(|g| g.contains("data-points=\"5\"")), "{latency:?}");
        assert!(page.contains("histogram log was not available"));
    }

    #[test]
    fn an_unexpected_leak_is_outlined_and_named() {
        let (mut s, h) = leakage();
        let cell = &mut s.tiers[0].probes[0];
        (cell.verdict, cell.unexpected, cell.hits) = (Verdict::Leak, true, 3);
        let page = html(&s, Some(&h)).unwrap();
        let start = page.find("data-unexpected=\"true\"").expect("the cell is marked");
        let group = &page[start..start + page[start..].find("</g>").unwrap()];
        assert!(group.contains("stroke=\"#FF0000\""), "outlined in red: {group}");
        assert!(group.contains("UNEXPECTED LEAK"), "its title says so: {group}");
        assert!(page.contains("Unexpected leaks: LK-TMP on silo-ec2."));
    }

    #[test]
    fn one_tier_and_no_tiers_render() {
        let (mut s, h) = leakage();
        s.tiers.retain(|t| t.tier == "lambda-shared");
        let page = html(&s, Some(&h)).unwrap();
        assert_eq!(groups(&page, "cold-starts").len(), 1);
        assert_eq!(groups(&page, "noisy-neighbour").len(), 1);
        assert_eq!(groups(&page, "leak-matrix").len(), isobench_core::probes::CATALOGUE.len());
        s.tiers.clear();
        let page = html(&s, None).unwrap();
        assert!(page.contains("data-empty=\"latency\""));
        assert!(!page.contains("<svg"));
    }

    #[test]
    fn text_from_the_summary_is_escaped() {
        let (mut s, h) = leakage();
        s.scenario.name = "<script>alert(1)</script>".into();
        s.tiers[0].tier = "a\"><b".into();
        let page = html(&s, Some(&h)).unwrap();
        assert!(!page.contains("<script>") && !page.contains("a\"><b"));
        assert!(page.contains("&lt;script&gt;"));
    }
}
