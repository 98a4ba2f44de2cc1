//! The arrival schedule: when each request is *intended* to start, for which tenant, doing
//! what, on which key.
//!
//! Pure and deterministic: the same [`ScheduleSpec`] (seed included) always yields the same
//! sequence of [`Planned`] requests, on any machine, independent of how fast the driver runs.
//! Each tenant has its own arrival process at `rate × weight / Σweights`; the processes are
//! merged lazily with a binary heap (k-way merge), so a schedule of millions of requests is
//! never materialised: [`Schedule`] is an iterator that costs `O(log tenants)` per request.
//!
//! A [`Shape`] other than steady (phases, bursts, a trace) makes each tenant's rate a
//! piecewise-linear function of time `r(t)`. The tenant's process is then drawn in
//! *operational time* `Λ(t) = ∫r`: evenly spaced (constant) or exponential gaps of mean 1
//! (Poisson) on the `Λ` axis, each mapped back to `t = Λ⁻¹(x)`. That is the standard
//! time-change of an inhomogeneous Poisson process; for constant arrivals it spaces requests
//! by `1/r(t)` and puts exactly `round(Λ)` of them in every window whose `Λ` is whole (a trace
//! minute's count).
//!
//! Randomness comes from ChaCha8 streams derived from the seed and the tenant index (one
//! stream for arrival gaps or the phase, another for the operation and the key), so adding a
//! tenant does not perturb the others' arrivals and changing the mix does not move arrivals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use std::sync::Arc;

use isobench_core::arrivals::{BurstSpec, PhaseSpec, Shape};
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

/// Which share of the schedule one agent of `count` drives: the requests whose global
/// sequence number (their position in the whole, time-ordered schedule) is `index` modulo
/// `count`. Every agent walks the same seeded schedule, so the `count` slices are disjoint and
/// their union is exactly the schedule of one driver. The default is the whole schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slice {
    /// This agent's index, `0..count`.
    pub index: u32,
    /// How many agents share the schedule (at least 1).
    pub count: u32,
}

impl Default for Slice {
    fn default() -> Slice {
        Slice::WHOLE
    }
}

impl Slice {
    /// The whole schedule: one driver.
    pub const WHOLE: Slice = Slice { index: 0, count: 1 };

    /// Whether the request with global sequence number `seq` is in this slice.
    pub fn keeps(&self, seq: u64) -> bool {
        self.count <= 1 || seq % u64::from(self.count) == u64::from(self.index)
    }
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
    /// How the rate moves over the run.
    pub shape: Shape,
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
    /// Maps operational time to time, when the rate is not steady.
    warp: Option<Warp>,
}

impl TenantStream {
    fn next_ns(&mut self) -> Option<u64> {
        let x = self.arrivals.next_ns()?;
        match &mut self.warp {
            None => Some(to_ns(x)),
            // On the Λ axis the process has rate 1 per "ns" unit: x counts expected requests.
            Some(w) => w.time_of(x).map(|t| to_ns(t * 1e9)),
        }
    }
}

/// One piece of a piecewise-linear rate: `from` at `start`, `to` at `start + len` (seconds,
/// requests per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub len: f64,
    pub from: f64,
    pub to: f64,
}

impl Segment {
    fn area(&self) -> f64 {
        self.len * (self.from + self.to) / 2.0
    }

    /// Time into the segment at which `y` requests have been expected (`0 <= y < area`).
    fn time_at(&self, y: f64) -> f64 {
        // Λ(τ) = from·τ + a·τ², a = (to − from) / 2len; this root form is stable also for a = 0.
        let a = (self.to - self.from) / (2.0 * self.len);
        let disc = (self.from * self.from + 4.0 * a * y).max(0.0);
        (2.0 * y / (self.from + disc.sqrt())).min(self.len)
    }
}

/// `Λ⁻¹` for one tenant: its segments scaled by `factor`, walked forward as arrivals come.
struct Warp {
    segments: Arc<Vec<Segment>>,
    factor: f64,
    idx: usize,
    /// `Λ` at the start of segment `idx`.
    before: f64,
}

impl Warp {
    /// Seconds at which `x` requests have been expected; `None` past the end.
    fn time_of(&mut self, x: f64) -> Option<f64> {
        while let Some(s) = self.segments.get(self.idx) {
            let area = s.area() * self.factor;
            if x < self.before + area {
                return Some(s.start + s.time_at((x - self.before) / self.factor));
            }
            self.before += area;
            self.idx += 1;
        }
        None
    }

