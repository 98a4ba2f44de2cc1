//! The run itself: a dispatcher thread, per-endpoint queues and pools of connection tasks
//! (HTTP, on a single-threaded runtime per core) or invoke tasks (functions, on a
//! multi-threaded runtime), and the recorder and progress loop on the calling thread.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use isobench_core::backend::{Endpoint, Invoke, InvokeOutcome, InvokeResult, PayloadContract, TenantTarget};
use isobench_core::workload_api::Op;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::time::timeout_at;

use crate::clock;
use crate::error::LoadError;
use crate::http::{self, Requests, is_error_document};
use crate::netns;
use crate::runtimes::Runtimes;
use crate::schedule::Schedule;
use crate::spec::{LoadSpec, TestHooks};
use crate::stats::{
    Completion, ErrorKind, InvokeFacts, LoadReport, Outcome, Recorder, Snapshot, new_histogram, slot_index, totals_of,
};
use crate::wakes::TaskWake;

/// How often the progress callback is called.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// After a cancellation, how long requests already in flight may still finish (at most the
/// timeout) before they are counted as [`ErrorKind::Aborted`].
pub const CANCEL_GRACE: Duration = Duration::from_millis(500);

/// How often the calling thread drains completions and checks for the end of the run: rare
/// enough that its wake-ups do not compete with the dispatcher and the connections for the
/// CPU, often enough that the channel stays short and the end of a run is seen promptly.
const RECORD_TICK: Duration = Duration::from_millis(5);

/// Slack after the last possible timeout before stragglers are aborted: tokio's timer fires
/// up to a millisecond late, and a busy machine adds more.
const TIMER_SLOP: Duration = Duration::from_millis(200);

/// How long after the abort the recorder still waits for tasks that have not ended (a task
/// stuck where the abort cannot reach it, e.g. a backend's invoke blocking its thread). Past
/// it, their requests are counted (as timeouts if sent, not sent otherwise) and the run ends.
pub const FINAL_GRACE: Duration = Duration::from_secs(2);

/// A request released by the dispatcher.
#[derive(Debug, Clone, Copy)]
struct Job {
    intended_ns: u64,
    tenant: u32,
    op: Op,
    key: u32,
}

/// When a request went out, and when it could have (see [`Completion::ready_ns`]).
#[derive(Debug, Clone, Copy)]
struct Sent {
    at_ns: u64,
    ready_ns: u64,
}

impl Sent {
    /// For a request that never went out.
    fn not(at_ns: u64) -> Sent {
        Sent { at_ns, ready_ns: at_ns }
    }
}

/// A connection's (or an invoke slot's) timeline had the generator sent every request the
/// moment it could: what [`Completion::ready_ns`] is computed from. It reuses how long each
/// request took at the target, so it tells a target holding the connection from the generator
/// getting to it late.
#[derive(Debug, Default)]
struct IdealTimeline {
    /// When the connection would have been free again.
    free_ns: u64,
}

impl IdealTimeline {
    /// The send of `job`, taken off the queue at `sent_ns`.
    fn send(&self, job: &Job, sent_ns: u64) -> Sent {
        Sent { at_ns: sent_ns, ready_ns: job.intended_ns.max(self.free_ns).min(sent_ns) }
    }

    /// The request sent as `sent` was answered (or given up) at `answered_ns`.
    fn answered(&mut self, sent: Sent, answered_ns: u64) {
        self.free_ns = sent.ready_ns + answered_ns.saturating_sub(sent.at_ns);
    }
}

/// Live counters for progress snapshots (the report is built from completions instead).
#[derive(Default)]
struct Counters {
    dispatched: AtomicU64,
    sent: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    not_sent: AtomicU64,
}

struct TenantReq {
    id: String,
}

