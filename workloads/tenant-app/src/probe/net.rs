//! `net`: network reachability between tenants. Plant appends the canary to this process's
//! *beacon*, which `GET /probe/beacon` serves (unauthenticated, newline-separated); sweep fetches
//! the beacon of every peer it is given and greps the bodies. Tenant A finding tenant B's canary
//! means A's code could open a connection to B's workload; per peer the detail says whether a
//! connection was made and, if not, how it failed (refused, timed out, filtered), which is what
//! the harness's N×(N−1) matrix is made of.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::{self, parse_addr};
use super::join::join_ordered;
use super::scan::{Found, canaries};

/// The beacon's path.
pub const BEACON_PATH: &str = "/probe/beacon";
/// Most canaries the beacon serves (the oldest go first).
pub const MAX_BEACON: usize = 10_000;
/// Most peers one sweep may name.
pub const MAX_PEERS: usize = 1024;

/// Longest window a serve may ask for (a Lambda invoke's default timeout is 3 s).
pub const MAX_SERVE_MS: u64 = 2_500;
/// Most fetchers a serve's answer names.
const MAX_FETCHERS: usize = 64;

static BEACON: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// Puts the canary on the beacon; returns how many it serves now.
pub fn plant(canary: &str) -> usize {
    let mut beacon = BEACON.lock().unwrap_or_else(PoisonError::into_inner);
    if beacon.len() >= MAX_BEACON {
        beacon.pop_front();
    }
    beacon.push_back(canary.to_owned());
    beacon.len()
}

/// The beacon's body: every canary planted on `net` in this process, one per line.
pub fn beacon_body() -> Bytes {
    let beacon = BEACON.lock().unwrap_or_else(PoisonError::into_inner);
    let mut body = String::with_capacity(beacon.iter().map(|c| c.len() + 1).sum());
    for canary in beacon.iter() {
        body.push_str(canary);
        body.push('\n');
    }
    Bytes::from(body)
}

/// Fetches every peer's beacon at once, each with `timeout` to connect and `timeout` to answer;
/// adds what the bodies hold to `found` (in peer order) and returns one detail object per peer.
pub async fn sweep(peers: &[String], timeout: Duration, found: &mut Found) -> Vec<Value> {
    let fetches = peers.iter().map(|peer| {
        let peer = peer.clone();
        async move {
            let authority = peer.strip_prefix("http://").unwrap_or(&peer);
            let authority = authority.strip_suffix('/').unwrap_or(authority);
            let Some(addr) = parse_addr(authority, Some(80)) else {
                let detail = json!({"peer": peer, "reached": false, "error": "bad_address",
                                    "message": "a peer is IP:PORT (an IP literal; no name resolution)"});
                return (detail, None);
            };
            match client::request(addr, "GET", BEACON_PATH, &[], timeout).await {
                Ok(reply) => {
                    let count = canaries(&reply.body).count();
                    let detail = json!({"peer": peer, "reached": true, "status": reply.status, "canaries": count});
                    (detail, (reply.status == 200).then_some(reply.body))
                }
                Err(e) => {
                    let detail = json!({"peer": peer, "reached": e.connected, "error": e.kind, "message": e.message});
                    (detail, None)
                }
            }
        }
    });
    let results = join_ordered(fetches.collect()).await;
    results
        .into_iter()
        .zip(peers)
        .map(|(result, peer)| match result {
            Some((detail, body)) => {
                if let Some(body) = body {
                    found.scan(&body);
                }
                detail
            }
            None => json!({"peer": peer, "reached": false, "error": "internal", "message": "the fetch task failed"}),
        })
        .collect()
}

/// This environment's own address: the source of its default route, read from a UDP socket
/// connected to a documentation address (nothing is sent).
pub fn own_address() -> std::io::Result<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
    let ip = socket.local_addr()?.ip();
    if ip.is_unspecified() || ip.is_loopback() {
        return Err(std::io::Error::other(format!("the default route's source is {ip}")));
    }
    Ok(ip)
}

