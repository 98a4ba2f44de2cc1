//! From the finished points to the sweep's curves and crossovers: per tier, the monthly cost
//! against tenants (at each rate) and against rate (at each tenant count), measured at the
//! runs and extrapolated by the cost model between and beyond them; the measured latency; and
//! the crossings of every two tiers' cost curves, in words.
//!
//! A curve's figure at x comes from the run nearest x along the axis (in log distance, the
//! lower one on a tie): at a run's own x it is the run's measured cost, elsewhere
//! `isobench_cost::cost_at` of that run. A crossing found between two samples is refined with
//! the same model (to the tenant, or to three significant digits of a rate).

use isobench_cost::{Pricing, TierShape};
use isobench_results::Summary;
use isobench_results::sweep::{Axis, CostCurve, Crossover, CurvePoint, LatencyPoint};

use crate::crossover::{Crossing, crossings};
use crate::matrix::{Matrix, Point, rate_label};

/// A point whose run finished, with its summary.
pub struct Run<'a> {
    pub point: Point,
    pub key: String,
    pub summary: &'a Summary,
}

/// What the sweep's report draws and says.
#[derive(Debug, Default)]
pub struct Analysis {
    pub curves: Vec<CostCurve>,
    pub latency: Vec<LatencyPoint>,
    pub crossovers: Vec<Crossover>,
    /// Figures the model could not produce (a tier without a cost, an unknown shape).
    pub notes: Vec<String>,
}

/// Samples per curve between a quarter of the lowest measured value and four times the highest.
const SAMPLES: usize = 25;
const BEYOND: f64 = 4.0;
/// Two tiers within this share of each other on one side of a crossing are not said to cross:
/// runs of a few seconds differ by that much from noise (cold starts, Poisson draws).
pub const SIGNIFICANT: f64 = 0.05;

pub fn analyse(matrix: &Matrix, runs: &[Run], tiers: &[String], pricing: &Pricing) -> Analysis {
    let mut a = Analysis { latency: latency(runs, tiers), ..Default::default() };
    for axis in [Axis::Tenants, Axis::Rate] {
        let fixed_values: Vec<f64> = match axis {
            Axis::Tenants => matrix.rates.clone(),
            Axis::Rate => matrix.tenants.iter().map(|t| *t as f64).collect(),
        };
        for fixed in fixed_values {
            let line: Vec<&Run> = runs.iter().filter(|r| other(r.point, axis) == fixed).collect();
            if line.is_empty() {
                continue;
            }
            let model = Model { axis, fixed, runs: line, pricing };
            let xs = model.grid();
            let mut curves = Vec::new();
            for tier in tiers {
                match xs.iter().map(|x| model.at(tier, *x)).collect::<Result<Vec<_>, _>>() {
                    Ok(points) => curves.push(CostCurve { tier: tier.clone(), axis, fixed, points }),
                    Err(e) => {
                        a.notes.push(format!("{tier} along {} at {}: {e}", axis.as_str(), fixed_label(axis, fixed)))
                    }
                }
            }
            for (i, ca) in curves.iter().enumerate() {
                for cb in &curves[i + 1..] {
                    a.crossovers.extend(model.crossovers(ca, cb));
                }
            }
            a.curves.extend(curves);
        }
    }
    a
}

fn along(p: Point, axis: Axis) -> f64 {
    match axis {
        Axis::Tenants => p.tenants as f64,
        Axis::Rate => p.rate,
    }
}

fn other(p: Point, axis: Axis) -> f64 {
    along(p, axis.other())
}

fn latency(runs: &[Run], tiers: &[String]) -> Vec<LatencyPoint> {
    let mut out = Vec::new();
    for tier in tiers {
        for r in runs {
            if let Some(t) = r.summary.tiers.iter().find(|t| &t.tier == tier) {
                out.push(LatencyPoint {
                    tier: tier.clone(),
                    point: r.key.clone(),
                    tenants: r.point.tenants,
                    rate: r.point.rate,
                    p50_ms: t.latency.corrected.p50_us / 1e3,
                    p99_ms: t.latency.corrected.p99_us / 1e3,
                    ok_rate: t.ok_rate.unwrap_or(t.achieved_rate),
                });
            }
        }
    }
    out
}

