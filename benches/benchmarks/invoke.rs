//! Per-tier invoke latency on the local emulator, warm and cold.
//!
//! - **warm**: one tier deployed once with one tenant; each iteration is one request to it:
//!   an HTTP/1.1 `GET` over a kept-alive connection (EC2, ECS), or one invoke of the function
//!   (Lambda) after a first invoke has started its environment.
//! - **cold**: what a tenant's first request waits for. EC2 and ECS: an instance or task start
//!   (the emulator's own figure, creation to the workload answering its health check; the tier
//!   is deployed and torn down around each one, untimed). Lambda: an invoke that starts a new
//!   execution environment (each iteration invokes a tenant whose function has never run; the
//!   bench checks the result says `cold`).
//! - **cold_storm**: the cold-start throughput. One iteration deploys `lambda-per-tenant` with N
//!   tenants (N functions, untimed) and sends every function's first invoke at once; the time
//!   is from the storm's start to the last answer, and the throughput criterion prints
//!   (elements/s) is environments started per second. Each storm also prints the time from its
//!   start to the end of its last INIT and the INIT median. N is 1,000 (the account's default
//!   concurrency, so nothing is throttled), or `ISOBENCH_BENCH_STORM`; every invoke must be a
//!   cold start answered ok, so a throttle or a failed INIT stops the bench.
//!
//! Lambda functions have 1,769 MB here, one vCPU, as the instance and task sizes give their
//! workloads at least one: the warm figure is then the emulator's invoke path (thaw, hand-over
//! to the parked `/next`, the runtime's `/response`), not the function's CPU share. A 128 MB
//! function gets 7% of a vCPU (CFS quota 7.2 ms per 100 ms), as on Lambda, and back-to-back
//! invokes then wait for the quota: `warm-128mb/lambda-per-tenant` shows that apart.
//! Every warm bench also prints its p50 and p99 (criterion's figure is a mean estimate); a
//! Lambda invoke is timed to its response (`responded_at`), not to the freeze after it.
//!
//! Needs root (namespaces, cgroups) and the release binaries beside the bench's target
//! directory (`cargo build --release --workspace --bins`); without either it prints why and
//! registers nothing. The figures are this host's, not AWS's.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, measurement::WallTime};
use http_body_util::{BodyExt, Empty};
use isobench_core::backend::{Endpoint, Invoke, StartKind};
use isobench_core::plan::{Overrides, Plan, TierPlan};
use isobench_core::scenario::{Scenario, TenantSpec};
use isobench_core::workload_api::{Op, TENANT_HEADER, path};
use isobench_core::{Backend, Deployment, TierId};
use isobench_local::{LocalBackend, LocalConfig};

/// One scenario holding every tier's settings; tenants are set per deployment.
const SCENARIO: &str = r#"
format_version = 1
name = "bench-invoke"

[run]                   # unused: the bench sends its own requests
duration = "1s"
rate = "1"
arrival = "constant"
timeout = "5s"
seed = 1

[tenants]
count = 1

[[tier]]
id = "silo-ec2"
instance_type = "t3.micro"

[[tier]]
id = "shared-ec2"
instance_type = "m5.large"

[[tier]]
id = "ecs-awsvpc"
launch_type = "fargate"
[tier.task_definition]
cpu = 256
memory = 512

[[tier]]
id = "lambda-per-tenant"
memory = 1769
timeout = "5s"
keep_alive = "10m"
concurrency = 1000

[[tier]]
id = "lambda-shared"
memory = 1769
timeout = "5s"
keep_alive = "10m"
concurrency = 1000

[[tier]]
id = "lambda-tenant-isolation"
memory = 1769
timeout = "5s"
keep_alive = "10m"
concurrency = 1000
"#;

/// Why this process cannot run the emulator, if it cannot.
fn cannot_run(dir: &Path) -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for namespaces and cgroups".into());
    }
    for exe in ["isobench-sandbox", "tenant-app"] {
        if !dir.join(exe).is_file() {
            return Some(format!(
                "{} is missing: build it first with `cargo build --release --workspace --bins`",
                dir.join(exe).display()
            ));
        }
    }
    None
}

/// The target directory's profile folder (`target/release`): the bench runs from its `deps/`.
fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default()
}