/// What every connection task shares.
struct Shared {
    start: Instant,
    /// `start` on `CLOCK_REALTIME` (the clock of the kernel's receive timestamps), in
    /// nanoseconds since the Unix epoch.
    start_unix_ns: u64,
    timeout: Duration,
    compute_us: u64,
    put_body: Bytes,
    tenants: Vec<TenantReq>,
    /// Every (tenant, operation)'s HTTP request head, encoded once.
    requests: Requests,
    counters: Counters,
    /// Completions not yet recorded: the calling thread takes them all at once every
    /// [`RECORD_TICK`], so a completion costs an uncontended lock and a push, not a channel
    /// message.
    completions: Mutex<Vec<Completion>>,
    /// Set when requests taken off a queue must no longer be sent (they become `NotSent`).
    stop_sending: AtomicBool,
    /// Set to `true` to abandon requests still in flight (they become `Aborted`).
    abort: watch::Sender<bool>,
    connections_opened: AtomicU64,
    /// Connection tasks still running, across endpoints.
    live_tasks: AtomicUsize,
    /// Whether sockets must be created inside the target network namespace.
    netns_required: bool,
    /// Set if a runtime thread failed to join the namespace.
    netns_failure: Arc<OnceLock<nix::Error>>,
    /// Requests taken off a queue and sent, per [`slot_index`]: what the recorder counts when
    /// it stops waiting for stuck tasks.
    sent_by_slot: Vec<AtomicU64>,
    hooks: TestHooks,
    /// Set once the first completion was dropped ([`TestHooks::drop_completion`]).
    dropped: AtomicBool,
    /// Set once the hook's panic happened ([`TestHooks::panic_on_request`]): it panics once.
    panicked: AtomicBool,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.ns_at(Instant::now())
    }

    fn ns_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// When the kernel's `received_unix_ns` (`CLOCK_REALTIME`) falls, on this run's clock.
    fn ns_at_unix(&self, received_unix_ns: u64) -> u64 {
        received_unix_ns.saturating_sub(self.start_unix_ns)
    }

    fn complete(&self, job: &Job, sent: Sent, done_ns: u64, outcome: Outcome, invoke: Option<InvokeFacts>) {
        let counter = match outcome {
            Outcome::Ok { .. } => &self.counters.ok,
            Outcome::Error(_) => &self.counters.errors,
            Outcome::Timeout => &self.counters.timeouts,
            Outcome::NotSent => &self.counters.not_sent,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if self.hooks.drop_completion && !self.dropped.swap(true, Ordering::Relaxed) {
            return;
        }
        let c = Completion {
            tenant: job.tenant,
            op: job.op,
            intended_ns: job.intended_ns,
            sent_ns: sent.at_ns,
            ready_ns: sent.ready_ns,
            done_ns,
            outcome,
            invoke,
        };
        // A poisoned lock only means a task panicked while pushing; the vector is intact.
        self.completions.lock().unwrap_or_else(|e| e.into_inner()).push(c);
    }

    /// Takes every completion waiting, leaving `spare`'s (empty) buffer in its place.
    fn take_completions(&self, spare: &mut Vec<Completion>) {
        spare.clear();
        std::mem::swap(&mut *self.completions.lock().unwrap_or_else(|e| e.into_inner()), spare);
    }

    /// The workload's Lambda event for `job` (tenant-app README, "Event"): `tenant` and `op`,
    /// then `key` and a `record_size` `body` for a put, `key` for a get, `us` for a compute.
    /// The one allocation per invoke: `Invoke::invoke` takes the payload by value.
    fn event(&self, job: &Job) -> Vec<u8> {
        let tenant = &self.tenants[job.tenant as usize].id;
        let body: &[u8] = if job.op == Op::Put { &self.put_body } else { &[] };
        let mut e = Vec::with_capacity(EVENT_OVERHEAD + tenant.len() + body.len());
        // Tenant ids are URL-unreserved characters (`LoadSpec::validate`), keys and `us` are
        // numbers and the body is `x`s: nothing needs escaping. Writing to a Vec cannot fail.
        let _ = write!(e, r#"{{"tenant":"{tenant}","op":"{}""#, job.op.as_str());
        let _ = match job.op {
            Op::Put | Op::Get => write!(e, r#","key":"{}""#, job.key),
            Op::Compute => write!(e, r#","us":{}"#, self.compute_us),
        };
        if job.op == Op::Put {
            e.extend_from_slice(br#","body":""#);
            e.extend_from_slice(body);
            e.push(b'"');
        }
        e.push(b'}');
        e
    }
}

/// Bytes of an event besides the tenant id and the put body (at most ~55 with a 20-digit `us`).
const EVENT_OVERHEAD: usize = 64;

fn unix_now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Sets the flag if dropped while the thread is panicking.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Where a pool's tasks send their requests.
enum Target {
    /// An HTTP/1.1 server: each task owns one keep-alive connection to it.
    Http { addr: SocketAddr },
    /// A function: each task carries one invoke at a time, so the pool's size caps the
    /// invokes in flight.
    Function(Arc<dyn Invoke>),
}

impl Target {
    /// Tenants with the same target share its queue and pool: the same address, or the same
    /// function object.
    fn same(&self, endpoint: &Endpoint) -> bool {
        match (self, endpoint) {
            (Target::Http { addr, .. }, Endpoint::Http(a)) => addr == a,
            (Target::Function(f), Endpoint::Function(g)) => Arc::ptr_eq(f, g),
            _ => false,
        }
    }
}

/// One endpoint's queue and pool bookkeeping.
struct Pool {
    target: Target,
    queue: async_channel::Receiver<Job>,
    /// Tasks waiting on the queue.
    idle: AtomicUsize,
    /// Tasks started (they live until the queue closes).
    tasks: AtomicUsize,
    max: usize,
}

/// Runs one load: dispatches `spec`'s schedule to `targets` for `spec.duration` and returns
/// what was measured.
///
/// Targets may be HTTP servers or functions ([`Endpoint::Function`]), in any mix. Synchronous:
/// it builds its own tokio runtimes (one per core for connections, one for function invokes).
/// When `netns` is given every socket is opened from inside that network namespace (the
/// runtimes' threads join it as they start), so targets may live on a network only reachable from there. `cancel`
/// stops dispatching promptly; `progress` is called from the calling thread about every
/// [`PROGRESS_INTERVAL`], and once more at the end.
///
/// Errors are reserved for a run that cannot happen (invalid spec, missing target, namespace
/// or runtime failure); failed requests are counted in the report.
pub fn run(
    spec: &LoadSpec,
    targets: &[TenantTarget],
    netns: Option<&OwnedFd>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Snapshot),
) -> Result<LoadReport, LoadError> {
    run_inner(spec, targets, netns, cancel, progress, None)
}

/// The completions of one progress interval, per (tenant index, operation): what an agent
/// streams ([`crate::agent`]).
pub type IntervalCells = Vec<(u32, Op, crate::stats::OpStats)>;

/// Where [`run_with_intervals`] hands each interval.
type IntervalSink<'a> = &'a mut dyn FnMut(&Snapshot, IntervalCells);

/// [`run`], also handing `interval` the completions of each progress interval (with the
/// snapshot of its end) before the progress callback sees that snapshot, and those of the
/// last stretch once more at the end. Everything `interval` was given, summed, is every
/// completion the report records (not what [`FINAL_GRACE`] counts without a completion).
pub fn run_with_intervals(
    spec: &LoadSpec,
    targets: &[TenantTarget],
    netns: Option<&OwnedFd>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Snapshot),
    interval: &mut dyn FnMut(&Snapshot, IntervalCells),
) -> Result<LoadReport, LoadError> {
    run_inner(spec, targets, netns, cancel, progress, Some(interval))
}

fn take_cells(recorder: &mut Recorder) -> IntervalCells {
    recorder.take_interval().into_iter().map(|(i, s)| ((i / 3) as u32, Op::ALL[i % 3], s)).collect()
}

fn run_inner(
    spec: &LoadSpec,
    targets: &[TenantTarget],
    netns: Option<&OwnedFd>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Snapshot),
    mut interval: Option<IntervalSink<'_>>,
) -> Result<LoadReport, LoadError> {
    spec.validate()?;

    // Map tenants to endpoints; tenants sharing an endpoint (an address, or one function
    // object) share its queue and pool, and so its `max_connections`.
    let mut pool_targets: Vec<Target> = Vec::new();
    let mut tenant_pool = Vec::with_capacity(spec.tenants.len());
    let mut tenants = Vec::with_capacity(spec.tenants.len());
    for t in &spec.tenants {
        let target = targets
            .iter()
            .find(|x| x.tenant == t.id)
            .ok_or_else(|| LoadError::MissingTarget { tenant: t.id.clone() })?;
        let idx = pool_targets.iter().position(|p| p.same(&target.endpoint)).unwrap_or_else(|| {
            pool_targets.push(match &target.endpoint {
                Endpoint::Http(addr) => Target::Http { addr: *addr },
                Endpoint::Function(f) => Target::Function(Arc::clone(f)),
            });
            pool_targets.len() - 1
        });
        tenant_pool.push(idx);
        HeaderValue::from_str(&t.id)
            .map_err(|_| LoadError::InvalidSpec { field: "tenants", reason: format!("bad id `{}`", t.id) })?;
        tenants.push(TenantReq { id: t.id.clone() });
    }
    let hosts: Vec<String> = tenant_pool
        .iter()
        .map(|&i| match &pool_targets[i] {
            Target::Http { addr } => addr.to_string(),
            Target::Function(_) => String::new(),
        })
        .collect();
    let put_body = Bytes::from(vec![b'x'; spec.record_size]);
    let requests =
        Requests::new(tenants.iter().zip(&hosts).map(|(t, h)| (t.id.as_str(), h.as_str())), &put_body, spec.compute_us);

    // The namespace: checked once up front, then joined by every runtime thread.
    let netns = match netns {
        Some(fd) => {
            let fd = fd.try_clone().map_err(|source| LoadError::Setup { what: "duplicate the netns fd", source })?;
            netns::check(&fd).map_err(LoadError::Netns)?;
            Some(Arc::new(fd))
        }
        None => None,
    };

    let stamps = http::StampGuard::new();
    if stamps.is_none() {
        tracing::warn!(
            "the kernel does not stamp received packets; answers are timed when read, so the generator's own lag may read low"
        );
    }
    let netns_failure: Arc<OnceLock<nix::Error>> = Arc::default();
    let functions = pool_targets.iter().any(|t| matches!(t, Target::Function(_)));
    let runtimes = Runtimes::new(spec.worker_threads, spec.realtime, functions, netns.clone(), &netns_failure)?;

    let mut queues = Vec::with_capacity(pool_targets.len());
    let mut pools = Vec::with_capacity(pool_targets.len());
    for target in pool_targets {
        let (tx, rx) = async_channel::unbounded();
        queues.push(tx);
        pools.push(Arc::new(Pool {
            target,
            queue: rx,
            idle: AtomicUsize::new(0),
            tasks: AtomicUsize::new(0),
            max: spec.max_connections,
        }));
    }

    let schedule = Schedule::new(&spec.schedule_spec()).with_slice(spec.slice);
    let planned_total = schedule.expected_len();
    let (abort_tx, _) = watch::channel(false);
    // Time zero of the schedule: everything slow (runtime, buffers) is set up already.
    let start = Instant::now();
    let started_at_unix_ns = unix_now_ns();
    let shared = Arc::new(Shared {
        start,
        start_unix_ns: started_at_unix_ns,
        timeout: spec.timeout,
        compute_us: spec.compute_us,
        put_body,
        tenants,
        requests,
        counters: Counters::default(),
        completions: Mutex::new(Vec::with_capacity(4096)),
        stop_sending: AtomicBool::new(false),
        abort: abort_tx,
        connections_opened: AtomicU64::new(0),
        live_tasks: AtomicUsize::new(0),
        netns_required: netns.is_some(),
        netns_failure,
        sent_by_slot: (0..spec.tenants.len() * 3).map(|_| AtomicU64::new(0)).collect(),
        hooks: spec.hooks,
        dropped: AtomicBool::new(false),
        panicked: AtomicBool::new(false),
    });
    let window_ns = u64::try_from(spec.duration.as_nanos()).unwrap_or(u64::MAX);
    let mut recorder = Recorder::new(spec.tenants.len(), window_ns);
    if interval.is_some() {
        recorder.keep_intervals();
    }
    let mut batch = Vec::with_capacity(4096);
    let mut drain = |recorder: &mut Recorder| {
        shared.take_completions(&mut batch);
        batch.iter().for_each(|c| recorder.record(c));
    };
    let dispatcher_done = AtomicBool::new(false);
    let dispatch_end_ns = AtomicU64::new(0);
    let cancelled = AtomicBool::new(false);
    // Set if the calling thread unwinds (a panicking progress callback), so that the scope
    // does not wait for the dispatcher to reach the end of the duration.
    let abandoned = AtomicBool::new(false);

    let (release_lag, dispatched, stuck) = std::thread::scope(|scope| -> Result<_, LoadError> {
        let _abandon_on_unwind = SetOnDrop(&abandoned);
        let dispatcher = Dispatcher {
            shared: &shared,
            pools: &pools,
            queues,
            tenant_pool: &tenant_pool,
            runtimes: &runtimes,
            cancel,
            abandoned: &abandoned,
            duration: spec.duration,
            realtime: spec.realtime,
            cancelled: &cancelled,
            dispatch_end_ns: &dispatch_end_ns,
        };
        let dispatcher = std::thread::Builder::new()
            .name("isobench-dispatch".into())
            .spawn_scoped(scope, || {
                let release_lag = dispatcher.run(schedule);
                dispatcher_done.store(true, Ordering::Release);
                release_lag
            })
            .map_err(|source| LoadError::Setup { what: "start the dispatcher thread", source })?;

        // The recorder and progress loop, on the calling thread.
        let mut next_progress = start + PROGRESS_INTERVAL;
        let mut stop_sending_at: Option<Instant> = None;
        let mut abort_at: Option<Instant> = None;
        loop {
            drain(&mut recorder);
            let now = Instant::now();
            if cancel.load(Ordering::Relaxed) && !shared.stop_sending.load(Ordering::Relaxed) {
                // Nothing more goes on the wire; in-flight requests get a short grace.
                shared.stop_sending.store(true, Ordering::Release);
                let grace = CANCEL_GRACE.min(spec.timeout);
                abort_at = Some(abort_at.map_or(now + grace, |a| a.min(now + grace)));
            }
            let done = dispatcher_done.load(Ordering::Acquire);
            if done && stop_sending_at.is_none() {
                // The backlog may still be sent for one timeout; each request sent in that
                // window gets its full timeout, then stragglers are aborted.
                let end_ns = dispatch_end_ns.load(Ordering::Relaxed);
                recorder.set_window_end(end_ns);
                let end = start + Duration::from_nanos(end_ns);
                stop_sending_at = Some(end + spec.timeout);
                let hard = end + spec.timeout * 2 + TIMER_SLOP;
                abort_at = Some(abort_at.map_or(hard, |a| a.min(hard)));
            }
            if let Some(t) = stop_sending_at
                && now >= t
            {
                shared.stop_sending.store(true, Ordering::Release);
            }
            if let Some(t) = abort_at
                && now >= t
            {
                shared.abort.send_replace(true);
            }
            if now >= next_progress {
                let snap = snapshot(&shared, &pools, spec, planned_total, now - start, &mut recorder);
                if let Some(f) = interval.as_mut() {
                    f(&snap, take_cells(&mut recorder));
                }
                progress(&snap);
                next_progress += PROGRESS_INTERVAL;
                if next_progress < now {
                    next_progress = now + PROGRESS_INTERVAL;
                }
            }
            let live = shared.live_tasks.load(Ordering::Acquire);
            if done && live == 0 {
                break;
            }
            if done && abort_at.is_some_and(|a| now >= a + FINAL_GRACE) {
                tracing::error!(
                    live,
                    "{live} driver task(s) still running {FINAL_GRACE:?} after the abort; counting their requests without them"
                );
                break;
            }
            std::thread::sleep(RECORD_TICK);
        }
        let (release_lag, dispatched) = dispatcher.join().expect("the dispatcher thread panicked");
        Ok((release_lag, dispatched, shared.live_tasks.load(Ordering::Acquire) > 0))
    })?;

    // Unless some task is stuck, every one has finished, so every completion is in the channel.
    drain(&mut recorder);
    recorder.set_dispatched(&dispatched);
    if stuck {
        // Stop counting sends first: a stuck task that wakes up now finds sending stopped.
        shared.stop_sending.store(true, Ordering::Release);
        drain(&mut recorder);
        let sent: Vec<u64> = shared.sent_by_slot.iter().map(|n| n.load(Ordering::Acquire)).collect();
        recorder.count_abandoned(&sent);
    }
    let end = Instant::now();
    let snap = snapshot(&shared, &pools, spec, planned_total, end - start, &mut recorder);
    if let Some(f) = interval.as_mut() {
        f(&snap, take_cells(&mut recorder));
    }
    progress(&snap);
    runtimes.shutdown();
    drop(stamps);

    if let Some(e) = shared.netns_failure.get() {
        return Err(LoadError::Netns(*e));
    }

    let names: Vec<String> = spec.tenants.iter().map(|t| t.id.clone()).collect();
    let per = recorder.finish(&names);
    let totals = totals_of(per.values());
    // `dispatched == sent + not_sent` is checked by the caller (the runner fails the run
    // with the counts); checked here too, it would only turn a measured loss into a panic.
    let dispatch_window = Duration::from_nanos(dispatch_end_ns.load(Ordering::Relaxed));
    let per_second = |n: u64| if dispatch_window.is_zero() { 0.0 } else { n as f64 / dispatch_window.as_secs_f64() };
    Ok(LoadReport {
        label: spec.label.clone(),
        wall: end - start,
        started_at_unix_ns,
        dispatch_window,
        cancelled: cancelled.load(Ordering::Relaxed),
        planned_rate: spec.rate,
        per,
        achieved_rate: per_second(totals.sent_in_window),
        ok_rate: per_second(totals.ok_in_window),
        totals,
        connections_opened: shared.connections_opened.load(Ordering::Relaxed),
        release_lag,
    })
}

fn snapshot(
    shared: &Shared,
    pools: &[Arc<Pool>],
    spec: &LoadSpec,
    planned_total: u64,
    elapsed: Duration,
    recorder: &mut Recorder,
) -> Snapshot {
    let c = &shared.counters;
    // Read the finished counters before `sent`, so that `in_flight` never goes negative.
    let ok = c.ok.load(Ordering::Relaxed);
    let errors = c.errors.load(Ordering::Relaxed);
    let timeouts = c.timeouts.load(Ordering::Relaxed);
    let not_sent = c.not_sent.load(Ordering::Relaxed);
    let sent = c.sent.load(Ordering::Relaxed);
    Snapshot {
        elapsed,
        duration: spec.duration,
        planned_total,
        dispatched: c.dispatched.load(Ordering::Relaxed),
        sent,
        ok,
        errors,
        timeouts,
        not_sent,
        in_flight: sent.saturating_sub(ok + errors + timeouts),
        queued: pools.iter().map(|p| p.queue.len() as u64).sum(),
        lag_p99_recent: recorder.take_recent_lag_p99(),
    }
}

/// What the dispatcher thread works with.
struct Dispatcher<'a> {
    shared: &'a Arc<Shared>,
    pools: &'a [Arc<Pool>],
    queues: Vec<async_channel::Sender<Job>>,
    /// Pool index of each tenant.
    tenant_pool: &'a [usize],
    runtimes: &'a Runtimes,
    cancel: &'a AtomicBool,
    /// Set when `run` is unwinding: stop as for a cancellation.
    abandoned: &'a AtomicBool,
    duration: Duration,
    realtime: bool,
    /// Written when dispatching ends, read by the calling thread.
    cancelled: &'a AtomicBool,
    dispatch_end_ns: &'a AtomicU64,
}

