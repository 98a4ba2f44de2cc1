//! The arrival schedule: when each request is *intended* to start, for which tenant, doing
//! what, on which key.
//!
//! Pure and deterministic: the same [`ScheduleSpec`] (seed included) always yields the same
//! sequence of [`Planned`] requests, on any machine, independent of how fast the driver runs.
//! Each tenant has its own arrival process at `rate × weight / Σweights`; the processes are
//! merged lazily with a binary heap (k-way merge), so a schedule of millions of requests is
//! never materialised: [`Schedule`] is an iterator that costs `O(log tenants)` per request.
//!
//! Randomness comes from ChaCha8 streams derived from the seed and the tenant index (one
//! stream for arrival gaps or the phase, another for the operation and the key), so adding a
//! tenant does not perturb the others' arrivals and changing the mix does not move arrivals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use isobench_core::scenario::{Arrival, MixSpec};
use isobench_core::workload_api::Op;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

/// One request of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Intended start, as an offset from the start of the run.
    pub at: Duration,
    /// Index of the tenant in [`ScheduleSpec::weights`] (and in `LoadSpec::tenants`).
    pub tenant: u32,
    pub op: Op,
    /// Record key, uniform in `0..keys_per_tenant`.
    pub key: u32,
}

/// Everything the schedule depends on.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// Planned requests have `at < duration`.
    pub duration: Duration,
    /// Requests per second, all tenants together.
    pub rate: f64,
    pub arrival: Arrival,
    pub seed: u64,
    /// One weight per tenant; a tenant's share of `rate` is `weight / Σweights`.
    pub weights: Vec<f64>,
    pub mix: MixSpec,
    pub keys_per_tenant: u32,
}

/// Which ChaCha stream of a tenant a generator draws from.
#[derive(Clone, Copy)]
enum Purpose {
    /// Phase (constant) or gaps (Poisson).
    Arrivals = 0,
    /// Operation and key.
    Picks = 1,
}

/// The RNG of one (seed, tenant, purpose): one ChaCha8 key per seed, one stream per
/// (tenant, purpose), so streams never overlap.
fn rng_for(seed: u64, tenant: u32, purpose: Purpose) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((u64::from(tenant) << 1) | purpose as u64);
    rng
}

enum Arrivals {
    /// `phase + k × interval`, computed from `k` each time so that error does not accumulate.
    Constant { phase_ns: f64, interval_ns: f64, k: u64 },
    /// Exponential gaps: a Poisson process.
    Poisson { t_ns: f64, gap: Exp<f64>, rng: Box<ChaCha8Rng> },
    /// A tenant with no traffic.
    None,
}

impl Arrivals {
    fn new(arrival: Arrival, rate: f64, seed: u64, tenant: u32) -> Arrivals {
        if !(rate > 0.0 && rate.is_finite()) {
            return Arrivals::None;
        }
        let mut rng = rng_for(seed, tenant, Purpose::Arrivals);
        match arrival {
            Arrival::Constant => {
                let interval_ns = 1e9 / rate;
                // Each tenant starts at its own random point of its first interval, so
                // tenants with the same rate interleave instead of arriving in lockstep.
                let phase_ns = rng.random::<f64>() * interval_ns;
                Arrivals::Constant { phase_ns, interval_ns, k: 0 }
            }
            Arrival::Poisson => {
                // `rate` is positive and finite here, so the rate per nanosecond is too.
                let gap = Exp::new(rate / 1e9).expect("positive finite rate");
                Arrivals::Poisson { t_ns: 0.0, gap, rng: Box::new(rng) }
            }
        }
    }

    /// The next arrival in nanoseconds from the start of the run.
    fn next_ns(&mut self) -> Option<f64> {
        match self {
            Arrivals::Constant { phase_ns, interval_ns, k } => {
                let at = *phase_ns + (*k as f64) * *interval_ns;
                *k += 1;
                Some(at)
            }
            Arrivals::Poisson { t_ns, gap, rng } => {
                *t_ns += gap.sample(rng.as_mut());
                Some(*t_ns)
            }
            Arrivals::None => None,
        }
    }
}

/// Cumulative operation weights, for drawing an operation.
#[derive(Debug, Clone, Copy)]
struct MixTable {
    cumulative: [f64; 3],
}

