//! Number and cell formats shared by the views (the terminal table, `report.md`, the page).

use isobench_results::{Percentiles, TierSummary, Traffic};

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

pub fn ms(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1e6 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

pub fn errors_cell(t: &Traffic) -> String {
    if t.errors == 0 {
        return "0".into();
    }
    let kinds: Vec<String> = t.errors_by_kind.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{} ({})", t.errors, kinds.join(" "))
}

/// Instance or task start median; for function tiers the cold-start INIT median.
pub fn start_p50_ms(t: &TierSummary) -> f64 {
    match &t.functions {
        Some(f) if f.init.count > 0 => f.init.p50_us / 1e3,
        _ => t.instance_start_ms.median,
    }
}

/// A tier's time to first byte (from each request's intended start), where it had streamed
/// invokes.
pub fn ttfb(t: &TierSummary) -> Option<&Percentiles> {
    t.functions.as_ref().filter(|f| f.streamed > 0).map(|f| &f.ttfb)
}

/// `p50 / p99 (n streamed)` of a tier's time to first byte, or `–` without streamed invokes.
pub fn ttfb_cell(t: &TierSummary) -> String {
    match ttfb(t) {
        Some(p) => format!("{} / {} ({} streamed)", ms(p.p50_us), ms(p.p99_us), p.count),
        None => "–".into(),
    }
}

/// `target / achieved / ok` rates in req/s: what was asked, what went on the wire within the
/// traffic window, and the ok requests completed within it.
pub fn rates(t: &TierSummary) -> String {
    let ok = t.ok_rate.map_or("–".to_string(), |r| format!("{r:.0}"));
    format!("{:.0} / {:.0} / {ok}", t.target_rate, t.achieved_rate)
}

/// A noisy-neighbour row's CPUs: `own`, or `host-bound: 2.00 vCPUs of quota on 2 cores`.
pub fn cpus_cell(n: &isobench_results::NoisyNeighbour) -> String {
    n.host_bound.as_ref().map_or("own".to_string(), |h| {
        format!("host-bound: {:.2} vCPUs of quota on {} cores", h.quota_vcpus, h.host_cpus)
    })
}
