//! What a run measured: per-(tenant, operation) counts and HdrHistograms, the totals, the
//! progress snapshots, and the [`Recorder`] that turns completions into them.
//!
//! Connection tasks never touch a histogram. Each finished request becomes one
//! [`Completion`] (a few words) sent over a channel; one recorder on the calling thread drains
//! the channel in batches and records, so histogram updates are never on the contended path.
//!
//! Function (Lambda) targets add, per (tenant, operation), the cold/warm split of the latency,
//! the cold starts' INIT durations and the billing facts the cost model needs; a completion
//! carries them in [`Completion::invoke`]. HTTP targets have no cold/warm split: for them these
//! fields stay empty (zero counts, empty histograms, no memory size). A function that streams
//! its response also has its time to first byte, apart from the latency (to the last byte).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use isobench_core::backend::StartKind;
use isobench_core::workload_api::Op;
use serde::Serialize;

use crate::hist::rec;
pub use crate::hist::{Hist, SIGFIG, new_histogram};
use isobench_results::hlog::TTFB;

/// Why a sent request failed: part of the summary's vocabulary (the keys of `errors_by_kind`),
/// defined once in `isobench-results`. Ordered by name.
pub use isobench_results::ErrorKind;

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
    /// No complete answer within the timeout, measured from the actual send (for a function
    /// target: from the start of the invoke, whose future is then dropped).
    Timeout,
    /// Due, but never put on the wire: the run was cancelled, or the generator's backlog was
    /// still queued when the drain window after the run closed. Not part of `sent`.
    NotSent,
}

/// What an invoke of a function target reported besides its outcome, as far as the result
/// carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvokeFacts {
    /// How the invoke found its execution environment; `None` when none ran it (throttled,
    /// rejected).
    pub start: Option<StartKind>,
    /// Billed duration in milliseconds.
    pub billed_ms: Option<u64>,
    /// The function's memory size.
    pub memory_mb: Option<u32>,
    /// When the first byte of a streamed response arrived, nanoseconds from the start of the
    /// run; `None` for a buffered response.
    pub first_byte_ns: Option<u64>,
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
    /// When a generator without delays of its own would have sent it over the same
    /// connection: the later of `intended_ns` and the moment that connection would have been
    /// free (its previous request sent at *its* `ready_ns`, taking as long at the target as it
    /// took). `intended_ns ≤ ready_ns ≤ sent_ns`; see [`OpStats::own_lag`].
    pub ready_ns: u64,
    /// When the answer was completely read, or the request failed or timed out.
    pub done_ns: u64,
    pub outcome: Outcome,
    /// For a function target, what its invoke result reported; `None` for HTTP targets and
    /// for invokes that never returned a result (timed out, aborted).
    pub invoke: Option<InvokeFacts>,
}

