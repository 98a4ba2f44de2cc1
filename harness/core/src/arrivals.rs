//! Realistic arrivals (`[arrivals]` in a scenario): which tenant sends how much, and how the
//! rate moves over time.
//!
//! - **Zipf tenant mix** (`tenants = "zipf"`): tenant of rank `k` (1-based) gets weight
//!   `1 / k^zipf_s`; ranks follow the tenant order (`zipf_order = "listed"`) or a shuffle seeded
//!   by the run's seed (`"shuffled"`).
//! - **Phases** (`[[arrivals.phases]]`): multipliers of `run.rate`, each constant (`level`) or a
//!   linear ramp (`from` → `to`) over its `duration`; the list repeats until the run ends.
//! - **Bursts** (`[arrivals.burst]`): for the first `length` of every `period` the rate is
//!   multiplied by `multiplier`.
//! - **Trace replay** (`[arrivals.trace]`): per-minute invocation counts in the column layout of
//!   the Azure Functions 2019 trace (`HashOwner,HashApp,HashFunction,Trigger,1,...,1440`, one
//!   row per function), mapped onto tenants; see [`TraceSpec`]. The trace then sets every
//!   tenant's rate and `run.rate` is not used.
//!
//! This module validates and resolves; the load crate turns a [`Shape`] into arrivals.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::units::Dur;

/// How tenants share the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TenantMix {
    /// `[tenants] weights`, or equal shares.
    #[default]
    Weights,
    /// Zipf weights by rank.
    Zipf,
}

/// Which tenant gets which Zipf rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZipfOrder {
    /// The first tenant is rank 1 (the busiest).
    #[default]
    Listed,
    /// Ranks shuffled with the run's seed.
    Shuffled,
}

/// `[arrivals]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalsSpec {
    #[serde(default)]
    pub tenants: TenantMix,
    /// The Zipf exponent `s` (1.0: the classic 1/k).
    #[serde(default = "default_zipf_s")]
    pub zipf_s: f64,
    #[serde(default)]
    pub zipf_order: ZipfOrder,
    #[serde(default)]
    pub phases: Vec<PhaseSpec>,
    #[serde(default)]
    pub burst: Option<BurstSpec>,
    #[serde(default)]
    pub trace: Option<TraceSpec>,
}

fn default_zipf_s() -> f64 {
    1.0
}

/// One phase: a constant `level` or a ramp `from` → `to`, as multipliers of `run.rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    pub duration: Dur,
    #[serde(default)]
    pub level: Option<f64>,
    #[serde(default)]
    pub from: Option<f64>,
    #[serde(default)]
    pub to: Option<f64>,
}

impl PhaseSpec {
    /// The multiplier at the start and at the end of the phase.
    pub fn levels(&self) -> (f64, f64) {
        match (self.level, self.from, self.to) {
            (Some(l), _, _) => (l, l),
            (None, Some(f), Some(t)) => (f, t),
            _ => (1.0, 1.0),
        }
    }
}

/// On/off bursts: `multiplier` × the rate for the first `length` of each `period`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    pub period: Dur,
    pub length: Dur,
    pub multiplier: f64,
}

/// How trace functions become tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceMap {
    /// The N busiest functions of the window (by invocations), busiest first, onto the N
    /// tenants in order; the other functions are dropped.
    #[default]
    Top,
    /// Function `j` (file order) onto tenant `j mod N`; every invocation is kept.
    RoundRobin,
}

/// `[arrivals.trace]`: replay of a per-minute invocation trace.
///
/// Minutes `first_minute .. first_minute + minutes` of the trace (1-based, as the columns are
/// named) are replayed, each trace minute lasting `minute` of run time (`"1s"` replays an hour
/// in a minute). Each count is multiplied by `scale` and rounded to a whole number; within a
/// minute, arrivals are evenly spaced from a random phase with `run.arrival = "constant"` (the
/// per-minute counts are then reproduced exactly) or form a Poisson process with `"poisson"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// CSV file, relative to the scenario file.
    pub file: PathBuf,
    #[serde(default)]
    pub map: TraceMap,
    #[serde(default = "default_first_minute")]
    pub first_minute: u32,
    /// Minutes to replay; default: to the end of the trace.
    #[serde(default)]
    pub minutes: Option<u32>,
    /// Run time per trace minute.
    #[serde(default = "default_minute")]
    pub minute: Dur,
    #[serde(default = "default_scale")]
    pub scale: f64,
}

fn default_first_minute() -> u32 {
    1
}
fn default_minute() -> Dur {
    Dur(Duration::from_secs(60))
}
fn default_scale() -> f64 {
    1.0
}

/// One function (row) of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    pub function: String,
    /// Line in the file, for messages.
    pub line: u64,
    pub counts: Vec<u64>,
}