/// The cost model along one axis, the other dimension at `fixed`, from the runs on that line.
struct Model<'a> {
    axis: Axis,
    fixed: f64,
    runs: Vec<&'a Run<'a>>,
    pricing: &'a Pricing,
}

impl Model<'_> {
    fn measured_xs(&self) -> Vec<f64> {
        let mut xs: Vec<f64> = self.runs.iter().map(|r| along(r.point, self.axis)).collect();
        xs.sort_by(f64::total_cmp);
        xs
    }

    /// The measured values, and log-spaced samples from a quarter of the lowest to four times
    /// the highest (whole tenant counts).
    fn grid(&self) -> Vec<f64> {
        let m = self.measured_xs();
        let (lo, hi) = (m[0] / BEYOND, m[m.len() - 1] * BEYOND);
        let (lo, hi) = if self.axis == Axis::Tenants { (lo.max(1.0), hi) } else { (lo, hi) };
        let step = (hi / lo).ln() / (SAMPLES - 1) as f64;
        let mut xs: Vec<f64> = (0..SAMPLES).map(|i| lo * (step * i as f64).exp()).chain(m.iter().copied()).collect();
        if self.axis == Axis::Tenants {
            xs.iter_mut().for_each(|x| *x = x.round().max(1.0));
        }
        xs.sort_by(f64::total_cmp);
        xs.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs());
        // A sample equal to a run's value is that value exactly (the run's own figure).
        for x in &mut xs {
            if let Some(v) = m.iter().find(|v| (**v - *x).abs() <= 1e-9 * v.abs()) {
                *x = *v;
            }
        }
        xs
    }

    /// The run nearest `x` along the axis (log distance, the lower on a tie).
    fn nearest(&self, x: f64) -> &Run<'_> {
        let dist = |r: &&&Run| (along(r.point, self.axis).ln() - x.ln()).abs();
        let mut best = &self.runs[0];
        for r in &self.runs {
            let (d, b) = (dist(&r), dist(&best));
            if d < b - 1e-12 || (d <= b + 1e-12 && along(r.point, self.axis) < along(best.point, self.axis)) {
                best = r;
            }
        }
        best
    }

    fn at(&self, tier: &str, x: f64) -> Result<CurvePoint, String> {
        self.at_run(tier, x, self.nearest(x))
    }

    /// The figure of `tier` at `x` from `run`: its own when `x` is the run's value.
    fn at_run(&self, tier: &str, x: f64, run: &Run) -> Result<CurvePoint, String> {
        let t = run.summary.tiers.iter().find(|t| t.tier == tier).ok_or("the run has no such tier")?;
        let file = format!("points/{}/summary.json", run.key);
        if (along(run.point, self.axis) - x).abs() < 1e-9 {
            let c = t.cost.as_ref().ok_or("the run has no cost (no pricing)")?;
            return Ok(CurvePoint {
                x,
                monthly_usd: c.monthly_usd,
                measured: true,
                from: run.key.clone(),
                source: format!("{file}: tiers[{tier}].cost.monthly_usd"),
                lower_bound: false,
            });
        }
        let shape = TierShape::from_effective(&run.summary.scenario.effective, tier).map_err(|e| e.to_string())?;
        let (tenants, rate) = match self.axis {
            Axis::Tenants => (x.round() as u64, self.fixed),
            Axis::Rate => (self.fixed as u64, x),
        };
        let c = isobench_cost::cost_at(t, &shape, self.pricing, tenants, rate).map_err(|e| e.to_string())?;
        let held = c.notes.first().is_some_and(|n| n.contains("the count is held at"));
        Ok(CurvePoint {
            lower_bound: held && rate > t.target_rate,
            x,
            monthly_usd: c.monthly_usd,
            measured: false,
            from: run.key.clone(),
            source: format!("cost model ({}) at {tenants} tenants, {} req/s, from {file}", c.model, rate_label(rate)),
        })
    }

    /// `a − b` at `x`, priced from `run` (or the nearest run when `None`).
    fn diff(&self, a: &str, b: &str, x: f64, run: Option<&Run>) -> f64 {
        let at = |tier: &str| match run {
            Some(r) => self.at_run(tier, x, r),
            None => self.at(tier, x),
        };
        match (at(a), at(b)) {
            (Ok(pa), Ok(pb)) => pa.monthly_usd - pb.monthly_usd,
            _ => f64::NAN,
        }
    }

    /// Narrows a crossing between `l` < `r` with the model (priced from `run`, or the nearest
    /// run): the lowest whole tenant count, or the rate to three significant digits, where the
    /// order is that of `r`. `None` when the order is the same at both ends.
    fn refine(&self, a: &str, b: &str, l: f64, r: f64, run: Option<&Run>) -> Option<f64> {
        let side = self.diff(a, b, r, run).signum();
        if side == 0.0 || side.is_nan() || self.diff(a, b, l, run).signum() != -side {
            return None;
        }
        let (mut lo, mut hi) = (l, r);
        for _ in 0..60 {
            if self.axis == Axis::Tenants && hi - lo <= 1.0 {
                break;
            }
            let mid = if self.axis == Axis::Tenants { ((lo + hi) / 2.0).floor() } else { (lo + hi) / 2.0 };
            if self.diff(a, b, mid, run).signum() == side { hi = mid } else { lo = mid }
        }
        Some(if self.axis == Axis::Tenants { hi } else { sig3(hi) })
    }

    fn run_by_key(&self, key: &str) -> Option<&Run<'_>> {
        self.runs.iter().copied().find(|r| r.key == key)
    }

    /// Whether two curves differ by more than [`SIGNIFICANT`] somewhere on each side of a
    /// crossing between samples `l` and `r`: a crossing inside the model's noise is not named.
    fn significant(ya: &[f64], yb: &[f64], l: usize, r: usize) -> bool {
        let rel = |i: usize| (ya[i] - yb[i]).abs() / ya[i].abs().max(yb[i].abs()).max(f64::MIN_POSITIVE);
        (0..=l).any(|i| rel(i) > SIGNIFICANT) && (r..ya.len()).any(|i| rel(i) > SIGNIFICANT)
    }

    fn crossovers(&self, ca: &CostCurve, cb: &CostCurve) -> Vec<Crossover> {
        let xs: Vec<f64> = ca.points.iter().map(|p| p.x).collect();
        let ya: Vec<f64> = ca.points.iter().map(|p| p.monthly_usd).collect();
        let yb: Vec<f64> = cb.points.iter().map(|p| p.monthly_usd).collect();
        crossings(&xs, &ya, &yb)
            .into_iter()
            .filter(|c| Self::significant(&ya, &yb, c.left, c.right))
            .map(|c| self.crossover(ca, cb, &xs, c))
            .collect()
    }

    /// One crossing in figures and words. The samples on either side are priced from one run
    /// each (the nearest); when those differ, each run's model places the crossing on its own.
    fn crossover(&self, ca: &CostCurve, cb: &CostCurve, xs: &[f64], c: Crossing) -> Crossover {
        let (below, above) = if c.a_lower_before { (&ca.tier, &cb.tier) } else { (&cb.tier, &ca.tier) };
        let (l, r) = (&ca.points[c.left], &ca.points[c.right]);
        let m = self.measured_xs();
        let lo_run = m.iter().rev().find(|v| **v <= xs[c.left]).copied();
        let hi_run = m.iter().find(|v| **v >= xs[c.right]).copied();
        let pair = |lo: f64, hi: f64| pair_label(self.axis, lo, hi);
        let exact_measured = c.exact && l.measured && cb.points[c.left].measured;
        let (at, at_high, how) = if exact_measured {
            (c.x, None, format!("measured: both cost ${:.2} a month at the run {}", l.monthly_usd, l.from))
        } else if l.from != r.from {
            let (rl, rr) = (self.run_by_key(&l.from), self.run_by_key(&r.from));
            let (Some(rl), Some(rr)) = (rl, rr) else { return self.unplaced(below, above, c, xs) };
            let (x0, x1) = (along(rl.point, self.axis), along(rr.point, self.axis));
            let from_l = self.refine(&ca.tier, &cb.tier, x0, x1, Some(rl));
            let from_r = self.refine(&ca.tier, &cb.tier, x0, x1, Some(rr));
            let unit = |v: f64| value_label(self.axis, v);
            match (from_l, from_r) {
                (Some(p), Some(q)) => (
                    p.min(q),
                    (p != q).then_some(p.max(q)),
                    format!(
                        "extrapolated by the cost model between the measured runs at {}: from the run {} at {}, from the run {} at {}",
                        pair(x0, x1),
                        rl.key,
                        unit(p),
                        rr.key,
                        unit(q)
                    ),
                ),
                (Some(p), None) | (None, Some(p)) => {
                    let k = if from_l.is_some() { &rl.key } else { &rr.key };
                    (
                        p,
                        None,
                        format!(
                            "extrapolated by the cost model from the run {k}, between the measured runs at {}; the other \
                             run's figures do not cross there",
                            pair(x0, x1)
                        ),
                    )
                }
                (None, None) => return self.unplaced(below, above, c, xs),
            }
        } else {
            let at = if c.exact { Some(c.x) } else { self.refine(&ca.tier, &cb.tier, xs[c.left], xs[c.right], None) };
            let how = match (lo_run, hi_run) {
                (Some(lo), Some(hi)) if lo < hi => format!(
                    "extrapolated by the cost model between the measured runs at {}, from the run {}",
                    pair(lo, hi),
                    l.from
                ),
                _ => format!("extrapolated by the cost model beyond the measured runs, from the run {}", l.from),
            };
            (at.unwrap_or(c.x), None, how)
        };
        let place = match at_high {
            Some(h) => range_label(self.axis, at, h),
            None => value_label(self.axis, at),
        };
        let fixed = fixed_label(self.axis, self.fixed);
        self.record(
            below,
            above,
            at,
            at_high,
            exact_measured,
            c,
            xs,
            format!("{below} is cheaper than {above} below {place} {fixed}, and dearer above it ({how})"),
        )
    }

    /// A change of order between two runs that neither run's figures reproduce.
    fn unplaced(&self, below: &str, above: &str, c: Crossing, xs: &[f64]) -> Crossover {
        let (x0, x1) = (xs[c.left], xs[c.right]);
        let sentence = format!(
            "{below} is cheaper than {above} up to {} and dearer from {} {}: the runs on either side disagree, and the cost \
             model does not place the crossing between them",
            value_label(self.axis, x0),
            value_label(self.axis, x1),
            fixed_label(self.axis, self.fixed)
        );
        self.record(below, above, c.x, None, false, c, xs, sentence)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        below: &str,
        above: &str,
        at: f64,
        at_high: Option<f64>,
        at_measured_point: bool,
        c: Crossing,
        xs: &[f64],
        sentence: String,
    ) -> Crossover {
        let mut runs: Vec<String> = self.runs.iter().map(|r| r.key.clone()).collect();
        let near = |x: f64| self.nearest(x).key.clone();
        runs.retain(|k| *k == near(xs[c.left]) || *k == near(xs[c.right]));
        Crossover {
            axis: self.axis,
            fixed: self.fixed,
            at,
            at_high,
            cheaper_below: below.to_string(),
            cheaper_above: above.to_string(),
            at_measured_point,
            left_x: xs[c.left],
            right_x: xs[c.right],
            runs,
            sentence,
        }
    }
}

