//! `report.md`: the run in Markdown, written beside `summary.json`.

use std::fmt::Write;

use isobench_results::{Percentiles, Spread, Summary, TenantSummary, TierSummary, Verdict};

use crate::leak;
use crate::text::{errors_cell, mib, ms, start_p50_ms, ttfb, ttfb_cell};

/// Above this many tenants (or instances) a tier's tables show a spread and the worst rows
/// instead of one row each; `summary.json` keeps every row.
const FULL_TABLE_MAX: usize = 20;
/// Rows shown of a summarized table: the tenants with the highest p99, the slowest starts.
const WORST_ROWS: usize = 10;

fn pct_row(name: &str, p: &Percentiles) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
        p.count,
        ms(p.p50_us),
        ms(p.p90_us),
        ms(p.p99_us),
        ms(p.p999_us),
        ms(p.max_us),
        ms(p.mean_us)
    )
}

fn functions_section(o: &mut String, t: &TierSummary) {
    let Some(f) = &t.functions else { return };
    let _ = writeln!(
        o,
        "\n### Functions\n\nCold starts: {} of {} ok invokes ({:.2}%); INIT p50 {} p99 {} (n={}). Corrected latency cold p50 {} p99 {}; warm p50 {} p99 {}. Billed: {} invokes, {} ms, {:.4} GB-s at {} MB.",
        f.cold,
        t.traffic.ok,
        f.cold_share * 100.0,
        ms(f.init.p50_us),
        ms(f.init.p99_us),
        f.init.count,
        ms(f.corrected_cold.p50_us),
        ms(f.corrected_cold.p99_us),
        ms(f.corrected_warm.p50_us),
        ms(f.corrected_warm.p99_us),
        f.billed_invokes,
        f.billed_ms_total,
        f.gb_seconds,
        f.memory_mb.map_or("?".into(), |m| m.to_string()),
    );
    if f.streamed > 0 {
        let _ = writeln!(
            o,
            "\nStreamed responses: {} of {} ok invokes; time to first byte p50 {} p99 {} (from the intended start; the latency runs to the last byte).",
            f.streamed,
            t.traffic.ok,
            ms(f.ttfb.p50_us),
            ms(f.ttfb.p99_us),
        );
    }
    if let Some(e) = &t.environments {
        let _ = writeln!(
            o,
            "\nEnvironments: {} created, {} reused, {} reaped after keep-alive, {} recycled at their maximum lifetime, {} replaced, peak concurrency {}, {}, {} frozen at the end.",
            e.created,
            e.reused,
            e.reaped,
            e.recycled,
            e.replaced,
            e.peak_concurrency,
            throttles(e),
            e.frozen_at_end
        );
    }
}

/// `12 throttles (account 10, scaling 2)`: the total and each reason that refused any.
fn throttles(e: &isobench_results::Environments) -> String {
    let r = &e.throttle_reasons;
    let reasons: Vec<String> =
        [("account", r.account), ("reserved", r.reserved), ("scaling", r.scaling), ("function cap", r.function)]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(why, n)| format!("{why} {n}"))
            .collect();
    if reasons.is_empty() {
        format!("{} throttles", e.throttles)
    } else {
        format!("{} throttles ({})", e.throttles, reasons.join(", "))
    }
}

