//! What a run measured: per-(tenant, operation) counts and HdrHistograms, the totals, the
//! progress snapshots, and the [`Recorder`] that turns completions into them.
//!
//! Connection tasks never touch a histogram. Each finished request becomes one
//! [`Completion`] (a few words) sent over a channel; one recorder on the calling thread drains
//! the channel in batches and records, so histogram updates are never on the contended path.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use isobench_core::workload_api::Op;
use serde::Serialize;

/// Significant figures of every histogram (0.1% relative precision).
pub const SIGFIG: u8 = 3;

/// Why a sent request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ErrorKind {
    /// The TCP connection could not be opened (refused, unreachable, no route, ...).
    #[serde(rename = "connect")]
    Connect,
    /// The connection broke while the request was in flight (reset, closed mid-request).
    #[serde(rename = "io")]
    Io,
    /// A 4xx status (except 404 on a GET, which is ok: see [`Outcome::Ok`]).
    #[serde(rename = "http_4xx")]
    Http4xx,
    /// A 5xx status.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// The peer did not speak HTTP/1.1 as expected: an unparsable response, or a status
    /// the workload never sends (1xx, 3xx).
    #[serde(rename = "protocol")]
    Protocol,
    /// Still in flight when the run was cancelled and the cancellation grace ran out.
    #[serde(rename = "aborted")]
    Aborted,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Io,
        ErrorKind::Http4xx,
        ErrorKind::Http5xx,
        ErrorKind::Protocol,
        ErrorKind::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Io => "io",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Aborted => "aborted",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one planned request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer, read completely; or 404 on a GET (`not_found`): reading a key no request
    /// has written yet is normal in a random mix, so it is a successful read of "nothing",
    /// counted as ok and also in [`OpStats::not_found`].
    Ok {
        not_found: bool,
    },
    Error(ErrorKind),
    /// No complete answer within the timeout, measured from the actual send.
    Timeout,
    /// Due, but never put on the wire: the run was cancelled, or the generator's backlog was
    /// still queued when the drain window after the run closed. Not part of `sent`.
    NotSent,
}

/// One finished request, as connection tasks report it to the recorder. Times are
/// nanoseconds from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub tenant: u32,
    pub op: Op,
    /// When the schedule said the request should start.
    pub intended_ns: u64,
    /// When a connection task took it from the queue and started sending (connecting first
    /// if its connection had to be opened). Equal to `done_ns` for [`Outcome::NotSent`].
    pub sent_ns: u64,
    /// When the answer was completely read, or the request failed or timed out.
    pub done_ns: u64,
    pub outcome: Outcome,
}

/// Records a value, growing the histogram as needed (`saturating_record` would clamp to the
/// current range instead of growing it).
#[inline]
fn rec(h: &mut Histogram<u64>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// An empty auto-resizing histogram at [`SIGFIG`] significant figures.
pub fn new_histogram() -> Histogram<u64> {
    // Auto-resizing: any latency up to u64::MAX ns is recorded without clipping.
    Histogram::new(SIGFIG).expect("3 significant figures is a valid histogram precision")
}

/// Counts and latency distributions of one (tenant, operation), or of a merge of several.
///
/// Identity: `sent == ok + errors + timeouts`. Histograms are in nanoseconds; `corrected` and
/// `uncorrected` hold ok requests only (an error or a timeout is never a latency sample),
/// `lag` holds every sent request.
#[derive(Debug, Clone)]
pub struct OpStats {
    pub sent: u64,
    pub ok: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub timeouts: u64,
    /// Of `ok`: GETs answered 404 (the key was never written).
    pub not_found: u64,
    /// Due but never sent (see [`Outcome::NotSent`]); not part of `sent`.
    pub not_sent: u64,
    /// Completion − intended start: latency corrected for coordinated omission.
    pub corrected: Histogram<u64>,
    /// Completion − actual send: what a closed-loop tool would report.
    pub uncorrected: Histogram<u64>,
    /// Actual send − intended start: the generator's own scheduling and queueing delay.
    pub lag: Histogram<u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            timeouts: 0,
            not_found: 0,
            not_sent: 0,
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            lag: new_histogram(),
        }
    }
}

impl OpStats {
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `sent == ok + errors + timeouts`.
    pub fn identity_holds(&self) -> bool {
        self.sent == self.ok + self.errors_total() + self.timeouts
    }

    /// Adds one completion.
    pub fn record(&mut self, c: &Completion) {
        if c.outcome == Outcome::NotSent {
            self.not_sent += 1;
            return;
        }
        self.sent += 1;
        rec(&mut self.lag, c.sent_ns.saturating_sub(c.intended_ns));
        match c.outcome {
            Outcome::Ok { not_found } => {
                self.ok += 1;
                self.not_found += u64::from(not_found);
                rec(&mut self.corrected, c.done_ns.saturating_sub(c.intended_ns));
                rec(&mut self.uncorrected, c.done_ns.saturating_sub(c.sent_ns));
            }
            Outcome::Error(kind) => *self.errors.entry(kind).or_default() += 1,
            Outcome::Timeout => self.timeouts += 1,
            Outcome::NotSent => unreachable!("handled above"),
        }
    }