    fn total(&self) -> f64 {
        self.segments.iter().map(Segment::area).sum::<f64>() * self.factor
    }
}

/// Most segments a shape may expand to over a run (a burst period of 10 ms over a day would be
/// 17M); past it the shape is cut off, which [`segments_of`] reports.
pub const MAX_SEGMENTS: usize = 4_000_000;

/// The multiplier segments of phases and bursts over `duration` (phases repeat), or `None`
/// for a steady rate. Breakpoints are the phases' and bursts' edges; between two of them the
/// phase is linear and the burst multiplier constant, so the product is linear too.
pub fn cycle_segments(phases: &[PhaseSpec], burst: Option<&BurstSpec>, duration: Duration) -> Vec<Segment> {
    let end = duration.as_secs_f64();
    let cycle: f64 = phases.iter().map(|p| p.duration.0.as_secs_f64()).sum();
    let mut cuts = vec![0.0, end];
    if cycle > 0.0 {
        let mut t = 0.0;
        'outer: loop {
            for p in phases {
                t += p.duration.0.as_secs_f64();
                if t >= end || cuts.len() > MAX_SEGMENTS {
                    break 'outer;
                }
                cuts.push(t);
            }
        }
    }
    if let Some(b) = burst {
        let (period, len) = (b.period.0.as_secs_f64(), b.length.0.as_secs_f64());
        let mut k = 0.0;
        while k * period < end && cuts.len() <= 2 * MAX_SEGMENTS {
            cuts.extend([k * period, k * period + len].into_iter().filter(|&c| c < end));
            k += 1.0;
        }
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let phase_level = |t: f64, at: f64| -> f64 {
        if cycle <= 0.0 {
            return 1.0;
        }
        // The phase holding `t`, then its linear level at `at` (the same phase's edge).
        let base = (t / cycle).floor() * cycle;
        let mut start = base;
        for p in phases {
            let len = p.duration.0.as_secs_f64();
            if t < start + len {
                let (from, to) = p.levels();
                return from + (to - from) * ((at - start) / len).clamp(0.0, 1.0);
            }
            start += len;
        }
        phases.last().map_or(1.0, |p| p.levels().1)
    };
    let burst_at = |t: f64| match burst {
        Some(b) if t % b.period.0.as_secs_f64() < b.length.0.as_secs_f64() => b.multiplier,
        _ => 1.0,
    };
    cuts.windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let mid = (a + b) / 2.0;
            let m = burst_at(mid);
            Segment { start: a, len: b - a, from: phase_level(mid, a) * m, to: phase_level(mid, b) * m }
        })
        .collect()
}

