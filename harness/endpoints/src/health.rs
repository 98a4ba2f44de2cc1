//! `GET /healthz` through the same hyper HTTP/1.1 client stack the load driver uses.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper_util::rt::TokioIo;

/// `Ok` when `addr` answers `GET /healthz` with 200 within `timeout`; else what happened.
pub fn check(addr: SocketAddr, authority: &str, timeout: Duration) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        match tokio::time::timeout(timeout, get(addr, authority)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    })
}

async fn get(addr: SocketAddr, authority: &str) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let req = Request::get("/healthz")
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let status = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?.status();
    conn.abort();
    if status == hyper::StatusCode::OK { Ok(()) } else { Err(format!("answered {status}, expected 200 OK")) }
}
