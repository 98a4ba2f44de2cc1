//! A small blocking HTTP/1.1 server for the metadata endpoints: one accept thread per
//! listener, one thread per connection (keep-alive, bounded), requests of a few hundred bytes.
//!
//! Blocking threads rather than an async runtime: the endpoints answer a handful of requests
//! per task (credential fetches, IMDS walks), this crate has no runtime, and the listener is
//! bound inside the harness network namespace by the launcher thread and handed over, so the
//! server itself never needs to enter a namespace.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most connections served at once per listener; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 << 10;
/// Largest request body accepted.
const MAX_BODY: usize = 64 << 10;
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(30);

/// One parsed request.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    /// The path with its query, as sent.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// Read (so keep-alive stays in step) but used by no endpoint yet: IMDS token requests
    /// and every other call carry no body.
    #[allow(dead_code)]
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The path without its query.
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The IP TTL to send this answer (and the rest of its connection) with: IMDS's
    /// `http_put_response_hop_limit` on a token answer. `None`: the socket's default.
    /// Kept for the rest of the connection because a TCP retransmission of the answer must
    /// not get through where the first copy could not.
    pub ttl: Option<u8>,
}

impl Response {
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, content_type, headers: Vec::new(), body: body.into(), ttl: None }
    }

    pub(crate) fn json(status: u16, body: String) -> Response {
        Response::new(status, "application/json", body)
    }

    pub(crate) fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status, "text/plain", body)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Error",
    }
}

/// What answers the requests of one server.
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request, peer: SocketAddr) -> Response;
    /// Sent as `Server:` on every response.
    fn server_name(&self) -> &'static str;
}

/// Open connections by number: a handle to shut the socket down, and the serving thread.
type Connections = Arc<Mutex<HashMap<u64, (TcpStream, Option<JoinHandle<()>>)>>>;

/// A running server; [`Server::stop`] (or drop) closes the listener and every connection and
/// joins every thread.
pub(crate) struct Server {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    listener: Arc<TcpListener>,
    conns: Connections,
    accept: Option<JoinHandle<()>>,
    served: Arc<AtomicU64>,
}

impl Server {
    /// Serves `listener` (already bound, in whichever namespace) with `handler`.
    pub(crate) fn start(name: &str, listener: TcpListener, handler: Arc<dyn Handler>) -> io::Result<Server> {
        let local = listener.local_addr()?;
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Connections = Arc::default();
        let served = Arc::new(AtomicU64::new(0));
        let accept = {
            let (listener, stop, conns, served) = (listener.clone(), stop.clone(), conns.clone(), served.clone());
            let name = name.to_string();
            std::thread::Builder::new().name(format!("isobench-{name}")).spawn(move || {
                let mut next = 0u64;
                loop {
                    let (stream, peer) = match listener.accept() {
                        Ok(c) => c,
                        Err(_) if stop.load(Ordering::SeqCst) => return,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::warn!(server = %name, error = %e, "accept failed");
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let mut map = conns.lock().unwrap_or_else(|e| e.into_inner());
                    // Reap finished connections.
                    map.retain(|_, (_, h)| !h.as_ref().is_some_and(|h| h.is_finished()));
                    if map.len() >= MAX_CONNECTIONS {
                        continue; // dropping `stream` closes it
                    }
                    let Ok(copy) = stream.try_clone() else { continue };
                    next += 1;
                    let id = next;
                    let (handler, conns2, served) = (handler.clone(), conns.clone(), served.clone());
                    let h = std::thread::Builder::new()
                        .name(format!("isobench-{name}-conn"))
                        .spawn(move || {
                            serve_connection(stream, peer, &*handler, &served);
                            conns2.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                        })
                        .ok();
                    if h.is_some() {
                        map.insert(id, (copy, h));
                    }
                }
            })?
        };
        Ok(Server { local, stop, listener, conns, accept: Some(accept), served })
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Requests answered so far.
    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Stops accepting, closes every open connection and joins every thread.
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // SAFETY: shutdown(2) on the listener's descriptor, which `self.listener` keeps open;
        // it wakes the accept thread (its accept fails) without closing the descriptor.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let open: Vec<(TcpStream, Option<JoinHandle<()>>)> =
            self.conns.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, c)| c).collect();
        for (s, _) in &open {
            let _ = s.shutdown(Shutdown::Both);
        }
        for (_, h) in open {
            if let Some(h) = h {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shutdown();
        }
    }
}