/// A tenant's trace rate: one constant segment per trace minute.
pub fn trace_segments(counts: &[u64], minute: Duration) -> Vec<Segment> {
    let len = minute.as_secs_f64();
    counts
        .iter()
        .enumerate()
        .map(|(m, &c)| Segment { start: m as f64 * len, len, from: c as f64 / len, to: c as f64 / len })
        .collect()
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
    /// The share kept ([`Schedule::with_slice`]), and the global sequence number of the next
    /// request of the whole schedule.
    slice: Slice,
    seq: u64,
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
        let cycle = match &spec.shape {
            Shape::Cycle { phases, burst } => Some(Arc::new(cycle_segments(phases, burst.as_ref(), spec.duration))),
            _ => None,
        };
        for (i, &w) in spec.weights.iter().enumerate() {
            let tenant = u32::try_from(i).expect("fewer than 2^32 tenants");
            let rate = if empty || !usable(w) { 0.0 } else { spec.rate * w / total_weight };
            let warp = match &spec.shape {
                Shape::Steady => None,
                Shape::Cycle { .. } => Some(Warp {
                    segments: Arc::clone(cycle.as_ref().expect("built above")),
                    factor: rate,
                    idx: 0,
                    before: 0.0,
                }),
                Shape::Trace { per_tenant, minute } => {
                    let counts = per_tenant.get(i).map_or(&[][..], Vec::as_slice);
                    let segs = clip(trace_segments(counts, *minute), spec.duration.as_secs_f64());
                    let factor = if empty { 0.0 } else { 1.0 };
                    Some(Warp { segments: Arc::new(segs), factor, idx: 0, before: 0.0 })
                }
            };
            let arrivals = match &warp {
                None => {
                    expected += rate * spec.duration.as_secs_f64();
                    Arrivals::new(spec.arrival, rate, spec.seed, tenant)
                }
                Some(w) => {
                    expected += w.total();
                    let unit = if w.factor > 0.0 { 1e9 } else { 0.0 };
                    Arrivals::new(spec.arrival, unit, spec.seed, tenant)
                }
            };
            let picks = rng_for(spec.seed, tenant, Purpose::Picks);
            let mut stream = TenantStream { arrivals, picks, warp };
            if let Some(at) = stream.next_ns()
                && at < end_ns
            {
                heap.push(Reverse((at, tenant)));
            }
            streams.push(stream);
        }
        Schedule { streams, heap, end_ns, mix, keys: spec.keys_per_tenant, expected, slice: Slice::WHOLE, seq: 0 }
    }

    /// The same schedule, keeping only `slice`'s share of it. Skipped requests are still
    /// drawn (so every random stream advances as for the whole schedule), just not returned.
    pub fn with_slice(mut self, slice: Slice) -> Schedule {
        self.slice = slice;
        self
    }

    /// The expected number of planned requests (`rate × duration`); exact to within one
    /// request per tenant for constant arrivals, a mean for Poisson.
    pub fn expected_len(&self) -> u64 {
        (self.expected / f64::from(self.slice.count.max(1))).round() as u64
    }

    /// The intended start of the next request of the whole schedule (of any slice), without
    /// consuming it.
    pub fn peek_at(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _))| Duration::from_nanos(*at))
    }
}

/// `segs` cut at `end` seconds (the last one's rate interpolated at the cut).
fn clip(mut segs: Vec<Segment>, end: f64) -> Vec<Segment> {
    segs.retain(|s| s.start < end);
    if let Some(last) = segs.last_mut()
        && last.start + last.len > end
    {
        let len = end - last.start;
        last.to = last.from + (last.to - last.from) * len / last.len;
        last.len = len;
    }
    segs
}

fn to_ns(at: f64) -> u64 {
    // Saturating float-to-int conversion; arrivals are non-negative.
    at.round() as u64
}

impl Iterator for Schedule {
    type Item = Planned;

    fn next(&mut self) -> Option<Planned> {
        loop {
            let p = self.pop_whole()?;
            let seq = self.seq;
            self.seq += 1;
            if self.slice.keeps(seq) {
                return Some(p);
            }
        }
    }
}

