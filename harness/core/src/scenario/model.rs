//! The scenario model: what a validated scenario says. Built only by validation
//! ([`Scenario::parse`]); serialised into `summary.json` as the effective scenario.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{aws, ec2, ecs, eks, lambda};
use crate::arrivals::{ArrivalsSpec, Shape, TenantMix, Trace};
use crate::tier::TierId;
use crate::units::{Dur, Rate, Size, Usd};

/// The scenario format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// The private range the local emulator takes addresses from; a scenario may narrow it.
pub const LOCAL_RANGE: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 213, 0, 0), 16);

/// A parsed, validated scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub format_version: u32,
    pub name: String,
    pub description: String,
    pub run: RunSpec,
    pub workload: WorkloadSpec,
    pub mix: MixSpec,
    pub tenants: Vec<TenantSpec>,
    pub tiers: Vec<TierSpec>,
    pub local: LocalSpec,
    /// Settings of the AWS backend (`[aws]`); defaults when absent.
    pub aws: aws::AwsSpec,
    /// Leakage probes to run beside the traffic, if any.
    pub probes: Option<ProbesSpec>,
    /// The noisy-neighbour measurement (`NN-CPU`), if asked for.
    pub noisy_neighbour: Option<NoisySpec>,
    /// The bounds the report's picks apply (`[picks]`), if any.
    pub picks: Option<PicksSpec>,
    /// Tenant mix, phases, bursts and trace replay (`[arrivals]`).
    pub arrivals: ArrivalsSpec,
    /// The matrix `isobench explore` runs (`[explore]`); `isobench run` ignores it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explore: Option<super::explore::ExploreSpec>,
    /// The trace `[arrivals.trace]` names, read and checked at load time.
    #[serde(skip)]
    pub trace: Option<std::sync::Arc<Trace>>,
}

/// `[noisy_neighbour]`: one aggressor tenant bursts CPU-heavy requests while the others run
/// their normal load; each victim's p99 is compared with its own solo baseline, in alternating
/// solo and contended windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoisySpec {
    /// The aggressor's tenant id; default: the first tenant.
    #[serde(default)]
    pub aggressor: Option<String>,
    /// The aggressor's request rate.
    #[serde(default = "default_aggressor_rate")]
    pub rate: Rate,
    /// CPU work per aggressor request.
    #[serde(default = "default_aggressor_compute")]
    pub compute: Dur,
    /// Solo/contended pairs (at least 3).
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    /// Length of each solo or contended window.
    #[serde(default = "default_window")]
    pub window: Dur,
}

fn default_aggressor_rate() -> Rate {
    Rate(200.0)
}
fn default_aggressor_compute() -> Dur {
    Dur(std::time::Duration::from_millis(5))
}
fn default_rounds() -> u32 {
    3
}
fn default_window() -> Dur {
    Dur(std::time::Duration::from_secs(2))
}

/// `[picks]`: the bounds under which the report picks a tier (cheapest meeting `p99`, fastest
/// and strongest isolation within `budget`). Only the report reads them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PicksSpec {
    /// The corrected p99 a tier must meet to be the cheapest pick.
    #[serde(default)]
    pub p99: Option<Dur>,
    /// What a tenant may cost per month (modelled), for the fastest and strongest picks.
    #[serde(default)]
    pub budget: Option<Usd>,
}

/// The `[probes]` section: which catalogue probes run, and how many cross-tenant trials each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesSpec {
    /// Probe ids from the catalogue (`LK-TMP`, ...); default: all of them.
    #[serde(default)]
    pub only: Vec<String>,
    /// Cross-tenant trials per probe and tier.
    #[serde(default = "default_trials")]
    pub trials: u32,
}

