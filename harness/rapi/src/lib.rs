//! The Lambda Runtime API server that isobench's local emulator runs for each execution
//! environment.
//!
//! # Why it exists
//! The `lambda-*` tiers emulate Lambda's execution environments locally: a runtime process in its
//! own namespaces whose `AWS_LAMBDA_RUNTIME_API` points at a server the harness runs for it. If
//! that server speaks the *published* Runtime API (version `2018-06-01`: `/runtime/invocation/next`,
//! `/{id}/response`, `/{id}/error`, `/runtime/init/error`, with the documented headers, status codes
//! and error bodies), any runtime interface client — `lambda_runtime`, the AWS base images' RICs, a
//! shell `bootstrap` with curl — runs unchanged, so what the harness measures is the workload and
//! the isolation model, not an adapter. The environment's INIT, each INVOKE's hand-over and result,
//! timeouts and the process dying all pass through here, so this is also where init duration and
//! billed duration are timed.
//!
//! # Main choices
//! - **Served from outside the sandbox.** [`RuntimeApi::start`] takes an already bound
//!   `std::net::TcpListener`: the emulator binds `127.0.0.1:9001` inside the environment's network
//!   namespace (which has no other network, as on Lambda) and hands the socket over, so the server
//!   runs on the harness's tokio runtime and the runtime process never sees the harness.
//! - **One invocation at a time**, as Lambda gives each environment: [`RuntimeApi::invoke`] while
//!   one is outstanding is a caller bug ([`InvokeError::Busy`]), never a queue.
//! - **The freeze point is the park, not the result.** Lambda freezes an environment once the
//!   runtime and every extension wait in their `next` call; post-response work runs (and is billed)
//!   until then. [`RuntimeApi::invoke`] returns at the result, as the caller sees it;
//!   [`RuntimeApi::wait_parked`] gives the later freeze instant for billing
//!   ([`InvokeTiming::billed_ms_until`]). An invoke submitted after the result but before the park
//!   is accepted and waits in the queue: the runtime gets it only once everything is parked.
//! - **The Extensions API (`2020-01-01`) on the same address**: register during INIT, `INVOKE` and
//!   `SHUTDOWN` events, init and exit errors. INIT ends when the runtime *and* every registered
//!   extension have called their `next` ([`RuntimeApi::wait_init`]).
//! - **Behaviour where the guide is silent follows Lambda's own server** (the open-source Runtime
//!   Interface Emulator): which check answers first, the `errorType` strings, 403 for calls the
//!   state machine does not allow. Each constant in [`error_types`] and [`headers`] says its source.
//! - **Lean hot path.** A warm invoke is one mutex-protected move into a slot, a `Notify` wake of the
//!   parked `/next`, and a `oneshot` back; no logging, no per-request task.
//!
//! The runtime must be a multi-threaded or current-thread tokio runtime with time and I/O enabled.

mod ids;
mod protocol;
mod server;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use ids::new_request_id;
pub use protocol::{API_VERSION, EXTENSIONS_API_VERSION, error_types, headers};

use state::{Completion, InitStatus, Prepared, Shared, Submit};

/// Lambda's default limit on a synchronous invocation's response: 6 MB (quotas page: "6 MB each
/// for request and response (synchronous)"). RIE enforces 6 MiB + 100 bytes; this uses 6 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// Lambda's limit on a synchronous invocation's request payload: 6 MB (quotas page and the Invoke
/// API: "For synchronous invocations, the maximum payload size is 6 MB"), taken as 6 MiB like the
/// response limit. Larger payloads are refused before they reach the runtime.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// Lambda's default maximum for a streamed response: 200 MB ("Response streaming for Lambda
/// functions": "response streaming functions can return payloads up to 200 MB"; raised from the
/// former 20 MB soft limit in July 2025). Taken as MiB, like the buffered limit.
pub const DEFAULT_MAX_STREAMED_RESPONSE_BYTES: usize = 200 * 1024 * 1024;

/// Most extensions one function may register (RIE `core.MaxAgentsAllowed`; the Lambda quotas
/// page: "Extensions: 10").
pub const MAX_EXTENSIONS: usize = 10;

