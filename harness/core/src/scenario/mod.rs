//! Scenario files: TOML with a format version, unknown fields rejected, and every semantic
//! check done before anything is deployed. Errors name the file, line, column and field, and
//! say what would be accepted.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arrivals::{ArrivalsSpec, Shape, TenantMix, Trace};
use crate::tier::TierId;
use crate::units::{Dur, Rate, Size};

mod arrivals_check;
pub mod aws;
pub mod ec2;
pub mod ecs;
pub mod lambda;

pub use crate::security_groups::NetworkSpec;
pub use ec2::{Ec2Spec, SHARED_INSTANCE_GROUP, TENANT_INSTANCE_GROUP};

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
    /// Tenant mix, phases, bursts and trace replay (`[arrivals]`).
    pub arrivals: ArrivalsSpec,
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
    pub settings: TierSettings,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TierSettings {
    Ec2(ec2::Ec2Spec),
    Ecs(ecs::EcsSpec),
    Lambda(lambda::LambdaSpec),
}

/// Settings of the local backend.
#[derive(Debug, Clone, Serialize)]
pub struct LocalSpec {
    /// Addresses for instances and tasks; inside 10.213.0.0/16.
    pub subnet: (Ipv4Addr, u8),
    /// Isolation the emulator breaks on purpose (`break_isolation`), to test that the probes
    /// and the CI gate catch it. Empty for every real measurement.
    pub break_isolation: Vec<IsolationFault>,
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

// ---- raw form, as written --------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    format_version: u32,
    name: String,
    #[serde(default)]
    description: String,
    run: RunSpec,
    #[serde(default)]
    workload: WorkloadSpec,
    #[serde(default)]
    mix: MixSpec,
    tenants: RawTenants,
    #[serde(default)]
    tier: Vec<toml::Table>,
    #[serde(default)]
    local: RawLocal,
    #[serde(default)]
    aws: aws::AwsSpec,
    #[serde(default)]
    probes: Option<ProbesSpec>,
    #[serde(default)]
    noisy_neighbour: Option<NoisySpec>,
    #[serde(default)]
    arrivals: ArrivalsSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenants {
    count: u64,
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    weights: Option<Vec<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    break_isolation: Vec<IsolationFault>,
}

// ---- errors ----------------------------------------------------------------------------

/// One thing wrong with a scenario, located in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `tier[1].instance_type`.
    pub field: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// What would be accepted instead.
    pub accepted: Option<String>,
}

/// Everything wrong with a scenario file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "invalid scenario {} ({n} problem{})", self.file.display(), if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  {}", self.file.display())?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
                if let Some(col) = p.column {
                    write!(f, ":{col}")?;
                }
            }
            if !p.field.is_empty() {
                write!(f, ": field `{}`", p.field)?;
            }
            write!(f, ": {}", p.message)?;
            if let Some(a) = &p.accepted {
                write!(f, "\n      accepted: {a}")?;
            }
        }
        Ok(())
    }
}

/// Collects problems during validation, each with the path of its field.
pub(crate) struct Checker {
    pub(crate) problems: Vec<Problem>,
}

impl Checker {
    pub(crate) fn fail(&mut self, field: impl Into<String>, message: impl Into<String>, accepted: impl Into<String>) {
        let accepted = accepted.into();
        self.problems.push(Problem {
            field: field.into(),
            line: None,
            column: None,
            message: message.into(),
            accepted: (!accepted.is_empty()).then_some(accepted),
        });
    }

    pub(crate) fn check(&mut self, ok: bool, field: &str, message: impl Into<String>, accepted: &str) {
        if !ok {
            self.fail(field, message, accepted);
        }
    }

    /// Deserialises `table[key]` as `T`, recording a located problem if it does not fit.
    pub(crate) fn section<T: serde::de::DeserializeOwned>(
        &mut self,
        table: &toml::Table,
        key: &str,
        at: &dyn Fn(&str) -> String,
        accepted: &str,
    ) -> Option<Option<T>> {
        let Some(v) = table.get(key) else { return Some(None) };
        match v.clone().try_into() {
            Ok(t) => Some(Some(t)),
            Err(e) => {
                self.fail(at(key), e.message().trim().to_string(), accepted);
                None
            }
        }
    }
}