/// A serve's parameters (the body of a `serve` on `net`, JSON). Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeParams {
    pub canary: String,
    /// The beacon's port on the environment's own address.
    pub port: u16,
    /// How long the beacon is served (1..=[`MAX_SERVE_MS`]).
    pub serve_ms: u64,
    /// The control fetch's connect and exchange timeouts (1..=10000, default 300).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl ServeParams {
    /// Reads the parameters; `None` when they are not the object above within its bounds.
    pub fn parse(body: &[u8]) -> Option<ServeParams> {
        let params: ServeParams = match serde_json::from_slice::<Value>(body).ok()? {
            object @ Value::Object(_) => ServeParams::deserialize(object).ok()?,
            _ => return None,
        };
        let timeout_ok = params.timeout_ms.is_none_or(|ms| (1..=super::MAX_TIMEOUT_MS).contains(&ms));
        let ok = super::scan::is_canary(&params.canary)
            && params.port != 0
            && (1..=MAX_SERVE_MS).contains(&params.serve_ms)
            && timeout_ok;
        ok.then_some(params)
    }
}

/// A serve's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServeReply {
    pub channel: &'static str,
    /// False when no beacon could be served (no address, the port taken); `detail` says why.
    pub planted: bool,
    pub detail: String,
    /// `IP:PORT` the beacon was served on.
    pub address: Option<String>,
    /// What the control fetch (this environment fetching its own beacon through `address`) found.
    pub found: Vec<String>,
    /// The control fetch, as a sweep's per-peer detail.
    pub control: Value,
    /// Addresses of every connection the beacon accepted (the control's own included).
    pub fetched_by: Vec<String>,
    /// How long the beacon listened.
    pub served_ms: u64,
}

/// Serves `params.canary` alone on `own_address():port` for `serve_ms`, fetching it once
/// through that address as soon as it listens.
pub async fn serve(params: &ServeParams) -> ServeReply {
    serve_on(own_address(), params).await
}

async fn serve_on(ip: std::io::Result<IpAddr>, params: &ServeParams) -> ServeReply {
    let timeout = Duration::from_millis(params.timeout_ms.unwrap_or(super::DEFAULT_TIMEOUT_MS));
    let mut reply = ServeReply {
        channel: "net",
        planted: false,
        detail: String::new(),
        address: None,
        found: Vec::new(),
        control: Value::Null,
        fetched_by: Vec::new(),
        served_ms: 0,
    };
    let listener = match ip.and_then(|ip| listen(SocketAddr::new(ip, params.port))) {
        Ok(listener) => listener,
        Err(e) => {
            reply.detail = format!("failed to serve a beacon on this environment's own address: {e}");
            return reply;
        }
    };
    let addr = listener.local_addr().expect("a bound listener has an address");
    let body = Bytes::from(format!("{}\n", params.canary));
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(params.serve_ms);
    let control = client::request(addr, "GET", BEACON_PATH, &[], timeout);
    tokio::pin!(control);
    let mut fetched = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            r = &mut control, if fetched.is_none() => fetched = Some(r),
            accepted = listener.accept() => if let Ok((stream, peer)) = accepted {
                if reply.fetched_by.len() < MAX_FETCHERS {
                    reply.fetched_by.push(peer.ip().to_string());
                }
                tokio::spawn(answer(stream, body.clone(), timeout));
            }
        }
    }
    reply.served_ms = started.elapsed().as_millis() as u64;
    let peer = addr.to_string();
    reply.control = match fetched {
        Some(Ok(r)) => {
            reply.found = canaries(&r.body).map(str::to_owned).collect();
            json!({"peer": peer, "reached": true, "status": r.status, "canaries": reply.found.len()})
        }
        Some(Err(e)) => json!({"peer": peer, "reached": e.connected, "error": e.kind, "message": e.message}),
        None => json!({"peer": peer, "reached": false, "error": "timeout", "message": "no answer within the window"}),
    };
    reply.planted = true;
    reply.detail = format!("served on {addr} for {} ms", reply.served_ms);
    reply.address = Some(peer);
    reply
}

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // A beacon served by the previous invoke may leave connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(64)
}