/// Counts and latency distributions of one (tenant, operation), or of a merge of several.
///
/// Identities: `sent == ok + errors + timeouts`, and `dispatched == sent + not_sent` where
/// `dispatched` is counted by the scheduler, apart from the completions. Histograms are in
/// nanoseconds; `corrected` and `uncorrected` hold ok requests only (an error or a timeout is
/// never a latency sample), `lag` holds every sent request except those the recorder gave up
/// waiting for ([`OpStats::abandoned`]).
///
/// The cold/warm fields and the billing fields concern function targets only; HTTP targets
/// have no cold/warm split and leave them empty. For function targets, the `_cold` and `_warm`
/// histograms split `corrected` and `uncorrected` by how the invoke found its environment:
/// `corrected_cold.len() == uncorrected_cold.len() == cold`, and `cold +
/// corrected_warm.len() == ok` whenever every ok result said how it started (a result without
/// a `start` is in neither half).
#[derive(Debug, Clone, Default)]
pub struct OpStats {
    /// Released by the scheduler, counted by it (not from completions).
    pub dispatched: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub timeouts: u64,
    /// Of `ok`: GETs answered 404 (the key was never written).
    pub not_found: u64,
    /// Due but never sent (see [`Outcome::NotSent`]); not part of `sent`.
    pub not_sent: u64,
    /// Of `sent`: sent inside the traffic window (the dispatch window), not from the backlog
    /// after it.
    pub sent_in_window: u64,
    /// Of `ok`: completed inside the traffic window.
    pub ok_in_window: u64,
    /// Of `timeouts`: requests in flight in a task still live when the recorder's final
    /// deadline passed, counted without waiting for them (no lag or timeout sample).
    pub abandoned: u64,
    /// Completion − intended start: latency corrected for coordinated omission.
    pub corrected: Hist,
    /// Completion − actual send: what a closed-loop tool would report.
    pub uncorrected: Hist,
    /// Actual send − intended start: how late the request went out, whoever held it back.
    pub lag: Hist,
    /// Of the sent requests, those that waited for their connection (`ready_ns > intended_ns`):
    /// their `lag`, its own part and the wait. Kept for them alone, so that a request that
    /// never waited (the common case) costs no more to record than before the split;
    /// [`OpStats::own_lag`] and [`OpStats::connection_wait`] rebuild both parts over every
    /// sent request.
    pub waited_lag: Hist,
    pub waited_own_lag: Hist,
    pub waited_connection_wait: Hist,
    /// Completion − actual send of the timed-out requests: when each was given up, to be
    /// compared with the timeout (never a latency sample).
    pub timed_out: Hist,
    /// Of `ok`: invokes that started a new execution environment (cold starts).
    pub cold: u64,
    /// `corrected` of the ok cold-start invokes.
    pub corrected_cold: Hist,
    /// `corrected` of the ok invokes that reused a warm environment.
    pub corrected_warm: Hist,
    /// `uncorrected` of the ok cold-start invokes.
    pub uncorrected_cold: Hist,
    /// `uncorrected` of the ok invokes that reused a warm environment.
    pub uncorrected_warm: Hist,
    /// Of `ok`: invokes whose response was streamed.
    pub streamed: u64,
    /// First byte of the response − intended start, of the `streamed` ok invokes: time to first
    /// byte corrected as `corrected` is (`ttfb.len() == streamed`).
    pub ttfb: Hist,
    /// INIT duration of every cold start, whatever became of its invoke (a cold start whose
    /// invoke then failed still cost its INIT). Invokes the driver timed out or aborted
    /// returned no result, so their cold starts are not seen here.
    pub init: Hist,
    /// Sum of the billed durations of the invoke results that carried one, in milliseconds,
    /// whatever their outcome (a failed invoke is billed too).
    pub billed_ms_total: u64,
    /// Invoke results that carried a billed duration (the requests the cost model charges).
    pub billed_invokes: u64,
    /// Sum of billed duration × memory size over the results that carried both, in MB·ms:
    /// exact GB-seconds (`/ 1024 / 1000`) even across a merge of functions of different sizes.
    pub billed_mb_ms_total: u64,
    /// The function's memory size, from the results that carried it (the largest, if they
    /// differ, as in a merge of functions of different sizes).
    pub memory_mb: Option<u32>,
}

impl OpStats {
    /// Actual send − `ready_ns` of every sent request: the part of `lag` that is the
    /// generator's own (releasing the request, a connection task getting to it), as opposed to
    /// [`OpStats::connection_wait`]. Built on each call.
    pub fn own_lag(&self) -> Hist {
        if self.waited_lag.is_empty() {
            return self.lag.clone();
        }
        let mut h = self.lag.histogram().into_owned();
        h.subtract(&*self.waited_lag.histogram()).expect("every waited request's lag is also in `lag`");
        h.add(&*self.waited_own_lag.histogram()).expect("auto-resizing histograms merge");
        let mut own = Hist::new();
        own.add_histogram(&h);
        own
    }

