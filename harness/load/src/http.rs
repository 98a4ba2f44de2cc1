//! A minimal HTTP/1.1 client for the connection tasks: one keep-alive connection, one request
//! at a time, requests written from heads encoded once per (tenant, operation) and answers
//! parsed in place with `httparse`.
//!
//! Why not hyper: the driver sends one request at a time per connection and only needs the
//! status, the framing headers and, for a JSON success, whether the body is an error document.
//! hyper's client costs a spawned connection task, a request/response channel and a header map
//! per request; profiled at the generator's limit it was most of the driver's CPU (see
//! `results/bench/generators/profile/`). This client allocates nothing per request once its
//! buffers are warm.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use isobench_core::workload_api::{Op, TENANT_HEADER};

/// Most bytes of a response head (the status line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// Most headers in a response head.
const MAX_HEADERS: usize = 64;

/// Most bytes of a JSON success body kept to look for an error field (error documents are
/// small; a larger body is cut and then does not parse, so it is not an error document).
pub(crate) const MAX_KEPT_BODY: usize = 64 * 1024;

/// How long a connection must have been idle before [`Conn::closed_while_idle`] asks the
/// kernel. Servers close idle keep-alive connections after seconds (nginx 75 s, hyper never),
/// and the question costs a syscall: one in five of the connection thread's at 100k requests
/// a second on one core.
const PROBE_IDLE_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

/// The read buffer's starting size.
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange failed, before it is mapped to an error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The connection broke or closed before the answer was complete.
    Io,
    /// The peer answered something that is not HTTP/1.1.
    Protocol,
}

/// What an answer says, as far as classifying it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    /// A success whose JSON body is an error document.
    pub error_document: bool,
    /// Whether the connection may carry another request.
    pub reusable: bool,
    /// When the kernel received the answer's last bytes (`CLOCK_REALTIME`, nanoseconds since
    /// the Unix epoch); `None` if the socket gave no receive timestamp.
    pub received_unix_ns: Option<u64>,
}

/// One encoded request head: the bytes before the key and the bytes after it (for a compute,
/// everything is before).
type EncodedHead = (Box<[u8]>, Box<[u8]>);

/// The request heads of every (tenant, operation), encoded once.
pub(crate) struct Requests {
    heads: Vec<[EncodedHead; 3]>,
    put_body: Box<[u8]>,
}

impl Requests {
    /// `tenants`: each tenant's id and the `host` of its endpoint.
    pub(crate) fn new<'a>(
        tenants: impl IntoIterator<Item = (&'a str, &'a str)>,
        put_body: &[u8],
        compute_us: u64,
    ) -> Requests {
        let heads = tenants
            .into_iter()
            .map(|(tenant, host)| {
                Op::ALL.map(|op| {
                    let (method, length) = match op {
                        Op::Put => ("PUT", Some(put_body.len())),
                        Op::Get => ("GET", None),
                        // hyper sent an explicit zero length for a POST without a body.
                        Op::Compute => ("POST", Some(0)),
                    };
                    let mut rest = format!(" HTTP/1.1\r\nhost: {host}\r\n{TENANT_HEADER}: {tenant}\r\n");
                    if let Some(n) = length {
                        rest.push_str(&format!("content-length: {n}\r\n"));
                    }
                    rest.push_str("\r\n");
                    match op {
                        Op::Compute => {
                            let all = format!("{method} /t/{tenant}/compute?us={compute_us}{rest}");
                            (all.into_bytes().into_boxed_slice(), Box::default())
                        }
                        Op::Put | Op::Get => (
                            format!("{method} /t/{tenant}/records/").into_bytes().into_boxed_slice(),
                            rest.into_bytes().into_boxed_slice(),
                        ),
                    }
                })
            })
            .collect();
        Requests { heads, put_body: put_body.into() }
    }

    /// Writes the request for (`tenant`, `op`, `key`) into `out`, replacing what it held.
    pub(crate) fn encode(&self, tenant: u32, op: Op, key: u32, out: &mut Vec<u8>) {
        let i = Op::ALL.iter().position(|o| *o == op).expect("every op is in Op::ALL");
        let (before, after) = &self.heads[tenant as usize][i];
        out.clear();
        out.extend_from_slice(before);
        if op != Op::Compute {
            push_decimal(out, key);
        }
        out.extend_from_slice(after);
        if op == Op::Put {
            out.extend_from_slice(&self.put_body);
        }
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Until the peer closes the connection.
    Close,
}

