//! Bring-your-own functions through runtime clients this project did not write: the Rust
//! `lambda_runtime` crate (`workloads/echo-fn`) and AWS's Python runtime interface client
//! (`awslambdaric`, from the virtual environment `scripts/emulators.sh install` makes). Each
//! answers what it likes, which the load driver counts as ok (the endpoint's contract is
//! `Opaque`); a raised error is a function error; in tenant isolation mode each invoke's tenant
//! id reaches the handler's context.
//!
//! Prerequisites, each skipped by the skip policy (a failure under CI) when missing: the
//! `echo-fn` binary beside the sandbox (`cargo build -p echo-fn`, or `$ISOBENCH_ECHO_FN`), and
//! `.venv/emulators/awslambdaric` with `/usr/bin/python3` (`scripts/deps.sh test`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use isobench_core::backend::{Backend, Deployment, Endpoint, InvokeOutcome, InvokeResult, PayloadContract};
use isobench_core::scenario::lambda::LambdaSpec;
use isobench_core::scenario::{Arrival, MixSpec, TenantSpec};
use isobench_core::tier::TierId;
use isobench_core::units::Dur;
use isobench_load::{ErrorKind, LoadSpec, Totals};
use isobench_local::LocalBackend;
use isobench_testkit::root::{skip, test_name};
use isobench_testkit::{leftovers, needs_root};
use serde_json::{Value, json};

use crate::util::*;

/// The awslambdaric version `scripts/emulators.sh` pins (its stamp file must say so).
const AWSLAMBDARIC_PIN: &str = "awslambdaric==3.1.1";

fn byo_spec(code: &Path, handler: &str) -> LambdaSpec {
    LambdaSpec {
        memory: 512,
        timeout: Dur(Duration::from_secs(3)),
        keep_alive: isobench_core::units::DurRange::fixed(Duration::from_secs(60)),
        concurrency: 10,
        code: Some(code.to_path_buf()),
        handler: handler.into(),
        environment: BTreeMap::new(),
        response: None,
        ..LambdaSpec::default()
    }
}

fn invoke(rt: &tokio::runtime::Runtime, d: &Deployment, tenant: &str, event: Value) -> InvokeResult {
    let target = d.targets.iter().find(|t| t.tenant == tenant).unwrap_or_else(|| panic!("no target for {tenant}"));
    let Endpoint::Function(f) = &target.endpoint else { panic!("a function endpoint") };
    rt.block_on(f.invoke(tenant, serde_json::to_vec(&event).unwrap()))
}

fn contract(d: &Deployment) -> PayloadContract {
    let Endpoint::Function(f) = &d.targets[0].endpoint else { panic!("a function endpoint") };
    f.payload_contract()
}

/// The payload of an ok invoke, as JSON; otherwise a panic with the environment's output.
fn answer(b: &LocalBackend, tier: TierId, r: &InvokeResult) -> Value {
    let InvokeOutcome::Ok(p) = &r.outcome else {
        let out: Vec<_> = b.environments(Some(tier)).iter().filter_map(|e| b.environment_output(&e.id, 2000)).collect();
        panic!("not ok: {r:?}; output: {out:?}")
    };
    serde_json::from_slice(p).unwrap_or_else(|e| panic!("JSON ({e}): {}", String::from_utf8_lossy(p)))
}

/// The load driver against the deployment, as a run drives a tier: a second of the workload's
/// mix at 30 invokes/s over `tenants`, on its own runtime.
fn drive(d: &Deployment, tenants: usize) -> Totals {
    let spec = LoadSpec {
        label: "byo".into(),
        duration: Duration::from_secs(1),
        rate: 30.0,
        arrival: Arrival::Constant,
        seed: 7,
        tenants: (0..tenants).map(|i| TenantSpec { id: format!("t{i}"), weight: 1.0 }).collect(),
        mix: MixSpec { put: 1.0, get: 1.0, compute: 1.0 },
        timeout: Duration::from_secs(3),
        max_connections: 4,
        compute_us: 10,
        record_size: 16,
        keys_per_tenant: 4,
        worker_threads: 1,
        realtime: false,
        shape: Default::default(),
        hooks: Default::default(),
        slice: Default::default(),
    };
    let report = isobench_load::run(&spec, &d.targets, None, &AtomicBool::new(false), &mut |_| {}).unwrap();
    report.totals
}

