//! The boundary every deployment target implements: deploy a tier, describe what was
//! deployed, and tear it down. Calls are synchronous; a backend that needs async inside
//! (the cloud SDKs) runs its own runtime.

use std::net::{IpAddr, SocketAddr};
#[cfg(unix)]
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::plan::TierPlan;
use crate::tier::TierId;

/// Fidelity and phases are part of the summary's vocabulary, defined once in `isobench-results`.
pub use isobench_results::{Fidelity, Phase, SkippedPhase};

/// How a function endpoint's successful payloads are read: the scenario's `response`.
pub use crate::scenario::lambda::PayloadContract;

#[derive(Debug, Clone, Serialize)]
pub struct BackendInfo {
    pub name: &'static str,
    pub fidelity: Fidelity,
    /// One line on how this backend isolates, shown in reports.
    pub description: String,
}

/// Where one tenant's requests go.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// An HTTP/1.1 server.
    Http(SocketAddr),
    /// A function invoked through the backend (the Lambda tiers).
    Function(Arc<dyn Invoke>),
}

/// How an invoke found its execution environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartKind {
    /// A new environment was initialised for this invoke; `init` is its INIT phase.
    Cold { init: Duration },
    /// A warm environment was reused.
    Warm,
}

/// What became of one invoke, as the function's caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The function returned a payload. Under [`PayloadContract::WorkloadStatus`] it may still
    /// carry an application-level error (an HTTP-style status >= 400 in the body), which the
    /// caller inspects; under [`PayloadContract::Opaque`] it is a success whatever it holds.
    Ok(Vec<u8>),
    /// The function reported an error (`/invocation/{id}/error`) or crashed during the invoke.
    FunctionError { error_type: String },
    /// The environment's INIT failed.
    InitError { error_type: Option<String> },
    /// Over the function's concurrency limit.
    Throttled,
    /// The function ran past its own timeout.
    Timeout,
    /// The invoke was refused before reaching a function (e.g. a missing tenant id in tenant
    /// isolation mode), with the service's error name.
    Rejected { error_type: String },
}

/// An invoke's outcome with the facts the cost model and the cold/warm split need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeResult {
    pub outcome: InvokeOutcome,
    /// `None` when no environment ran the invoke (throttled, rejected).
    pub start: Option<StartKind>,
    /// Billed duration in ms, rounded up to 1 ms: from hand-over to the runtime until the
    /// environment is frozen (its runtime and extensions back in their `next` call), so work
    /// after the response is billed, as on Lambda.
    pub billed_ms: Option<u64>,
    pub memory_mb: Option<u32>,
    /// When the function's response was complete, if the backend knows it and the result
    /// arrives later (the emulator answers once the environment is frozen, when billing is
    /// known). The caller's latency ends here, not when the result arrives.
    pub responded_at: Option<std::time::Instant>,
    /// When the response's first byte arrived, for a streamed response
    /// (`Lambda-Runtime-Function-Response-Mode: streaming`); `None` for a buffered one, whose
    /// first byte is its last.
    pub first_byte_at: Option<std::time::Instant>,
}

impl InvokeResult {
    /// An outcome with no facts about an environment: a refusal, a throttle, a fake's answer.
    pub fn bare(outcome: InvokeOutcome) -> InvokeResult {
        InvokeResult { outcome, start: None, billed_ms: None, memory_mb: None, responded_at: None, first_byte_at: None }
    }
}

/// A function endpoint: the backend routes each invoke to an execution environment.
pub trait Invoke: Send + Sync + std::fmt::Debug {
    /// Invokes the function on behalf of `tenant` with an event `payload`.
    fn invoke<'a>(
        &'a self,
        tenant: &'a str,
        payload: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = InvokeResult> + Send + 'a>>;

    /// How the caller reads this function's successful payloads. The default is the sample
    /// workload's status document, what every endpoint spoke before user code existed; an
    /// endpoint that runs other code says [`PayloadContract::Opaque`].
    fn payload_contract(&self) -> PayloadContract {
        PayloadContract::WorkloadStatus
    }
}

#[derive(Debug, Clone)]
pub struct TenantTarget {
    pub tenant: String,
    pub endpoint: Endpoint,
}

/// Resource limits applied to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// CPU quota in thousandths of a CPU (1000 = one full CPU).
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

/// One unit of compute a backend started (an instance, a task, an environment).
#[derive(Debug, Clone, Serialize)]
pub struct InstanceInfo {
    pub id: String,
    pub tenants: Vec<String>,
    pub address: Option<IpAddr>,
    /// From the start of creation to the workload answering its health check.
    pub start_time: Duration,
    /// The workload's process id as the harness's host sees it, where there is one.
    pub pid: Option<u32>,
    pub limits: Option<Limits>,
}

/// A deployed tier.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub tier: TierId,
    pub targets: Vec<TenantTarget>,
    pub instances: Vec<InstanceInfo>,
    /// The network namespace the load driver must open its connections from, when the
    /// endpoints live on a network the host itself has no route to.
    #[cfg(unix)]
    pub netns: Option<Arc<OwnedFd>>,
}

