//! The short table printed at the end of `isobench run`.

use std::fmt::Write;

use isobench_results::{Summary, TierSummary};

use crate::leak;
use crate::text::{mib, ms, start_p50_ms};

/// Lag of 1 ms and more says what held requests back: the generator (its figures then include
/// its own delay) or the tier keeping every connection busy.
const LAG_NOTE_US: f64 = 1_000.0;

/// What the lag column means, and for each tier whose lag reaches [`LAG_NOTE_US`], its two
/// parts (summaries from before the split have none).
fn lag_lines(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "lag: how late requests left their schedule (included in the latency)");
    for t in &s.tiers {
        let (own, wait) = (&t.latency.generator_own_lag, &t.latency.connection_wait);
        if own.count == 0 || (own.p99_us < LAG_NOTE_US && wait.p99_us < LAG_NOTE_US) {
            continue;
        }
        let _ = writeln!(
            o,
            "  {}: the generator's own lag p99 {}{}, waiting for a connection the tier held p99 {}{}",
            t.tier,
            ms(own.p99_us),
            if own.p99_us >= LAG_NOTE_US { " (the generator fell behind: a lower rate, or run.realtime)" } else { "" },
            ms(wait.p99_us),
            if wait.p99_us >= LAG_NOTE_US { " (every connection busy: run.max_connections)" } else { "" },
        );
    }
}

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
    lag_lines(&mut o, s);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tier whose lag reaches 1 ms gets a line saying which part held its requests back.
    #[test]
    fn lag_of_a_millisecond_is_split_into_its_parts() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../results/bench/leakage/summary.json");
        let mut s: Summary = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut o = String::new();
        lag_lines(&mut o, &s);
        assert_eq!(o.lines().count(), 1, "an older summary has no split: {o}");
        let l = &mut s.tiers[0].latency;
        l.generator_own_lag.count = 10;
        l.generator_own_lag.p99_us = 2_500.0;
        l.connection_wait.count = 10;
        l.connection_wait.p99_us = 40.0;
        let mut o = String::new();
        lag_lines(&mut o, &s);
        let line = o.lines().nth(1).expect("a line for the lagging tier");
        assert!(line.contains(&s.tiers[0].tier) && line.contains("the generator fell behind"), "{line}");
        assert!(!line.contains("every connection busy"), "{line}");
        assert_eq!(o.lines().count(), 2, "{o}");
    }
}