fn tier_section(o: &mut String, t: &TierSummary) {
    let _ = writeln!(o, "\n## {}\n", t.tier);
    let _ = writeln!(
        o,
        "{} tenants on {} instance(s); target {:.0} req/s, achieved {:.0} req/s on the wire, ok throughput {}, \
         over {:.1} s.\n",
        t.tenants,
        t.instances.len(),
        t.target_rate,
        t.achieved_rate,
        t.ok_rate.map_or("–".to_string(), |r| format!("{r:.0} req/s")),
        t.duration_s
    );
    if let Some(f) = &t.injected_faults {
        let _ = writeln!(o, "**Faults injected by the workload (test run):** `{f}`\n");
    }
    let tr = &t.traffic;
    let _ = writeln!(o, "| sent | ok | errors | timeouts | not sent |\n|---|---|---|---|---|");
    let _ = writeln!(o, "| {} | {} | {} | {} | {} |\n", tr.sent, tr.ok, errors_cell(tr), tr.timeouts, tr.not_sent);
    let _ =
        writeln!(o, "| latency | count | p50 | p90 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|---|---|");
    o.push_str(&pct_row("corrected (from intended start)", &t.latency.corrected));
    o.push_str(&pct_row("uncorrected (from actual send)", &t.latency.uncorrected));
    o.push_str(&pct_row("generator lag", &t.latency.generator_lag));
    // Summaries written before the split have neither part.
    if t.latency.generator_own_lag.count > 0 {
        o.push_str(&pct_row("– the generator's own part", &t.latency.generator_own_lag));
        o.push_str(&pct_row("– waiting for a connection the target held", &t.latency.connection_wait));
    }
    if let Some(p) = ttfb(t) {
        o.push_str(&pct_row("time to first byte (streamed, from intended start)", p));
    }
    per_tenant_section(o, t);
    functions_section(o, t);
    let s = &t.instance_start_ms;
    let _ = writeln!(
        o,
        "\n### Instances\n\nStart time (create → workload answering): median {:.2} ms, min {:.2} ms, max {:.2} ms over {}. Teardown {:.1} ms.\n",
        s.median, s.min, s.max, s.count, t.teardown_ms
    );
    footprint_section(o, t);
    let mut shown: Vec<&isobench_results::InstanceSummary> = t.instances.iter().collect();
    if shown.len() > FULL_TABLE_MAX {
        let _ = writeln!(o, "The {WORST_ROWS} slowest starts of {} (all in `summary.json`):\n", shown.len());
        shown.sort_by(|a, b| b.start_ms.total_cmp(&a.start_ms));
        shown.truncate(WORST_ROWS);
    }
    let _ = writeln!(o, "| instance | tenants | address | start | CPU | memory |\n|---|---|---|---|---|---|");
    for i in shown {
        let tenants = if i.tenants.len() > 3 { format!("{} tenants", i.tenants.len()) } else { i.tenants.join(", ") };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.2} ms | {} | {} |",
            i.id,
            tenants,
            i.address.as_deref().unwrap_or("-"),
            i.start_ms,
            i.cpu_millis.map_or("-".into(), |m| format!("{:.2} vCPU", m as f64 / 1000.0)),
            i.memory_bytes.map_or("-".into(), |b| format!("{} MiB", b >> 20)),
        );
    }
}

fn tenant_row(o: &mut String, p: &TenantSummary) {
    let c = &p.latency.corrected;
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        p.tenant,
        p.traffic.sent,
        p.traffic.ok,
        errors_cell(&p.traffic),
        p.traffic.timeouts,
        ms(c.p50_us),
        ms(c.p99_us),
        ms(c.p999_us),
        ms(p.latency.generator_lag.p99_us)
    );
}

/// One row per tenant, or for many tenants the spread over tenants and the worst ones.
fn per_tenant_section(o: &mut String, t: &TierSummary) {
    let _ = writeln!(o, "\n### Per tenant (corrected latency)\n");
    let mut rows: Vec<&TenantSummary> = t.per_tenant.iter().collect();
    if rows.len() > FULL_TABLE_MAX {
        // Latency spreads over the tenants that have latency samples (an ok request).
        let served: Vec<&TenantSummary> = rows.iter().copied().filter(|p| p.latency.corrected.count > 0).collect();
        let spread = |of: &[&TenantSummary], f: &dyn Fn(&TenantSummary) -> f64| {
            Spread::of(&of.iter().map(|p| f(p)).collect::<Vec<_>>())
        };
        let sent = spread(&rows, &|p| p.traffic.sent as f64);
        let p50 = spread(&served, &|p| p.latency.corrected.p50_us);
        let p99 = spread(&served, &|p| p.latency.corrected.p99_us);
        let failed = rows.iter().filter(|p| p.traffic.errors + p.traffic.timeouts > 0).count();
        let silent = rows.iter().filter(|p| p.traffic.sent == 0).count();
        let unserved = rows.len() - served.len();
        let _ = writeln!(
            o,
            "{} tenants: requests sent per tenant min {:.0} / median {:.0} / max {:.0}; per-tenant p50 min {} / median {} / max {}; per-tenant p99 min {} / median {} / max {}. {failed} tenant(s) saw errors or timeouts, {unserved} had no ok request, {silent} sent nothing.\n",
            rows.len(),
            sent.min,
            sent.median,
            sent.max,
            ms(p50.min),
            ms(p50.median),
            ms(p50.max),
            ms(p99.min),
            ms(p99.median),
            ms(p99.max),
        );
        let _ = writeln!(o, "The {WORST_ROWS} tenants with the highest p99 (every tenant is in `summary.json`):\n");
        rows.sort_by(|a, b| b.latency.corrected.p99_us.total_cmp(&a.latency.corrected.p99_us));
        rows.truncate(WORST_ROWS);
    }
    let _ = writeln!(
        o,
        "| tenant | sent | ok | errors | timeouts | p50 | p99 | p99.9 | lag p99 |\n|---|---|---|---|---|---|---|---|---|"
    );
    for p in rows {
        tenant_row(o, p);
    }
}

