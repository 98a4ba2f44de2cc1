//! The open-loop traffic driver of isobench.
//!
//! # Why open loop
//! A closed-loop generator (N workers, each sending its next request when the previous one
//! answers) slows down exactly when the system under test does: a 200 ms stall delays the
//! requests that should have been sent during it, and they never appear in the latency
//! distribution. This is *coordinated omission*, and it hides precisely the noisy-neighbour
//! effects isobench exists to measure. Here every request has an *intended* start time drawn
//! in advance from its tenant's arrival process ([`schedule`]), and latency is measured from
//! that intended start, whatever the generator or the server did in between.
//!
//! # How a request travels
//! 1. [`Schedule`] lazily merges one seeded arrival process per tenant (constant with a
//!    per-tenant phase, or Poisson) into a single time-ordered stream; same seed, same
//!    requests.
//! 2. A dedicated **dispatcher thread** walks that stream and releases each request at its
//!    intended time, releasing everything already due in one batch. tokio's 1 ms timer is too
//!    coarse for this, so the thread sleeps with a 1 ns timer slack (`PR_SET_TIMERSLACK`),
//!    learns how late its sleeps return (~20 µs on a small VM) and wakes that much early,
//!    spinning at most the last 5 µs. It does not spin through short gaps: on a 2-core machine
//!    shared with the system under test a spinning generator would be a noisy neighbour
//!    itself. Optionally (`run.realtime`, [`LoadSpec::realtime`]) it and the connection
//!    threads run at the lowest real-time priority so that other work on their cores does
//!    not delay them.
//! 3. Released requests enter a per-endpoint queue. **Connection tasks** on one
//!    single-threaded tokio runtime per core take them off it, each owning one HTTP/1.1
//!    keep-alive connection (the crate's own client over a tokio `TcpStream`, see `http.rs`;
//!    no pooled client whose internal queueing would be invisible). The pool grows lazily up to `max_connections`; when every
//!    connection is busy a request waits in the queue, and that wait is measured as generator
//!    **lag** (its `connection_wait` part, see below) and included in the **corrected**
//!    latency, so queueing in the generator is never hidden. A connection that failed or timed out is dropped and reopened.
//!    Waking a task from another thread costs a syscall, so the wakes of one released batch
//!    reach each runtime as one cross-thread wake (`wakes.rs`), and each connection task keeps
//!    one timer for its requests' deadlines, moved only when it fires (`driver::Deadline`).
//!
//!    A **function** target ([`Endpoint::Function`](isobench_core::backend::Endpoint::Function), the
//!    Lambda tiers) is driven the same way with **invoke tasks** instead of connections:
//!    each takes a request off the function's queue, builds the workload's Lambda event
//!    (`{"tenant", "op", "key", "body", "us"}`, see the tenant-app README) and awaits
//!    [`Invoke::invoke`](isobench_core::backend::Invoke::invoke) with the tenant id, one
//!    invoke at a time. At most `max_connections` such tasks per function cap its invokes in
//!    flight; tenants whose targets are the same function object (`Arc::ptr_eq`) share its
//!    queue and cap, as tenants of one HTTP address share its pool. Past the timeout the
//!    invoke's future is dropped. The event buffer is the only allocation per invoke the
//!    driver makes (`invoke` takes it by value).
//! 4. Each finished request becomes one small [`Completion`] sent over a channel; the calling
//!    thread drains it every few milliseconds into per-(tenant, operation) HdrHistograms
//!    ([`Recorder`]), so recording is off the hot path, and calls the progress callback every
//!    [`PROGRESS_INTERVAL`] with a [`Snapshot`] of atomic counters.
//!
//! # What is measured
//! Per (tenant, operation), in nanoseconds: `corrected` (completion − intended start),
//! `uncorrected` (completion − actual send) and `lag` (actual send − intended start), where
//! the actual send is the moment a connection task takes the request off the queue (a
//! connect, when the connection has to be opened first, is part of the request). Only ok
//! requests are latency samples. Every sent request ends as exactly one of ok, error (by
//! [`ErrorKind`]) or timeout, so `sent == ok + errors + timeouts` holds per pair and in
//! total; requests that were due but never sent are counted apart as `not_sent`. The
//! dispatcher's own share of the lag is reported separately
//! ([`LoadReport::release_lag`]).
//!
//! The lag is split per request into `own_lag` and `connection_wait` (they sum to it). A
//! request can be late because the generator got to it late, or because every connection was
//! still carrying an earlier request the target had not answered. Each connection keeps the
//! timeline it would have had if the generator had sent every request the moment it could
//! (each taking as long at the target as it took; the answer's arrival is the kernel's
//! receive timestamp, `SO_TIMESTAMPNS`, not when the generator got to read it): the request's
//! `ready_ns` on that timeline divides the two. A stalled generator therefore shows as own
//! lag even though its connections then look busy, and a stalled target as connection wait.
//! The timeline reuses the service times measured, which a backlog of the generator's own
//! making lengthens at the target; that part reads as connection wait.
//!
//! A 2xx answer is ok; so is a 404 on a GET, counted also as `not_found`: in a random mix,
//! reading a key nobody has written yet is normal. Other 4xx and 5xx are errors, as is an
//! answer that is not HTTP/1.1 or a connection that breaks mid-request. A 2xx whose
//! `application/json` body is an error document (a top-level `error` field; HTTP 200 with an
//! error body) is an [`ErrorKind::ErrorBody`] error; only JSON success bodies are read for it.
//!
//! Timed-out requests are never latency samples; when each was given up (completion − actual
//! send) is kept apart in [`OpStats::timed_out`], to check that timeouts happen at the deadline.
//! [`BudgetWatch`] turns progress snapshots into the error-budget decision (`[run.error_budget]`).
//!
//! # Function targets
//! How a returned payload is read is the endpoint's [`PayloadContract`]. Under `Opaque` (any
//! function of the user's own) a successful invoke is ok, whatever its payload holds, JSON or
//! not. Under `WorkloadStatus` (the sample workload) it has only reached the workload: the
//! payload is its response document (`{"status": 200, "body": ...}`), and its `status` is
//! classified as an HTTP answer's is (so a 500 inside a successful invoke is an `http_5xx`
//! error, never a latency sample; a payload without a valid status is `protocol`). The other
//! outcomes, under either contract, are
//! errors of their own kinds: `function_error`, `init_error`, `throttled`, `function_timeout`
//! (the function's own timeout) and `rejected`; the driver's timeout passing first is a
//! timeout, as for HTTP. The actual send is the moment an invoke task takes the request off
//! the queue, so `lag`, `corrected` and `uncorrected` mean what they mean for HTTP.
//!
//! Each invoke result also says how it found its environment, and what it was billed.
//! [`OpStats`] therefore splits the ok requests' latency into cold starts and warm reuses
//! (`cold`, `corrected_cold`/`_warm`, `uncorrected_cold`/`_warm`), keeps the INIT duration of
//! every cold start whatever its outcome (`init`), and sums the billing facts for the cost
//! model (`billed_ms_total`, `billed_invokes`, `billed_mb_ms_total`, `memory_mb`). HTTP
//! targets have no cold/warm split: for them these fields stay empty.
//!
//! # End of a run
//! Dispatch stops at `duration`, or within a few milliseconds of `cancel` becoming true.
//! After a normal end, requests still queued (a lagging generator's backlog, part of the run)
//! are sent for up to one `timeout` more, and what is still queued after that is `not_sent`;
//! in-flight requests finish or time out. After a cancellation nothing more is sent (the
//! queue becomes `not_sent`; requests whose time had not come are not part of the run), and
//! requests still in flight after [`CANCEL_GRACE`] (or the timeout, if shorter) end as
//! [`ErrorKind::Aborted`]. A task stuck where the abort cannot reach it (a backend's invoke
//! blocking its thread) does not hold the run: [`FINAL_GRACE`] after the abort the recorder
//! stops waiting, and counts each request such a task had sent as a timeout
//! ([`OpStats::abandoned`]) and each it had not as not sent, from the driver's own per-(tenant,
//! operation) send counters. A connection task whose exchange panics counts the request as
//! [`ErrorKind::Panic`] and goes on.
//!
//! # Accounting and rates
//! The dispatcher counts what it releases per (tenant, operation) itself, apart from the
//! completions ([`OpStats::dispatched`]); `dispatched == sent + not_sent` is then a check that
//! can fail (a lost completion), which the runner makes in every run. `achieved_rate` is what
//! went on the wire inside the dispatch window (sends inside it, over it); the backlog sent
//! after the window does not count, so a saturated target shows a rate below the plan.
//! `ok_rate` is the ok requests completed inside the window, over it: the throughput served.
//!
//! # Network namespaces
//! Targets may live on a network only reachable from inside a network namespace. Given its
//! descriptor, every runtime thread joins it as it starts (`setns`), and each connection
//! checks that its thread did before creating a socket; the calling and dispatcher threads,
//! which open no sockets, stay where they are.
//!
//! [`PayloadContract`]: isobench_core::backend::PayloadContract

pub mod agent;
pub mod budget;
mod clock;
mod driver;
mod error;
pub mod hist;
mod http;
mod netns;
mod runtimes;
pub mod schedule;
mod spec;
pub mod stats;
mod wakes;

pub use budget::BudgetWatch;
pub use driver::{CANCEL_GRACE, FINAL_GRACE, IntervalCells, PROGRESS_INTERVAL, run, run_with_intervals};
pub use error::LoadError;
pub use hist::Hist;
pub use isobench_core::arrivals::Shape;
pub use isobench_core::scenario::{Arrival, MixSpec, TenantSpec};
pub use isobench_core::workload_api::Op;
pub use schedule::{Planned, Schedule, ScheduleSpec, Slice};
pub use spec::{DROP_COMPLETION_ENV, LoadSpec, TestHooks};
pub use stats::{Completion, ErrorKind, InvokeFacts, LoadReport, OpStats, Outcome, Recorder, Snapshot, Totals};
