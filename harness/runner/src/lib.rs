//! isobench's engine: a plan and a backend in, a summary and a results directory out.
//!
//! [`run`] deploys each tier of a plan on any `isobench_core::Backend`, drives its traffic with
//! the probes beside it (and the noisy-neighbour rounds when asked), tears it down, and on
//! every path tears down everything at the end; then it builds the summary, fills in the
//! modelled cost, checks the accounting identity and writes `summary.json`, `histograms.hlog`
//! and the reports. It knows nothing of the command line: the caller picks the backend, shows
//! progress through an [`Observer`] and maps the [`Ending`] to an exit code, so a test can run
//! the whole engine against a fake backend in-process.

mod cost;
mod describe;
mod error;
mod hostinfo;
mod noisy;
mod observer;
mod outcome;
mod run;
mod run_id;
mod summarize;
mod traffic;
mod usage;

pub use describe::describe_plan;
pub use error::{AccountingError, RunError};
pub use hostinfo::VERSION;
/// The probes' spec and report, as a [`TrafficDriver`] that runs them meets them.
pub use isobench_probes::{ProbeError, ProbeReport, ProbeSpec};
pub use noisy::NoisyError;
pub use observer::{Observer, Silent};
pub use outcome::{Ending, RunOutcome, check_identity};
pub use run::{RunOptions, run};
pub use run_id::new_run_id;
pub use traffic::{Driven, InProcess, TrafficDriver, agent_lines};