    /// Adds another's counts and histograms to this one (across tenants, operations or runs).
    pub fn merge(&mut self, other: &OpStats) {
        self.sent += other.sent;
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        self.timeouts += other.timeouts;
        self.not_found += other.not_found;
        self.not_sent += other.not_sent;
        // Auto-resizing histograms of equal precision always merge.
        self.corrected.add(&other.corrected).expect("auto-resizing histograms merge");
        self.uncorrected.add(&other.uncorrected).expect("auto-resizing histograms merge");
        self.lag.add(&other.lag).expect("auto-resizing histograms merge");
    }
}

/// Run-wide counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub sent: u64,
    pub ok: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub timeouts: u64,
    pub not_found: u64,
    pub not_sent: u64,
}

impl Totals {
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `sent == ok + errors + timeouts`.
    pub fn identity_holds(&self) -> bool {
        self.sent == self.ok + self.errors_total() + self.timeouts
    }

    fn add(&mut self, s: &OpStats) {
        self.sent += s.sent;
        self.ok += s.ok;
        for (k, v) in &s.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        self.timeouts += s.timeouts;
        self.not_found += s.not_found;
        self.not_sent += s.not_sent;
    }
}

/// The result of one [`run`](crate::run).
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub label: String,
    /// From the start of the run to the return of `run` (dispatch, drain and shutdown).
    pub wall: Duration,
    /// Wall-clock time of the run's start, nanoseconds since the Unix epoch.
    pub started_at_unix_ns: u64,
    /// How long requests were dispatched: the duration, or less if cancelled.
    pub dispatch_window: Duration,
    /// Whether `cancel` stopped the run early.
    pub cancelled: bool,
    /// The rate the schedule asked for, requests per second.
    pub planned_rate: f64,
    /// Keyed by tenant id and operation; only pairs the schedule produced appear.
    pub per: BTreeMap<(String, Op), OpStats>,
    pub totals: Totals,
    /// `totals.sent / dispatch_window`, requests per second.
    pub achieved_rate: f64,
    /// TCP connections opened over the run, across endpoints (reconnects included).
    pub connections_opened: u64,
    /// The dispatcher's own share of the lag, in nanoseconds: release into the queue −
    /// intended start, for every dispatched request. `lag` minus this is time spent waiting
    /// for a free connection task.
    pub release_lag: Histogram<u64>,
}

impl LoadReport {
    /// Everything merged into one.
    pub fn merged(&self) -> OpStats {
        self.merged_where(|_, _| true)
    }

    /// One operation across all tenants.
    pub fn by_op(&self, op: Op) -> OpStats {
        self.merged_where(|_, o| o == op)
    }

    /// One tenant across all operations.
    pub fn by_tenant(&self, tenant: &str) -> OpStats {
        self.merged_where(|t, _| t == tenant)
    }

    /// The merge of every (tenant, operation) the filter accepts.
    pub fn merged_where(&self, mut keep: impl FnMut(&str, Op) -> bool) -> OpStats {
        let mut out = OpStats::default();
        for ((t, op), s) in &self.per {
            if keep(t, *op) {
                out.merge(s);
            }
        }
        out
    }
}

/// Progress, handed to the caller's callback about every 250 ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Snapshot {
    pub elapsed: Duration,
    /// The run's total duration (dispatch stops there).
    pub duration: Duration,
    /// Expected number of requests of the whole run (`rate × duration`).
    pub planned_total: u64,
    /// Released by the dispatcher so far (sent, queued or not sent).
    pub dispatched: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub not_sent: u64,
    /// Sent and not finished yet.
    pub in_flight: u64,
    /// Released by the dispatcher but waiting for a free connection.
    pub queued: u64,
    /// 99th percentile of the generator lag of requests sent since the previous snapshot.
    pub lag_p99_recent: Option<Duration>,
}

/// Turns [`Completion`]s into per-(tenant, operation) [`OpStats`]. Slots are created on first
/// use, so tenants or operations that saw no traffic cost nothing.
pub struct Recorder {
    /// Indexed by `tenant × 3 + op`.
    slots: Vec<Option<Box<OpStats>>>,
    recent_lag: Histogram<u64>,
}

fn op_index(op: Op) -> usize {
    match op {
        Op::Put => 0,
        Op::Get => 1,
        Op::Compute => 2,
    }
}

impl Recorder {
    pub fn new(tenants: usize) -> Recorder {
        Recorder { slots: (0..tenants * 3).map(|_| None).collect(), recent_lag: new_histogram() }
    }