impl MixTable {
    fn new(mix: &MixSpec) -> MixTable {
        let w = |v: f64| if v > 0.0 && v.is_finite() { v } else { 0.0 };
        let put = w(mix.put);
        let get = put + w(mix.get);
        let compute = get + w(mix.compute);
        MixTable { cumulative: [put, get, compute] }
    }

    fn total(&self) -> f64 {
        self.cumulative[2]
    }

    fn pick(&self, rng: &mut ChaCha8Rng) -> Op {
        let u = rng.random::<f64>() * self.total();
        // Strict `<` skips operations of weight 0 (their cumulative bound equals the previous).
        Op::ALL
            .into_iter()
            .zip(self.cumulative)
            .find(|&(_, c)| u < c)
            .map_or_else(|| self.last_positive(), |(op, _)| op)
    }

    /// Reached only if rounding puts `u` on the upper bound.
    fn last_positive(&self) -> Op {
        let [p, g, _] = self.cumulative;
        if self.total() > g {
            Op::Compute
        } else if g > p {
            Op::Get
        } else {
            Op::Put
        }
    }
}

struct TenantStream {
    arrivals: Arrivals,
    picks: ChaCha8Rng,
}

/// The merged, time-ordered schedule of all tenants; an iterator of [`Planned`].
///
/// Ties (two tenants due in the same nanosecond) are broken by tenant index, so the order is
/// fully determined by the spec.
pub struct Schedule {
    streams: Vec<TenantStream>,
    /// Next arrival of each tenant that has one before the end: (ns, tenant).
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    end_ns: u64,
    mix: MixTable,
    keys: u32,
    expected: f64,
}

impl Schedule {
    /// Builds the schedule. Tenants with weight 0 (or a non-finite weight) get no traffic;
    /// an empty mix or `keys_per_tenant == 0` yields an empty schedule.
    pub fn new(spec: &ScheduleSpec) -> Schedule {
        let end_ns = u64::try_from(spec.duration.as_nanos()).unwrap_or(u64::MAX);
        let mix = MixTable::new(&spec.mix);
        let usable = |w: f64| w > 0.0 && w.is_finite();
        let total_weight: f64 = spec.weights.iter().copied().filter(|w| usable(*w)).sum();
        let empty = total_weight <= 0.0
            || mix.total() <= 0.0
            || spec.keys_per_tenant == 0
            || spec.rate.is_nan()
            || spec.rate <= 0.0;
        let mut streams = Vec::with_capacity(spec.weights.len());
        let mut heap = BinaryHeap::with_capacity(spec.weights.len());
        let mut expected = 0.0;
        for (i, &w) in spec.weights.iter().enumerate() {
            let tenant = u32::try_from(i).expect("fewer than 2^32 tenants");
            let rate = if empty || !usable(w) { 0.0 } else { spec.rate * w / total_weight };
            expected += rate * spec.duration.as_secs_f64();
            let mut arrivals = Arrivals::new(spec.arrival, rate, spec.seed, tenant);
            if let Some(at) = arrivals.next_ns().map(to_ns)
                && at < end_ns
            {
                heap.push(Reverse((at, tenant)));
            }
            streams.push(TenantStream { arrivals, picks: rng_for(spec.seed, tenant, Purpose::Picks) });
        }
        Schedule { streams, heap, end_ns, mix, keys: spec.keys_per_tenant, expected }
    }

    /// The expected number of planned requests (`rate × duration`); exact to within one
    /// request per tenant for constant arrivals, a mean for Poisson.
    pub fn expected_len(&self) -> u64 {
        self.expected.round() as u64
    }

    /// The intended start of the next request, without consuming it.
    pub fn peek_at(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _))| Duration::from_nanos(*at))
    }
}

fn to_ns(at: f64) -> u64 {
    // Saturating float-to-int conversion; arrivals are non-negative.
    at.round() as u64
}

impl Iterator for Schedule {
    type Item = Planned;

