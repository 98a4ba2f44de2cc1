//! `net`: network reachability between tenants. Plant appends the canary to this process's
//! *beacon*, which `GET /probe/beacon` serves (unauthenticated, newline-separated); sweep fetches
//! the beacon of every peer it is given and greps the bodies. Tenant A finding tenant B's canary
//! means A's code could open a connection to B's workload; per peer the detail says whether a
//! connection was made and, if not, how it failed (refused, timed out, filtered), which is what
//! the harness's N×(N−1) matrix is made of.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::client::{self, parse_addr};
use super::join::join_ordered;
use super::scan::{Found, canaries};

/// The beacon's path.
pub const BEACON_PATH: &str = "/probe/beacon";
/// Most canaries the beacon serves (the oldest go first).
pub const MAX_BEACON: usize = 10_000;
/// Most peers one sweep may name.
pub const MAX_PEERS: usize = 1024;

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
}
