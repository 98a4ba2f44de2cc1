//! The AWS traffic driver against the in-memory account, with each agent's task simulated in
//! this process: the agent's side of the session (`run_agent`, the protocol's `serve`) writes
//! through the fake account's bucket with the same `AgentSink`, and drives a real local HTTP
//! server.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;

use isobench_core::backend::{InstanceInfo, TenantTarget};
use isobench_core::plan::Overrides;
use isobench_core::scenario::Scenario;
use isobench_load::{Arrival, MixSpec, Schedule, TenantSpec};

use super::*;
use crate::agents::session::{self, Courier};
use crate::agents::transport::AgentSink;
use crate::api::TaskExit;
use crate::capability::Capabilities;
use crate::deployer::Deployer;
use crate::fake::Fake;
use crate::retry::Backoff;

const RUN: &str = "20270101T000000Z-abcdef";

fn plan(agents: u32) -> Plan {
    let src = format!(
        "format_version = 1\nname = \"t\"\n[run]\nduration = \"2s\"\nrate = 10\n[tenants]\ncount = 2\n\
         [[tier]]\nid = \"silo-ec2\"\ninstance_type = \"t3.micro\"\n[aws.agents]\ncount = {agents}\n"
    );
    let s = Scenario::parse(&src, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    Plan::new(RUN.into(), s, "h".into(), &Overrides::default())
}

/// A server that answers every HTTP/1.1 request 200 with no body, counting them (plain tokio:
/// the agents' requests are all it needs to read).
fn server(count: Arc<AtomicU64>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                tokio::spawn(answer(stream, count.clone()));
            }
        });
    });
    addr
}

async fn answer(mut stream: tokio::net::TcpStream, count: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let body = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + body {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + body);
        count.fetch_add(1, Ordering::SeqCst);
        if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
            return;
        }
    }
}

fn spec() -> LoadSpec {
    LoadSpec {
        label: "silo-ec2".into(),
        duration: Duration::from_secs(2),
        rate: 200.0,
        arrival: Arrival::Poisson,
        seed: 7,
        tenants: ["a", "b"].iter().map(|t| TenantSpec { id: t.to_string(), weight: 1.0 }).collect(),
        mix: MixSpec { put: 1.0, get: 1.0, compute: 1.0 },
        timeout: Duration::from_secs(1),
        max_connections: 4,
        compute_us: 10,
        record_size: 8,
        keys_per_tenant: 10,
        worker_threads: 1,
        realtime: false,
        shape: Default::default(),
        hooks: Default::default(),
        slice: Slice::WHOLE,
    }
}

struct Setup {
    fake: Fake,
    shared: Shared,
    driver: AgentDriver,
    bucket: String,
    /// The agents' own runtime (their S3 calls).
    rt: tokio::runtime::Runtime,
}

fn setup(agents: u32) -> Setup {
    let fake = Fake::new();
    let p = plan(agents);
    let mut d =
        Deployer::new(fake.apis(), &p.run_id, p.scenario.aws.clone(), Capabilities::cloud(), Arc::new(b"elf".to_vec()));
    d.ctx.backoff =
        Backoff { first: Duration::from_millis(1), max: Duration::from_millis(2), budget: Duration::from_millis(200) };
    let bucket = d.ctx.name("workload");
    let shared = Shared::new(AwsBackend::from_deployer(d));
    let mut driver = AgentDriver::new(shared.clone(), &p, Arc::new(b"isobench".to_vec())).unwrap();
    driver.poll = Duration::from_millis(20);
    driver.slack = Duration::from_secs(20);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    Setup { fake, shared, driver, bucket, rt }
}

/// Agent `k`'s sink, once the harness has put its document (its task started).
fn sink_when_started(s: &Setup, k: u32) -> AgentSink {
    let sink = AgentSink::new(s.fake.apis().s3, &s.bucket, RUN, k);
    let t0 = Instant::now();
    while s.rt.block_on(sink.assignment()).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "agent {k} was never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    sink
}

/// The task of agent `k`, as `run_agent` runs it in the container.
fn agent_task(s: &Setup, k: u32) -> JoinHandle<()> {
    let sink = sink_when_started(s, k);
    let rt = s.rt.handle().clone();
    std::thread::spawn(move || {
        let no_functions = |f: &FunctionRef| Err(format!("no invoker for {} here", f.name));
        let r = session::run_agent(sink, &rt, &no_functions, Arc::new(AtomicBool::new(false)), Duration::from_secs(30));
        r.unwrap();
    })
}

