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

use crate::protocol::{self, H_FUNCTION_ERROR_TYPE, H_INVOCATION_ID, error_types};
use crate::state::{Delivery, NextStep, Posted, Reply, Shared};

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const PATH_PREFIX: &str = "/2018-06-01/runtime/";

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
        None => None,
    };
    let Some(route) = route else {
        let message = format!("no Runtime API resource at {path}");
        return api_error(StatusCode::NOT_FOUND, error_types::NOT_FOUND, &message);
    };
    let (wanted, allow) = if matches!(route, Route::Next) { (Method::GET, "GET") } else { (Method::POST, "POST") };
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
        Err(size) => Posted::TooLarge { size },
        Ok(bytes) if is_error => Posted::Error { error_type_header: error_type_header(&parts.headers), body: bytes },
        Ok(bytes) => Posted::Response(bytes),
    };
    reply_response(shared.complete(request_id, parts.headers.get(H_INVOCATION_ID), posted, at))
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
