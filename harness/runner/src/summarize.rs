//! Turns what the load driver and the backend measured into the results schema, and adds the
//! full histograms to the run's histogram log.

use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use isobench_core::Deployment;
use isobench_core::backend::{InitRecord, TeardownReport};
use isobench_core::plan::TierPlan;
use isobench_load::{Hist, LoadReport, LoadSpec, OpStats};
use isobench_results::hlog::{HlogError, HlogTag, HlogWriter};
use isobench_results::{
    Environments, FunctionFigures, InstanceSummary, Latency, OpSummary, Percentiles, Spread, TenantSummary,
    TierSummary, Traffic,
};

/// Percentiles of a histogram recorded in nanoseconds, in microseconds.
pub fn percentiles(h: &Hist) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    histogram_percentiles(&h.histogram())
}

/// [`percentiles`] of a plain histogram.
pub fn histogram_percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let us = |ns: u64| ns as f64 / 1e3;
    Percentiles {
        count: h.len(),
        min_us: us(h.min()),
        p50_us: us(h.value_at_quantile(0.50)),
        p90_us: us(h.value_at_quantile(0.90)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
        mean_us: h.mean() / 1e3,
    }
}

fn traffic(s: &OpStats) -> Traffic {
    let errors_by_kind = s.errors.clone();
    Traffic {
        dispatched: s.dispatched,
        sent: s.sent,
        ok: s.ok,
        errors: errors_by_kind.values().sum(),
        errors_by_kind,
        timeouts: s.timeouts,
        not_sent: s.not_sent,
    }
}

/// Merged statistics of several (tenant, op) cells, merged off the hot path.
#[derive(Default)]
struct Merged {
    traffic: Traffic,
    stats: Option<OpStats>,
}

impl Merged {
    fn add(&mut self, s: &OpStats) {
        self.traffic.add(&traffic(s));
        match &mut self.stats {
            Some(m) => m.merge(s),
            None => self.stats = Some(s.clone()),
        }
    }

    fn latency(&self) -> Latency {
        let Some(s) = &self.stats else { return Latency::default() };
        Latency {
            corrected: percentiles(&s.corrected),
            uncorrected: percentiles(&s.uncorrected),
            generator_lag: percentiles(&s.lag),
            generator_own_lag: percentiles(&s.own_lag()),
            connection_wait: percentiles(&s.connection_wait()),
            timeout_after: percentiles(&s.timed_out),
        }
    }

    /// The cold/warm split and billing, for function targets only.
    fn functions(&self) -> Option<FunctionFigures> {
        let s = self.stats.as_ref()?;
        if s.billed_invokes == 0 && s.cold == 0 && s.init.is_empty() {
            return None;
        }
        Some(FunctionFigures {
            cold: s.cold,
            cold_share: if s.ok == 0 { 0.0 } else { s.cold as f64 / s.ok as f64 },
            init: percentiles(&s.init),
            init_unanswered: 0,
            corrected_cold: percentiles(&s.corrected_cold),
            corrected_warm: percentiles(&s.corrected_warm),
            billed_invokes: s.billed_invokes,
            billed_ms_total: s.billed_ms_total,
            billed_mb_ms_total: s.billed_mb_ms_total,
            gb_seconds: s.billed_mb_ms_total as f64 / 1024.0 / 1000.0,
            memory_mb: s.memory_mb,
            streamed: s.streamed,
            ttfb: percentiles(&s.ttfb),
        })
    }
}

/// Every INIT the backend recorded, as a histogram in nanoseconds.
pub fn init_histogram(inits: &[InitRecord]) -> Hist {
    let mut h = Hist::new();
    for i in inits {
        h.record(u64::try_from(i.duration.as_nanos()).unwrap_or(u64::MAX));
    }
    h
}

/// The tier's function figures with INIT taken from the backend's record of the environments
/// it started (every one, whatever became of its invoke), where the backend keeps one.
fn with_recorded_inits(f: Option<FunctionFigures>, inits: Option<&[InitRecord]>) -> Option<FunctionFigures> {
    let Some(inits) = inits else { return f };
    if inits.is_empty() && f.is_none() {
        return None;
    }
    let mut f = f.unwrap_or_default();
    let answered = f.init.count;
    f.init = percentiles(&init_histogram(inits));
    f.init_unanswered = f.init.count.saturating_sub(answered);
    Some(f)
}