    fn next(&mut self) -> Option<Planned> {
        let Reverse((at, tenant)) = self.heap.pop()?;
        let stream = &mut self.streams[tenant as usize];
        let op = self.mix.pick(&mut stream.picks);
        let key = stream.picks.random_range(0..self.keys);
        if let Some(next) = stream.arrivals.next_ns().map(to_ns)
            && next < self.end_ns
        {
            self.heap.push(Reverse((next, tenant)));
        }
        Some(Planned { at: Duration::from_nanos(at), tenant, op, key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(arrival: Arrival, rate: f64, secs: u64, weights: Vec<f64>) -> ScheduleSpec {
        ScheduleSpec {
            duration: Duration::from_secs(secs),
            rate,
            arrival,
            seed: 7,
            weights,
            mix: MixSpec { put: 3.0, get: 6.0, compute: 1.0 },
            keys_per_tenant: 64,
        }
    }

    fn collect(s: &ScheduleSpec) -> Vec<Planned> {
        Schedule::new(s).collect()
    }

    fn per_tenant(v: &[Planned], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for p in v {
            c[p.tenant as usize] += 1;
        }
        c
    }

    #[test]
    fn same_seed_same_schedule_other_seed_other_schedule() {
        for arrival in [Arrival::Constant, Arrival::Poisson] {
            let s = spec(arrival, 5_000.0, 2, vec![1.0, 2.0, 1.0]);
            let a = collect(&s);
            let b = collect(&s);
            assert!(!a.is_empty());
            assert_eq!(a, b, "{arrival:?}");
            let other = collect(&ScheduleSpec { seed: 8, ..s.clone() });
            assert_ne!(a, other, "{arrival:?}: a different seed must change the schedule");
        }
    }

    #[test]
    fn time_ordered_and_inside_the_duration() {
        for arrival in [Arrival::Constant, Arrival::Poisson] {
            let s = spec(arrival, 20_000.0, 1, vec![1.0; 8]);
            let v = collect(&s);
            assert!(v.windows(2).all(|w| w[0].at <= w[1].at), "{arrival:?}: not time-ordered");
            assert!(v.iter().all(|p| p.at < s.duration));
            assert!(v.iter().all(|p| p.key < 64));
        }
    }

    #[test]
    fn constant_rate_is_exact_and_evenly_spaced() {
        let s = spec(Arrival::Constant, 1_000.0, 10, vec![1.0, 1.0, 1.0, 1.0]);
        let v = collect(&s);
        // 250/s per tenant for 10 s: 2500 each, whatever the phase.
        assert_eq!(per_tenant(&v, 4), vec![2500; 4]);
        let t0: Vec<_> = v.iter().filter(|p| p.tenant == 0).map(|p| p.at).collect();
        for w in t0.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap.abs_diff(Duration::from_millis(4)) <= Duration::from_nanos(1), "gap {gap:?}");
        }
        assert_eq!(Schedule::new(&s).expected_len(), 10_000);
    }

    #[test]
    fn poisson_rate_within_tolerance_and_gaps_exponential() {
        let s = spec(Arrival::Poisson, 50_000.0, 4, vec![1.0, 1.0]);
        let v = collect(&s);
        // Expect 200k; a Poisson count has σ = √200k ≈ 450, so ±1% is > 4σ.
        let n = v.len() as f64;
        assert!((n - 200_000.0).abs() < 2_000.0, "{n}");
        // Exponential gaps: the coefficient of variation is 1 (0 for constant arrivals).
        let gaps: Vec<f64> = v
            .iter()
            .filter(|p| p.tenant == 0)
            .map(|p| p.at.as_nanos() as f64)
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((mean - 40_000.0).abs() < 800.0, "mean gap {mean}ns");
        assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
    }

    #[test]
    fn weights_split_the_rate() {
        for arrival in [Arrival::Constant, Arrival::Poisson] {
            let s = spec(arrival, 10_000.0, 10, vec![1.0, 3.0, 6.0]);
            let c = per_tenant(&collect(&s), 3);
            for (got, want) in c.iter().zip([10_000.0, 30_000.0, 60_000.0]) {
                assert!((*got as f64 - want).abs() < want * 0.03, "{arrival:?}: {c:?}");
            }
        }
    }

    #[test]
    fn tenants_interleave() {
        // Equal constant rates: each tenant's own phase makes them alternate rather than
        // arrive in bursts of the same instant.
        let s = spec(Arrival::Constant, 800.0, 1, vec![1.0; 8]);
        let v = collect(&s);
        let first: Vec<u32> = v.iter().take(8).map(|p| p.tenant).collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..8).collect::<Vec<_>>(), "every tenant once in the first round: {first:?}");
        assert_ne!(first, (0..8).collect::<Vec<_>>(), "phases are random, not by index");
        // And the round repeats with the same period: no two arrivals at the same instant.
        let mut ats: Vec<_> = v.iter().map(|p| p.at).collect();
        ats.dedup();
        assert_eq!(ats.len(), v.len());
        // Poisson: long runs of one tenant are rare.
        let p = collect(&spec(Arrival::Poisson, 8_000.0, 1, vec![1.0; 8]));
        let longest = p.chunk_by(|a, b| a.tenant == b.tenant).map(|c| c.len()).max().unwrap();
        assert!(longest < 12, "longest run of one tenant: {longest}");
    }

    #[test]
    fn mix_and_keys_follow_the_spec() {
        let s = spec(Arrival::Poisson, 100_000.0, 1, vec![1.0; 4]);
        let v = collect(&s);
        let n = v.len() as f64;
        let frac = |op| v.iter().filter(|p| p.op == op).count() as f64 / n;
        assert!((frac(Op::Put) - 0.3).abs() < 0.01, "{}", frac(Op::Put));
        assert!((frac(Op::Get) - 0.6).abs() < 0.01, "{}", frac(Op::Get));
        assert!((frac(Op::Compute) - 0.1).abs() < 0.01, "{}", frac(Op::Compute));
        let mut keys = [0usize; 64];
        for p in &v {
            keys[p.key as usize] += 1;
        }
        let expect = n / 64.0;
        assert!(keys.iter().all(|&k| (k as f64 - expect).abs() < expect * 0.15), "{keys:?}");

        let only_get = ScheduleSpec { mix: MixSpec { put: 0.0, get: 1.0, compute: 0.0 }, ..s };
        assert!(collect(&only_get).iter().all(|p| p.op == Op::Get));
    }

    #[test]
    fn changing_the_mix_does_not_move_arrivals() {
        let a = spec(Arrival::Poisson, 5_000.0, 1, vec![1.0, 2.0]);
        let b = ScheduleSpec { mix: MixSpec { put: 1.0, get: 0.0, compute: 0.0 }, ..a.clone() };
        let at = |s: &ScheduleSpec| collect(s).iter().map(|p| (p.at, p.tenant)).collect::<Vec<_>>();
        assert_eq!(at(&a), at(&b));
    }

    #[test]
    fn adding_a_tenant_keeps_the_others_streams() {
        // Tenant 0 at the same per-tenant rate, alone or with a neighbour: same arrivals.
        let one = spec(Arrival::Poisson, 1_000.0, 2, vec![1.0]);
        let two = spec(Arrival::Poisson, 2_000.0, 2, vec![1.0, 1.0]);
        let t0 = |s: &ScheduleSpec| collect(s).into_iter().filter(|p| p.tenant == 0).collect::<Vec<_>>();
        assert_eq!(t0(&one), t0(&two));
    }

    #[test]
    fn degenerate_specs_are_empty_not_panics() {
        let base = spec(Arrival::Constant, 1_000.0, 1, vec![1.0]);
        assert_eq!(collect(&ScheduleSpec { weights: vec![], ..base.clone() }).len(), 0);
        assert_eq!(collect(&ScheduleSpec { weights: vec![0.0], ..base.clone() }).len(), 0);
        assert_eq!(collect(&ScheduleSpec { keys_per_tenant: 0, ..base.clone() }).len(), 0);
        assert_eq!(collect(&ScheduleSpec { rate: 0.0, ..base.clone() }).len(), 0);
        let no_mix = MixSpec { put: 0.0, get: 0.0, compute: 0.0 };
        assert_eq!(collect(&ScheduleSpec { mix: no_mix, ..base.clone() }).len(), 0);
        // A rate so low that the first arrival falls after the end.
        let slow = ScheduleSpec { rate: 0.001, arrival: Arrival::Poisson, ..base };
        assert!(collect(&slow).len() <= 1);
    }
}