impl Schedule {
    /// The next request of the whole schedule, whatever the slice.
    fn pop_whole(&mut self) -> Option<Planned> {
        let Reverse((at, tenant)) = self.heap.pop()?;
        let stream = &mut self.streams[tenant as usize];
        let op = self.mix.pick(&mut stream.picks);
        let key = stream.picks.random_range(0..self.keys);
        if let Some(next) = stream.next_ns()
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
            shape: Shape::Steady,
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

    fn dur(ms: u64) -> isobench_core::units::Dur {
        isobench_core::units::Dur(Duration::from_millis(ms))
    }

    fn phase(ms: u64, from: f64, to: f64) -> PhaseSpec {
        PhaseSpec { duration: dur(ms), level: None, from: Some(from), to: Some(to) }
    }

    /// Requests of `v` in `[a, b)` seconds.
    fn in_window(v: &[Planned], a: f64, b: f64) -> usize {
        v.iter().filter(|p| (a..b).contains(&p.at.as_secs_f64())).count()
    }

    #[test]
    fn zipf_weights_give_zipf_frequencies() {
        use isobench_core::arrivals::{ZipfOrder, zipf_weights};
        let weights = zipf_weights(10, 1.0, ZipfOrder::Listed, 1);
        let h: f64 = weights.iter().sum();
        for arrival in [Arrival::Constant, Arrival::Poisson] {
            let v = collect(&spec(arrival, 20_000.0, 10, weights.clone()));
            let n = v.len() as f64;
            for (k, got) in per_tenant(&v, 10).into_iter().enumerate() {
                let want = n / ((k + 1) as f64 * h);
                // 200k requests: the smallest share (~8.7k) has σ ≈ 93; 3% is > 2.8σ.
                assert!((got as f64 - want).abs() < want * 0.03, "{arrival:?} rank {}: {got} vs {want}", k + 1);
            }
        }
    }

    #[test]
    fn ramp_counts_follow_the_area_under_the_rate() {
        // 0 → 1 × 1000/s over 4 s, then 1 × for 2 s, repeating; a 12 s run is two cycles.
        let phases =
            vec![phase(4_000, 0.0, 1.0), PhaseSpec { duration: dur(2_000), level: Some(1.0), from: None, to: None }];
        for arrival in [Arrival::Constant, Arrival::Poisson] {
            let s = ScheduleSpec {
                shape: Shape::Cycle { phases: phases.clone(), burst: None },
                ..spec(arrival, 1_000.0, 12, vec![1.0])
            };
            let v = collect(&s);
            assert_eq!(Schedule::new(&s).expected_len(), 2 * (2_000 + 2_000));
            // Window [a, b) of the ramp (rate 250·t per s): 125·(b² − a²) requests.
            for (a, b) in [(0.0, 2.0), (2.0, 4.0), (6.0, 8.0), (8.0, 10.0)] {
                let ramp = |t: f64| 125.0 * (t % 6.0) * (t % 6.0);
                let want = ramp(b) - ramp(a);
                let got = in_window(&v, a, b) as f64;
                let tol = if arrival == Arrival::Constant { 1.0 } else { 4.0 * want.sqrt() };
                assert!((got - want).abs() <= tol, "{arrival:?} [{a},{b}): {got} vs {want}");
            }
            let flat = in_window(&v, 4.0, 6.0) as f64;
            let tol = if arrival == Arrival::Constant { 1.0 } else { 200.0 };
            assert!((flat - 2_000.0).abs() <= tol, "{arrival:?} flat: {flat}");
        }
    }

    #[test]
    fn bursts_multiply_the_rate_in_their_windows() {
        let burst = BurstSpec { period: dur(1_000), length: dur(200), multiplier: 5.0 };
        let s = ScheduleSpec {
            shape: Shape::Cycle { phases: vec![], burst: Some(burst) },
            ..spec(Arrival::Constant, 1_000.0, 5, vec![1.0, 1.0])
        };
        let v = collect(&s);
        // Per second: 0.2 s at 5k/s (1000) + 0.8 s at 1k/s (800).
        assert_eq!(Schedule::new(&s).expected_len(), 5 * 1_800);
        for k in 0..5 {
            let k = f64::from(k);
            let on = in_window(&v, k, k + 0.2) as f64;
            let off = in_window(&v, k + 0.2, k + 1.0) as f64;
            assert!((on - 1_000.0).abs() <= 2.0, "second {k}: {on} in the burst");
            assert!((off - 800.0).abs() <= 2.0, "second {k}: {off} outside");
        }
    }

    #[test]
    fn trace_minutes_are_reproduced_exactly_per_tenant() {
        let counts = vec![vec![3, 0, 120, 7, 1], vec![0, 50, 0, 0, 2], vec![]];
        let minute = Duration::from_millis(500);
        let shape = Shape::Trace { per_tenant: Arc::new(counts.clone()), minute };
        for seed in [1, 2, 3] {
            let s = ScheduleSpec { shape: shape.clone(), seed, ..spec(Arrival::Constant, 1.0, 10, vec![1.0; 3]) };
            let v = collect(&s);
            assert_eq!(Schedule::new(&s).expected_len(), 183);
            for (t, want) in counts.iter().enumerate() {
                for (m, &c) in want.iter().enumerate() {
                    let (a, b) = (m as f64 * 0.5, (m + 1) as f64 * 0.5);
                    let got =
                        v.iter().filter(|p| p.tenant as usize == t && (a..b).contains(&p.at.as_secs_f64())).count();
                    assert_eq!(got as u64, c, "seed {seed}, tenant {t}, minute {m}");
                }
            }
            assert!(v.iter().all(|p| p.tenant != 2), "a tenant without trace rows gets no traffic");
            assert!(v.iter().all(|p| p.at < Duration::from_millis(2_500)));
        }
        // Poisson: the total is right on average; the run's end cuts the replay.
        let s = ScheduleSpec { shape, ..spec(Arrival::Poisson, 1.0, 1, vec![1.0; 3]) };
        assert_eq!(Schedule::new(&s).expected_len(), 3 + 50);
        assert!(collect(&s).iter().all(|p| p.at < Duration::from_secs(1)));
    }
}