struct Bench {
    backend: LocalBackend,
    plans: Vec<TierPlan>,
    runtime: tokio::runtime::Runtime,
    /// Tenant ids never used yet (cold invokes need fresh ones).
    next_tenant: usize,
}

impl Bench {
    fn new(dir: &Path) -> Bench {
        let run_id = format!("bench-invoke-{}", std::process::id());
        let backend = LocalBackend::new(LocalConfig::beside_executable(dir, &run_id)).expect("local backend starts");
        let scenario = Scenario::parse(SCENARIO, Path::new("bench-invoke.toml")).expect("the bench scenario is valid");
        let plan = Plan::new(run_id, scenario, String::new(), &Overrides::default());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        Bench { backend, plans: plan.tiers, runtime, next_tenant: 0 }
    }

    /// The tier's plan with `n` tenants that no earlier deployment used.
    fn plan(&mut self, tier: TierId, n: usize) -> TierPlan {
        let mut p = self.plans.iter().find(|p| p.tier == tier).expect("every tier is in the scenario").clone();
        p.tenants = (self.next_tenant..self.next_tenant + n)
            .map(|i| TenantSpec { id: format!("b{i:06}"), weight: 1.0 })
            .collect();
        self.next_tenant += n;
        p
    }

    fn set_memory(&mut self, tier: TierId, mb: u32) {
        for p in self.plans.iter_mut().filter(|p| p.tier == tier) {
            if let isobench_core::scenario::TierSettings::Lambda(l) = &mut p.settings {
                l.memory = mb;
            }
        }
    }

    fn deploy(&mut self, tier: TierId, n: usize) -> Deployment {
        let p = self.plan(tier, n);
        self.backend.deploy(&p).unwrap_or_else(|e| panic!("deploy {tier}: {e}"))
    }

    fn teardown(&mut self, tier: TierId) {
        let r = self.backend.teardown(tier).unwrap_or_else(|e| panic!("teardown {tier}: {e}"));
        assert!(r.left_behind.is_empty(), "{tier} left behind {:?}", r.left_behind);
    }
}

/// A TCP connection opened from inside `netns` (a socket belongs to the namespace of the
/// thread that creates it), on a scratch thread so this thread's namespace stays as it is.
fn connect_in(netns: Option<&Arc<OwnedFd>>, addr: SocketAddr) -> std::net::TcpStream {
    let ns = netns.cloned();
    std::thread::spawn(move || {
        if let Some(ns) = ns {
            nix::sched::setns(&*ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("join the harness namespace");
        }
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to the workload")
    })
    .join()
    .expect("connect thread")
}

/// Warm HTTP request latency: one kept-alive hyper connection, one GET per iteration.
fn warm_http(g: &mut BenchmarkGroup<WallTime>, bench: &mut Bench, tier: TierId) {
    let d = bench.deploy(tier, 1);
    let tenant = d.targets[0].tenant.clone();
    let Endpoint::Http(addr) = d.targets[0].endpoint.clone() else { panic!("{tier} has an HTTP endpoint") };
    let stream = connect_in(d.netns.as_ref(), addr);
    stream.set_nonblocking(true).expect("non-blocking socket");
    let uri = path(Op::Get, &tenant, "1", 0);
    let rt = &bench.runtime;
    let mut sender = rt.block_on(async {
        let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::from_std(stream).expect("tokio stream"));
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.expect("HTTP/1.1 handshake");
        tokio::spawn(conn);
        sender
    });
    let mut p = Percentiles::default();
    g.bench_function(format!("warm/{tier}"), |b| {
        b.iter_custom(|iters| {
            p.time(iters, || {
                rt.block_on(async {
                    let req = hyper::Request::get(uri.as_str())
                        .header("host", "workload")
                        .header(TENANT_HEADER, tenant.as_str())
                        .body(Empty::<Bytes>::new())
                        .expect("request");
                    let res = sender.send_request(req).await.expect("the workload answers");
                    let status = res.status();
                    res.into_body().collect().await.expect("body");
                    // 404: the key was never written, a successful read of nothing.
                    assert!(status.is_success() || status == 404, "{tier}: status {status}");
                });
                None
            })
        })
    });
    p.print(&format!("warm/{tier}"));
    drop(sender);
    bench.teardown(tier);
}

