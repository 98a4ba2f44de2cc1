//! How a tier's traffic is driven: by the load driver in this process (the default,
//! [`InProcess`]), or by a pool of load agents the caller provides (`isobench run --agents N`).
//! The engine asks a [`TrafficDriver`] for a report and never knows which drove it, so it
//! stays backend- and transport-neutral.

use std::sync::atomic::AtomicBool;

use isobench_core::Deployment;
use isobench_load::{LoadError, LoadReport, LoadSpec, Snapshot};
use isobench_probes::{ProbeError, ProbeReport, ProbeSpec};
use isobench_results::LoadAgents;

/// What driving one tier's traffic gave.
pub struct Driven {
    pub report: LoadReport,
    /// The agents' figures, when agents were asked for (also when the tier was driven in
    /// process after all; then with a note saying why).
    pub agents: Option<LoadAgents>,
    /// The probes' report, when the driver ran them ([`TrafficDriver::runs_probes`]).
    pub probes: Option<Result<ProbeReport, ProbeError>>,
}

/// Drives one tier's traffic to a deployment.
pub trait TrafficDriver: Send + Sync {
    /// Runs `spec` against `d`'s targets; `progress` as for [`isobench_load::run`].
    fn drive(
        &self,
        spec: &LoadSpec,
        d: &Deployment,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Result<Driven, LoadError>;

    /// Whether this driver runs the tier's probes itself, beside the traffic (in one of its
    /// agents); if so the engine calls [`TrafficDriver::drive_with_probes`] and starts no
    /// probe thread of its own. The default: the engine runs them.
    fn runs_probes(&self, _d: &Deployment) -> bool {
        false
    }

    /// As [`TrafficDriver::drive`], with `probes` run beside the traffic and their report in
    /// [`Driven::probes`]; called only when [`TrafficDriver::runs_probes`] said so.
    fn drive_with_probes(
        &self,
        spec: &LoadSpec,
        _probes: &ProbeSpec,
        d: &Deployment,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Result<Driven, LoadError> {
        self.drive(spec, d, cancel, progress)
    }
}

/// The load driver in this process, from the deployment's network namespace.
pub struct InProcess;

impl TrafficDriver for InProcess {
    fn drive(
        &self,
        spec: &LoadSpec,
        d: &Deployment,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Result<Driven, LoadError> {
        let report = isobench_load::run(spec, &d.targets, d.netns.as_deref(), cancel, progress)?;
        Ok(Driven { report, agents: None, probes: None })
    }
}

/// One terminal line per agent of a tier.
pub fn agent_lines(tier: &str, agents: &LoadAgents) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(note) = &agents.note {
        lines.push(format!("[{tier}] {} agent(s) asked for; {note}", agents.requested));
    }
    for a in &agents.agents {
        let lag = a.lag_p99_ns.map_or("n/a".into(), |ns| format!("{:.3} ms", ns as f64 / 1e6));
        let status = match &a.status {
            isobench_results::AgentStatus::Finished => "finished".to_string(),
            isobench_results::AgentStatus::Died { how } => {
                format!("DIED ({how}); its {} unfinished request(s) counted as not sent", a.not_sent)
            }
            isobench_results::AgentStatus::Failed { reason } => format!("FAILED: {reason}"),
        };
        lines.push(format!(
            "[{tier}] agent {}/{}: planned {}, sent {}, not sent {}, lag p99 {lag}, {:.0} req/s; {status}",
            a.id, agents.requested, a.planned, a.sent, a.not_sent, a.achieved_rate
        ));
    }
    if let Some(k) = agents.probes_by {
        lines.push(format!("[{tier}] probes ran in agent {k}, beside its share of the traffic"));
    }
    lines
}
