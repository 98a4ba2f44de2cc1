//! `isobench agent` (one load agent: an assignment in, protocol lines out) and the local
//! agent pool behind `isobench run --agents N`.

use std::io::Read;
use std::sync::atomic::AtomicBool;

use isobench_core::Deployment;
use isobench_load::agent::{AgentEnd, AgentFigures, Assignment};
use isobench_load::{LoadError, LoadSpec, Snapshot};
use isobench_results::{AgentStatus, AgentSummary, LoadAgents};
use isobench_runner::{Driven, InProcess, TrafficDriver};

use crate::args::AgentArgs;
use crate::errors::CliError;

/// Runs one agent: reads its assignment, drives its slice, writes the protocol to stdout.
/// Exit 0 after `Final`; 1 after `Failed` (written) or when the harness went away.
pub fn agent(a: AgentArgs) -> Result<i32, CliError> {
    if std::env::var(TRANSPORT_ENV).is_ok_and(|v| v == "s3") {
        return over_s3();
    }
    let text = match &a.assignment {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::BadInput(format!("--assignment {}: {e}", path.display())))?,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CliError::BadInput(format!("failed to read the assignment from stdin: {e}")))?;
            s
        }
    };
    let assignment =
        Assignment::from_json(&text).map_err(|e| CliError::BadInput(format!("not an agent assignment: {e}")))?;
    let cancel = crate::signals::install()
        .map_err(|e| CliError::Internal(anyhow::Error::new(e).context("failed to install signal handlers")))?;
    let mut out = std::io::stdout().lock();
    match isobench_load::agent::serve(&assignment, &|_| None, None, &cancel, &mut out) {
        Ok(()) => Ok(0),
        Err(e) => Err(CliError::Internal(anyhow::Error::new(e))),
    }
}

/// Set to `s3` in an agent task on AWS: orders and lines travel through the run's bucket.
pub const TRANSPORT_ENV: &str = "ISOBENCH_AGENT_TRANSPORT";

#[cfg(feature = "aws")]
fn over_s3() -> Result<i32, CliError> {
    crate::aws::agent_over_s3()
}

#[cfg(not(feature = "aws"))]
fn over_s3() -> Result<i32, CliError> {
    Err(CliError::BadInput(format!(
        "{TRANSPORT_ENV}=s3: this build has no AWS backend; agents on AWS run an isobench built with `--features aws`"
    )))
}

/// `--agents N` on the local target: HTTP tiers are driven by N agent processes in network
/// namespaces of their own; function tiers stay in this process, and the summary says so.
#[cfg(target_os = "linux")]
pub struct LocalPool(pub isobench_local::agent_pool::LocalAgents);

/// Why a tier was driven in process although agents were asked for.
pub const FUNCTIONS_IN_PROCESS: &str = "function targets are invoked in-process by the local emulator (an Invoke object, not a network API), so the harness drove this tier itself; agents drive HTTP tiers only";

#[cfg(target_os = "linux")]
impl TrafficDriver for LocalPool {
    fn drive(
        &self,
        spec: &LoadSpec,
        d: &Deployment,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Result<Driven, LoadError> {
        let requested = self.0.count;
        let harness = d.netns.as_deref();
        let (true, Some(harness)) = (isobench_local::agent_pool::http_only(&d.targets), harness) else {
            let mut driven = InProcess.drive(spec, d, cancel, progress)?;
            driven.agents = Some(LoadAgents {
                requested,
                note: Some(FUNCTIONS_IN_PROCESS.into()),
                agents: Vec::new(),
                probes_by: None,
            });
            return Ok(driven);
        };
        let (report, figures) = self.0.drive(spec, &d.targets, harness, cancel, progress)?;
        let agents = figures.into_iter().map(summary).collect();
        Ok(Driven { report, agents: Some(LoadAgents { requested, note: None, agents, probes_by: None }), probes: None })
    }

    /// Agent 0 runs the probes whenever the agents drive the tier.
    fn runs_probes(&self, d: &Deployment) -> bool {
        isobench_local::agent_pool::http_only(&d.targets) && d.netns.is_some()
    }

    fn drive_with_probes(
        &self,
        spec: &LoadSpec,
        probes: &isobench_runner::ProbeSpec,
        d: &Deployment,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Result<Driven, LoadError> {
        let Some(harness) = d.netns.as_deref().filter(|_| self.runs_probes(d)) else {
            return self.drive(spec, d, cancel, progress);
        };
        let (report, figures, probed) =
            self.0.drive_with_probes(spec, Some(probes), &d.targets, harness, cancel, progress)?;
        let agents = figures.into_iter().map(summary).collect();
        let probes_by = Some(isobench_local::agent_pool::PROBE_AGENT);
        Ok(Driven {
            report,
            agents: Some(LoadAgents { requested: self.0.count, note: None, agents, probes_by }),
            probes: probed,
        })
    }
}

pub(crate) fn summary(f: AgentFigures) -> AgentSummary {
    AgentSummary {
        id: f.index,
        planned: f.planned,
        sent: f.sent,
        not_sent: f.not_sent,
        lag_p99_ns: f.lag_p99_ns,
        achieved_rate: f.achieved_rate,
        status: match f.end {
            AgentEnd::Finished => AgentStatus::Finished,
            AgentEnd::Died { how } => AgentStatus::Died { how },
            AgentEnd::Failed { reason } => AgentStatus::Failed { reason },
        },
    }
}