impl Dispatcher<'_> {
    /// Releases each planned request at its intended time, then closes the queues. Returns
    /// the release lag of every request (release − intended start), and how many requests it
    /// released per [`slot_index`]: counted here, apart from the completions, so that a lost
    /// completion shows.
    fn run(self, mut schedule: Schedule) -> (Histogram<u64>, Vec<u64>) {
        let mut dispatched = vec![0u64; self.tenant_pool.len() * 3];
        if !clock::fine_timer_slack() {
            tracing::warn!("cannot set the dispatcher's timer slack; generator lag will be higher");
        }
        crate::wakes::defer_on_this_thread();
        if self.realtime
            && let Err(e) = crate::runtimes::realtime_priority()
        {
            tracing::warn!("cannot give the dispatcher a real-time priority ({e}); continuing without");
        }
        let mut release_lag = new_histogram();
        let start = self.shared.start;
        let stop = || self.cancel.load(Ordering::Relaxed) || self.abandoned.load(Ordering::Relaxed);
        let mut pacer = clock::Pacer::default();
        let mut next = schedule.next();
        let mut woke = start;
        while let Some(first) = next {
            // Wakes at most once per quantum: each sleep costs more CPU than releasing.
            if !pacer.wait_until((start + first.at).max(woke + clock::RELEASE_QUANTUM), stop) {
                break;
            }
            // Release everything already due in one batch.
            woke = Instant::now();
            let now = woke - start;
            let mut p = first;
            loop {
                let intended_ns = u64::try_from(p.at.as_nanos()).unwrap_or(u64::MAX);
                let job = Job { intended_ns, tenant: p.tenant, op: p.op, key: p.key };
                let pi = self.tenant_pool[p.tenant as usize];
                self.shared.counters.dispatched.fetch_add(1, Ordering::Relaxed);
                dispatched[slot_index(p.tenant, p.op)] += 1;
                // Unbounded: never full, and open until this thread closes it.
                let _ = self.queues[pi].try_send(job);
                self.grow_pool(&self.pools[pi]);
                let _ = release_lag.record(u64::try_from((now - p.at).as_nanos()).unwrap_or(u64::MAX));
                next = schedule.next();
                match next {
                    Some(n) if n.at <= now => p = n,
                    _ => break,
                }
            }
            self.runtimes.flush_wakes();
            if stop() {
                break;
            }
        }
        // The schedule ran out before the end of the duration (its last arrival falls before
        // it): the window is the whole duration, unless cancellation cuts it short.
        let end = if next.is_none() && pacer.wait_until(start + self.duration, stop) {
            self.duration
        } else {
            self.cancelled.store(true, Ordering::Relaxed);
            start.elapsed().min(self.duration)
        };
        self.dispatch_end_ns.store(u64::try_from(end.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        for q in &self.queues {
            // Connection tasks drain what is queued, then exit.
            q.close();
        }
        self.runtimes.flush_wakes();
        (release_lag, dispatched)
    }

    /// Starts another task (a connection task, or an invoke task for a function) for `pool`
    /// if more requests are waiting than tasks are idle and the pool may still grow.
    fn grow_pool(&self, pool: &Arc<Pool>) {
        if pool.queue.len() <= pool.idle.load(Ordering::Acquire) {
            return;
        }
        let started = pool.tasks.load(Ordering::Relaxed);
        if started >= pool.max {
            return;
        }
        pool.tasks.store(started + 1, Ordering::Relaxed); // only this thread starts tasks
        self.shared.live_tasks.fetch_add(1, Ordering::AcqRel);
        let (shared, pool) = (Arc::clone(self.shared), Arc::clone(pool));
        match &pool.target {
            Target::Http { .. } => {
                let (runtime, wakes) = self.runtimes.for_connection();
                runtime.spawn(connection_task(shared, pool, TaskWake::new(wakes)))
            }
            Target::Function(f) => self.runtimes.for_functions().spawn(invoke_task(shared, Arc::clone(f), pool)),
        };
    }
}

/// Waits for the pool's next request and marks it sent on `timeline`: (job, its send,
/// deadline). Requests taken after sending stopped end as not sent. `None` once the queue
/// closes.
async fn next_job(
    shared: &Shared,
    pool: &Pool,
    timeline: &IdealTimeline,
    wake: Option<&TaskWake>,
) -> Option<(Job, Sent, tokio::time::Instant)> {
    loop {
        pool.idle.fetch_add(1, Ordering::AcqRel);
        let job = match wake {
            Some(w) => w.wait(pool.queue.recv()).await,
            None => pool.queue.recv().await,
        };
        pool.idle.fetch_sub(1, Ordering::AcqRel);
        let job = job.ok()?;
        if shared.stop_sending.load(Ordering::Acquire) {
            let now = shared.now_ns();
            shared.complete(&job, Sent::not(now), now, Outcome::NotSent, None);
            continue;
        }
        let sent_ns = shared.now_ns();
        shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        shared.sent_by_slot[slot_index(job.tenant, job.op)].fetch_add(1, Ordering::Release);
        let deadline = tokio::time::Instant::from_std(shared.start + Duration::from_nanos(sent_ns) + shared.timeout);
        return Some((job, timeline.send(&job, sent_ns), deadline));
    }
}

/// Takes requests off the pool's queue one at a time, each over this task's connection
/// (opened on first use and reopened after a failure), until the queue closes.
async fn connection_task(shared: Arc<Shared>, pool: Arc<Pool>, wake: TaskWake) {
    let _live = LiveTask(&shared.live_tasks);
    let mut conn: Option<http::Conn> = None;
    let mut abort = shared.abort.subscribe();
    let mut timeline = IdealTimeline::default();
    let mut deadline: Option<Deadline> = None;
    while let Some((job, sent, at)) = next_job(&shared, &pool, &timeline, Some(&wake)).await {
        let deadline = match &mut deadline {
            Some(d) => d.move_to(at),
            None => deadline.insert(Deadline::new(at)),
        };
        let exchanged = {
            let exchange = std::pin::pin!(exchange(&shared, &pool, &mut conn, &job, deadline));
            tokio::select! {
                biased;
                x = CatchUnwind(exchange) => x.unwrap_or_else(|_| {
                    tracing::error!(tenant = %shared.tenants[job.tenant as usize].id, "an HTTP connection task panicked; counting the request as a panic");
                    Exchanged::failed(Outcome::Error(ErrorKind::Panic))
                }),
                _ = abort.wait_for(|a| *a) => Exchanged::failed(Outcome::Error(ErrorKind::Aborted)),
            }
        };
        if !exchanged.reusable {
            conn = None;
        }
        let done_ns = shared.now_ns();
        let answered_ns =
            exchanged.received_unix_ns.map_or(done_ns, |r| shared.ns_at_unix(r).clamp(sent.at_ns, done_ns));
        timeline.answered(sent, answered_ns);
        shared.complete(&job, sent, done_ns, exchanged.outcome, None);
    }
}

/// The current request's deadline on one timer a connection task keeps for all its requests.
///
/// Arming a tokio timer per request wakes the runtime's driver (an `eventfd` write) for most
/// of them. The timer instead keeps an earlier request's deadline, never later than the
/// current one (a connection's deadlines only grow), and is moved forward only when it fires
/// before the current deadline: about once per timeout, not once per request.
struct Deadline {
    timer: Pin<Box<tokio::time::Sleep>>,
    at: tokio::time::Instant,
}

impl Deadline {
    fn new(at: tokio::time::Instant) -> Deadline {
        Deadline { timer: Box::pin(tokio::time::sleep_until(at)), at }
    }

    /// The next request's deadline: not before the current one.
    fn move_to(&mut self, at: tokio::time::Instant) -> &mut Deadline {
        debug_assert!(at >= self.at, "a connection's deadlines only grow");
        self.at = self.at.max(at);
        self
    }

    /// Runs `fut` to its end, or `None` once the deadline passes first.
    async fn within<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Some(out),
                () = self.timer.as_mut() => {
                    if tokio::time::Instant::now() >= self.at {
                        return None;
                    }
                    self.timer.as_mut().reset(self.at);
                }
            }
        }
    }
}