/// Phase times and per-unit memory, when the run recorded them.
fn footprint_section(o: &mut String, t: &TierSummary) {
    let Some(f) = &t.footprint else { return };
    let mem = |b: Option<u64>| b.map_or("n/a".to_string(), mib);
    let _ = writeln!(
        o,
        "Phases: deploy {:.0} ms, traffic {:.1} s, teardown {:.0} ms. Memory of the tier's {} instance(s) or environment(s) (the run's cgroup): {} after deploy, {} after traffic, {} each. Harness RSS {} before deploy, {} after traffic.\n",
        f.deploy_ms,
        f.traffic_s,
        f.teardown_ms,
        f.units,
        mem(f.memory_after_deploy_bytes),
        mem(f.memory_after_traffic_bytes),
        mem(f.memory_per_unit_bytes),
        mib(f.harness_rss_before_bytes),
        mib(f.harness_rss_after_traffic_bytes),
    );
}

fn noisy_section(o: &mut String, s: &Summary) {
    let tiers: Vec<_> = s.tiers.iter().filter_map(|t| t.noisy_neighbour.as_ref().map(|n| (t, n))).collect();
    if tiers.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Noisy neighbour (NN-CPU)\n");
    let (_, n0) = tiers[0];
    let _ = writeln!(
        o,
        "Aggressor `{}` sends {:.0} req/s of {} µs CPU each; victims' corrected p99 in contended windows divided by their p99 in the solo window of the same round ({} rounds of {:.1} s).\n",
        n0.aggressor, n0.aggressor_rate, n0.aggressor_compute_us, n0.rounds, n0.window_s
    );
    if tiers.iter().any(|(_, n)| n.host_bound.is_some()) {
        let _ = writeln!(
            o,
            "> **Host-bound figures.** Marked rows measure this host's contention, not the tier: every tenant and the load generator share this host's cores, so each tier's CPU quota sets its ranking. They are not a comparison of tiers; on AWS, tenants on separate instances, Fargate tasks or Lambda environments do not share vCPUs.\n"
        );
    }
    let _ = writeln!(o, "| tier | slowdown median | min | max | victims × rounds | CPUs |\n|---|---|---|---|---|---|");
    for (t, n) in &tiers {
        let cpus = crate::text::cpus_cell(n);
        let _ = writeln!(
            o,
            "| {} | {:.2}× | {:.2}× | {:.2}× | {} | {cpus} |",
            t.tier, n.slowdown.median, n.slowdown.min, n.slowdown.max, n.slowdown.count
        );
    }
}

