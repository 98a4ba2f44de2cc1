//! The error budget: watches a run's progress snapshots and says when too many requests fail.
//!
//! It works on the cumulative counters of [`Snapshot`]s, so it costs nothing on the request
//! path: the caller feeds it every snapshot and cancels the run when it answers.

use std::collections::VecDeque;
use std::time::Duration;

pub use isobench_core::scenario::ErrorBudget;

use crate::stats::Snapshot;

/// Finished and failed requests at one moment of the run.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Duration,
    finished: u64,
    failed: u64,
}

/// Feeds on snapshots; see [`ErrorBudget`] for the rule.
#[derive(Debug)]
pub struct BudgetWatch {
    budget: ErrorBudget,
    /// Marks no older than the window, plus the newest one older than it (the baseline).
    marks: VecDeque<Mark>,
}

impl BudgetWatch {
    pub fn new(budget: &ErrorBudget) -> BudgetWatch {
        let start = Mark { at: Duration::ZERO, finished: 0, failed: 0 };
        BudgetWatch { budget: budget.clone(), marks: VecDeque::from([start]) }
    }

    /// Records `s`; returns why the budget is exhausted, once it is.
    pub fn observe(&mut self, s: &Snapshot) -> Option<String> {
        let now = Mark { at: s.elapsed, finished: s.ok + s.errors + s.timeouts, failed: s.errors + s.timeouts };
        let window = self.budget.window.0;
        // Keep the newest mark at least `window` old as the baseline; drop those before it.
        while self.marks.len() > 1 && now.at.saturating_sub(self.marks[1].at) >= window {
            self.marks.pop_front();
        }
        self.marks.push_back(now);
        if !self.budget.enabled {
            return None;
        }
        let base = self.marks[0];
        let finished = now.finished - base.finished;
        let failed = now.failed - base.failed;
        let exhausted = finished >= self.budget.min_requests && failed as f64 >= self.budget.share * finished as f64;
        exhausted.then(|| {
            format!(
                "error budget exhausted: {failed} of the {finished} requests that finished in the last {:.1}s failed \
                 (errors {}, timeouts {} since the start; budget: share {} over {}, at least {} requests)",
                (now.at - base.at).as_secs_f64(),
                s.errors,
                s.timeouts,
                self.budget.share,
                self.budget.window,
                self.budget.min_requests
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isobench_core::units::Dur;

    fn snap(ms: u64, ok: u64, errors: u64, timeouts: u64) -> Snapshot {
        Snapshot {
            elapsed: Duration::from_millis(ms),
            duration: Duration::from_secs(60),
            planned_total: 0,
            dispatched: 0,
            sent: ok + errors + timeouts,
            ok,
            errors,
            timeouts,
            not_sent: 0,
            in_flight: 0,
            queued: 0,
            lag_p99_recent: None,
        }
    }

    fn budget(share: f64, window_ms: u64, min: u64) -> ErrorBudget {
        ErrorBudget { enabled: true, share, window: Dur(Duration::from_millis(window_ms)), min_requests: min }
    }

    #[test]
    fn everything_failing_is_stopped_once_enough_requests_finished() {
        let mut w = BudgetWatch::new(&budget(1.0, 5000, 20));
        assert_eq!(w.observe(&snap(250, 0, 10, 0)), None, "too few requests");
        let why = w.observe(&snap(500, 0, 12, 8)).expect("20 of 20 failed");
        assert!(why.contains("20 of the 20"), "{why}");
    }

    #[test]
    fn one_success_in_the_window_keeps_a_full_share_budget() {
        let mut w = BudgetWatch::new(&budget(1.0, 5000, 20));
        assert_eq!(w.observe(&snap(1000, 1, 100, 0)), None);
    }

    #[test]
    fn old_successes_leave_the_window() {
        let mut w = BudgetWatch::new(&budget(1.0, 1000, 20));
        assert_eq!(w.observe(&snap(500, 100, 0, 0)), None);
        assert_eq!(w.observe(&snap(1000, 100, 10, 0)), None);
        // Since the baseline at 500 ms: 0 ok and 15 failed, too few to count.
        assert_eq!(w.observe(&snap(1500, 100, 15, 0)), None);
        // Since the baseline at 1000 ms: 0 ok, 30 failed; the 100 ok have left the window.
        assert!(w.observe(&snap(2000, 100, 40, 0)).is_some(), "the last second is all failures");
    }

    #[test]
    fn a_partial_share_is_a_threshold() {
        let mut w = BudgetWatch::new(&budget(0.5, 1000, 10));
        assert_eq!(w.observe(&snap(250, 6, 4, 0)), None);
        assert!(w.observe(&snap(500, 6, 5, 1)).is_some(), "6 of 12 failed");
    }

    #[test]
    fn a_disabled_budget_never_stops() {
        let mut b = budget(1.0, 1000, 1);
        b.enabled = false;
        let mut w = BudgetWatch::new(&b);
        assert_eq!(w.observe(&snap(5000, 0, 0, 10_000)), None);
    }
}
