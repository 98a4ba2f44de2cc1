//! The HTTP/1.1 front end: maps hyper requests to [`handler::Request`]s and
//! [`Response`]s back, and owns the listener's lifecycle (announce the bound address,
//! serve keep-alive connections, drain on SIGTERM/SIGINT). No business logic lives here.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::StatusCode;
use hyper::body::{Body, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::ServeArgs;
use crate::handler::{self, Request, State, StateError};
use crate::response::{ErrorKind, Response};
use crate::{probe, route};

/// Header that carries the tenant id on every tenant request.
pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-tenant-id");

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("failed to install the SIGTERM/SIGINT handlers")]
    Signals(#[source] io::Error),
    #[error("failed to set up the handler state")]
    State(#[source] StateError),
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every in-flight request was answered.
    Complete,
    /// The grace period ran out with requests still in flight; they were dropped.
    TimedOut,
}

/// Runs the `serve` command: binds, prints `listening on <addr>` on stdout, serves until SIGTERM
/// or SIGINT, then stops accepting and lets in-flight requests finish.
pub async fn serve(args: &ServeArgs) -> Result<Drain, ServeError> {
    // Handlers first: as PID 1 of a pid namespace a signal without a handler is ignored, and a
    // SIGTERM sent right after the announce below must not be lost.
    let shutdown = shutdown_signal().map_err(ServeError::Signals)?;
    let state = Arc::new(State::new(args.app.config()).map_err(ServeError::State)?);
    let listener =
        TcpListener::bind(args.listen).await.map_err(|source| ServeError::Bind { addr: args.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: args.listen, source })?;
    announce(addr);
    let id = state.identity();
    tracing::info!(%addr, hygiene = id.hygiene, tenant = id.tenant.as_deref(), pid = id.pid, "serving");
    let drain = serve_until(listener, state, shutdown, args.shutdown_grace).await;
    match drain {
        Drain::Complete => tracing::info!("drained, exiting"),
        Drain::TimedOut => tracing::warn!(grace = ?args.shutdown_grace, "grace period over, dropping requests"),
    }
    Ok(drain)
}

/// Serves connections from `listener` until `shutdown` resolves, then drains for up to `grace`.
pub async fn serve_until(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = &'static str>,
    grace: Duration,
) -> Drain {
    let graceful = GracefulShutdown::new();
    let builder = http1::Builder::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            signal = &mut shutdown => {
                tracing::info!(signal, "shutting down");
                break;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        // Small request/response pairs: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let service = service_fn(move |req| respond(Arc::clone(&state), req));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        // A connection's error is the client's business (reset, bad request); nothing to report.
        tokio::spawn(connection);
    }
    drop(listener);
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => Drain::Complete,
        Err(_) => Drain::TimedOut,
    }
}

/// A future that resolves with the signal's name on the first SIGTERM or SIGINT.
pub fn shutdown_signal() -> io::Result<impl Future<Output = &'static str>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

/// Prints the bound address as the first stdout line, the contract with whoever started us.
fn announce(addr: SocketAddr) {
    let mut out = io::stdout().lock();
    // Nobody reading stdout is no reason to stop serving.
    let _ = writeln!(out, "listening on {addr}").and_then(|()| out.flush());
}

/// Accept fails transiently when out of file descriptors; back off instead of spinning.
async fn accept_failed(e: io::Error) {
    if e.kind() != io::ErrorKind::ConnectionAborted {
        tracing::warn!(error = %e, "accept failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn respond(state: Arc<State>, req: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    state.count_invocation();
    let (parts, body) = req.into_parts();
    let route = match route::route(parts.method.as_str(), parts.uri.path(), parts.uri.query(), state.probes_enabled()) {
        Ok(route) => route,
        Err(kind) => return Ok(to_http(Response::error(kind))),
    };
    // A probe's body is a canary or a sweep's parameters, whatever the record limit.
    let max_body = if route.op.is_probe() { probe::MAX_PROBE_BODY_BYTES } else { state.max_record_bytes() };
    let body = match read_body(body, max_body).await {
        Ok(body) => body,
        Err(kind) => return Ok(to_http(Response::error(kind))),
    };
    // A header that is not visible ASCII cannot name a valid tenant: let it mismatch.
    let claimed_tenant = parts.headers.get(TENANT_HEADER).map(|v| v.to_str().unwrap_or(""));
    let request = Request {
        op: route.op,
        tenant: route.tenant,
        claimed_tenant,
        key: route.key,
        body,
        compute_us: route.compute_us,
        channel: route.channel,
    };
    Ok(to_http(handler::handle(&state, request).await))
}

/// Collects the body, refusing more than `max` bytes (by the declared length when there is one).
async fn read_body(body: Incoming, max: usize) -> Result<Bytes, ErrorKind> {
    if body.size_hint().lower() > max as u64 {
        return Err(ErrorKind::TooLarge);
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ErrorKind::TooLarge),
        Err(_) => Err(ErrorKind::BadBody),
    }
}

fn to_http(response: Response) -> hyper::Response<Full<Bytes>> {
    let has_body = !response.body.is_empty();
    let mut out = hyper::Response::new(Full::new(response.body));
    *out.status_mut() = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if has_body {
        out.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(response.content_type));
    }
    out
}
