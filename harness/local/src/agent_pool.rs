//! Local load agents: `isobench agent` child processes, each in a network namespace of its own
//! ([`crate::agent_net`]), given its assignment on stdin and read line by line from
//! stdout; what they say is merged by `isobench_load::agent::merge`. Function targets are not
//! driven by agents here: the emulator invokes them in-process (see [`LocalAgents::drive`]).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isobench_core::backend::{Endpoint, TenantTarget};
use isobench_load::agent::{AgentEnd, AgentFigures, AgentLog, Assignment, Slice, WireEndpoint, WireTarget};
use isobench_load::{LoadError, LoadReport, LoadSpec, Snapshot};
use isobench_probes::{ProbeError, ProbeReport, ProbeSpec};

use crate::agent_net::{self, AgentNet};

/// Test hook: set to an agent index, the pool SIGKILLs that agent after its first interval.
pub const KILL_AGENT_ENV: &str = "ISOBENCH_TEST_KILL_AGENT";

/// Past the run's own end (duration + two timeouts + the driver's final grace), how long the
/// pool waits for agents' final reports before it kills them.
const FINAL_SLACK: Duration = Duration::from_secs(10);

pub use isobench_load::agent::PROBE_AGENT;
use isobench_load::agent::{probe_outcome, probe_slack};

/// What driving with agents gave: the merged report, each agent's figures, and the probes'
/// outcome when they were asked for.
pub type PoolResult = (LoadReport, Vec<AgentFigures>, Option<Result<ProbeReport, ProbeError>>);

/// A pool of `count` local agents, started per tier.
#[derive(Debug, Clone)]
pub struct LocalAgents {
    pub count: u32,
    /// The `isobench` executable (its `agent` subcommand).
    pub exe: PathBuf,
}

/// Whether the pool can drive these targets: HTTP only (a function is an `Invoke` object in
/// this process, not a network API an agent could call).
pub fn http_only(targets: &[TenantTarget]) -> bool {
    targets.iter().all(|t| matches!(t.endpoint, Endpoint::Http(_)))
}