/// Lambda's default function timeout (3 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// What the server needs to know about the function an environment belongs to.
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    pub function_name: String,
    /// Sent as `Lambda-Runtime-Invoked-Function-Arn`.
    pub function_arn: String,
    /// `$LATEST` or a published version number.
    pub version: String,
    pub memory_mb: u32,
    /// Tenant isolation mode (`PER_TENANT`): every invoke must carry a tenant id, which the
    /// runtime receives as `Lambda-Runtime-Aws-Tenant-Id`.
    pub tenant_isolation: bool,
    /// The configured handler (`_HANDLER`; the `handler` of the `/extension/register` answer).
    /// Empty: not set, and `_HANDLER` is left out of [`Self::runtime_env`].
    pub handler: String,
    /// Largest accepted buffered `/response` body; larger ones get 413 and fail the invoke.
    pub max_response_bytes: usize,
    /// Largest accepted streamed `/response` body (`Lambda-Runtime-Function-Response-Mode:
    /// streaming`); past it the invoke fails with [`error_types::RESPONSE_SIZE_TOO_LARGE`].
    pub max_streamed_response_bytes: usize,
    /// Largest invoke payload [`RuntimeApi::invoke`] accepts ([`InvokeError::RequestTooLarge`]).
    pub max_request_bytes: usize,
    /// When the environment's process was started; init duration is measured from here to the
    /// runtime's first `/next`.
    pub start_instant: Instant,
}

impl FunctionConfig {
    /// A `$LATEST`, 128 MB function in `us-east-1` of account `000000000000`, without tenant
    /// isolation or handler, with the default request and response limits.
    pub fn new(function_name: impl Into<String>, start_instant: Instant) -> Self {
        let function_name = function_name.into();
        FunctionConfig {
            function_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{function_name}"),
            function_name,
            version: "$LATEST".to_owned(),
            memory_mb: 128,
            tenant_isolation: false,
            handler: String::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_streamed_response_bytes: DEFAULT_MAX_STREAMED_RESPONSE_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            start_instant,
        }
    }

    /// The standard environment variables a runtime reads at start-up, with
    /// `AWS_LAMBDA_RUNTIME_API` set to `runtime_api` (e.g. `127.0.0.1:9001`).
    pub fn runtime_env(&self, runtime_api: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_LAMBDA_RUNTIME_API".to_owned(), runtime_api.to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), self.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION".to_owned(), self.version.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(), self.memory_mb.to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME".to_owned(), format!("/aws/lambda/{}", self.function_name)),
            ("AWS_LAMBDA_LOG_STREAM_NAME".to_owned(), ids::new_log_stream_name(&self.version)),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".to_owned(), "on-demand".to_owned()),
        ];
        if let Some(region) = self.function_arn.split(':').nth(3).filter(|r| !r.is_empty()) {
            env.push(("AWS_REGION".to_owned(), region.to_owned()));
            env.push(("AWS_DEFAULT_REGION".to_owned(), region.to_owned()));
        }
        if !self.handler.is_empty() {
            env.push(("_HANDLER".to_owned(), self.handler.clone()));
        }
        env
    }

    /// [`Self::runtime_env`] as an extension process gets it: without the variables the ext guide
    /// lists as specific to the runtime process (log group and stream, `_HANDLER`).
    pub fn extension_env(&self, runtime_api: &str) -> Vec<(String, String)> {
        const RUNTIME_ONLY: [&str; 3] = ["AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "_HANDLER"];
        let mut env = self.runtime_env(runtime_api);
        env.retain(|(k, _)| !RUNTIME_ONLY.contains(&k.as_str()));
        env
    }

    /// The account id, from the function ARN.
    fn account_id(&self) -> Option<&str> {
        self.function_arn.split(':').nth(4).filter(|a| !a.is_empty())
    }
}

