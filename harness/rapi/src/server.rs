//! The HTTP side: accept loop, one hyper HTTP/1.1 keep-alive connection task per runtime
//! connection, and the router. No per-request logging: this is the warm-invoke hot path.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::protocol::{self, H_EXTENSION_ID, H_FUNCTION_ERROR_TYPE, H_INVOCATION_ID, error_types};
use crate::state::{Delivery, ExtStep, NextStep, Posted, Received, Reply, Shared};

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const PATH_PREFIX: &str = "/2018-06-01/runtime/";
const EXT_PATH_PREFIX: &str = "/2020-01-01/extension/";
/// Bodies of the Extensions API's own requests (register, init and exit errors) are small.
const EXT_BODY_LIMIT: usize = 1024 * 1024;

/// Accept runtime connections until `stop` fires (or its sender is dropped). Dropping the
/// `JoinSet` on the way out aborts every connection task, including parked `/next` calls.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: oneshot::Receiver<()>) {
    let mut stop = pin!(stop);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, shared.clone()));
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "runtime API: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Small request/response pairs on loopback: Nagle would add delayed-ACK stalls.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(&shared, req).await) }
    });
    // Errors here are the runtime hanging up or sending garbage; the connection just ends.
    let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
}

enum Route<'a> {
    Next,
    InitError,
    Response(&'a str),
    Error(&'a str),
    ExtRegister,
    ExtNext,
    ExtInitError,
    ExtExitError,
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let route = match path.strip_prefix(PATH_PREFIX) {
        Some("invocation/next") => Some(Route::Next),
        Some("init/error") => Some(Route::InitError),
        Some(rest) => match rest.strip_prefix("invocation/").and_then(|r| r.split_once('/')) {
            Some((id, "response")) if !id.is_empty() => Some(Route::Response(id)),
            Some((id, "error")) if !id.is_empty() => Some(Route::Error(id)),
            _ => None,
        },
        None => match path.strip_prefix(EXT_PATH_PREFIX) {
            Some("register") => Some(Route::ExtRegister),
            Some("event/next") => Some(Route::ExtNext),
            Some("init/error") => Some(Route::ExtInitError),
            Some("exit/error") => Some(Route::ExtExitError),
            _ => None,
        },
    };
    let Some(route) = route else {
        let message = format!("no Runtime API resource at {path}");
        return api_error(StatusCode::NOT_FOUND, error_types::NOT_FOUND, &message);
    };
    let get = matches!(route, Route::Next | Route::ExtNext);
    let (wanted, allow) = if get { (Method::GET, "GET") } else { (Method::POST, "POST") };
    if req.method() != wanted {
        let message = format!("{} is not allowed on {path}; use {wanted}", req.method());
        let mut resp = api_error(StatusCode::METHOD_NOT_ALLOWED, error_types::METHOD_NOT_ALLOWED, &message);
        resp.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        return resp;
    }
    match route {
        Route::Next => next(shared).await,
        Route::Response(id) => {
            let id = id.to_owned();
            post_result(shared, req, &id, false).await
        }
        Route::Error(id) => {
            let id = id.to_owned();
            post_result(shared, req, &id, true).await
        }
        Route::InitError => init_error(shared, req).await,
        Route::ExtRegister => register_extension(shared, req).await,
        Route::ExtNext => match extension_id(&req) {
            Ok(id) => extension_next(shared, &id).await,
            Err(resp) => resp,
        },
        Route::ExtInitError => extension_error(shared, req, true).await,
        Route::ExtExitError => extension_error(shared, req, false).await,
    }
}

/// `GET /next`: park until an invocation is queued (or the call is refused).
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    loop {
        // Register interest before looking, so a `notify_waiters` between the look and the
        // await is not lost.
        let mut notified = pin!(shared.next_wakeup.notified());
        notified.as_mut().enable();
        match shared.poll_next() {
            NextStep::Deliver(delivery) => return deliver(shared, delivery),
            NextStep::Reject(reply) => return reply_response(reply),
            NextStep::Wait => notified.await,
        }
    }
}

fn deliver(shared: &Shared, d: Delivery) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(d.payload));
    let h = resp.headers_mut();
    h.reserve(9);
    h.insert(CONTENT_TYPE, APPLICATION_JSON);
    h.insert(protocol::H_REQUEST_ID, d.request_id_hv);
    h.insert(protocol::H_DEADLINE_MS, HeaderValue::from(d.deadline_ms as u64));
    h.insert(protocol::H_FUNCTION_ARN, shared.arn_hv.clone());
    h.insert(protocol::H_TRACE_ID, d.trace_hv);
    h.insert(H_INVOCATION_ID, d.invocation_id_hv);
    if let Some(v) = d.client_context_hv {
        h.insert(protocol::H_CLIENT_CONTEXT, v);
    }
    if let Some(v) = d.cognito_hv {
        h.insert(protocol::H_COGNITO_IDENTITY, v);
    }
    if let Some(v) = d.tenant_hv {
        h.insert(protocol::H_TENANT_ID, v);
    }
    resp
}