fn default_trials() -> u32 {
    50
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly spaced requests.
    Constant,
    /// Exponentially distributed gaps (a Poisson process).
    Poisson,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Traffic time per tier.
    pub duration: Dur,
    /// Requests per second per tier, all tenants together.
    pub rate: Rate,
    #[serde(default = "default_arrival")]
    pub arrival: Arrival,
    /// Per-request timeout, from the actual send.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Most connections the generator opens to one endpoint.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// When a tier's traffic is stopped because too many requests fail.
    #[serde(default)]
    pub error_budget: ErrorBudget,
    /// Run the load generator's threads at the lowest real-time priority (`SCHED_FIFO` 1; needs
    /// root or `CAP_SYS_NICE`, else a warning): other work on their cores can no longer delay
    /// requests, but on the local emulator the generator then takes CPU from the tiers first.
    /// For generator benchmarks; off by default.
    #[serde(default)]
    pub realtime: bool,
}

/// Stops a tier's traffic (and the run, with its own exit code) when, among the requests that
/// finished within the last `window`, at least `share` failed (errors and timeouts) and at
/// least `min_requests` finished. The default stops only a tier where everything fails, so a
/// dead target costs seconds, not the whole duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBudget {
    /// `false` lets every request fail for the whole duration (e.g. to measure timeouts).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Fraction of finished requests that may fail before the tier is stopped (0 < share <= 1).
    #[serde(default = "default_budget_share")]
    pub share: f64,
    /// How far back the share is computed.
    #[serde(default = "default_budget_window")]
    pub window: Dur,
    /// Fewest finished requests in the window for the share to count.
    #[serde(default = "default_budget_min")]
    pub min_requests: u64,
}

impl Default for ErrorBudget {
    fn default() -> Self {
        ErrorBudget {
            enabled: true,
            share: default_budget_share(),
            window: default_budget_window(),
            min_requests: default_budget_min(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_budget_share() -> f64 {
    1.0
}
fn default_budget_window() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}
fn default_budget_min() -> u64 {
    20
}

fn default_arrival() -> Arrival {
    Arrival::Poisson
}
fn default_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(2))
}
fn default_seed() -> u64 {
    1
}
fn default_max_connections() -> u32 {
    64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Hygiene {
    /// Everything keyed and cleaned per tenant.
    #[default]
    Scoped,
    /// A cache keyed without the tenant, temp files left behind.
    Naive,
}

impl Hygiene {
    pub fn as_str(self) -> &'static str {
        match self {
            Hygiene::Scoped => "scoped",
            Hygiene::Naive => "naive",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    #[serde(default)]
    pub hygiene: Hygiene,
    /// Size of a stored record.
    #[serde(default = "default_record_size")]
    pub record_size: Size,
    /// CPU work per `compute` request.
    #[serde(default = "default_compute")]
    pub compute: Dur,
    /// Distinct record keys per tenant.
    #[serde(default = "default_keys")]
    pub keys_per_tenant: u32,
    /// Fault injection in the workload, for testing the harness's accounting.
    #[serde(default)]
    pub faults: Option<FaultSpec>,
    /// Whether the workload's probe agent is enabled; set from the `[probes]` section.
    #[serde(skip_deserializing)]
    pub probes: bool,
}

fn default_record_size() -> Size {
    Size(256)
}
fn default_compute() -> Dur {
    Dur(std::time::Duration::from_micros(100))
}
fn default_keys() -> u32 {
    64
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            hygiene: Hygiene::default(),
            record_size: default_record_size(),
            compute: default_compute(),
            keys_per_tenant: default_keys(),
            faults: None,
            probes: false,
        }
    }
}

/// Faults the workload injects into its own answers (labelled as such in results).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Fraction of requests answered with HTTP 500.
    #[serde(default)]
    pub error_rate: f64,
    /// Fraction of requests answered HTTP 200 with an error document as the body.
    #[serde(default)]
    pub error_body_rate: f64,
    /// Fraction of requests that stall before answering.
    #[serde(default)]
    pub stall_rate: f64,
    /// How long a stalled request stalls.
    #[serde(default = "default_stall")]
    pub stall: Dur,
}

fn default_stall() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}

/// Relative weights of the operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixSpec {
    #[serde(default)]
    pub put: f64,
    #[serde(default)]
    pub get: f64,
    #[serde(default)]
    pub compute: f64,
}

