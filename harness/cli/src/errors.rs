//! The outcome of a command, mapped to a documented exit code.

use isobench_results::exit;
use isobench_runner::{Ending, RunError};

/// Why a command did not succeed. Each variant has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0:#}")]
    Deploy(anyhow::Error),
    #[error("resources were left behind: {}; run `isobench sweep`", .0.join(", "))]
    LeftBehind(Vec<String>),
    #[error("interrupted")]
    Interrupted,
    #[error("unexpected cross-tenant leak: {}", .0.join(", "))]
    UnexpectedLeak(Vec<String>),
    #[error("inconclusive probes (a positive control failed, or a trial was blind): {}", .0.join(", "))]
    Inconclusive(Vec<String>),
    #[error("regression against the baseline: {} check(s) failed; see the diff on stdout", .0.len())]
    Regression(Vec<String>),
    #[error("{0}")]
    ErrorBudget(String),
    #[error("guard rail: {}; nothing was created", .0.join("; "))]
    GuardRail(Vec<String>),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

impl CliError {
    /// A run's error: a backend that cannot run here, a tier it lacks, a failed deploy and
    /// leftovers have their own codes; anything else is internal.
    pub fn from_run(e: RunError) -> CliError {
        match e {
            RunError::Unavailable(e) => CliError::Unavailable(e.to_string()),
            RunError::UnsupportedTier(e) => CliError::BadInput(e.to_string()),
            RunError::LeftBehind(items) => CliError::LeftBehind(items),
            e @ RunError::Deploy { .. } => CliError::Deploy(e.into()),
            e => CliError::Internal(e.into()),
        }
    }

    /// How a finished run ended: `Ok(0)` when it ran and held, else the error of its code.
    pub fn from_ending(ending: Ending) -> Result<i32, CliError> {
        match ending {
            Ending::AccountingBroken(e) => Err(CliError::Internal(e.into())),
            Ending::Failed(e) => Err(CliError::from_run(e)),
            Ending::ErrorBudget(why) => Err(CliError::ErrorBudget(why)),
            Ending::Interrupted => Err(CliError::Interrupted),
            Ending::LeftBehind(items) => Err(CliError::LeftBehind(items)),
            Ending::UnexpectedLeak(cells) => Err(CliError::UnexpectedLeak(cells)),
            Ending::Inconclusive(cells) => Err(CliError::Inconclusive(cells)),
            Ending::Complete => Ok(0),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => exit::BAD_INPUT,
            CliError::Unavailable(_) => exit::UNAVAILABLE,
            CliError::Deploy(_) => exit::DEPLOY_FAILED,
            CliError::LeftBehind(_) => exit::LEFT_BEHIND,
            CliError::Interrupted => exit::INTERRUPTED,
            CliError::UnexpectedLeak(_) => exit::UNEXPECTED_LEAK,
            CliError::Inconclusive(_) => exit::INCONCLUSIVE,
            CliError::Regression(_) => exit::REGRESSION,
            CliError::ErrorBudget(_) => exit::ERROR_BUDGET,
            CliError::GuardRail(_) => exit::GUARD_RAIL,
            CliError::Internal(_) => exit::INTERNAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_documented_code() {
        assert_eq!(CliError::BadInput(String::new()).exit_code(), 2);
        assert_eq!(CliError::Deploy(anyhow::anyhow!("x")).exit_code(), 3);
        assert_eq!(CliError::LeftBehind(vec![]).exit_code(), 4);
        assert_eq!(CliError::Unavailable(String::new()).exit_code(), 8);
        assert_eq!(CliError::Interrupted.exit_code(), 130);
        assert_eq!(CliError::UnexpectedLeak(vec![]).exit_code(), 6);
        assert_eq!(CliError::Inconclusive(vec![]).exit_code(), 7);
        assert_eq!(CliError::Regression(vec![]).exit_code(), 5);
        assert_eq!(CliError::ErrorBudget(String::new()).exit_code(), 9);
        assert_eq!(CliError::GuardRail(vec![]).exit_code(), 10);
        assert_eq!(CliError::Internal(anyhow::anyhow!("x")).exit_code(), 1);
    }

    #[test]
    fn each_ending_has_its_code() {
        let code = |e: Ending| CliError::from_ending(e).unwrap_or_else(|e| e.exit_code());
        assert_eq!(code(Ending::Complete), 0);
        assert_eq!(code(Ending::ErrorBudget(String::new())), 9);
        assert_eq!(code(Ending::Interrupted), 130);
        assert_eq!(code(Ending::LeftBehind(vec![])), 4);
        assert_eq!(code(Ending::UnexpectedLeak(vec![])), 6);
        assert_eq!(code(Ending::Inconclusive(vec![])), 7);
        assert_eq!(code(Ending::Failed(RunError::LeftBehind(vec!["x".into()]))), 4);
        let unavailable = isobench_core::BackendError::Unavailable { backend: "local", reason: "no root".into() };
        assert_eq!(code(Ending::Failed(RunError::Unavailable(unavailable))), 8);
    }
}
