//! What can stop a run, and the accounting check of a finished one.

use std::error::Error;
use std::path::PathBuf;

use isobench_core::BackendError;

/// Why a run stopped early, or its results could not be written. `tier` is the tier's name in
/// the scenario (its id unless `[[tier]] name` says otherwise).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The backend cannot run here at all (no root, no namespaces).
    #[error(transparent)]
    Unavailable(BackendError),
    /// The plan names a tier the backend does not have.
    #[error(transparent)]
    UnsupportedTier(BackendError),
    #[error("tier {tier}")]
    Deploy {
        tier: String,
        #[source]
        source: BackendError,
    },
    #[error("traffic for tier {tier} failed")]
    Traffic {
        tier: String,
        #[source]
        source: isobench_load::LoadError,
    },
    #[error("probes for tier {tier} failed")]
    Probes {
        tier: String,
        #[source]
        source: isobench_probes::ProbeError,
    },
    #[error("tier {tier}")]
    NoisyNeighbour {
        tier: String,
        #[source]
        source: crate::noisy::NoisyError,
    },
    #[error("tier {tier}")]
    Teardown {
        tier: String,
        #[source]
        source: BackendError,
    },
    /// Teardown of a tier could not remove these.
    #[error("resources were left behind: {}; run `isobench sweep`", .0.join(", "))]
    LeftBehind(Vec<String>),
    #[error(transparent)]
    Histograms(#[from] isobench_results::hlog::HlogError),
    #[error("failed to create results directory {}", path.display())]
    ResultsDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to serialise the {what}")]
    Serialise {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Report(#[from] isobench_report::ReportError),
}

impl RunError {
    /// The message with every cause after it (`a: b: c`), as `summary.json` records it.
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut cause = self.source();
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

/// A summary whose counts do not add up: `sent != ok + errors + timeouts`, or
/// `dispatched != sent + not sent` (a request lost between the scheduler, which counts
/// `dispatched` itself, and the recorder). A bug of the harness, since the identities are a
/// promise of the tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("accounting identity broken for {scope}: {counts}")]
pub struct AccountingError {
    pub tier: String,
    /// `tier T`, `tier T, tenant A` or `tier T, tenant A, op O`.
    pub scope: String,
    /// The identity with its counts, e.g. `dispatched 400 != sent 399 + not sent 0`.
    pub counts: String,
}