/// What a teardown removed, for the summary and for the leftovers check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TeardownReport {
    pub removed: Vec<String>,
    /// Anything that could not be removed; non-empty means resources were left behind.
    pub left_behind: Vec<String>,
    pub duration: Duration,
    /// Execution-environment lifecycle counts of a function tier, over the tier's life.
    pub environments: Option<EnvironmentStats>,
}

/// Lifecycle counts of a function tier's execution environments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EnvironmentStats {
    /// Environments started (each one a cold start).
    pub created: u64,
    /// Invokes served by an environment that had served one before (warm).
    pub reused: u64,
    /// Environments shut down after their idle keep-alive.
    pub reaped: u64,
    /// Idle environments shut down because they reached their maximum lifetime.
    pub recycled: u64,
    /// Environments replaced after their process died or timed out during an invoke.
    pub replaced: u64,
    /// Most environments busy at once.
    pub peak_concurrency: u64,
    /// Invokes refused over a concurrency limit (every reason).
    pub throttles: u64,
    /// The throttles by the limit that refused them.
    pub throttle_reasons: ThrottleReasons,
    /// Environments frozen between invokes at the end of the run (before teardown).
    pub frozen_at_end: u64,
}

/// Throttled invokes by the limit that refused them (each counted under the first limit it
/// hit, in the order the fields are listed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ThrottleReasons {
    /// The function's own cap (the scenario's `concurrency`; in tenant isolation mode also the
    /// limit on its environments).
    pub function: u64,
    /// The function's reserved concurrency was all in use.
    pub reserved: u64,
    /// The account's unreserved concurrency was all in use.
    pub account: u64,
    /// The function's scaling rate (new environments per 10 s) was spent.
    pub scaling: u64,
}

/// One execution environment's INIT, from the record of the backend that started it: every
/// environment started appears, whatever became of the invoke that started it (failed, timed
/// out by the driver, abandoned), which the invoke answers alone cannot show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitRecord {
    /// The function whose environment it is.
    pub function: String,
    /// How long INIT took; for one still running when asked, how long it has run so far.
    pub duration: Duration,
    pub state: InitState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InitState {
    /// INIT finished and the environment went on to its first invoke.
    Ok,
    /// INIT failed, timed out, or the environment was shut down during it.
    Failed,
    /// Still running when asked.
    Running,
}

impl TeardownReport {
    pub fn merge(&mut self, other: TeardownReport) {
        self.environments = self.environments.or(other.environments);
        self.removed.extend(other.removed);
        self.left_behind.extend(other.left_behind);
        self.duration += other.duration;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot run here at all (no root, no namespaces, no feature).
    #[error("the {backend} backend is not available here: {reason}")]
    Unavailable { backend: &'static str, reason: String },
    /// The tier is not implemented by this backend.
    #[error("the {backend} backend does not support tier `{tier}`")]
    UnsupportedTier { backend: &'static str, tier: TierId },
    #[error("failed to deploy {what} for tier `{tier}`")]
    Deploy {
        tier: TierId,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to tear down {what}")]
    Teardown {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("deploy interrupted")]
    Interrupted,
}

/// A deployment target: the local emulator, AWS, or endpoints someone else deployed.
pub trait Backend: Send {
    fn info(&self) -> BackendInfo;

    /// The phases of the deployed `tier` that cannot run here, each with its reason; asked
    /// after `deploy`. Empty (the default) when the backend runs every phase.
    fn skipped_phases(&self, _tier: TierId) -> Vec<SkippedPhase> {
        Vec::new()
    }

    /// Deploys one tier and waits until every workload answers.
    fn deploy(&mut self, plan: &TierPlan) -> Result<Deployment, BackendError>;

    /// Removes everything deployed for `tier`. Idempotent.
    fn teardown(&mut self, tier: TierId) -> Result<TeardownReport, BackendError>;

    /// Removes everything this backend created in this process. Idempotent; also called on
    /// error and on signals.
    fn teardown_all(&mut self) -> Result<TeardownReport, BackendError>;

    /// Memory the deployed instances and execution environments hold on the host now, in
    /// bytes, as the host accounts it (the local emulator: the run's memory cgroup); `None`
    /// where the backend cannot tell (a cloud backend: the memory is not on this host).
    fn memory_in_use(&self) -> Option<u64> {
        None
    }

    /// Every INIT of `tier`'s execution environments started so far, from the backend's own
    /// record of the environments it started (not from invoke answers); asked right after the
    /// tier's traffic. `None` where the backend has no such record (the default).
    fn inits(&self, _tier: TierId) -> Option<Vec<InitRecord>> {
        None
    }

    /// Probe channels this backend cannot probe, and why; their cells read `not-applicable`
    /// with that reason instead of a verdict.
    fn unprobeable(&self) -> Vec<(crate::probes::Channel, &'static str)> {
        Vec::new()
    }
}
