//! [`LoadError`]: why a run could not start or complete.

/// Why a run could not start or complete. Request failures are not errors of the run: they
/// are counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid load spec: `{field}` {reason}")]
    InvalidSpec { field: &'static str, reason: String },
    #[error("tenant `{tenant}` has no target endpoint")]
    MissingTarget { tenant: String },
    #[error("failed to enter the target network namespace")]
    Netns(#[source] nix::Error),
    /// The load agents could not be started, or their streams not read.
    #[error("failed to {what}")]
    Agents {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to {what}")]
    Setup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}
