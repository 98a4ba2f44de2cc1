//! isobench's machine-readable output, in a small crate of its own so that CI tools can read
//! runs without building the harness: the versioned `summary.json` types, the closed
//! vocabularies their values come from ([`Verdict`], [`Expectation`], [`Phase`], [`Fidelity`],
//! [`ErrorKind`]; the rest of the harness matches on these, never on strings), the exit codes,
//! and the histogram log ([`hlog`]: writer, reader and the `tier/tenant/op/measure` tag grammar).
//!
//! Compatibility rule: adding a field is a minor change (readers must ignore unknown fields);
//! renaming, removing or changing the meaning of one bumps [`SCHEMA_VERSION`], and so does a
//! value a vocabulary does not list (readers refuse it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod exit;
pub mod hlog;
pub mod sweep;
mod vocab;

pub use vocab::{ErrorKind, Expectation, Fidelity, Phase, SkippedPhase, Verdict};

/// Version of the `summary.json` layout.
pub const SCHEMA_VERSION: u32 = 1;

/// The committed JSON Schema of this version, relative to the repository root.
pub const SCHEMA_FILE: &str = "results/schema/summary.v1.schema.json";

/// File names inside a results directory.
pub const SUMMARY_FILE: &str = "summary.json";
pub const HISTOGRAMS_FILE: &str = "histograms.hlog";
pub const REPORT_MD_FILE: &str = "report.md";
pub const REPORT_HTML_FILE: &str = "report.html";
pub const JUNIT_FILE: &str = "junit.xml";

/// The whole record of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Summary {
    pub schema_version: u32,
    pub run_id: String,
    /// `complete`, `interrupted` or `failed`; a partial run keeps what it measured.
    pub status: RunStatus,
    /// Why the run did not complete, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: String,
    pub wall_time_s: f64,
    pub tool: ToolInfo,
    pub scenario: ScenarioInfo,
    pub host: HostInfo,
    pub backend: BackendSummary,
    pub tiers: Vec<TierSummary>,
    /// Resources teardown could not remove; non-empty gives a non-zero exit.
    pub left_behind: Vec<String>,
    /// Relative path of the histogram log.
    pub histograms: String,
    /// The pricing table the cost figures came from, when costs were computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<PricingInfo>,
    /// What the harness process itself used (generator, recorders, emulator, Runtime APIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<HarnessUsage>,
    /// Tiers whose phases did not all run where the backend is (an AWS emulator without a
    /// data plane): what ran, what was skipped and why. Such a tier reports no latency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial_tiers: Vec<PartialTier>,
    /// The published-overheads file the tiers' `projected` figures came from, when they were
    /// projected (local runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overheads: Option<OverheadsInfo>,
    /// The scenario's `[picks]` bounds, which the report's picks apply; absent when the
    /// scenario set none (the picks then range over every tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picks: Option<PickBounds>,
}

/// The bounds of the report's picks, from the scenario's `[picks]`: the cheapest tier meeting
/// `p99_us`, the fastest and the strongest isolation within `budget_per_tenant_month_usd`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PickBounds {
    /// Corrected p99 bound, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// Modelled cost bound per tenant-month (compared with `cost.per_tenant_usd`), in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_per_tenant_month_usd: Option<f64>,
}

/// The harness process's own memory, from `/proc/self/status`, read after teardown.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarnessUsage {
    /// Peak resident set size over the whole run (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Resident set size at the end (`VmRSS`).
    pub rss_at_end_bytes: u64,
}

/// A tier's phases and what its instances or execution environments held in memory: the
/// overhead of one isolation unit at this tier's count.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    /// Wall time of deploy (every workload answering), traffic and teardown.
    pub deploy_ms: f64,
    pub traffic_s: f64,
    pub teardown_ms: f64,
    /// Instances or tasks (EC2, ECS), or execution environments held at the end of traffic
    /// (Lambda): what the memory below is divided by.
    pub units: u64,
    /// Memory charged to the run's cgroup (all the tier's instances or environments: their
    /// processes, page cache and kernel memory as the host accounts it) after deploy and at
    /// the end of traffic, in bytes. Absent where the backend cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_after_deploy_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_after_traffic_bytes: Option<u64>,
    /// `memory_after_traffic_bytes / units`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_unit_bytes: Option<u64>,
    /// The harness's resident set before deploy and at the end of traffic, in bytes; their
    /// difference over `units` is what one unit costs the harness (its sockets, recorders,
    /// Runtime API state).
    pub harness_rss_before_bytes: u64,
    pub harness_rss_after_traffic_bytes: u64,
}

