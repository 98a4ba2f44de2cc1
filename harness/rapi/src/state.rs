//! The per-environment state machine behind both sides of the server: the harness's `invoke` and
//! the runtime's HTTP calls meet here.
//!
//! All transitions happen under one `std::sync::Mutex` held for a few field moves (never across an
//! `.await`); the hand-off to the waiting side is a `oneshot` per invocation, and `/next` waiters
//! sleep on a `Notify`. The runtime-facing states follow RIE's `core/states.go`: `Started` until
//! the first `/next`, then `Ready`, with `InitError` and the response states checked on each call.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use tokio::sync::{Notify, oneshot, watch};

use crate::protocol::{self, error_types, states};
use crate::{FunctionConfig, InvokeError, InvokeOutcome};

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

/// How an invocation ended, as the runtime side reports it to the waiting `invoke`.
pub(crate) enum Completion {
    Response { payload: Bytes, at: Instant },
    FunctionError { error_type: String, error_type_header: Option<String>, body: Bytes, at: Instant },
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
    ShutDown,
}

enum Phase {
    /// Process started, no `/next` yet (RIE `Started`).
    Started,
    /// `/init/error` was posted (RIE `InitError`).
    InitFailed {
        error_type: Option<String>,
        body: Bytes,
    },
    /// At least one `/next` arrived (RIE `Ready` and the invocation states).
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

struct State {
    phase: Phase,
    queued: Option<Queued>,
    current: Option<Current>,
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
}

/// What the runtime posted for an invocation.
pub(crate) enum Posted {
    Response(Bytes),
    Error {
        error_type_header: Option<String>,
        body: Bytes,
    },
    /// A `/response` (or `/error`) body over the limit; `size` is its length when known.
    TooLarge {
        size: Option<u64>,
    },
}

pub(crate) struct Shared {
    pub config: FunctionConfig,
    pub arn_hv: HeaderValue,
    pub next_wakeup: Notify,
    state: Mutex<State>,
    init_tx: watch::Sender<InitStatus>,
}

impl Shared {
    pub fn new(config: FunctionConfig, arn_hv: HeaderValue) -> Self {
        Shared {
            config,
            arn_hv,
            next_wakeup: Notify::new(),
            state: Mutex::new(State { phase: Phase::Started, queued: None, current: None }),
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
        drop(st);
        self.next_wakeup.notify_waiters();
        Ok(Submit::Pending(pending))
    }

    /// One look at the state on behalf of a `/next` call. The first call ends INIT.
    pub fn poll_next(&self) -> NextStep {
        let mut st = self.lock();
        match &st.phase {
            Phase::InitFailed { .. } => {
                return NextStep::Reject(Reply::error(
                    StatusCode::FORBIDDEN,
                    error_types::INVALID_STATE_TRANSITION,
                    protocol::transition_message(states::INIT_ERROR, states::READY),
                ));
            }
            Phase::Dead(_) => return NextStep::Wait,
            Phase::Started => {
                let init = self.config.start_instant.elapsed();
                st.phase = Phase::Ready;
                self.init_tx.send_replace(InitStatus::Done(init));
            }
            Phase::Ready => {}
        }
        if st.current.as_ref().is_some_and(|c| c.done_tx.is_some()) {
            // Lambda answers a second `/next` for an unanswered invocation with 403 (seen by
            // runtimes that retry `/next`: Nike-Inc/hal#54); RIE's state machine allows only
            // `Ready` -> `InvocationResponse`/`InvocationErrorResponse` from here.
            return NextStep::Reject(Reply::error(
                StatusCode::FORBIDDEN,
                error_types::INVALID_STATE_TRANSITION,
                protocol::transition_message(states::RUNNING, states::READY),
            ));
        }
        let Some(q) = st.queued.take() else { return NextStep::Wait };
        if q.handed_tx.send(Instant::now()).is_err() {
            // The invoke was withdrawn between queueing and now; nothing to deliver.
            return NextStep::Wait;
        }
        let deadline_ms =
            (SystemTime::now() + q.prepared.deadline).duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let p = q.prepared;
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

    /// A result for `request_id` arrived (`/response` or `/error`), complete at `at`.
    ///
    /// Checks run in RIE's order: the request id (400), then the echoed invocation id (410, a
    /// newer check RIE does not have), then the state (403), then the size (413).
    pub fn complete(
        &self,
        request_id: &str,
        invocation_id: Option<&HeaderValue>,
        posted: Posted,
        at: Instant,
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
            return Reply::error(
                StatusCode::FORBIDDEN,
                error_types::INVALID_STATE_TRANSITION,
                protocol::transition_message(states::RESPONSE_SENT, to),
            );
        };
        drop(st);
        let max = self.config.max_response_bytes;
        let (completion, reply) = match posted {
            Posted::Response(payload) => (Completion::Response { payload, at }, Reply::Accepted),
            Posted::Error { error_type_header, body } => {
                let error_type = protocol::body_error_type(&body)
                    .or_else(|| error_type_header.clone())
                    .unwrap_or_else(|| error_types::UNHANDLED.to_owned());
                (Completion::FunctionError { error_type, error_type_header, body, at }, Reply::Accepted)
            }
            Posted::TooLarge { size } => {
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
                    at,
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
        let mut st = self.lock();
        let from = match &st.phase {
            Phase::Started => None,
            Phase::InitFailed { .. } => Some(states::INIT_ERROR),
            Phase::Ready | Phase::Dead(_) => Some(states::READY),
        };
        if let Some(from) = from {
            return Reply::error(
                StatusCode::FORBIDDEN,
                error_types::INVALID_STATE_TRANSITION,
                protocol::transition_message(from, states::INIT_ERROR),
            );
        }
        st.phase = Phase::InitFailed { error_type: error_type.clone(), body: body.clone() };
        let queued = st.queued.take();
        drop(st);
        self.init_tx.send_replace(InitStatus::Failed { error_type: error_type.clone(), body: body.clone() });
        if let Some(q) = queued {
            let _ = q.done_tx.send(Completion::InitError { error_type, body });
        }
        self.next_wakeup.notify_waiters();
        Reply::Accepted
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
        let queued = st.queued.take();
        let running = st.current.take().and_then(|c| c.done_tx);
        drop(st);
        if let Some(q) = queued {
            let _ = q.done_tx.send(Completion::Gone);
        }
        if let Some(tx) = running {
            let _ = tx.send(Completion::Gone);
        }
        let status = if shutdown { InitStatus::ShutDown } else { InitStatus::Gone };
        self.init_tx.send_if_modified(|s| {
            let pending = matches!(s, InitStatus::Pending);
            if pending {
                *s = status;
            }
            pending
        });
        self.next_wakeup.notify_waiters();
    }
}
