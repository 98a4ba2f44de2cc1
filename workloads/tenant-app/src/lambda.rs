//! The Lambda front end: the same [`handler::handle`] behind the Lambda Runtime API, so the one
//! binary runs as the `bootstrap` of a `provided.al2023` function (or of the harness's local
//! Lambda emulator, which serves the same API).
//!
//! [`lambda_runtime`] polls `GET /2018-06-01/runtime/invocation/next` and posts each result to
//! `.../invocation/{id}/response` or `.../invocation/{id}/error`; this module only maps an event
//! (JSON, see the README) to a [`Request`] and the [`Response`] back. Outcomes of the business
//! logic, errors included, are the function's *successful* payload (`{"status": 404, ...}`), as
//! an HTTP server answers 404 with a body; two things are *function errors* instead, so a
//! harness sees both error paths: an injected fault (`InjectedFault`) and an event that cannot
//! be read (`InvalidEvent`). With probes enabled, the `probe` op reaches the probe agent
//! ([`crate::probe`]) exactly as the HTTP probe routes do.
//!
//! The invoke's tenant id (tenant isolation mode: `Lambda-Runtime-Aws-Tenant-Id`, exposed by
//! lambda_runtime as [`Context::tenant_id`]) is the caller's claim, as the `x-tenant-id` header
//! is over HTTP; the event's `tenant` names the tenant whose data the request touches.
//!
//! Lambda reuses a process for many invocations, one at a time, so the [`State`] is built once
//! at INIT and kept for the environment's life: whatever one invocation leaves in the cache or
//! in `/tmp` is there for the next, which is exactly what the leakage probes measure. INIT does
//! nothing heavy (no listening socket, no I/O beyond creating the temp directory) so the first
//! `/next` follows start-up within a few milliseconds.
//!
//! [`Context::tenant_id`]: lambda_runtime::Context::tenant_id

use std::fmt::Write as _;
use std::io;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::LambdaArgs;
use crate::handler::{self, Op, Request, State, StateError};
use crate::probe;
use crate::response::{ErrorKind, Response};

pub use crate::lambda_env::RUNTIME_API_ENV;

/// `errorType` of the function error for an event that is not one of ours.
pub const INVALID_EVENT: &str = "InvalidEvent";
/// `errorType` of the function error for a fault injected by `--fault-error-rate`.
pub const INJECTED_FAULT: &str = "InjectedFault";
/// `errorType` posted to `/runtime/init/error` when the configuration is unusable.
pub const INVALID_CONFIG: &str = "InvalidConfig";
/// `errorType` posted to `/runtime/init/error` when Lambda's own variables are missing.
pub const INVALID_ENVIRONMENT: &str = "InvalidEnvironment";

/// The variables lambda_runtime reads (and panics without) besides [`RUNTIME_API_ENV`].
const FUNCTION_NAME_ENV: &str = "AWS_LAMBDA_FUNCTION_NAME";
const FUNCTION_VERSION_ENV: &str = "AWS_LAMBDA_FUNCTION_VERSION";
const FUNCTION_MEMORY_ENV: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";

/// One invocation's payload. Unknown fields are refused, so a misspelt `body_b64` is an
/// `InvalidEvent` rather than an empty record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The tenant whose data the request touches; defaults to the invoke's tenant id.
    pub tenant: Option<String>,
    pub op: EventOp,
    /// Record key, for `put` and `get`.
    pub key: Option<String>,
    /// The record, for `put`, as UTF-8 text ...
    pub body: Option<String>,
    /// ... or as base64 (standard alphabet, padded); at most one of the two.
    pub body_b64: Option<String>,
    /// CPU budget in microseconds, for `compute`.
    pub us: Option<u64>,
    /// Probe channel, for `probe` (`tmp`, `mem`, `env`, `fd`, `proc`, `net`, `cred`, `rng`).
    pub channel: Option<String>,
    /// `plant`, `sweep` or `serve` (`net` only), for `probe` (required there).
    pub action: Option<probe::Action>,
    /// The canary, for a `probe` plant.
    pub canary: Option<String>,
    /// The parameters of a `probe` sweep or serve (the JSON object an HTTP request's body holds).
    pub params: Option<Value>,
}