/// A tier of which some phases were skipped by the backend.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialTier {
    pub tier: String,
    /// Phases that ran, in run order.
    pub ran: Vec<Phase>,
    pub skipped: Vec<SkippedPhase>,
    /// From the deploy call to every resource created (and ready, where it can be).
    pub deploy_ms: f64,
    pub teardown_ms: f64,
}

/// Where the prices came from: figures are only as good as their date and source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PricingInfo {
    pub region: String,
    /// Date the prices were checked, `YYYY-MM-DD`.
    pub as_of: String,
    /// `built-in` or the path of the `--pricing` file.
    pub source: String,
    pub currency: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Complete,
    Interrupted,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
    /// Git commit the harness was built from (captured at build time), when known.
    pub commit: Option<String>,
    /// Whether that tree had uncommitted changes at build time; `null` when git could not tell.
    #[serde(default)]
    pub dirty: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ScenarioInfo {
    pub name: String,
    pub path: String,
    /// SHA-256 of the scenario file's text.
    pub hash: String,
    /// The scenario file as written.
    pub source: String,
    /// The scenario after command-line overrides, as the run used it.
    pub effective: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HostInfo {
    pub hostname: String,
    pub kernel: String,
    pub os: String,
    pub arch: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    /// The host's load average (1, 5 and 15 min) when the run started and when it ended: how
    /// busy the machine was, read with the figures. Absent where the OS does not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_at_start: Option<[f64; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_at_end: Option<[f64; 3]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BackendSummary {
    pub name: String,
    pub fidelity: Fidelity,
    pub description: String,
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Percentiles {
    pub count: u64,
    #[serde(default)]
    pub min_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

/// Request outcomes. `sent == ok + errors + timeouts` always holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Traffic {
    /// Released by the generator's scheduler, counted there (not from the completions):
    /// `dispatched == sent + not_sent` is checked at the end of every run. 0 in summaries
    /// written before it existed.
    #[serde(default)]
    pub dispatched: u64,
    pub sent: u64,
    pub ok: u64,
    /// Total errors; `errors_by_kind` splits them.
    pub errors: u64,
    /// Keyed by error kind (`http_5xx`, `connect`, ...), in name order.
    #[cfg_attr(feature = "schema", schemars(schema_with = "errors_by_kind_schema"))]
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    pub timeouts: u64,
    /// Due but never sent (the run was cancelled, or the generator's backlog was still queued
    /// when the drain after the traffic window closed); not part of `sent`.
    pub not_sent: u64,
}

impl Traffic {
    /// The accounting identity every summary must satisfy.
    pub fn balanced(&self) -> bool {
        self.sent == self.ok + self.errors + self.timeouts && self.errors == self.errors_by_kind.values().sum::<u64>()
    }

    /// `dispatched == sent + not_sent`: no request was lost between the scheduler and the
    /// recorder.
    pub fn dispatched_accounted(&self) -> bool {
        self.dispatched == self.sent + self.not_sent
    }

    pub fn add(&mut self, o: &Traffic) {
        self.dispatched += o.dispatched;
        self.sent += o.sent;
        self.ok += o.ok;
        self.errors += o.errors;
        for (k, v) in &o.errors_by_kind {
            *self.errors_by_kind.entry(*k).or_default() += v;
        }
        self.timeouts += o.timeouts;
        self.not_sent += o.not_sent;
    }
}

/// Latency from the intended start (corrected for coordinated omission), from the actual
/// send (uncorrected), and how late requests went out (generator lag), split into the
/// generator's own delay and the wait for a connection the target still held.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Latency {
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
    /// Actual send − intended start, whoever held the request back: the sum, per request, of
    /// `generator_own_lag` and `connection_wait`.
    pub generator_lag: Percentiles,
    /// The generator's own part of the lag: actual send − when a generator without delays of
    /// its own would have sent it over the same connection (the later of the intended start
    /// and that connection being free, from the kernel's receive time of its previous
    /// answer). What tells whether the generator kept its schedule.
    #[serde(default)]
    pub generator_own_lag: Percentiles,
    /// The rest of the lag: waiting for a connection still carrying an earlier request (every
    /// connection busy, as when the target is slow or stalls). Raise `run.max_connections` if
    /// it is large and the target is not saturated.
    #[serde(default)]
    pub connection_wait: Percentiles,
    /// Of the timed-out requests: actual send to being given up. Not latency; it shows that
    /// each timed out at its deadline (`run.timeout`).
    #[serde(default)]
    pub timeout_after: Percentiles,
}

/// Function (Lambda) figures: the cold/warm split and what was billed. Absent for HTTP tiers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FunctionFigures {
    /// Ok invokes that started a new environment.
    pub cold: u64,
    /// `cold / ok`.
    pub cold_share: f64,
    /// INIT durations of every cold start. At the tier level, where the backend keeps a record
    /// of the environments it started (the local emulator), every environment started during
    /// the tier's traffic, whatever became of the invoke that started it (failed, timed out);
    /// per tenant and operation, and where there is no such record, the cold starts the invoke
    /// answers reported.
    pub init: Percentiles,
    /// Of `init.count`: INITs the backend recorded that no returned invoke answer carried (the
    /// invoke failed or the driver timed it out first); priced all the same. Tier level only.
    #[serde(default)]
    pub init_unanswered: u64,
    /// Corrected latency of cold and of warm ok invokes.
    pub corrected_cold: Percentiles,
    pub corrected_warm: Percentiles,
    /// Invokes that carried a billed duration, and its sums (ms rounded up per invoke).
    pub billed_invokes: u64,
    pub billed_ms_total: u64,
    /// Σ billed ms × memory MB; GB-seconds = this / 1024 / 1000.
    pub billed_mb_ms_total: u64,
    pub gb_seconds: f64,
    pub memory_mb: Option<u32>,
    /// Of the ok invokes: those whose response was streamed
    /// (`Lambda-Runtime-Function-Response-Mode: streaming`).
    #[serde(default)]
    pub streamed: u64,
    /// Time to first byte of the streamed ok invokes, from the intended start (corrected, as
    /// `latency.corrected` is, which runs to the last byte). Empty without streamed invokes.
    #[serde(default)]
    pub ttfb: Percentiles,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OpSummary {
    pub op: String,
    pub traffic: Traffic,
    pub latency: Latency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<FunctionFigures>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TenantSummary {
    pub tenant: String,
    pub traffic: Traffic,
    pub latency: Latency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<FunctionFigures>,
    pub ops: Vec<OpSummary>,
}

/// Execution-environment lifecycle counts of a function tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Environments {
    pub created: u64,
    pub reused: u64,
    /// Shut down after their idle keep-alive.
    pub reaped: u64,
    /// Shut down idle after reaching their maximum lifetime (absent in older summaries).
    #[serde(default)]
    pub recycled: u64,
    pub replaced: u64,
    pub peak_concurrency: u64,
    /// Every throttled invoke; `throttle_reasons` splits them by the limit that refused them.
    pub throttles: u64,
    /// Absent in older summaries.
    #[serde(default)]
    pub throttle_reasons: ThrottleReasons,
    pub frozen_at_end: u64,
}

/// Throttled invokes by the limit that refused them; they add up to `throttles`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ThrottleReasons {
    /// The emulator's per-function cap (`concurrency`), or tenant isolation mode's limit on
    /// environments.
    pub function: u64,
    /// The function's reserved concurrency was all in use.
    pub reserved: u64,
    /// The account's unreserved concurrency was all in use.
    pub account: u64,
    /// The function's scaling rate (1,000 new environments per 10 s) was spent.
    pub scaling: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InstanceSummary {
    pub id: String,
    pub tenants: Vec<String>,
    pub address: Option<String>,
    pub pid: Option<u32>,
    /// From the start of creation to the workload answering.
    pub start_ms: f64,
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Spread {
    pub count: u64,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Spread { count: n as u64, min: v[0], median, max: v[n - 1] }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TierSummary {
    /// The tier's name in the scenario: its `[[tier]] name`, else its id. Unique in a run.
    pub tier: String,
    /// The tier's id (`eks-pod`, ...) when the scenario named the tier otherwise; absent when
    /// `tier` is the id (every run before tiers had names). See [`TierSummary::tier_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_id: Option<String>,
    pub tenants: usize,
    /// What the workload was told to inject (fault tests); absent on a normal run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_faults: Option<serde_json::Value>,
    pub duration_s: f64,
    pub target_rate: f64,
    /// What went on the wire: requests whose send happened inside the traffic window, over
    /// the window (req/s). Below `target_rate` when the generator could not send on time
    /// (every connection busy: the target is saturated). Before this field meant the
    /// schedule's rate (sent / window, backlog included).
    pub achieved_rate: f64,
    /// Ok throughput: ok requests that completed inside the traffic window, over the window
    /// (req/s). What the target actually served; the cost model's measured throughput. Absent
    /// in summaries written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok_rate: Option<f64>,
    pub traffic: Traffic,
    pub latency: Latency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<FunctionFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Environments>,
    pub instances: Vec<InstanceSummary>,
    /// Instance start times in milliseconds.
    pub instance_start_ms: Spread,
    pub teardown_ms: f64,
    pub per_tenant: Vec<TenantSummary>,
    /// The noisy-neighbour measurement (`NN-CPU`), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noisy_neighbour: Option<NoisyNeighbour>,
    /// The tier's column of the leak matrix, when probes ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeCell>,
    /// What the tier costs on AWS at the measured load, from the pricing table. Modelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<TierCost>,
    /// Published cloud timings beside the emulator's measured ones (local runs). Modelled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<CalibrationEntry>,
    /// Phase times and per-unit memory of the tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footprint: Option<Footprint>,
    /// What the measured latency would be on AWS, from published overheads (local runs).
    /// Modelled: never recorded into `histograms.hlog`, never merged into the measured fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<ProjectedLatency>,
    /// How the tier's traffic was driven when load agents were asked for (`--agents N`): each
    /// agent's share and how it ended. Absent when the harness drove the traffic itself
    /// without agents being asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<LoadAgents>,
}

impl TierSummary {
    /// The tier's id: `tier_id` when the scenario named the tier, else `tier`.
    pub fn tier_id(&self) -> &str {
        self.tier_id.as_deref().unwrap_or(&self.tier)
    }
}

/// The load agents of one tier. `traffic` and `latency` of the tier are their exact merge
/// (histograms and counters added); these are the per-agent figures, for diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LoadAgents {
    /// Agents asked for.
    pub requested: u32,
    /// Why the tier was not driven by agents after all (e.g. function targets, which the
    /// local emulator invokes in-process), when it was not; `agents` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub agents: Vec<AgentSummary>,
    /// The agent that ran the tier's probes, beside its share of the traffic and from its own
    /// network; absent when the harness process ran them (or there were none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes_by: Option<u32>,
}

/// One load agent's share of a tier's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentSummary {
    /// The agent's index, `0..requested`: its slice is the requests whose sequence number in
    /// the seeded schedule is this index modulo `requested`.
    pub id: u32,
    /// Requests of its slice in the plan.
    pub planned: u64,
    pub sent: u64,
    /// Of `planned`: not sent; for an agent that died, every planned request it did not report
    /// finished.
    pub not_sent: u64,
    /// 99th percentile of its generator lag, nanoseconds; absent if it reported no send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_p99_ns: Option<u64>,
    /// What it put on the wire inside its dispatch window, requests per second (0 if it died).
    pub achieved_rate: f64,
    pub status: AgentStatus,
}

/// How a load agent ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum AgentStatus {
    /// It drove its slice and reported everything.
    Finished,
    /// It stopped without its final report; `how` is e.g. `killed by signal 9 (SIGKILL)` or
    /// `exited with code 3`.
    Died { how: String },
    /// It said it could not drive its slice, and why.
    Failed { reason: String },
}

