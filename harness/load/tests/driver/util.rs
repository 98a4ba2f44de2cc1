//! Test servers on 127.0.0.1 (a small hyper server that follows the workload contract and can
//! misbehave on purpose, and raw TCP servers that break HTTP), a scripted function endpoint
//! ([`FakeFunction`]), spec builders, and checks that every test applies to every report.

#![allow(dead_code)] // each test module uses a different part

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use isobench_core::backend::{Endpoint, Invoke, InvokeOutcome, InvokeResult, StartKind, TenantTarget};
use isobench_load::{Arrival, LoadReport, LoadSpec, MixSpec, Op, OpStats, Schedule, Snapshot, TenantSpec};
use isobench_testkit::ports::loopback_listener;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// How the test server answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Follows the workload contract: 201/200 for puts, 200 or 404 for gets, 200 for compute.
    Healthy,
    /// Every `n`th request (by arrival order) is answered 500.
    ErrorEvery(u64),
    /// Every `n`th request is answered 400.
    BadRequestEvery(u64),
    /// Every `n`th request is answered 200 with a JSON error document as the body.
    ErrorBodyEvery(u64),
    /// Every `n`th request stalls for the given time before answering.
    StallEvery(u64, Duration),
    /// Every `n`th request gets a response head and part of a body, then the connection is
    /// closed.
    CloseMidResponseEvery(u64),
    /// Every request takes this long (a slow server, to force queueing in the generator).
    Slow(Duration),
}

/// What the server saw.
#[derive(Default)]
pub struct ServerStats {
    pub requests: AtomicU64,
    pub injected_500: AtomicU64,
    pub injected_400: AtomicU64,
    pub injected_error_body: AtomicU64,
    pub stalled: AtomicU64,
    pub closed_mid_response: AtomicU64,
    pub not_found: AtomicU64,
    /// Requests whose `x-tenant-id` header did not match the tenant in the path, or whose
    /// path, method or body broke the contract.
    pub contract_violations: AtomicU64,
    pub by_tenant_op: Mutex<BTreeMap<(String, Op), u64>>,
    written: Mutex<HashSet<(String, String)>>,
}

impl ServerStats {
    pub fn count(&self, tenant: &str, op: Op) -> u64 {
        self.by_tenant_op.lock().unwrap().get(&(tenant.to_string(), op)).copied().unwrap_or(0)
    }
}

/// A server thread with its own single-threaded runtime; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub stats: Arc<ServerStats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl TestServer {
    /// A contract-following server with the given behaviour, on a fresh loopback port.
    pub fn start(behaviour: Behaviour, record_size: usize) -> TestServer {
        let listener = loopback_listener();
        TestServer::on(listener, behaviour, record_size)
    }

    /// Serves on a listener bound elsewhere (e.g. inside another network namespace).
    pub fn on(listener: StdListener, behaviour: Behaviour, record_size: usize) -> TestServer {
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ServerStats::default());
        let (stop, mut stopped) = oneshot::channel();
        let st = Arc::clone(&stats);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        a = listener.accept() => {
                            let Ok((stream, _)) = a else { continue };
                            let _ = stream.set_nodelay(true);
                            let st = Arc::clone(&st);
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| {
                                    handle(Arc::clone(&st), behaviour, record_size, req)
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        TestServer { addr, stats, stop: Some(stop), thread: Some(thread) }
    }

    /// A raw TCP server that breaks HTTP: `Raw::CloseAfterHead` reads each request's head and
    /// closes without answering; `Raw::Garbage` answers with something that is not HTTP.
    pub fn raw(kind: Raw) -> TestServer {
        let listener = loopback_listener();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ServerStats::default());
        let (stop, mut stopped) = oneshot::channel();
        let st = Arc::clone(&stats);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        a = listener.accept() => {
                            let Ok((mut stream, _)) = a else { continue };
                            let st = Arc::clone(&st);
                            tokio::spawn(async move {
                                let mut buf = Vec::new();
                                let mut chunk = [0u8; 4096];
                                // Read one request head.
                                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                                    match stream.read(&mut chunk).await {
                                        Ok(0) | Err(_) => return,
                                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                    }
                                }
                                st.requests.fetch_add(1, Ordering::Relaxed);
                                if let Raw::Garbage = kind {
                                    let _ = stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").await;
                                    let _ = stream.flush().await;
                                }
                                // Dropping the stream closes the connection mid-request.
                            });
                        }
                    }
                }
            });
        });
        TestServer { addr, stats, stop: Some(stop), thread: Some(thread) }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Raw {
    CloseAfterHead,
    Garbage,
}