fn finish(mut b: LocalBackend, run: &str) {
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert_eq!(leftovers::of_run(run), Vec::<String>::new());
}

/// `echo-fn`: `$ISOBENCH_ECHO_FN`, else beside the sandbox.
fn echo_fn() -> Option<PathBuf> {
    let p = std::env::var_os("ISOBENCH_ECHO_FN").map_or_else(|| sandbox_exe().with_file_name("echo-fn"), PathBuf::from);
    p.is_file().then_some(p)
}

/// The Rust `lambda_runtime` crate as the function's runtime: its answers (no `status`
/// document) are ok to the driver, `{"fail": true}` is a function error by its own
/// `errorType`, and in tenant isolation mode `Context::tenant_id` is each invoke's tenant.
/// The control: the same code read as the sample workload's document is all `protocol`.
#[test]
fn lambda_runtime_answers_are_ok_and_each_tenant_id_reaches_its_context() {
    needs_root!();
    let Some(exe) = echo_fn() else {
        skip(&test_name(module_path!()), "no echo-fn binary: build it with `cargo build -p echo-fn` (same target dir)");
        return;
    };
    let mut b = backend("byo-rust");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaTenantIsolation;
    let tenants = 3;
    let d = b.deploy(&lambda_plan(&run, tier, tenants, byo_spec(&exe, "echo"))).unwrap();
    assert_eq!(contract(&d), PayloadContract::Opaque, "user code defaults to `response = \"any\"`");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for round in 0..2 {
        for i in 0..tenants {
            let tenant = format!("t{i}");
            let v = answer(&b, tier, &invoke(&rt, &d, &tenant, json!({"n": i, "round": round})));
            assert_eq!(v["tenant_id"], tenant.as_str(), "{v}");
            assert_eq!(v["event"], json!({"n": i, "round": round}), "{v}");
        }
    }
    let r = invoke(&rt, &d, "t1", json!({"fail": true}));
    assert_eq!(r.outcome, InvokeOutcome::FunctionError { error_type: "EchoFailure".into() });

    let totals = drive(&d, tenants);
    println!("lambda_runtime echo under the driver: {totals:?}");
    assert!(totals.sent >= 20, "{totals:?}");
    assert_eq!((totals.ok, totals.errors_total(), totals.timeouts), (totals.sent, 0, 0), "{totals:?}");
    // Every environment served one tenant, and every tenant got its own.
    let envs = b.environments(Some(tier));
    let served: std::collections::BTreeSet<_> = envs.iter().filter_map(|e| e.tenant.clone()).collect();
    assert_eq!(served.len(), tenants, "{envs:#?}");

    // The control: read as the sample workload's document, the same answers are `protocol`.
    let mut workload = byo_spec(&exe, "echo");
    workload.response = Some(PayloadContract::WorkloadStatus);
    let shared = b.deploy(&lambda_plan(&run, TierId::LambdaShared, tenants, workload)).unwrap();
    assert_eq!(contract(&shared), PayloadContract::WorkloadStatus);
    let totals = drive(&shared, tenants);
    assert!(totals.sent >= 20, "{totals:?}");
    assert_eq!((totals.ok, totals.errors.get(&ErrorKind::Protocol)), (0, Some(&totals.sent)), "{totals:?}");
    finish(b, &run);
}

/// `.venv/emulators/awslambdaric`'s site-packages, if installed at the pinned version.
fn awslambdaric_site_packages() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join(".venv/emulators/awslambdaric");
    let stamp = std::fs::read_to_string(venv.join(".isobench-pins")).unwrap_or_default();
    if stamp.trim() != AWSLAMBDARIC_PIN {
        return Err(format!("no {AWSLAMBDARIC_PIN} in {}: run `scripts/deps.sh test`", venv.display()));
    }
    if !Path::new("/usr/bin/python3").is_file() {
        return Err("no /usr/bin/python3 to run it".into());
    }
    let lib = std::fs::read_dir(venv.join("lib"))
        .map_err(|e| format!("{}: {e}", venv.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.join("awslambdaric").is_dir())
        .ok_or_else(|| format!("no awslambdaric package under {}", venv.display()))?;
    Ok(lib)
}

