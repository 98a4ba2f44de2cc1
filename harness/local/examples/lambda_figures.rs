//! Measures the Lambda emulator: warm invoke overhead, cold start, how many frozen execution
//! environments this host holds at once and what each costs the harness, and the time to tear
//! them all down.
//!
//! ```text
//! cargo build --release -p tenant-app -p isobench-local --examples
//! sudo target/release/examples/lambda_figures [WARM_INVOKES] [ENVIRONMENTS] [HOLD_MEMORY_MB]
//! #                                            default 5000    default 300    default 128
//! ```
//! Looks for `isobench-sandbox` and `tenant-app` beside the example's directory (the cargo
//! target directory); set `ISOBENCH_WORKLOAD` to use another workload.
//!
//! - **Warm overhead**: sequential `health` invokes of one warm environment, timed by the
//!   caller (a current-thread runtime of its own, as the load driver's), so the figure is the
//!   whole round trip the emulator adds: hand-off to the backend's runtime, thaw, the Runtime
//!   API's `/next` answer and `/response` request on loopback, the runtime's own event loop,
//!   and the trivial handler (microseconds). Both with a full vCPU (1,769 MB) and at 512 MB.
//! - **Cold start**: one new environment per invoke (a new tenant of a function in tenant
//!   isolation mode each time): the init duration (creation to the runtime's first `/next`)
//!   and the whole first invoke as the caller sees it.
//! - **Held**: every environment of the cold-start phase stays frozen; the harness's RSS and
//!   the host's `MemAvailable` are read before and after.
//! - **Teardown** of all of them.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, Deployment, Endpoint, InvokeOutcome, StartKind};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::lambda::LambdaSpec;
use isobench_core::scenario::{TenantSpec, TierSettings, WorkloadSpec};
use isobench_core::tier::TierId;
use isobench_core::units::{Dur, DurRange};
use isobench_local::{LocalBackend, LocalConfig};