/// The parts of a response head the client uses.
struct Head {
    status: u16,
    framing: Framing,
    json: bool,
    close: bool,
}

/// One keep-alive connection.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read and not consumed yet are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The request being written.
    out: Vec<u8>,
    /// A JSON success body, kept to look for an error field.
    kept: Vec<u8>,
    /// Room for the receive timestamp's control message.
    cmsg: Vec<u8>,
    /// The kernel's receive time of the bytes last read (see [`Answer::received_unix_ns`]).
    received_unix_ns: Option<u64>,
    /// When the last exchange ended.
    idle_since: std::time::Instant,
}

impl Conn {
    /// Wraps a connected stream, asking the kernel to stamp what it receives
    /// (`SO_TIMESTAMPNS`): when an answer arrived, apart from when this client got to read it,
    /// is what tells the generator's own delay from the target's ([`crate::stats::OpStats::own_lag`]).
    pub(crate) fn new(stream: TcpStream) -> Conn {
        // Without stamps an answer counts as received when read, which moves the generator's
        // delay in reading it into `connection_wait`; see [`StampGuard`] for when that happens.
        let _ = setsockopt(&stream, sockopt::ReceiveTimestampns, &true);
        Conn {
            stream,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            out: Vec::with_capacity(512),
            kept: Vec::new(),
            cmsg: nix::cmsg_space!(TimeSpec),
            received_unix_ns: None,
            idle_since: std::time::Instant::now(),
        }
    }

