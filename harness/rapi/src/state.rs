//! The per-environment state machine behind both sides of the server: the harness's `invoke` and
//! the runtime's HTTP calls meet here.
//!
//! All transitions happen under one `std::sync::Mutex` held for a few field moves (never across an
//! `.await`); the hand-off to the waiting side is a `oneshot` per invocation, and `/next` waiters
//! sleep on a `Notify`. The runtime-facing states follow RIE's `core/states.go`: `Started` until
//! the first `/next`, then `Ready`, with `InitError` and the response states checked on each call.
//! Extensions are a small list in the same state: each is parked (`ready`) or has an event to
//! take or process; the environment is parked (the freeze point) when the runtime and every
//! extension are.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use tokio::sync::{Notify, oneshot, watch};

use crate::protocol::{self, error_types, states};
use crate::{FunctionConfig, InvokeError, InvokeOutcome, ParkError, ShutdownReason, ShutdownReport, ids};

/// An invocation checked and with its headers built, ready to queue.
pub(crate) struct Prepared {
    pub request_id: String,
    pub invocation_id: String,
    pub payload: Bytes,
    pub deadline: Duration,
    pub request_id_hv: HeaderValue,
    pub invocation_id_hv: HeaderValue,
    pub trace_hv: HeaderValue,
    pub client_context_hv: Option<HeaderValue>,
    pub cognito_hv: Option<HeaderValue>,
    pub tenant_hv: Option<HeaderValue>,
}

/// When and how a result's body arrived.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Received {
    pub first_byte: Instant,
    pub at: Instant,
    pub streamed: bool,
}

/// How an invocation ended, as the runtime side reports it to the waiting `invoke`.
pub(crate) enum Completion {
    Response { payload: Bytes, received: Received },
    FunctionError { error_type: String, error_type_header: Option<String>, body: Bytes, received: Received },
    InitError { error_type: Option<String>, body: Bytes },
    Gone,
}

/// Init progress, published to `wait_init` callers.
#[derive(Clone, Debug)]
pub(crate) enum InitStatus {
    Pending,
    Done(Duration),
    Failed { error_type: Option<String>, body: Bytes },
    Gone,
    ShutDown,
}

/// Why an environment takes no more invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dead {
    TimedOut,
    ProcessExited,
    /// An extension posted `/extension/exit/error` after INIT.
    ExtensionExited,
    /// `shutdown_extensions` was called.
    ShuttingDown,
    /// The server stopped.
    ShutDown,
}

enum Phase {
    /// Process started, no `/next` yet (RIE `Started`); extensions may register.
    Started,
    /// `/init/error` (or an extension's init or exit error during INIT) was posted (RIE `InitError`).
    InitFailed {
        error_type: Option<String>,
        body: Bytes,
    },
    /// The runtime's first `/next` arrived (RIE `Ready` and the invocation states). INIT is done
    /// once every extension has called next too (`State::init_done`).
    Ready,
    Dead(Dead),
}

struct Queued {
    prepared: Prepared,
    handed_tx: oneshot::Sender<Instant>,
    done_tx: oneshot::Sender<Completion>,
}

/// The invocation last handed to the runtime. It stays after its result (with `done_tx` gone) so a
/// second result for it is told apart from an unknown id, as RIE does.
struct Current {
    request_id: String,
    invocation_id: String,
    done_tx: Option<oneshot::Sender<Completion>>,
}

/// A registered extension.
struct Extension {
    id: String,
    name: String,
    invoke: bool,
    shutdown: bool,
    /// Has called `/extension/event/next` at least once (RIE: no longer `Registered`).
    started: bool,
    /// Waits in next with nothing to deliver: parked.
    ready: bool,
    /// An event (JSON) for its next call.
    pending: Option<Bytes>,
    /// Posted an init or exit error.
    exited: bool,
}

impl Extension {
    fn state_name(&self) -> &'static str {
        match self {
            e if e.exited => states::EXT_EXITED,
            e if !e.started => states::EXT_REGISTERED,
            e if e.ready && e.pending.is_none() => states::EXT_READY,
            _ => states::EXT_RUNNING,
        }
    }
}

