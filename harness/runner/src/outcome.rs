//! What a run hands back: its summary and how it ended, which the CLI maps to an exit code.

use isobench_results::{Summary, Traffic, Verdict};

use crate::error::{AccountingError, RunError};

/// A finished run: its results are written whatever the ending.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
    pub ending: Ending,
}

/// How a run ended; when several hold, the first in this order.
#[derive(Debug)]
pub enum Ending {
    /// The summary breaks the accounting identity (a bug of the harness).
    AccountingBroken(AccountingError),
    /// A tier failed (deploy, traffic, probes, teardown); what ran before is in the summary.
    Failed(RunError),
    /// A tier exhausted the scenario's error budget; traffic stopped early. Says which and why.
    ErrorBudget(String),
    /// The cancel flag (a signal) stopped the run.
    Interrupted,
    /// Teardown could not remove these (also in `summary.left_behind`).
    LeftBehind(Vec<String>),
    /// Probe cells that found a leak the tier should have blocked, as `probe on tier`.
    UnexpectedLeak(Vec<String>),
    /// Probe cells whose positive controls did not all pass, as `probe on tier`.
    Inconclusive(Vec<String>),
    /// Everything ran and held.
    Complete,
}

/// Each tier's traffic adds up, per tier, tenant and operation: `sent == ok + errors +
/// timeouts`, and `dispatched == sent + not_sent` with `dispatched` counted by the scheduler
/// apart from the completions, so a lost request fails the check.
pub fn check_identity(s: &Summary) -> Result<(), AccountingError> {
    for t in &s.tiers {
        check_traffic(&t.tier, format!("tier {}", t.tier), &t.traffic)?;
        for p in &t.per_tenant {
            check_traffic(&t.tier, format!("tier {}, tenant {}", t.tier, p.tenant), &p.traffic)?;
            for o in &p.ops {
                check_traffic(&t.tier, format!("tier {}, tenant {}, op {}", t.tier, p.tenant, o.op), &o.traffic)?;
            }
        }
    }
    Ok(())
}

fn check_traffic(tier: &str, scope: String, t: &Traffic) -> Result<(), AccountingError> {
    let counts = if !t.balanced() {
        format!(
            "sent {} != ok {} + errors {} (by kind: {}) + timeouts {}",
            t.sent,
            t.ok,
            t.errors,
            t.errors_by_kind.values().sum::<u64>(),
            t.timeouts
        )
    } else if !t.dispatched_accounted() {
        format!("dispatched {} != sent {} + not sent {}", t.dispatched, t.sent, t.not_sent)
    } else {
        return Ok(());
    };
    Err(AccountingError { tier: tier.to_string(), scope, counts })
}

/// Probe cells as `probe on tier`, where `keep` holds.
fn cells(s: &Summary, keep: impl Fn(&isobench_results::ProbeCell) -> bool) -> Vec<String> {
    s.tiers
        .iter()
        .flat_map(|t| t.probes.iter().map(move |c| (t, c)))
        .filter(|(_, c)| keep(c))
        .map(|(t, c)| format!("{} on {}", c.probe, t.tier))
        .collect()
}

pub fn unexpected_leaks(s: &Summary) -> Vec<String> {
    cells(s, |c| c.unexpected)
}

pub fn inconclusive(s: &Summary) -> Vec<String> {
    cells(s, |c| c.verdict == Verdict::Inconclusive)
}