fn get_event(tenant: &str) -> Vec<u8> {
    format!(r#"{{"tenant":"{tenant}","op":"get","key":"1"}}"#).into_bytes()
}

fn function_of(d: &Deployment, i: usize) -> (String, Arc<dyn Invoke>) {
    let t = &d.targets[i];
    let Endpoint::Function(f) = t.endpoint.clone() else { panic!("{} has a function endpoint", d.tier) };
    (t.tenant.clone(), f)
}

/// One invoke; panics unless the workload answered and the start was the expected kind.
/// Returns when the response was complete, if the backend says.
async fn invoke_once(f: &dyn Invoke, tenant: &str, cold: bool) -> Option<Instant> {
    let r = f.invoke(tenant, get_event(tenant)).await;
    assert!(matches!(r.outcome, isobench_core::backend::InvokeOutcome::Ok(_)), "{tenant}: {:?}", r.outcome);
    assert_eq!(matches!(r.start, Some(StartKind::Cold { .. })), cold, "{tenant}: start {:?}", r.start);
    r.responded_at
}

/// Every timed iteration of one bench, for its p50 and p99.
struct Percentiles(hdrhistogram::Histogram<u64>);

impl Default for Percentiles {
    fn default() -> Self {
        Percentiles(hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram"))
    }
}

impl Percentiles {
    /// Runs `op` `iters` times, timing each from its start to the instant it returns (or to
    /// now when it returns `None`); returns the total, as `iter_custom` wants.
    fn time(&mut self, iters: u64, mut op: impl FnMut() -> Option<Instant>) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let t0 = Instant::now();
            let end = op().unwrap_or_else(Instant::now);
            let d = end.saturating_duration_since(t0);
            self.0.saturating_record(d.as_nanos() as u64);
            total += d;
        }
        total
    }

    fn print(&self, id: &str) {
        if self.0.is_empty() {
            return; // filtered out
        }
        let us = |q: f64| self.0.value_at_quantile(q) as f64 / 1e3;
        println!(
            "{id}: p50 {:.1} µs, p99 {:.1} µs over {} iterations (warm-up included)",
            us(0.5),
            us(0.99),
            self.0.len()
        );
    }
}

/// Warm invoke latency: one tenant, its environment started by a first (untimed) invoke.
fn warm_function(g: &mut BenchmarkGroup<WallTime>, bench: &mut Bench, tier: TierId, name: &str) {
    let d = bench.deploy(tier, 1);
    let (tenant, f) = function_of(&d, 0);
    let rt = &bench.runtime;
    rt.block_on(invoke_once(&*f, &tenant, true));
    let mut p = Percentiles::default();
    g.bench_function(format!("{name}/{tier}"), |b| {
        b.iter_custom(|iters| p.time(iters, || rt.block_on(invoke_once(&*f, &tenant, false))))
    });
    p.print(&format!("{name}/{tier}"));
    bench.teardown(tier);
}

/// Cold invoke latency: every timed invoke is some tenant's first, on a tier deployed with
/// exactly as many tenants as the sample has iterations (deploy and teardown untimed). On
/// `lambda-shared` one environment serves every tenant, so its invokes are warm after the
/// first: it has no cold figure beyond the first invoke and is not benchmarked cold.
fn cold_function(g: &mut BenchmarkGroup<WallTime>, bench: &mut Bench, tier: TierId) {
    g.bench_function(format!("cold/{tier}"), |b| {
        b.iter_custom(|iters| {
            let d = bench.deploy(tier, iters as usize);
            let mut total = Duration::ZERO;
            for i in 0..iters as usize {
                let (tenant, f) = function_of(&d, i);
                let t0 = Instant::now();
                bench.runtime.block_on(invoke_once(&*f, &tenant, true));
                total += t0.elapsed();
            }
            drop(d);
            bench.teardown(tier);
            total
        })
    });
}