struct State {
    phase: Phase,
    queued: Option<Queued>,
    current: Option<Current>,
    /// The runtime and every extension have called next once (INIT over).
    init_done: bool,
    /// The runtime waits in `/next` with nothing to take.
    runtime_ready: bool,
    /// Everything is parked since then (the freeze point); reset at each hand-over.
    parked_at: Option<Instant>,
    extensions: Vec<Extension>,
}

impl State {
    fn extension(&mut self, id: &str) -> Result<&mut Extension, Reply> {
        self.extensions.iter_mut().find(|e| e.id == id).ok_or_else(|| {
            Reply::error(
                StatusCode::FORBIDDEN,
                error_types::EXTENSION_UNKNOWN_IDENTIFIER,
                format!("Unknown extension {id}"),
            )
        })
    }

    /// Take what is pending, for `Completion::Gone` or `InitError`.
    fn take_pending(&mut self) -> (Option<Queued>, Option<oneshot::Sender<Completion>>) {
        (self.queued.take(), self.current.take().and_then(|c| c.done_tx))
    }
}

/// The waiting side of a queued invocation.
pub(crate) struct Pending {
    pub invocation_id: String,
    pub deadline: Duration,
    pub handed_rx: oneshot::Receiver<Instant>,
    pub done_rx: oneshot::Receiver<Completion>,
}

pub(crate) enum Submit {
    Pending(Pending),
    Done(InvokeOutcome),
}

/// What a `/next` call gets now.
#[allow(clippy::large_enum_variant, reason = "built and moved once per invoke; boxing would add an allocation")]
pub(crate) enum NextStep {
    Deliver(Delivery),
    Reject(Reply),
    Wait,
}

/// What an `/extension/event/next` call gets now.
pub(crate) enum ExtStep {
    Deliver(Bytes),
    Reject(Reply),
    Wait,
}

/// The `/next` response for one invocation.
pub(crate) struct Delivery {
    pub payload: Bytes,
    pub deadline_ms: u128,
    pub request_id_hv: HeaderValue,
    pub invocation_id_hv: HeaderValue,
    pub trace_hv: HeaderValue,
    pub client_context_hv: Option<HeaderValue>,
    pub cognito_hv: Option<HeaderValue>,
    pub tenant_hv: Option<HeaderValue>,
}

/// A Runtime API answer decided under the lock: 202, or an `ErrorResponse`.
pub(crate) enum Reply {
    Accepted,
    Error { status: StatusCode, error_type: &'static str, message: String },
}

impl Reply {
    fn error(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Reply::Error { status, error_type, message: message.into() }
    }