/// A range of one dimension: `14–17 tenants`, `130–150 req/s`.
pub fn range_label(axis: Axis, lo: f64, hi: f64) -> String {
    match axis {
        Axis::Tenants => format!("{}–{} tenants", lo.round() as u64, hi.round() as u64),
        Axis::Rate => format!("{}–{} req/s", rate_label(lo), rate_label(hi)),
    }
}

/// `1k req/s` or `8 tenants`.
pub fn value_label(axis: Axis, v: f64) -> String {
    match axis {
        Axis::Tenants => format!("{} tenants", v.round() as u64),
        Axis::Rate => format!("{} req/s", rate_label(v)),
    }
}

/// Two values of one dimension: `32 and 128 tenants`, `100 and 400 req/s`.
pub fn pair_label(axis: Axis, lo: f64, hi: f64) -> String {
    match axis {
        Axis::Tenants => format!("{} and {} tenants", lo.round() as u64, hi.round() as u64),
        Axis::Rate => format!("{} and {} req/s", rate_label(lo), rate_label(hi)),
    }
}

/// The held dimension in words: `at 1k req/s`, `with 8 tenants`.
pub fn fixed_label(axis: Axis, fixed: f64) -> String {
    match axis {
        Axis::Tenants => format!("at {} req/s", rate_label(fixed)),
        Axis::Rate => format!("with {} tenants", fixed.round() as u64),
    }
}

