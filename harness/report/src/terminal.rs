//! The short table printed at the end of `isobench run`.

use std::fmt::Write;

use isobench_results::{Summary, TierSummary};

use crate::leak;
use crate::text::{mib, ms, start_p50_ms};

/// The table printed at the end of `isobench run`.
pub fn terminal_table(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n{:<24} {:>7} {:>17} {:>8} {:>8} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "tier",
        "tenants",
        "req/s tgt/ach/ok",
        "sent",
        "ok",
        "errors",
        "timeouts",
        "p50",
        "p99",
        "p99.9",
        "max",
        "lag p99",
        "start p50*"
    );
    for t in &s.tiers {
        let c = &t.latency.corrected;
        let _ = writeln!(
            o,
            "{:<24} {:>7} {:>17} {:>8} {:>8} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            t.tier,
            t.tenants,
            crate::text::rates(t),
            t.traffic.sent,
            t.traffic.ok,
            t.traffic.errors,
            t.traffic.timeouts,
            ms(c.p50_us),
            ms(c.p99_us),
            ms(c.p999_us),
            ms(c.max_us),
            ms(t.latency.generator_lag.p99_us),
            format!("{:.2}ms", start_p50_ms(t)),
        );
        if let Some(p) = crate::text::ttfb(t) {
            // Under the tier's p50 and p99: the first byte of its streamed responses.
            let label = format!("  ttfb ({} streamed)", p.count);
            let _ = writeln!(o, "{label:<84} {:>9} {:>9}", ms(p.p50_us), ms(p.p99_us));
        }
    }
    let _ = writeln!(o, "latency corrected for coordinated omission (from each request's intended start)");
    if s.tiers.iter().any(|t| crate::text::ttfb(t).is_some()) {
        let _ = writeln!(o, "ttfb: time to the first byte of streamed function responses, from the intended start");
    }
    let _ = writeln!(o, "req/s: target / achieved (sent within the traffic window) / ok (completed ok within it)");
    let _ = writeln!(
        o,
        "* start: instance/task start to the workload answering; for functions, the cold-start INIT median"
    );
    if let Some(l) = crate::limits::limits(s) {
        let _ = writeln!(o, "{}", l.line());
    }
    if let Some(h) = &s.harness {
        let _ = writeln!(o, "harness: peak RSS {}, wall time {:.1} s", mib(h.peak_rss_bytes), s.wall_time_s);
    }
    leak_matrix(&mut o, s);
    if !s.left_behind.is_empty() {
        let _ = writeln!(o, "LEFT BEHIND: {}", s.left_behind.join(", "));
    }
    o
}

/// What `isobench run` prints last: the three picks, then the verdict table.
pub fn terminal_verdict(s: &Summary) -> String {
    crate::picks::terminal(s) + &crate::verdict::terminal(s)
}

/// The leak matrix, one short cell per (probe, tier): verdict, hits/trials and bound.
fn leak_matrix(o: &mut String, s: &Summary) {
    let tiers: Vec<&TierSummary> = s.tiers.iter().filter(|t| !t.probes.is_empty()).collect();
    if tiers.is_empty() {
        return;
    }
    let _ = write!(o, "\n{:<13}", "probe");
    for t in &tiers {
        let _ = write!(o, " {:<24}", t.tier);
    }
    let _ = writeln!(o);
    for (i, c0) in tiers[0].probes.iter().enumerate() {
        let _ = write!(o, "{:<13}", c0.probe);
        for t in &tiers {
            let _ = write!(o, " {:<24}", t.probes.get(i).map_or("-".to_string(), leak::short));
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(
        o,
        "leak cells: verdict hits/trials and the upper 95% bound on the per-trial leak probability; blocked needs every \
         trial's control passed and no blind trial; emulator-limit: the local emulator's, not AWS's (see report.md)"
    );
}