/// A function's code directory as a Lambda zip holds a Python function with its dependencies:
/// `bootstrap` runs `python3 -m awslambdaric $_HANDLER`, the handler is `handler.py`, and
/// awslambdaric with its dependencies (the venv's site-packages but the packaging tools) is in
/// `python/`. The environment sees only `/var/task` of it: its `/var` is otherwise hidden and
/// its `/tmp` private, so nothing can come from the venv itself.
fn python_code_dir(site_packages: &Path) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("isobench-byo-ric-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let python = dir.join("python");
    std::fs::create_dir_all(&python).unwrap();
    for e in std::fs::read_dir(site_packages).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let tooling = ["pip", "setuptools", "_distutils_hack", "pkg_resources", "distutils-precedence", "__pycache__"];
        if !tooling.iter().any(|t| name.starts_with(t)) {
            copy_tree(&e.path(), &python.join(&name));
        }
    }
    let bootstrap = dir.join("bootstrap");
    std::fs::write(&bootstrap, PYTHON_BOOTSTRAP).unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("handler.py"), PYTHON_HANDLER).unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

const PYTHON_BOOTSTRAP: &str = r#"#!/bin/sh
# A custom runtime's bootstrap for Python: AWS's runtime interface client runs $_HANDLER.
export PYTHONPATH=/var/task/python PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m awslambdaric "$_HANDLER"
"#;

const PYTHON_HANDLER: &str = r#"
def fn(event, context):
    if event.get("raise"):
        raise ValueError("asked to raise")
    return {"event": event, "tenant_id": getattr(context, "tenant_id", None),
            "request_id": context.aws_request_id, "function": context.function_name}
"#;

/// AWS's Python runtime interface client as the function's runtime: a handler's dict is ok to
/// the driver, a raised exception is a function error named by its class, and awslambdaric
/// 3.1.1's `context.tenant_id` (it reads `Lambda-Runtime-Aws-Tenant-Id`) is each invoke's
/// tenant in tenant isolation mode.
#[test]
fn awslambdaric_handler_dicts_are_ok_exceptions_are_function_errors_and_tenant_ids_reach_the_context() {
    needs_root!();
    let site_packages = match awslambdaric_site_packages() {
        Ok(p) => p,
        Err(why) => {
            skip(&test_name(module_path!()), &why);
            return;
        }
    };
    let code = python_code_dir(&site_packages);
    let mut b = backend("byo-python");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaTenantIsolation;
    let tenants = 2;
    let d = b.deploy(&lambda_plan(&run, tier, tenants, byo_spec(&code, "handler.fn"))).unwrap();
    assert_eq!(contract(&d), PayloadContract::Opaque);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for i in 0..tenants {
        let tenant = format!("t{i}");
        let v = answer(&b, tier, &invoke(&rt, &d, &tenant, json!({"n": i})));
        assert_eq!(v["tenant_id"], tenant.as_str(), "{v}");
        assert_eq!(v["event"], json!({"n": i}), "{v}");
        assert_eq!(v["function"], "lambda-tenant-isolation", "{v}");
        assert!(v["request_id"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    }
    let r = invoke(&rt, &d, "t0", json!({"raise": true}));
    assert_eq!(r.outcome, InvokeOutcome::FunctionError { error_type: "ValueError".into() });
    // A handled exception keeps the environment: the next invoke is warm.
    let r = invoke(&rt, &d, "t0", json!({"n": 9}));
    assert_eq!(answer(&b, tier, &r)["event"]["n"], 9);

    let totals = drive(&d, tenants);
    println!("awslambdaric under the driver: {totals:?}");
    assert!(totals.sent >= 20, "{totals:?}");
    assert_eq!((totals.ok, totals.errors_total(), totals.timeouts), (totals.sent, 0, 0), "{totals:?}");
    finish(b, &run);
    std::fs::remove_dir_all(&code).unwrap();
}
