//! Wire-level names of the Lambda Runtime API, version `2018-06-01`, each with where it is
//! documented.
//!
//! Sources, referred to below by their short names:
//! - **guide**: AWS Lambda Developer Guide, "Using the Lambda runtime API for custom runtimes"
//!   (`docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html`).
//! - **openapi**: the OpenAPI 3.0 document the guide links (`samples/runtime-api.zip`,
//!   `info.version: 1.0.3`): status codes per path, `StatusResponse` and `ErrorResponse` schemas.
//! - **RIE**: `aws/aws-lambda-runtime-interface-emulator`, the open-source copy of Lambda's own
//!   Runtime API server (`lambda/rapi/...`): the exact `errorType` strings and which check wins.
//! - **RICs**: the runtime interface clients (`aws/aws-lambda-rust-runtime` 1.5,
//!   `awslabs/aws-lambda-cpp` PR #211 and #221, the Python/Node/Ruby/.NET/Java clients), for the
//!   two headers the guide does not list yet: the tenant id and the per-invoke invocation id.
//! - **ext guide**: AWS Lambda Developer Guide, "Using the Lambda Extensions API to create
//!   extensions" (`docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html`), its
//!   "Extensions API reference" (version `2020-01-01`) and the lifecycle sections (Invoke,
//!   Shutdown).
//! - **streaming guide**: "Response streaming for Lambda functions"
//!   (`docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html`) and the custom
//!   runtime guide's response streaming section (`runtimes-custom.html#runtimes-custom-response-streaming`).

use hyper::header::HeaderName;

/// The Runtime API version this server implements; every path starts with `/{API_VERSION}`.
pub const API_VERSION: &str = "2018-06-01";

/// The Extensions API version, served on the same address; its paths start with `/{EXTENSIONS_API_VERSION}`.
pub const EXTENSIONS_API_VERSION: &str = "2020-01-01";

/// Header names, spelled as documented (HTTP header names are case-insensitive).
pub mod headers {
    /// Request id of the invocation (`/next` response). Source: guide.
    pub const REQUEST_ID: &str = "Lambda-Runtime-Aws-Request-Id";
    /// Deadline in Unix milliseconds (`/next` response). Source: guide.
    pub const DEADLINE_MS: &str = "Lambda-Runtime-Deadline-Ms";
    /// ARN of the invoked function, version or alias (`/next` response). Source: guide.
    pub const INVOKED_FUNCTION_ARN: &str = "Lambda-Runtime-Invoked-Function-Arn";
    /// X-Ray tracing header (`/next` response). Source: guide.
    pub const TRACE_ID: &str = "Lambda-Runtime-Trace-Id";
    /// Mobile SDK client context, only when set (`/next` response). Source: guide.
    pub const CLIENT_CONTEXT: &str = "Lambda-Runtime-Client-Context";
    /// Cognito identity, only when set (`/next` response). Source: guide.
    pub const COGNITO_IDENTITY: &str = "Lambda-Runtime-Cognito-Identity";
    /// Tenant id of a function in tenant isolation mode (`/next` response). Source: RICs
    /// (`lambda_runtime::Context::tenant_id` reads `lambda-runtime-aws-tenant-id`; aws-lambda-cpp
    /// PR #211); the guide's tenant-isolation pages say the id is on the handler's context.
    pub const TENANT_ID: &str = "Lambda-Runtime-Aws-Tenant-Id";
    /// Per-invoke nonce sent on `/next`, echoed by newer runtimes on `/response` and `/error` so a
    /// stale result of a timed-out invoke cannot complete a later invoke that reuses its request
    /// id. Source: RICs (aws-lambda-rust-runtime PR #1159, aws-lambda-dotnet PR #2508, 2026).
    pub const INVOCATION_ID: &str = "Lambda-Runtime-Invocation-Id";
    /// Optional error category on `/error` and `/init/error` requests; also a trailer of a
    /// streamed `/response` that failed mid-stream. Source: guide, streaming guide.
    pub const FUNCTION_ERROR_TYPE: &str = "Lambda-Runtime-Function-Error-Type";
    /// Trailer of a streamed `/response` that failed mid-stream: the error body, base64.
    /// Source: streaming guide (`lambda_runtime` 1.5 declares both trailers).
    pub const FUNCTION_ERROR_BODY: &str = "Lambda-Runtime-Function-Error-Body";
    /// `streaming` on a `/response` sent with `Transfer-Encoding: chunked`. Source: streaming guide.
    pub const FUNCTION_RESPONSE_MODE: &str = "Lambda-Runtime-Function-Response-Mode";
    /// The extension's file name, on `/extension/register`. Source: ext guide (Register).
    pub const EXTENSION_NAME: &str = "Lambda-Extension-Name";
    /// The id `/extension/register` answers with, required on every later extension call.
    /// Source: ext guide.
    pub const EXTENSION_IDENTIFIER: &str = "Lambda-Extension-Identifier";
    /// Optional on `/extension/register`: `accountId` adds the account id to the answer.
    /// Source: ext guide (Register).
    pub const EXTENSION_ACCEPT_FEATURE: &str = "Lambda-Extension-Accept-Feature";
    /// Required on `/extension/init/error` and `/extension/exit/error`. Source: ext guide.
    pub const EXTENSION_FUNCTION_ERROR_TYPE: &str = "Lambda-Extension-Function-Error-Type";
    /// A fresh id on every `/extension/event/next` answer. Source: RIE
    /// (`rendering.RenderAgentEvent`).
    pub const EXTENSION_EVENT_IDENTIFIER: &str = "Lambda-Extension-Event-Identifier";
}