/// `v` to three significant digits.
fn sig3(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(2 - v.log10().floor() as i32);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed leakage run (6 tiers, 4 tenants, 300 req/s) and the same figures as if
    /// measured at 32 tenants, each tier recosted there.
    fn two_runs(p: &Pricing) -> (Summary, Summary) {
        let a: Summary = serde_json::from_str(include_str!("../../../results/bench/leakage/summary.json")).unwrap();
        let mut b = a.clone();
        for t in &mut b.tiers {
            t.tenants = 32;
            let shape = TierShape::from_effective(&a.scenario.effective, &t.tier).unwrap();
            t.cost = Some(isobench_cost::cost_of_tier(t, &shape, p).unwrap());
        }
        (a, b)
    }

    #[test]
    fn curves_are_measured_at_the_runs_and_a_crossover_is_said_with_its_runs() {
        let p = Pricing::built_in("us-east-1").unwrap();
        let (a, b) = two_runs(&p);
        let runs = [
            Run { point: Point { tenants: 4, rate: 300.0 }, key: "tenants=4,rate=300".into(), summary: &a },
            Run { point: Point { tenants: 32, rate: 300.0 }, key: "tenants=32,rate=300".into(), summary: &b },
        ];
        let matrix = Matrix { tenants: vec![4, 32], rates: vec![300.0], varied: vec![Axis::Tenants], from: "--vary" };
        let tiers: Vec<String> = a.tiers.iter().map(|t| t.tier.clone()).collect();
        let an = analyse(&matrix, &runs, &tiers, &p);
        assert!(an.notes.is_empty(), "{:?}", an.notes);
        // Along tenants at 300 req/s, and along rate at 4 and at 32 tenants, for each tier.
        assert_eq!(an.curves.len(), 3 * tiers.len());
        let silo = an.curves.iter().find(|c| c.tier == "silo-ec2" && c.axis == Axis::Tenants).unwrap();
        let measured: Vec<(f64, &str)> =
            silo.points.iter().filter(|p| p.measured).map(|p| (p.x, p.from.as_str())).collect();
        assert_eq!(measured, [(4.0, "tenants=4,rate=300"), (32.0, "tenants=32,rate=300")]);
        let at_4 = silo.points.iter().find(|p| p.x == 4.0).unwrap();
        assert_eq!(at_4.source, "points/tenants=4,rate=300/summary.json: tiers[silo-ec2].cost.monthly_usd");
        assert!(silo.points.iter().any(|p| !p.measured && p.x > 32.0), "extrapolated beyond the runs");

        // silo-ec2 at $7.488 a tenant-month against one m5.large at $69.12: 9 tenants are
        // cheaper on silo, 10 are not.
        let c = an
            .crossovers
            .iter()
            .find(|c| c.axis == Axis::Tenants && c.cheaper_below == "silo-ec2" && c.cheaper_above == "shared-ec2")
            .unwrap_or_else(|| panic!("{:#?}", an.crossovers));
        assert_eq!(c.at, 10.0);
        assert_eq!(
            c.sentence,
            "silo-ec2 is cheaper than shared-ec2 below 10 tenants at 300 req/s, and dearer above it (extrapolated by \
             the cost model between the measured runs at 4 and 32 tenants, from the run tenants=4,rate=300)"
        );
        assert!(c.runs.iter().all(|r| r.starts_with("tenants=")), "{:?}", c.runs);
        assert_eq!(an.latency.len(), 2 * tiers.len());
    }

    #[test]
    fn a_crossing_at_a_measured_point_is_said_to_be_measured() {
        // A t3.micro priced so that 8 silo instances cost exactly one m5.large.
        let mut p = Pricing::built_in("us-east-1").unwrap();
        let m5 = p.prices["ec2.m5.large"].usd;
        p.prices.get_mut("ec2.t3.micro").unwrap().usd = m5 / 8.0;
        let a: Summary = serde_json::from_str(include_str!("../../../results/bench/leakage/summary.json")).unwrap();
        let at = |n: usize| {
            let mut s = a.clone();
            s.tiers.retain(|t| t.tier == "silo-ec2" || t.tier == "shared-ec2");
            for t in &mut s.tiers {
                t.tenants = n;
                let shape = TierShape::from_effective(&a.scenario.effective, &t.tier).unwrap();
                t.cost = Some(isobench_cost::cost_of_tier(t, &shape, &p).unwrap());
            }
            s
        };
        let (s2, s8, s32) = (at(2), at(8), at(32));
        let runs = [
            Run { point: Point { tenants: 2, rate: 300.0 }, key: "tenants=2,rate=300".into(), summary: &s2 },
            Run { point: Point { tenants: 8, rate: 300.0 }, key: "tenants=8,rate=300".into(), summary: &s8 },
            Run { point: Point { tenants: 32, rate: 300.0 }, key: "tenants=32,rate=300".into(), summary: &s32 },
        ];
        let matrix =
            Matrix { tenants: vec![2, 8, 32], rates: vec![300.0], varied: vec![Axis::Tenants], from: "--vary" };
        let an = analyse(&matrix, &runs, &["silo-ec2".into(), "shared-ec2".into()], &p);
        let along: Vec<&Crossover> = an.crossovers.iter().filter(|c| c.axis == Axis::Tenants).collect();
        assert_eq!(along.len(), 1, "{along:#?}");
        let c = along[0];
        assert!(c.at_measured_point && c.at == 8.0 && c.left_x == 8.0 && c.right_x == 8.0, "{c:#?}");
        assert_eq!(c.runs, ["tenants=8,rate=300"]);
        assert!(
            c.sentence.starts_with("silo-ec2 is cheaper than shared-ec2 below 8 tenants at 300 req/s")
                && c.sentence.contains("(measured: both cost $69.12 a month at the run tenants=8,rate=300)"),
            "{}",
            c.sentence
        );
    }

    #[test]
    fn three_significant_digits() {
        assert_eq!(sig3(2437.2), 2440.0);
        assert_eq!(sig3(0.012345), 0.0123);
        assert_eq!(value_label(Axis::Rate, sig3(2437.2)), "2.44k req/s");
        assert_eq!(fixed_label(Axis::Tenants, 1000.0), "at 1k req/s");
    }
}