    /// The buffer the next request is encoded into.
    pub(crate) fn request_buf(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Whether an idle connection can no longer carry a request: the peer closed it, or sent
    /// something nobody asked for (hyper's connection task closed such a connection too, and a
    /// request was never charged for it). Never waits; asks the kernel only if the connection
    /// has been idle for [`PROBE_IDLE_AFTER`].
    pub(crate) fn closed_while_idle(&mut self) -> bool {
        if self.end > self.start {
            return true;
        }
        if self.idle_since.elapsed() < PROBE_IDLE_AFTER {
            return false;
        }
        self.start = 0;
        self.end = 0;
        let mut probe = [0u8; 1];
        !matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends the request in [`Conn::request_buf`] and reads its answer completely (the
    /// connection can only be reused once the body is consumed).
    pub(crate) async fn exchange(&mut self) -> Result<Answer, Failure> {
        self.received_unix_ns = None;
        self.stream.write_all(&self.out).await.map_err(|_| Failure::Io)?;
        let head = loop {
            let head = self.read_head().await?;
            // Interim answers (100 Continue, 103 Early Hints) precede the real one.
            if !(100..200).contains(&head.status) {
                break head;
            }
            if head.status == 101 {
                return Err(Failure::Protocol);
            }
        };
        let success = (200..300).contains(&head.status);
        let keep = success && head.json;
        self.kept.clear();
        let framing = if matches!(head.status, 204 | 304) { Framing::Length(0) } else { head.framing };
        match framing {
            Framing::Length(n) => self.read_body(n, keep).await?,
            Framing::Chunked => self.read_chunked(keep).await?,
            Framing::Close => self.read_to_close(keep).await?,
        }
        self.idle_since = std::time::Instant::now();
        let error_document = keep && is_error_document(&self.kept);
        let reusable = !head.close && framing != Framing::Close;
        Ok(Answer { status: head.status, error_document, reusable, received_unix_ns: self.received_unix_ns })
    }

    /// Reads more bytes into the buffer (compacting or growing it first); EOF is a failure.
    async fn fill(&mut self) -> Result<(), Failure> {
        if self.start > 0 && self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let fd = self.stream.as_raw_fd();
        let (buf, cmsg) = (&mut self.buf[self.end..], &mut self.cmsg);
        let room = buf.len();
        loop {
            self.stream.readable().await.map_err(|_| Failure::Io)?;
            match self.stream.try_io(Interest::READABLE, || recv_stamped(fd, buf, cmsg)) {
                Ok((0, _)) => return Err(Failure::Io),
                Ok((n, stamp)) => {
                    if n < room {
                        // A short read drained the socket: forget its readiness now, as
                        // tokio's own `poll_read` does, so that the next read waits for the
                        // kernel's next event instead of spending a `recvmsg` on EAGAIN.
                        // Nothing ran since the read, so no event can be lost.
                        let _ =
                            self.stream.try_io(Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
                    }
                    self.end += n;
                    self.received_unix_ns = stamp.or(self.received_unix_ns);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return Err(Failure::Io),
            }
        }
    }

    async fn read_head(&mut self) -> Result<Head, Failure> {
        loop {
            if let Some((head, len)) = parse_head(&self.buf[self.start..self.end])? {
                self.start += len;
                return Ok(head);
            }
            if self.end - self.start >= MAX_HEAD {
                return Err(Failure::Protocol);
            }
            self.fill().await?;
        }
    }

    /// Consumes `n` body bytes, keeping them (up to [`MAX_KEPT_BODY`]) when `keep`.
    async fn read_body(&mut self, mut n: u64, keep: bool) -> Result<(), Failure> {
        loop {
            let have = (self.end - self.start) as u64;
            let take = have.min(n) as usize;
            self.consume(take, keep);
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    async fn read_chunked(&mut self, keep: bool) -> Result<(), Failure> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        self.start += len;
                        break size;
                    }
                    Ok(httparse::Status::Partial) if self.end - self.start < MAX_HEAD => self.fill().await?,
                    _ => return Err(Failure::Protocol),
                }
            };
            if size == 0 {
                return self.read_trailers().await;
            }
            self.read_body(size, keep).await?;
            self.expect_crlf().await?;
        }
    }

    /// Skips the trailer section up to and including the empty line that ends the message.
    async fn read_trailers(&mut self) -> Result<(), Failure> {
        loop {
            let have = &self.buf[self.start..self.end];
            if let Some(i) = have.iter().position(|b| *b == b'\n') {
                let empty = have[..i].iter().all(|b| *b == b'\r');
                self.start += i + 1;
                if empty {
                    return Ok(());
                }
                continue;
            }
            if self.end - self.start >= MAX_HEAD {
                return Err(Failure::Protocol);
            }
            self.fill().await?;
        }
    }

    async fn expect_crlf(&mut self) -> Result<(), Failure> {
        while self.end - self.start < 2 {
            self.fill().await?;
        }
        if &self.buf[self.start..self.start + 2] != b"\r\n" {
            return Err(Failure::Protocol);
        }
        self.start += 2;
        Ok(())
    }

    async fn read_to_close(&mut self, keep: bool) -> Result<(), Failure> {
        loop {
            self.consume(self.end - self.start, keep);
            match self.fill().await {
                Ok(()) => {}
                // The peer closing is the end of this body.
                Err(Failure::Io) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    fn consume(&mut self, n: usize, keep: bool) {
        if keep && self.kept.len() < MAX_KEPT_BODY {
            let room = MAX_KEPT_BODY - self.kept.len();
            self.kept.extend_from_slice(&self.buf[self.start..self.start + n.min(room)]);
        }
        self.start += n;
    }
}

/// Holds receive timestamps on for the whole run. The first socket to ask for them turns them
/// on for the kernel's whole network stack, but only a moment later (from a work queue), and
/// the last to close turns them off again: without a guard opened before the traffic, the
/// first answers of a run, and those after a lull with every connection closed, would come
/// unstamped.
pub(crate) struct StampGuard(#[allow(dead_code)] std::net::TcpStream);

impl StampGuard {
    /// Turns stamps on and waits (at most [`STAMP_WAIT`]) until the kernel stamps a byte the
    /// guard sends itself over a loopback TCP connection. TCP, not UDP: a datagram's receive
    /// stamps itself when read if the stack has not, so it cannot tell whether the stack
    /// stamps yet. `None` if it never does (answers are then timed when read).
    pub(crate) fn new() -> Option<StampGuard> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        let mut sender = std::net::TcpStream::connect(listener.local_addr().ok()?).ok()?;
        let (receiver, _) = listener.accept().ok()?;
        setsockopt(&receiver, sockopt::ReceiveTimestampns, &true).ok()?;
        receiver.set_read_timeout(Some(STAMP_WAIT)).ok()?;
        let deadline = std::time::Instant::now() + STAMP_WAIT;
        let mut cmsg = nix::cmsg_space!(TimeSpec);
        while std::time::Instant::now() < deadline {
            std::io::Write::write_all(&mut sender, b"?").ok()?;
            if recv_stamped(receiver.as_raw_fd(), &mut [0u8; 1], &mut cmsg).ok()?.1.is_some() {
                return Some(StampGuard(receiver));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        None
    }
}

/// How long [`StampGuard::new`] waits for the kernel to start stamping.
const STAMP_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// One `recvmsg` into `buf`: the bytes read and the kernel's receive time of the last of them
/// (`SCM_TIMESTAMPNS`, nanoseconds since the Unix epoch), if the socket stamps.
#[allow(clippy::ptr_arg, reason = "nix's `recvmsg` takes the control buffer as a Vec")]
fn recv_stamped(fd: RawFd, buf: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<(usize, Option<u64>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(cmsg), MsgFlags::empty()).map_err(io::Error::from)?;
    let stamp = msg.cmsgs().ok().and_then(|mut c| {
        c.find_map(|m| match m {
            ControlMessageOwned::ScmTimestampns(ts) => {
                Some(u64::try_from(ts.tv_sec()).ok()? * 1_000_000_000 + u64::try_from(ts.tv_nsec()).ok()?)
            }
            _ => None,
        })
    });
    Ok((msg.bytes, stamp))
}

/// Parses a response head at the start of `bytes`: the head and its length, or `None` if it is
/// not complete yet.
fn parse_head(bytes: &[u8]) -> Result<Option<(Head, usize)>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Protocol),
    };
    let status = resp.code.ok_or(Failure::Protocol)?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut json = false;
    // HTTP/1.0 closes after each answer unless it says otherwise.
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
            match (n, length) {
                (None, _) => return Err(Failure::Protocol),
                (Some(n), Some(m)) if n != m => return Err(Failure::Protocol),
                (Some(n), _) => length = Some(n),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = last_token(h.value).eq_ignore_ascii_case(b"chunked");
            if !chunked {
                return Err(Failure::Protocol);
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            json = trim_start(h.value).starts_with(b"application/json");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && resp.version == Some(0) {
                    close = false;
                }
            }
        }
    }
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Some((Head { status, framing, json, close }, len)))
}

fn trim_start(v: &[u8]) -> &[u8] {
    let i = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    &v[i..]
}

fn trim(v: &[u8]) -> &[u8] {
    let v = trim_start(v);
    let j = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |j| j + 1);
    &v[..j]
}

fn last_token(v: &[u8]) -> &[u8] {
    trim(v.rsplit(|b| *b == b',').next().unwrap_or(v))
}

/// Whether a body is a JSON object with a top-level `error` field: an answer that says it
/// failed whatever its status (HTTP 200 with an error body). A body that names no `error`
/// and has no escape (which could spell it) is rejected without parsing it.
pub(crate) fn is_error_document(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Doc {
        error: Option<serde::de::IgnoredAny>,
    }
    if !contains(body, b"error") && !contains(body, b"\\u") {
        return false;
    }
    serde_json::from_slice::<Doc>(body).is_ok_and(|d| d.error.is_some())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn requests_are_encoded_from_their_heads() {
        let r = Requests::new([("acme-1", "127.0.0.1:80")], b"xyz", 250);
        let mut out = Vec::new();
        let cases = [
            (Op::Get, 7, "GET /t/acme-1/records/7 HTTP/1.1\r\nhost: 127.0.0.1:80\r\nx-tenant-id: acme-1\r\n\r\n"),
            (
                Op::Put,
                4_294_967_295,
                "PUT /t/acme-1/records/4294967295 HTTP/1.1\r\nhost: 127.0.0.1:80\r\nx-tenant-id: acme-1\r\ncontent-length: 3\r\n\r\nxyz",
            ),
            (
                Op::Compute,
                0,
                "POST /t/acme-1/compute?us=250 HTTP/1.1\r\nhost: 127.0.0.1:80\r\nx-tenant-id: acme-1\r\ncontent-length: 0\r\n\r\n",
            ),
            (Op::Get, 0, "GET /t/acme-1/records/0 HTTP/1.1\r\nhost: 127.0.0.1:80\r\nx-tenant-id: acme-1\r\n\r\n"),
        ];
        for (op, key, want) in cases {
            r.encode(0, op, key, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), want);
        }
    }