    /// Records one completion. Panics if the tenant index is out of range.
    #[inline]
    pub fn record(&mut self, c: &Completion) {
        let slot = &mut self.slots[c.tenant as usize * 3 + op_index(c.op)];
        slot.get_or_insert_with(Box::default).record(c);
        if c.outcome != Outcome::NotSent {
            rec(&mut self.recent_lag, c.sent_ns.saturating_sub(c.intended_ns));
        }
    }

    /// Records everything waiting in the channel without blocking; returns how many.
    pub fn drain(&mut self, rx: &std::sync::mpsc::Receiver<Completion>) -> usize {
        let mut n = 0;
        while let Ok(c) = rx.try_recv() {
            self.record(&c);
            n += 1;
        }
        n
    }

    /// The p99 lag since the previous call (none if nothing was sent), and a fresh start.
    pub fn take_recent_lag_p99(&mut self) -> Option<Duration> {
        if self.recent_lag.is_empty() {
            return None;
        }
        let p99 = Duration::from_nanos(self.recent_lag.value_at_quantile(0.99));
        self.recent_lag.reset();
        Some(p99)
    }

    /// The per-(tenant, operation) stats, with tenant indices replaced by `names`.
    pub fn finish(self, names: &[String]) -> BTreeMap<(String, Op), OpStats> {
        let mut out = BTreeMap::new();
        for (i, slot) in self.slots.into_iter().enumerate() {
            if let Some(stats) = slot {
                out.insert((names[i / 3].clone(), Op::ALL[i % 3]), *stats);
            }
        }
        out
    }
}

/// Sums the per-pair stats.
pub fn totals_of<'a>(per: impl IntoIterator<Item = &'a OpStats>) -> Totals {
    let mut t = Totals::default();
    for s in per {
        t.add(s);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(tenant: u32, op: Op, intended: u64, sent: u64, done: u64, outcome: Outcome) -> Completion {
        Completion { tenant, op, intended_ns: intended, sent_ns: sent, done_ns: done, outcome }
    }

    #[test]
    fn recording_keeps_the_identity_and_separates_latency_from_failures() {
        let mut r = Recorder::new(2);
        r.record(&c(0, Op::Get, 100, 150, 1_150, Outcome::Ok { not_found: true }));
        r.record(&c(0, Op::Get, 200, 200, 700, Outcome::Ok { not_found: false }));
        r.record(&c(0, Op::Get, 300, 310, 9_999_999, Outcome::Timeout));
        r.record(&c(0, Op::Get, 400, 410, 420, Outcome::Error(ErrorKind::Http5xx)));
        r.record(&c(1, Op::Put, 500, 900, 900, Outcome::NotSent));
        let p99 = r.take_recent_lag_p99().unwrap();
        assert_eq!(p99, Duration::from_nanos(50));
        assert_eq!(r.take_recent_lag_p99(), None);
        let per = r.finish(&["a".into(), "b".into()]);
        assert_eq!(per.len(), 2);
        let g = &per[&("a".to_string(), Op::Get)];
        assert_eq!((g.sent, g.ok, g.errors_total(), g.timeouts, g.not_found), (4, 2, 1, 1, 1));
        assert!(g.identity_holds());
        assert_eq!(g.corrected.len(), 2, "only ok requests are latency samples");
        assert_eq!(g.lag.len(), 4, "every sent request has a lag");
        assert_eq!(g.corrected.max(), g.corrected.highest_equivalent(1_050));
        assert_eq!(g.uncorrected.max(), g.uncorrected.highest_equivalent(1_000));
        let b = &per[&("b".to_string(), Op::Put)];
        assert_eq!((b.sent, b.not_sent, b.lag.len()), (0, 1, 0));
        let t = totals_of(per.values());
        assert_eq!((t.sent, t.ok, t.timeouts, t.not_sent), (4, 2, 1, 1));
        assert_eq!(t.errors[&ErrorKind::Http5xx], 1);
        assert!(t.identity_holds());
    }

    #[test]
    fn merging_adds_counts_and_histograms() {
        let mut a = OpStats::default();
        let mut b = OpStats::default();
        a.record(&c(0, Op::Put, 0, 10, 1_000, Outcome::Ok { not_found: false }));
        b.record(&c(0, Op::Put, 0, 10, 3_600_000_000_000, Outcome::Ok { not_found: false }));
        b.record(&c(0, Op::Put, 0, 10, 20, Outcome::Error(ErrorKind::Io)));
        a.merge(&b);
        assert_eq!((a.sent, a.ok, a.errors[&ErrorKind::Io]), (3, 2, 1));
        assert_eq!(a.corrected.len(), 2);
        assert!(a.corrected.max() >= 3_600_000_000_000, "an hour is recorded, not clipped");
        assert!(a.identity_holds());
    }
}