fn setup(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LoadError {
    let what = what.into();
    move |e| LoadError::Agents { what, source: Box::new(e) }
}

struct Running {
    child: Child,
    /// Held until the child has exited: the namespace (and its veth) goes with it.
    _net: AgentNet,
}

enum Event {
    Line(u32, String),
    Eof,
}

impl LocalAgents {
    /// Drives `spec` against `targets` (HTTP only, see [`http_only`]) with `count` agents, each
    /// in its own namespace wired to the harness namespace `harness`; merges what they
    /// reported. `progress` gets the agents' counters added up.
    pub fn drive(
        &self,
        spec: &LoadSpec,
        targets: &[TenantTarget],
        harness: &OwnedFd,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Result<(LoadReport, Vec<AgentFigures>), LoadError> {
        let (report, figures, _) = self.drive_with_probes(spec, None, targets, harness, cancel, progress)?;
        Ok((report, figures))
    }

    /// As [`LocalAgents::drive`], and agent [`PROBE_AGENT`] runs `probes` beside its slice,
    /// from its own namespace; their report, or why there is none (the agent died before it,
    /// or said the probes failed), comes back with the traffic's.
    pub fn drive_with_probes(
        &self,
        spec: &LoadSpec,
        probes: Option<&ProbeSpec>,
        targets: &[TenantTarget],
        harness: &OwnedFd,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Result<PoolResult, LoadError> {
        spec.validate()?;
        let wire: Vec<WireTarget> = targets
            .iter()
            .filter_map(|t| match &t.endpoint {
                Endpoint::Http(addr) => {
                    Some(WireTarget { tenant: t.tenant.clone(), endpoint: WireEndpoint::Http { addr: *addr } })
                }
                Endpoint::Function(_) => None,
            })
            .collect();
        // The agents share this host's cores: each gets its share of runtime threads rather than
        // one per core each, unless the spec says how many.
        let mut agent_spec = spec.clone();
        if agent_spec.worker_threads == 0 {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            agent_spec.worker_threads = (cpus / self.count as usize).max(1);
        }
        let nat = agent_net::prepare(harness).map_err(setup("prepare the harness namespace for agents"))?;
        let result = self.run_pool(spec, &agent_spec, probes, &wire, harness, cancel, progress);
        let removed = nat.remove().map_err(setup("remove the agents' forwarding and NAT"));
        let driven = result?;
        removed?;
        Ok(driven)
    }

    // The pool's inputs, each from a different owner; a struct of them would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn run_pool(
        &self,
        spec: &LoadSpec,
        agent_spec: &LoadSpec,
        probes: Option<&ProbeSpec>,
        wire: &[WireTarget],
        harness: &OwnedFd,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Result<PoolResult, LoadError> {
        let (tx, rx) = mpsc::channel();
        let mut agents: Vec<Running> = Vec::new();
        let mut logs: Vec<AgentLog> = Vec::new();
        let started = (|| {
            for k in 0..self.count {
                let slice = Slice { index: k, count: self.count };
                let net = agent_net::create(harness, k).map_err(setup(format!("create agent {k}'s network")))?;
                let mut assignment = Assignment::new(agent_spec, slice, wire.to_vec());
                if let Some(p) = probes.filter(|_| k == PROBE_AGENT) {
                    assignment = assignment.with_probes(p);
                }
                let child = self.spawn(&net.netns, &assignment, k, tx.clone())?;
                agents.push(Running { child, _net: net });
                logs.push(AgentLog::new(slice));
            }
            Ok::<(), LoadError>(())
        })();
        drop(tx);
        if let Err(e) = started {
            for a in &mut agents {
                let _ = a.child.kill();
                let _ = a.child.wait();
            }
            return Err(e);
        }
        let probe_slack = probe_slack(probes);
        let ends = self.follow(spec, probe_slack, &mut agents, &mut logs, &rx, cancel, progress);
        let logs: Vec<(AgentLog, AgentEnd)> = logs.into_iter().zip(ends).collect();
        let (report, figures) = isobench_load::agent::merge(spec, &logs)
            .map_err(|e| LoadError::Agents { what: "merge the agents' reports".into(), source: Box::new(e) })?;
        drop(agents);
        let probed = probes.map(|_| probe_outcome(&logs[PROBE_AGENT as usize].0, &logs[PROBE_AGENT as usize].1));
        Ok((report, figures, probed))
    }

    fn spawn(&self, netns: &OwnedFd, a: &Assignment, k: u32, tx: mpsc::Sender<Event>) -> Result<Child, LoadError> {
        let fd = netns.as_raw_fd();
        let mut cmd = Command::new(&self.exe);
        cmd.arg("agent").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        // SAFETY: runs in the forked child before exec and only makes two syscalls, setns(2)
        // and prctl(2), both async-signal-safe; `fd` refers to the agent's network namespace
        // and stays open in the child until exec (close-on-exec).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The agent dies with the harness thread that started it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(setup(format!("start agent {k} ({})", self.exe.display())))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let written = writeln!(stdin, "{}", a.to_json());
        drop(stdin);
        if let Err(e) = written {
            let _ = child.kill();
            let _ = child.wait();
            return Err(setup(format!("give agent {k} its assignment"))(e));
        }
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(Event::Line(k, line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Event::Eof);
        });
        Ok(child)
    }

    /// Reads every agent's stream to its end, forwarding cancellation, killing agents past the
    /// deadline; returns how each ended.
    // As run_pool's.
    #[allow(clippy::too_many_arguments)]
    fn follow(
        &self,
        spec: &LoadSpec,
        probe_slack: Duration,
        agents: &mut [Running],
        logs: &mut [AgentLog],
        rx: &mpsc::Receiver<Event>,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Snapshot),
    ) -> Vec<AgentEnd> {
        let kill_hook: Option<u32> = std::env::var(KILL_AGENT_ENV).ok().and_then(|v| v.parse().ok());
        let deadline =
            Instant::now() + spec.duration + spec.timeout * 2 + isobench_load::FINAL_GRACE + FINAL_SLACK + probe_slack;
        let planned_total = isobench_load::Schedule::new(&spec.schedule_spec()).expected_len();
        let mut open = agents.len();
        let mut bad: Vec<Option<String>> = vec![None; agents.len()];
        let mut killed_late = vec![false; agents.len()];
        let mut forwarded_cancel = false;
        while open > 0 {
            if cancel.load(Ordering::Relaxed) && !forwarded_cancel {
                forwarded_cancel = true;
                for a in agents.iter() {
                    // SAFETY: kill(2) on our own child's pid, which it still is until waited.
                    unsafe { libc::kill(a.child.id() as libc::pid_t, libc::SIGTERM) };
                }
            }
            if Instant::now() > deadline {
                for (k, a) in agents.iter_mut().enumerate() {
                    if !logs[k].finished() && logs[k].failure().is_none() {
                        killed_late[k] = true;
                        let _ = a.child.kill();
                    }
                }
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Event::Line(k, line)) => {
                    let log = &mut logs[k as usize];
                    let before = log.intervals;
                    if let Err(e) = log.line(&line) {
                        let what = match e {
                            isobench_load::agent::WireError::Protocol { .. } => e.to_string(),
                            _ => format!("unreadable line: {e}"),
                        };
                        bad[k as usize].get_or_insert(what);
                        let _ = agents[k as usize].child.kill();
                        continue;
                    }
                    if log.intervals > before {
                        if kill_hook == Some(k) && log.intervals == 1 {
                            tracing::warn!("test hook: killing agent {k} with SIGKILL");
                            let _ = agents[k as usize].child.kill();
                        }
                        let all: Vec<&AgentLog> = logs.iter().collect();
                        if let Some(s) = isobench_load::agent::merged_snapshot(&all, spec.duration, planned_total) {
                            progress(&s);
                        }
                    }
                }
                Ok(Event::Eof) => open -= 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        agents
            .iter_mut()
            .enumerate()
            .map(|(k, a)| {
                let status = a.child.wait();
                let log = &logs[k];
                if log.finished() && bad[k].is_none() {
                    return AgentEnd::Finished;
                }
                if let Some(reason) = log.failure() {
                    return AgentEnd::Failed { reason: reason.to_string() };
                }
                let mut how = status.map_or_else(|e| format!("cannot be waited for: {e}"), |s| describe(&s));
                if killed_late[k] {
                    how = format!("no final report by the deadline; {how} by the harness");
                }
                if let Some(b) = &bad[k] {
                    how = format!("{b}; {how}");
                }
                AgentEnd::Died { how }
            })
            .collect()
    }
}

/// How a process ended, in words.
fn describe(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with code {c} without a final report"),
        (_, Some(9)) => "killed by signal 9 (SIGKILL)".into(),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("ended: {s}"),
    }
}
