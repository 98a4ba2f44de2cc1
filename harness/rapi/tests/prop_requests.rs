//! Property tests of the Runtime API server's request handling, over real loopback sockets:
//! arbitrary request lines, headers and bodies, well-formed or not, against a fresh server,
//! with an invocation in flight or not. Nothing panics (a panic hook counts panics on the
//! server's threads, its connection tasks included), every well-formed request gets an answer,
//! every refusal is the documented JSON error naming what was wrong, and the server still
//! answers afterwards.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use isobench_rapi::{FunctionConfig, Invocation, RuntimeApi, error_types, headers};
use isobench_testkit::ports::loopback_listener;
use proptest::prelude::*;

const PREFIX: &str = "/2018-06-01/runtime/";
const NEXT: &str = "/2018-06-01/runtime/invocation/next";
/// Stands for the request id of the invocation in flight, when there is one.
const ID: &str = "{id}";

/// Panics on the server's threads (the test's own failures are proptest's business).
static PANICS: AtomicUsize = AtomicUsize::new(0);
const SERVER_THREAD: &str = "rapi-server";

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(SERVER_THREAD) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(SERVER_THREAD)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A raw exchange on a fresh connection: `bytes` sent, then whatever came back until the
/// server closed. Well-formed requests say `Connection: close`; for the rest `shut` closes the
/// write side, so that the server sees the end (it may then close before answering).
fn exchange(addr: SocketAddr, bytes: &[u8], shut: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before it has read everything: a reset is fine.
    let _ = s.write_all(bytes).and_then(|_| if shut { s.shutdown(Shutdown::Write) } else { Ok(()) });
    let mut out = Vec::new();
    let started = Instant::now();
    let _ = s.read_to_end(&mut out);
    assert!(started.elapsed() < Duration::from_secs(5), "no answer and no close within 5 s");
    out
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer { status, head, body: raw[end + 4..].to_vec() })
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One request, with the parts the properties look at.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
}

impl Req {
    fn bytes(&self, id: &str) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
            self.method,
            self.path.replace(ID, id)
        );
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {}\r\n", v.replace(ID, id)));
        }
        let mut out = out.into_bytes();
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in self.body.chunks(7) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// `GET /next` parks until an invocation comes: not a case for a one-shot exchange.
    fn parks(&self) -> bool {
        self.method == "GET" && self.path.split(['?', '#']).next() == Some(NEXT)
    }
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(ID.to_string()),
        1 => Just(String::new()),
        1 => prop::sample::select(&["..", ".", "%00", "%2F", "00000000-0000-0000-0000-000000000000", "next"][..])
            .prop_map(str::to_string),
        2 => "[A-Za-z0-9._~!$&'()*+,;=:@%-]{1,40}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let tail = prop::sample::select(&["response", "error", "", "response/x", "Response", "next"][..]);
    prop_oneof![
        2 => Just(NEXT.to_string()),
        2 => Just(format!("{PREFIX}init/error")),
        6 => (segment(), tail).prop_map(|(id, t)| format!("{PREFIX}invocation/{id}/{t}")),
        1 => (segment(), "(\\?[a-z=&]{0,10})?").prop_map(|(s, q)| format!("{PREFIX}{s}{q}")),
        1 => "/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,60}",
        1 => Just("*".to_string()),
        1 => Just("http://127.0.0.1/2018-06-01/runtime/init/error".to_string()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        prop::sample::select(
            &[
                headers::FUNCTION_ERROR_TYPE,
                headers::INVOCATION_ID,
                headers::REQUEST_ID,
                "Content-Type",
                "Expect",
                "Connection",
            ][..]
        )
        .prop_map(str::to_string),
        "[A-Za-z][A-Za-z0-9-]{0,20}",
    ];
    let value = prop_oneof![
        Just(ID.to_string()),
        Just(String::new()),
        "[ -~]{0,40}",
        Just("Unhandled".to_string()),
        Just("100-continue".to_string()),
    ];
    prop::collection::vec((name, value), 0..5)
}

fn request() -> impl Strategy<Value = Req> {
    let method =
        prop::sample::select(&["GET", "POST", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW"][..]);
    let body = prop_oneof![prop::collection::vec(any::<u8>(), 0..64), "\\PC{0,64}".prop_map(String::into_bytes)];
    (method, path(), headers(), body, any::<bool>()).prop_map(|(m, path, headers, body, chunked)| Req {
        method: m.to_string(),
        path,
        headers: headers.into_iter().filter(|(k, _)| !is_framing(k)).collect(),
        body,
        chunked,
    })
}

/// Headers that would change the framing of the body the strategy wrote.
fn is_framing(name: &str) -> bool {
    ["content-length", "transfer-encoding", "host", "expect", "connection"]
        .contains(&name.to_ascii_lowercase().as_str())
}

/// What makes a request malformed: cut short, a byte replaced, garbage before it.
#[derive(Debug, Clone)]
enum Damage {
    Truncate(usize),
    Replace(usize, u8),
    Prefix(Vec<u8>),
    Garbage(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Replace(i, b)),
        prop::collection::vec(any::<u8>(), 1..16).prop_map(Damage::Prefix),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Damage::Garbage),
    ]
}

