//! Measures instance start and teardown times of the local emulator.
//!
//! ```text
//! cargo build -p tenant-app -p isobench-local
//! sudo target/debug/examples/start_times [INSTANCES]   # default 20
//! ```
//! Looks for `isobench-sandbox` and `tenant-app` beside the example's directory (the cargo
//! target directory); set `ISOBENCH_WORKLOAD` to use another workload.

use std::net::Ipv4Addr;
use std::time::Duration;

use isobench_core::backend::Backend;
use isobench_core::plan::TierPlan;
use isobench_core::scenario::{TenantSpec, TierSettings, WorkloadSpec};
use isobench_core::tier::TierId;
use isobench_local::{LocalBackend, LocalConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(20);
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|p| p.parent()).ok_or("no target directory")?;
    let workload = std::env::var_os("ISOBENCH_WORKLOAD").map(Into::into).unwrap_or_else(|| dir.join("tenant-app"));
    let run_id = format!("start-times-{}", std::process::id());
    let mut backend = LocalBackend::new(LocalConfig::new(&run_id, dir.join("isobench-sandbox"), workload))?;
    let plan = TierPlan {
        run_id,
        tier: TierId::SiloEc2,
        name: TierId::SiloEc2.as_str().into(),
        settings: TierSettings::Ec2(isobench_core::scenario::Ec2Spec::new(
            TierId::SiloEc2,
            isobench_core::instance_types::lookup("t3.micro").unwrap(),
        )),
        tenants: (0..n).map(|i| TenantSpec { id: format!("t{i:02}"), weight: 1.0 }).collect(),
        workload: WorkloadSpec::default(),
        subnet: (Ipv4Addr::new(10, 213, 0, 0), 16),
        seed: 1,
        faults: Vec::new(),
        lambda_account_concurrency: isobench_core::scenario::lambda::DEFAULT_ACCOUNT_CONCURRENCY,
    };
    let t0 = std::time::Instant::now();
    let d = backend.deploy(&plan)?;
    let deploy = t0.elapsed();
    let mut starts: Vec<Duration> = d.instances.iter().map(|i| i.start_time).collect();
    starts.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "cgroups {}; {n} instances deployed in {:.1} ms; start time median {:.2} ms, min {:.2} ms, max {:.2} ms",
        backend.cgroup_layout(),
        ms(deploy),
        ms(starts[starts.len() / 2]),
        ms(starts[0]),
        ms(starts[starts.len() - 1])
    );
    if let Some(net) = backend.instance_network(TierId::SiloEc2) {
        println!(
            "security groups and IMDS: IMDS + bridge netfilter {:.2} ms, identities {:.2} ms, one nft batch {:.2} ms",
            ms(net.imds_setup),
            ms(net.identities),
            ms(net.filter_install)
        );
    }
    let r = backend.teardown(TierId::SiloEc2)?;
    println!("teardown of {n} instances: {:.1} ms ({:.2} ms each)", ms(r.duration), ms(r.duration) / n as f64);
    let r = backend.teardown_all()?;
    println!("teardown_all: {:.2} ms, left behind: {:?}", ms(r.duration), r.left_behind);
    Ok(())
}
