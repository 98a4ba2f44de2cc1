//! The AWS traffic driver: a tier's traffic driven by the run's load agents (Fargate tasks in
//! its VPC, [`crate::agents`]) instead of this process. Agents are started once, at the first
//! tier's traffic, on [`Order::Standby`]; each tier sends every agent its slice with the
//! tier's private addresses (or function names), polls the agents' streams and tasks, and
//! merges what they said with the same exact merge as the local pool. An agent whose task
//! stopped, or that missed the deadline, is named as died, its unfinished requests counted as
//! not sent, and is not asked again for the rest of the run.
//!
//! The runner owns the backend while the driver talks to the agents through it, so both hold
//! it behind one lock ([`Shared`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use isobench_core::backend::{BackendInfo, Endpoint, SkippedPhase, TeardownReport};
use isobench_core::plan::{Plan, TierPlan};
use isobench_core::scenario::TierSettings;
use isobench_core::{Backend, BackendError, Deployment, TierId};
use isobench_load::agent::{
    AgentEnd, AgentFigures, AgentLog, Assignment, PROBE_AGENT, Slice, WireEndpoint, WireTarget, probe_outcome,
    probe_slack,
};
use isobench_probes::{ProbeError, ProbeReport, ProbeSpec};

/// What driving a tier with the agents gave: the merged report, each agent's figures, and the
/// probes' outcome when they were asked for.
pub type DriveResult = (LoadReport, Vec<AgentFigures>, Option<Result<ProbeReport, ProbeError>>);
use isobench_load::{LoadError, LoadReport, LoadSpec, Snapshot};

use crate::agents::AgentsPlan;
use crate::agents::session::{FunctionRef, Order};
use crate::backend::AwsBackend;

/// The AWS backend behind a lock, shared by the runner (as its `Backend`) and [`AgentDriver`].
#[derive(Clone)]
pub struct Shared(pub Arc<Mutex<AwsBackend>>);

impl Shared {
    pub fn new(b: AwsBackend) -> Shared {
        Shared(Arc::new(Mutex::new(b)))
    }

    pub fn lock(&self) -> MutexGuard<'_, AwsBackend> {
        // A panic while holding it leaves the backend as consistent as its own calls left it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for Shared {
    fn info(&self) -> BackendInfo {
        self.lock().info()
    }

    fn skipped_phases(&self, tier: TierId) -> Vec<SkippedPhase> {
        self.lock().skipped_phases(tier)
    }

    fn deploy(&mut self, plan: &TierPlan) -> Result<Deployment, BackendError> {
        self.lock().deploy(plan)
    }

    fn teardown(&mut self, tier: TierId) -> Result<TeardownReport, BackendError> {
        self.lock().teardown(tier)
    }

    fn teardown_all(&mut self) -> Result<TeardownReport, BackendError> {
        self.lock().teardown_all()
    }

    fn memory_in_use(&self) -> Option<u64> {
        self.lock().memory_in_use()
    }

    fn inits(&self, tier: TierId) -> Option<Vec<isobench_core::backend::InitRecord>> {
        self.lock().inits(tier)
    }

    fn unprobeable(&self) -> Vec<(isobench_core::probes::Channel, &'static str)> {
        self.lock().unprobeable()
    }
}

/// Past the run's own end (duration + two timeouts + the driver's final grace), how long the
/// driver waits for agents' final reports: chunks travel through the bucket, and the first
/// tier's agents fetch their binary first.
pub const FINAL_SLACK: Duration = Duration::from_secs(120);

/// How often the driver reads the agents' streams.
pub const POLL: Duration = Duration::from_secs(1);

/// Every how many polls it asks for the agents' task statuses.
const STATUS_EVERY: u32 = 5;

#[derive(Default)]
struct State {
    /// `Some(Ok)` once started; `Some(Err)` when starting them failed (not tried again).
    deployed: Option<Result<(), String>>,
    /// Agents dead or silent in an earlier tier, and how.
    lost: BTreeMap<u32, String>,
}

/// Drives tiers' traffic with the run's agents on AWS.
pub struct AgentDriver {
    backend: Shared,
    plan: AgentsPlan,
    binary: Arc<Vec<u8>>,
    /// Per Lambda tier: whether invokes carry the tenant's id, and how payloads read.
    functions: BTreeMap<TierId, (bool, isobench_core::backend::PayloadContract)>,
    state: Mutex<State>,
    pub poll: Duration,
    pub slack: Duration,
}

