//! The harness's side of the protocol: one [`AgentLog`] per agent collects its lines, and
//! [`merge`] adds every agent's figures into one [`LoadReport`], exactly (histograms add,
//! counters add).
//!
//! # An agent that dies
//! An agent whose stream ends without `Final` (it exited, was killed, or its transport broke)
//! keeps what it streamed: the sum of its intervals, every request it reported finished. Its
//! slice's planned requests are known from the seeded schedule ([`planned_slice`]), so for each
//! (tenant, operation) its `dispatched` is its slice's planned count (the run's plan, not how
//! far it got), and every planned request it did not report finished is `not_sent`. Both
//! identities stay exact: each interval holds finished requests only (`sent == ok + errors +
//! timeouts`), and `not_sent = planned − sent` makes `dispatched == sent + not_sent`. A request
//! it had sent but not yet reported is therefore counted as not sent: it is never lost, and
//! never a latency sample.

use std::collections::BTreeMap;
use std::time::Duration;

use isobench_core::workload_api::Op;

use crate::LoadSpec;
use crate::agent::wire::{Message, PROTOCOL_VERSION, WireError, WireFinal, decode_histogram};
use crate::hist::new_histogram;
use crate::schedule::{Schedule, Slice};
use crate::stats::{LoadReport, OpStats, Snapshot, totals_of};
use isobench_probes::{ProbeError, ProbeReport, ProbeSpec};

/// Each (tenant, operation)'s planned requests in `slice` of `spec`'s schedule.
pub fn planned_slice(spec: &LoadSpec, slice: Slice) -> BTreeMap<(String, Op), u64> {
    let mut out = BTreeMap::new();
    for p in Schedule::new(&spec.schedule_spec()).with_slice(slice) {
        *out.entry((spec.tenants[p.tenant as usize].id.clone(), p.op)).or_default() += 1;
    }
    out
}

/// How an agent's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEnd {
    /// It sent `Final`.
    Finished,
    /// It stopped without `Final`; `how` says how (a signal, an exit code, a broken stream).
    Died { how: String },
    /// It said it could not run (`Failed`).
    Failed { reason: String },
}

/// Everything one agent has said so far.
#[derive(Debug)]
pub struct AgentLog {
    pub slice: Slice,
    pub pid: Option<u32>,
    /// The sum of its intervals, by (tenant, operation).
    streamed: BTreeMap<(String, Op), OpStats>,
    /// Its latest live counters.
    pub last_snapshot: Option<Snapshot>,
    /// Intervals received.
    pub intervals: u64,
    last: Option<Box<WireFinal>>,
    failed: Option<String>,
    /// Its probe report, or why its probes could not run.
    probes: Option<Result<ProbeReport, String>>,
}

/// One agent's figures, for the summary and the terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFigures {
    pub index: u32,
    /// Requests of its slice in the plan.
    pub planned: u64,
    pub sent: u64,
    pub not_sent: u64,
    /// p99 of its generator lag, nanoseconds (none if it sent nothing it reported).
    pub lag_p99_ns: Option<u64>,
    /// What it put on the wire inside the dispatch window, requests per second (0 if it died).
    pub achieved_rate: f64,
    pub end: AgentEnd,
}

impl AgentLog {
    pub fn new(slice: Slice) -> AgentLog {
        AgentLog {
            slice,
            pid: None,
            streamed: BTreeMap::new(),
            last_snapshot: None,
            intervals: 0,
            last: None,
            failed: None,
            probes: None,
        }
    }