/// A parsed trace file.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub rows: Vec<TraceRow>,
    /// Minute columns in the file.
    pub minutes: usize,
}

/// The first columns of the Azure Functions 2019 invocation trace.
pub const TRACE_KEY_COLUMNS: [&str; 4] = ["HashOwner", "HashApp", "HashFunction", "Trigger"];

/// A bad trace file, located.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TraceError {
    pub file: String,
    pub line: u64,
    pub message: String,
}

impl Trace {
    /// Reads a trace in the Azure Functions 2019 layout: a header
    /// `HashOwner,HashApp,HashFunction,Trigger,1,2,...,N` (N from 1 to 1440, consecutive) and
    /// one row per function with N non-negative integer counts.
    pub fn load(path: &Path) -> Result<Trace, TraceError> {
        let file = path.display().to_string();
        let fail = |line: u64, message: String| TraceError { file: file.clone(), line, message };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_path(path)
            .map_err(|e| fail(0, format!("cannot read the trace: {e}")))?;
        let header = reader.headers().map_err(|e| fail(1, format!("bad header: {e}")))?.clone();
        let minutes = check_header(&header).map_err(|m| fail(1, m))?;
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                fail(line, format!("bad row: {e}"))
            })?;
            let line = record.position().map_or(0, |p| p.line());
            rows.push(parse_row(&record, minutes, line).map_err(|m| fail(line, m))?);
        }
        if rows.is_empty() {
            return Err(fail(1, "the trace has a header but no function rows".into()));
        }
        Ok(Trace { rows, minutes })
    }

    /// Each tenant's per-minute counts over the window, mapped by `spec` and scaled.
    pub fn per_tenant(&self, spec: &TraceSpec, tenants: usize) -> Vec<Vec<u64>> {
        let first = (spec.first_minute as usize).saturating_sub(1).min(self.minutes);
        let len = spec.minutes.map_or(self.minutes - first, |m| m as usize).min(self.minutes - first);
        let window = |i: usize| &self.rows[i].counts[first..first + len];
        let mut out = vec![vec![0u64; len]; tenants];
        let order: Vec<usize> = match spec.map {
            TraceMap::Top => {
                let mut idx: Vec<usize> = (0..self.rows.len()).collect();
                // Busiest first; ties keep file order, so the mapping is deterministic.
                idx.sort_by_key(|&i| std::cmp::Reverse(window(i).iter().sum::<u64>()));
                idx.truncate(tenants);
                idx
            }
            TraceMap::RoundRobin => (0..self.rows.len()).collect(),
        };
        for (j, &row) in order.iter().enumerate() {
            let tenant = &mut out[j % tenants];
            for (acc, c) in tenant.iter_mut().zip(window(row)) {
                *acc += c;
            }
        }
        for counts in &mut out {
            for c in counts.iter_mut() {
                *c = (*c as f64 * spec.scale).round() as u64;
            }
        }
        out
    }
}

fn check_header(h: &csv::StringRecord) -> Result<usize, String> {
    let accepted = "HashOwner,HashApp,HashFunction,Trigger,1,2,...,N (N from 1 to 1440)";
    for (i, want) in TRACE_KEY_COLUMNS.iter().enumerate() {
        match h.get(i) {
            Some(got) if got.trim() == *want => {}
            got => {
                return Err(format!("column {} is {:?}, expected `{want}`; accepted header: {accepted}", i + 1, got));
            }
        }
    }
    let minutes = h.len().saturating_sub(TRACE_KEY_COLUMNS.len());
    if !(1..=1440).contains(&minutes) {
        return Err(format!("{minutes} minute columns; accepted header: {accepted}"));
    }
    for (k, name) in h.iter().skip(TRACE_KEY_COLUMNS.len()).enumerate() {
        if name.trim() != (k + 1).to_string() {
            return Err(format!(
                "column {} is `{name}`, expected minute `{}`; accepted header: {accepted}",
                k + 1 + TRACE_KEY_COLUMNS.len(),
                k + 1
            ));
        }
    }
    Ok(minutes)
}

fn parse_row(r: &csv::StringRecord, minutes: usize, line: u64) -> Result<TraceRow, String> {
    let want = TRACE_KEY_COLUMNS.len() + minutes;
    if r.len() != want {
        return Err(format!("{} columns, the header has {want}", r.len()));
    }
    let counts = r
        .iter()
        .skip(TRACE_KEY_COLUMNS.len())
        .enumerate()
        .map(|(k, v)| {
            v.trim().parse::<u64>().map_err(|_| {
                format!(
                    "column {} (minute {}): `{v}` is not a count; accepted: a whole number 0 or more",
                    k + 1 + TRACE_KEY_COLUMNS.len(),
                    k + 1
                )
            })
        })
        .collect::<Result<Vec<u64>, String>>()?;
    Ok(TraceRow { function: r.get(2).unwrap_or_default().to_string(), line, counts })
}

