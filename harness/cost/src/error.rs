//! The crate's errors, in a leaf so that the pricing table and the cost model both use them
//! without importing each other or the crate root.

use std::fmt;

use isobench_core::diagnostics::Problem;

/// Something wrong with a pricing table, located in its file by line (a table stops at its
/// first problem, so the error is one line: `invalid pricing table FILE:LINE: field ...`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct PricingError {
    /// The file, `built-in <region>`, or the flag at fault (`--region`).
    pub file: String,
    /// Its field is the dotted key, e.g. `ec2."t3.micro".usd`; no column.
    pub problem: Problem,
}

impl PricingError {
    pub(crate) fn new(file: &str, line: Option<usize>, field: &str, message: String, accepted: &str) -> PricingError {
        PricingError { file: file.to_string(), problem: Problem { line, ..Problem::new(field, message, accepted) } }
    }
}

impl fmt::Display for PricingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.starts_with("--") {
            write!(f, "{}", self.file)?; // a flag, not a file
        } else {
            write!(f, "invalid pricing table {}", self.file)?;
        }
        self.problem.fmt_after_file(f)?;
        if let Some(a) = &self.problem.accepted {
            write!(f, "; accepted: {a}")?;
        }
        Ok(())
    }
}

/// Something wrong with a published-overheads file, located like a [`PricingError`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct OverheadsError {
    /// The file, or `built-in overheads`.
    pub file: String,
    /// Its field is the dotted key, e.g. `overhead.vpc-hop-ec2.low_ms`; no column.
    pub problem: Problem,
}

impl OverheadsError {
    pub(crate) fn new(file: &str, line: Option<usize>, field: &str, message: String, accepted: &str) -> OverheadsError {
        OverheadsError { file: file.to_string(), problem: Problem { line, ..Problem::new(field, message, accepted) } }
    }
}

impl fmt::Display for OverheadsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid overheads file {}", self.file)?;
        self.problem.fmt_after_file(f)?;
        if let Some(a) = &self.problem.accepted {
            write!(f, "; accepted: {a}")?;
        }
        Ok(())
    }
}

/// Why a cost could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// A price the tier's formula needs is not in the table.
    #[error(
        "tier {tier} needs the price `{key}`, which the pricing table {table} lacks; add it to a --pricing file \
         (see harness/cost/pricing/us-east-1.toml for the format)"
    )]
    MissingPrice { tier: String, key: String, table: String },
    /// The run's record lacks a figure the formula needs (e.g. a function tier without billing figures).
    #[error("tier {tier}: cannot cost the run: {reason}")]
    Input { tier: String, reason: String },
}