    /// Takes one line of the agent's stream; `Ok(true)` once it was the last (`Final` or
    /// `Failed`).
    pub fn line(&mut self, line: &str) -> Result<bool, WireError> {
        match Message::from_line(line)? {
            Message::Hello { protocol, .. } if protocol != PROTOCOL_VERSION => {
                return Err(WireError::Protocol { got: protocol });
            }
            Message::Hello { pid, .. } => self.pid = Some(pid),
            Message::Probes { report } => self.probes = Some(Ok(*report)),
            Message::ProbesFailed { reason } => self.probes = Some(Err(reason)),
            Message::Interval { snapshot, cells } => {
                for c in &cells {
                    let s = c.to_stats()?;
                    self.streamed.entry((c.tenant.clone(), c.op)).or_default().merge(&s);
                }
                self.last_snapshot = Some(snapshot);
                self.intervals += 1;
            }
            Message::Final(f) => {
                self.last = Some(f);
                return Ok(true);
            }
            Message::Failed { reason } => {
                self.failed = Some(reason);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether it sent `Final`.
    pub fn finished(&self) -> bool {
        self.last.is_some()
    }

    /// Its probe report, or why its probes could not run; `None` if it said neither.
    pub fn probes(&self) -> Option<&Result<ProbeReport, String>> {
        self.probes.as_ref()
    }

    /// Why it could not run, if it said so.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}

/// One agent's per-(tenant, operation) figures: its `Final`, or for an agent that died, what it
/// streamed with the rest of its slice counted as not sent (see the module docs).
fn agent_cells(
    log: &AgentLog,
    planned: &BTreeMap<(String, Op), u64>,
) -> Result<BTreeMap<(String, Op), OpStats>, WireError> {
    if let Some(f) = &log.last {
        let mut out = BTreeMap::new();
        for c in &f.cells {
            out.insert((c.tenant.clone(), c.op), c.to_stats()?);
        }
        return Ok(out);
    }
    let mut out = log.streamed.clone();
    for (key, &n) in planned {
        let s = out.entry(key.clone()).or_default();
        s.dispatched = n.max(s.sent + s.not_sent);
        s.not_sent = s.dispatched - s.sent;
    }
    Ok(out)
}

/// Adds every agent's figures into one report of `spec`'s run (the whole run's spec, not a
/// slice's), with each agent's own figures; each log comes with how its stream ended. An agent
/// without `Final` counts as described in the module docs, whatever its end says.
pub fn merge(spec: &LoadSpec, logs: &[(AgentLog, AgentEnd)]) -> Result<(LoadReport, Vec<AgentFigures>), WireError> {
    let mut per: BTreeMap<(String, Op), OpStats> = BTreeMap::new();
    let mut release_lag = new_histogram();
    let mut figures = Vec::with_capacity(logs.len());
    let (mut wall, mut window, mut started, mut cancelled, mut connections) = (0u64, 0u64, u64::MAX, false, 0u64);
    for (log, end) in logs {
        let planned = planned_slice(spec, log.slice);
        let cells = agent_cells(log, &planned)?;
        for (k, s) in &cells {
            per.entry(k.clone()).or_default().merge(s);
        }
        let mine = totals_of(cells.values());
        let mut lag = OpStats::default();
        cells.values().for_each(|s| lag.lag.add(&s.lag));
        let achieved_rate = match &log.last {
            Some(f) => {
                release_lag.add(&decode_histogram("release_lag", &f.release_lag)?).expect("auto-resizing");
                wall = wall.max(f.wall_ns);
                window = window.max(f.dispatch_window_ns);
                started = started.min(f.started_at_unix_ns);
                cancelled |= f.cancelled;
                connections += f.connections_opened;
                f.achieved_rate
            }
            None => 0.0,
        };
        figures.push(AgentFigures {
            index: log.slice.index,
            planned: planned.values().sum(),
            sent: mine.sent,
            not_sent: mine.not_sent,
            lag_p99_ns: (!lag.lag.is_empty()).then(|| lag.lag.value_at_quantile(0.99)),
            achieved_rate,
            end: end.clone(),
        });
    }
    // A run where every agent died still has the planned window.
    if window == 0 {
        window = u64::try_from(spec.duration.as_nanos()).unwrap_or(u64::MAX);
    }
    if started == u64::MAX {
        started = 0;
    }
    let totals = totals_of(per.values());
    let dispatch_window = Duration::from_nanos(window);
    let per_second = |n: u64| if window == 0 { 0.0 } else { n as f64 / dispatch_window.as_secs_f64() };
    let report = LoadReport {
        label: spec.label.clone(),
        wall: Duration::from_nanos(wall),
        started_at_unix_ns: started,
        dispatch_window,
        cancelled,
        planned_rate: spec.rate,
        achieved_rate: per_second(totals.sent_in_window),
        ok_rate: per_second(totals.ok_in_window),
        per,
        totals,
        connections_opened: connections,
        release_lag,
    };
    Ok((report, figures))
}

/// The agents' latest counters added into one snapshot, for progress and the error budget.
pub fn merged_snapshot(logs: &[&AgentLog], duration: Duration, planned_total: u64) -> Option<Snapshot> {
    let snaps: Vec<&Snapshot> = logs.iter().filter_map(|l| l.last_snapshot.as_ref()).collect();
    let first = snaps.first()?;
    let mut m = Snapshot { duration, planned_total, lag_p99_recent: None, ..**first };
    m.elapsed = snaps.iter().map(|s| s.elapsed).max().unwrap_or_default();
    let sum = |f: fn(&Snapshot) -> u64| snaps.iter().map(|s| f(s)).sum::<u64>();
    m.dispatched = sum(|s| s.dispatched);
    m.sent = sum(|s| s.sent);
    m.ok = sum(|s| s.ok);
    m.errors = sum(|s| s.errors);
    m.timeouts = sum(|s| s.timeouts);
    m.not_sent = sum(|s| s.not_sent);
    m.in_flight = sum(|s| s.in_flight);
    m.queued = sum(|s| s.queued);
    m.lag_p99_recent = snaps.iter().filter_map(|s| s.lag_p99_recent).max();
    Some(m)
}

/// The agent that runs a tier's probes beside its slice (the same one on every transport).
pub const PROBE_AGENT: u32 = 0;

/// How much longer a pool waits for the agent running `probes`, per probe and trial: the
/// probes may outlast the traffic (in the harness they have no deadline; a pool's deadline
/// bounds a hung agent).
pub fn probe_slack(probes: Option<&ProbeSpec>) -> Duration {
    probes.map_or(Duration::ZERO, |p| Duration::from_secs(10) * p.trials * p.probes.len() as u32)
}

/// The probes' outcome from the agent that ran them: its report, or a probe error saying why
/// there is none (what the harness reports for a probe runner that failed).
pub fn probe_outcome(log: &AgentLog, end: &AgentEnd) -> Result<ProbeReport, ProbeError> {
    let agent = log.slice.index;
    match (log.probes(), end) {
        (Some(Ok(report)), _) => Ok(report.clone()),
        (Some(Err(reason)), _) => Err(ProbeError::Agent { agent, reason: reason.clone() }),
        (None, AgentEnd::Died { how }) => Err(ProbeError::Agent { agent, reason: format!("it died: {how}") }),
        (None, AgentEnd::Failed { reason }) => Err(ProbeError::Agent { agent, reason: format!("it failed: {reason}") }),
        (None, AgentEnd::Finished) => {
            Err(ProbeError::Agent { agent, reason: "it finished without a probe report".into() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::wire::{Message, WireFinal, WireStats, encode_histogram};
    use crate::stats::{Completion, ErrorKind, Outcome, Recorder};
    use isobench_core::scenario::{Arrival, MixSpec, TenantSpec};

    fn spec(arrival: Arrival) -> LoadSpec {
        LoadSpec {
            label: "t".into(),
            duration: Duration::from_secs(2),
            rate: 3_000.0,
            arrival,
            seed: 11,
            tenants: (0..3).map(|i| TenantSpec { id: format!("t{i}"), weight: 1.0 + f64::from(i) }).collect(),
            mix: MixSpec { put: 1.0, get: 2.0, compute: 1.0 },
            timeout: Duration::from_secs(1),
            max_connections: 4,
            compute_us: 10,
            record_size: 8,
            keys_per_tenant: 100,
            worker_threads: 1,
            realtime: false,
            shape: Default::default(),
            hooks: Default::default(),
            slice: Slice::WHOLE,
        }
    }

    #[test]
    fn the_slices_of_n_agents_are_exactly_the_one_driver_schedule() {
        for arrival in [Arrival::Constant, Arrival::Poisson] {
            let s = spec(arrival);
            let whole: Vec<_> = Schedule::new(&s.schedule_spec()).collect();
            let one = planned_slice(&s, Slice::WHOLE);
            for n in [2u32, 3, 7] {
                let mut union = Vec::new();
                let mut counts: BTreeMap<(String, Op), u64> = BTreeMap::new();
                for k in 0..n {
                    let slice = Slice { index: k, count: n };
                    let part: Vec<_> = Schedule::new(&s.schedule_spec()).with_slice(slice).collect();
                    assert!(!part.is_empty());
                    union.extend(part);
                    for (key, c) in planned_slice(&s, slice) {
                        *counts.entry(key).or_default() += c;
                    }
                }
                assert_eq!(counts, one, "{arrival:?}, {n} agents: per-tenant planned counts");
                let key = |p: &crate::Planned| (p.at, p.tenant, p.op as u8, p.key);
                union.sort_by_key(key);
                let mut w = whole.clone();
                w.sort_by_key(key);
                assert_eq!(union, w, "{arrival:?}, {n} agents: the same requests, intended times and keys");
            }
        }
    }

    fn completion(tenant: u32, op: Op, outcome: Outcome) -> Completion {
        Completion {
            tenant,
            op,
            intended_ns: 1_000,
            sent_ns: 2_000,
            ready_ns: 1_500,
            done_ns: 900_000,
            outcome,
            invoke: None,
        }
    }

    fn fin(cells: Vec<WireStats>) -> Message {
        Message::Final(Box::new(WireFinal {
            cells,
            wall_ns: 2_100_000_000,
            started_at_unix_ns: 5,
            dispatch_window_ns: 2_000_000_000,
            cancelled: false,
            achieved_rate: 100.0,
            ok_rate: 99.0,
            connections_opened: 3,
            release_lag: encode_histogram(&new_histogram()),
        }))
    }

    /// Agent 0 finishes (its Final says 3 dispatched: 2 ok, 1 timeout); agent 1 streams one
    /// interval (1 ok, 1 error, 1 not sent) and dies.
    #[test]
    fn merge_adds_exactly_and_a_dead_agents_unfinished_slice_is_not_sent() {
        let s = spec(Arrival::Constant);
        let ok = Outcome::Ok { not_found: false };
        let mut r = Recorder::new(3, u64::MAX);
        r.record(&completion(0, Op::Get, ok));
        r.record(&completion(0, Op::Get, ok));
        r.record(&completion(0, Op::Get, Outcome::Timeout));
        let mut dispatched = vec![0; 9];
        dispatched[1] = 3;
        r.set_dispatched(&dispatched);
        let names: Vec<String> = s.tenants.iter().map(|t| t.id.clone()).collect();
        let per = r.finish(&names);
        let cells0 = per.iter().map(|((t, op), st)| WireStats::from_stats(t, *op, st)).collect();
        let mut a0 = AgentLog::new(Slice { index: 0, count: 2 });
        assert!(a0.line(&fin(cells0).to_line()).unwrap());

        let mut r = Recorder::new(3, u64::MAX);
        r.keep_intervals();
        r.record(&completion(1, Op::Put, ok));
        r.record(&completion(1, Op::Put, Outcome::Error(ErrorKind::Io)));
        r.record(&completion(2, Op::Compute, Outcome::NotSent));
        let cells1 = r
            .take_interval()
            .into_iter()
            .map(|(i, st)| WireStats::from_stats(&names[i / 3], Op::ALL[i % 3], &st))
            .collect();
        let snap = Snapshot {
            elapsed: Duration::from_millis(250),
            duration: s.duration,
            planned_total: 10,
            dispatched: 3,
            sent: 2,
            ok: 1,
            errors: 1,
            timeouts: 0,
            not_sent: 1,
            in_flight: 0,
            queued: 0,
            lag_p99_recent: None,
        };
        let mut a1 = AgentLog::new(Slice { index: 1, count: 2 });
        assert!(!a1.line(&Message::Interval { snapshot: snap, cells: cells1 }.to_line()).unwrap());
        let died = AgentEnd::Died { how: "killed by signal 9".into() };
        let (report, figures) = merge(&s, &[(a0, AgentEnd::Finished), (a1, died.clone())]).unwrap();

        let planned1 = planned_slice(&s, Slice { index: 1, count: 2 });
        let planned1_total: u64 = planned1.values().sum();
        assert!(report.totals.identity_holds(), "{:?}", report.totals);
        assert!(report.totals.dispatched_accounted(), "{:?}", report.totals);
        for st in report.per.values() {
            assert!(st.identity_holds() && st.dispatched_accounted(), "{st:?}");
        }
        assert_eq!(report.totals.dispatched, 3 + planned1_total);
        assert_eq!(report.totals.sent, 3 + 2);
        assert_eq!(report.totals.ok, 3);
        assert_eq!(report.totals.timeouts, 1);
        assert_eq!(report.totals.not_sent, planned1_total - 2);
        // Histograms add: the dead agent's streamed ok request is a latency sample too.
        assert_eq!(report.merged().corrected.len(), 3);
        assert_eq!(report.merged().corrected.max(), report.merged().corrected.highest_equivalent(899_000));
        let put1 = &report.per[&("t1".to_string(), Op::Put)];
        assert_eq!((put1.dispatched, put1.sent, put1.ok), (planned1[&("t1".to_string(), Op::Put)], 2, 1));
        assert_eq!(figures.len(), 2);
        assert_eq!((figures[1].planned, figures[1].sent, figures[1].not_sent), (planned1_total, 2, planned1_total - 2));
        assert_eq!(figures[1].end, died);
        assert_eq!(figures[0].end, AgentEnd::Finished);
        assert_eq!(report.connections_opened, 3);
    }

    #[test]
    fn histograms_survive_the_wire_exactly() {
        let mut st = OpStats::default();
        for i in 0..5_000u64 {
            st.record(&completion(0, Op::Get, Outcome::Ok { not_found: i % 7 == 0 }), u64::MAX);
            st.lag.record(i * 1_337);
        }
        let back = WireStats::from_stats("t0", Op::Get, &st).to_stats().unwrap();
        assert_eq!(*back.lag.histogram(), *st.lag.histogram());
        assert_eq!(*back.corrected.histogram(), *st.corrected.histogram());
        assert_eq!((back.sent, back.ok, back.not_found), (st.sent, st.ok, st.not_found));
    }

    #[test]
    fn probe_messages_round_trip_and_an_agent_of_another_protocol_is_refused_at_hello() {
        let report = isobench_probes::ProbeReport {
            tier: isobench_core::TierId::SiloEc2,
            cells: Vec::new(),
            wall_s: 1.5,
            errors: vec!["a blind trial".into()],
        };
        let mut log = AgentLog::new(Slice { index: 0, count: 2 });
        let hello = Message::Hello { protocol: PROTOCOL_VERSION, slice: log.slice, pid: 7 };
        assert!(!log.line(&hello.to_line()).unwrap());
        let line = Message::Probes { report: Box::new(report.clone()) }.to_line();
        assert!(!log.line(&line).unwrap(), "the report comes before Final");
        assert_eq!(log.probes(), Some(&Ok(report)));
        let failed = Message::ProbesFailed { reason: "probing needs at least two tenants".into() }.to_line();
        log.line(&failed).unwrap();
        assert_eq!(log.probes(), Some(&Err("probing needs at least two tenants".to_string())));

        // An agent of protocol 1 knows no probes: refused at its first line.
        let old = Message::Hello { protocol: 1, slice: log.slice, pid: 8 }.to_line();
        let e = AgentLog::new(log.slice).line(&old).unwrap_err();
        assert!(matches!(e, WireError::Protocol { got: 1 }), "{e}");
    }
}
