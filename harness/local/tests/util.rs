//! Helpers of the emulator's tests: binaries, run ids, backends and plans, the workload's
//! `/whoami`. What every crate's tests share (root checks, namespaces, `/proc` and cgroups,
//! leftovers) is in `isobench_testkit`.
//!
//! Binaries: the sandbox is `CARGO_BIN_EXE_isobench-sandbox`; the workload is
//! `$ISOBENCH_WORKLOAD` if set, else `tenant-app` in the same target directory (build it first
//! with `cargo build -p tenant-app`, using the same `CARGO_TARGET_DIR`).

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use isobench_core::instance_types::lookup;
use isobench_core::plan::TierPlan;
use isobench_core::scenario::lambda::LambdaSpec;
use isobench_core::scenario::{Ec2Spec, TenantSpec, TierSettings, WorkloadSpec};
use isobench_core::tier::TierId;
use isobench_local::{LocalBackend, LocalConfig};
use isobench_testkit::http::get_in_netns;

pub fn sandbox_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_isobench-sandbox"))
}

/// The workload: `$ISOBENCH_WORKLOAD`, else `tenant-app` beside the sandbox.
pub fn workload_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("ISOBENCH_WORKLOAD") {
        return p.into();
    }
    let p = sandbox_exe().with_file_name("tenant-app");
    assert!(
        p.is_file(),
        "the workload {} is missing: build it with `cargo build -p tenant-app` (same CARGO_TARGET_DIR) or set ISOBENCH_WORKLOAD",
        p.display()
    );
    p
}

/// A run id no other test (or test process) uses.
pub fn run_id(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("test-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

pub fn config(run_id: &str) -> LocalConfig {
    LocalConfig::new(run_id, sandbox_exe(), workload_exe())
}

pub fn backend(name: &str) -> LocalBackend {
    LocalBackend::new(config(&run_id(name))).expect("local backend starts")
}

pub fn plan(run_id: &str, tier: TierId, tenants: usize, instance_type: &str) -> TierPlan {
    let ec2 = Ec2Spec::new(tier, lookup(instance_type).expect("known instance type"));
    plan_with(run_id, tier, tenants, TierSettings::Ec2(ec2))
}

/// A Lambda tier's plan: tenants `t0`, `t1`, ... on `spec`.
pub fn lambda_plan(run_id: &str, tier: TierId, tenants: usize, spec: LambdaSpec) -> TierPlan {
    plan_with(run_id, tier, tenants, TierSettings::Lambda(spec))
}

fn plan_with(run_id: &str, tier: TierId, tenants: usize, settings: TierSettings) -> TierPlan {
    TierPlan {
        run_id: run_id.into(),
        tier,
        name: tier.as_str().into(),
        settings,
        tenants: (0..tenants).map(|i| TenantSpec { id: format!("t{i}"), weight: 1.0 }).collect(),
        workload: WorkloadSpec::default(),
        subnet: (Ipv4Addr::new(10, 213, 0, 0), 16),
        seed: 1,
        faults: Vec::new(),
        lambda_account_concurrency: isobench_core::scenario::lambda::DEFAULT_ACCOUNT_CONCURRENCY,
    }
}

/// `GET /whoami` as JSON.
pub fn whoami(netns: &OwnedFd, addr: SocketAddr, tenant: &str) -> serde_json::Value {
    let (status, body) = get_in_netns(netns, addr, "/whoami", Some(tenant)).expect("whoami answers");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("whoami is JSON ({e}): {body}"))
}

/// Milliseconds, for printed timings.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A function's code as a Lambda zip: `script` as its executable `bootstrap`, in a temporary
/// directory of its own (the caller removes it); `None` without a system Python to run it.
pub fn python_zip(name: &str, script: &str) -> Option<PathBuf> {
    if !std::path::Path::new("/usr/bin/python3").is_file() {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("isobench-fn-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("function.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    z.start_file("bootstrap", zip::write::SimpleFileOptions::default().unix_permissions(0o755)).unwrap();
    std::io::Write::write_all(&mut z, script.as_bytes()).unwrap();
    z.finish().unwrap();
    Some(path)
}

/// One invoke of `tenant`'s function, from a runtime of the caller's own (as the load driver's).
pub fn invoke_on(
    ep: &isobench_core::backend::Endpoint,
    tenant: &str,
    payload: Vec<u8>,
) -> isobench_core::backend::InvokeResult {
    let isobench_core::backend::Endpoint::Function(f) = ep else { panic!("a function endpoint") };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(f.invoke(tenant, payload))
}

/// Tears the whole backend down, checks that nothing of its run is left on the host, and
/// removes the test's function code directory.
pub fn finish_run(mut b: LocalBackend, code_dir: &std::path::Path) {
    let run = b.run_id().to_string();
    assert!(isobench_core::Backend::teardown_all(&mut b).unwrap().left_behind.is_empty());
    assert_eq!(isobench_testkit::leftovers::of_run(&run), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(code_dir);
}
