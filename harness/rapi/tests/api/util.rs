use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use isobench_rapi::{FunctionConfig, RuntimeApi};
use isobench_testkit::ports::loopback_listener;
use tokio::net::TcpStream;

pub const NEXT: &str = "/2018-06-01/runtime/invocation/next";
pub const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

pub fn response_path(id: &str) -> String {
    format!("/2018-06-01/runtime/invocation/{id}/response")
}

pub fn error_path(id: &str) -> String {
    format!("/2018-06-01/runtime/invocation/{id}/error")
}

pub fn config(tenant_isolation: bool) -> FunctionConfig {
    let mut c = FunctionConfig::new("conformance-fn", Instant::now());
    c.tenant_isolation = tenant_isolation;
    c
}

/// Start a server on an ephemeral loopback port, the way the emulator hands over its socket.
pub fn start(config: FunctionConfig) -> Arc<RuntimeApi> {
    Arc::new(RuntimeApi::start(loopback_listener(), config).expect("start runtime API"))
}

/// One HTTP/1.1 keep-alive connection, as a runtime holds it.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Assert this is the documented `ErrorResponse` with `status` and `error_type`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error_type: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type"), Some("application/json"));
        let v = self.json();
        assert_eq!(v["errorType"], error_type, "{v}");
        assert!(v["errorMessage"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }

    #[track_caller]
    pub fn assert_accepted(&self) {
        assert_eq!(self.status, StatusCode::ACCEPTED, "body: {:?}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.json(), serde_json::json!({"status": "OK"}));
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect to runtime API");
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.expect("HTTP/1 handshake");
        tokio::spawn(conn);
        Client { sender }
    }

    pub async fn send(&mut self, method: Method, path: &str, headers: &[(&str, &str)], body: Bytes) -> Reply {
        self.try_send(method, path, headers, body).await.expect("request on an open connection")
    }

    /// [`Self::send`], with a closed connection as an error (for loops that outlive the server).
    pub async fn try_send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, hyper::Error> {
        let mut req = Request::builder().method(method).uri(path).header("host", "127.0.0.1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.sender.ready().await?;
        let resp = self.sender.send_request(req.body(Full::new(body)).unwrap()).await?;
        let (parts, body) = resp.into_parts();
        Ok(Reply { status: parts.status, headers: parts.headers, body: body.collect().await?.to_bytes() })
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.send(Method::POST, path, &[], body.into()).await
    }
}
