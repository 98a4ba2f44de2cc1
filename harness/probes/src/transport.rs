//! Reaching a tenant's workload, whatever the tier: HTTP for instances and tasks, an invoke
//! for functions. Both speak the workload's probe protocol (workloads/tenant-app/README.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use isobench_core::backend::{Endpoint, Invoke, InvokeOutcome};
use isobench_core::probes::Channel;
use isobench_core::workload_api::TENANT_HEADER;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// How the runner reaches one tenant's code.
#[derive(Debug, Clone)]
pub enum Transport {
    Http(SocketAddr),
    Function(Arc<dyn Invoke>),
}

impl From<&Endpoint> for Transport {
    fn from(e: &Endpoint) -> Transport {
        match e {
            Endpoint::Http(a) => Transport::Http(*a),
            Endpoint::Function(f) => Transport::Function(Arc::clone(f)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("http failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("timed out")]
    Timeout,
    #[error("status {status}: {body}")]
    Status { status: u16, body: String },
    #[error("invoke failed: {0}")]
    Invoke(String),
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A probe action: plant a canary, sweep with channel-specific parameters, or (`net` on a
/// function) serve a canary for a window.
pub enum Action<'a> {
    Plant(&'a str),
    Sweep(Value),
    Serve(Value),
}

impl Transport {
    /// A probe operation on `channel`; returns the agent's JSON answer.
    pub async fn probe(&self, tenant: &str, channel: Channel, action: Action<'_>) -> Result<Value, CallError> {
        let (name, body) = match &action {
            Action::Plant(c) => ("plant", Bytes::from(c.to_string())),
            Action::Sweep(p) => ("sweep", Bytes::from(p.to_string())),
            Action::Serve(p) => ("serve", Bytes::from(p.to_string())),
        };
        let (status, body) = match self {
            Transport::Http(addr) => {
                let path = format!("/t/{tenant}/probe/{}/{name}", channel.as_str());
                http(*addr, "POST", &path, tenant, body).await?
            }
            Transport::Function(f) => {
                let mut event = json!({"tenant": tenant, "op": "probe", "channel": channel.as_str(), "action": name});
                match action {
                    Action::Plant(c) => event["canary"] = json!(c),
                    Action::Sweep(p) | Action::Serve(p) => event["params"] = p,
                }
                invoke(f.as_ref(), tenant, event).await?
            }
        };
        if status != 200 {
            return Err(CallError::Status { status, body: String::from_utf8_lossy(&body).into_owned() });
        }
        serde_json::from_slice(&body).map_err(|e| CallError::Protocol(e.to_string()))
    }

    /// Stores a record through the application's own API.
    pub async fn put(&self, tenant: &str, key: &str, value: &str) -> Result<u16, CallError> {
        match self {
            Transport::Http(a) => {
                let path = format!("/t/{tenant}/records/{key}");
                Ok(http(*a, "PUT", &path, tenant, Bytes::from(value.to_string())).await?.0)
            }
            Transport::Function(f) => {
                let event = json!({"tenant": tenant, "op": "put", "key": key, "body": value});
                Ok(invoke(f.as_ref(), tenant, event).await?.0)
            }
        }
    }

    /// Reads a record through the application's own API: (status, body).
    pub async fn get(&self, tenant: &str, key: &str) -> Result<(u16, String), CallError> {
        let (status, body) = match self {
            Transport::Http(a) => http(*a, "GET", &format!("/t/{tenant}/records/{key}"), tenant, Bytes::new()).await?,
            Transport::Function(f) => {
                invoke(f.as_ref(), tenant, json!({"tenant": tenant, "op": "get", "key": key})).await?
            }
        };
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// One HTTP/1.1 request on a fresh connection (probes are rare; no pooling needed).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    tenant: &str,
    body: Bytes,
) -> Result<(u16, Bytes), CallError> {
    let fut = async {
        let stream = TcpStream::connect(addr).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header(TENANT_HEADER, tenant)
            .body(Full::new(body))
            .map_err(|e| CallError::Protocol(e.to_string()))?;
        let resp = send.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok::<_, CallError>((status, bytes))
    };
    tokio::time::timeout(CALL_TIMEOUT, fut).await.map_err(|_| CallError::Timeout)?
}

/// Attempts at an invoke the function's concurrency limit throttled, and the first pause
/// between them (doubling): traffic beside the probes can hold every environment.
const THROTTLE_ATTEMPTS: u32 = 6;
const THROTTLE_BACKOFF: Duration = Duration::from_millis(50);

/// Invokes a function and unwraps the workload's response envelope: (status, body). A
/// throttled invoke never reached the code, so it is retried (as AWS SDKs retry
/// `TooManyRequestsException`) before it counts as a failed call.
async fn invoke(f: &dyn Invoke, tenant: &str, event: Value) -> Result<(u16, Bytes), CallError> {
    let payload = event.to_string().into_bytes();
    let mut attempt = 0;
    let r = loop {
        let r = tokio::time::timeout(CALL_TIMEOUT, f.invoke(tenant, payload.clone()))
            .await
            .map_err(|_| CallError::Timeout)?;
        attempt += 1;
        if r.outcome != InvokeOutcome::Throttled || attempt == THROTTLE_ATTEMPTS {
            break r;
        }
        tokio::time::sleep(THROTTLE_BACKOFF * 2u32.pow(attempt - 1)).await;
    };
    let InvokeOutcome::Ok(bytes) = r.outcome else {
        return Err(CallError::Invoke(format!("{:?}", r.outcome)));
    };
    let env: Value = serde_json::from_slice(&bytes).map_err(|e| CallError::Protocol(e.to_string()))?;
    let status = env["status"].as_u64().ok_or_else(|| CallError::Protocol(format!("no status in {env}")))? as u16;
    let body = match (env["body"].as_str(), env["body_b64"].as_str()) {
        (Some(b), _) => Bytes::from(b.to_string()),
        (None, Some(_)) => return Err(CallError::Protocol("binary probe answer".into())),
        (None, None) => Bytes::new(),
    };
    Ok((status, body))
}
