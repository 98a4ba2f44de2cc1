//! Plain HTTP/1.1 over a raw socket, one request per connection (`Connection: close`): no client
//! library with retries, pools or proxies between the test and what the kernel lets through.
//! Answers are `(status, body)`; failures are strings naming the step (connect, send, read).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

/// A TCP connect from the calling thread's namespace.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    TcpStream::connect_timeout(&addr, timeout).map(drop).map_err(|e| e.to_string())
}

/// One request from the calling thread's namespace (connect within 500 ms, answer within 2 s).
pub fn request(method: &str, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
    let host = addr.ip().to_string();
    send(method, addr, &host, path, headers, Duration::from_millis(500), Duration::from_secs(2))
}

/// A `GET` from a thread inside the network namespace `ns`, with `x-tenant-id: <tenant>` when
/// given (connect within 1 s, answer within 500 ms).
pub fn get_in_netns(ns: &OwnedFd, addr: SocketAddr, path: &str, tenant: Option<&str>) -> Result<(u16, String), String> {
    let ns = ns.try_clone().map_err(|e| e.to_string())?;
    let path = path.to_string();
    let tenant = tenant.map(str::to_string);
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        let header = tenant.as_deref().map(|t| [("x-tenant-id", t)]);
        let headers = header.as_ref().map_or(&[][..], |h| &h[..]);
        send("GET", addr, "i", &path, headers, Duration::from_secs(1), Duration::from_millis(500))
    })
    .join()
    .map_err(|_| "request thread panicked".to_string())?
}

fn send(
    method: &str,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, connect_timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(read_timeout)).map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "PUT" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("read: {e}"))?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("no status in {out:?}"))?;
    Ok((status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}
