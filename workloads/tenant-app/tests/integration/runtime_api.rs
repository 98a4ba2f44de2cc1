//! A minimal Lambda Runtime API server (2018-06-01), enough to drive the binary in Lambda mode
//! without the harness: `GET /runtime/invocation/next` hands out queued events with the standard
//! headers, and `POST .../invocation/{id}/response`, `.../invocation/{id}/error` and
//! `.../init/error` are recorded and answered 202. Raw HTTP/1.1 over std threads, one per
//! connection, keep-alive (lambda_runtime's client reuses its connection).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use isobench_testkit::ports::loopback_listener;
use isobench_testkit::wait;

const PREFIX: &str = "/2018-06-01/runtime";
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:tenant-app";
const WAIT: Duration = Duration::from_secs(10);

/// One queued invocation.
struct Invocation {
    request_id: String,
    tenant_id: Option<String>,
    payload: Vec<u8>,
}

/// A POST the runtime made.
#[derive(Debug, Clone)]
pub struct Post {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Post {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// How one invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// `POST .../response`: the function's payload.
    Response(serde_json::Value),
    /// `POST .../error`: `errorType`, `errorMessage` and the `Lambda-Runtime-Function-Error-Type` header.
    Error { error_type: String, message: String, header: Option<String> },
}

impl Outcome {
    /// The payload; panics on a function error.
    pub fn payload(self) -> serde_json::Value {
        match self {
            Outcome::Response(v) => v,
            Outcome::Error { .. } => panic!("expected a payload, got {self:?}"),
        }
    }

    /// The function error's `errorType`; panics on a payload.
    pub fn error_type(&self) -> &str {
        match self {
            Outcome::Error { error_type, .. } => error_type,
            Outcome::Response(_) => panic!("expected a function error, got {self:?}"),
        }
    }
}

struct Shared {
    queue: Mutex<VecDeque<Invocation>>,
    ready: Condvar,
    posts: Mutex<Sender<Post>>,
    first_next: OnceLock<Instant>,
    nexts: AtomicU64,
    stopped: AtomicBool,
}

/// The server; stops on drop.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    posts: Receiver<Post>,
    next_id: AtomicU64,
}

impl RuntimeApi {
    pub fn start() -> RuntimeApi {
        let listener = loopback_listener();
        let addr = listener.local_addr().unwrap();
        let (tx, posts) = mpsc::channel();
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            posts: Mutex::new(tx),
            first_next: OnceLock::new(),
            nexts: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || serve_connection(stream, &shared));
            }
        });
        RuntimeApi { addr, shared, posts, next_id: AtomicU64::new(1) }
    }

    /// When the runtime first asked for an event (the end of its INIT).
    pub fn wait_first_next(&self, timeout: Duration) -> Option<Instant> {
        wait::until_some(timeout, || self.shared.first_next.get().copied())
    }

    /// How many `/next` requests arrived so far.
    pub fn nexts(&self) -> u64 {
        self.shared.nexts.load(Ordering::SeqCst)
    }

    /// Queues a raw payload and waits for its outcome.
    pub fn invoke_raw(&self, payload: &[u8], tenant_id: Option<&str>) -> Outcome {
        let request_id = format!("8476a536-e9f4-11e8-9739-{:012x}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let invocation = Invocation {
            request_id: request_id.clone(),
            tenant_id: tenant_id.map(str::to_owned),
            payload: payload.to_vec(),
        };
        self.shared.queue.lock().unwrap().push_back(invocation);
        self.shared.ready.notify_all();
        let post = self.next_post(WAIT).unwrap_or_else(|| panic!("no outcome for {request_id} within {WAIT:?}"));
        let rest = post.path.strip_prefix(&format!("{PREFIX}/invocation/{request_id}/")).unwrap_or_else(|| {
            panic!("outcome for another request: {post:?} (expected {request_id})");
        });
        match rest {
            "response" => Outcome::Response(post.json()),
            "error" => {
                let v = post.json();
                Outcome::Error {
                    error_type: v["errorType"].as_str().expect("errorType").to_owned(),
                    message: v["errorMessage"].as_str().expect("errorMessage").to_owned(),
                    header: post.header("lambda-runtime-function-error-type").map(str::to_owned),
                }
            }
            other => panic!("unexpected POST .../{other}"),
        }
    }

    /// Queues an event and waits for its outcome.
    pub fn invoke(&self, event: serde_json::Value, tenant_id: Option<&str>) -> Outcome {
        self.invoke_raw(event.to_string().as_bytes(), tenant_id)
    }

    /// The next POST the runtime makes (outcomes and init errors), if one comes in time.
    pub fn next_post(&self, timeout: Duration) -> Option<Post> {
        self.posts.recv_timeout(timeout).ok()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.ready.notify_all();
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some((method, path, headers, body)) = read_request(&mut reader) {
        let reply = match (method.as_str(), path.as_str()) {
            ("GET", p) if p == format!("{PREFIX}/invocation/next") => match next_invocation(shared) {
                Some(inv) => next_response(&inv),
                None => return,
            },
            ("POST", p) if p.starts_with(&format!("{PREFIX}/invocation/")) || p == format!("{PREFIX}/init/error") => {
                let _ = shared.posts.lock().unwrap().send(Post { path, headers, body });
                response("202 Accepted", &[], br#"{"status":"OK"}"#)
            }
            _ => response("404 Not Found", &[], br#"{"errorType":"NotFound"}"#),
        };
        if writer.write_all(&reply).is_err() {
            return;
        }
    }
}

/// Blocks until an invocation is queued or the server stops.
fn next_invocation(shared: &Shared) -> Option<Invocation> {
    let _ = shared.first_next.set(Instant::now());
    shared.nexts.fetch_add(1, Ordering::SeqCst);
    let mut queue = shared.queue.lock().unwrap();
    loop {
        if shared.stopped.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(inv) = queue.pop_front() {
            return Some(inv);
        }
        queue = shared.ready.wait_timeout(queue, Duration::from_millis(100)).unwrap().0;
    }
}

fn next_response(inv: &Invocation) -> Vec<u8> {
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 30_000;
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("Lambda-Runtime-Aws-Request-Id", inv.request_id.clone()),
        ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
        ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN.to_owned()),
        (
            "Lambda-Runtime-Trace-Id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".to_owned(),
        ),
    ];
    if let Some(tenant) = &inv.tenant_id {
        headers.push(("Lambda-Runtime-Aws-Tenant-Id", tenant.clone()));
    }
    response("200 OK", &headers, &inv.payload)
}

fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

type RawRequest = (String, String, Vec<(String, String)>, Vec<u8>);

/// Reads one request (Content-Length or chunked body); `None` at end of stream.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<RawRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = header("content-length") {
        body.resize(len.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, headers, body))
}