    #[test]
    fn heads_say_status_framing_and_reuse() {
        let (h, len) =
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello")
                .unwrap()
                .unwrap();
        assert_eq!((h.status, h.framing, h.json, h.close, len), (200, Framing::Length(5), true, false, 70));
        let (h, _) = parse_head(b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.framing, h.json, h.close), (404, Framing::Chunked, false, true));
        let (h, _) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.close), (Framing::Close, true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len").unwrap().is_none());
        assert_eq!(parse_head(b"hello there\r\n\r\n").err(), Some(Failure::Protocol));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").err(), Some(Failure::Protocol));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n").err(),
            Some(Failure::Protocol)
        );
    }

    #[test]
    fn error_documents_are_recognised_also_when_escaped() {
        assert!(is_error_document(br#"{"error":"injected fault"}"#));
        assert!(is_error_document(br#"{"\u0065rror":1}"#));
        assert!(!is_error_document(br#"{"sha256":"ab"}"#));
        assert!(!is_error_document(br#"{"error":null}"#));
        assert!(!is_error_document(b""));
    }

    /// Answers written in pieces, chunked and with trailers, back to back on one connection;
    /// each stamped with when the kernel received its last piece.
    #[test]
    fn answers_are_read_across_reads_and_framings() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _stamps = StampGuard::new().expect("the kernel stamps a datagram");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let answers: [&[u8]; 4] = [
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nabcd",
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"err\r\n9;x=y\r\nor\":true}\r\n0\r\nx-trailer: 1\r\n\r\n",
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nno",
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"ok\":1}",
                ];
                let mut req = [0u8; 4096];
                for a in answers {
                    let _ = s.read(&mut req).await.unwrap();
                    for piece in a.chunks(7) {
                        s.write_all(piece).await.unwrap();
                        s.flush().await.unwrap();
                        tokio::task::yield_now().await;
                    }
                }
                // The last answer is delimited by the close.
            });
            let mut c = Conn::new(TcpStream::connect(addr).await.unwrap());
            let want = [(200, false, true), (200, true, true), (503, false, true), (200, false, false)];
            let requests = Requests::new([("t", "h")], b"", 0);
            let unix_ns = || std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos() as u64;
            for (status, error_document, reusable) in want {
                requests.encode(0, Op::Get, 1, c.request_buf());
                let before = unix_ns();
                let a = c.exchange().await.unwrap();
                let after = unix_ns();
                assert_eq!((a.status, a.error_document, a.reusable), (status, error_document, reusable));
                let received = a.received_unix_ns.expect("the kernel stamps what it receives");
                assert!((before..=after).contains(&received), "{before} <= {received} <= {after}");
            }
            server.await.unwrap();
            tokio::time::sleep(PROBE_IDLE_AFTER).await;
            assert!(c.closed_while_idle());
        });
    }
}