/// The modelled cost of one tier: one documented formula, the line items it summed, and the
/// figures architects compare. All amounts in US dollars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TierCost {
    /// Which formula: `ec2-silo`, `ec2-shared`, `fargate`, `ecs-ec2` or `lambda`.
    pub model: String,
    /// The formula in words and symbols, as printed in the report.
    pub formula: String,
    /// The priced quantities; `run_usd` is their sum.
    pub items: Vec<CostItem>,
    /// Cost of the measured run (EC2 and Fargate with their 60 s billing minimum).
    pub run_usd: f64,
    /// `monthly_usd / tenants`: a tenant's share of a month at the scenario's rate.
    pub per_tenant_usd: f64,
    /// `monthly_usd / (rate × 2,592,000 s) × 10⁶`: steady-state, free of the run's billing minimums.
    pub per_million_requests_usd: f64,
    /// 30-day projection at the scenario's rates.
    pub monthly_usd: f64,
    /// The part of `monthly_usd` paid for capacity the load did not use.
    pub monthly_idle_usd: f64,
    /// `monthly_idle_usd / monthly_usd` (0 when nothing is paid).
    pub idle_share: f64,
    /// What a reader must know to trust the figures: bounds, approximations, what is left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One priced quantity of a [`TierCost`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CostItem {
    /// Pricing-table key, e.g. `ec2.t3.micro` or `lambda.gb_second.x86_64`.
    pub price: String,
    pub quantity: f64,
    /// Unit of `quantity`, e.g. `instance-hour`, `GB-second`, `request`.
    pub unit: String,
    pub unit_price_usd: f64,
    pub usd: f64,
    /// The price is marked unverified in the pricing table (not yet checked against AWS's page).
    #[serde(default)]
    pub unverified: bool,
}