/// `errorType` values of the Runtime API's own `ErrorResponse` bodies, and of the function errors
/// it synthesises.
pub mod error_types {
    /// 400 on `/response` or `/error` when the path's request id is not the current invocation's.
    /// Source: RIE `rendering.RenderInvalidRequestID` (message `Invalid request ID`), reached from
    /// the `AwsRequestIDValidator` middleware; openapi lists 400 for both paths.
    pub const INVALID_REQUEST_ID: &str = "InvalidRequestID";
    /// 403 when the call is not allowed in the runtime's state: a second `/response` or `/error`
    /// for an invocation that already has a result, `/init/error` after init ended, `/next` after
    /// an init error or while an invocation is still unanswered. Source: RIE
    /// `rendering.ErrorTypeInvalidStateTransition` from `core/states.go` (`ResponseSent` allows
    /// neither `InvocationResponse` nor `InvocationErrorResponse`); openapi lists 403 on every path.
    pub const INVALID_STATE_TRANSITION: &str = "InvalidStateTransition";
    /// 413 on `/response` when the payload exceeds the limit. Source: RIE
    /// `rendering.RenderRequestEntityTooLarge`; openapi lists 413 on `/response` only.
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    /// 410 on `/response` or `/error` whose echoed invocation id is not the current one (a stale
    /// result). Sources: RICs only; the .NET client names the rejection `ErrorRuntimeInvokeTimeout`
    /// and `lambda_runtime` logs "invocation timed out or response was stale" on a 410. The exact
    /// `errorType` of Lambda's body is not published; this name is the one those clients use.
    pub const INVOKE_TIMEOUT: &str = "ErrorRuntimeInvokeTimeout";
    /// The function error an oversized response turns into. Source: RIE
    /// `functionResponseSizeTooLargeType`, the type Lambda's Invoke API reports for it.
    pub const RESPONSE_SIZE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";
    /// Local choice (chi, RIE's router, answers a bare `404 page not found`): unknown path.
    pub const NOT_FOUND: &str = "NotFound";
    /// Local choice: a known path with the wrong method (405 with an `Allow` header).
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// Used when an `/error` body carries no `errorType` and no header names one; the Invoke API's
    /// `X-Amz-Function-Error` header says `Unhandled` for runtime-reported errors.
    pub const UNHANDLED: &str = "Unhandled";
    /// `InvalidRequestFormat`: an unreadable body (e.g. `/extension/register` that is not JSON,
    /// answered 403 as RIE does). Source: RIE `errInvalidRequestFormat`.
    pub const INVALID_REQUEST_FORMAT: &str = "InvalidRequestFormat";

    // Extensions API refusals. The ext guide lists 400/403/500 per path without `errorType`s;
    // these are RIE's (`rapi/handler/constants.go`, `rapi/middleware`), all answered 403.
    /// No `Lambda-Extension-Identifier` header.
    pub const EXTENSION_MISSING_IDENTIFIER: &str = "Extension.MissingExtensionIdentifier";
    /// A `Lambda-Extension-Identifier` that is not a UUID.
    pub const EXTENSION_INVALID_IDENTIFIER: &str = "Extension.InvalidExtensionIdentifier";
    /// A well-formed identifier no extension was given.
    pub const EXTENSION_UNKNOWN_IDENTIFIER: &str = "Extension.UnknownExtensionIdentifier";
    /// An empty or missing `Lambda-Extension-Name`.
    pub const EXTENSION_INVALID_NAME: &str = "Extension.InvalidExtensionName";
    /// `/extension/register` after INIT (the runtime's first `/next`).
    pub const EXTENSION_REGISTRATION_CLOSED: &str = "Extension.RegistrationClosed";
    /// A call the extension's state does not allow, or a name registered twice.
    pub const EXTENSION_INVALID_STATE: &str = "Extension.InvalidExtensionState";
    /// No `Lambda-Extension-Function-Error-Type` on an init or exit error.
    pub const EXTENSION_MISSING_HEADER: &str = "Extension.MissingHeader";
    /// More than [`crate::MAX_EXTENSIONS`] extensions.
    pub const EXTENSION_TOO_MANY: &str = "Extension.TooManyExtensions";
    /// An event other than `INVOKE` or `SHUTDOWN` in `/extension/register`.
    pub const EXTENSION_INVALID_EVENT_TYPE: &str = "Extension.InvalidEventType";
}

