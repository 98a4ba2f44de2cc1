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

use hyper::header::HeaderName;

/// The Runtime API version this server implements; every path starts with `/{API_VERSION}`.
pub const API_VERSION: &str = "2018-06-01";

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
    /// Optional error category on `/error` and `/init/error` requests. Source: guide.
    pub const FUNCTION_ERROR_TYPE: &str = "Lambda-Runtime-Function-Error-Type";
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

/// RIE's state names, used in `InvalidStateTransition` messages (`core/runtime_state_names.go`).
pub(crate) mod states {
    pub const INIT_ERROR: &str = "InitError";
    pub const READY: &str = "Ready";
    pub const RUNNING: &str = "Running";
    pub const INVOCATION_RESPONSE: &str = "InvocationResponse";
    pub const INVOCATION_ERROR_RESPONSE: &str = "InvocationErrorResponse";
    pub const RESPONSE_SENT: &str = "RuntimeResponseSentState";
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