impl Default for MixSpec {
    fn default() -> Self {
        MixSpec { put: 3.0, get: 6.0, compute: 1.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantSpec {
    pub id: String,
    pub weight: f64,
}

/// One tier to measure, with its tier-specific settings.
#[derive(Debug, Clone, Serialize)]
pub struct TierSpec {
    pub id: TierId,
    /// What the run calls the tier: the `[[tier]]`'s `name`, else its id. Unique in a scenario,
    /// so one id may be measured several times with different settings.
    pub name: String,
    pub settings: TierSettings,
}

/// A tier's own settings, one variant per kind of platform (each in its module with its
/// parser); serialised with a `kind` tag.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TierSettings {
    Ec2(ec2::Ec2Spec),
    Ecs(ecs::EcsSpec),
    Lambda(lambda::LambdaSpec),
    Eks(eks::EksSpec),
}

/// Settings of the local backend.
#[derive(Debug, Clone, Serialize)]
pub struct LocalSpec {
    /// Addresses for instances and tasks; inside 10.213.0.0/16.
    pub subnet: (Ipv4Addr, u8),
    /// Isolation the emulator breaks on purpose (`break_isolation`), to test that the probes
    /// and the CI gate catch it. Empty for every real measurement.
    pub break_isolation: Vec<IsolationFault>,
    /// The emulated account's Lambda concurrency (`lambda_account_concurrency`, default 1,000
    /// as on AWS): one pool shared by every function of the run; reserved concurrency is
    /// carved out of it.
    pub lambda_account_concurrency: u32,
}

/// A fault the local emulator injects into its own isolation, for testing and demonstrating
/// the leakage probes and the CI gate (`[local] break_isolation = ["shared-tmp"]`). A run with
/// one measures a deliberately broken emulator, never a tier: its plan says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationFault {
    /// Silo instances share one /tmp: every instance of the run (EC2 instances and ECS tasks)
    /// mounts one harness-owned directory at `/tmp` instead of a private tmpfs.
    SharedTmp,
}

impl IsolationFault {
    pub const ALL: [IsolationFault; 1] = [IsolationFault::SharedTmp];

    pub fn as_str(self) -> &'static str {
        match self {
            IsolationFault::SharedTmp => "shared-tmp",
        }
    }

    /// One line for reports.
    pub fn description(self) -> &'static str {
        match self {
            IsolationFault::SharedTmp => "test fault: silo instances share one /tmp",
        }
    }
}

impl LocalSpec {
    /// Host addresses the subnet offers to instances (network, broadcast and the harness's
    /// own address excluded).
    pub fn capacity(&self) -> u64 {
        (1u64 << (32 - self.subnet.1)).saturating_sub(3)
    }
}

impl Scenario {
    /// The first tier with id `id`.
    pub fn tier(&self, id: TierId) -> Option<&TierSpec> {
        self.tiers.iter().find(|t| t.id == id)
    }

    /// The tier called `name` (its `name`, or its id when it has none).
    pub fn tier_named(&self, name: &str) -> Option<&TierSpec> {
        self.tiers.iter().find(|t| t.name == name)
    }

    /// How the rate moves over the run (`[arrivals]`).
    pub fn shape(&self) -> Shape {
        let a = &self.arrivals;
        if let (Some(spec), Some(trace)) = (&a.trace, &self.trace) {
            return Shape::Trace {
                per_tenant: std::sync::Arc::new(trace.per_tenant(spec, self.tenants.len())),
                minute: spec.minute.0,
            };
        }
        if a.phases.is_empty() && a.burst.is_none() {
            return Shape::Steady;
        }
        Shape::Cycle { phases: a.phases.clone(), burst: a.burst.clone() }
    }

    /// Recomputes Zipf weights for `seed` (their shuffle depends on it).
    pub fn reseed_weights(&mut self, seed: u64) {
        if self.arrivals.tenants == TenantMix::Zipf {
            let a = &self.arrivals;
            let w = crate::arrivals::zipf_weights(self.tenants.len(), a.zipf_s, a.zipf_order, seed);
            for (t, w) in self.tenants.iter_mut().zip(w) {
                t.weight = w;
            }
        }
    }
}