/// One invocation the harness pushes to the environment.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`; a random UUID when `None`. Must be RFC 3986 unreserved
    /// characters (it travels in a URL path).
    pub request_id: Option<String>,
    /// The event, delivered as the `/next` body.
    pub payload: Bytes,
    /// The function timeout. The clock starts when the runtime's `/next` receives the invocation
    /// (that instant plus `deadline` is `Lambda-Runtime-Deadline-Ms`); the wait for the runtime to
    /// ask is bounded by the same duration.
    pub deadline: Duration,
    /// Required in tenant isolation mode, refused otherwise.
    pub tenant_id: Option<String>,
    /// `Lambda-Runtime-Trace-Id`; a fresh X-Ray header when `None`.
    pub trace_id: Option<String>,
    /// `Lambda-Runtime-Client-Context` (JSON text), sent only when set.
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity` (JSON text), sent only when set.
    pub cognito_identity: Option<String>,
}

impl Invocation {
    pub fn new(payload: impl Into<Bytes>, deadline: Duration) -> Self {
        Invocation {
            request_id: None,
            payload: payload.into(),
            deadline,
            tenant_id: None,
            trace_id: None,
            client_context: None,
            cognito_identity: None,
        }
    }

    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }
}

/// When an invocation passed each point, for billed duration and emulator overhead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvokeTiming {
    /// `invoke` was called.
    pub submitted: Instant,
    /// The runtime's `/next` took the invocation (the response was about to be written).
    pub handed_over: Instant,
    /// The first byte of the result's body arrived: for a streamed response the time to first
    /// byte; for a buffered result the same as `completed`.
    pub first_byte: Instant,
    /// The runtime's `/response` or `/error` body had been read in full.
    pub completed: Instant,
    /// The response came as a stream (`Lambda-Runtime-Function-Response-Mode: streaming`).
    pub streamed: bool,
}

impl InvokeTiming {
    /// Function run time as Lambda measures it: hand-over to result.
    pub fn duration(&self) -> Duration {
        self.completed.saturating_duration_since(self.handed_over)
    }

    /// [`Self::duration`] rounded up to a whole millisecond, at least 1 ms (Lambda bills per ms).
    /// Ends at the result: see [`Self::billed_ms_until`] for billing as Lambda does.
    pub fn billed_ms(&self) -> u64 {
        ceil_ms(self.duration())
    }

    /// Billed duration as Lambda bills it: from hand-over to the freeze point `parked` (from
    /// [`RuntimeApi::wait_parked`]), so post-response work of the runtime and of extensions counts
    /// ("the Invoke phase continues until all extensions signal that they are completed"). Rounded
    /// up to a whole millisecond, at least 1 ms.
    pub fn billed_ms_until(&self, parked: Instant) -> u64 {
        ceil_ms(parked.saturating_duration_since(self.handed_over))
    }

    /// Time to first byte, from hand-over (equal to [`Self::duration`] for a buffered result).
    pub fn time_to_first_byte(&self) -> Duration {
        self.first_byte.saturating_duration_since(self.handed_over)
    }

    /// How long the invocation waited for the runtime to ask for it.
    pub fn wait_for_runtime(&self) -> Duration {
        self.handed_over.saturating_duration_since(self.submitted)
    }
}

fn ceil_ms(d: Duration) -> u64 {
    (d.as_nanos().div_ceil(1_000_000) as u64).max(1)
}

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The runtime posted `/response`.
    Ok { payload: Bytes, timing: InvokeTiming },
    /// The runtime posted `/error`, or an oversized `/response`
    /// ([`error_types::RESPONSE_SIZE_TOO_LARGE`]). `error_type` is the body's `errorType`, else the
    /// `Lambda-Runtime-Function-Error-Type` header, else `Unhandled`; the header itself is kept in
    /// `error_type_header` (`lambda_runtime` always sends `unhandled` there).
    FunctionError { error_type: String, error_type_header: Option<String>, body: Bytes, timing: InvokeTiming },
    /// The runtime posted `/init/error`; every invoke fails so until the environment is replaced.
    InitError { error_type: Option<String>, body: Bytes },
    /// No result by the deadline (or the runtime never asked within it). The environment takes no
    /// more invocations: replace it, as Lambda does.
    Timeout { handed_over: Option<Instant> },
    /// The environment's process died ([`RuntimeApi::environment_died`]), an extension reported an
    /// exit error, the environment was shut down ([`RuntimeApi::shutdown_extensions`]) or the
    /// server shut down before a result.
    EnvironmentGone { handed_over: Option<Instant> },
}

impl InvokeOutcome {
    /// The timing of a result (`Ok` or `FunctionError`).
    pub fn timing(&self) -> Option<&InvokeTiming> {
        match self {
            InvokeOutcome::Ok { timing, .. } | InvokeOutcome::FunctionError { timing, .. } => Some(timing),
            _ => None,
        }
    }

    /// Whether the runtime streamed its response.
    pub fn streamed(&self) -> bool {
        self.timing().is_some_and(|t| t.streamed)
    }
}

/// A caller error: the invocation was not sent.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("invocation {in_flight} is still outstanding in this environment (one at a time)")]
    Busy { in_flight: String },
    #[error("the function uses tenant isolation mode: every invoke needs a tenant id")]
    TenantIdRequired,
    #[error("the function does not use tenant isolation mode: invokes cannot carry a tenant id")]
    TenantIdNotAllowed,
    #[error("request id {0:?} is not usable (1-256 characters from A-Z a-z 0-9 - . _ ~)")]
    InvalidRequestId(String),
    #[error("{field} is not a valid HTTP header value")]
    InvalidHeader { field: &'static str },
    /// Lambda answers this with `RequestTooLargeException` (413).
    #[error("the payload of {size} bytes exceeds the request limit of {limit} bytes")]
    RequestTooLarge { size: usize, limit: usize },
    #[error("the runtime API server is shut down")]
    ShutDown,
}

/// Why INIT did not complete.
#[derive(Clone, Debug, thiserror::Error)]
pub enum InitFailure {
    #[error("the runtime reported an init error ({})", error_type.as_deref().unwrap_or("no type"))]
    Reported { error_type: Option<String>, body: Bytes },
    #[error("the runtime did not ask for an invocation within {after:?}")]
    Timeout { after: Duration },
    #[error("the environment's process died during init")]
    EnvironmentGone,
    #[error("the runtime API server is shut down")]
    ShutDown,
}

/// Why [`RuntimeApi::wait_parked`] has no freeze point to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParkError {
    #[error("init failed, so the environment never parks")]
    InitFailed,
    #[error("the invocation timed out and the environment is being reset")]
    TimedOut,
    #[error("the environment is gone (its process died, an extension exited or it was shut down)")]
    EnvironmentGone,
    #[error("the runtime API server is shut down")]
    ShutDown,
}

/// Why an environment shuts down: the `shutdownReason` of the `SHUTDOWN` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Normal end (idle keep-alive, recycling).
    Spindown,
    /// An invocation ran out of time.
    Timeout,
    /// Any other failure (a crash, out of memory).
    Failure,
}

impl ShutdownReason {
    /// The wire value (ext guide: SPINDOWN, TIMEOUT, FAILURE; sent lowercase).
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

/// What [`RuntimeApi::shutdown_extensions`] saw: extension names, in registration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Got `SHUTDOWN` and called `/extension/event/next` again within the budget.
    pub completed: Vec<String>,
    /// Got `SHUTDOWN` but did not call next again within the budget (Lambda then `SIGKILL`s).
    pub unfinished: Vec<String>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no tokio runtime is running on this thread")]
    NoRuntime,
    #[error("failed to hand the listening socket to tokio")]
    Listener(#[source] std::io::Error),
    #[error("function ARN {0:?} is not a valid HTTP header value")]
    InvalidArn(String),
}

/// A running Runtime API server for one execution environment.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl RuntimeApi {
    /// Serve the Runtime API on `listener` (already bound; made non-blocking here), on the current
    /// tokio runtime.
    pub fn start(listener: std::net::TcpListener, config: FunctionConfig) -> Result<Self, StartError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let arn_hv = HeaderValue::from_str(&config.function_arn)
            .map_err(|_| StartError::InvalidArn(config.function_arn.clone()))?;
        listener.set_nonblocking(true).map_err(StartError::Listener)?;
        let local_addr = listener.local_addr().map_err(StartError::Listener)?;
        let listener = {
            let _guard = handle.enter();
            tokio::net::TcpListener::from_std(listener).map_err(StartError::Listener)?
        };
        let shared = Arc::new(Shared::new(config, arn_hv));
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = handle.spawn(server::accept_loop(listener, shared.clone(), stop_rx));
        Ok(RuntimeApi { shared, local_addr, stop: Mutex::new(Some(stop_tx)), task: Mutex::new(Some(task)) })
    }

    /// The address the server listens on (as seen inside the environment).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn config(&self) -> &FunctionConfig {
        &self.shared.config
    }

    /// Push one invocation and wait for its outcome.
    ///
    /// Cancel-safe: dropping the future withdraws the invocation (a late result for it is then
    /// refused), and the environment can take the next one.
    pub async fn invoke(&self, invocation: Invocation) -> Result<InvokeOutcome, InvokeError> {
        let submitted = Instant::now();
        let prepared = self.prepare(invocation)?;
        let pending = match self.shared.submit(prepared)? {
            Submit::Done(outcome) => return Ok(outcome),
            Submit::Pending(p) => p,
        };
        let state::Pending { invocation_id, deadline, mut handed_rx, mut done_rx } = pending;
        let invocation_id = invocation_id.as_str();
        let mut guard = Withdraw { shared: &self.shared, invocation_id, armed: true };

        let mut sleep = std::pin::pin!(tokio::time::sleep_until((submitted + deadline).into()));
        let handed_over = tokio::select! {
            biased;
            handed = &mut handed_rx => handed.ok(),
            _ = &mut sleep => {
                if self.shared.time_out(invocation_id) {
                    guard.armed = false;
                    return Ok(InvokeOutcome::Timeout { handed_over: None });
                }
                handed_rx.try_recv().ok()
            }
        };
        let completion = match handed_over {
            Some(at) => {
                sleep.as_mut().reset((at + deadline).into());
                tokio::select! {
                    biased;
                    done = &mut done_rx => done.ok(),
                    _ = &mut sleep => {
                        if self.shared.time_out(invocation_id) {
                            guard.armed = false;
                            return Ok(InvokeOutcome::Timeout { handed_over: Some(at) });
                        }
                        (&mut done_rx).await.ok()
                    }
                }
            }
            // Failed before hand-over (init error, environment gone): the reason is waiting.
            None => (&mut done_rx).await.ok(),
        };
        guard.armed = false;
        let timing = |r: state::Received| InvokeTiming {
            submitted,
            handed_over: handed_over.unwrap_or(r.first_byte),
            first_byte: r.first_byte,
            completed: r.at,
            streamed: r.streamed,
        };
        Ok(match completion {
            Some(Completion::Response { payload, received }) => InvokeOutcome::Ok { payload, timing: timing(received) },
            Some(Completion::FunctionError { error_type, error_type_header, body, received }) => {
                InvokeOutcome::FunctionError { error_type, error_type_header, body, timing: timing(received) }
            }
            Some(Completion::InitError { error_type, body }) => InvokeOutcome::InitError { error_type, body },
            Some(Completion::Gone) | None => InvokeOutcome::EnvironmentGone { handed_over },
        })
    }

    fn prepare(&self, inv: Invocation) -> Result<Prepared, InvokeError> {
        fn header(value: &str, field: &'static str) -> Result<HeaderValue, InvokeError> {
            HeaderValue::from_str(value).map_err(|_| InvokeError::InvalidHeader { field })
        }
        let config = &self.shared.config;
        if inv.payload.len() > config.max_request_bytes {
            return Err(InvokeError::RequestTooLarge { size: inv.payload.len(), limit: config.max_request_bytes });
        }
        match (&inv.tenant_id, config.tenant_isolation) {
            (None, true) => return Err(InvokeError::TenantIdRequired),
            (Some(_), false) => return Err(InvokeError::TenantIdNotAllowed),
            _ => {}
        }
        let request_id = match inv.request_id {
            Some(id) if ids::valid_request_id(&id) => id,
            Some(id) => return Err(InvokeError::InvalidRequestId(id)),
            None => ids::new_request_id(),
        };
        let invocation_id = ids::new_invocation_id();
        let trace = match &inv.trace_id {
            Some(t) => header(t, "trace id")?,
            None => header(&ids::new_trace_header(), "trace id")?,
        };
        Ok(Prepared {
            request_id_hv: header(&request_id, "request id")?,
            invocation_id_hv: header(&invocation_id, "invocation id")?,
            trace_hv: trace,
            client_context_hv: inv.client_context.as_deref().map(|v| header(v, "client context")).transpose()?,
            cognito_hv: inv.cognito_identity.as_deref().map(|v| header(v, "cognito identity")).transpose()?,
            tenant_hv: inv.tenant_id.as_deref().map(|v| header(v, "tenant id")).transpose()?,
            request_id,
            invocation_id,
            payload: inv.payload,
            deadline: inv.deadline,
        })
    }

    /// Wait until INIT is done and return the init duration, measured from
    /// [`FunctionConfig::start_instant`] to the moment the runtime (first `/next`) and every
    /// registered extension (first `/extension/event/next`) all wait for an event. Extensions can
    /// register only before the runtime's first `/next`.
    pub async fn wait_init(&self, timeout: Duration) -> Result<Duration, InitFailure> {
        let mut rx = self.shared.init_status();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| !matches!(s, InitStatus::Pending))).await;
        let status = match waited {
            Err(_) => return Err(InitFailure::Timeout { after: timeout }),
            Ok(Err(_)) => return Err(InitFailure::ShutDown),
            Ok(Ok(status)) => status.clone(),
        };
        match status {
            InitStatus::Done(d) => Ok(d),
            InitStatus::Failed { error_type, body } => Err(InitFailure::Reported { error_type, body }),
            InitStatus::Gone => Err(InitFailure::EnvironmentGone),
            InitStatus::ShutDown | InitStatus::Pending => Err(InitFailure::ShutDown),
        }
    }

    /// Wait for the freeze point after the last invocation handed over (or after INIT, before
    /// any): the instant the last of the runtime (`/next` after its result) and every registered
    /// extension (`/extension/event/next` after its `INVOKE`) asked for the next event. Resolves at
    /// once when everything is already parked.
    ///
    /// Call it after the invoke's outcome and before submitting the next invoke to this
    /// environment: a later hand-over moves the freeze point. Not bounded in time; Lambda bounds
    /// the whole invoke phase, extensions included, by the function timeout, so bound it with the
    /// invocation's deadline (`handed_over + timeout`) and treat a miss as a timeout.
    pub async fn wait_parked(&self) -> Result<Instant, ParkError> {
        loop {
            let mut notified = std::pin::pin!(self.shared.park_wakeup.notified());
            notified.as_mut().enable();
            if let Some(parked) = self.shared.parked()? {
                return Ok(parked);
            }
            notified.await;
        }
    }

    /// Whether the environment is parked now, and since when (see [`Self::wait_parked`]).
    pub fn parked_since(&self) -> Result<Option<Instant>, ParkError> {
        self.shared.parked()
    }

    /// The names of the registered extensions, in registration order.
    pub fn extensions(&self) -> Vec<String> {
        self.shared.extension_names()
    }

    /// Shut the environment down for `reason`: it takes no more invocations (a pending one ends
    /// as [`InvokeOutcome::EnvironmentGone`]), every extension subscribed to `SHUTDOWN` gets the
    /// event with `deadlineMs` = now + `budget`, and this resolves when each has called
    /// `/extension/event/next` again or the budget ran out (Lambda then `SIGKILL`s the rest). The
    /// ext guide's budget: 2,000 ms with external extensions, of which up to 300 ms are the
    /// runtime's; stopping the runtime process is the caller's part. Resolves at once without
    /// extensions subscribed to `SHUTDOWN`.
    pub async fn shutdown_extensions(&self, reason: ShutdownReason, budget: Duration) -> ShutdownReport {
        let until = tokio::time::Instant::now() + budget;
        let targets = self.shared.begin_shutdown(reason, budget);
        loop {
            let mut notified = std::pin::pin!(self.shared.park_wakeup.notified());
            notified.as_mut().enable();
            let report = self.shared.shutdown_report(&targets);
            if report.unfinished.is_empty() {
                return report;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return self.shared.shutdown_report(&targets);
            }
        }
    }

    /// The init duration, once INIT has completed.
    pub fn init_duration(&self) -> Option<Duration> {
        match &*self.shared.init_status().borrow() {
            InitStatus::Done(d) => Some(*d),
            _ => None,
        }
    }

    /// The environment's process died: the pending invoke (and every later one) ends with
    /// [`InvokeOutcome::EnvironmentGone`] (or [`InvokeOutcome::InitError`] after an init error).
    pub fn environment_died(&self) {
        self.shared.retire(false);
    }

    /// Stop serving: fail what is pending, close every runtime connection and the listening
    /// socket. Idempotent.
    pub async fn shutdown(&self) {
        self.shared.retire(true);
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.retire(true);
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Withdraws an invocation whose `invoke` future is dropped before it finishes.
struct Withdraw<'a> {
    shared: &'a Shared,
    invocation_id: &'a str,
    armed: bool,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.withdraw(self.invocation_id);
        }
    }
}
