use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use isobench_rapi::{FunctionConfig, RuntimeApi, headers};
use isobench_testkit::ports::loopback_listener;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub const NEXT: &str = "/2018-06-01/runtime/invocation/next";
pub const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
pub const EXT_REGISTER: &str = "/2020-01-01/extension/register";
pub const EXT_NEXT: &str = "/2020-01-01/extension/event/next";
pub const EXT_INIT_ERROR: &str = "/2020-01-01/extension/init/error";
pub const EXT_EXIT_ERROR: &str = "/2020-01-01/extension/exit/error";

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

    /// A `GET` that may park (`/next`, `/extension/event/next`), on a task: the client comes back
    /// with the answer.
    pub fn spawn_get(mut self, path: &str, headers: &[(&str, &str)]) -> JoinHandle<(Client, Reply)> {
        let path = path.to_owned();
        let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        tokio::spawn(async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let reply = self.send(Method::GET, &path, &h, Bytes::new()).await;
            (self, reply)
        })
    }
}

/// An extension: its own connection and identifier.
pub struct Ext {
    pub client: Client,
    pub id: String,
}

impl Ext {
    /// Register `name` for `events`, asserting the documented 200.
    pub async fn register(addr: SocketAddr, name: &str, events: &[&str]) -> Ext {
        let mut client = Client::connect(addr).await;
        let body = serde_json::json!({ "events": events }).to_string();
        let r = client.send(Method::POST, EXT_REGISTER, &[(headers::EXTENSION_NAME, name)], Bytes::from(body)).await;
        assert_eq!(r.status, 200, "register {name}: {:?}", String::from_utf8_lossy(&r.body));
        let id = r.header(headers::EXTENSION_IDENTIFIER).expect("an extension identifier").to_owned();
        Ext { client, id }
    }

    /// `GET /extension/event/next` on a task (it parks until an event comes).
    pub fn next(self) -> JoinHandle<(Ext, Reply)> {
        let Ext { client, id } = self;
        let call = client.spawn_get(EXT_NEXT, &[(headers::EXTENSION_IDENTIFIER, &id)]);
        tokio::spawn(async move {
            let (client, reply) = call.await.expect("extension next task");
            (Ext { client, id }, reply)
        })
    }
}

/// Whether `task` is still running after `wait`.
pub async fn still_pending<T>(task: &mut JoinHandle<T>, wait: std::time::Duration) -> bool {
    tokio::time::timeout(wait, &mut *task).await.is_err()
}