// ---- parsing and validation --------------------------------------------------------------

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<(Scenario, String), ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.to_path_buf(),
            problems: vec![Problem {
                field: String::new(),
                line: None,
                column: None,
                message: format!("cannot read the file: {e}"),
                accepted: Some("a readable TOML scenario file, e.g. scenarios/quick.toml".into()),
            }],
        })?;
        let s = Scenario::parse(&src, path)?;
        Ok((s, src))
    }

    /// Parses and validates scenario text; `file` is used in error messages only.
    pub fn parse(src: &str, file: &Path) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(src).map_err(|e| syntax_error(src, file, &e))?;
        let mut c = Checker { problems: Vec::new() };
        let scenario = validate(raw, file, &mut c);
        if c.problems.is_empty() {
            Ok(scenario)
        } else {
            locate_all(src, &mut c.problems);
            Err(ScenarioError { file: file.to_path_buf(), problems: c.problems })
        }
    }

    pub fn tier(&self, id: TierId) -> Option<&TierSpec> {
        self.tiers.iter().find(|t| t.id == id)
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

fn syntax_error(src: &str, file: &Path, e: &toml::de::Error) -> ScenarioError {
    let (line, column) = match e.span() {
        Some(span) => {
            let (l, c) = line_col(src, span.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let message = e.message().to_string();
    let accepted = if message.contains("unknown field") {
        None // toml's message already lists the expected fields
    } else if message.contains("format_version") {
        Some(format!("format_version = {FORMAT_VERSION}"))
    } else {
        None
    };
    ScenarioError {
        file: file.to_path_buf(),
        problems: vec![Problem { field: field_at(src, e.span()), line, column, message, accepted }],
    }
}

/// The key written on the line of a syntax error, if any, to name the field.
fn field_at(src: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else { return String::new() };
    let start = src[..span.start.min(src.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = src[start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((k, _)) => k.trim().to_string(),
        None => String::new(),
    }
}

fn validate(raw: RawScenario, file: &Path, c: &mut Checker) -> Scenario {
    c.check(
        raw.format_version == FORMAT_VERSION,
        "format_version",
        format!("format version {} is not supported by this build", raw.format_version),
        &format!("{FORMAT_VERSION}"),
    );
    c.check(is_slug(&raw.name, 64), "name", format!("`{}` is not a valid name", raw.name), SLUG_ACCEPTED);
    validate_run(&raw.run, c);
    validate_workload(&raw.workload, c);
    validate_mix(&raw.mix, c);
    let local = validate_local(&raw.local, c);
    for (field, message, accepted) in raw.aws.problems() {
        c.fail(field, message, accepted);
    }
    let tenants = validate_tenants(&raw.tenants, c);
    let tiers = validate_tiers(&raw.tier, c);
    let trace = arrivals_check::validate(&raw.arrivals, raw.tenants.weights.is_some(), file, c);
    let mut workload = raw.workload;
    if let Some(n) = &raw.noisy_neighbour {
        validate_noisy(n, &tenants, c);
    }
    if let Some(p) = &raw.probes {
        validate_probes(p, tenants.len(), c);
        workload.probes = true;
    }
    let per_tenant_addresses = |t: &TierSpec| matches!(t.id, TierId::SiloEc2 | TierId::EcsAwsvpc);
    if tiers.iter().any(per_tenant_addresses) && (tenants.len() as u64) > local.capacity() {
        c.fail(
            "tenants.count",
            format!(
                "{} tenants need {} instance or task addresses but subnet /{} has only {}",
                tenants.len(),
                tenants.len(),
                local.subnet.1,
                local.capacity()
            ),
            format!("at most {} tenants, or a larger `local.subnet`", local.capacity()),
        );
    }
    let mut scenario = Scenario {
        format_version: raw.format_version,
        name: raw.name,
        description: raw.description,
        run: raw.run,
        workload,
        mix: raw.mix,
        tenants,
        tiers,
        local,
        aws: raw.aws,
        probes: raw.probes,
        noisy_neighbour: raw.noisy_neighbour,
        arrivals: raw.arrivals,
        trace,
    };
    scenario.reseed_weights(scenario.run.seed);
    scenario
}

const SLUG_ACCEPTED: &str = "lowercase letters, digits and `-`, starting with a letter or digit";

fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !s.starts_with('-')
}

fn validate_run(run: &RunSpec, c: &mut Checker) {
    use std::time::Duration;
    let d = run.duration.0;
    c.check(
        d > Duration::ZERO && d <= Duration::from_secs(24 * 3600),
        "run.duration",
        format!("duration {} is out of range", run.duration),
        "more than 0s and at most 24h",
    );
    c.check(
        run.rate.0 > 0.0 && run.rate.0 <= 10e6,
        "run.rate",
        format!("rate {} requests/s is out of range", run.rate.0),
        "more than 0 and at most 10M requests/s",
    );
    c.check(
        run.timeout.0 > Duration::ZERO && run.timeout.0 <= Duration::from_secs(900),
        "run.timeout",
        format!("timeout {} is out of range", run.timeout),
        "more than 0s and at most 15m",
    );
    c.check(
        (1..=100_000).contains(&run.max_connections),
        "run.max_connections",
        format!("{} connections is out of range", run.max_connections),
        "1 to 100000",
    );
    let b = &run.error_budget;
    c.check(
        b.share > 0.0 && b.share <= 1.0,
        "run.error_budget.share",
        format!("{} is not a fraction above 0", b.share),
        "a number above 0 and at most 1",
    );
    c.check(
        b.window.0 > Duration::ZERO && b.window.0 <= Duration::from_secs(3600),
        "run.error_budget.window",
        format!("window {} is out of range", b.window),
        "more than 0s and at most 1h",
    );
    c.check(b.min_requests >= 1, "run.error_budget.min_requests", "0 requests", "1 or more");
}

fn validate_workload(w: &WorkloadSpec, c: &mut Checker) {
    c.check(
        w.record_size.0 <= 1 << 20,
        "workload.record_size",
        format!("{} bytes is too large", w.record_size.0),
        "at most 1MiB",
    );
    c.check(
        w.compute.0 <= std::time::Duration::from_secs(1),
        "workload.compute",
        format!("{} of CPU per request is too long", w.compute),
        "at most 1s",
    );
    c.check((1..=1_000_000).contains(&w.keys_per_tenant), "workload.keys_per_tenant", "out of range", "1 to 1000000");
    if let Some(f) = &w.faults {
        for (name, v) in
            [("error_rate", f.error_rate), ("error_body_rate", f.error_body_rate), ("stall_rate", f.stall_rate)]
        {
            c.check(
                (0.0..=1.0).contains(&v),
                &format!("workload.faults.{name}"),
                format!("{v} is not a fraction"),
                "a number from 0 to 1",
            );
        }
        c.check(
            f.error_rate + f.error_body_rate + f.stall_rate <= 1.0,
            "workload.faults",
            "error_rate + error_body_rate + stall_rate exceeds 1",
            "rates whose sum is at most 1",
        );
    }
}

fn validate_probes(p: &ProbesSpec, tenants: usize, c: &mut Checker) {
    let known = || crate::probes::CATALOGUE.iter().map(|d| format!("`{}`", d.id)).collect::<Vec<_>>().join(", ");
    for (i, id) in p.only.iter().enumerate() {
        if crate::probes::probe(id).is_none() {
            c.fail(format!("probes.only[{i}]"), format!("unknown probe `{id}`"), known());
        }
    }
    c.check(
        (1..=100_000).contains(&p.trials),
        "probes.trials",
        format!("{} trials is out of range", p.trials),
        "1 to 100000",
    );
    c.check(tenants >= 2, "probes", "cross-tenant probes need at least two tenants", "tenants.count of 2 or more");
}

fn validate_noisy(n: &NoisySpec, tenants: &[TenantSpec], c: &mut Checker) {
    if let Some(a) = &n.aggressor
        && !tenants.iter().any(|t| &t.id == a)
    {
        let ids = tenants.iter().take(8).map(|t| format!("`{}`", t.id)).collect::<Vec<_>>().join(", ");
        c.fail(
            "noisy_neighbour.aggressor",
            format!("no tenant `{a}`"),
            format!("one of the scenario's tenants: {ids}"),
        );
    }
    c.check(
        tenants.len() >= 2,
        "noisy_neighbour",
        "needs an aggressor and at least one victim",
        "tenants.count of 2 or more",
    );
    c.check((3..=100).contains(&n.rounds), "noisy_neighbour.rounds", format!("{} rounds", n.rounds), "3 to 100");
    c.check(n.rate.0 > 0.0, "noisy_neighbour.rate", "the aggressor needs a rate", "more than 0 requests/s");
    c.check(
        n.compute.0 <= std::time::Duration::from_secs(1),
        "noisy_neighbour.compute",
        format!("{} per request is too long", n.compute),
        "at most 1s",
    );
    c.check(
        n.window.0 >= std::time::Duration::from_millis(500),
        "noisy_neighbour.window",
        "window too short for a p99",
        "at least 500ms",
    );
}

fn validate_mix(m: &MixSpec, c: &mut Checker) {
    for (name, v) in [("put", m.put), ("get", m.get), ("compute", m.compute)] {
        c.check(v >= 0.0 && v.is_finite(), &format!("mix.{name}"), format!("weight {v} is negative"), "0 or more");
    }
    c.check(m.put + m.get + m.compute > 0.0, "mix", "every operation has weight 0", "at least one positive weight");
}

fn validate_local(l: &RawLocal, c: &mut Checker) -> LocalSpec {
    let mut break_isolation = l.break_isolation.clone();
    break_isolation.sort();
    break_isolation.dedup();
    let default = LocalSpec { subnet: LOCAL_RANGE, break_isolation: break_isolation.clone() };
    let Some(s) = &l.subnet else { return default };
    const ACCEPTED: &str = "a CIDR inside 10.213.0.0/16 with a prefix from /16 to /29, e.g. `10.213.0.0/24`";
    let parsed = s.split_once('/').and_then(|(a, p)| Some((a.parse::<Ipv4Addr>().ok()?, p.parse::<u8>().ok()?)));
    match parsed {
        Some((addr, prefix)) if (16..=29).contains(&prefix) => {
            let inside = u32::from(addr) & 0xffff_0000 == u32::from(LOCAL_RANGE.0);
            let aligned = u32::from(addr) & !(u32::MAX << (32 - prefix)) == 0;
            if !inside || !aligned {
                c.fail("local.subnet", format!("`{s}` is outside the harness's range or not aligned"), ACCEPTED);
                return default;
            }
            LocalSpec { subnet: (addr, prefix), break_isolation }
        }
        _ => {
            c.fail("local.subnet", format!("`{s}` is not a valid subnet"), ACCEPTED);
            default
        }
    }
}

fn validate_tenants(t: &RawTenants, c: &mut Checker) -> Vec<TenantSpec> {
    if t.count == 0 || t.count > 100_000 {
        c.fail("tenants.count", format!("{} tenants is out of range", t.count), "1 to 100000");
        return Vec::new();
    }
    let n = t.count as usize;
    let ids: Vec<String> = match &t.ids {
        Some(ids) => {
            if ids.len() != n {
                c.fail("tenants.ids", format!("{} ids for {n} tenants", ids.len()), "one id per tenant");
            }
            let mut seen = BTreeSet::new();
            for (i, id) in ids.iter().enumerate() {
                if !is_slug(id, 32) {
                    c.fail(format!("tenants.ids[{i}]"), format!("`{id}` is not a valid tenant id"), SLUG_ACCEPTED);
                } else if !seen.insert(id) {
                    c.fail(format!("tenants.ids[{i}]"), format!("tenant id `{id}` is repeated"), "unique ids");
                }
            }
            ids.clone()
        }
        None => {
            let width = n.to_string().len().max(2);
            (1..=n).map(|i| format!("tenant-{i:0width$}")).collect()
        }
    };
    let weights = match &t.weights {
        Some(w) => {
            if w.len() != n {
                c.fail("tenants.weights", format!("{} weights for {n} tenants", w.len()), "one weight per tenant");
            }
            for (i, v) in w.iter().enumerate() {
                if !(*v > 0.0 && v.is_finite()) {
                    c.fail(format!("tenants.weights[{i}]"), format!("weight {v} is not positive"), "a number above 0");
                }
            }
            w.clone()
        }
        None => vec![1.0; n],
    };
    ids.into_iter()
        .zip(weights.into_iter().chain(std::iter::repeat(1.0)))
        .map(|(id, weight)| TenantSpec { id, weight })
        .collect()
}

fn validate_tiers(raw: &[toml::Table], c: &mut Checker) -> Vec<TierSpec> {
    if raw.is_empty() {
        c.fail(
            "tier",
            "the scenario names no tier",
            format!("one or more [[tier]] tables with id = {}", TierId::accepted()),
        );
    }
    let mut out: Vec<TierSpec> = Vec::new();
    for (i, table) in raw.iter().enumerate() {
        let at = |f: &str| if f.is_empty() { format!("tier[{i}]") } else { format!("tier[{i}].{f}") };
        let Some(id) = table.get("id").and_then(|v| v.as_str()) else {
            c.fail(at("id"), "every tier needs an `id`", TierId::accepted());
            continue;
        };
        let id: TierId = match id.parse() {
            Ok(t) => t,
            Err(_) => {
                c.fail(at("id"), format!("unknown tier `{id}`"), TierId::accepted());
                continue;
            }
        };
        if out.iter().any(|t| t.id == id) {
            c.fail(at("id"), format!("tier `{id}` is listed twice"), "each tier once");
            continue;
        }
        let allowed = allowed_tier_fields(id);
        let mut bad = false;
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                bad = true;
                let list = allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                c.fail(at(key), format!("unknown field `{key}` for tier `{id}`"), list);
            }
        }
        if bad {
            continue;
        }
        if let Some(settings) = tier_settings(id, table, &at, c) {
            out.push(TierSpec { id, settings });
        }
    }
    out
}

fn allowed_tier_fields(id: TierId) -> &'static [&'static str] {
    match id {
        TierId::SiloEc2 | TierId::SharedEc2 => ec2::FIELDS,
        TierId::EcsAwsvpc => ecs::FIELDS,
        TierId::LambdaPerTenant | TierId::LambdaShared | TierId::LambdaTenantIsolation => lambda::FIELDS,
    }
}

fn tier_settings(
    id: TierId,
    table: &toml::Table,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) -> Option<TierSettings> {
    match id {
        TierId::SiloEc2 | TierId::SharedEc2 => ec2::parse(id, table, at, c).map(TierSettings::Ec2),
        TierId::EcsAwsvpc => ecs::parse(table, at, c).map(TierSettings::Ecs),
        TierId::LambdaPerTenant | TierId::LambdaShared | TierId::LambdaTenantIsolation => {
            lambda::parse(id, table, at, c)
        }
    }
}

// ---- locating fields in the source ------------------------------------------------------

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
    (line, col)
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

/// The byte span that best matches `path` in the source: the deepest part found.
fn locate(doc: &toml_edit::Document<String>, path: &str) -> Option<std::ops::Range<usize>> {
    use toml_edit::{Item, Value};
    let mut item: Option<&Item> = Some(doc.as_item());
    let mut table: Option<&toml_edit::Table> = None;
    let mut best = None;
    for seg in parse_path(path) {
        match seg {
            Seg::Key(k) => {
                let found = match (table.take(), item) {
                    (Some(t), _) => t.get_key_value(k),
                    (None, Some(it)) => it.as_table_like().and_then(|t| t.get_key_value(k)),
                    (None, None) => None,
                };
                let (key, it) = found?;
                best = key.span().or_else(|| it.span()).or(best);
                item = Some(it);
            }
            Seg::Index(i) => match item {
                Some(Item::ArrayOfTables(a)) => {
                    let t = a.get(i)?;
                    best = t.span().or(best);
                    table = Some(t);
                    item = None;
                }
                Some(Item::Value(Value::Array(a))) => {
                    best = a.get(i).and_then(|v| v.span()).or(best);
                    return best;
                }
                _ => return best,
            },
        }
    }
    best
}

fn locate_all(src: &str, problems: &mut [Problem]) {
    let Ok(doc) = toml_edit::Document::parse(src.to_string()) else { return };
    for p in problems.iter_mut() {
        // Fall back to the parent field when the field itself is absent (a default).
        let mut path = p.field.as_str();
        loop {
            if let Some(span) = locate(&doc, path) {
                let (l, c) = line_col(src, span.start);
                p.line = Some(l);
                p.column = Some(c);
                break;
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => break,
            }
        }
    }
}

/// SHA-256 of the scenario text, hex; recorded with results so runs can be matched.
pub fn hash(src: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(src.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload_api::DEFAULT_PORT;

    const GOOD: &str = r#"
format_version = 1
name = "t"

[run]
duration = "5s"
rate = "1k"

[tenants]
count = 3

[[tier]]
id = "silo-ec2"
instance_type = "t3.micro"

[[tier]]
id = "shared-ec2"
instance_type = "m5.large"
"#;

    fn parse(s: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(s, Path::new("s.toml"))
    }

    fn ec2_network(s: &Scenario, tier: usize) -> &NetworkSpec {
        match &s.tiers[tier].settings {
            TierSettings::Ec2(e) => &e.network,
            other => panic!("{other:?}"),
        }
    }

    fn only_problem(s: &str) -> Problem {
        let e = parse(s).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        e.problems[0].clone()
    }

    #[test]
    fn arrivals_zipf_phases_and_bursts_parse_and_bad_ones_are_located() {
        let zipf = format!("{GOOD}\n[arrivals]\ntenants = \"zipf\"\nzipf_s = 1.0\n");
        let s = parse(&zipf).unwrap();
        let w: Vec<f64> = s.tenants.iter().map(|t| t.weight).collect();
        assert_eq!(w, vec![1.0, 0.5, 1.0 / 3.0]);
        let shaped = format!(
            "{GOOD}\n[arrivals]\n[[arrivals.phases]]\nduration = \"5s\"\nfrom = 0.1\nto = 1.0\n\
             [arrivals.burst]\nperiod = \"10s\"\nlength = \"1s\"\nmultiplier = 3\n"
        );
        assert!(matches!(parse(&shaped).unwrap().shape(), Shape::Cycle { .. }));
        let p = only_problem(&format!("{GOOD}\n[[arrivals.phases]]\nduration = \"5s\"\nlevel = 1\nfrom = 0.5\n"));
        assert_eq!(p.field, "arrivals.phases[0]");
        assert_eq!(p.line, Some(20));
        let p = only_problem(&format!("{GOOD}\n[arrivals.burst]\nperiod = \"1s\"\nlength = \"2s\"\nmultiplier = 3\n"));
        assert_eq!(p.field, "arrivals.burst.length");
        let p =
            only_problem(&GOOD.replace("count = 3", "count = 3\nweights = [1, 2, 3]").replace(
                "[[tier]]\nid = \"silo-ec2\"",
                "[arrivals]\ntenants = \"zipf\"\n\n[[tier]]\nid = \"silo-ec2\"",
            ));
        assert_eq!(p.field, "arrivals.tenants");
    }

    #[test]
    fn trace_is_read_relative_to_the_scenario_and_bad_rows_are_located() {
        let dir = std::env::temp_dir().join(format!("isobench-scn-trace-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("traces")).unwrap();
        let csv = "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,4,5\no,a,g,http,1,x\n";
        std::fs::write(dir.join("traces/t.csv"), csv).unwrap();
        let text = format!("{GOOD}\n[arrivals.trace]\nfile = \"traces/t.csv\"\nminute = \"1s\"\n");
        let e = Scenario::parse(&text, &dir.join("s.toml")).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].field, "arrivals.trace.file");
        assert!(e.problems[0].message.contains("t.csv:3: column 6 (minute 2)"), "{e}");
        std::fs::write(dir.join("traces/t.csv"), csv.replace(",x", ",0")).unwrap();
        let s = Scenario::parse(&text, &dir.join("s.toml")).unwrap();
        match s.shape() {
            Shape::Trace { per_tenant, minute } => {
                assert_eq!(minute, std::time::Duration::from_secs(1));
                assert_eq!(*per_tenant, vec![vec![4, 5], vec![1, 0], vec![0, 0]]);
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn good_scenario_parses_with_defaults() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.tenants.len(), 3);
        assert_eq!(s.tenants[0].id, "tenant-01");
        assert_eq!(s.run.arrival, Arrival::Poisson);
        assert_eq!(s.tiers.len(), 2);
        assert_eq!(s.workload.hygiene, Hygiene::Scoped);
    }

    #[test]
    fn unknown_top_level_field_is_located() {
        let p = only_problem(&GOOD.replace("name = \"t\"", "name = \"t\"\ncolour = \"blue\""));
        assert_eq!(p.line, Some(4));
        assert!(p.message.contains("unknown field `colour`"), "{}", p.message);
    }

    #[test]
    fn unknown_tier_is_located_with_accepted_list() {
        let p = only_problem(&GOOD.replace("id = \"shared-ec2\"", "id = \"shard-ec2\""));
        assert_eq!(p.field, "tier[1].id");
        assert_eq!(p.line, Some(17));
        assert!(p.accepted.unwrap().contains("`shared-ec2`"));
    }

    #[test]
    fn zero_duration_and_negative_rate_are_rejected() {
        let e = parse(&GOOD.replace("\"5s\"", "\"0s\"").replace("\"1k\"", "-5")).unwrap_err();
        let fields: Vec<_> = e.problems.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"run.duration"), "{e}");
        assert!(fields.contains(&"run.rate"), "{e}");
        let d = e.problems.iter().find(|p| p.field == "run.duration").unwrap();
        assert_eq!(d.line, Some(6));
    }

    #[test]
    fn more_tenants_than_addresses() {
        let s = GOOD.replace("count = 3", "count = 20") + "\n[local]\nsubnet = \"10.213.0.0/28\"\n";
        let p = only_problem(&s);
        assert_eq!(p.field, "tenants.count");
        assert!(p.message.contains("only 13"), "{}", p.message);
    }

    #[test]
    fn unknown_tier_field_names_allowed_ones() {
        let p = only_problem(&GOOD.replace("instance_type = \"t3.micro\"", "instance_type = \"t3.micro\"\nmemory = 5"));
        assert_eq!(p.field, "tier[0].memory");
        assert!(p.accepted.unwrap().contains("`instance_type`"));
    }

    #[test]
    fn wrong_format_version() {
        let p = only_problem(&GOOD.replace("format_version = 1", "format_version = 9"));
        assert_eq!(p.field, "format_version");
        assert_eq!(p.line, Some(2));
    }

    #[test]
    fn unit_errors_come_from_the_toml_parser_with_a_line() {
        let p = only_problem(&GOOD.replace("\"5s\"", "\"5 parsecs\""));
        assert_eq!(p.line, Some(6));
        assert!(p.message.contains("accepted"), "{}", p.message);
    }

    #[test]
    fn duplicate_tenant_ids_and_bad_weights() {
        let s = GOOD.replace("count = 3", "count = 3\nids = [\"a\", \"b\", \"a\"]\nweights = [1, 0, 2]");
        let e = parse(&s).unwrap_err();
        assert!(e.problems.iter().any(|p| p.field == "tenants.ids[2]"), "{e}");
        assert!(e.problems.iter().any(|p| p.field == "tenants.weights[1]"), "{e}");
    }

    #[test]
    fn ec2_tiers_default_to_groups_admitting_only_the_harness() {
        let s = parse(GOOD).unwrap();
        let tenants: Vec<String> = s.tenants.iter().map(|t| t.id.clone()).collect();
        let silo = ec2_network(&s, 0);
        assert_eq!(silo, &ec2::default_network(TierId::SiloEc2));
        let r = silo.resolve("r", &tenants);
        assert_eq!(r.groups.len(), 3, "one group per tenant");
        for (i, (t, g)) in r.tasks.iter().enumerate() {
            assert_eq!(g, &[i]);
            assert_eq!(r.groups[i].name, format!("tenant-{t}"));
            assert_eq!(r.groups[i].ingress.len(), 1);
            assert_eq!(r.groups[i].ingress[0].source, ecs::ResolvedSource::Harness);
            assert_eq!(r.groups[i].ingress[0].ports, Some((DEFAULT_PORT, DEFAULT_PORT)));
        }
        let shared = ec2_network(&s, 1).resolve("r", &tenants);
        assert_eq!(shared.groups.len(), 1);
        assert_eq!(shared.groups[0].name, SHARED_INSTANCE_GROUP);
        assert!(shared.tasks.iter().all(|(_, g)| g == &[0]));
        assert!(s.local.break_isolation.is_empty());
    }

    #[test]
    fn ec2_groups_use_the_ecs_syntax_and_checks() {
        let open = GOOD.replace(
            "instance_type = \"t3.micro\"",
            "instance_type = \"t3.micro\"\n[tier.network]\nsecurity_groups = [\"tenants\"]\n[[tier.security_group]]\nname = \"tenants\"\ningress = [{ port = 8080, source_group = \"harness\" }, { protocol = \"all\", source_group = \"tenants\" }]",
        );
        let s = parse(&open).unwrap();
        let r = ec2_network(&s, 0).resolve("r", &["a".into(), "b".into()]);
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].ingress[1].source, ecs::ResolvedSource::Group(0));

        let p = only_problem(&GOOD.replace(
            "instance_type = \"t3.micro\"",
            "instance_type = \"t3.micro\"\n[tier.network]\nsecurity_groups = [\"ghost\"]",
        ));
        assert_eq!(p.field, "tier[0].network.security_groups[0]");
        assert_eq!(p.line, Some(16));
        assert!(p.accepted.unwrap().contains("`tenant-{tenant}`"), "the default group is defined");

        // The one shared instance cannot join a group per tenant.
        let p = only_problem(&GOOD.replace(
            "instance_type = \"m5.large\"",
            "instance_type = \"m5.large\"\n[tier.network]\nsecurity_groups = [\"tenant-{tenant}\"]\n[[tier.security_group]]\nname = \"tenant-{tenant}\"",
        ));
        assert_eq!(p.field, "tier[1].network.security_groups[0]");
        assert!(p.message.contains("serves every tenant"), "{}", p.message);

        let p = only_problem(
            &GOOD.replace("instance_type = \"t3.micro\"", "instance_type = \"t3.micro\"\nsecurity_groups = []"),
        );
        assert_eq!(p.field, "tier[0].security_groups");
        assert!(p.accepted.unwrap().contains("`security_group`"));
    }

    #[test]
    fn break_isolation_is_a_local_knob_carried_by_every_tier_plan() {
        let s = parse(&(GOOD.to_string() + "\n[local]\nbreak_isolation = [\"shared-tmp\", \"shared-tmp\"]\n")).unwrap();
        assert_eq!(s.local.break_isolation, [IsolationFault::SharedTmp]);
        let plan = crate::plan::Plan::new("r".into(), s, "h".into(), &Default::default());
        assert!(plan.tiers.iter().all(|t| t.faults == [IsolationFault::SharedTmp]));
        assert!(
            matches!(&plan.tiers[0].settings, TierSettings::Ec2(e) if e.network == ec2::default_network(TierId::SiloEc2))
        );
        let json = serde_json::to_string(&plan.tiers[0]).unwrap();
        assert!(json.contains("\"faults\":[\"shared-tmp\"]"), "{json}");
        assert_eq!(IsolationFault::SharedTmp.description(), "test fault: silo instances share one /tmp");

        let p = only_problem(&(GOOD.to_string() + "\n[local]\nbreak_isolation = [\"no-pid-ns\"]\n"));
        assert_eq!(p.line, Some(21));
        assert!(p.message.contains("shared-tmp"), "{}", p.message);
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
