//! Deploy and teardown of one tenant's resources against LocalStack, per tier (feature `aws`;
//! LocalStack's EC2 and Lambda are control planes only, so this times API work: creating the
//! VPC, groups, roles, instance or function, and removing them in dependency order).
//!
//! ISOBENCH_LOCALSTACK_URL=http://127.0.0.1:4566 cargo bench --features aws -- aws/
//!
//! Skipped, with the reason printed, without the feature or when the URL does not answer.

use criterion::{Criterion, criterion_group};

#[cfg(feature = "aws")]
fn deploy_teardown(c: &mut Criterion) {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use isobench_aws::deployer::Deployer;
    use isobench_core::plan::{Overrides, Plan};
    use isobench_core::scenario::Scenario;

    let Ok(url) = std::env::var("ISOBENCH_LOCALSTACK_URL") else {
        eprintln!("skipping aws/deploy-teardown: set ISOBENCH_LOCALSTACK_URL (e.g. http://127.0.0.1:4566)");
        return;
    };
    let emulator = isobench_aws::capability::probe(&url);
    if !matches!(emulator, isobench_aws::capability::Emulator::LocalStack { .. }) {
        eprintln!("skipping aws/deploy-teardown: no LocalStack answers at {url}");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = rt.block_on(isobench_aws::emulators::sdk_config(&url));
    let apis = isobench_aws::config::apis_with(&config, true);
    let caps = isobench_aws::Capabilities { ec2: emulator.clone(), ecs: emulator.clone(), lambda: emulator };
    let workload = Arc::new(std::fs::read(std::env::current_exe().unwrap()).unwrap());
    let mut g = c.benchmark_group("aws/deploy-teardown");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let tiers = [
        ("silo-ec2", "[[tier]]\nid = \"silo-ec2\"\ninstance_type = \"t3.micro\"\n"),
        ("lambda-per-tenant", "[[tier]]\nid = \"lambda-per-tenant\"\n"),
    ];
    let mut n = 0u32;
    for (name, tier) in tiers {
        let src = format!(
            "format_version = 1\nname = \"b\"\n[run]\nduration = \"1s\"\nrate = 1\n[tenants]\ncount = 1\n{tier}"
        );
        let scenario = Scenario::parse(&src, Path::new("bench.toml")).unwrap();
        // One fresh run per iteration; `deploy` times the deploy, `teardown` the teardown.
        let mut one = |timed_deploy: bool| {
            n += 1;
            let plan =
                Plan::new(format!("20270101T000000Z-b{n:05}"), scenario.clone(), "h".into(), &Overrides::default());
            let mut d =
                Deployer::new(apis.clone(), &plan.run_id, plan.scenario.aws.clone(), caps.clone(), workload.clone());
            let t0 = Instant::now();
            rt.block_on(d.deploy(&plan.tiers[0])).unwrap();
            let deploy = t0.elapsed();
            let t1 = Instant::now();
            let r = rt.block_on(d.teardown(None));
            assert!(r.failed.is_empty(), "{:?}", r.failed);
            if timed_deploy { deploy } else { t1.elapsed() }
        };
        g.bench_function(format!("{name}/deploy"), |b| b.iter_custom(|iters| (0..iters).map(|_| one(true)).sum()));
        g.bench_function(format!("{name}/teardown"), |b| b.iter_custom(|iters| (0..iters).map(|_| one(false)).sum()));
    }
    g.finish();
}

#[cfg(not(feature = "aws"))]
fn deploy_teardown(_c: &mut Criterion) {
    eprintln!("skipping aws/deploy-teardown: built without `--features aws`");
}

criterion_group!(aws, deploy_teardown);
