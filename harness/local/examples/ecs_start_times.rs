//! Measures `ecs-awsvpc` task start times, the cluster's setup costs (bridge, endpoints, the one
//! `nft` run) and teardown, over a few rounds.
//!
//! ```text
//! cargo build --release -p tenant-app -p isobench-local --examples
//! sudo target/release/examples/ecs_start_times [TASKS] [ROUNDS] [SCENARIO]   # 20 3 scenarios/ecs.toml
//! ```
//! Looks for `isobench-sandbox` and `tenant-app` in the cargo target directory; set
//! `ISOBENCH_WORKLOAD` to use another workload.

use std::path::Path;
use std::time::{Duration, Instant};

use isobench_core::backend::Backend;
use isobench_core::plan::{Overrides, Plan};
use isobench_core::scenario::Scenario;
use isobench_core::tier::TierId;
use isobench_local::{LocalBackend, LocalConfig};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let file = args.next().unwrap_or_else(|| "scenarios/ecs.toml".into());
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|p| p.parent()).ok_or("no target directory")?;
    let workload = std::env::var_os("ISOBENCH_WORKLOAD").map(Into::into).unwrap_or_else(|| dir.join("tenant-app"));

    // The scenario's ECS tier with `n` tenants.
    let src = std::fs::read_to_string(&file)?;
    let src = src.replace("count = 6", &format!("count = {n}"));
    let scenario = Scenario::parse(&src, Path::new(&file))?;

    let run_id = format!("ecs-start-times-{}", std::process::id());
    let mut backend = LocalBackend::new(LocalConfig::new(&run_id, dir.join("isobench-sandbox"), workload))?;
    let plan = Plan::new(run_id, scenario, String::new(), &Overrides::default());
    let tier = plan.tiers.iter().find(|t| t.tier == TierId::EcsAwsvpc).ok_or("no ecs-awsvpc tier")?;

    let mut all = Vec::new();
    for round in 1..=rounds {
        let t0 = Instant::now();
        let d = backend.deploy(tier)?;
        let deploy = t0.elapsed();
        let c = backend.ecs_cluster().ok_or("no cluster")?.clone();
        let starts: Vec<Duration> = d.instances.iter().map(|i| i.start_time).collect();
        all.extend(starts.iter().copied());
        let (min, max) = (starts.iter().min().copied().unwrap(), starts.iter().max().copied().unwrap());
        let r = backend.teardown(TierId::EcsAwsvpc)?;
        println!(
            "round {round}: {n} tasks deployed in {:.1} ms (bridge+listeners {:.2} ms, endpoints {:.2} ms, nft install {:.2} ms); \
             task start median {:.2} ms, min {:.2}, max {:.2}; teardown {:.1} ms ({} left behind)",
            ms(deploy),
            ms(c.network_setup),
            ms(c.endpoints_start),
            ms(c.filter_install),
            ms(median(starts)),
            ms(min),
            ms(max),
            ms(r.duration),
            r.left_behind.len()
        );
        for line in r.removed.iter().filter(|l| l.starts_with("cluster")) {
            println!("    {line}");
        }
    }
    println!("all rounds: task start median {:.2} ms over {} tasks", ms(median(all.clone())), all.len());
    backend.teardown_all()?;
    Ok(())
}