fn agents_error(what: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> LoadError {
    LoadError::Agents { what: what.into(), source: Box::new(e) }
}

fn agents_msg(what: impl Into<String>, msg: String) -> LoadError {
    LoadError::Agents { what: what.into(), source: msg.into() }
}

impl AgentDriver {
    /// The driver of `plan`'s agents (`None` without `[aws.agents]`), running `binary` (an
    /// isobench built with the `aws` feature for the agents' architecture).
    pub fn new(backend: Shared, plan: &Plan, binary: Arc<Vec<u8>>) -> Option<AgentDriver> {
        let agents = AgentsPlan::of(plan)?;
        let functions = plan
            .tiers
            .iter()
            .filter_map(|t| match &t.settings {
                TierSettings::Lambda(l) => Some((t.tier, (t.tier == TierId::LambdaTenantIsolation, l.response()))),
                _ => None,
            })
            .collect();
        Some(AgentDriver {
            backend,
            plan: agents,
            binary,
            functions,
            state: Mutex::new(State::default()),
            poll: POLL,
            slack: FINAL_SLACK,
        })
    }

    pub fn count(&self) -> u32 {
        self.plan.count
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the agents on standby unless they were started (or failed to start) already.
    fn ensure_deployed(&self) -> Result<(), LoadError> {
        let mut st = self.state();
        if st.deployed.is_none() {
            let docs = vec![Order::Standby.to_line(); self.plan.count as usize];
            let r = self.backend.lock().deploy_agents(&self.plan, self.binary.clone(), &docs);
            st.deployed = Some(r.map(|_| ()).map_err(|e| isobench_load::agent::error_chain(&e)));
        }
        match st.deployed.as_ref().expect("set above") {
            Ok(()) => Ok(()),
            Err(e) => Err(agents_msg("start the load agents on AWS", e.clone())),
        }
    }

    /// What the agents are told to drive: each tenant's private address (the EC2 tiers report
    /// public ones for the harness's direct path), or its function by name.
    fn targets(&self, d: &Deployment) -> Result<(Vec<WireTarget>, Vec<FunctionRef>), LoadError> {
        let private: BTreeMap<String, SocketAddr> =
            self.backend.lock().deployer().ctx.private_targets.get(&d.tier).cloned().unwrap_or_default();
        let (tenant_ids, contract) = self
            .functions
            .get(&d.tier)
            .copied()
            .unwrap_or((false, isobench_core::backend::PayloadContract::WorkloadStatus));
        let mut wire = Vec::new();
        let mut functions: Vec<FunctionRef> = Vec::new();
        for t in &d.targets {
            let endpoint = match &t.endpoint {
                Endpoint::Http(addr) => WireEndpoint::Http { addr: private.get(&t.tenant).copied().unwrap_or(*addr) },
                Endpoint::Function(_) => {
                    let name =
                        d.instances.iter().find(|i| i.tenants.contains(&t.tenant)).map(|i| i.id.clone()).ok_or_else(
                            || agents_msg("name the functions", format!("no function serves {}", t.tenant)),
                        )?;
                    if !functions.iter().any(|f| f.name == name) {
                        functions.push(FunctionRef { name: name.clone(), tenant_ids, contract });
                    }
                    WireEndpoint::Function { name }
                }
            };
            wire.push(WireTarget { tenant: t.tenant.clone(), endpoint });
        }
        Ok((wire, functions))
    }

    /// Drives `spec` against `d` with the agents; merges what they reported. `progress` gets
    /// the agents' counters added up. Given `probes`, agent [`PROBE_AGENT`] runs them beside
    /// its slice, from inside the VPC, and their outcome comes back with the traffic's.
    pub fn drive(
        &self,
        spec: &LoadSpec,
        probes: Option<&ProbeSpec>,
        d: &Deployment,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Result<DriveResult, LoadError> {
        spec.validate()?;
        self.ensure_deployed()?;
        let (wire, functions) = self.targets(d)?;
        let n = self.plan.count;
        let lost = self.state().lost.clone();
        let mut logs: Vec<AgentLog> = (0..n).map(|k| AgentLog::new(Slice { index: k, count: n })).collect();
        let mut ends: Vec<Option<AgentEnd>> = vec![None; n as usize];
        for k in 0..n {
            if let Some(why) = lost.get(&k) {
                ends[k as usize] = Some(AgentEnd::Died { how: format!("lost earlier in the run ({why})") });
                continue;
            }
            let mut assignment = Assignment::new(spec, Slice { index: k, count: n }, wire.clone());
            if let Some(p) = probes.filter(|_| k == PROBE_AGENT) {
                assignment = assignment.with_probes(p);
            }
            let order = Order::Drive {
                tier: d.tier.as_str().into(),
                assignment: Box::new(assignment),
                functions: functions.clone(),
            };
            if let Err(e) = self.backend.lock().send(k, &order.to_line()) {
                ends[k as usize] = Some(AgentEnd::Died { how: format!("its order could not be sent: {e}") });
            }
        }
        self.follow(spec, probe_slack(probes), &mut logs, &mut ends, cancel, progress);
        let ends: Vec<AgentEnd> = ends.into_iter().map(|e| e.expect("every agent ended")).collect();
        {
            let mut st = self.state();
            for (k, e) in ends.iter().enumerate() {
                if let AgentEnd::Died { how } = e {
                    st.lost.entry(k as u32).or_insert_with(|| how.clone());
                }
            }
        }
        let logs: Vec<(AgentLog, AgentEnd)> = logs.into_iter().zip(ends).collect();
        let probed = probes.map(|_| {
            let (log, end) = &logs[PROBE_AGENT as usize];
            probe_outcome(log, end)
        });
        let (report, figures) =
            isobench_load::agent::merge(spec, &logs).map_err(|e| agents_error("merge the agents' reports", e))?;
        Ok((report, figures, probed))
    }

    /// Reads every agent's stream until each has ended (Final, Failed, its task stopped, or
    /// the deadline), forwarding cancellation as `Stop`.
    fn follow(
        &self,
        spec: &LoadSpec,
        probe_slack: Duration,
        logs: &mut [AgentLog],
        ends: &mut [Option<AgentEnd>],
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) {
        let deadline =
            Instant::now() + spec.duration + spec.timeout * 2 + isobench_load::FINAL_GRACE + self.slack + probe_slack;
        let planned_total = isobench_load::Schedule::new(&spec.schedule_spec()).expected_len();
        let mut stopped = false;
        let mut round = 0u32;
        while ends.iter().any(Option::is_none) {
            if cancel.load(Ordering::Relaxed) && !stopped {
                stopped = true;
                for k in open(ends) {
                    let _ = self.backend.lock().send(k, &Order::Stop.to_line());
                }
            }
            let mut new_interval = false;
            for k in open(ends) {
                new_interval |= self.read(k, &mut logs[k as usize], &mut ends[k as usize]);
            }
            if new_interval {
                let all: Vec<&AgentLog> = logs.iter().collect();
                if let Some(s) = isobench_load::agent::merged_snapshot(&all, spec.duration, planned_total) {
                    progress(&s);
                }
            }
            if round.is_multiple_of(STATUS_EVERY) {
                for k in open(ends) {
                    self.check_task(k, &mut logs[k as usize], &mut ends[k as usize]);
                }
            }
            round += 1;
            if Instant::now() > deadline {
                for k in open(ends) {
                    ends[k as usize] = Some(AgentEnd::Died { how: "no final report by the deadline".into() });
                }
                break;
            }
            if ends.iter().any(Option::is_none) {
                std::thread::sleep(self.poll);
            }
        }
    }

    /// Feeds agent `k`'s new lines to its log; whether an interval came. Sets `end` once the
    /// stream says it ended.
    fn read(&self, k: u32, log: &mut AgentLog, end: &mut Option<AgentEnd>) -> bool {
        let lines = match self.backend.lock().read_lines(k) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("agent {k}: failed to read its stream: {e}");
                return false;
            }
        };
        let before = log.intervals;
        for line in lines {
            let text = String::from_utf8_lossy(&line);
            if let Err(e) = log.line(&text) {
                *end = Some(AgentEnd::Died { how: format!("unreadable line: {e}") });
                return false;
            }
            if log.finished() {
                *end = Some(AgentEnd::Finished);
                break;
            }
            if let Some(reason) = log.failure() {
                *end = Some(AgentEnd::Failed { reason: reason.to_string() });
                break;
            }
        }
        log.intervals > before
    }

    /// Agent `k` is dead when its task stopped; what it put before is read first.
    fn check_task(&self, k: u32, log: &mut AgentLog, end: &mut Option<AgentEnd>) {
        let status = match self.backend.lock().agent_status(k) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("agent {k}: failed to ask for its task's status: {e}");
                return;
            }
        };
        if !status.is_dead() {
            return;
        }
        self.read(k, log, end);
        if end.is_none() {
            *end = Some(AgentEnd::Died { how: format!("its task {status}") });
        }
    }

    /// Tells every agent still running to end its session (teardown stops their tasks anyway).
    pub fn stop_all(&self) {
        if !matches!(self.state().deployed, Some(Ok(()))) {
            return;
        }
        for k in 0..self.plan.count {
            let _ = self.backend.lock().send(k, &Order::Stop.to_line());
        }
    }
}

fn open(ends: &[Option<AgentEnd>]) -> Vec<u32> {
    ends.iter().enumerate().filter(|(_, e)| e.is_none()).map(|(k, _)| k as u32).collect()
}

#[cfg(test)]
mod tests;