pub(crate) const H_REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
pub(crate) const H_DEADLINE_MS: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
pub(crate) const H_FUNCTION_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
pub(crate) const H_TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
pub(crate) const H_CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
pub(crate) const H_COGNITO_IDENTITY: HeaderName = HeaderName::from_static("lambda-runtime-cognito-identity");
pub(crate) const H_TENANT_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-tenant-id");
pub(crate) const H_INVOCATION_ID: HeaderName = HeaderName::from_static("lambda-runtime-invocation-id");
pub(crate) const H_FUNCTION_ERROR_TYPE: HeaderName = HeaderName::from_static("lambda-runtime-function-error-type");
pub(crate) const H_FUNCTION_ERROR_BODY: HeaderName = HeaderName::from_static("lambda-runtime-function-error-body");
pub(crate) const H_RESPONSE_MODE: HeaderName = HeaderName::from_static("lambda-runtime-function-response-mode");
pub(crate) const H_EXTENSION_NAME: HeaderName = HeaderName::from_static("lambda-extension-name");
pub(crate) const H_EXTENSION_ID: HeaderName = HeaderName::from_static("lambda-extension-identifier");
pub(crate) const H_EXTENSION_ACCEPT_FEATURE: HeaderName = HeaderName::from_static("lambda-extension-accept-feature");
pub(crate) const H_EXTENSION_ERROR_TYPE: HeaderName = HeaderName::from_static("lambda-extension-function-error-type");
pub(crate) const H_EXTENSION_EVENT_ID: HeaderName = HeaderName::from_static("lambda-extension-event-identifier");

/// RIE's state names, used in `InvalidStateTransition` messages (`core/runtime_state_names.go`).
pub(crate) mod states {
    pub const INIT_ERROR: &str = "InitError";
    pub const READY: &str = "Ready";
    pub const RUNNING: &str = "Running";
    pub const INVOCATION_RESPONSE: &str = "InvocationResponse";
    pub const INVOCATION_ERROR_RESPONSE: &str = "InvocationErrorResponse";
    pub const RESPONSE_SENT: &str = "RuntimeResponseSentState";
    // Extension states (`core/agentsmap.go` and friends).
    pub const EXT_REGISTERED: &str = "Registered";
    pub const EXT_READY: &str = "Ready";
    pub const EXT_RUNNING: &str = "Running";
    pub const EXT_INIT_ERROR: &str = "InitError";
    pub const EXT_EXITED: &str = "Exited";
}

/// Message of an extension's `Extension.InvalidExtensionState`, in RIE's format
/// (`StateTransitionFailedForExtensionMessageFormat`).
pub(crate) fn extension_transition_message(from: &str, to: &str, id: &str) -> String {
    format!("State transition from {from} to {to} failed for extension {id}. Error: State transition is not allowed")
}

/// The `/extension/register` answer (ext guide, Register: "Response body contains the function
/// name, function version, and handler name"; `accountId` only with `Lambda-Extension-Accept-Feature:
/// accountId`).
pub(crate) fn register_body(name: &str, version: &str, handler: &str, account_id: Option<&str>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct RegisterResponse<'a> {
        function_name: &'a str,
        function_version: &'a str,
        handler: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        account_id: Option<&'a str>,
    }
    serde_json::to_vec(&RegisterResponse { function_name: name, function_version: version, handler, account_id })
        .expect("serialising strings cannot fail")
}

/// An `INVOKE` event (ext guide, Invoke phase: `eventType`, `deadlineMs`, `requestId`,
/// `invokedFunctionArn`, `tracing` of type `X-Amzn-Trace-Id`).
pub(crate) fn invoke_event(deadline_ms: u128, request_id: &str, arn: &str, trace: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "eventType": "INVOKE",
        "deadlineMs": deadline_ms as u64,
        "requestId": request_id,
        "invokedFunctionArn": arn,
        "tracing": {"type": "X-Amzn-Trace-Id", "value": trace},
    }))
    .expect("serialising a JSON value cannot fail")
}