    fn forbidden(error_type: &'static str, message: impl Into<String>) -> Self {
        Reply::error(StatusCode::FORBIDDEN, error_type, message)
    }
}

/// What the runtime posted for an invocation.
pub(crate) enum Posted {
    Response(Bytes),
    /// `/error`, or a streamed `/response` whose trailers name an error.
    Error {
        error_type_header: Option<String>,
        body: Bytes,
    },
    /// A `/response` (or `/error`) body over `limit`; `size` is its length when known.
    TooLarge {
        size: Option<u64>,
        limit: usize,
    },
}

fn unix_ms_after(d: Duration) -> u128 {
    (SystemTime::now() + d).duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

pub(crate) struct Shared {
    pub config: FunctionConfig,
    pub arn_hv: HeaderValue,
    /// Wakes the runtime's parked `/next`.
    pub next_wakeup: Notify,
    /// Wakes extensions' parked `/extension/event/next`.
    pub ext_wakeup: Notify,
    /// Wakes `wait_parked` and `shutdown_extensions`: something parked, or the environment died.
    pub park_wakeup: Notify,
    state: Mutex<State>,
    init_tx: watch::Sender<InitStatus>,
}

impl Shared {
    pub fn new(config: FunctionConfig, arn_hv: HeaderValue) -> Self {
        Shared {
            config,
            arn_hv,
            next_wakeup: Notify::new(),
            ext_wakeup: Notify::new(),
            park_wakeup: Notify::new(),
            state: Mutex::new(State {
                phase: Phase::Started,
                queued: None,
                current: None,
                init_done: false,
                runtime_ready: false,
                parked_at: None,
                extensions: Vec::new(),
            }),
            init_tx: watch::Sender::new(InitStatus::Pending),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn init_status(&self) -> watch::Receiver<InitStatus> {
        self.init_tx.subscribe()
    }

    fn wake_all(&self) {
        self.next_wakeup.notify_waiters();
        self.ext_wakeup.notify_waiters();
        self.park_wakeup.notify_waiters();
    }

    /// The runtime or an extension just started waiting at `now`: if everything waits, INIT ends
    /// (the first time) and the environment is parked. Returns whether it is parked.
    fn settle(&self, st: &mut State, now: Instant) -> bool {
        if !st.runtime_ready || !st.extensions.iter().all(|e| e.ready) || !matches!(st.phase, Phase::Ready) {
            return false;
        }
        if !st.init_done {
            st.init_done = true;
            let init = now.saturating_duration_since(self.config.start_instant);
            self.init_tx.send_replace(InitStatus::Done(init));
        }
        if st.parked_at.is_none() {
            st.parked_at = Some(now);
            self.park_wakeup.notify_waiters();
        }
        true
    }

    /// Queue an invocation for the next `/next`, unless the environment cannot take it.
    pub fn submit(&self, prepared: Prepared) -> Result<Submit, InvokeError> {
        let mut st = self.lock();
        match &st.phase {
            Phase::InitFailed { error_type, body } => {
                return Ok(Submit::Done(InvokeOutcome::InitError {
                    error_type: error_type.clone(),
                    body: body.clone(),
                }));
            }
            Phase::Dead(Dead::ShutDown) => return Err(InvokeError::ShutDown),
            Phase::Dead(_) => return Ok(Submit::Done(InvokeOutcome::EnvironmentGone { handed_over: None })),
            Phase::Started | Phase::Ready => {}
        }
        if let Some(q) = &st.queued {
            return Err(InvokeError::Busy { in_flight: q.prepared.request_id.clone() });
        }
        if let Some(c) = st.current.as_ref().filter(|c| c.done_tx.is_some()) {
            return Err(InvokeError::Busy { in_flight: c.request_id.clone() });
        }
        let (handed_tx, handed_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let pending =
            Pending { invocation_id: prepared.invocation_id.clone(), deadline: prepared.deadline, handed_rx, done_rx };
        st.queued = Some(Queued { prepared, handed_tx, done_tx });
        let parked = st.parked_at.is_some();
        drop(st);
        // Not parked yet (post-response work, or INIT): the park wakes `/next` instead.
        if parked {
            self.next_wakeup.notify_waiters();
        }
        Ok(Submit::Pending(pending))
    }

    /// One look at the state on behalf of a `/next` call. The first call closes extension
    /// registration; INIT ends when the extensions have called next too. An invocation is handed
    /// over only when everything is parked.
    pub fn poll_next(&self) -> NextStep {
        let mut st = self.lock();
        match &st.phase {
            Phase::InitFailed { .. } => {
                return NextStep::Reject(Reply::forbidden(
                    error_types::INVALID_STATE_TRANSITION,
                    protocol::transition_message(states::INIT_ERROR, states::READY),
                ));
            }
            Phase::Dead(_) => return NextStep::Wait,
            Phase::Started => st.phase = Phase::Ready,
            Phase::Ready => {}
        }
        if st.current.as_ref().is_some_and(|c| c.done_tx.is_some()) {
            // Lambda answers a second `/next` for an unanswered invocation with 403 (seen by
            // runtimes that retry `/next`: Nike-Inc/hal#54); RIE's state machine allows only
            // `Ready` -> `InvocationResponse`/`InvocationErrorResponse` from here.
            return NextStep::Reject(Reply::forbidden(
                error_types::INVALID_STATE_TRANSITION,
                protocol::transition_message(states::RUNNING, states::READY),
            ));
        }
        let now = Instant::now();
        if !st.runtime_ready {
            st.runtime_ready = true;
            self.settle(&mut st, now);
        }
        if st.parked_at.is_none() {
            return NextStep::Wait;
        }
        let Some(q) = st.queued.take() else { return NextStep::Wait };
        if q.handed_tx.send(now).is_err() {
            // The invoke was withdrawn between queueing and now; nothing to deliver.
            return NextStep::Wait;
        }
        st.runtime_ready = false;
        st.parked_at = None;
        let deadline_ms = unix_ms_after(q.prepared.deadline);
        let p = q.prepared;
        if st.extensions.iter().any(|e| e.invoke) {
            let trace = p.trace_hv.to_str().unwrap_or_default();
            let event =
                Bytes::from(protocol::invoke_event(deadline_ms, &p.request_id, &self.config.function_arn, trace));
            for e in st.extensions.iter_mut().filter(|e| e.invoke) {
                e.pending = Some(event.clone());
                e.ready = false;
            }
            self.ext_wakeup.notify_waiters();
        }
        st.current =
            Some(Current { request_id: p.request_id, invocation_id: p.invocation_id, done_tx: Some(q.done_tx) });
        NextStep::Deliver(Delivery {
            payload: p.payload,
            deadline_ms,
            request_id_hv: p.request_id_hv,
            invocation_id_hv: p.invocation_id_hv,
            trace_hv: p.trace_hv,
            client_context_hv: p.client_context_hv,
            cognito_hv: p.cognito_hv,
            tenant_hv: p.tenant_hv,
        })
    }

    /// A result for `request_id` arrived (`/response` or `/error`), its body as `received`.
    ///
    /// Checks run in RIE's order: the request id (400), then the echoed invocation id (410, a
    /// newer check RIE does not have), then the state (403), then the size (413).
    pub fn complete(
        &self,
        request_id: &str,
        invocation_id: Option<&HeaderValue>,
        posted: Posted,
        received: Received,
    ) -> Reply {
        let is_error = matches!(posted, Posted::Error { .. });
        let mut st = self.lock();
        let Some(cur) = st.current.as_mut().filter(|c| c.request_id == request_id) else {
            return Reply::error(StatusCode::BAD_REQUEST, error_types::INVALID_REQUEST_ID, "Invalid request ID");
        };
        if invocation_id.is_some_and(|v| v.as_bytes() != cur.invocation_id.as_bytes()) {
            return Reply::error(
                StatusCode::GONE,
                error_types::INVOKE_TIMEOUT,
                "Invocation id does not match the current invocation: it timed out or the response is stale",
            );
        }
        let Some(done_tx) = cur.done_tx.take() else {
            let to = if is_error { states::INVOCATION_ERROR_RESPONSE } else { states::INVOCATION_RESPONSE };
            return Reply::forbidden(
                error_types::INVALID_STATE_TRANSITION,
                protocol::transition_message(states::RESPONSE_SENT, to),
            );
        };
        drop(st);
        let (completion, reply) = match posted {
            Posted::Response(payload) => (Completion::Response { payload, received }, Reply::Accepted),
            Posted::Error { error_type_header, body } => {
                let error_type = protocol::body_error_type(&body)
                    .or_else(|| error_type_header.clone())
                    .unwrap_or_else(|| error_types::UNHANDLED.to_owned());
                (Completion::FunctionError { error_type, error_type_header, body, received }, Reply::Accepted)
            }
            Posted::TooLarge { size, limit: max } => {
                // RIE: the invoke fails with `Function.ResponseSizeTooLarge` and the runtime gets
                // 413 `RequestEntityTooLarge`.
                let message = match size {
                    Some(n) => {
                        format!(
                            "Response payload size ({n} bytes) exceeded maximum allowed payload size ({max} bytes)."
                        )
                    }
                    None => format!("Response payload size exceeded maximum allowed payload size ({max} bytes)."),
                };
                let body = protocol::error_body(error_types::RESPONSE_SIZE_TOO_LARGE, &message);
                let completion = Completion::FunctionError {
                    error_type: error_types::RESPONSE_SIZE_TOO_LARGE.to_owned(),
                    error_type_header: None,
                    body: Bytes::from(body),
                    received,
                };
                let reply = Reply::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    error_types::REQUEST_ENTITY_TOO_LARGE,
                    format!("Exceeded maximum allowed payload size ({max} bytes)."),
                );
                (completion, reply)
            }
        };
        // The receiver is gone only if the invoke was cancelled after this check; nothing to do.
        let _ = done_tx.send(completion);
        reply
    }

    /// `/init/error`: allowed only before the first `/next` (RIE `Started` -> `InitError`).
    pub fn init_error(&self, error_type: Option<String>, body: Bytes) -> Reply {
        let st = self.lock();
        let from = match &st.phase {
            Phase::Started => None,
            Phase::InitFailed { .. } => Some(states::INIT_ERROR),
            Phase::Ready | Phase::Dead(_) => Some(states::READY),
        };
        if let Some(from) = from {
            return Reply::forbidden(
                error_types::INVALID_STATE_TRANSITION,
                protocol::transition_message(from, states::INIT_ERROR),
            );
        }
        self.fail_init(st, error_type, body);
        Reply::Accepted
    }

    /// INIT failed: every pending and later invoke gets the init error.
    fn fail_init(&self, mut st: MutexGuard<'_, State>, error_type: Option<String>, body: Bytes) {
        st.phase = Phase::InitFailed { error_type: error_type.clone(), body: body.clone() };
        let queued = st.queued.take();
        drop(st);
        self.init_tx.send_replace(InitStatus::Failed { error_type: error_type.clone(), body: body.clone() });
        if let Some(q) = queued {
            let _ = q.done_tx.send(Completion::InitError { error_type, body });
        }
        self.wake_all();
    }

    /// `/extension/register`, its name and body already checked (RIE checks those first).
    /// Returns the new identifier and the answer's body.
    pub fn register_extension(
        &self,
        name: &str,
        invoke: bool,
        shutdown: bool,
        with_account: bool,
    ) -> Result<(String, Vec<u8>), Reply> {
        let mut st = self.lock();
        if !matches!(st.phase, Phase::Started) {
            // RIE: `ErrRegistrationServiceOff` once the runtime asked for work.
            return Err(Reply::forbidden(
                error_types::EXTENSION_REGISTRATION_CLOSED,
                "Extension registration closed already",
            ));
        }
        if st.extensions.iter().any(|e| e.name == name) {
            return Err(Reply::forbidden(
                error_types::EXTENSION_INVALID_STATE,
                "Extension with this name already registered",
            ));
        }
        if st.extensions.len() >= crate::MAX_EXTENSIONS {
            return Err(Reply::forbidden(
                error_types::EXTENSION_TOO_MANY,
                format!("Extension limit ({}) reached", crate::MAX_EXTENSIONS),
            ));
        }
        let id = ids::new_request_id();
        st.extensions.push(Extension {
            id: id.clone(),
            name: name.to_owned(),
            invoke,
            shutdown,
            started: false,
            ready: false,
            pending: None,
            exited: false,
        });
        drop(st);
        let c = &self.config;
        let account = if with_account { c.account_id() } else { None };
        Ok((id, protocol::register_body(&c.function_name, &c.version, &c.handler, account)))
    }

    /// One look at the state on behalf of an extension's `/extension/event/next`.
    pub fn poll_extension(&self, id: &str) -> ExtStep {
        let mut st = self.lock();
        let init_failed = matches!(st.phase, Phase::InitFailed { .. });
        let ext = match st.extension(id) {
            Ok(e) => e,
            Err(reply) => return ExtStep::Reject(reply),
        };
        if ext.exited || (init_failed && ext.pending.is_none()) {
            // "After Lambda receives the error, no further API calls succeed" (ext guide).
            let message = protocol::extension_transition_message(ext.state_name(), states::EXT_READY, id);
            return ExtStep::Reject(Reply::forbidden(error_types::EXTENSION_INVALID_STATE, message));
        }
        ext.started = true;
        if let Some(event) = ext.pending.take() {
            ext.ready = false;
            return ExtStep::Deliver(event);
        }
        if !ext.ready {
            ext.ready = true;
            if self.settle(&mut st, Instant::now()) && st.queued.is_some() {
                self.next_wakeup.notify_waiters();
            }
            // For `shutdown_extensions`, which waits for each extension's next call.
            self.park_wakeup.notify_waiters();
        }
        ExtStep::Wait
    }

    /// `/extension/init/error`: allowed before the extension's first next call, during INIT
    /// (RIE: `Registered` -> `InitError`). INIT then fails with the reported type.
    pub fn extension_init_error(&self, id: &str, error_type: String, body: Bytes) -> Reply {
        let mut st = self.lock();
        let open = matches!(st.phase, Phase::Started | Phase::Ready) && !st.init_done;
        let ext = match st.extension(id) {
            Ok(e) => e,
            Err(reply) => return reply,
        };
        if ext.started || ext.exited || !open {
            let message = protocol::extension_transition_message(ext.state_name(), states::EXT_INIT_ERROR, id);
            return Reply::forbidden(error_types::EXTENSION_INVALID_STATE, message);
        }
        ext.exited = true;
        self.fail_init(st, Some(error_type), body);
        Reply::Accepted
    }

    /// `/extension/exit/error`: the extension is about to exit. During INIT, INIT fails; after it,
    /// the environment is gone (Lambda resets it) and a pending invoke ends so.
    pub fn extension_exit_error(&self, id: &str, error_type: String, body: Bytes) -> Reply {
        let mut st = self.lock();
        let ext = match st.extension(id) {
            Ok(e) => e,
            Err(reply) => return reply,
        };
        if ext.exited {
            let message = protocol::extension_transition_message(ext.state_name(), states::EXT_EXITED, id);
            return Reply::forbidden(error_types::EXTENSION_INVALID_STATE, message);
        }
        ext.exited = true;
        match st.phase {
            Phase::Started | Phase::Ready if !st.init_done => {
                self.fail_init(st, Some(error_type), body);
                return Reply::Accepted;
            }
            Phase::Ready => st.phase = Phase::Dead(Dead::ExtensionExited),
            _ => {}
        }
        st.parked_at = None;
        let (queued, running) = st.take_pending();
        drop(st);
        fail_gone(queued, running);
        self.wake_all();
        Reply::Accepted
    }

    /// The freeze point, if everything is parked now; an error if it never will be.
    pub fn parked(&self) -> Result<Option<Instant>, ParkError> {
        let st = self.lock();
        if let Some(at) = st.parked_at {
            return Ok(Some(at));
        }
        match st.phase {
            Phase::Started | Phase::Ready => Ok(None),
            Phase::InitFailed { .. } => Err(ParkError::InitFailed),
            Phase::Dead(Dead::TimedOut) => Err(ParkError::TimedOut),
            Phase::Dead(Dead::ShutDown) => Err(ParkError::ShutDown),
            Phase::Dead(_) => Err(ParkError::EnvironmentGone),
        }
    }

    pub fn extension_names(&self) -> Vec<String> {
        self.lock().extensions.iter().map(|e| e.name.clone()).collect()
    }

    /// Stop taking invocations and queue `SHUTDOWN` for the subscribed extensions; returns their
    /// indices.
    pub fn begin_shutdown(&self, reason: ShutdownReason, budget: Duration) -> Vec<usize> {
        let mut st = self.lock();
        match st.phase {
            Phase::Dead(Dead::ShutDown) => return Vec::new(),
            Phase::Started | Phase::Ready => st.phase = Phase::Dead(Dead::ShuttingDown),
            Phase::InitFailed { .. } | Phase::Dead(_) => {}
        }
        st.parked_at = None;
        let (queued, running) = st.take_pending();
        let event = Bytes::from(protocol::shutdown_event(reason.as_str(), unix_ms_after(budget)));
        let mut targets = Vec::new();
        for (i, e) in st.extensions.iter_mut().enumerate().filter(|(_, e)| e.shutdown && !e.exited) {
            e.pending = Some(event.clone());
            e.ready = false;
            targets.push(i);
        }
        drop(st);
        fail_gone(queued, running);
        self.init_tx.send_if_modified(|s| {
            let pending = matches!(s, InitStatus::Pending);
            if pending {
                *s = InitStatus::Gone;
            }
            pending
        });
        self.wake_all();
        targets
    }

    /// Which of the `targets` of `begin_shutdown` have called next again (or exited).
    pub fn shutdown_report(&self, targets: &[usize]) -> ShutdownReport {
        let st = self.lock();
        let mut report = ShutdownReport::default();
        for e in targets.iter().filter_map(|&i| st.extensions.get(i)) {
            let done = e.exited || (e.ready && e.pending.is_none());
            if done { &mut report.completed } else { &mut report.unfinished }.push(e.name.clone());
        }
        report
    }

    /// The harness gave up on invocation `invocation_id` at its deadline. Returns false when it
    /// already has a result (or already failed), which the caller then reads from its channel.
    pub fn time_out(&self, invocation_id: &str) -> bool {
        let mut st = self.lock();
        let queued = st.queued.as_ref().is_some_and(|q| q.prepared.invocation_id == invocation_id);
        let running = st.current.as_ref().is_some_and(|c| c.invocation_id == invocation_id && c.done_tx.is_some());
        if !queued && !running {
            return false;
        }
        if queued {
            st.queued = None;
        } else {
            st.current = None;
        }
        // Lambda resets an environment whose invocation timed out; the caller replaces it.
        if matches!(st.phase, Phase::Started | Phase::Ready) {
            st.phase = Phase::Dead(Dead::TimedOut);
        }
        drop(st);
        self.park_wakeup.notify_waiters();
        true
    }

    /// The invoke future for `invocation_id` was dropped before its outcome: forget it, so the
    /// environment can take the next one. A late result for it then gets 400 (or 410 with the
    /// invocation id echoed).
    pub fn withdraw(&self, invocation_id: &str) {
        let mut st = self.lock();
        if st.queued.as_ref().is_some_and(|q| q.prepared.invocation_id == invocation_id) {
            st.queued = None;
        } else if st.current.as_ref().is_some_and(|c| c.invocation_id == invocation_id) {
            st.current = None;
        }
    }

    /// The environment's process is gone (or the server stops): fail what is pending.
    pub fn retire(&self, shutdown: bool) {
        let mut st = self.lock();
        match (&st.phase, shutdown) {
            (Phase::Dead(Dead::ShutDown), _) => return,
            // After an init error the environment keeps answering with it until it is replaced.
            (Phase::InitFailed { .. }, false) => {}
            (_, true) => st.phase = Phase::Dead(Dead::ShutDown),
            (_, false) => st.phase = Phase::Dead(Dead::ProcessExited),
        }
        let (queued, running) = st.take_pending();
        drop(st);
        fail_gone(queued, running);
        let status = if shutdown { InitStatus::ShutDown } else { InitStatus::Gone };
        self.init_tx.send_if_modified(|s| {
            let pending = matches!(s, InitStatus::Pending);
            if pending {
                *s = status;
            }
            pending
        });
        self.wake_all();
    }
}

fn fail_gone(queued: Option<Queued>, running: Option<oneshot::Sender<Completion>>) {
    if let Some(q) = queued {
        let _ = q.done_tx.send(Completion::Gone);
    }
    if let Some(tx) = running {
        let _ = tx.send(Completion::Gone);
    }
}