/// The event's `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventOp {
    Put,
    Get,
    Compute,
    Purge,
    Whoami,
    Health,
    /// The probe agent (only with probes enabled); `action` says plant or sweep.
    Probe,
}

impl Event {
    /// Reads an event from the invocation's JSON payload.
    pub fn parse(payload: Value) -> Result<Event, FunctionError> {
        // serde would also read a struct from an array of its fields in order; events are objects.
        if !payload.is_object() {
            return Err(FunctionError::InvalidEvent(format!("an event is a JSON object, not {}", json_type(&payload))));
        }
        Event::deserialize(payload).map_err(|e| FunctionError::InvalidEvent(e.to_string()))
    }

    /// The handler operation; a `probe` without `action` is not an event of ours.
    pub fn op(&self) -> Result<Op, FunctionError> {
        Ok(match self.op {
            EventOp::Put => Op::Put,
            EventOp::Get => Op::Get,
            EventOp::Compute => Op::Compute,
            EventOp::Purge => Op::Purge,
            EventOp::Whoami => Op::WhoAmI,
            EventOp::Health => Op::Health,
            EventOp::Probe => match self.action {
                Some(action) => Op::Probe(action),
                None => return Err(FunctionError::InvalidEvent("a `probe` event needs `action`".into())),
            },
        })
    }

    /// The body of a probe request, as over HTTP: the canary of a plant, the parameters of a
    /// sweep as JSON text (empty when there are none).
    fn probe_body(&mut self, action: probe::Action) -> Bytes {
        match action {
            probe::Action::Plant => self.canary.take().map(Bytes::from).unwrap_or_default(),
            probe::Action::Sweep | probe::Action::Serve => match self.params.take() {
                None | Some(Value::Null) => Bytes::new(),
                Some(params) => Bytes::from(params.to_string()),
            },
        }
    }