/// One storm: the first invoke of each of `n` new functions, all at once. Returns the time to
/// the last answer, the time from the storm's start to the end of its last INIT, and the INITs.
fn storm_once(bench: &mut Bench, n: usize) -> (Duration, Duration, Vec<Duration>) {
    let tier = TierId::LambdaPerTenant;
    let d = bench.deploy(tier, n);
    let functions: Vec<(String, Arc<dyn Invoke>)> = (0..n).map(|i| function_of(&d, i)).collect();
    let t0 = Instant::now();
    let answers = bench.runtime.block_on(async move {
        let tasks: Vec<_> = functions
            .into_iter()
            .map(|(tenant, f)| {
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let r = f.invoke(&tenant, get_event(&tenant)).await;
                    (tenant, sent, r)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.expect("invoke task"));
        }
        out
    });
    let took = t0.elapsed();
    let mut inits = Vec::with_capacity(n);
    let mut last_init = Duration::ZERO;
    for (tenant, sent, r) in &answers {
        assert!(matches!(r.outcome, isobench_core::backend::InvokeOutcome::Ok(_)), "{tenant}: {:?}", r.outcome);
        let Some(StartKind::Cold { init }) = r.start else { panic!("{tenant}: start {:?}", r.start) };
        inits.push(init);
        // INIT starts when the backend takes the invoke, microseconds after it was sent.
        last_init = last_init.max(sent.duration_since(t0) + init);
    }
    drop(d);
    bench.teardown(tier);
    inits.sort();
    (took, last_init, inits)
}

/// Cold-start throughput: storms of N first invokes on N functions; criterion's throughput is
/// environments started per second.
fn cold_storm(g: &mut BenchmarkGroup<WallTime>, bench: &mut Bench, n: usize) {
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("cold_storm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (took, last_init, inits) = storm_once(bench, n);
                eprintln!(
                    "cold_storm: {n} environments in {:.3} s ({:.0}/s); last INIT done {:.3} s after the storm's start; INIT median {:.1} ms, max {:.1} ms",
                    took.as_secs_f64(),
                    n as f64 / took.as_secs_f64(),
                    last_init.as_secs_f64(),
                    inits[inits.len() / 2].as_secs_f64() * 1e3,
                    inits[inits.len() - 1].as_secs_f64() * 1e3,
                );
                total += took;
            }
            total
        })
    });
}

/// Cold start of an instance or task: deploy one tenant, take the emulator's start figure
/// (creation to the workload answering), tear down; only the start is timed.
fn cold_instance(g: &mut BenchmarkGroup<WallTime>, bench: &mut Bench, tier: TierId) {
    g.bench_function(format!("cold/{tier}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let d = bench.deploy(tier, 1);
                total += d.instances.iter().map(|i| i.start_time).max().unwrap_or_default();
                drop(d);
                bench.teardown(tier);
            }
            total
        })
    });
}

fn tiers(c: &mut Criterion) {
    let dir = binaries_dir();
    if let Some(why) = cannot_run(&dir) {
        eprintln!("skipping the invoke benchmarks: {why}");
        return;
    }
    let mut bench = Bench::new(&dir);

    let mut g = c.benchmark_group("invoke");
    // Warm requests take tens to hundreds of microseconds: 20 samples of 2 s are enough for a
    // stable median on a shared 2-core host.
    g.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    for tier in [TierId::SiloEc2, TierId::SharedEc2, TierId::EcsAwsvpc] {
        warm_http(&mut g, &mut bench, tier);
    }
    for tier in [TierId::LambdaPerTenant, TierId::LambdaShared, TierId::LambdaTenantIsolation] {
        warm_function(&mut g, &mut bench, tier, "warm");
    }
    bench.set_memory(TierId::LambdaPerTenant, 128);
    warm_function(&mut g, &mut bench, TierId::LambdaPerTenant, "warm-128mb");
    bench.set_memory(TierId::LambdaPerTenant, 1769);
    // Cold starts take milliseconds and each needs a deploy and a teardown around it: the
    // fewest samples criterion takes (10), in about 3 s each.
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(200));
    for tier in [TierId::SiloEc2, TierId::EcsAwsvpc] {
        cold_instance(&mut g, &mut bench, tier);
    }
    for tier in [TierId::LambdaPerTenant, TierId::LambdaTenantIsolation] {
        cold_function(&mut g, &mut bench, tier);
    }
    // A storm takes seconds, with a deploy and a teardown of N functions around it: the fewest
    // samples criterion takes, one storm each.
    g.sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_millis(1));
    let n = std::env::var("ISOBENCH_BENCH_STORM").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    cold_storm(&mut g, &mut bench, n);
    g.finish();
    // Dropping the backend tears down whatever is left and removes the run's cgroups and lock.
    let report = bench.backend.teardown_all().expect("teardown");
    assert!(report.left_behind.is_empty(), "left behind: {:?}", report.left_behind);
}

criterion_group!(invoke, tiers);
