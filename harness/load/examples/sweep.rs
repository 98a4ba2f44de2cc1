//! Rate sweep: how fast can the driver go against a trivial local HTTP server while keeping
//! its own scheduling lag under 1 ms at p99?
//!
//! ```text
//! cargo run --release -p isobench-load --example sweep -- [--secs 5] [--workers 1]
//!     [--server-threads 1] [--connections 64] [--arrival constant|poisson] [--realtime]
//!     [--repeat 1] [RATE ...]
//! ```
//! Starts a hyper server on 127.0.0.1 that answers every request `200` with an empty body,
//! then runs the driver at each rate (default: 5k 10k 20k 30k 40k 50k 60k 80k) and prints
//! achieved rate, lag and latency percentiles. The server shares the machine's cores with the
//! driver, as a system under test would.

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use isobench_core::backend::{Endpoint, TenantTarget};
use isobench_load::{Arrival, LoadSpec, MixSpec, TenantSpec};

fn serve(threads: usize) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
    });
    addr
}

/// CPU jiffies (10 ms) used so far by this process, and by every other user-space process
/// (kernel threads such as ksoftirqd, which work for our own loopback traffic, are left out;
/// children that exited are counted through their parents' `cutime`/`cstime`).
fn cpu_jiffies() -> (u64, u64) {
    let me = std::process::id();
    let (mut mine, mut others) = (0, 0);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let after_comm = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = after_comm.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
        // After the state: ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime ...
        const PF_KTHREAD: u64 = 0x0020_0000;
        if f.len() < 14 || f[5] & PF_KTHREAD != 0 {
            continue;
        }
        if pid == me {
            mine = f[10] + f[11];
        } else {
            others += f[10] + f[11] + f[12] + f[13];
        }
    }
    (others, mine)
}

fn main() {
    let mut secs = 5u64;
    let mut workers = 1usize;
    let mut server_threads = 1usize;
    let mut connections = 64usize;
    let mut arrival = Arrival::Constant;
    let mut realtime = false;
    let mut repeat = 1usize;
    let mut rates: Vec<f64> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--secs" => secs = val().parse().unwrap(),
            "--workers" => workers = val().parse().unwrap(),
            "--server-threads" => server_threads = val().parse().unwrap(),
            "--connections" => connections = val().parse().unwrap(),
            "--realtime" => realtime = true,
            "--repeat" => repeat = val().parse().unwrap(),
            "--arrival" => arrival = if val() == "poisson" { Arrival::Poisson } else { Arrival::Constant },
            r => rates.push(isobench_core::units::parse_rate(r).expect("a rate such as 20k")),
        }
    }
    if rates.is_empty() {
        rates = vec![5e3, 10e3, 20e3, 30e3, 40e3, 50e3, 60e3, 80e3];
    }
    let addr = serve(server_threads);
    let tenants: Vec<TenantSpec> = (0..8).map(|i| TenantSpec { id: format!("tenant-{i}"), weight: 1.0 }).collect();
    let targets: Vec<TenantTarget> =
        tenants.iter().map(|t| TenantTarget { tenant: t.id.clone(), endpoint: Endpoint::Http(addr) }).collect();
    println!(
        "workers={workers} server_threads={server_threads} connections={connections} arrival={arrival:?} \
         realtime={realtime} {secs}s per rate; times in µs"
    );
    println!(
        "{:>8} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5} {:>5} {:>5}",
        "rate",
        "achieved",
        "errors",
        "lag50",
        "lag99",
        "lagmax",
        "cor50",
        "cor99",
        "cor999",
        "unc50",
        "unc99",
        "rel99",
        "conns",
        "cpu",
        "other"
    );
    for rate in rates.iter().flat_map(|r| std::iter::repeat_n(*r, repeat)) {
        let spec = LoadSpec {
            label: "sweep".into(),
            duration: Duration::from_secs(secs),
            rate,
            arrival,
            seed: 1,
            tenants: tenants.clone(),
            mix: MixSpec::default(),
            timeout: Duration::from_secs(2),
            max_connections: connections,
            compute_us: 0,
            record_size: 256,
            keys_per_tenant: 64,
            worker_threads: workers,
            realtime,
            shape: Default::default(),
            hooks: Default::default(),
            slice: Default::default(),
        };
        let (others0, mine0) = cpu_jiffies();
        let r = isobench_load::run(&spec, &targets, None, &AtomicBool::new(false), &mut |_| {}).unwrap();
        let (others1, mine1) = cpu_jiffies();
        // CPU used by this process (driver and server) and by other processes, in % of one
        // CPU over the run: "other" above a few % means a noisy run.
        let secs = r.wall.as_secs_f64() * 100.0;
        let cpu = (mine1 - mine0) as f64 / secs * 100.0;
        let other = others1.saturating_sub(others0) as f64 / secs * 100.0;
        let m = r.merged();
        let us = |ns: u64| format!("{:.1}", ns as f64 / 1e3);
        println!(
            "{:>8} {:>9.0} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5} {:>4.0}% {:>4.0}%",
            rate,
            r.achieved_rate,
            r.totals.errors_total() + r.totals.timeouts + r.totals.not_sent,
            us(m.lag.value_at_quantile(0.5)),
            us(m.lag.value_at_quantile(0.99)),
            us(m.lag.max()),
            us(m.corrected.value_at_quantile(0.5)),
            us(m.corrected.value_at_quantile(0.99)),
            us(m.corrected.value_at_quantile(0.999)),
            us(m.uncorrected.value_at_quantile(0.5)),
            us(m.uncorrected.value_at_quantile(0.99)),
            us(r.release_lag.value_at_quantile(0.99)),
            r.connections_opened,
            cpu,
            other,
        );
    }
}