    /// The record bytes of a `put` (empty when the event has none), taking them out of the event.
    fn take_record(&mut self) -> Result<Bytes, FunctionError> {
        match (self.body.take(), self.body_b64.take()) {
            (Some(_), Some(_)) => Err(FunctionError::InvalidEvent("give `body` or `body_b64`, not both".into())),
            (Some(text), None) => Ok(Bytes::from(text)),
            (None, Some(b64)) => BASE64
                .decode(b64)
                .map(Bytes::from)
                .map_err(|e| FunctionError::InvalidEvent(format!("`body_b64` is not base64: {e}"))),
            (None, None) => Ok(Bytes::new()),
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An invocation that ends as a function error (`POST .../invocation/{id}/error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionError {
    /// The payload is not an event of ours (wrong shape, unknown `op` or field, bad base64).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// `--fault-error-rate` picked this invocation.
    #[error("injected fault")]
    InjectedFault,
}

impl FunctionError {
    /// The `errorType` reported to the Runtime API.
    pub fn error_type(&self) -> &'static str {
        match self {
            FunctionError::InvalidEvent(_) => INVALID_EVENT,
            FunctionError::InjectedFault => INJECTED_FAULT,
        }
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Diagnostic {
        Diagnostic { error_type: e.error_type().to_owned(), error_message: e.to_string() }
    }
}

/// The function's payload for every outcome of the business logic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventResponse {
    /// The HTTP status the HTTP front end would answer with.
    pub status: u16,
    /// The body when it is valid UTF-8 (also when empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<TextBody>,
    /// The body, base64-encoded, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_b64: Option<String>,
    pub content_type: &'static str,
    /// The error kind (`not_found`, `tenant_mismatch`, ...) when `status` is 400 or above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
}

/// Response bytes known to be UTF-8, serialised as a JSON string without copying them first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextBody(Bytes);

impl TextBody {
    /// The bytes back when they are not UTF-8.
    fn new(bytes: Bytes) -> Result<TextBody, Bytes> {
        if std::str::from_utf8(&bytes).is_ok() { Ok(TextBody(bytes)) } else { Err(bytes) }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("checked in TextBody::new")
    }
}

impl Serialize for TextBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<Response> for EventResponse {
    fn from(response: Response) -> EventResponse {
        let (body, body_b64) = match TextBody::new(response.body) {
            Ok(text) => (Some(text), None),
            Err(bytes) => (None, Some(BASE64.encode(&bytes))),
        };
        EventResponse {
            status: response.status,
            body,
            body_b64,
            content_type: response.content_type,
            kind: response.error.map(ErrorKind::kind),
        }
    }
}

impl EventResponse {
    /// The body as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        self.body.as_ref().map(TextBody::as_str)
    }
}

/// Handles one invocation: `payload` is the event, `invoke_tenant` the invoke's tenant id
/// (tenant isolation mode), if any. Counts the invocation first, whatever becomes of it.
///
/// Tenant: the event's `tenant` is the tenant the request is for; the invoke's tenant id, when
/// present, is authoritative as the claim, so an event naming another tenant is answered
/// `tenant_mismatch`, and an event without `tenant` is for the invoke's tenant. Without either,
/// a tenant operation is answered `tenant_mismatch` (no claim).
pub async fn invoke(
    state: &State,
    payload: Value,
    invoke_tenant: Option<&str>,
) -> Result<EventResponse, FunctionError> {
    state.count_invocation();
    let mut event = Event::parse(payload)?;
    let op = event.op()?;
    let record = event.take_record()?;
    let body = match op {
        Op::Probe(action) => event.probe_body(action),
        _ => record,
    };
    let (tenant, claimed_tenant) = match (event.tenant.as_deref(), invoke_tenant) {
        (Some(tenant), Some(claimed)) => (tenant, Some(claimed)),
        (Some(tenant), None) => (tenant, Some(tenant)),
        (None, Some(claimed)) => (claimed, Some(claimed)),
        (None, None) => ("", None),
    };
    let response = match (op, claimed_tenant, event.us) {
        // Like a compute without `?us=` over HTTP, which routing refuses before anything else.
        (Op::Compute, _, None) => Response::error(ErrorKind::BadCompute),
        // Like a probe path over HTTP without `--probes`: it does not exist.
        (op, _, _) if op.is_probe() && !state.probes_enabled() => Response::error(ErrorKind::NoRoute),
        // Without a claim the handler would call the empty tenant malformed (`bad_tenant`).
        (op, None, _) if op.is_tenant_op() => Response::error(ErrorKind::TenantMissing),
        (_, _, us) => {
            let key = event.key.as_deref().unwrap_or_default();
            let channel = event.channel.as_deref().unwrap_or_default();
            let request = Request { op, tenant, claimed_tenant, key, body, compute_us: us.unwrap_or(0), channel };
            handler::handle(state, request).await
        }
    };
    match response.error {
        Some(ErrorKind::Injected) => Err(FunctionError::InjectedFault),
        _ => Ok(EventResponse::from(response)),
    }
}

/// Why Lambda mode could not run.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("{RUNTIME_API_ENV} is not set; `tenant-app lambda` runs as a Lambda function's runtime")]
    NoRuntimeApi,
    #[error("{RUNTIME_API_ENV} `{0}` is not a host:port")]
    BadRuntimeApi(String),
    #[error("environment variable {name} {problem} (Lambda sets it for every function)")]
    Environment { name: &'static str, problem: &'static str },
    #[error("failed to install the SIGTERM/SIGINT handlers")]
    Signals(#[source] io::Error),
    #[error("failed to set up the handler state")]
    State(#[source] StateError),
    #[error("the Lambda runtime stopped")]
    Runtime(#[source] lambda_runtime::Error),
}

/// Runs the `lambda` command: INIT (state, signal handlers), then one invocation at a time from
/// the Runtime API until it fails or SIGTERM/SIGINT arrives (exit 0). An unusable configuration
/// is posted to `/runtime/init/error` before returning the error.
///
/// Meant for a current-thread runtime: invocations are sequential anyway, and lambda_runtime
/// sets `_X_AMZN_TRACE_ID` with `std::env::set_var` per invocation, which is only sound while no
/// other thread reads the environment.
pub async fn run(args: &LambdaArgs) -> Result<(), LambdaError> {
    let endpoint = runtime_api(std::env::var(RUNTIME_API_ENV).ok())?;
    let state = match init(args, |name| std::env::var(name).ok()) {
        Ok(state) => state,
        Err((error_type, e)) => {
            report_init_error(&endpoint, error_type, &e).await;
            return Err(e);
        }
    };
    // Handlers before the first `/next`: as PID 1 of a pid namespace (the local emulator) a
    // signal without a handler is dropped.
    let shutdown = crate::http::shutdown_signal().map_err(LambdaError::Signals)?;
    let id = state.identity();
    tracing::info!(hygiene = id.hygiene, tenant = id.tenant.as_deref(), pid = id.pid, "lambda runtime ready");

    let state = &state;
    let handler = service_fn(move |event: LambdaEvent<Value>| async move {
        let (payload, context) = event.into_parts();
        invoke(state, payload, context.tenant_id.as_deref()).await
    });
    tokio::select! {
        result = lambda_runtime::run(handler) => result.map_err(LambdaError::Runtime),
        signal = shutdown => {
            tracing::info!(signal, "shutting down");
            Ok(())
        }
    }
}

/// The Runtime API endpoint, checked here because lambda_runtime panics on a bad one.
fn runtime_api(value: Option<String>) -> Result<hyper::Uri, LambdaError> {
    let value = value.filter(|v| !v.is_empty()).ok_or(LambdaError::NoRuntimeApi)?;
    match value.parse::<hyper::Uri>() {
        Ok(uri) if uri.authority().is_some() => Ok(uri),
        _ => Err(LambdaError::BadRuntimeApi(value)),
    }
}

/// Everything INIT does, with the `errorType` to report when it fails.
fn init(args: &LambdaArgs, env: impl Fn(&str) -> Option<String>) -> Result<State, (&'static str, LambdaError)> {
    check_function_env(env).map_err(|e| (INVALID_ENVIRONMENT, e))?;
    State::new(args.app.config()).map_err(|e| (INVALID_CONFIG, LambdaError::State(e)))
}

/// The variables lambda_runtime's `Config::from_env` would otherwise panic without.
fn check_function_env(env: impl Fn(&str) -> Option<String>) -> Result<(), LambdaError> {
    for name in [FUNCTION_NAME_ENV, FUNCTION_VERSION_ENV, FUNCTION_MEMORY_ENV] {
        if env(name).is_none() {
            return Err(LambdaError::Environment { name, problem: "is not set" });
        }
    }
    if env(FUNCTION_MEMORY_ENV).and_then(|m| m.parse::<i32>().ok()).is_none() {
        return Err(LambdaError::Environment { name: FUNCTION_MEMORY_ENV, problem: "is not an integer (MB)" });
    }
    Ok(())
}

/// Posts `{"errorType": ..., "errorMessage": ...}` to `/runtime/init/error`, so Lambda (or the
/// harness) reports why INIT failed instead of only that the runtime exited. Best effort: the
/// caller exits with the error either way.
pub async fn report_init_error(endpoint: &hyper::Uri, error_type: &str, error: &(dyn std::error::Error + 'static)) {
    use lambda_runtime_api_client::{PooledClient, body::Body, build_request};

    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(message, ": {cause}");
        source = cause.source();
    }
    let diagnostic = Diagnostic { error_type: error_type.to_owned(), error_message: message };
    let body = serde_json::to_vec(&diagnostic).expect("a diagnostic serialises");
    let request = build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a static request is valid");
    let client = PooledClient::builder().with_endpoint(endpoint.clone()).build();
    match client.call(request).await {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => tracing::warn!(status = %response.status(), "init error report refused"),
        Err(e) => tracing::warn!(error = %e, "failed to report the init error"),
    }
}

/// [`report_init_error`] for the command line, which fails before any runtime exists: when
/// started by Lambda (`AWS_LAMBDA_RUNTIME_API` set), a usage error is an INIT failure too.
pub fn report_usage_error(message: &str) {
    let Ok(endpoint) = runtime_api(std::env::var(RUNTIME_API_ENV).ok()) else { return };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    let error = io::Error::other(message.trim_end().to_owned());
    runtime.block_on(report_init_error(&endpoint, INVALID_CONFIG, &error));
}

#[cfg(test)]
mod tests;