/// `POST /{id}/response` and `POST /{id}/error`.
async fn post_result(
    shared: &Shared,
    req: Request<Incoming>,
    request_id: &str,
    is_error: bool,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    if !is_error && is_streaming(&parts.headers) {
        return post_streamed(shared, &parts.headers, body, request_id).await;
    }
    let limit = shared.config.max_response_bytes;
    let declared = content_length(&parts.headers);
    let body = if declared.is_some_and(|n| n > limit as u64) {
        // Known too large: do not read it (hyper then closes the connection after answering).
        Err(declared)
    } else {
        match read_limited(body, limit).await {
            Ok(bytes) => Ok(bytes),
            Err(ReadError::TooLarge) => Err(declared),
            Err(ReadError::Io) => {
                return api_error(StatusCode::BAD_REQUEST, "InvalidRequestFormat", "failed to read the request body");
            }
        }
    };
    let at = Instant::now();
    let posted = match body {
        Err(size) => Posted::TooLarge { size, limit },
        Ok(bytes) if is_error => Posted::Error { error_type_header: error_type_header(&parts.headers), body: bytes },
        Ok(bytes) => Posted::Response(bytes),
    };
    let received = Received { first_byte: at, at, streamed: false };
    reply_response(shared.complete(request_id, parts.headers.get(H_INVOCATION_ID), posted, received))
}

/// `Lambda-Runtime-Function-Response-Mode: streaming` (streaming guide).
fn is_streaming(headers: &hyper::HeaderMap) -> bool {
    headers.get(protocol::H_RESPONSE_MODE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"))
}

/// A streamed `/response`: read frame by frame, noting when the first body byte came, up to the
/// streamed limit; error trailers make it a function error even after body bytes (streaming
/// guide: the runtime reports a mid-stream error in the `Lambda-Runtime-Function-Error-Type` and
/// `Lambda-Runtime-Function-Error-Body` trailers, the body base64-encoded).
async fn post_streamed(
    shared: &Shared,
    headers: &hyper::HeaderMap,
    mut body: Incoming,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let limit = shared.config.max_streamed_response_bytes;
    let mut payload = bytes::BytesMut::new();
    let mut first_byte = None;
    let mut trailers = None;
    let mut too_large = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return api_error(
                StatusCode::BAD_REQUEST,
                error_types::INVALID_REQUEST_FORMAT,
                "failed to read the request body",
            );
        };
        match frame.into_data() {
            Ok(data) => {
                if !data.is_empty() {
                    first_byte.get_or_insert_with(Instant::now);
                }
                if payload.len() + data.len() > limit {
                    // Stop reading; hyper closes the connection after the 413.
                    too_large = true;
                    break;
                }
                payload.extend_from_slice(&data);
            }
            Err(frame) => trailers = frame.into_trailers().ok().or(trailers),
        }
    }
    let at = Instant::now();
    let received = Received { first_byte: first_byte.unwrap_or(at), at, streamed: true };
    let error_type = trailers.as_ref().and_then(error_type_header);
    let posted = match (too_large, error_type) {
        (true, _) => Posted::TooLarge { size: None, limit },
        (false, Some(error_type)) => {
            let body = trailers.as_ref().and_then(|t| t.get(protocol::H_FUNCTION_ERROR_BODY));
            Posted::Error { error_type_header: Some(error_type), body: decode_error_body(body) }
        }
        (false, None) => Posted::Response(payload.freeze()),
    };
    reply_response(shared.complete(request_id, headers.get(H_INVOCATION_ID), posted, received))
}

/// The `Lambda-Runtime-Function-Error-Body` trailer, base64-decoded (kept as sent if it is not
/// base64).
fn decode_error_body(value: Option<&HeaderValue>) -> Bytes {
    use base64::Engine as _;
    let Some(value) = value else { return Bytes::new() };
    match base64::engine::general_purpose::STANDARD.decode(value.as_bytes()) {
        Ok(decoded) => Bytes::from(decoded),
        Err(_) => Bytes::copy_from_slice(value.as_bytes()),
    }
}

/// `POST /2020-01-01/extension/register`. Checks in RIE's order: the name, the body, the events,
/// then the state (registration open, name unique, the limit).
async fn register_extension(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let name = parts.headers.get(protocol::H_EXTENSION_NAME).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if name.is_empty() {
        return api_error(StatusCode::FORBIDDEN, error_types::EXTENSION_INVALID_NAME, "Empty extension name");
    }
    let name = name.to_owned();
    let body = match read_limited(body, EXT_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return api_error(
                StatusCode::FORBIDDEN,
                error_types::INVALID_REQUEST_FORMAT,
                "failed to read the request body",
            );
        }
    };
    let request: protocol::RegisterRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return api_error(StatusCode::FORBIDDEN, error_types::INVALID_REQUEST_FORMAT, &e.to_string()),
    };
    let (mut invoke, mut shutdown) = (false, false);
    for event in &request.events {
        match event.as_str() {
            "INVOKE" => invoke = true,
            "SHUTDOWN" => shutdown = true,
            other => {
                let message = format!("{other}: unknown event type (use INVOKE or SHUTDOWN)");
                return api_error(StatusCode::FORBIDDEN, error_types::EXTENSION_INVALID_EVENT_TYPE, &message);
            }
        }
    }
    let with_account = parts
        .headers
        .get_all(protocol::H_EXTENSION_ACCEPT_FEATURE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|f| f.trim() == "accountId"));
    match shared.register_extension(&name, invoke, shutdown, with_account) {
        Ok((id, body)) => {
            let mut resp = json(StatusCode::OK, Bytes::from(body));
            if let Ok(v) = HeaderValue::from_str(&id) {
                resp.headers_mut().insert(H_EXTENSION_ID, v);
            }
            resp
        }
        Err(reply) => reply_response(reply),
    }
}

