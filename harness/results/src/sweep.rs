//! `sweep.json`: the record of one `isobench explore` sweep, versioned apart from
//! `summary.json` (each point's own run keeps its `summary.json` under `points/<key>/`).
//!
//! Every figure here is either read from a point's `summary.json` (a *measured* point: the
//! run at that tenant count and rate, `source` names the file and field) or computed by the
//! cost model from one such run (an *extrapolated* point: `from` names the run). The crossover
//! sentences quote only these figures.

use serde::{Deserialize, Serialize};

use crate::{BackendSummary, RunStatus, ToolInfo};

/// Version of the `sweep.json` layout; same compatibility rule as [`crate::SCHEMA_VERSION`].
pub const SWEEP_SCHEMA_VERSION: u32 = 1;
/// The committed JSON Schema of this version, relative to the repository root.
pub const SWEEP_SCHEMA_FILE: &str = "results/schema/sweep.v1.schema.json";
/// File and folder names inside a sweep directory.
pub const SWEEP_FILE: &str = "sweep.json";
pub const POINTS_DIR: &str = "points";

/// The whole record of one sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SweepSummary {
    pub schema_version: u32,
    pub sweep_id: String,
    /// `complete` when every point's run completed; `interrupted` when a signal stopped the
    /// sweep (the finished points are kept, and re-running the command resumes); `failed` when a
    /// point failed.
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: String,
    /// Wall time of the sweep over all its invocations (a resumed sweep adds its own; the
    /// start is the first invocation's).
    pub wall_time_s: f64,
    /// The harness that wrote this file, when a point ran (from that point's summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolInfo>,
    pub scenario: SweepScenario,
    pub matrix: SweepMatrix,
    /// The tiers every point runs.
    pub tiers: Vec<String>,
    /// `--target`: `local`, `aws` or `endpoints`.
    pub target: String,
    /// The backend, as the points' summaries name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendSummary>,
    pub points: Vec<SweepPoint>,
    /// Modelled monthly cost per tier against one dimension, the other held.
    pub curves: Vec<CostCurve>,
    /// Measured corrected latency per tier and point.
    pub latency: Vec<LatencyPoint>,
    /// Where two tiers' cost curves cross, in words and figures.
    pub crossovers: Vec<Crossover>,
}

/// The swept scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SweepScenario {
    pub name: String,
    pub path: String,
    /// SHA-256 of the scenario file's text (each point's run records the hash of its own text).
    pub hash: String,
}

/// The values run, tenants outermost; a dimension not varied holds the scenario's one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SweepMatrix {
    pub tenants: Vec<u64>,
    pub rate: Vec<f64>,
    /// The dimensions varied (`tenants`, `rate`), and where the values came from
    /// (`--vary` or `[explore]`).
    pub varied: Vec<String>,
    pub from: String,
}

/// One point of the matrix and its run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SweepPoint {
    /// `tenants=8,rate=1k`: also its folder under `points/`.
    pub key: String,
    pub tenants: u64,
    pub rate: f64,
    /// The point's results directory, relative to the sweep's.
    pub dir: String,
    pub status: PointStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// SHA-256 of the point's scenario text (the sweep's with the point's values), as its
    /// summary records it.
    pub scenario_hash: String,
    /// The run was done by an earlier invocation and kept (resume).
    #[serde(default)]
    pub resumed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The picks over this point's tiers (cheapest under a p99 bound, ...), when computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub picks: Vec<String>,
}

/// How a point's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PointStatus {
    /// Not run yet (the sweep stopped before it).
    Pending,
    /// Ran to the end; its summary counts.
    Complete,
    /// Stopped by a signal; redone on resume.
    Interrupted,
    /// Ran and failed (deploy, error budget, accounting); redone on resume.
    Failed,
}

/// The dimension a curve runs along.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    Tenants,
    Rate,
}

impl Axis {
    pub fn as_str(self) -> &'static str {
        match self {
            Axis::Tenants => "tenants",
            Axis::Rate => "rate",
        }
    }

    /// The other dimension, held fixed along a curve.
    pub fn other(self) -> Axis {
        match self {
            Axis::Tenants => Axis::Rate,
            Axis::Rate => Axis::Tenants,
        }
    }
}

/// One tier's modelled monthly cost along `axis` with the other dimension at `fixed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CostCurve {
    pub tier: String,
    pub axis: Axis,
    /// The other dimension's value (a tenant count, or a rate in req/s).
    pub fixed: f64,
    /// Ascending in `x`.
    pub points: Vec<CurvePoint>,
}

/// A point of a cost curve: measured (a run at exactly this point) or extrapolated by the
/// cost model from the run named in `from`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CurvePoint {
    pub x: f64,
    pub monthly_usd: f64,
    pub measured: bool,
    /// The key of the run the figure comes from (its own, when measured).
    pub from: String,
    /// Where to find it: `points/<key>/summary.json` and the field, or the model and its inputs.
    pub source: String,
    /// The figure is a lower bound: shared-ec2 above the rate of a run that did not reach its
    /// capacity (the instance count is held at the run's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lower_bound: bool,
}

/// A tier's measured latency at one point (no latency is extrapolated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LatencyPoint {
    pub tier: String,
    pub point: String,
    pub tenants: u64,
    pub rate: f64,
    /// Corrected (from the intended start) p50 and p99, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Ok throughput the tier served, req/s.
    pub ok_rate: f64,
}

/// Where two tiers' cost curves cross.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Crossover {
    pub axis: Axis,
    pub fixed: f64,
    /// The crossing, in the axis's unit (tenants, req/s), rounded as the sentence says it.
    pub at: f64,
    /// When the runs on either side place it differently (each priced from its own run): the
    /// higher estimate; `at` is then the lower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_high: Option<f64>,
    /// Cheaper below `at`, and cheaper above it.
    pub cheaper_below: String,
    pub cheaper_above: String,
    /// At a measured point exactly (both tiers' figures measured there).
    pub at_measured_point: bool,
    /// The curve points on either side of the crossing (equal when exact): each tier's figure
    /// there is in `curves`, with its `measured` flag and `from`.
    pub left_x: f64,
    pub right_x: f64,
    /// The runs the figures on either side come from (point keys).
    pub runs: Vec<String>,
    pub sentence: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_names_and_the_other_one() {
        assert_eq!(Axis::Tenants.other(), Axis::Rate);
        assert_eq!(serde_json::to_string(&Axis::Rate).unwrap(), "\"rate\"");
        assert_eq!(serde_json::to_string(&PointStatus::Pending).unwrap(), "\"pending\"");
    }
}