/// `inits`: the backend's record of every INIT of the tier's environments, asked right after
/// traffic (`None` where it keeps none: INIT then comes from the invoke answers).
pub fn tier_summary(
    tp: &TierPlan,
    spec: &LoadSpec,
    report: &LoadReport,
    deployment: &Deployment,
    teardown: &TeardownReport,
    inits: Option<&[InitRecord]>,
) -> TierSummary {
    let mut tier = Merged::default();
    let mut per_tenant = Vec::new();
    for t in &tp.tenants {
        let mut tenant = Merged::default();
        let mut ops = Vec::new();
        for ((tid, op), s) in report.per.iter().filter(|((tid, _), _)| *tid == t.id) {
            debug_assert_eq!(tid, &t.id);
            tenant.add(s);
            tier.add(s);
            let mut one = Merged::default();
            one.add(s);
            ops.push(OpSummary {
                op: op.to_string(),
                traffic: one.traffic.clone(),
                latency: one.latency(),
                functions: one.functions(),
            });
        }
        per_tenant.push(TenantSummary {
            tenant: t.id.clone(),
            traffic: tenant.traffic.clone(),
            latency: tenant.latency(),
            functions: tenant.functions(),
            ops,
        });
    }
    tier.traffic.not_sent = report.totals.not_sent;
    let instances: Vec<InstanceSummary> = deployment
        .instances
        .iter()
        .map(|i| InstanceSummary {
            id: i.id.clone(),
            tenants: i.tenants.clone(),
            address: i.address.map(|a| a.to_string()),
            pid: i.pid,
            start_ms: i.start_time.as_secs_f64() * 1e3,
            cpu_millis: i.limits.map(|l| l.cpu_millis),
            memory_bytes: i.limits.map(|l| l.memory_bytes),
        })
        .collect();
    let starts: Vec<f64> = instances.iter().map(|i| i.start_ms).collect();
    TierSummary {
        tier: tp.name.clone(),
        tier_id: (tp.name != tp.tier.as_str()).then(|| tp.tier.as_str().to_string()),
        tenants: tp.tenants.len(),
        injected_faults: tp.workload.faults.as_ref().and_then(|f| serde_json::to_value(f).ok()),
        duration_s: report.wall.as_secs_f64(),
        target_rate: spec.rate,
        achieved_rate: report.achieved_rate,
        ok_rate: Some(report.ok_rate),
        traffic: tier.traffic.clone(),
        latency: tier.latency(),
        functions: with_recorded_inits(tier.functions(), inits),
        environments: teardown.environments.map(|e| Environments {
            created: e.created,
            reused: e.reused,
            reaped: e.reaped,
            recycled: e.recycled,
            replaced: e.replaced,
            peak_concurrency: e.peak_concurrency,
            throttles: e.throttles,
            throttle_reasons: isobench_results::ThrottleReasons {
                function: e.throttle_reasons.function,
                reserved: e.throttle_reasons.reserved,
                account: e.throttle_reasons.account,
                scaling: e.throttle_reasons.scaling,
            },
            frozen_at_end: e.frozen_at_end,
        }),
        instances,
        instance_start_ms: Spread::of(&starts),
        teardown_ms: teardown.duration.as_secs_f64() * 1e3,
        per_tenant,
        noisy_neighbour: None,
        probes: Vec::new(),
        cost: None,
        calibration: Vec::new(),
        footprint: None,
        projected: None,
        agents: None,
    }
}

/// The leak-matrix column of a tier, in the results schema.
pub fn probe_cells(r: &isobench_probes::ProbeReport) -> Vec<isobench_results::ProbeCell> {
    r.cells
        .iter()
        .map(|c| isobench_results::ProbeCell {
            probe: c.probe.clone(),
            channel: c.channel.as_str().to_string(),
            description: isobench_core::probes::probe(&c.probe).map_or("", |d| d.description).to_string(),
            sources: isobench_core::probes::probe(&c.probe)
                .map_or(&[][..], |d| d.sources)
                .iter()
                .map(|s| s.to_string())
                .collect(),
            blind: c.blind,
            leak_bound_95: c.leak_bound_95,
            expected: c.expected,
            verdict: c.verdict,
            unexpected: c.unexpected,
            trials: c.trials,
            hits: c.hits,
            controls: c.controls,
            controls_passed: c.controls_passed,
            first_hit_ms: c.first_hit_ms,
            pairs: c.pairs.clone(),
            failed_calls: c.failed_calls,
            note: c.note.clone(),
        })
        .collect()
}

/// Appends a tier's histograms to the run's log: every (tenant, op) with its corrected,
/// uncorrected and lag histograms, and the cold/warm split and INIT where a function has them.
/// `tier` is the tier's name (its id unless the scenario names it).
pub fn add_to_log(log: &mut HlogWriter, tier: &str, r: &LoadReport) -> Result<(), HlogError> {
    let started = SystemTime::UNIX_EPOCH + Duration::from_nanos(r.started_at_unix_ns);
    let entries = r.per.iter().flat_map(|((tenant, op), s)| {
        s.histograms()
            .into_iter()
            .enumerate()
            // The first three always (a reader can count on them); the function split only
            // where there is one.
            .filter(|(i, (_, h))| *i < 3 || !h.is_empty())
            .map(move |(_, (measure, h))| {
                let tag = HlogTag {
                    tier: tier.to_string(),
                    tenant: tenant.to_string(),
                    op: op.to_string(),
                    measure: measure.into(),
                };
                (tag, h.histogram())
            })
    });
    log.add_interval(started, r.wall, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_inits_replace_the_answered_ones_and_count_the_unanswered() {
        use isobench_core::backend::InitState;
        let answered = FunctionFigures {
            init: Percentiles { count: 2, mean_us: 100_000.0, ..Default::default() },
            billed_invokes: 10,
            ..Default::default()
        };
        let rec = |ms: u64, state| InitRecord { function: "f".into(), duration: Duration::from_millis(ms), state };
        let inits = [
            rec(100, InitState::Ok),
            rec(100, InitState::Ok),
            rec(300, InitState::Ok),
            rec(500, InitState::Failed),
            rec(50, InitState::Running),
        ];
        let f = with_recorded_inits(Some(answered.clone()), Some(&inits)).unwrap();
        assert_eq!((f.init.count, f.init_unanswered, f.billed_invokes), (5, 3, 10));
        assert!((f.init.mean_us - 210_000.0).abs() < 500.0, "every INIT priced: {}", f.init.mean_us);
        // No record (the AWS backend): the answers stand.
        assert_eq!(with_recorded_inits(Some(answered.clone()), None), Some(answered));
        // Environments started whose invokes all failed: figures exist for them alone.
        let only = with_recorded_inits(None, Some(&inits[3..4])).unwrap();
        assert_eq!((only.init.count, only.init_unanswered), (1, 1));
        assert_eq!(with_recorded_inits(None, Some(&[])), None);
    }

    #[test]
    fn percentiles_are_in_microseconds() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let p = histogram_percentiles(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50_us - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.max_us - 1000.0).abs() < 1.0, "{p:?}");
    }
}