/// An event the emulator timed, beside what the same event takes on AWS by published figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CalibrationEntry {
    /// e.g. `lambda cold start (INIT)`, `instance start`, `task start`.
    pub event: String,
    /// Measured here, in milliseconds.
    pub measured_ms: Spread,
    /// Published range on AWS, in milliseconds; always modelled, never mixed into histograms.
    pub published_low_ms: f64,
    pub published_high_ms: f64,
    pub source: String,
}

/// Where the published overheads came from: figures are only as good as their date and source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OverheadsInfo {
    /// The file's date, `YYYY-MM-DD`.
    pub as_of: String,
    /// `built-in` or the path of the `--overheads` file (merged over the built-in one).
    pub source: String,
    /// SHA-256 of the `--overheads` file's text; absent for the built-in file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A modelled range in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MsRange {
    pub low_ms: f64,
    pub high_ms: f64,
}

/// A tier's measured latency carried to AWS by published overheads. Modelled throughout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProjectedLatency {
    /// Always `modelled`.
    pub basis: String,
    /// The measured inputs: corrected p50 and p99 of the tier, in milliseconds.
    pub measured_p50_ms: f64,
    pub measured_p99_ms: f64,
    /// Function tiers: the measured cold share, and whether it reaches each percentile (the
    /// cold invokes are taken to be the slowest, so percentile q is cold when the share
    /// exceeds 1 − q).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_share: Option<f64>,
    #[serde(default)]
    pub cold_in_p50: bool,
    #[serde(default)]
    pub cold_in_p99: bool,
    /// Projected p50 and p99 on AWS.
    pub p50: MsRange,
    pub p99: MsRange,
    /// Projected start of what the tier starts: an instance or task (published figure), or a
    /// function's cold start (measured INIT plus published placement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<MsRange>,
    /// The formula in words and symbols, as printed in the report.
    pub formula: String,
    /// The published overheads summed in, each with its source.
    pub components: Vec<ProjectedComponent>,
    /// What a reader must know: what the figure keeps, leaves out or cannot know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One published overhead in a [`ProjectedLatency`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProjectedComponent {
    /// The overheads file's id, e.g. `lambda-invoke-path`.
    pub id: String,
    pub what: String,
    pub low_ms: f64,
    pub high_ms: f64,
    /// What it is added to: `p50`, `p99`, `start`.
    pub adds_to: Vec<String>,
    pub source: String,
    /// `primary`, `secondary` or `judgement`, as the overheads file says.
    pub quality: String,
    /// The day the source was read.
    pub read_on: String,
    /// What the figure leaves out or how old it is, as the overheads file says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `NN-CPU`: each victim's corrected p99 while an aggressor bursts CPU-heavy requests, against
