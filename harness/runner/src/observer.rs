//! What a run tells the person (or test) watching it, as it happens.

use isobench_load::Snapshot;

/// Receives a run's progress: the CLI draws a bar or plain lines, a test may collect lines.
/// Every call comes from the thread that called `run`.
pub trait Observer {
    /// A tier (by its name in the scenario) is about to be deployed; a [`Observer::line`]
    /// saying so follows.
    fn tier_deploying(&mut self, _tier: &str, _tenants: usize) {}
    /// A one-off status line, e.g. `[silo-ec2] deploying 4 tenants`.
    fn line(&mut self, text: &str);
    /// Traffic progress on a tier (by its name), several times a second.
    fn snapshot(&mut self, tier: &str, snapshot: &Snapshot);
    /// A tier's traffic phase ended.
    fn phase_end(&mut self);
    /// The run is over and its results are written.
    fn finish(&mut self) {
        self.phase_end();
    }
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {
    fn line(&mut self, _text: &str) {}
    fn snapshot(&mut self, _tier: &str, _snapshot: &Snapshot) {}
    fn phase_end(&mut self) {}
}
