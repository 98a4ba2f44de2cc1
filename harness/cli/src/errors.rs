//! The outcome of a command, mapped to a documented exit code.

use isobench_results::exit;

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
    #[error("inconclusive probes (positive control failed): {}", .0.join(", "))]
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
}