fn apply(mut bytes: Vec<u8>, d: &Damage) -> Vec<u8> {
    match d {
        Damage::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
        Damage::Replace(i, b) => {
            let n = bytes.len();
            bytes[i % n] = *b;
        }
        Damage::Prefix(p) => bytes.splice(0..0, p.iter().copied()).for_each(drop),
        Damage::Garbage(g) => bytes = g.clone(),
    }
    bytes
}

/// A fresh server, and the request id of an invocation handed out to a runtime if `in_flight`.
struct Env {
    api: Arc<RuntimeApi>,
    invoke: Option<tokio::task::JoinHandle<()>>,
    id: String,
}

impl Env {
    fn new(in_flight: bool) -> Env {
        let rt = runtime();
        let _g = rt.enter();
        let api =
            Arc::new(RuntimeApi::start(loopback_listener(), FunctionConfig::new("prop-fn", Instant::now())).unwrap());
        let mut env = Env { api, invoke: None, id: "00000000-0000-0000-0000-000000000000".into() };
        if in_flight {
            let api = env.api.clone();
            env.invoke = Some(rt.spawn(async move {
                let _ = api.invoke(Invocation::new(&b"{}"[..], Duration::from_secs(30))).await;
            }));
            let raw = exchange(
                env.api.local_addr(),
                format!("GET {NEXT} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
                false,
            );
            let a = parse_answer(&raw).expect("an answer to /next");
            env.id = header(&a, headers::REQUEST_ID).expect("a request id").to_string();
        }
        env
    }

    /// The server still serves: an unknown path is the documented 404.
    fn assert_alive(&self) {
        let raw =
            exchange(self.api.local_addr(), b"GET /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false);
        let a = parse_answer(&raw).expect("the server stopped answering");
        assert_eq!(a.status, 404, "{}", a.head);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(t) = self.invoke.take() {
            t.abort();
        }
        runtime().block_on(self.api.shutdown());
    }
}

/// A refusal is the documented `ErrorResponse`: JSON with `errorType` and a message naming
/// what was wrong (the path for 404, the method for 405).
fn assert_documented(req: &Req, a: &Answer) {
    assert!([202, 400, 403, 404, 405, 410, 413].contains(&a.status), "status {}: {}", a.status, a.head);
    assert_eq!(header(a, "content-type"), Some("application/json"), "{}", a.head);
    let v: serde_json::Value =
        serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", a.body));
    if a.status == 202 {
        assert_eq!(v, serde_json::json!({"status": "OK"}));
        return;
    }
    let (kind, message) = (v["errorType"].as_str().unwrap(), v["errorMessage"].as_str().unwrap());
    assert!(!kind.is_empty() && !message.is_empty(), "{v}");
    match a.status {
        404 => assert!(kind == error_types::NOT_FOUND && message.contains("no Runtime API resource at"), "{v}"),
        405 => {
            assert_eq!(kind, error_types::METHOD_NOT_ALLOWED);
            assert!(message.contains(&req.method), "{v}");
            assert!(header(a, "allow").is_some(), "{}", a.head);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn well_formed_requests_get_documented_answers(req in request(), in_flight in any::<bool>()) {
        prop_assume!(!req.parks());
        count_panics();
        let before = PANICS.load(Ordering::SeqCst);
        let env = Env::new(in_flight);
        let raw = exchange(env.api.local_addr(), &req.bytes(&env.id), false);
        let a = parse_answer(&raw).unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&raw)));
        if req.method == "HEAD" {
            prop_assert!(a.status >= 400, "{}", a.head);
        } else {
            assert_documented(&req, &a);
        }
        env.assert_alive();
        drop(env);
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), before, "a panic while serving {:?}", req);
    }

    #[test]
    fn malformed_requests_never_panic_the_server(req in request(), d in damage(), in_flight in any::<bool>()) {
        prop_assume!(!req.parks());
        count_panics();
        let before = PANICS.load(Ordering::SeqCst);
        let env = Env::new(in_flight);
        let bytes = apply(req.bytes(&env.id), &d);
        prop_assume!(!bytes.starts_with(format!("GET {NEXT}").as_bytes()));
        let raw = exchange(env.api.local_addr(), &bytes, true);
        if let Some(a) = parse_answer(&raw) {
            prop_assert!((200..600).contains(&a.status), "{}", a.head);
        }
        env.assert_alive();
        drop(env);
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), before, "a panic while serving {:?}", bytes);
    }
}