/// The `Lambda-Extension-Identifier` of an extension call, checked as RIE's middleware does.
#[allow(clippy::result_large_err, reason = "the error is the answer itself, built once on a refusal")]
fn extension_id(req: &Request<Incoming>) -> Result<String, Response<Full<Bytes>>> {
    let Some(value) = req.headers().get(H_EXTENSION_ID) else {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            error_types::EXTENSION_MISSING_IDENTIFIER,
            "Missing Lambda-Extension-Identifier header",
        ));
    };
    match value.to_str() {
        Ok(id) if crate::ids::valid_uuid(id) => Ok(id.to_ascii_lowercase()),
        _ => Err(api_error(
            StatusCode::FORBIDDEN,
            error_types::EXTENSION_INVALID_IDENTIFIER,
            "Invalid Lambda-Extension-Identifier",
        )),
    }
}

/// `GET /2020-01-01/extension/event/next`: park until an event is queued (or the call is refused).
async fn extension_next(shared: &Shared, id: &str) -> Response<Full<Bytes>> {
    loop {
        let mut notified = pin!(shared.ext_wakeup.notified());
        notified.as_mut().enable();
        match shared.poll_extension(id) {
            ExtStep::Deliver(event) => {
                let mut resp = json(StatusCode::OK, event);
                let h = resp.headers_mut();
                if let Ok(v) = HeaderValue::from_str(id) {
                    h.insert(H_EXTENSION_ID, v);
                }
                if let Ok(v) = HeaderValue::from_str(&crate::ids::new_request_id()) {
                    h.insert(protocol::H_EXTENSION_EVENT_ID, v);
                }
                return resp;
            }
            ExtStep::Reject(reply) => return reply_response(reply),
            ExtStep::Wait => notified.await,
        }
    }
}

/// `POST /2020-01-01/extension/init/error` and `/exit/error`.
async fn extension_error(shared: &Shared, req: Request<Incoming>, init: bool) -> Response<Full<Bytes>> {
    let id = match extension_id(&req) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let (parts, body) = req.into_parts();
    let error_type = parts.headers.get(protocol::H_EXTENSION_ERROR_TYPE).and_then(|v| v.to_str().ok());
    let Some(error_type) = error_type.filter(|t| !t.is_empty()).map(str::to_owned) else {
        let message = format!("{} not found", protocol::headers::EXTENSION_FUNCTION_ERROR_TYPE);
        return api_error(StatusCode::FORBIDDEN, error_types::EXTENSION_MISSING_HEADER, &message);
    };
    let body = match read_limited(body, EXT_BODY_LIMIT).await {
        Ok(b) => b,
        Err(ReadError::TooLarge) => Bytes::new(),
        Err(ReadError::Io) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                error_types::INVALID_REQUEST_FORMAT,
                "failed to read the request body",
            );
        }
    };
    let reply = if init {
        shared.extension_init_error(&id, error_type, body)
    } else {
        shared.extension_exit_error(&id, error_type, body)
    };
    reply_response(reply)
}

/// `POST /init/error`.
async fn init_error(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let limit = shared.config.max_response_bytes;
    let body = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => Bytes::from(protocol::error_body(
            "Runtime.InitError",
            &format!("init error body exceeded {limit} bytes and was dropped"),
        )),
        Err(ReadError::Io) => {
            return api_error(StatusCode::BAD_REQUEST, "InvalidRequestFormat", "failed to read the request body");
        }
    };
    reply_response(shared.init_error(error_type_header(&parts.headers), body))
}

enum ReadError {
    TooLarge,
    Io,
}

async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, ReadError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ReadError::TooLarge),
        Err(_) => Err(ReadError::Io),
    }
}

fn content_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn error_type_header(headers: &hyper::HeaderMap) -> Option<String> {
    let v = headers.get(H_FUNCTION_ERROR_TYPE)?.to_str().ok()?;
    (!v.is_empty()).then(|| v.to_owned())
}

fn reply_response(reply: Reply) -> Response<Full<Bytes>> {
    match reply {
        Reply::Accepted => json(StatusCode::ACCEPTED, Bytes::from_static(protocol::ACCEPTED_BODY)),
        Reply::Error { status, error_type, message } => api_error(status, error_type, &message),
    }
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, Bytes::from(protocol::error_body(error_type, message)))
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, APPLICATION_JSON);
    resp
}