type RespBody = BoxBody<Bytes, std::io::Error>;

fn full(status: StatusCode, body: &'static str) -> Response<RespBody> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r
}

fn json(status: StatusCode, body: &'static str) -> Response<RespBody> {
    let mut r = full(status, body);
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

/// A body that sends some bytes and then fails, so hyper closes the connection mid-response.
struct FailingBody {
    sent: bool,
}

impl Body for FailingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.sent {
            Poll::Ready(Some(Err(std::io::Error::other("injected failure"))))
        } else {
            self.sent = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))))
        }
    }
}

async fn handle(
    st: Arc<ServerStats>,
    behaviour: Behaviour,
    record_size: usize,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let n = st.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let path = parts.uri.path().to_string();
    let header = parts.headers.get("x-tenant-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let parsed = match (parts.method.as_str(), segs.as_slice()) {
        ("PUT", ["t", t, "records", k]) => Some((Op::Put, t.to_string(), k.to_string())),
        ("GET", ["t", t, "records", k]) => Some((Op::Get, t.to_string(), k.to_string())),
        ("POST", ["t", t, "compute"]) if parts.uri.query().is_some_and(|q| q.starts_with("us=")) => {
            Some((Op::Compute, t.to_string(), String::new()))
        }
        _ => None,
    };
    let Some((op, tenant, key)) = parsed else {
        st.contract_violations.fetch_add(1, Ordering::Relaxed);
        return Ok(full(StatusCode::NOT_FOUND, "no route"));
    };
    if header != tenant || (op == Op::Put && body.len() != record_size) {
        st.contract_violations.fetch_add(1, Ordering::Relaxed);
    }
    *st.by_tenant_op.lock().unwrap().entry((tenant.clone(), op)).or_default() += 1;

    match behaviour {
        Behaviour::ErrorEvery(k) if n.is_multiple_of(k) => {
            st.injected_500.fetch_add(1, Ordering::Relaxed);
            return Ok(full(StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":\"injected\"}"));
        }
        Behaviour::BadRequestEvery(k) if n.is_multiple_of(k) => {
            st.injected_400.fetch_add(1, Ordering::Relaxed);
            return Ok(full(StatusCode::BAD_REQUEST, "{\"error\":\"injected\"}"));
        }
        Behaviour::ErrorBodyEvery(k) if n.is_multiple_of(k) => {
            st.injected_error_body.fetch_add(1, Ordering::Relaxed);
            return Ok(json(StatusCode::OK, "{\"error\":\"injected fault\",\"kind\":\"injected\"}"));
        }
        Behaviour::StallEvery(k, d) if n.is_multiple_of(k) => {
            st.stalled.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(d).await;
        }
        Behaviour::CloseMidResponseEvery(k) if n.is_multiple_of(k) => {
            st.closed_mid_response.fetch_add(1, Ordering::Relaxed);
            let mut r = Response::new(FailingBody { sent: false }.boxed());
            r.headers_mut().insert("content-length", "1000".parse().unwrap());
            return Ok(r);
        }
        Behaviour::Slow(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    Ok(match op {
        Op::Put => {
            st.written.lock().unwrap().insert((tenant, key));
            full(StatusCode::CREATED, "")
        }
        Op::Get => {
            if st.written.lock().unwrap().contains(&(tenant, key)) {
                full(StatusCode::OK, "record")
            } else {
                st.not_found.fetch_add(1, Ordering::Relaxed);
                full(StatusCode::NOT_FOUND, "{\"error\":\"not_found\"}")
            }
        }
        // A JSON success body without an `error` field: ok.
        Op::Compute => json(StatusCode::OK, "{\"spent_us\":1}"),
    })
}

/// Tenant ids `t0..tN`.
pub fn tenants(n: usize) -> Vec<TenantSpec> {
    (0..n).map(|i| TenantSpec { id: format!("t{i}"), weight: 1.0 }).collect()
}

/// A small, fast spec: `rate` requests/s for `ms` milliseconds.
pub fn spec(rate: f64, ms: u64, n_tenants: usize) -> LoadSpec {
    LoadSpec {
        label: "test".into(),
        duration: Duration::from_millis(ms),
        rate,
        arrival: Arrival::Poisson,
        seed: 42,
        tenants: tenants(n_tenants),
        mix: MixSpec { put: 3.0, get: 6.0, compute: 1.0 },
        timeout: Duration::from_secs(2),
        max_connections: 16,
        compute_us: 10,
        record_size: 64,
        keys_per_tenant: 16,
        worker_threads: 2,
        realtime: false,
        shape: Default::default(),
        hooks: Default::default(),
        slice: Default::default(),
    }
}

/// Every tenant of `spec` sent to `addr`.
pub fn targets(spec: &LoadSpec, addr: SocketAddr) -> Vec<TenantTarget> {
    spec.tenants.iter().map(|t| TenantTarget { tenant: t.id.clone(), endpoint: Endpoint::Http(addr) }).collect()
}

/// Runs the driver without cancellation, keeping every snapshot.
pub fn run(spec: &LoadSpec, targets: &[TenantTarget]) -> (LoadReport, Vec<Snapshot>) {
    let cancel = AtomicBool::new(false);
    let mut snaps = Vec::new();
    let report = isobench_load::run(spec, targets, None, &cancel, &mut |s| snaps.push(*s)).expect("run");
    (report, snaps)
}

/// How many requests the spec's schedule plans (walks the schedule).
pub fn planned(spec: &LoadSpec) -> u64 {
    Schedule::new(&spec.schedule_spec()).count() as u64
}

/// Checks that hold for every report: the identity per pair and in total, totals equal to
/// the sum of the pairs, latency samples only for ok requests, a lag for every sent request,
/// corrected latency never below uncorrected, and the cold/warm halves inside the whole.
pub fn check_invariants(r: &LoadReport) {
    let mut sum = (0u64, 0u64, 0u64, 0u64, 0u64);
    for ((t, op), s) in &r.per {
        assert_eq!(s.corrected_cold.len(), s.cold, "{t}/{op}: one corrected cold sample per ok cold start");
        assert_eq!(s.uncorrected_cold.len(), s.cold, "{t}/{op}: one uncorrected cold sample per ok cold start");
        assert_eq!(s.corrected_warm.len(), s.uncorrected_warm.len(), "{t}/{op}: warm halves differ");
        assert!(s.cold + s.corrected_warm.len() <= s.ok, "{t}/{op}: more cold and warm samples than ok requests");
        assert!(s.billed_invokes <= s.sent, "{t}/{op}: billed {} of {} sent", s.billed_invokes, s.sent);
        assert!(
            s.identity_holds(),
            "{t}/{op}: sent {} != ok {} + errors {:?} + timeouts {}",
            s.sent,
            s.ok,
            s.errors,
            s.timeouts
        );
        assert_eq!(s.corrected.len(), s.ok, "{t}/{op}: corrected samples are the ok requests");
        assert_eq!(s.uncorrected.len(), s.ok, "{t}/{op}: uncorrected samples are the ok requests");
        assert_eq!(s.lag.len() + s.abandoned, s.sent, "{t}/{op}: one lag per sent request");
        assert!(
            s.dispatched_accounted(),
            "{t}/{op}: dispatched {} != sent {} + not sent {}",
            s.dispatched,
            s.sent,
            s.not_sent
        );
        assert!(s.sent_in_window <= s.sent && s.ok_in_window <= s.ok, "{t}/{op}: window counts");
        assert!(s.not_found <= s.ok);
        if s.ok > 0 {
            assert!(s.corrected.max() >= s.uncorrected.max(), "{t}/{op}: corrected max below uncorrected");
            assert!(s.corrected.min() >= s.uncorrected.min(), "{t}/{op}: corrected min below uncorrected");
            assert!(s.corrected.mean() >= s.uncorrected.mean(), "{t}/{op}: corrected mean below uncorrected");
        }
        sum.0 += s.sent;
        sum.1 += s.ok;
        sum.2 += s.errors_total();
        sum.3 += s.timeouts;
        sum.4 += s.not_sent;
    }
    let t = &r.totals;
    assert!(t.identity_holds(), "totals: {t:?}");
    assert!(t.dispatched_accounted(), "totals: {t:?}");
    assert_eq!((t.sent, t.ok, t.errors_total(), t.timeouts, t.not_sent), sum, "totals differ from the pairs");
    let all = r.merged();
    assert_eq!((all.sent, all.ok, all.lag.len() + t.abandoned), (t.sent, t.ok, t.sent));
}

/// The function-only fields of a cell that saw HTTP traffic: empty, as documented.
pub fn assert_no_function_facts(s: &OpStats) {
    assert_eq!(
        (s.cold, s.streamed, s.billed_ms_total, s.billed_invokes, s.billed_mb_ms_total, s.memory_mb),
        (0, 0, 0, 0, 0, None)
    );
    for h in [&s.corrected_cold, &s.corrected_warm, &s.uncorrected_cold, &s.uncorrected_warm, &s.init, &s.ttfb] {
        assert!(h.is_empty(), "an HTTP target has no cold/warm split");
    }
}

/// One invoke as a [`FakeFunction`]'s script sees it.
pub struct Call<'a> {
    /// 1-based arrival order at this function.
    pub n: u64,
    /// The tenant id `invoke` was called with (checked equal to the event's).
    pub tenant: &'a str,
    pub op: Op,
    /// The first invoke of this tenant at this function.
    pub first_for_tenant: bool,
    /// For a get: whether a put of the same key reached the function before.
    pub written: bool,
}

/// What the script makes of one invoke.
pub struct Reply {
    /// How long the invoke takes before it returns.
    pub delay: Duration,
    pub result: InvokeResult,
    /// Tallied per label in [`FakeFunction::tally`], for the test to compare with the report.
    pub label: &'static str,
    /// Panic when polled instead of returning.
    pub panic: bool,
    /// A streamed response: its first byte comes this long into `delay`.
    pub first_byte_after: Option<Duration>,
}

impl Reply {
    /// The workload's response document with this status.
    pub fn status(status: u16, label: &'static str) -> Reply {
        let kind = if status >= 400 { r#","kind":"injected""# } else { "" };
        let doc = format!(r#"{{"status":{status},"body":"","content_type":"text/plain; charset=utf-8"{kind}}}"#);
        Reply::outcome(InvokeOutcome::Ok(doc.into_bytes()), label)
    }

    /// This outcome, warm, billed 1 ms at 128 MB, without delay.
    pub fn outcome(outcome: InvokeOutcome, label: &'static str) -> Reply {
        Reply {
            delay: Duration::ZERO,
            result: InvokeResult {
                outcome,
                start: Some(StartKind::Warm),
                billed_ms: Some(1),
                memory_mb: Some(128),
                responded_at: None,
                first_byte_at: None,
            },
            label,
            panic: false,
            first_byte_after: None,
        }
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// A cold start with this INIT, which the invoke's delay includes.
    pub fn cold(mut self, init: Duration) -> Reply {
        self.result.start = Some(StartKind::Cold { init });
        self.delay += init;
        self
    }

    /// A streamed response whose first byte comes `first_byte` into the invoke's delay.
    pub fn streamed(mut self, first_byte: Duration) -> Reply {
        self.first_byte_after = Some(first_byte.min(self.delay));
        self
    }

    /// No environment ran it: no start, nothing billed.
    pub fn no_environment(mut self) -> Reply {
        self.result.start = None;
        self.result.billed_ms = None;
        self.result.memory_mb = None;
        self
    }
}

/// What a contract-following function answers: 201 to a put, 200 or 404 (`not_found`) to a
/// get, 200 to a compute; all warm.
pub fn healthy_reply(call: &Call) -> Reply {
    match call.op {
        Op::Put => Reply::status(201, "put"),
        Op::Get if call.written => Reply::status(200, "get"),
        Op::Get => {
            Reply::outcome(
                InvokeOutcome::Ok(
                    br#"{"status":404,"body":"{\"error\":\"no such record\",\"kind\":\"not_found\"}","content_type":"application/json","kind":"not_found"}"#
                        .to_vec(),
                ),
                "not_found",
            )
        }
        Op::Compute => Reply::status(200, "compute"),
    }
}

type Script = Box<dyn Fn(&Call) -> Reply + Send + Sync>;

/// A scripted function endpoint: checks every event against the workload's Lambda contract,
/// counts what it saw, answers what its script says after the script's delay, and watches its
/// own concurrency and which invokes were abandoned (their future dropped before returning).
pub struct FakeFunction {
    record_size: usize,
    compute_us: u64,
    script: Script,
    pub invokes: AtomicU64,
    /// Events that were not JSON objects of the contract's shape, or whose `tenant` differed
    /// from the tenant id of the invoke.
    pub contract_violations: AtomicU64,
    pub by_tenant_op: Mutex<BTreeMap<(String, Op), u64>>,
    pub tally: Mutex<BTreeMap<&'static str, u64>>,
    /// Invokes of this function in flight.
    pub gauge: Gauge,
    /// Another gauge this function's invokes count in too (shared between functions).
    also: Option<Arc<Gauge>>,
    /// Invokes that returned their result.
    pub completed: AtomicU64,
    /// For each invoke whose future was dropped before it returned: how long after `invoke`
    /// was called.
    pub dropped_after: Mutex<Vec<Duration>>,
    seen: Mutex<HashSet<String>>,
    written: Mutex<HashSet<(String, String)>>,
}

impl std::fmt::Debug for FakeFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFunction").field("invokes", &self.invokes).finish_non_exhaustive()
    }
}

impl FakeFunction {
    /// A function that checks events against `spec` (put body size, compute `us`).
    pub fn new(spec: &LoadSpec, script: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> Arc<FakeFunction> {
        FakeFunction::with_gauge(spec, None, script)
    }

    /// As [`FakeFunction::new`], its invokes also counted in `also`.
    pub fn with_gauge(
        spec: &LoadSpec,
        also: Option<Arc<Gauge>>,
        script: impl Fn(&Call) -> Reply + Send + Sync + 'static,
    ) -> Arc<FakeFunction> {
        Arc::new(FakeFunction {
            record_size: spec.record_size,
            compute_us: spec.compute_us,
            script: Box::new(script),
            invokes: AtomicU64::new(0),
            contract_violations: AtomicU64::new(0),
            by_tenant_op: Mutex::default(),
            tally: Mutex::default(),
            gauge: Gauge::default(),
            also,
            completed: AtomicU64::new(0),
            dropped_after: Mutex::default(),
            seen: Mutex::default(),
            written: Mutex::default(),
        })
    }

    pub fn count(&self, tenant: &str, op: Op) -> u64 {
        self.by_tenant_op.lock().unwrap().get(&(tenant.to_string(), op)).copied().unwrap_or(0)
    }

    pub fn tallied(&self, label: &str) -> u64 {
        self.tally.lock().unwrap().get(label).copied().unwrap_or(0)
    }

    pub fn violations(&self) -> u64 {
        self.contract_violations.load(Ordering::Relaxed)
    }

    /// The event's operation and key, if it follows the contract for an invoke by `tenant`.
    fn check_event(&self, tenant: &str, payload: &[u8]) -> Option<(Op, String)> {
        let v: Value = serde_json::from_slice(payload).ok()?;
        let obj = v.as_object()?;
        if obj.keys().any(|k| !["tenant", "op", "key", "body", "us"].contains(&k.as_str())) {
            return None;
        }
        if obj.get("tenant")?.as_str()? != tenant {
            return None;
        }
        let op = match obj.get("op")?.as_str()? {
            "put" => Op::Put,
            "get" => Op::Get,
            "compute" => Op::Compute,
            _ => return None,
        };
        let key = match op {
            Op::Put | Op::Get => obj.get("key")?.as_str()?.to_string(),
            Op::Compute => String::new(),
        };
        let ok = match op {
            Op::Put => obj.get("body")?.as_str()?.len() == self.record_size,
            Op::Get => !obj.contains_key("body"),
            Op::Compute => obj.get("us")?.as_u64()? == self.compute_us && !obj.contains_key("key"),
        };
        ok.then_some((op, key))
    }
}

/// How many invokes are in flight, and the most ever.
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    pub fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    fn up(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    fn down(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts an invoke in flight; on drop, records it as abandoned unless it returned.
struct InFlight<'a> {
    f: &'a FakeFunction,
    started: Instant,
    returned: bool,
}

impl<'a> InFlight<'a> {
    fn new(f: &'a FakeFunction) -> InFlight<'a> {
        f.gauge.up();
        if let Some(g) = &f.also {
            g.up();
        }
        InFlight { f, started: Instant::now(), returned: false }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.f.gauge.down();
        if let Some(g) = &self.f.also {
            g.down();
        }
        if self.returned {
            self.f.completed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.f.dropped_after.lock().unwrap().push(self.started.elapsed());
        }
    }
}

impl Invoke for FakeFunction {
    fn invoke<'a>(
        &'a self,
        tenant: &'a str,
        payload: Vec<u8>,
    ) -> Pin<Box<dyn std::future::Future<Output = InvokeResult> + Send + 'a>> {
        let guard = InFlight::new(self);
        let n = self.invokes.fetch_add(1, Ordering::Relaxed) + 1;
        let Some((op, key)) = self.check_event(tenant, &payload) else {
            self.contract_violations.fetch_add(1, Ordering::Relaxed);
            let mut guard = guard;
            guard.returned = true;
            let r = Reply::outcome(InvokeOutcome::FunctionError { error_type: "InvalidEvent".into() }, "invalid");
            return Box::pin(async move { r.result });
        };
        *self.by_tenant_op.lock().unwrap().entry((tenant.to_string(), op)).or_default() += 1;
        let first_for_tenant = self.seen.lock().unwrap().insert(tenant.to_string());
        let written = {
            let mut w = self.written.lock().unwrap();
            match op {
                Op::Put => !w.insert((tenant.to_string(), key)),
                Op::Get => w.contains(&(tenant.to_string(), key)),
                Op::Compute => false,
            }
        };
        let reply = (self.script)(&Call { n, tenant, op, first_for_tenant, written });
        *self.tally.lock().unwrap().entry(reply.label).or_default() += 1;
        Box::pin(async move {
            let mut guard = guard;
            let mut reply = reply;
            let mut delay = reply.delay;
            if let Some(first) = reply.first_byte_after {
                tokio::time::sleep(first).await;
                reply.result.first_byte_at = Some(std::time::Instant::now());
                delay -= first;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if reply.panic {
                panic!("scripted panic in invoke {n}");
            }
            guard.returned = true;
            reply.result
        })
    }
}

/// Every tenant of `spec` sent to `function`.
pub fn function_targets(spec: &LoadSpec, function: &Arc<FakeFunction>) -> Vec<TenantTarget> {
    spec.tenants
        .iter()
        .map(|t| {
            let f: Arc<dyn Invoke> = Arc::clone(function) as Arc<dyn Invoke>;
            TenantTarget { tenant: t.id.clone(), endpoint: Endpoint::Function(f) }
        })
        .collect()
}