/// A deployment whose reported (public) addresses lead nowhere and whose private ones are the
/// server: only the agents' path reaches it.
fn deployment(s: &Setup, server: SocketAddr) -> Deployment {
    let nowhere: SocketAddr = "192.0.2.1:8080".parse().unwrap();
    let tenants = ["a", "b"];
    s.shared
        .lock()
        .deployer_mut()
        .ctx
        .private_targets
        .insert(TierId::SiloEc2, tenants.iter().map(|t| (t.to_string(), server)).collect());
    Deployment {
        tier: TierId::SiloEc2,
        targets: tenants
            .iter()
            .map(|t| TenantTarget { tenant: t.to_string(), endpoint: Endpoint::Http(nowhere) })
            .collect(),
        instances: vec![InstanceInfo {
            id: "i-1".into(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            address: Some(nowhere.ip()),
            start_time: Duration::ZERO,
            pid: None,
            limits: None,
        }],
        netns: None,
    }
}

/// Drives on another thread while the test plays the agents' tasks.
fn drive_in_background(s: &Arc<Setup>, d: Deployment) -> JoinHandle<Result<crate::traffic::DriveResult, LoadError>> {
    let s = s.clone();
    std::thread::spawn(move || s.driver.drive(&spec(), None, &d, &AtomicBool::new(false), &mut |_| {}))
}

fn check_accounting(report: &LoadReport, figures: &[AgentFigures]) {
    let whole = Schedule::new(&spec().schedule_spec()).expected_len();
    assert_eq!(report.totals.dispatched, whole, "the agents planned the one-driver schedule");
    assert_eq!(figures.iter().map(|f| f.planned).sum::<u64>(), whole);
    assert!(report.totals.identity_holds(), "{:?}", report.totals);
    assert_eq!(report.totals.dispatched, report.totals.sent + report.totals.not_sent, "{:?}", report.totals);
    for ((t, op), c) in &report.per {
        assert_eq!(c.dispatched, c.sent + c.not_sent, "{t} {op:?}");
        assert_eq!(c.sent, c.ok + c.errors_total() + c.timeouts, "{t} {op:?}");
    }
}

#[test]
fn agents_in_the_account_drive_the_private_addresses_and_their_reports_merge() {
    let requests = Arc::new(AtomicU64::new(0));
    let addr = server(requests.clone());
    let s = Arc::new(setup(2));
    let d = deployment(&s, addr);
    let driving = drive_in_background(&s, d);
    let tasks: Vec<_> = (0..2).map(|k| agent_task(&s, k)).collect();
    let (report, figures, probed) = driving.join().unwrap().unwrap();
    assert!(probed.is_none(), "no probes were asked for");
    assert_eq!(figures.len(), 2);
    for f in &figures {
        assert_eq!(f.end, AgentEnd::Finished, "agent {}", f.index);
        assert!(f.sent > 0 && f.not_sent == 0, "agent {}: {f:?}", f.index);
    }
    check_accounting(&report, &figures);
    assert_eq!(report.totals.ok, report.totals.sent, "{:?}", report.totals);
    assert_eq!(requests.load(Ordering::SeqCst), report.totals.sent, "every request reached the private address");
    // The agents started as tagged tasks and end their sessions on `Stop`.
    assert_eq!(s.fake.count("task"), 2);
    s.driver.stop_all();
    for t in tasks {
        t.join().unwrap();
    }
    let r = s.shared.clone().teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert!(s.fake.kinds().is_empty(), "{:?}", s.fake.kinds());
}

/// Passes the first `lines` lines through, then nothing: a process killed mid-run.
struct Cut<W: Write> {
    inner: W,
    lines: usize,
    on_cut: Option<Box<dyn FnOnce() + Send>>,
}

impl<W: Write> Write for Cut<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.lines == 0 {
            if let Some(f) = self.on_cut.take() {
                f();
            }
            return Err(std::io::Error::other("killed"));
        }
        self.lines -= buf.iter().filter(|b| **b == b'\n').count().min(self.lines);
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn an_agent_whose_task_stops_mid_run_is_named_died_and_its_unsent_requests_counted() {
    let requests = Arc::new(AtomicU64::new(0));
    let addr = server(requests.clone());
    let s = Arc::new(setup(2));
    let d = deployment(&s, addr);
    let driving = drive_in_background(&s, d.clone());
    let survivor = agent_task(&s, 0);
    // Agent 1 says Hello and one Interval, then its task stops with exit 137 (SIGKILL).
    let sink = sink_when_started(&s, 1);
    let task = s.shared.lock().deployer().agents.as_ref().unwrap().agents[1].task.clone();
    let state = s.fake.state.clone();
    let courier = Courier::start(sink, s.rt.handle().clone(), Arc::new(AtomicBool::new(false)));
    let Some(Order::Drive { assignment, .. }) = courier.next_order(Duration::from_secs(20)) else {
        panic!("agent 1 got no order")
    };
    let mut out = Cut {
        inner: courier.writer(),
        lines: 2,
        on_cut: Some(Box::new(move || {
            state.lock().unwrap().stopped.insert(
                task,
                TaskExit {
                    last_status: "STOPPED".into(),
                    stopped_reason: Some("Essential container in task exited".into()),
                    exit_code: Some(137),
                },
            );
        })),
    };
    let r = isobench_load::agent::serve(&assignment, &|_| None, None, &AtomicBool::new(false), &mut out);
    assert!(r.is_err(), "its stream was cut");
    courier.finish();
    let (report, figures, probed) = driving.join().unwrap().unwrap();
    assert!(probed.is_none(), "no probes were asked for");
    assert_eq!(figures[0].end, AgentEnd::Finished);
    let AgentEnd::Died { how } = &figures[1].end else { panic!("agent 1: {:?}", figures[1].end) };
    assert_eq!(how, "its task stopped (exit 137): Essential container in task exited");
    assert!(figures[1].not_sent > 0, "{:?}", figures[1]);
    assert_eq!(figures[1].sent + figures[1].not_sent, figures[1].planned);
    check_accounting(&report, &figures);
    assert!(report.totals.not_sent >= figures[1].not_sent);
    // The next tier does not wait for it: its whole slice is counted as not sent.
    let driving = drive_in_background(&s, d);
    let (report, figures, probed) = driving.join().unwrap().unwrap();
    assert!(probed.is_none(), "no probes were asked for");
    let AgentEnd::Died { how } = &figures[1].end else { panic!("agent 1: {:?}", figures[1].end) };
    assert!(how.starts_with("lost earlier in the run (its task stopped (exit 137)"), "{how}");
    assert_eq!((figures[1].sent, figures[1].not_sent), (0, figures[1].planned));
    assert_eq!(figures[0].end, AgentEnd::Finished);
    check_accounting(&report, &figures);
    s.driver.stop_all();
    survivor.join().unwrap();
    let r = s.shared.clone().teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert!(s.fake.kinds().is_empty(), "{:?}", s.fake.kinds());
}

/// Probes asked of the driver are run by agent 0, against the private addresses, and its report
/// comes back as the tier's probe outcome.
#[test]
fn agent_0_runs_the_probes_and_their_outcome_comes_back() {
    let requests = Arc::new(AtomicU64::new(0));
    let addr = server(requests.clone());
    let s = Arc::new(setup(2));
    let d = deployment(&s, addr);
    let p = plan(2);
    let tp = &p.tiers[0];
    let lk_tmp = isobench_core::probes::CATALOGUE.iter().find(|p| p.id == "LK-TMP").unwrap();
    let probes = ProbeSpec {
        run_id: RUN.into(),
        tier: tp.tier,
        probes: ProbeSpec::expectations(tp.tier, &tp.settings, &tp.workload, [lk_tmp]),
        trials: 1,
        seed: 7,
        not_applicable: Vec::new(),
    };
    let driving = {
        let s = s.clone();
        std::thread::spawn(move || s.driver.drive(&spec(), Some(&probes), &d, &AtomicBool::new(false), &mut |_| {}))
    };
    let tasks: Vec<_> = (0..2).map(|k| agent_task(&s, k)).collect();
    let (report, figures, probed) = driving.join().unwrap().unwrap();
    check_accounting(&report, &figures);
    let report = probed.expect("the probes' outcome comes back").expect("agent 0's report");
    // It reached the private address (the public one leads nowhere) and got an answer that is
    // not the probe agent's: a blind trial, inconclusive, never blocked.
    assert_eq!(report.cells.len(), 1, "{report:?}");
    let cell = &report.cells[0];
    assert_eq!((cell.probe.as_str(), cell.blind), ("LK-TMP", 1), "{cell:?}");
    assert_eq!(cell.verdict, isobench_results::Verdict::Inconclusive, "{cell:?}");
    s.driver.stop_all();
    for t in tasks {
        t.join().unwrap();
    }
    let r = s.shared.clone().teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
}
