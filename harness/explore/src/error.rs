//! What can stop a sweep, each with what failed.

use std::path::PathBuf;

/// Why a sweep could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// The flags, the scenario or the sweep directory do not allow the sweep; nothing was
    /// deployed. The message says what would be accepted.
    #[error("{0}")]
    BadInput(String),
    #[error("failed to write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to remove the unfinished point {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to render the sweep's report: {0}")]
    Report(#[from] isobench_report::ReportError),
    #[error("point {key}: {source}")]
    Run {
        key: String,
        #[source]
        source: isobench_runner::RunError,
    },
}