    /// `ready_ns` − intended start of every sent request: the part of `lag` spent waiting for
    /// the connection to be free, with the target still answering its earlier requests (every
    /// connection busy; a slow or stalled target). `own_lag + connection_wait == lag` per
    /// request. Built on each call.
    pub fn connection_wait(&self) -> Hist {
        let mut h = self.waited_connection_wait.histogram().into_owned();
        let never_waited = self.lag.len().saturating_sub(self.waited_lag.len());
        if never_waited > 0 {
            h.record_n(0, never_waited).expect("zero is in range");
        }
        let mut wait = Hist::new();
        wait.add_histogram(&h);
        wait
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `sent == ok + errors + timeouts`.
    pub fn identity_holds(&self) -> bool {
        self.sent == self.ok + self.errors_total() + self.timeouts
    }

    /// `dispatched == sent + not_sent`.
    pub fn dispatched_accounted(&self) -> bool {
        self.dispatched == self.sent + self.not_sent
    }

    /// Bytes the histograms hold on the heap: nothing for those never recorded into.
    pub fn histogram_bytes(&self) -> usize {
        let waited = [&self.waited_lag, &self.waited_own_lag, &self.waited_connection_wait];
        self.histograms().iter().map(|(_, h)| h.heap_bytes()).sum::<usize>()
            + waited.iter().map(|h| h.heap_bytes()).sum::<usize>()
    }

    /// Every histogram of the histogram log with its measure name, in the log's order. The
    /// `waited_*` parts of the lag are not in the log: they describe a subset of the requests.
    pub fn histograms(&self) -> [(&'static str, &Hist); 9] {
        [
            ("corrected", &self.corrected),
            ("uncorrected", &self.uncorrected),
            ("lag", &self.lag),
            ("corrected_cold", &self.corrected_cold),
            ("corrected_warm", &self.corrected_warm),
            ("uncorrected_cold", &self.uncorrected_cold),
            ("uncorrected_warm", &self.uncorrected_warm),
            ("init", &self.init),
            (TTFB, &self.ttfb),
        ]
    }

    /// Adds one completion; `window_end_ns` ends the traffic window.
    pub fn record(&mut self, c: &Completion, window_end_ns: u64) {
        if c.outcome == Outcome::NotSent {
            self.not_sent += 1;
            return;
        }
        self.sent += 1;
        self.sent_in_window += u64::from(c.sent_ns <= window_end_ns);
        if matches!(c.outcome, Outcome::Ok { .. }) {
            self.ok_in_window += u64::from(c.done_ns <= window_end_ns);
        }
        let lag = c.sent_ns.saturating_sub(c.intended_ns);
        self.lag.record(lag);
        if c.ready_ns > c.intended_ns {
            let ready = c.ready_ns.min(c.intended_ns + lag);
            self.waited_lag.record(lag);
            self.waited_own_lag.record(c.sent_ns.saturating_sub(ready));
            self.waited_connection_wait.record(ready - c.intended_ns);
        }
        let start = c.invoke.and_then(|f| f.start);
        if let Some(f) = &c.invoke {
            self.record_invoke(f);
        }
        match c.outcome {
            Outcome::Ok { not_found } => {
                self.ok += 1;
                self.not_found += u64::from(not_found);
                let corrected = c.done_ns.saturating_sub(c.intended_ns);
                let uncorrected = c.done_ns.saturating_sub(c.sent_ns);
                self.corrected.record(corrected);
                self.uncorrected.record(uncorrected);
                match start {
                    Some(StartKind::Cold { .. }) => {
                        self.cold += 1;
                        self.corrected_cold.record(corrected);
                        self.uncorrected_cold.record(uncorrected);
                    }
                    Some(StartKind::Warm) => {
                        self.corrected_warm.record(corrected);
                        self.uncorrected_warm.record(uncorrected);
                    }
                    None => {}
                }
                if let Some(first_byte) = c.invoke.and_then(|f| f.first_byte_ns) {
                    self.streamed += 1;
                    self.ttfb.record(first_byte.saturating_sub(c.intended_ns));
                }
            }
            Outcome::Error(kind) => *self.errors.entry(kind).or_default() += 1,
            Outcome::Timeout => {
                self.timeouts += 1;
                self.timed_out.record(c.done_ns.saturating_sub(c.sent_ns));
            }
            Outcome::NotSent => unreachable!("handled above"),
        }
    }

    /// The cold-start and billing facts of one invoke result, whatever its outcome.
    fn record_invoke(&mut self, f: &InvokeFacts) {
        if let Some(StartKind::Cold { init }) = f.start {
            self.init.record(u64::try_from(init.as_nanos()).unwrap_or(u64::MAX));
        }
        if let Some(ms) = f.billed_ms {
            self.billed_ms_total = self.billed_ms_total.saturating_add(ms);
            self.billed_invokes += 1;
            if let Some(mb) = f.memory_mb {
                self.billed_mb_ms_total = self.billed_mb_ms_total.saturating_add(ms.saturating_mul(u64::from(mb)));
            }
        }
        if let Some(mb) = f.memory_mb {
            self.memory_mb = Some(self.memory_mb.map_or(mb, |m| m.max(mb)));
        }
    }

    /// Adds another's counts and histograms to this one (across tenants, operations or runs).
    pub fn merge(&mut self, other: &OpStats) {
        self.dispatched += other.dispatched;
        self.sent += other.sent;
        self.sent_in_window += other.sent_in_window;
        self.ok_in_window += other.ok_in_window;
        self.abandoned += other.abandoned;
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        self.timeouts += other.timeouts;
        self.not_found += other.not_found;
        self.not_sent += other.not_sent;
        for (dst, src) in [
            (&mut self.corrected, &other.corrected),
            (&mut self.uncorrected, &other.uncorrected),
            (&mut self.lag, &other.lag),
            (&mut self.waited_lag, &other.waited_lag),
            (&mut self.waited_own_lag, &other.waited_own_lag),
            (&mut self.waited_connection_wait, &other.waited_connection_wait),
            (&mut self.timed_out, &other.timed_out),
            (&mut self.corrected_cold, &other.corrected_cold),
            (&mut self.corrected_warm, &other.corrected_warm),
            (&mut self.uncorrected_cold, &other.uncorrected_cold),
            (&mut self.uncorrected_warm, &other.uncorrected_warm),
            (&mut self.init, &other.init),
            (&mut self.ttfb, &other.ttfb),
        ] {
            dst.add(src);
        }
        self.cold += other.cold;
        self.streamed += other.streamed;
        self.billed_ms_total = self.billed_ms_total.saturating_add(other.billed_ms_total);
        self.billed_invokes += other.billed_invokes;
        self.billed_mb_ms_total = self.billed_mb_ms_total.saturating_add(other.billed_mb_ms_total);
        self.memory_mb = match (self.memory_mb, other.memory_mb) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Run-wide counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Counted by the scheduler.
    pub dispatched: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub timeouts: u64,
    pub not_found: u64,
    pub not_sent: u64,
    pub sent_in_window: u64,
    pub ok_in_window: u64,
    pub abandoned: u64,
}

impl Totals {
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `sent == ok + errors + timeouts`.
    pub fn identity_holds(&self) -> bool {
        self.sent == self.ok + self.errors_total() + self.timeouts
    }

    /// `dispatched == sent + not_sent`.
    pub fn dispatched_accounted(&self) -> bool {
        self.dispatched == self.sent + self.not_sent
    }

    fn add(&mut self, s: &OpStats) {
        self.dispatched += s.dispatched;
        self.sent += s.sent;
        self.sent_in_window += s.sent_in_window;
        self.ok_in_window += s.ok_in_window;
        self.abandoned += s.abandoned;
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
    /// What went on the wire: `totals.sent_in_window / dispatch_window`, requests per
    /// second. Below `planned_rate` when requests waited in the generator (every connection
    /// busy) past the end of the window.
    pub achieved_rate: f64,
    /// Ok throughput: `totals.ok_in_window / dispatch_window`, requests per second.
    pub ok_rate: f64,
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
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
    /// End of the traffic window, nanoseconds from the start (see [`Recorder::set_window_end`]).
    window_end_ns: u64,
    /// The completions since the last [`Recorder::take_interval`], kept only when asked
    /// ([`Recorder::keep_intervals`]): what an agent streams.
    interval: Option<Vec<Option<Box<OpStats>>>>,
}

/// The slot of a (tenant, operation): `tenant × 3 + op`.
pub fn slot_index(tenant: u32, op: Op) -> usize {
    tenant as usize * 3 + op_index(op)
}

fn op_index(op: Op) -> usize {
    match op {
        Op::Put => 0,
        Op::Get => 1,
        Op::Compute => 2,
    }
}

impl Recorder {
    /// A recorder whose traffic window ends `window_end_ns` after the start (the run's
    /// duration; a cancelled run ends it sooner with [`Recorder::set_window_end`]).
    pub fn new(tenants: usize, window_end_ns: u64) -> Recorder {
        Recorder {
            slots: (0..tenants * 3).map(|_| None).collect(),
            recent_lag: new_histogram(),
            window_end_ns,
            interval: None,
        }
    }

    /// Also keeps each interval's completions apart, for [`Recorder::take_interval`].
    pub fn keep_intervals(&mut self) {
        self.interval = Some((0..self.slots.len()).map(|_| None).collect());
    }

    /// The completions recorded since the previous call, per slot index (only slots that saw
    /// one), and a fresh interval; empty unless [`Recorder::keep_intervals`] was called.
    /// Their `dispatched` is 0: an interval holds finished requests only, so within it
    /// `sent == ok + errors + timeouts` holds.
    pub fn take_interval(&mut self) -> Vec<(usize, OpStats)> {
        let Some(slots) = &mut self.interval else { return Vec::new() };
        slots.iter_mut().enumerate().filter_map(|(i, s)| s.take().map(|s| (i, *s))).collect()
    }

    /// Ends the traffic window earlier (a cancelled dispatch). Completions recorded before
    /// this call were judged against the previous end; the calling thread calls it within a
    /// few milliseconds of the dispatcher stopping, so at most those few are misjudged.
    pub fn set_window_end(&mut self, window_end_ns: u64) {
        self.window_end_ns = self.window_end_ns.min(window_end_ns);
    }

    /// Sets each slot's `dispatched` from the scheduler's own counts (indexed as
    /// [`slot_index`]), creating slots no completion reached.
    pub fn set_dispatched(&mut self, dispatched: &[u64]) {
        for (slot, &n) in self.slots.iter_mut().zip(dispatched) {
            if n > 0 || slot.is_some() {
                slot.get_or_insert_with(Box::default).dispatched = n;
            }
        }
    }

    /// Counts requests the recorder stopped waiting for: `sent[slot]` requests a task had
    /// taken off its queue and sent, per slot (from the driver's own counter), minus those
    /// recorded, become timeouts; what was dispatched but neither sent nor recorded as not
    /// sent becomes not sent. Call after [`Recorder::set_dispatched`].
    pub fn count_abandoned(&mut self, sent: &[u64]) {
        for (slot, &sent) in self.slots.iter_mut().zip(sent) {
            let Some(s) = slot else { continue };
            let in_flight = sent.saturating_sub(s.sent);
            let queued = s.dispatched.saturating_sub(sent.max(s.sent) + s.not_sent);
            s.sent += in_flight;
            s.timeouts += in_flight;
            s.not_sent += queued;
            s.abandoned += in_flight;
        }
    }

    /// Records one completion. Panics if the tenant index is out of range.
    #[inline]
    pub fn record(&mut self, c: &Completion) {
        let slot = &mut self.slots[slot_index(c.tenant, c.op)];
        slot.get_or_insert_with(Box::default).record(c, self.window_end_ns);
        if let Some(interval) = &mut self.interval {
            interval[slot_index(c.tenant, c.op)].get_or_insert_with(Box::default).record(c, self.window_end_ns);
        }
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
        Completion {
            tenant,
            op,
            intended_ns: intended,
            sent_ns: sent,
            ready_ns: intended,
            done_ns: done,
            outcome,
            invoke: None,
        }
    }

    fn invoked(
        mut c: Completion,
        start: Option<StartKind>,
        billed_ms: Option<u64>,
        memory_mb: Option<u32>,
    ) -> Completion {
        c.invoke = Some(InvokeFacts { start, billed_ms, memory_mb, first_byte_ns: None });
        c
    }

    const COLD: Option<StartKind> = Some(StartKind::Cold { init: Duration::from_millis(120) });
    const WARM: Option<StartKind> = Some(StartKind::Warm);

    #[test]
    fn recording_keeps_the_identity_and_separates_latency_from_failures() {
        let mut r = Recorder::new(2, u64::MAX);
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
        assert_eq!(g.timed_out.len(), 1, "the timeout is timed from its send, apart from latency");
        assert_eq!(g.timed_out.max(), g.timed_out.highest_equivalent(9_999_999 - 310));
        assert_eq!(g.corrected.max(), g.corrected.highest_equivalent(1_050));
        assert_eq!(g.uncorrected.max(), g.uncorrected.highest_equivalent(1_000));
        let b = &per[&("b".to_string(), Op::Put)];
        assert_eq!((b.sent, b.not_sent, b.lag.len()), (0, 1, 0));
        let t = totals_of(per.values());
        assert_eq!((t.sent, t.ok, t.timeouts, t.not_sent), (4, 2, 1, 1));
        assert_eq!(t.errors[&ErrorKind::Http5xx], 1);
        assert!(t.identity_holds());
    }

    /// Each request's lag is split at its `ready_ns`: the generator's own part after it, the
    /// wait for a busy connection before it; a `ready_ns` outside [intended, sent] is clamped.
    #[test]
    fn lag_splits_into_the_generators_own_and_the_wait_for_a_connection() {
        let ok = Outcome::Ok { not_found: false };
        let mut s = OpStats::default();
        let at = |intended, ready, sent| Completion { ready_ns: ready, ..c(0, Op::Get, intended, sent, sent + 50, ok) };
        s.record(&at(1_000, 1_000, 1_300), u64::MAX); // idle connection: all own
        s.record(&at(2_000, 2_700, 2_800), u64::MAX); // held 700, then 100 own
        s.record(&at(3_000, 3_900, 3_900), u64::MAX); // all wait
        s.record(&at(4_000, 9_000, 4_200), u64::MAX); // clamped to the send
        let exact = |h: &Hist| {
            let h = h.histogram();
            h.iter_recorded()
                .flat_map(|x| std::iter::repeat_n(x.value_iterated_to(), x.count_at_value() as usize))
                .collect::<Vec<u64>>()
        };
        assert_eq!(exact(&s.lag), [200, 300, 800, 900]);
        assert_eq!(exact(&s.own_lag()), [0, 0, 100, 300]);
        assert_eq!(exact(&s.connection_wait()), [0, 200, 700, 900]);
        assert_eq!(s.waited_lag.len(), 3, "kept apart only for the requests that waited");
        let mut m = s.clone();
        m.merge(&s);
        assert_eq!(exact(&m.own_lag()), [0, 0, 0, 0, 100, 100, 300, 300], "merged, still exact");
    }

    #[test]
    fn merging_adds_counts_and_histograms() {
        let mut a = OpStats::default();
        let mut b = OpStats::default();
        a.record(&c(0, Op::Put, 0, 10, 1_000, Outcome::Ok { not_found: false }), u64::MAX);
        b.record(&c(0, Op::Put, 0, 10, 3_600_000_000_000, Outcome::Ok { not_found: false }), u64::MAX);
        b.record(&c(0, Op::Put, 0, 10, 20, Outcome::Error(ErrorKind::Io)), u64::MAX);
        a.merge(&b);
        assert_eq!((a.sent, a.ok, a.errors[&ErrorKind::Io]), (3, 2, 1));
        assert_eq!(a.corrected.len(), 2);
        assert!(a.corrected.max() >= 3_600_000_000_000, "an hour is recorded, not clipped");
        assert!(a.identity_holds());
    }

    #[test]
    fn invokes_split_cold_from_warm_and_add_up_billing() {
        let ok = Outcome::Ok { not_found: false };
        let mut r = Recorder::new(1, u64::MAX);
        r.record(&invoked(c(0, Op::Get, 0, 10, 200_000_000, ok), COLD, Some(190), Some(512)));
        r.record(&invoked(c(0, Op::Get, 0, 10, 5_000_000, ok), WARM, Some(5), Some(512)));
        r.record(&invoked(c(0, Op::Get, 0, 10, 6_000_000, ok), WARM, Some(6), Some(512)));
        // A cold start whose invoke failed: its INIT is recorded, it is no latency sample.
        let e = Outcome::Error(ErrorKind::FunctionError);
        r.record(&invoked(c(0, Op::Get, 0, 10, 150_000_000, e), COLD, Some(140), Some(512)));
        // Throttled: no environment, nothing billed.
        r.record(&invoked(c(0, Op::Get, 0, 10, 20, Outcome::Error(ErrorKind::Throttled)), None, None, None));
        // Timed out by the driver: no result at all.
        r.record(&c(0, Op::Get, 0, 10, 2_000_000_000, Outcome::Timeout));
        let per = r.finish(&["a".into()]);
        let s = &per[&("a".to_string(), Op::Get)];
        assert!(s.identity_holds());
        assert_eq!((s.sent, s.ok, s.errors_total(), s.timeouts, s.cold), (6, 3, 2, 1, 1));
        assert_eq!((s.corrected_cold.len(), s.uncorrected_cold.len()), (1, 1));
        assert_eq!((s.corrected_warm.len(), s.uncorrected_warm.len()), (2, 2));
        assert_eq!(s.corrected.len(), s.corrected_cold.len() + s.corrected_warm.len());
        assert_eq!(s.init.len(), 2, "every cold start, whatever its outcome");
        assert_eq!(s.init.max(), s.init.highest_equivalent(120_000_000));
        assert_eq!(s.corrected_cold.min(), s.corrected_cold.lowest_equivalent(200_000_000));
        assert!(s.corrected_warm.max() < 7_000_000);
        assert_eq!((s.billed_ms_total, s.billed_invokes, s.memory_mb), (341, 4, Some(512)));
        assert_eq!(s.billed_mb_ms_total, 341 * 512);

        // Merging adds everything, and keeps the exact MB·ms across memory sizes.
        let mut other = OpStats::default();
        other.record(&invoked(c(0, Op::Get, 0, 10, 9_000_000, ok), COLD, Some(9), Some(1_024)), u64::MAX);
        let mut m = s.clone();
        m.merge(&other);
        assert!(m.identity_holds());
        assert_eq!((m.sent, m.ok, m.cold, m.init.len()), (7, 4, 2, 3));
        assert_eq!((m.corrected_cold.len(), m.uncorrected_cold.len(), m.corrected_warm.len()), (2, 2, 2));
        assert_eq!((m.billed_ms_total, m.billed_invokes, m.memory_mb), (350, 5, Some(1_024)));
        assert_eq!(m.billed_mb_ms_total, 341 * 512 + 9 * 1_024);
    }

    #[test]
    fn streamed_invokes_record_time_to_first_byte_from_the_intended_start() {
        let ok = Outcome::Ok { not_found: false };
        let streamed = |c: Completion, first_byte_ns| {
            let mut c = invoked(c, WARM, Some(300), Some(128));
            c.invoke.as_mut().unwrap().first_byte_ns = Some(first_byte_ns);
            c
        };
        let mut r = Recorder::new(1, u64::MAX);
        // Intended at 1 ms, sent at 3 ms (2 ms lag), first byte at 11 ms, last at 300 ms.
        r.record(&streamed(c(0, Op::Get, 1_000_000, 3_000_000, 300_000_000, ok), 11_000_000));
        // Buffered: no first byte of its own, no TTFB sample.
        r.record(&invoked(c(0, Op::Get, 0, 10, 5_000_000, ok), WARM, Some(5), Some(128)));
        // A streamed invoke that failed is no latency sample, so no TTFB sample either.
        let e = Outcome::Error(ErrorKind::FunctionError);
        r.record(&streamed(c(0, Op::Get, 0, 10, 4_000_000, e), 2_000_000));
        let s = &r.finish(&["a".into()])[&("a".to_string(), Op::Get)];
        assert_eq!((s.ok, s.streamed, s.ttfb.len()), (2, 1, 1));
        assert_eq!(s.ttfb.max(), s.ttfb.highest_equivalent(10_000_000), "from the intended start, lag included");
        assert!(s.ttfb.max() < s.corrected.max(), "the first byte comes before the last");
        assert!(s.histograms().iter().any(|(m, h)| *m == "ttfb" && h.len() == 1), "it goes to the histogram log");

        let mut m = s.clone();
        m.merge(s);
        assert_eq!((m.streamed, m.ttfb.len()), (2, 2));
    }

    #[test]
    fn http_completions_leave_the_function_fields_empty() {
        let mut s = OpStats::default();
        s.record(&c(0, Op::Put, 0, 10, 1_000, Outcome::Ok { not_found: false }), u64::MAX);
        assert_eq!((s.ok, s.cold, s.billed_invokes, s.billed_ms_total, s.memory_mb), (1, 0, 0, 0, None));
        assert_eq!(s.streamed, 0);
        for h in [&s.corrected_cold, &s.corrected_warm, &s.uncorrected_cold, &s.uncorrected_warm, &s.init, &s.ttfb] {
            assert!(h.is_empty());
        }
    }

    #[test]
    fn cells_allocate_only_the_histograms_they_record_into() {
        let untouched = OpStats::default();
        assert_eq!(untouched.histogram_bytes(), 0, "an untouched cell allocates nothing");
        let mut http = OpStats::default();
        for i in 0..40 {
            http.record(&c(0, Op::Get, i, i + 5, i + 2_000_000, Outcome::Ok { not_found: false }), u64::MAX);
        }
        let touched: Vec<&str> =
            http.histograms().into_iter().filter(|(_, h)| h.heap_bytes() > 0).map(|(m, _)| m).collect();
        assert_eq!(
            touched,
            ["corrected", "uncorrected", "lag"],
            "HTTP cells have no cold/warm split, and requests that never waited no split of their lag"
        );
        // 40 samples in three histograms: a few KiB, where three histograms of millisecond
        // values would take ~450 KB.
        assert!(http.histogram_bytes() < 4 * 1024, "{} B", http.histogram_bytes());
        let mut reference = new_histogram();
        (0..40).for_each(|_| reference.record(2_000_000 - 5).unwrap());
        assert_eq!(*http.uncorrected.histogram(), reference);
    }

    #[test]
    fn the_window_splits_sends_and_ok_completions() {
        let ok = Outcome::Ok { not_found: false };
        let mut r = Recorder::new(1, 1_000);
        r.record(&c(0, Op::Get, 0, 10, 900, ok)); // sent and done inside
        r.record(&c(0, Op::Get, 0, 990, 1_500, ok)); // sent inside, done after
        r.record(&c(0, Op::Get, 0, 1_200, 1_300, ok)); // backlog sent after the window
        r.record(&c(0, Op::Get, 0, 20, 800, Outcome::Error(ErrorKind::Io))); // no ok
        r.set_window_end(2_000); // later ends never widen it
        r.record(&c(0, Op::Get, 0, 1_100, 1_150, ok));
        let s = &r.finish(&["a".into()])[&("a".to_string(), Op::Get)];
        assert_eq!((s.sent, s.sent_in_window, s.ok, s.ok_in_window), (5, 3, 4, 1));
    }

    #[test]
    fn dispatched_is_the_schedulers_count_and_abandoned_requests_are_counted() {
        let ok = Outcome::Ok { not_found: false };
        let mut r = Recorder::new(2, u64::MAX);
        r.record(&c(0, Op::Get, 0, 10, 900, ok));
        r.record(&c(0, Op::Get, 0, 10, 10, Outcome::NotSent));
        // Tenant 0 get: 5 dispatched, 1 recorded sent, 1 not sent, 3 sent per the driver:
        // 2 in flight at the deadline, 1 still queued. Tenant 1 put: dispatched, never seen.
        let mut dispatched = vec![0; 6];
        dispatched[slot_index(0, Op::Get)] = 5;
        dispatched[slot_index(1, Op::Put)] = 1;
        r.set_dispatched(&dispatched);
        let lossy = r.finish(&["a".into(), "b".into()]);
        assert!(!lossy[&("a".to_string(), Op::Get)].dispatched_accounted(), "a lost completion shows");
        assert!(!lossy[&("b".to_string(), Op::Put)].dispatched_accounted());

        let mut r = Recorder::new(2, u64::MAX);
        r.record(&c(0, Op::Get, 0, 10, 900, ok));
        r.record(&c(0, Op::Get, 0, 10, 10, Outcome::NotSent));
        r.set_dispatched(&dispatched);
        let mut sent = vec![0; 6];
        sent[slot_index(0, Op::Get)] = 3;
        r.count_abandoned(&sent);
        let per = r.finish(&["a".into(), "b".into()]);
        let g = &per[&("a".to_string(), Op::Get)];
        assert_eq!((g.dispatched, g.sent, g.ok, g.timeouts, g.not_sent, g.abandoned), (5, 3, 1, 2, 2, 2));
        assert!(g.identity_holds() && g.dispatched_accounted());
        let p = &per[&("b".to_string(), Op::Put)];
        assert_eq!((p.dispatched, p.sent, p.not_sent, p.abandoned), (1, 0, 1, 0));
        assert!(p.identity_holds() && p.dispatched_accounted());
    }
}