/// its own solo p99, over alternating solo and contended windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NoisyNeighbour {
    pub aggressor: String,
    pub aggressor_rate: f64,
    pub aggressor_compute_us: u64,
    pub rounds: u32,
    pub window_s: f64,
    pub victims: Vec<VictimSlowdown>,
    /// Contended p99 / solo p99 over every victim and round.
    pub slowdown: Spread,
    /// Set when the tenants did not have CPUs of their own (the local emulator): the figure is
    /// this host's contention, not the tier's, and is kept out of the tier comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_bound: Option<HostBound>,
}

/// Why a noisy-neighbour figure measures the host rather than the tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HostBound {
    /// The CPU quota of the tier's instances, tasks or environments, summed, in vCPUs.
    pub quota_vcpus: f64,
    /// The host's cores, shared by every tenant and the load generator.
    pub host_cpus: usize,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VictimSlowdown {
    pub tenant: String,
    /// Per round, in order.
    pub solo_p99_us: Vec<f64>,
    pub contended_p99_us: Vec<f64>,
    pub slowdown: Spread,
}

/// One (probe, tier) cell of the leak matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProbeCell {
    /// Stable probe id, e.g. `LK-TMP`.
    pub probe: String,
    pub channel: String,
    pub description: String,
    /// From the catalogue and the tier's configuration.
    pub expected: Expectation,
    pub verdict: Verdict,
    /// A leak where isolation was expected.
    pub unexpected: bool,
    /// Cross-tenant trials that saw the channel (blind ones excluded), and those that found
    /// another tenant's canary.
    pub trials: u64,
    pub hits: u64,
    /// Trials that could not see the channel: a failed call, a non-200 answer, an answer
    /// without the list of found canaries. Any blind trial makes a cell without hits
    /// `inconclusive`.
    #[serde(default)]
    pub blind: u64,
    /// Positive controls (the trial's own tenant finding its own canary through the same
    /// channel in the same trial; one per trial) run and passed.
    pub controls: u64,
    pub controls_passed: u64,
    /// Upper end of the exact one-sided 95% (Clopper-Pearson) interval for the per-trial
    /// leak probability, from `hits` of `trials` (0 of 1,000 gives 0.003); absent without
    /// trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak_bound_95: Option<f64>,
    pub first_hit_ms: Option<f64>,
    pub pairs: Vec<String>,
    pub failed_calls: u64,
    /// Why the cell has no verdict (e.g. `LK-NET` on the `endpoints` target), or what an
    /// `emulator-limit` verdict means here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The AWS documentation the expectation comes from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// `errors_by_kind` as an object whose keys are [`ErrorKind`] names: schemars, seeing the