/// Zipf weights `1 / rank^s` for `n` tenants, ranks in tenant order or shuffled with `seed`.
pub fn zipf_weights(n: usize, s: f64, order: ZipfOrder, seed: u64) -> Vec<f64> {
    let mut ranks: Vec<usize> = (1..=n).collect();
    if order == ZipfOrder::Shuffled {
        ranks.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    ranks.into_iter().map(|k| (k as f64).powf(-s)).collect()
}

/// How the rate moves over a run, resolved from a scenario; the load crate builds arrivals
/// from it.
#[derive(Debug, Clone, Default)]
pub enum Shape {
    /// `run.rate` throughout.
    #[default]
    Steady,
    /// `run.rate` × the phases' multiplier (repeating) × the burst multiplier.
    Cycle { phases: Vec<PhaseSpec>, burst: Option<BurstSpec> },
    /// Each tenant's own per-minute counts; one trace minute lasts `minute`.
    Trace { per_tenant: Arc<Vec<Vec<u64>>>, minute: Duration },
}

impl Shape {
    /// The run time the shape describes, if it has an end of its own (a trace).
    pub fn length(&self) -> Option<Duration> {
        match self {
            Shape::Trace { per_tenant, minute } => {
                let minutes = per_tenant.first().map_or(0, Vec::len);
                Some(*minute * u32::try_from(minutes).unwrap_or(u32::MAX))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("isobench-trace-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const GOOD: &str = "HashOwner,HashApp,HashFunction,Trigger,1,2,3\n\
        o1,a1,f1,http,1,2,3\n\
        o1,a1,f2,timer,10,0,10\n\
        o2,a2,f3,queue,0,0,1\n";

    #[test]
    fn trace_parses_and_maps_top_and_round_robin() {
        let d = tmpdir("good");
        let t = Trace::load(&write(&d, "t.csv", GOOD)).unwrap();
        assert_eq!(t.minutes, 3);
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[1].line, 3);
        let spec = |map| TraceSpec {
            file: "t.csv".into(),
            map,
            first_minute: 1,
            minutes: None,
            minute: Dur(Duration::from_secs(1)),
            scale: 1.0,
        };
        // Top: f2 (20) then f1 (6); f3 dropped.
        assert_eq!(t.per_tenant(&spec(TraceMap::Top), 2), vec![vec![10, 0, 10], vec![1, 2, 3]]);
        // Round robin: f1 + f3 on tenant 0, f2 on tenant 1.
        assert_eq!(t.per_tenant(&spec(TraceMap::RoundRobin), 2), vec![vec![1, 2, 4], vec![10, 0, 10]]);
        // A window and a scale.
        let w = TraceSpec { first_minute: 2, minutes: Some(2), scale: 2.5, ..spec(TraceMap::Top) };
        assert_eq!(t.per_tenant(&w, 1), vec![vec![0, 25]]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn bad_traces_name_file_line_and_column() {
        let d = tmpdir("bad");
        let cases = [
            ("Owner,HashApp,HashFunction,Trigger,1\n", 1, "column 1"),
            ("HashOwner,HashApp,HashFunction,Trigger,1,3\no,a,f,t,1,1\n", 1, "expected minute `2`"),
            ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,t,1,2\no,a,g,t,1,x\n", 3, "column 6 (minute 2)"),
            ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,t,1\n", 2, "5 columns, the header has 6"),
            ("HashOwner,HashApp,HashFunction,Trigger,1\no,a,f,t,-1\n", 2, "not a count"),
            ("HashOwner,HashApp,HashFunction,Trigger,1\n", 1, "no function rows"),
        ];
        for (i, (text, line, needle)) in cases.iter().enumerate() {
            let p = write(&d, &format!("b{i}.csv"), text);
            let e = Trace::load(&p).unwrap_err();
            assert_eq!(e.line, *line, "case {i}: {e}");
            assert!(e.to_string().contains(needle), "case {i}: {e}");
            assert!(e.to_string().starts_with(&p.display().to_string()), "case {i}: {e}");
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn zipf_weights_by_rank_and_seeded_shuffle() {
        let w = zipf_weights(4, 1.0, ZipfOrder::Listed, 1);
        assert_eq!(w, vec![1.0, 0.5, 1.0 / 3.0, 0.25]);
        let a = zipf_weights(50, 1.2, ZipfOrder::Shuffled, 7);
        assert_eq!(a, zipf_weights(50, 1.2, ZipfOrder::Shuffled, 7));
        assert_ne!(a, zipf_weights(50, 1.2, ZipfOrder::Shuffled, 8));
        let mut sorted = a.clone();
        sorted.sort_by(|x, y| y.total_cmp(x));
        assert_eq!(sorted, zipf_weights(50, 1.2, ZipfOrder::Listed, 0));
    }
}