fn matrix(o: &mut String, s: &Summary) {
    let tiers: Vec<&TierSummary> = s.tiers.iter().filter(|t| !t.probes.is_empty()).collect();
    if tiers.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Leak matrix\n");
    let _ = writeln!(o, "{} **!** marks an unexpected leak or shared resource.\n", leak::LEGEND);
    let _ = write!(o, "| probe |");
    for t in &tiers {
        let _ = write!(o, " {} |", t.tier);
    }
    let _ = write!(o, "\n|---|");
    for _ in &tiers {
        let _ = write!(o, "---|");
    }
    let _ = writeln!(o);
    for (i, c0) in tiers[0].probes.iter().enumerate() {
        let _ = write!(o, "| {} ({}) |", c0.probe, c0.channel);
        for t in &tiers {
            match t.probes.get(i) {
                Some(c) => {
                    let first = c.first_hit_ms.map_or(String::new(), |ms| format!(", first at {ms:.0} ms"));
                    let first = if matches!(c.verdict, Verdict::Leak | Verdict::Risk) { first } else { String::new() };
                    let _ = write!(o, " {}{first} |", leak::cell_text(c));
                }
                None => {
                    let _ = write!(o, " - |");
                }
            }
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o);
    for c in &tiers[0].probes {
        let sources = if c.sources.is_empty() { String::new() } else { format!(" (AWS: {})", c.sources.join(", ")) };
        let _ = writeln!(o, "- **{}**: {}{sources}", c.probe, c.description);
    }
    for (probe, on, note) in leak::notes(&tiers) {
        let _ = writeln!(o, "- **{probe}** on {}: {note}", on.join(", "));
    }
}

/// `report.md`.
pub fn markdown(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# isobench run {}\n", s.run_id);
    let _ = writeln!(
        o,
        "Scenario **{}** (`{}`, sha256 `{}`), backend **{}** (fidelity: {}), status **{:?}**, wall time {:.1} s.\n",
        s.scenario.name,
        s.scenario.path,
        &s.scenario.hash[..12.min(s.scenario.hash.len())],
        s.backend.name,
        s.backend.fidelity,
        s.status,
        s.wall_time_s
    );
    if let Some(l) = crate::limits::limits(s) {
        let _ = writeln!(o, "{}", l.markdown());
    }
    if let Some(e) = &s.error {
        let _ = writeln!(o, "**Run did not complete:** {e}\n");
    }
    if let Some(faults) = s.scenario.effective["local"]["break_isolation"].as_array().filter(|f| !f.is_empty()) {
        let names: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
        let _ = writeln!(
            o,
            "> **Test faults injected into the emulator: {}.** This run deliberately breaks isolation; it measures the harness, not a tier.\n",
            names.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "Host `{}`: {} ({}), kernel {}, {} CPUs, {} GiB. isobench {} ({}).\n",
        s.host.hostname,
        s.host.os,
        s.host.arch,
        s.host.kernel,
        s.host.cpus,
        s.host.memory_bytes >> 30,
        s.tool.version,
        crate::fmt::provenance(&s.tool)
    );
    if let Some((load, loaded)) = crate::fmt::load(&s.host) {
        let warn = if loaded {
            " **Loaded machine**: the load exceeded its CPUs, so latencies, rates and start times are not a quiet machine's."
        } else {
            ""
        };
        let _ = writeln!(o, "Host {load}.{warn}\n");
    }
    crate::verdict::markdown(&mut o, s);
    crate::picks::markdown(&mut o, s);
    let _ = writeln!(o, "## Tiers side by side (corrected latency)\n");
    // A column for time to first byte only in runs with streamed responses.
    let streams = s.tiers.iter().any(|t| ttfb(t).is_some());
    let _ = writeln!(
        o,
        "| tier | tenants | req/s target / achieved / ok | sent | ok | errors | timeouts | p50 | p99 | p99.9 | {}lag p99 | start p50 (instance/task, or function INIT) |\n|---|---|---|---|---|---|---|---|---|---|---|---|{}",
        if streams { "TTFB p50 / p99 (streamed) | " } else { "" },
        if streams { "---|" } else { "" },
    );
    for t in &s.tiers {
        let c = &t.latency.corrected;
        let ttfb_col = if streams { format!("{} | ", ttfb_cell(t)) } else { String::new() };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {ttfb_col}{} | {:.2} ms |",
            t.tier,
            t.tenants,
            crate::text::rates(t),
            t.traffic.sent,
            t.traffic.ok,
            errors_cell(&t.traffic),
            t.traffic.timeouts,
            ms(c.p50_us),
            ms(c.p99_us),
            ms(c.p999_us),
            ms(t.latency.generator_lag.p99_us),
            start_p50_ms(t)
        );
    }
    matrix(&mut o, s);
    noisy_section(&mut o, s);
    crate::cost::markdown_sections(&mut o, s);
    crate::projected::markdown_section(&mut o, s);
    for t in &s.tiers {
        tier_section(&mut o, t);
    }
    if !s.left_behind.is_empty() {
        let _ = writeln!(o, "\n## Left behind\n\n{}\n\nRun `isobench sweep` to remove them.", s.left_behind.join("\n"));
    }
    if let Some(h) = &s.harness {
        let _ = writeln!(
            o,
            "\nHarness process: peak RSS {}, {} at the end (`/proc/self/status` VmHWM, VmRSS).",
            mib(h.peak_rss_bytes),
            mib(h.rss_at_end_bytes)
        );
    }
    let _ = writeln!(o, "\nFull histograms: `{}` (HdrHistogram interval log, values in ns).", s.histograms);
    o
}

#[cfg(test)]
mod tests {
    use isobench_results::Expectation;

    use super::*;

    #[test]
    fn tiers_with_streamed_responses_show_time_to_first_byte_beside_latency() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../results/bench/leakage/summary.json");
        let mut s: Summary = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(!markdown(&s).contains("TTFB"), "no column without streamed responses");
        let i = s.tiers.iter().position(|t| t.functions.is_some()).expect("a function tier");
        let f = s.tiers[i].functions.as_mut().unwrap();
        f.streamed = 7;
        f.ttfb = Percentiles { count: 7, p50_us: 1_500.0, p99_us: 4_250.0, ..Default::default() };
        let md = markdown(&s);
        assert!(md.contains("| p99.9 | TTFB p50 / p99 (streamed) | lag p99 |"), "{md}");
        // The side-by-side table's row (the verdict table above has one per tier too).
        let side = &md[md.find("## Tiers side by side").unwrap()..];
        let row = side.lines().find(|l| l.starts_with(&format!("| {} |", s.tiers[i].tier))).unwrap();
        assert!(row.contains("| 1.50ms / 4.25ms (7 streamed) |"), "{row}");
        let header = md.lines().find(|l| l.starts_with("| tier | tenants |")).unwrap();
        assert_eq!(row.matches('|').count(), header.matches('|').count(), "as many cells as columns");
        assert!(md.contains("| time to first byte (streamed, from intended start) | 7 | 1.50ms |"), "{md}");
        assert!(md.contains("Streamed responses: 7 of"), "{md}");
        // Also in the terminal table, under the tier's p50 and p99.
        let table = crate::terminal_table(&s);
        let line = table.lines().find(|l| l.starts_with("  ttfb (7 streamed)")).expect("a ttfb line");
        let tier_line = table.lines().find(|l| l.starts_with(&s.tiers[i].tier)).unwrap();
        // Columns in characters (`µ` is two bytes).
        let end_of = |l: &str, cell: &str| l[..l.find(cell).unwrap() + cell.len()].chars().count();
        let p99 = ms(s.tiers[i].latency.corrected.p99_us);
        assert_eq!(end_of(line, "4.25ms"), end_of(tier_line, &p99), "aligned under p99:\n{table}");
    }

    #[test]
    fn the_leak_matrix_states_bounds_risks_limits_and_reasons() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../results/bench/leakage/summary.json");
        let mut s: Summary = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let c = &mut s.tiers[0].probes[0];
        (c.verdict, c.expected, c.hits, c.trials, c.controls, c.controls_passed) =
            (Verdict::Blocked, Expectation::Blocked, 0, 1000, 1000, 1000);
        c.leak_bound_95 = Some(0.002_991);
        let c = &mut s.tiers[0].probes[1];
        (c.verdict, c.expected, c.hits, c.trials) = (Verdict::EmulatorLimit, Expectation::Blocked, 5, 5);
        c.note = Some("shared kernel: emulator limit".into());
        let md = markdown(&s);
        assert!(md.contains("blocked (blocked) — 0/1000, ≤ 0.30%, controls 1000/1000"), "{md}");
        assert!(md.contains("emulator-limit (AWS: blocked) — shared kernel 5/5"), "{md}");
        assert!(md.contains(&format!("on {}: shared kernel: emulator limit", s.tiers[0].tier)), "{md}");
    }

    #[test]
    fn environment_stats_show_recycled_and_throttles_by_reason() {
        // An older summary: no `recycled`, no `throttle_reasons`.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../results/bench/leakage/summary.json");
        let mut s: Summary = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let t = s.tiers.iter_mut().find(|t| t.functions.is_some() && t.environments.is_some()).expect("a Lambda tier");
        let e = t.environments.as_mut().unwrap();
        assert_eq!((e.recycled, e.throttle_reasons), (0, Default::default()));
        let md = markdown(&s);
        assert!(md.contains("0 recycled at their maximum lifetime"), "{md}");
        let t = s.tiers.iter_mut().find(|t| t.functions.is_some() && t.environments.is_some()).unwrap();
        let e = t.environments.as_mut().unwrap();
        (e.recycled, e.throttles) = (3, 12);
        (e.throttle_reasons.account, e.throttle_reasons.scaling) = (10, 2);
        let md = markdown(&s);
        assert!(md.contains("3 recycled at their maximum lifetime"), "{md}");
        assert!(md.contains("12 throttles (account 10, scaling 2)"), "{md}");
    }
}
