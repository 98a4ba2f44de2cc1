//! What a request comes to, in HTTP terms: the [`Response`] every front end turns into its own
//! format, and the [`ErrorKind`]s a request can fail with. A leaf module, so the handler and the
//! probe agent (which the handler calls) share it without importing each other.

use bytes::Bytes;

pub const CONTENT_JSON: &str = "application/json";
pub const CONTENT_TEXT: &str = "text/plain; charset=utf-8";
pub const CONTENT_BYTES: &str = "application/octet-stream";

/// The outcome, in HTTP terms because every front end (HTTP, Lambda function URLs and API
/// Gateway events) speaks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
    pub content_type: &'static str,
    /// Why the request failed, when it did; the body then names the same kind. Front ends that
    /// report some kinds out of band (Lambda turns `Injected` into a function error) match on it.
    pub error: Option<ErrorKind>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Bytes) -> Self {
        Response { status, body, content_type, error: None }
    }

    pub fn empty(status: u16) -> Self {
        Response::new(status, CONTENT_TEXT, Bytes::new())
    }

    /// The JSON error body `{"error": ..., "kind": ...}` with the kind's status.
    pub fn error(kind: ErrorKind) -> Self {
        Response {
            status: kind.status(),
            body: Bytes::from_static(kind.body().as_bytes()),
            content_type: CONTENT_JSON,
            error: Some(kind),
        }
    }
}

/// Declares the error kinds with their status, machine-readable kind and message, and renders
/// each JSON body at compile time so an error answer allocates nothing.
macro_rules! error_kinds {
    ($($(#[$doc:meta])* $variant:ident => $status:literal, $kind:literal, $message:literal;)*) => {
        /// Every way a request can fail; `kind` is the stable name clients match on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorKind { $($(#[$doc])* $variant,)* }

        impl ErrorKind {
            pub const ALL: &[ErrorKind] = &[$(ErrorKind::$variant,)*];

            pub fn status(self) -> u16 {
                match self { $(ErrorKind::$variant => $status,)* }
            }

            pub fn kind(self) -> &'static str {
                match self { $(ErrorKind::$variant => $kind,)* }
            }

            pub fn message(self) -> &'static str {
                match self { $(ErrorKind::$variant => $message,)* }
            }

            fn body(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => concat!("{\"error\":\"", $message, "\",\"kind\":\"", $kind, "\"}"),)*
                }
            }
        }
    };
}

error_kinds! {
    /// The path's tenant id is not `[a-z0-9][a-z0-9-]{0,31}`.
    BadTenant => 400, "bad_tenant", "tenant id must match [a-z0-9][a-z0-9-]{0,31}";
    /// No `x-tenant-id` header (or, in Lambda mode, neither an event tenant nor an invoke tenant id).
    TenantMissing => 400, "tenant_mismatch", "no tenant claim (x-tenant-id header or Lambda tenant id)";
    /// The header (the Lambda invoke's tenant id) names another tenant than the path (the event).
    TenantMismatch => 400, "tenant_mismatch", "the tenant claim (x-tenant-id header or Lambda tenant id) names another tenant than the request";
    /// A silo instance was asked for a tenant it does not serve.
    WrongTenant => 403, "wrong_tenant", "this instance serves another tenant";
    BadKey => 400, "bad_key", "record key must match [A-Za-z0-9_-][A-Za-z0-9._-]{0,127}";
    /// `us` missing, not a number, or above the cap.
    BadCompute => 400, "bad_compute", "compute needs ?us=N with N an integer in 0..=1000000";
    NotFound => 404, "not_found", "no such record";
    NoRoute => 404, "no_route", "no such resource";
    MethodNotAllowed => 405, "method_not_allowed", "method not allowed on this resource";
    TooLarge => 413, "too_large", "record is larger than the configured maximum";
    /// The request body could not be read.
    BadBody => 400, "bad_body", "request body could not be read";
    /// A fault injected by `--fault-error-rate`.
    Injected => 500, "injected", "injected fault";
    /// The record file could not be read or written.
    Storage => 500, "storage", "record storage failed";
    /// A probe named a channel that does not exist.
    BadChannel => 400, "bad_channel", "probe channel must be one of tmp, mem, env, fd, proc, net, cred, rng";
    /// A plant's body is not exactly one canary.
    BadCanary => 400, "bad_canary", "a plant's body must be one canary: isobench-canary:v1:[A-Za-z0-9._:-]{1,200}";
    /// A sweep's body is not usable parameters.
    BadParams => 400, "bad_params", "sweep parameters must be a JSON object with peers (at most 1024), timeout_ms (1..=10000) and credential_paths (at most 256) only";
}
