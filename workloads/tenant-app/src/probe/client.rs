//! A tiny HTTP/1.1 client for the `net` and `cred` probes: one request per connection
//! (`Connection: close`) to an IP literal, a timeout on the connect and another on the exchange,
//! and a bounded response. It is deliberately not a general client: a probe must report *how*
//! a peer was unreachable (refused, timed out, filtered), which a pooled client hides, and it
//! must never resolve names (see [`super::env`] for why no thread may call `getaddrinfo`).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response body kept; the rest is dropped (a probe only greps it or reads small JSON).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Largest status line plus headers accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// An `http://IP[:PORT]` base URL (no host names, no path), such as the ECS credentials endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Endpoint, String> {
        let authority = s.strip_prefix("http://").map(|rest| rest.strip_suffix('/').unwrap_or(rest));
        match authority.and_then(|a| parse_addr(a, Some(80))) {
            Some(addr) => Ok(Endpoint { addr }),
            None => Err(format!("`{s}` is not an http://IP[:PORT] URL (an IP literal, no path)")),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", host_header(self.addr))
    }
}

/// `IP:PORT` or `[IPv6]:PORT`; with `default_port`, also a bare IP or `[IPv6]`.
pub fn parse_addr(s: &str, default_port: Option<u16>) -> Option<SocketAddr> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(addr);
    }
    let port = default_port?;
    let ip = match s.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => IpAddr::V6(s.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok()?),
    };
    Some(SocketAddr::new(ip, port))
}

/// The `Host` header for `addr`: the port is left out when it is 80.
fn host_header(addr: SocketAddr) -> String {
    match (addr.ip(), addr.port()) {
        (IpAddr::V4(ip), 80) => ip.to_string(),
        (IpAddr::V6(ip), 80) => format!("[{ip}]"),
        _ => addr.to_string(),
    }
}

/// A response: status and (at most [`MAX_BODY_BYTES`] of) the body, de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// Whether the TCP connection was established (the peer is reachable) before it failed.
    pub connected: bool,
    /// `refused`, `timeout`, `unreachable`, `blocked` (a local packet filter: EPERM/EACCES),
    /// `reset`, `bad_response` or `io`.
    pub kind: &'static str,
    pub message: String,
}

impl FetchError {
    fn new(connected: bool, kind: &'static str, message: impl Into<String>) -> FetchError {
        FetchError { connected, kind, message: message.into() }
    }

    fn io(connected: bool, e: &io::Error) -> FetchError {
        FetchError::new(connected, io_kind(e), e.to_string())
    }
}

/// The probe vocabulary for a socket error.
pub fn io_kind(e: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "refused",
        K::TimedOut | K::WouldBlock => "timeout",
        K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable | K::NetworkDown => "unreachable",
        K::PermissionDenied => "blocked",
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => "reset",
        _ => "io",
    }
}

/// Sends one request (`method path`, extra `headers`, no body) to `addr` and reads the response.
/// The connect and the exchange each get `timeout`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Reply, FetchError> {
    request_with_body(addr, method, path, headers, &[], timeout).await
}

/// [`request`] with a body (sent with its `Content-Length`; `Content-Type`, if any, in `headers`).
pub async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Reply, FetchError> {
    let head = request_head(addr, method, path, headers, body.len())?;
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(FetchError::io(false, &e)),
        Err(_) => return Err(FetchError::new(false, "timeout", format!("no connection within {timeout:?}"))),
    };
    let _ = stream.set_nodelay(true);
    let exchange = async {
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        stream.write_all(&out).await?;
        read_response(&mut stream).await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(Some(reply))) => Ok(reply),
        Ok(Ok(None)) => Err(FetchError::new(true, "bad_response", "not an HTTP/1.x response")),
        Ok(Err(e)) => Err(FetchError::io(true, &e)),
        Err(_) => Err(FetchError::new(true, "timeout", format!("no complete response within {timeout:?}"))),
    }
}

fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> Result<String, FetchError> {
    let clean = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    let valid = method.bytes().all(|b| b.is_ascii_uppercase())
        && path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_graphic())
        && headers.iter().all(|(name, value)| clean(name) && !name.contains(' ') && clean(value));
    if !valid {
        return Err(FetchError::new(false, "bad_request", "method, path or header not plain ASCII"));
    }
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tenant-app-probe\r\nAccept: */*\r\nConnection: close\r\n",
        host_header(addr)
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if body_len > 0 || !matches!(method, "GET" | "HEAD") {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("\r\n");
    Ok(head)
}

/// Reads until the response is complete, the peer closes, or the size bound; `None` if what
/// arrived is not an HTTP/1.x response.
async fn read_response(stream: &mut TcpStream) -> io::Result<Option<Reply>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        let eof = n == 0 || buf.len() + n > MAX_HEAD_BYTES + MAX_BODY_BYTES;
        buf.extend_from_slice(&chunk[..n]);
        match parse_response(&buf, eof) {
            Parsed::Complete(reply) => return Ok(Some(reply)),
            Parsed::Invalid => return Ok(None),
            Parsed::Partial if eof => return Ok(None),
            Parsed::Partial => {}
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Complete(Reply),
    Partial,
    Invalid,
}

/// Parses what has arrived so far. At `eof`, a body shorter than announced is returned as is
/// (the probe greps what it got).
fn parse_response(buf: &[u8], eof: bool) -> Parsed {
    let Some(head_len) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD_BYTES { Parsed::Invalid } else { Parsed::Partial };
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_len]) else { return Parsed::Invalid };
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1."))
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else { return Parsed::Invalid };
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = &buf[head_len + 4..];
    let complete = |mut body: Vec<u8>| {
        body.truncate(MAX_BODY_BYTES);
        Parsed::Complete(Reply { status, body })
    };
    if status < 200 || status == 204 || status == 304 {
        return complete(Vec::new());
    }
    if chunked {
        return match dechunk(body) {
            (body, true) => complete(body),
            (body, false) if eof => complete(body),
            _ => Parsed::Partial,
        };
    }
    match content_length {
        Some(len) if body.len() >= len => complete(body[..len].to_vec()),
        _ if eof => complete(body.to_vec()),
        _ => Parsed::Partial,
    }
}

/// Decodes a chunked body; `true` when the last chunk arrived.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else { return (body, false) };
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|line| usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else { return (body, false) };
        if size == 0 {
            return (body, true);
        }
        let data = &rest[line_end + 2..];
        if data.len() < size {
            body.extend_from_slice(data);
            return (body, false);
        }
        body.extend_from_slice(&data[..size]);
        rest = data.get(size + 2..).unwrap_or_default();
        if body.len() > MAX_BODY_BYTES {
            return (body, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn endpoints_are_ip_literals() {
        let e: Endpoint = "http://169.254.170.2".parse().unwrap();
        assert_eq!(e.addr, "169.254.170.2:80".parse().unwrap());
        assert_eq!(e.to_string(), "http://169.254.170.2");
        let e: Endpoint = "http://127.0.0.1:8080/".parse().unwrap();
        assert_eq!((e.addr.port(), e.to_string().as_str()), (8080, "http://127.0.0.1:8080"));
        assert_eq!("http://[fd00:ec2::254]".parse::<Endpoint>().unwrap().addr.port(), 80);
        for bad in ["169.254.170.2", "https://169.254.170.2", "http://metadata.internal", "http://1.2.3.4/x", ""] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
        assert_eq!(parse_addr("10.0.0.1:9", None), Some("10.0.0.1:9".parse().unwrap()));
        assert_eq!(parse_addr("10.0.0.1", None), None);
        assert_eq!(parse_addr("localhost:80", Some(80)), None);
    }

    #[test]
    fn parses_length_chunked_and_close_delimited_bodies() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(full, false), Parsed::Complete(Reply { status: 200, body: b"hello".to_vec() }));
        assert_eq!(parse_response(&full[..full.len() - 1], false), Parsed::Partial);
        let chunked =
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked, false), Parsed::Complete(Reply { status: 404, body: b"abcde".to_vec() }));
        assert_eq!(parse_response(&chunked[..60], false), Parsed::Partial);
        let close = b"HTTP/1.0 200 OK\r\n\r\nuntil eof";
        assert_eq!(parse_response(close, false), Parsed::Partial);
        assert_eq!(parse_response(close, true), Parsed::Complete(Reply { status: 200, body: b"until eof".to_vec() }));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", true), Parsed::Invalid);
    }

    /// A one-shot server answering `response` to the first request (or never, when `None`).
    fn one_shot(response: Option<&'static [u8]>) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            match response {
                Some(r) => s.write_all(r).unwrap(),
                None => std::thread::sleep(Duration::from_millis(500)),
            }
            request
        });
        (addr, handle)
    }

    #[tokio::test]
    async fn talks_to_a_server_and_names_each_failure() {
        let (addr, server) = one_shot(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        let t = Duration::from_millis(300);
        let reply = request(addr, "PUT", "/latest/api/token", &[("X-Test", "1")], t).await.unwrap();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok"[..]));
        let sent = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(sent.starts_with("PUT /latest/api/token HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("\r\nX-Test: 1\r\n") && sent.contains("\r\nContent-Length: 0\r\n"), "{sent}");
        assert!(sent.contains(&format!("\r\nHost: {addr}\r\n")), "{sent}");

        // Nothing listening: refused, never connected.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let refused = request(closed, "GET", "/", &[], t).await.unwrap_err();
        assert_eq!((refused.connected, refused.kind), (false, "refused"));
        // Accepts but never answers: connected, then timed out.
        let (silent, _server) = one_shot(None);
        let started = std::time::Instant::now();
        let timeout = request(silent, "GET", "/", &[], Duration::from_millis(100)).await.unwrap_err();
        assert_eq!((timeout.connected, timeout.kind), (true, "timeout"));
        assert!(started.elapsed() < Duration::from_millis(400));
        // Header injection is refused before connecting.
        let bad = request(closed, "GET", "/x\r\nEvil: 1", &[], t).await.unwrap_err();
        assert_eq!(bad.kind, "bad_request");
    }
}