fn plan(run_id: &str, tier: TierId, memory: u32, concurrency: u32) -> TierPlan {
    TierPlan {
        run_id: run_id.into(),
        tier,
        name: tier.as_str().into(),
        settings: TierSettings::Lambda(LambdaSpec {
            memory,
            timeout: Dur(Duration::from_secs(10)),
            keep_alive: DurRange::fixed(Duration::from_secs(3600)),
            concurrency,
            ..LambdaSpec::default()
        }),
        tenants: vec![TenantSpec { id: "t0".into(), weight: 1.0 }],
        workload: WorkloadSpec::default(),
        subnet: (Ipv4Addr::new(10, 213, 0, 0), 16),
        seed: 1,
        faults: Vec::new(),
        lambda_account_concurrency: isobench_core::scenario::lambda::DEFAULT_ACCOUNT_CONCURRENCY,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn kib(field: &str, file: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn function(d: &Deployment) -> std::sync::Arc<dyn isobench_core::backend::Invoke> {
    match &d.targets[0].endpoint {
        Endpoint::Function(f) => f.clone(),
        Endpoint::Http(_) => unreachable!("a Lambda tier has function endpoints"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let warm: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let hold: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(300);
    let hold_mb: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(128);
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|p| p.parent()).ok_or("no target directory")?;
    let workload = std::env::var_os("ISOBENCH_WORKLOAD").map(Into::into).unwrap_or_else(|| dir.join("tenant-app"));
    let run_id = format!("lambda-figures-{}", std::process::id());
    let mut backend = LocalBackend::new(LocalConfig::new(&run_id, dir.join("isobench-sandbox"), workload))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let health = br#"{"op":"health"}"#.to_vec();
    println!("cgroups {}; {} CPUs", backend.cgroup_layout(), std::thread::available_parallelism()?);

    // Warm invoke overhead.
    for (tier, memory) in [(TierId::LambdaShared, 1769), (TierId::LambdaPerTenant, 512)] {
        let d = backend.deploy(&plan(&run_id, tier, memory, 10))?;
        let f = function(&d);
        let mut rtt = Vec::with_capacity(warm);
        for i in 0..warm + 200 {
            let t0 = Instant::now();
            let r = rt.block_on(f.invoke("t0", health.clone()));
            let took = t0.elapsed();
            assert!(matches!(r.outcome, InvokeOutcome::Ok(_)), "{r:?}");
            if i >= 200 {
                assert_eq!(r.start, Some(StartKind::Warm));
                rtt.push(took);
            }
        }
        rtt.sort();
        println!(
            "warm invoke round trip at {memory} MB, back to back, over {warm}: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
            us(pct(&rtt, 0.5)),
            us(pct(&rtt, 0.9)),
            us(pct(&rtt, 0.99)),
            us(rtt[rtt.len() - 1])
        );
        // Paced: each invoke finds the environment idle and frozen (frozen within microseconds
        // of the previous outcome), as at any rate below ~1,000 invokes/s per environment.
        let paced = (warm / 5).max(100);
        let mut rtt = Vec::with_capacity(paced);
        for _ in 0..paced {
            std::thread::sleep(Duration::from_millis(2));
            let t0 = Instant::now();
            let r = rt.block_on(f.invoke("t0", health.clone()));
            rtt.push(t0.elapsed());
            assert_eq!(r.start, Some(StartKind::Warm));
        }
        rtt.sort();
        println!(
            "warm invoke round trip at {memory} MB, 2 ms apart (thawed each time), over {paced}: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us",
            us(pct(&rtt, 0.5)),
            us(pct(&rtt, 0.9)),
            us(pct(&rtt, 0.99)),
        );
        backend.teardown(tier)?;
    }

    // Cold starts, each environment then held frozen.
    let tier = TierId::LambdaTenantIsolation;
    let d = backend.deploy(&plan(&run_id, tier, hold_mb, 10_000))?;
    let f = function(&d);
    let rss0 = kib("VmRSS:", "/proc/self/status");
    let avail0 = kib("MemAvailable:", "/proc/meminfo");
    let mut inits = Vec::with_capacity(hold);
    let mut firsts = Vec::with_capacity(hold);
    let t_all = Instant::now();
    for i in 0..hold {
        let tenant = format!("t{i}");
        let t0 = Instant::now();
        let r = rt.block_on(f.invoke(&tenant, health.clone()));
        let took = t0.elapsed();
        let Some(StartKind::Cold { init }) = r.start else { panic!("not a cold start: {r:?}") };
        assert!(matches!(r.outcome, InvokeOutcome::Ok(_)), "{r:?}");
        inits.push(init);
        firsts.push(took);
    }
    let started_in = t_all.elapsed();
    // Every environment idle and frozen.
    let t0 = Instant::now();
    let frozen = loop {
        let envs = backend.environments(Some(tier));
        let frozen = envs.iter().filter(|e| e.frozen == Some(true)).count();
        if frozen == hold || t0.elapsed() > Duration::from_secs(10) {
            break frozen;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let envs = backend.environments(Some(tier));
    let workload_rss: u64 =
        envs.iter().filter_map(|e| e.workload_pid).map(|p| kib("VmRSS:", &format!("/proc/{p}/status"))).sum();
    let rss1 = kib("VmRSS:", "/proc/self/status");
    let avail1 = kib("MemAvailable:", "/proc/meminfo");
    inits.sort();
    firsts.sort();
    println!(
        "cold start at {hold_mb} MB over {hold}: init p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms; first invoke (caller) p50 {:.2} ms, p99 {:.2} ms; {hold} started one after another in {:.0} ms",
        ms(pct(&inits, 0.5)),
        ms(pct(&inits, 0.9)),
        ms(pct(&inits, 0.99)),
        ms(pct(&firsts, 0.5)),
        ms(pct(&firsts, 0.99)),
        ms(started_in)
    );
    println!(
        "held {frozen} frozen environments ({hold_mb} MB each): harness RSS {} -> {} KiB ({:.1} KiB per environment); runtimes' RSS {:.0} KiB each; host MemAvailable down {:.0} KiB per environment",
        rss0,
        rss1,
        (rss1.saturating_sub(rss0)) as f64 / hold as f64,
        workload_rss as f64 / envs.len().max(1) as f64,
        (avail0.saturating_sub(avail1)) as f64 / hold as f64,
    );
    let r = backend.teardown(tier)?;
    println!(
        "teardown of {hold} frozen environments: {:.1} ms ({:.2} ms each), left behind: {:?}",
        ms(r.duration),
        ms(r.duration) / hold as f64,
        r.left_behind
    );
    let r = backend.teardown_all()?;
    println!("teardown_all: {:.2} ms, left behind: {:?}", ms(r.duration), r.left_behind);
    Ok(())
}