fn serve_connection(stream: TcpStream, peer: SocketAddr, handler: &dyn Handler, served: &AtomicU64) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let (resp, close) = match read_request(&mut reader) {
            Ok(None) => return,
            Ok(Some(req)) => {
                let close = req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                (handler.handle(&req, peer), close)
            }
            Err(RequestError::Io) => return,
            Err(RequestError::Bad(why)) => (Response::text(400, why), true),
            Err(RequestError::TooLarge) => (Response::text(413, "request too large"), true),
        };
        served.fetch_add(1, Ordering::Relaxed);
        if write_response(&mut out, handler.server_name(), &resp, close).is_err() || close {
            return;
        }
    }
}

enum RequestError {
    /// The connection failed or closed mid-request: nothing to answer.
    Io,
    Bad(&'static str),
    TooLarge,
}

/// Reads one request; `Ok(None)` when the peer closed the connection between requests.
fn read_request(r: &mut BufReader<TcpStream>) -> Result<Option<Request>, RequestError> {
    let mut head = Vec::with_capacity(512);
    loop {
        let before = head.len();
        let n = r.by_ref().take((MAX_HEAD + 1 - head.len()) as u64).read_until(b'\n', &mut head);
        match n {
            Ok(0) if before == 0 => return Ok(None),
            Ok(0) => return Err(RequestError::Io),
            Ok(_) => {}
            Err(_) => return Err(RequestError::Io),
        }
        if head.len() > MAX_HEAD {
            return Err(RequestError::TooLarge);
        }
        // Skip empty lines before a request line (RFC 9112 §2.2).
        if head == b"\r\n" || head == b"\n" {
            head.clear();
            continue;
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let text = std::str::from_utf8(&head).map_err(|_| RequestError::Bad("request head is not UTF-8"))?;
    let mut lines = text.lines();
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(RequestError::Bad("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(RequestError::Bad("malformed request line"));
    }
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else { return Err(RequestError::Bad("malformed header")) };
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let req = Request { method: method.to_string(), target: target.to_string(), headers, body: Vec::new() };
    if req.header("transfer-encoding").is_some() {
        return Err(RequestError::Bad("chunked request bodies are not supported"));
    }
    let len: usize = match req.header("content-length") {
        Some(v) => v.parse().map_err(|_| RequestError::Bad("invalid content-length"))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(RequestError::TooLarge);
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|_| RequestError::Io)?;
    Ok(Some(Request { body, ..req }))
}

fn write_response(w: &mut TcpStream, server: &str, r: &Response, close: bool) -> io::Result<()> {
    if let Some(ttl) = r.ttl {
        // Before the first byte: the kernel stamps the TTL when a segment goes out.
        w.set_ttl(u32::from(ttl))?;
    }
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nServer: {server}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len(),
        if close { "close" } else { "keep-alive" }
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    buf.extend_from_slice(&r.body);
    w.write_all(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, req: &Request, peer: SocketAddr) -> Response {
            Response::text(
                200,
                format!("{} {} {} {}", req.method, req.path(), req.header("x-a").unwrap_or("-"), peer.ip()),
            )
        }
        fn server_name(&self) -> &'static str {
            "test"
        }
    }

    fn roundtrip(s: &mut TcpStream, req: &str) -> String {
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn keep_alive_requests_and_a_clean_stop() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Server::start("test", l, Arc::new(Echo)).unwrap();
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        let a = roundtrip(&mut s, "GET /x?q=1 HTTP/1.1\r\nX-A: 1\r\n\r\n");
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n") && a.ends_with("GET /x 1 127.0.0.1"), "{a}");
        let b = roundtrip(&mut s, "PUT /y HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
        assert!(b.ends_with("PUT /y - 127.0.0.1"), "{b}");
        let bad = roundtrip(&mut TcpStream::connect(server.local_addr()).unwrap(), "nonsense\r\n\r\n");
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        assert_eq!(server.served(), 3);
        // An idle open connection does not hold up the stop.
        let t0 = std::time::Instant::now();
        server.stop();
        assert!(t0.elapsed() < Duration::from_secs(1));
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).unwrap_or(0), 0);
    }
}