/// A `SHUTDOWN` event (ext guide, Shutdown phase). The guide's example calls `deadlineMs` "time
/// remaining"; Lambda (and RIE) send the deadline in Unix milliseconds, as for `INVOKE`.
/// `shutdownReason` is lowercase on the wire (`spindown`, `timeout`, `failure`), as RIE and the
/// extension clients (e.g. `lambda-extension`) spell it.
pub(crate) fn shutdown_event(reason: &str, deadline_ms: u128) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "eventType": "SHUTDOWN",
        "shutdownReason": reason,
        "deadlineMs": deadline_ms as u64,
    }))
    .expect("serialising a JSON value cannot fail")
}

/// The body of `/extension/register`: `{"events": [...]}` (`events` optional). Unknown fields are
/// ignored, as RIE does.
#[derive(serde::Deserialize)]
pub(crate) struct RegisterRequest {
    #[serde(default)]
    pub events: Vec<String>,
}

/// Message of an `InvalidStateTransition` error, in RIE's format
/// (`StateTransitionFailedForRuntimeMessageFormat`).
pub(crate) fn transition_message(from: &str, to: &str) -> String {
    format!("State transition from {from} to {to} failed for runtime. Error: State transition is not allowed")
}

/// Body of every 202: openapi `StatusResponse`, as RIE renders it.
pub(crate) const ACCEPTED_BODY: &[u8] = br#"{"status":"OK"}"#;

/// An openapi `ErrorResponse` body.
pub(crate) fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct ErrorResponse<'a> {
        #[serde(rename = "errorMessage")]
        error_message: &'a str,
        #[serde(rename = "errorType")]
        error_type: &'a str,
    }
    serde_json::to_vec(&ErrorResponse { error_message: message, error_type })
        .expect("serialising two strings cannot fail")
}

/// The `errorType` of an `/error` body (`{"errorMessage", "errorType", "stackTrace"}`), if the body
/// is JSON and has one.
pub(crate) fn body_error_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorRequest {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
    }
    serde_json::from_slice::<ErrorRequest>(body).ok()?.error_type.filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_constants_match_the_documented_spelling() {
        for (name, spelled) in [
            (&H_REQUEST_ID, headers::REQUEST_ID),
            (&H_DEADLINE_MS, headers::DEADLINE_MS),
            (&H_FUNCTION_ARN, headers::INVOKED_FUNCTION_ARN),
            (&H_TRACE_ID, headers::TRACE_ID),
            (&H_CLIENT_CONTEXT, headers::CLIENT_CONTEXT),
            (&H_COGNITO_IDENTITY, headers::COGNITO_IDENTITY),
            (&H_TENANT_ID, headers::TENANT_ID),
            (&H_INVOCATION_ID, headers::INVOCATION_ID),
            (&H_FUNCTION_ERROR_TYPE, headers::FUNCTION_ERROR_TYPE),
            (&H_FUNCTION_ERROR_BODY, headers::FUNCTION_ERROR_BODY),
            (&H_RESPONSE_MODE, headers::FUNCTION_RESPONSE_MODE),
            (&H_EXTENSION_NAME, headers::EXTENSION_NAME),
            (&H_EXTENSION_ID, headers::EXTENSION_IDENTIFIER),
            (&H_EXTENSION_ACCEPT_FEATURE, headers::EXTENSION_ACCEPT_FEATURE),
            (&H_EXTENSION_ERROR_TYPE, headers::EXTENSION_FUNCTION_ERROR_TYPE),
            (&H_EXTENSION_EVENT_ID, headers::EXTENSION_EVENT_IDENTIFIER),
        ] {
            assert_eq!(name.as_str(), spelled.to_ascii_lowercase());
        }
    }

    #[test]
    fn error_body_is_the_documented_shape() {
        let v: serde_json::Value =
            serde_json::from_slice(&error_body("InvalidRequestID", "Invalid request ID")).unwrap();
        assert_eq!(v, serde_json::json!({"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}));
    }

    #[test]
    fn body_error_type_reads_only_a_non_empty_string() {
        assert_eq!(
            body_error_type(br#"{"errorMessage":"x","errorType":"Boom","stackTrace":[]}"#).as_deref(),
            Some("Boom")
        );
        assert_eq!(body_error_type(br#"{"errorType":""}"#), None);
        assert_eq!(body_error_type(b"not json"), None);
        assert_eq!(body_error_type(br#"{"errorType":7}"#), None);
    }
}