/// documented variants, would otherwise allow any key.
#[cfg(feature = "schema")]
fn errors_by_kind_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "propertyNames": generator.subschema_for::<ErrorKind>(),
        "additionalProperties": generator.subschema_for::<u64>(),
    })
}

/// The JSON Schema (draft 2020-12) of [`Summary`], as committed in [`SCHEMA_FILE`].
#[cfg(feature = "schema")]
pub fn summary_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Summary)).unwrap_or_default();
    if let Some(o) = schema.as_object_mut() {
        o.insert("$id".into(), format!("https://isobench.invalid/{SCHEMA_FILE}").into());
        o.insert(
            "description".into(),
            format!(
                "isobench summary.json, schema_version {SCHEMA_VERSION}. Readers must ignore unknown fields; \
                 a rename, removal or change of meaning bumps schema_version."
            )
            .into(),
        );
    }
    schema
}

/// The JSON Schema (draft 2020-12) of [`sweep::SweepSummary`], as committed in
/// [`sweep::SWEEP_SCHEMA_FILE`].
#[cfg(feature = "schema")]
pub fn sweep_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(sweep::SweepSummary)).unwrap_or_default();
    if let Some(o) = schema.as_object_mut() {
        o.insert("$id".into(), format!("https://isobench.invalid/{}", sweep::SWEEP_SCHEMA_FILE).into());
        o.insert(
            "description".into(),
            format!(
                "isobench sweep.json, schema_version {}. Readers must ignore unknown fields; \
                 a rename, removal or change of meaning bumps schema_version.",
                sweep::SWEEP_SCHEMA_VERSION
            )
            .into(),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_median() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Spread::of(&[]).count, 0);
    }

    #[test]
    fn balance() {
        let mut t = Traffic { sent: 10, ok: 7, errors: 2, timeouts: 1, ..Default::default() };
        assert!(!t.balanced(), "errors_by_kind must add up to errors");
        t.errors_by_kind.insert(ErrorKind::Http5xx, 2);
        assert!(t.balanced());
        t.sent = 11;
        assert!(!t.balanced());
    }

    #[test]
    fn function_figures_carry_time_to_first_byte_and_read_without_it() {
        let f = FunctionFigures {
            streamed: 3,
            ttfb: Percentiles { count: 3, p50_us: 900.0, p99_us: 1_200.0, ..Default::default() },
            ..Default::default()
        };
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!((json["streamed"].as_u64(), json["ttfb"]["p99_us"].as_f64()), (Some(3), Some(1_200.0)));
        assert_eq!(serde_json::from_value::<FunctionFigures>(json.clone()).unwrap(), f);
        // A summary written before streaming was measured: no streamed invokes, no TTFB.
        let mut old = json;
        let o = old.as_object_mut().unwrap();
        o.remove("streamed");
        o.remove("ttfb");
        let read: FunctionFigures = serde_json::from_value(old).unwrap();
        assert_eq!((read.streamed, read.ttfb.count), (0, 0));
    }
}