/// How an exchange ended.
struct Exchanged {
    outcome: Outcome,
    /// Whether the connection may carry the next request.
    reusable: bool,
    /// When the kernel received the answer ([`http::Answer::received_unix_ns`]).
    received_unix_ns: Option<u64>,
}

impl Exchanged {
    fn failed(outcome: Outcome) -> Exchanged {
        Exchanged { outcome, reusable: false, received_unix_ns: None }
    }

    fn answered(outcome: Outcome, a: &http::Answer) -> Exchanged {
        Exchanged { outcome, reusable: a.reusable, received_unix_ns: a.received_unix_ns }
    }
}

/// Counts a task out of `live_tasks` when it ends, also by a panic: the recorder waits for
/// live tasks, and a task that is gone must not keep it waiting.
struct LiveTask<'a>(&'a AtomicUsize);

impl Drop for LiveTask<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Opens a connection, from inside the target network namespace when there is one.
async fn connect(shared: &Shared, addr: SocketAddr, deadline: &mut Deadline) -> Result<http::Conn, Outcome> {
    if shared.netns_required && !netns::entered() {
        // Never open a socket from the wrong namespace; `run` reports the failure.
        let _ = shared.netns_failure.set(nix::Error::EPERM);
        return Err(Outcome::Error(ErrorKind::Connect));
    }
    // The socket is created here, synchronously, on this (namespace-joined) thread.
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() };
    let socket = socket.map_err(|_| Outcome::Error(ErrorKind::Connect))?;
    let stream = match deadline.within(socket.connect(addr)).await {
        None => return Err(Outcome::Timeout),
        Some(Err(_)) => return Err(Outcome::Error(ErrorKind::Connect)),
        Some(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    shared.connections_opened.fetch_add(1, Ordering::Relaxed);
    Ok(http::Conn::new(stream))
}

/// Sends one request and reads its answer completely, by `deadline`.
async fn exchange(
    shared: &Shared,
    pool: &Pool,
    conn: &mut Option<http::Conn>,
    job: &Job,
    deadline: &mut Deadline,
) -> Exchanged {
    if shared.hooks.panic_on_request.is_some_and(|n| shared.counters.sent.load(Ordering::Relaxed) >= n)
        && !shared.panicked.swap(true, Ordering::Relaxed)
    {
        panic!("test hook: a panic in an HTTP exchange");
    }
    // A kept-alive connection the server closed while idle is replaced without charging the
    // request; a fresh connection's failure is the request's.
    if conn.as_mut().is_some_and(|c| c.closed_while_idle()) {
        *conn = None;
    }
    let c = match conn {
        Some(c) => c,
        None => {
            let Target::Http { addr } = pool.target else { unreachable!("connection tasks serve HTTP pools") };
            match connect(shared, addr, deadline).await {
                Ok(c) => conn.insert(c),
                Err(o) => return Exchanged::failed(o),
            }
        }
    };
    shared.requests.encode(job.tenant, job.op, job.key, c.request_buf());
    match deadline.within(c.exchange()).await {
        None => Exchanged::failed(Outcome::Timeout),
        Some(Err(http::Failure::Io)) => Exchanged::failed(Outcome::Error(ErrorKind::Io)),
        Some(Err(http::Failure::Protocol)) => Exchanged::failed(Outcome::Error(ErrorKind::Protocol)),
        Some(Ok(a)) if a.error_document => Exchanged::answered(Outcome::Error(ErrorKind::ErrorBody), &a),
        Some(Ok(a)) => match StatusCode::from_u16(a.status) {
            Ok(status) => Exchanged::answered(classify_status(status, job.op), &a),
            Err(_) => Exchanged::failed(Outcome::Error(ErrorKind::Protocol)),
        },
    }
}

/// Maps an HTTP status to an outcome. 404 on a GET is ok: in a random mix, reading a key
/// nobody has written yet is normal.
fn classify_status(status: StatusCode, op: Op) -> Outcome {
    if status.is_success() {
        Outcome::Ok { not_found: false }
    } else if status == StatusCode::NOT_FOUND && op == Op::Get {
        Outcome::Ok { not_found: true }
    } else if status.is_client_error() {
        Outcome::Error(ErrorKind::Http4xx)
    } else if status.is_server_error() {
        Outcome::Error(ErrorKind::Http5xx)
    } else {
        Outcome::Error(ErrorKind::Protocol)
    }
}

/// Takes requests off a function pool's queue one at a time and invokes the function for
/// each, until the queue closes. A pool has at most `max_connections` of these tasks, which
/// caps the invokes in flight to one function across the tenants that share it; requests
/// beyond the cap wait in the queue, and that wait is lag, as for a busy HTTP pool.
async fn invoke_task(shared: Arc<Shared>, function: Arc<dyn Invoke>, pool: Arc<Pool>) {
    let _live = LiveTask(&shared.live_tasks);
    let mut abort = shared.abort.subscribe();
    let contract = function.payload_contract();
    let mut timeline = IdealTimeline::default();
    while let Some((job, sent, deadline)) = next_job(&shared, &pool, &timeline, None).await {
        let tenant = &shared.tenants[job.tenant as usize].id;
        let event = shared.event(&job);
        // Past the deadline or on abort, the invoke's future is dropped: the invoke is
        // abandoned (what that means for its environment is the backend's business).
        let result = tokio::select! {
            biased;
            r = timeout_at(deadline, invoke_guarded(&*function, tenant, event)) => r.map_err(|_| Outcome::Timeout),
            _ = abort.wait_for(|a| *a) => Err(Outcome::Error(ErrorKind::Aborted)),
        };
        let mut done_ns = shared.now_ns();
        let (outcome, facts) = match result {
            Ok(Some(r)) => {
                if let Some(at) = r.responded_at {
                    done_ns = shared.ns_at(at).min(done_ns);
                }
                let first_byte_ns = r.first_byte_at.map(|at| shared.ns_at(at).min(done_ns));
                let facts =
                    InvokeFacts { start: r.start, billed_ms: r.billed_ms, memory_mb: r.memory_mb, first_byte_ns };
                (classify_invoke(&r.outcome, job.op, contract), Some(facts))
            }
            Ok(None) => {
                tracing::error!(tenant = %tenant, "the function endpoint's invoke panicked; counting the request as a panic");
                (Outcome::Error(ErrorKind::Panic), None)
            }
            Err(o) => (o, None),
        };
        timeline.answered(sent, done_ns);
        shared.complete(&job, sent, done_ns, outcome, facts);
    }
}

/// Invokes `function`; `None` if its implementation panicked, creating or polling the
/// invoke's future. That is another crate's code: a panic there must neither lose the
/// request from the accounting nor leave the run waiting for a task that is gone.
async fn invoke_guarded(function: &dyn Invoke, tenant: &str, event: Vec<u8>) -> Option<InvokeResult> {
    let invoke = std::panic::catch_unwind(AssertUnwindSafe(|| function.invoke(tenant, event))).ok()?;
    CatchUnwind(invoke).await.ok()
}

/// A future that turns a panic while it is polled into `Err`.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Maps an invoke's outcome to a request outcome. A returned payload is ok whatever it holds,
/// unless the endpoint runs the sample workload: then it is the workload's response document,
/// classified by its `status` as an HTTP answer is. Every other outcome is an error of its own
/// kind.
fn classify_invoke(outcome: &InvokeOutcome, op: Op, contract: PayloadContract) -> Outcome {
    match outcome {
        InvokeOutcome::Ok(payload) => match contract {
            PayloadContract::WorkloadStatus => classify_payload(payload, op),
            PayloadContract::Opaque => Outcome::Ok { not_found: false },
        },
        InvokeOutcome::FunctionError { .. } => Outcome::Error(ErrorKind::FunctionError),
        InvokeOutcome::InitError { .. } => Outcome::Error(ErrorKind::InitError),
        InvokeOutcome::Throttled => Outcome::Error(ErrorKind::Throttled),
        InvokeOutcome::Timeout => Outcome::Error(ErrorKind::FunctionTimeout),
        InvokeOutcome::Rejected { .. } => Outcome::Error(ErrorKind::Rejected),
    }
}

/// The part of the workload's Lambda response (`{"status": 200, "body": ..., ...}`) the
/// driver reads; the other fields are skipped unread.
#[derive(serde::Deserialize)]
struct FunctionAnswer {
    status: u16,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
}

/// Classifies a function's response payload by its `status`, as [`classify_status`] does an
/// HTTP answer: the invoke succeeding says nothing about the request (the workload answers its
/// errors as payloads). A payload without a valid status is a `protocol` error.
fn classify_payload(payload: &[u8], op: Op) -> Outcome {
    let Some(answer) = serde_json::from_slice::<FunctionAnswer>(payload).ok() else {
        return Outcome::Error(ErrorKind::Protocol);
    };
    match StatusCode::from_u16(answer.status) {
        Ok(status)
            if status.is_success()
                && answer.content_type.as_deref().is_some_and(|c| c.starts_with("application/json"))
                && answer.body.as_deref().is_some_and(|b| is_error_document(b.as_bytes())) =>
        {
            Outcome::Error(ErrorKind::ErrorBody)
        }
        Ok(status) => classify_status(status, op),
        Err(_) => Outcome::Error(ErrorKind::Protocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's ideal timeline: a target that holds the connection makes the next
    /// request wait (`ready` moves to when the target answered), a generator that gets to its
    /// requests late does not (each would have gone out on time, its answer as quick).
    #[test]
    fn the_ideal_timeline_tells_the_target_holding_from_the_generator_lagging() {
        let job = |intended_ns| Job { intended_ns, tenant: 0, op: Op::Get, key: 0 };
        // The target takes 5 ms per request; one arrives every 2 ms, each sent the moment the
        // answer before it arrives: all wait for the connection, none is the generator's.
        let mut t = IdealTimeline::default();
        let mut free = 0;
        for i in 0..4u64 {
            let sent = t.send(&job(i * 2_000_000), free.max(i * 2_000_000));
            assert_eq!(sent.ready_ns, sent.at_ns, "request {i}: no lag of the generator's own");
            free = sent.at_ns + 5_000_000;
            t.answered(sent, free);
        }
        // The target answers in 50 µs; the generator gets to each request 3 ms after the
        // answer before it (a stall after every answer): all of that is the generator's own.
        let mut t = IdealTimeline::default();
        let mut ready_late = Vec::new();
        let mut free = 0;
        for i in 0..4u64 {
            let sent = t.send(&job(i * 1_000_000), free.max(i * 1_000_000));
            ready_late.push(sent.ready_ns - i * 1_000_000);
            free = sent.at_ns + 50_000 + 3_000_000;
            t.answered(sent, sent.at_ns + 50_000);
        }
        assert_eq!(ready_late, [0, 0, 0, 0], "every request was ready on time");
    }

    #[test]
    fn payloads_are_classified_by_their_status() {
        let ok = Outcome::Ok { not_found: false };
        let cases: [(&[u8], Op, Outcome); 13] = [
            (
                br#"{"status":200,"body":"{\"error\":\"injected fault\"}","content_type":"application/json"}"#,
                Op::Get,
                Outcome::Error(ErrorKind::ErrorBody),
            ),
            (br#"{"status":200,"body":"{\"sha256\":\"ab\"}","content_type":"application/json"}"#, Op::Compute, ok),
            (br#"{"status":200,"body":"{\"error\":1}","content_type":"application/octet-stream"}"#, Op::Get, ok),
            (br#"{"status":200,"body":"x","content_type":"application/octet-stream"}"#, Op::Get, ok),
            (br#"{"status":201,"body":""}"#, Op::Put, ok),
            (br#"{"status":404,"body":"{}","kind":"not_found"}"#, Op::Get, Outcome::Ok { not_found: true }),
            (br#"{"status":404,"body":"{}","kind":"not_found"}"#, Op::Put, Outcome::Error(ErrorKind::Http4xx)),
            (br#"{"status":403,"body":"{}","kind":"wrong_tenant"}"#, Op::Get, Outcome::Error(ErrorKind::Http4xx)),
            (br#"{"status":500,"body":"{}","kind":"internal"}"#, Op::Compute, Outcome::Error(ErrorKind::Http5xx)),
            (br#"{"status":302,"body":""}"#, Op::Get, Outcome::Error(ErrorKind::Protocol)),
            (br#"{"body":"no status"}"#, Op::Get, Outcome::Error(ErrorKind::Protocol)),
            (b"not json", Op::Get, Outcome::Error(ErrorKind::Protocol)),
            (br#"{"status":70000}"#, Op::Get, Outcome::Error(ErrorKind::Protocol)),
        ];
        for (payload, op, want) in cases {
            assert_eq!(classify_payload(payload, op), want, "{}", String::from_utf8_lossy(payload));
        }
    }

    #[test]
    fn invoke_outcomes_map_to_their_kinds() {
        let cases = [
            (InvokeOutcome::FunctionError { error_type: "InjectedFault".into() }, ErrorKind::FunctionError),
            (InvokeOutcome::InitError { error_type: None }, ErrorKind::InitError),
            (InvokeOutcome::Throttled, ErrorKind::Throttled),
            (InvokeOutcome::Timeout, ErrorKind::FunctionTimeout),
            (InvokeOutcome::Rejected { error_type: "InvalidParameterValueException".into() }, ErrorKind::Rejected),
        ];
        for (outcome, kind) in cases {
            for contract in [PayloadContract::WorkloadStatus, PayloadContract::Opaque] {
                assert_eq!(
                    classify_invoke(&outcome, Op::Get, contract),
                    Outcome::Error(kind),
                    "{outcome:?} {contract:?}"
                );
            }
        }
    }

    /// A function of the user's own answers what it likes: any payload is ok under `Opaque`,
    /// and the same payloads are still read as the workload's document under `WorkloadStatus`.
    #[test]
    fn any_payload_is_ok_unless_the_endpoint_speaks_the_workload_document() {
        let ok = Outcome::Ok { not_found: false };
        let cases: [(&[u8], Outcome); 5] = [
            (b"not json", Outcome::Error(ErrorKind::Protocol)),
            (br#"{"anything":1}"#, Outcome::Error(ErrorKind::Protocol)),
            (b"", Outcome::Error(ErrorKind::Protocol)),
            (br#"{"status":500,"body":"{}"}"#, Outcome::Error(ErrorKind::Http5xx)),
            (br#"{"status":200,"body":""}"#, ok),
        ];
        for (payload, workload) in cases {
            let outcome = InvokeOutcome::Ok(payload.to_vec());
            let shown = String::from_utf8_lossy(payload);
            assert_eq!(classify_invoke(&outcome, Op::Get, PayloadContract::WorkloadStatus), workload, "{shown}");
            assert_eq!(classify_invoke(&outcome, Op::Get, PayloadContract::Opaque), ok, "{shown}");
        }
    }

    #[test]
    fn events_follow_the_workload_contract() {
        let shared = Shared {
            start: Instant::now(),
            start_unix_ns: 0,
            timeout: Duration::from_secs(1),
            compute_us: 250,
            put_body: Bytes::from(vec![b'x'; 5]),
            tenants: vec![TenantReq { id: "acme-1".into() }],
            requests: Requests::new([("acme-1", "")], b"xxxxx", 250),
            counters: Counters::default(),
            completions: Mutex::default(),
            stop_sending: AtomicBool::new(false),
            abort: watch::channel(false).0,
            connections_opened: AtomicU64::new(0),
            live_tasks: AtomicUsize::new(0),
            netns_required: false,
            netns_failure: Arc::default(),
            sent_by_slot: Vec::new(),
            hooks: TestHooks::default(),
            dropped: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        };
        let job = |op, key| Job { intended_ns: 0, tenant: 0, op, key };
        let cases = [
            (Op::Put, r#"{"tenant":"acme-1","op":"put","key":"7","body":"xxxxx"}"#),
            (Op::Get, r#"{"tenant":"acme-1","op":"get","key":"7"}"#),
            (Op::Compute, r#"{"tenant":"acme-1","op":"compute","us":250}"#),
        ];
        for (op, want) in cases {
            let e = shared.event(&job(op, 7));
            assert_eq!(std::str::from_utf8(&e).unwrap(), want);
            assert!(serde_json::from_slice::<serde_json::Value>(&e).is_ok());
            assert!(e.capacity() <= EVENT_OVERHEAD + 6 + 5, "sized once: {}", e.capacity());
        }
    }

    /// A request's deadline holds although the timer still has an earlier request's: it
    /// times out at its own deadline, not at the earlier one and not never.
    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_forward_times_out_at_the_new_one() {
        let t0 = tokio::time::Instant::now();
        let mut d = Deadline::new(t0 + Duration::from_secs(1));
        assert_eq!(d.within(async { 7 }).await, Some(7));
        d.move_to(t0 + Duration::from_secs(3));
        assert_eq!(d.within(std::future::pending::<()>()).await, None);
        assert_eq!(t0.elapsed(), Duration::from_secs(3), "timed out at the current deadline");
        // After firing, a later deadline is honoured too, and a quick answer still wins.
        d.move_to(t0 + Duration::from_secs(5));
        assert_eq!(d.within(tokio::time::sleep(Duration::from_secs(1))).await, Some(()));
        assert_eq!(d.within(std::future::pending::<()>()).await, None);
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }
}
