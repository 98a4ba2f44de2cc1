//! [`LoadSpec`]: what one run of the driver is asked to do, from a scenario or built by hand,
//! and the checks [`run`](crate::run) relies on.

use std::time::Duration;

use isobench_core::arrivals::Shape;
use isobench_core::scenario::{Arrival, MixSpec, Scenario, TenantSpec};

use crate::error::LoadError;
use crate::schedule::{ScheduleSpec, Slice};

/// Everything one run of the driver needs besides the targets.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Names the run in the report (typically the tier id).
    pub label: String,
    /// How long requests are dispatched.
    pub duration: Duration,
    /// Requests per second, all tenants together.
    pub rate: f64,
    pub arrival: Arrival,
    pub seed: u64,
    /// Tenants and their share of the rate; each needs a target.
    pub tenants: Vec<TenantSpec>,
    pub mix: MixSpec,
    /// Per-request timeout, from the actual send (for a function, the start of the invoke).
    pub timeout: Duration,
    /// Most connections opened to one HTTP endpoint at a time; for a function endpoint, most
    /// invokes in flight at a time.
    pub max_connections: usize,
    /// `us` of every compute request.
    pub compute_us: u64,
    /// Body size of every put.
    pub record_size: usize,
    /// Keys are drawn uniformly from `0..keys_per_tenant`.
    pub keys_per_tenant: u32,
    /// Threads the driver's tasks run on: as many single-threaded runtimes for HTTP connections
    /// (and workers of the function invokes' runtime); 0 picks one per available CPU.
    pub worker_threads: usize,
    /// Run the dispatcher and the connection threads at the lowest real-time priority
    /// (`SCHED_FIFO` 1) when permitted (`run.realtime`): other work on their cores then no
    /// longer delays them, and on a machine shared with the system under test they take the
    /// CPU from it first; hence off by default. Giving the dispatcher alone that priority made
    /// things worse above ~30k requests/s (it preempted the connection threads); with every
    /// generator thread at the same priority none preempts another. A dispatcher one
    /// priority above the connection threads was worse too: own lag p99 at 104k req/s 424–773
    /// µs against 319–405 µs with both at 1 (four 8 s runs each), the preemptions costing more
    /// than waiting for the connection thread to block.
    pub realtime: bool,
    /// How the rate moves over the run (phases, bursts, a trace); [`Shape::Steady`] for `rate`
    /// throughout.
    pub shape: Shape,
    /// Faults injected into the driver itself, for tests only.
    #[doc(hidden)]
    pub hooks: TestHooks,
    /// The share of the schedule this driver sends (an agent's slice); the whole by default.
    /// `dispatched` and `not_sent` then count this slice only.
    pub slice: Slice,
}

/// Faults a test can inject into the driver, to show that its accounting and its deadlines
/// catch them. All off by default; never set outside tests.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestHooks {
    /// Drop the first completion instead of recording it (a lost request).
    pub drop_completion: bool,
    /// Panic inside the HTTP exchange of the request with this 1-based send number.
    pub panic_on_request: Option<u64>,
}

/// Setting this environment variable to `1` sets [`TestHooks::drop_completion`] in specs made
/// by [`LoadSpec::from_scenario`]: lets an end-to-end test of the CLI lose one completion.
pub const DROP_COMPLETION_ENV: &str = "ISOBENCH_TEST_DROP_COMPLETION";

impl TestHooks {
    /// The hooks the environment asks for (see [`DROP_COMPLETION_ENV`]).
    pub fn from_env() -> TestHooks {
        TestHooks {
            drop_completion: std::env::var_os(DROP_COMPLETION_ENV).is_some_and(|v| v == "1"),
            panic_on_request: None,
        }
    }
}

impl LoadSpec {
    /// The spec a scenario describes (with any command-line overrides already applied to it).
    pub fn from_scenario(label: impl Into<String>, s: &Scenario) -> LoadSpec {
        LoadSpec {
            label: label.into(),
            duration: s.run.duration.0,
            rate: s.run.rate.0,
            arrival: s.run.arrival,
            seed: s.run.seed,
            tenants: s.tenants.clone(),
            mix: s.mix.clone(),
            timeout: s.run.timeout.0,
            max_connections: s.run.max_connections as usize,
            compute_us: u64::try_from(s.workload.compute.0.as_micros()).unwrap_or(u64::MAX),
            record_size: usize::try_from(s.workload.record_size.0).unwrap_or(usize::MAX),
            keys_per_tenant: s.workload.keys_per_tenant,
            worker_threads: 0,
            realtime: s.run.realtime,
            shape: s.shape(),
            hooks: TestHooks::from_env(),
            slice: Slice::WHOLE,
        }
    }

    /// The arrival schedule this spec describes.
    pub fn schedule_spec(&self) -> ScheduleSpec {
        ScheduleSpec {
            duration: self.duration,
            rate: self.rate,
            arrival: self.arrival,
            seed: self.seed,
            weights: self.tenants.iter().map(|t| t.weight).collect(),
            mix: self.mix.clone(),
            keys_per_tenant: self.keys_per_tenant,
            shape: self.shape.clone(),
        }
    }

    /// Checks what [`run`](crate::run) relies on; scenario validation normally guarantees all of it.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |field: &'static str, reason: String| Err(LoadError::InvalidSpec { field, reason });
        if self.duration.is_zero() {
            return bad("duration", "must be more than 0s".into());
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return bad("rate", format!("{} is not a positive rate", self.rate));
        }
        if self.timeout.is_zero() {
            return bad("timeout", "must be more than 0s".into());
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1".into());
        }
        if self.keys_per_tenant == 0 {
            return bad("keys_per_tenant", "must be at least 1".into());
        }
        let m = &self.mix;
        if [m.put, m.get, m.compute].iter().any(|w| !(*w >= 0.0 && w.is_finite())) || m.put + m.get + m.compute <= 0.0 {
            return bad("mix", "weights must be 0 or more, and at least one positive".into());
        }
        if self.slice.count == 0 || self.slice.index >= self.slice.count {
            return bad("slice", format!("agent {} of {} is not a slice", self.slice.index, self.slice.count));
        }
        if self.tenants.is_empty() {
            return bad("tenants", "no tenant".into());
        }
        if u32::try_from(self.tenants.len()).is_err() {
            return bad("tenants", "too many tenants".into());
        }
        for t in &self.tenants {
            if !(t.weight > 0.0 && t.weight.is_finite()) {
                return bad("tenants", format!("tenant `{}` has weight {}", t.id, t.weight));
            }
            // The id travels in the path, in a header and in a function's event: keep it to
            // URL-unreserved characters (which need no escaping in JSON either).
            let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
            if t.id.is_empty() || !t.id.chars().all(unreserved) {
                return bad("tenants", format!("tenant id `{}` is not a plain path segment", t.id));
            }
        }
        Ok(())
    }
}
