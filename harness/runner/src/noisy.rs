//! `NN-CPU`, the noisy-neighbour measurement: alternating solo and contended windows on a
//! deployed tier. In a contended window one aggressor tenant bursts CPU-heavy requests (a
//! second open-loop driver beside the victims' own); each victim's corrected p99 is compared
//! with its p99 in the solo window of the same round.

use std::sync::atomic::{AtomicBool, Ordering};

use isobench_core::Deployment;
use isobench_core::scenario::{MixSpec, NoisySpec};
use isobench_load::{LoadReport, LoadSpec};
use isobench_results::{HostBound, NoisyNeighbour, Spread, VictimSlowdown};

use crate::observer::Observer;

#[derive(Debug, thiserror::Error)]
#[error("noisy-neighbour round {round} ({phase}) failed")]
pub struct NoisyError {
    round: u32,
    phase: &'static str,
    #[source]
    source: isobench_load::LoadError,
}

pub fn measure(
    n: &NoisySpec,
    base: &LoadSpec,
    d: &Deployment,
    cancel: &AtomicBool,
    observer: &mut dyn Observer,
) -> Result<Option<NoisyNeighbour>, NoisyError> {
    let aggressor = n.aggressor.clone().unwrap_or_else(|| base.tenants[0].id.clone());
    let mut victims = base.clone();
    victims.tenants.retain(|t| t.id != aggressor);
    victims.duration = n.window.0;
    // Solo and contended windows compare like with like: a steady rate, whatever the run's shape.
    victims.shape = Default::default();
    let mut aggressor_spec = base.clone();
    aggressor_spec.label = format!("{}-aggressor", base.label);
    aggressor_spec.tenants.retain(|t| t.id == aggressor);
    aggressor_spec.duration = n.window.0;
    aggressor_spec.rate = n.rate.0;
    aggressor_spec.shape = Default::default();
    aggressor_spec.mix = MixSpec { put: 0.0, get: 0.0, compute: 1.0 };
    aggressor_spec.compute_us = n.compute.0.as_micros() as u64;

    let mut solo: Vec<Vec<f64>> = vec![Vec::new(); victims.tenants.len()];
    let mut contended = solo.clone();
    for round in 0..n.rounds {
        if cancel.load(Ordering::SeqCst) {
            return Ok(None);
        }
        victims.seed = base.seed.wrapping_add(u64::from(round) + 1);
        observer.line(&format!("[{}] NN-CPU round {}/{}: solo", base.label, round + 1, n.rounds));
        let r = isobench_load::run(&victims, &d.targets, d.netns.as_deref(), cancel, &mut |_| {})
            .map_err(|source| NoisyError { round, phase: "solo", source })?;
        push_p99(&mut solo, &victims, &r);
        observer.line(&format!("[{}] NN-CPU round {}/{}: contended by {aggressor}", base.label, round + 1, n.rounds));
        let (r, a) = std::thread::scope(|s| {
            let agg =
                s.spawn(|| isobench_load::run(&aggressor_spec, &d.targets, d.netns.as_deref(), cancel, &mut |_| {}));
            let r = isobench_load::run(&victims, &d.targets, d.netns.as_deref(), cancel, &mut |_| {});
            (r, agg.join().expect("the aggressor thread does not panic"))
        });
        a.map_err(|source| NoisyError { round, phase: "aggressor", source })?;
        let r = r.map_err(|source| NoisyError { round, phase: "contended", source })?;
        push_p99(&mut contended, &victims, &r);
    }
    let mut all = Vec::new();
    let victims_out = victims
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let ratios: Vec<f64> =
                solo[i].iter().zip(&contended[i]).filter(|(s, _)| **s > 0.0).map(|(s, c)| c / s).collect();
            all.extend(&ratios);
            VictimSlowdown {
                tenant: t.id.clone(),
                solo_p99_us: solo[i].clone(),
                contended_p99_us: contended[i].clone(),
                slowdown: Spread::of(&ratios),
            }
        })
        .collect();
    Ok(Some(NoisyNeighbour {
        aggressor,
        aggressor_rate: n.rate.0,
        aggressor_compute_us: aggressor_spec.compute_us,
        rounds: n.rounds,
        window_s: n.window.0.as_secs_f64(),
        victims: victims_out,
        slowdown: Spread::of(&all),
        host_bound: None,
    }))
}

/// On the local emulator every tenant and the generator share this host's cores (the emulator
/// does not give tiers CPU sets of their own), so the slowdown is the host's contention under
/// each tier's CPU quota, not what the tier gives on AWS.
pub fn host_bound(d: &Deployment, host_cpus: usize) -> HostBound {
    let quota_vcpus = d.instances.iter().filter_map(|i| i.limits.map(|l| l.cpu_millis)).sum::<u64>() as f64 / 1e3;
    HostBound {
        quota_vcpus,
        host_cpus,
        note: format!(
            "host-bound: {quota_vcpus:.2} vCPUs of quota on {host_cpus} cores shared with the load generator and every \
             other tenant; on AWS, tenants on separate instances, Fargate tasks or Lambda environments do not share vCPUs, \
             tenants of one shared instance do"
        ),
    }
}

/// Each victim's corrected p99 in µs (0 when it had no ok request).
fn push_p99(into: &mut [Vec<f64>], spec: &LoadSpec, r: &LoadReport) {
    for (i, t) in spec.tenants.iter().enumerate() {
        let s = r.merged_where(|tenant, _| tenant == t.id);
        let p99 = if s.corrected.is_empty() { 0.0 } else { s.corrected.value_at_quantile(0.99) as f64 / 1e3 };
        into[i].push(p99);
    }
}