/// Answers one request with the beacon, whatever it asked.
async fn answer(mut stream: tokio::net::TcpStream, body: Bytes, timeout: Duration) {
    let exchange = async {
        let mut head = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(timeout, exchange).await;
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpListener};

    use super::*;

    #[tokio::test]
    async fn sweep_fetches_beacons_and_reports_unreachable_peers() {
        assert!(!String::from_utf8_lossy(&beacon_body()).contains(":unit:net:"));
        let canary = "isobench-canary:v1:unit:net:1";
        plant(canary);
        let body = beacon_body();
        assert!(body.ends_with(format!("{canary}\n").as_bytes()), "{body:?}");

        // A stand-in peer serving this process's beacon.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0; 1024];
                let _ = s.read(&mut buf).await;
                let body = beacon_body();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            }
        });
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let peers = vec![format!("http://{addr}/"), closed.to_string(), "peer.internal:80".to_owned()];
        let mut found = Found::new();
        let detail = sweep(&peers, Duration::from_millis(300), &mut found).await;
        assert!(found.tokens().iter().any(|t| t == canary), "{:?}", found.tokens());
        assert_eq!((detail[0]["reached"].as_bool(), detail[0]["status"].as_u64()), (Some(true), Some(200)));
        assert_eq!((detail[1]["reached"].as_bool(), detail[1]["error"].as_str()), (Some(false), Some("refused")));
        assert_eq!(detail[2]["error"], "bad_address");
        assert_eq!(detail[1]["peer"], closed.to_string());
    }

    #[tokio::test]
    async fn serve_holds_the_canary_for_its_window_and_fetches_it_itself() {
        let canary = "isobench-canary:v1:unit:net:serve";
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let body = format!("{{\"canary\": \"{canary}\", \"port\": {port}, \"serve_ms\": 400}}");
        let params = ServeParams::parse(body.as_bytes()).unwrap();
        let served = tokio::spawn(async move { serve_on(Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)), &params).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Another fetcher during the window gets the canary too.
        let mut found = Found::new();
        sweep(&[format!("127.0.0.1:{port}")], Duration::from_millis(300), &mut found).await;
        assert_eq!(found.tokens(), [canary]);
        let reply = served.await.unwrap();
        assert!(reply.planted && reply.served_ms >= 400, "{reply:?}");
        assert_eq!(
            (reply.found.as_slice(), reply.address),
            ([canary.to_owned()].as_slice(), Some(format!("127.0.0.1:{port}")))
        );
        assert_eq!(reply.fetched_by, ["127.0.0.1", "127.0.0.1"]);
        assert!(!String::from_utf8_lossy(&beacon_body()).contains(canary), "not on the process beacon");
        // After the window nothing listens.
        let mut found = Found::new();
        let detail = sweep(&[format!("127.0.0.1:{port}")], Duration::from_millis(300), &mut found).await;
        assert_eq!((detail[0]["error"].as_str(), found.tokens().len()), (Some("refused"), 0));
        for bad in [
            "[]".to_owned(),
            format!("{{\"canary\": \"x\", \"port\": {port}, \"serve_ms\": 400}}"),
            format!("{{\"canary\": \"{canary}\", \"port\": {port}, \"serve_ms\": 9000}}"),
            format!("{{\"canary\": \"{canary}\", \"port\": {port}, \"serve_ms\": 400, \"peers\": []}}"),
        ] {
            assert_eq!(ServeParams::parse(bad.as_bytes()), None, "{bad}");
        }
    }
}
