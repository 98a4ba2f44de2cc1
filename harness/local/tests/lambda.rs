//! The Lambda tiers against the real emulator: environment reuse, concurrency and throttling
//! (the function's cap, the account pool, reserved concurrency), cold starts in parallel,
//! keep-alive (fixed, drawn from a range) and maximum lifetime, tenant isolation mode, the environment's view of the system, freezing, crashes,
//! timeouts, a bring-your-own function, teardown of frozen environments and sweep.
//!
//! Invokes are made from a runtime of the test's own (as the load driver makes them from its
//! runtime), never the backend's.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, Deployment, Endpoint, InvokeOutcome, InvokeResult, StartKind};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::lambda::LambdaSpec;
use isobench_core::tier::TierId;
use isobench_core::units::{Dur, DurRange};
use isobench_local::{EnvironmentInfo, EnvironmentState, LocalBackend, SweepOptions, invoke_errors, sweep};
use isobench_testkit::process::{environ, ns_inode, pid_alive, process_running, status_field};
use isobench_testkit::{cgroup, leftovers, needs_root, wait};
use serde_json::{Value, json};

use crate::util::*;

fn spec(memory: u32, keep_alive: Duration) -> LambdaSpec {
    LambdaSpec {
        memory,
        timeout: Dur(Duration::from_secs(3)),
        keep_alive: DurRange::fixed(keep_alive),
        concurrency: 100,
        ..LambdaSpec::default()
    }
}

/// The caller's runtime (not the backend's), as the load driver has one.
fn caller() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn endpoint<'a>(d: &'a Deployment, tenant: &str) -> &'a Endpoint {
    &d.targets.iter().find(|t| t.tenant == tenant).unwrap_or_else(|| panic!("no target for {tenant}")).endpoint
}

fn invoke(rt: &tokio::runtime::Runtime, ep: &Endpoint, tenant: &str, event: Value) -> InvokeResult {
    let Endpoint::Function(f) = ep else { panic!("a function endpoint") };
    rt.block_on(f.invoke(tenant, serde_json::to_vec(&event).unwrap()))
}

/// The JSON document in a tenant-app response's `body` (`whoami`, `compute`), checking the
/// response's `status`.
fn body(r: &InvokeResult, status: u64) -> Value {
    let InvokeOutcome::Ok(payload) = &r.outcome else { panic!("not Ok: {r:?}") };
    let v: Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(v["status"], status, "{v}");
    serde_json::from_str(v["body"].as_str().unwrap_or("null")).unwrap_or(v["body"].clone())
}

fn whoami(rt: &tokio::runtime::Runtime, ep: &Endpoint, tenant: &str) -> (InvokeResult, Value) {
    let r = invoke(rt, ep, tenant, json!({"op": "whoami"}));
    let v = body(&r, 200);
    (r, v)
}

fn only_env(b: &LocalBackend, tier: TierId) -> EnvironmentInfo {
    let envs = b.environments(Some(tier));
    assert_eq!(envs.len(), 1, "{envs:#?}");
    envs.into_iter().next().unwrap()
}

#[test]
fn sequential_invokes_reuse_one_environment_with_its_tmp_and_globals() {
    needs_root!();
    let mut b = backend("lambda-reuse");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaShared;
    let t0 = Instant::now();
    let d = b.deploy(&lambda_plan(&run, tier, 2, spec(512, Duration::from_secs(60)))).unwrap();
    println!("lambda deploy (stage code, create function): {:.2} ms", t0.elapsed().as_secs_f64() * 1e3);
    assert!(d.netns.is_none());
    assert_eq!(d.instances.len(), 1, "one function");
    assert!(b.environments(Some(tier)).is_empty(), "no environment before the first invoke");
    let rt = caller();
    let ep = endpoint(&d, "t0");

    let (r1, who1) = whoami(&rt, ep, "t0");
    let Some(StartKind::Cold { init }) = r1.start else { panic!("the first invoke is cold: {r1:?}") };
    assert!(init > Duration::ZERO && init < Duration::from_secs(5), "{init:?}");
    assert_eq!(r1.memory_mb, Some(512));
    assert!(r1.billed_ms.is_some_and(|ms| ms >= 1));
    let put = invoke(&rt, ep, "t0", json!({"tenant": "t0", "op": "put", "key": "k1", "body": "hello"}));
    assert_eq!(put.start, Some(StartKind::Warm), "{put:?}");
    body(&put, 201);
    let get = invoke(&rt, ep, "t0", json!({"tenant": "t0", "op": "get", "key": "k1"}));
    assert_eq!(get.start, Some(StartKind::Warm));
    let InvokeOutcome::Ok(p) = &get.outcome else { panic!("{get:?}") };
    assert_eq!(serde_json::from_slice::<Value>(p).unwrap()["body"], "hello");
    let (r4, who4) = whoami(&rt, ep, "t0");
    assert_eq!(r4.start, Some(StartKind::Warm));
    // The process, its globals (nonce, counter) and its /tmp survived between invokes.
    assert_eq!(who1["instance_nonce"], who4["instance_nonce"]);
    assert_eq!(who4["invocations"], 4);
    let env = only_env(&b, tier);
    assert_eq!(env.invocations, 4);
    let pid = env.workload_pid.expect("the runtime's pid");
    assert!(
        Path::new(&format!("/proc/{pid}/root/tmp/tenants/t0/k1")).is_file(),
        "the record file is in the environment's /tmp"
    );
    assert!(!Path::new("/tmp/tenants/t0/k1").exists(), "the environment's /tmp is private");

    // Frozen between invokes, and the freezer says so.
    wait::expect("the idle environment to freeze", Duration::from_secs(2), || {
        b.environments(Some(tier))[0].frozen == Some(true)
    });
    assert_eq!(b.environments(Some(tier))[0].state, EnvironmentState::Idle);

    let r = b.teardown(tier).unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    let s = r.environments.expect("environment counts");
    assert_eq!((s.created, s.reused, s.reaped, s.replaced, s.throttles, s.frozen_at_end), (1, 3, 0, 0, 0, 1), "{s:?}");
    assert_eq!(s.peak_concurrency, 1);
    assert!(!process_running(pid));
    // After teardown the endpoint refuses, as an invoke of a deleted function.
    let gone = invoke(&rt, ep, "t0", json!({"op": "health"}));
    assert_eq!(gone.outcome, InvokeOutcome::Rejected { error_type: invoke_errors::NOT_FOUND.into() });
    b.teardown_all().unwrap();
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

#[test]
fn an_environment_sees_the_lambda_filesystem_network_and_variables() {
    needs_root!();
    let mut b = backend("lambda-view");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaPerTenant;
    let mut s = spec(256, Duration::from_secs(60));
    s.environment.insert("GREETING".into(), "hi".into());
    let d = b.deploy(&lambda_plan(&run, tier, 2, s)).unwrap();
    let rt = caller();
    let (_, who) = whoami(&rt, endpoint(&d, "t1"), "t1");
    assert_eq!(who["tenant"], "t1", "a per-tenant function's code is pinned to its tenant");
    assert_eq!(who["pid"], 1, "PID 1 of its own pid namespace");
    let env = only_env(&b, tier);
    assert_eq!(env.function, "lambda-per-tenant-t1");
    let pid = env.workload_pid.unwrap();
    let root = format!("/proc/{pid}/root");

    // What runs is the function's bootstrap, from /var/task, as an unprivileged user.
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(), Path::new("/var/task/bootstrap"));
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), Path::new("/var/task"));
    let uid: u32 = status_field(pid, "Uid").parse().unwrap();
    assert!(uid >= 200_000, "uid {uid}");
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    // /var holds only the code; /run is empty; the rest is read-only even for root; /tmp is
    // a private, writable tmpfs.
    let var: BTreeSet<String> = std::fs::read_dir(format!("{root}/var"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(var, BTreeSet::from(["task".to_string()]));
    assert_eq!(std::fs::read_dir(format!("{root}/run")).unwrap().count(), 0, "the host's /run is hidden");
    for p in ["etc/isobench-probe", "var/task/x", "usr/isobench-probe", "var/x", "dev/shm/x"] {
        let e = std::fs::write(format!("{root}/{p}"), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "/{p}: {e}");
    }
    std::fs::write(format!("{root}/tmp/probe"), "x").unwrap();
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let tmp = mounts.lines().find(|l| l.split(' ').nth(4) == Some("/tmp")).expect("a /tmp mount");
    assert!(tmp.contains(" - tmpfs ") && tmp.split(' ').nth(5).unwrap().starts_with("rw"), "{tmp}");
    // `lo` and its egress-only `eth0` in its network namespace, which is not the harness's.
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    let mut ifs: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
    ifs.sort_unstable();
    assert_eq!(ifs, ["eth0", "lo"]);
    assert_ne!(ns_inode(pid, "net"), ns_inode(std::process::id(), "net"));
    // The standard variables, the role's credentials, the scenario's environment.
    let e = environ(pid);
    let f = &b.functions(Some(tier))[1];
    assert_eq!(f.name, "lambda-per-tenant-t1");
    for (k, v) in [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("AWS_LAMBDA_FUNCTION_NAME", "lambda-per-tenant-t1"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("_HANDLER", "bootstrap"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("TZ", ":UTC"),
        ("GREETING", "hi"),
        ("AWS_ACCESS_KEY_ID", f.role.access_key_id.as_str()),
        ("AWS_SESSION_TOKEN", f.role.session_token.as_str()),
    ] {
        assert_eq!(e.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(e["AWS_LAMBDA_LOG_STREAM_NAME"].contains("[$LATEST]"));
    let roles: BTreeSet<String> = b.functions(Some(tier)).into_iter().map(|f| f.role.access_key_id).collect();
    assert_eq!(roles.len(), 2, "one role per function");
    // CPU in proportion to memory: 256 MB is 256/1769 of a CPU (INIT had a full one).
    let cpu = env.cgroup_dirs.iter().find(|d| d.join("cpu.cfs_quota_us").exists() || d.join("cpu.max").exists());
    let cpu = cpu.expect("a cpu cgroup");
    let quota = std::fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
        .or_else(|_| std::fs::read_to_string(cpu.join("cpu.max")))
        .unwrap();
    assert!(quota.starts_with("14471"), "{quota}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

#[test]
fn concurrent_invokes_create_environments_up_to_the_limit_then_throttle() {
    needs_root!();
    let mut b = backend("lambda-concurrency");
    let run = b.run_id().to_string();
    let shared = b.deploy(&lambda_plan(&run, TierId::LambdaShared, 1, spec(1769, Duration::from_secs(60)))).unwrap();
    let mut limited = spec(1769, Duration::from_secs(60));
    limited.concurrency = 2;
    let per_tenant = b.deploy(&lambda_plan(&run, TierId::LambdaPerTenant, 1, limited)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let burst = |d: &Deployment, n: usize| -> Vec<InvokeResult> {
        let Endpoint::Function(f) = endpoint(d, "t0").clone() else { panic!() };
        rt.block_on(async move {
            let event = serde_json::to_vec(&json!({"tenant": "t0", "op": "compute", "us": 20_000})).unwrap();
            let calls = (0..n).map(|_| {
                let f = f.clone();
                let e = event.clone();
                tokio::spawn(async move { f.invoke("t0", e).await })
            });
            let mut out = Vec::new();
            for c in calls.collect::<Vec<_>>() {
                out.push(c.await.unwrap());
            }
            out
        })
    };
    let n = 4;
    let results = burst(&shared, n);
    assert!(results.iter().all(|r| matches!(r.start, Some(StartKind::Cold { .. }))), "{results:?}");
    assert_eq!(b.environments(Some(TierId::LambdaShared)).len(), n, "N concurrent invokes, N environments");
    let pids: BTreeSet<_> = b.environments(Some(TierId::LambdaShared)).iter().map(|e| e.workload_pid).collect();
    assert_eq!(pids.len(), n);

    let results = burst(&per_tenant, n);
    let throttled = results.iter().filter(|r| r.outcome == InvokeOutcome::Throttled).count();
    assert_eq!(throttled, n - 2, "{results:?}");
    assert!(results.iter().filter(|r| r.outcome == InvokeOutcome::Throttled).all(|r| r.start.is_none()));
    assert_eq!(b.environments(Some(TierId::LambdaPerTenant)).len(), 2);

    let s = b.teardown(TierId::LambdaShared).unwrap().environments.unwrap();
    assert_eq!((s.created, s.peak_concurrency, s.throttles), (n as u64, n as u64, 0), "{s:?}");
    let s = b.teardown(TierId::LambdaPerTenant).unwrap().environments.unwrap();
    assert_eq!((s.created, s.peak_concurrency, s.throttles), (2, 2, (n - 2) as u64), "{s:?}");
    assert_eq!(s.throttle_reasons.function, (n - 2) as u64, "the function's own cap: {s:?}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

#[test]
fn an_idle_gap_longer_than_the_keep_alive_gives_a_cold_start() {
    needs_root!();
    let mut b = backend("lambda-keepalive");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaShared;
    let keep_alive = Duration::from_millis(300);
    let d = b.deploy(&lambda_plan(&run, tier, 1, spec(512, keep_alive))).unwrap();
    let rt = caller();
    let ep = endpoint(&d, "t0");
    let (r1, who1) = whoami(&rt, ep, "t0");
    assert!(matches!(r1.start, Some(StartKind::Cold { .. })));
    std::thread::sleep(keep_alive / 3);
    let (r2, who2) = whoami(&rt, ep, "t0");
    assert_eq!(r2.start, Some(StartKind::Warm), "within the keep-alive");
    assert_eq!(who1["instance_nonce"], who2["instance_nonce"]);
    let old = only_env(&b, tier).workload_pid.unwrap();

    std::thread::sleep(keep_alive * 2);
    wait::expect("the reaper", Duration::from_secs(2), || !process_running(old));
    assert!(b.environments(Some(tier)).is_empty(), "the idle environment was shut down");
    let (r3, who3) = whoami(&rt, ep, "t0");
    assert!(matches!(r3.start, Some(StartKind::Cold { .. })), "after the keep-alive: {r3:?}");
    assert_ne!(who1["instance_nonce"], who3["instance_nonce"]);
    assert_eq!(who3["invocations"], 1);
    let s = b.teardown(tier).unwrap().environments.unwrap();
    assert_eq!((s.created, s.reused, s.reaped), (2, 1, 1), "{s:?}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}

/// Interleaved invokes of three tenants, some concurrent: in tenant isolation mode no
/// environment ever serves two tenants; the shared function (the control) does reuse
/// environments across tenants.
#[test]
fn tenant_isolation_mode_never_lets_two_tenants_share_an_environment() {
    needs_root!();
    let mut b = backend("lambda-isolation");
    let run = b.run_id().to_string();
    let tenants = 3;
    let iso = b
        .deploy(&lambda_plan(&run, TierId::LambdaTenantIsolation, tenants, spec(256, Duration::from_secs(60))))
        .unwrap();
    let shared =
        b.deploy(&lambda_plan(&run, TierId::LambdaShared, tenants, spec(256, Duration::from_secs(60)))).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let order: Vec<Vec<usize>> =
        (0..30).map(|_| (0..1 + next() % 3).map(|_| (next() % tenants as u64) as usize).collect()).collect();
    let run_rounds = |d: &Deployment| -> BTreeMap<String, BTreeSet<String>> {
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for round in &order {
            let calls: Vec<_> = round
                .iter()
                .map(|&t| {
                    let tenant = format!("t{t}");
                    let Endpoint::Function(f) = endpoint(d, &tenant).clone() else { panic!() };
                    rt.spawn(async move {
                        let r = f.invoke(&tenant, serde_json::to_vec(&json!({"op": "whoami"})).unwrap()).await;
                        (tenant, r)
                    })
                })
                .collect();
            for c in calls {
                let (tenant, r) = rt.block_on(c).unwrap();
                let who = body(&r, 200);
                seen.entry(who["instance_nonce"].as_str().unwrap().to_string()).or_default().insert(tenant);
            }
        }
        seen
    };
    let isolated = run_rounds(&iso);
    let invokes: usize = order.iter().map(Vec::len).sum();
    for (nonce, ts) in &isolated {
        assert_eq!(ts.len(), 1, "environment {nonce} served tenants {ts:?}");
    }
    assert!(isolated.len() >= tenants, "{isolated:?}");
    for e in b.environments(Some(TierId::LambdaTenantIsolation)) {
        assert!(e.tenant.is_some(), "{e:?}");
    }
    let crossed = run_rounds(&shared);
    assert!(crossed.values().any(|ts| ts.len() > 1), "the shared function never reused across tenants: {crossed:?}");
    println!(
        "{invokes} interleaved invokes: tenant isolation used {} environments, none shared; shared function used {}",
        isolated.len(),
        crossed.len()
    );

    // An invoke without a tenant id is refused, as Lambda refuses it.
    let Endpoint::Function(f) = endpoint(&iso, "t0") else { panic!() };
    let r = rt.block_on(f.invoke("", b"{\"op\":\"whoami\"}".to_vec()));
    assert_eq!(r.outcome, InvokeOutcome::Rejected { error_type: "InvalidParameterValueException".into() });
    assert_eq!(r.start, None);
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

/// A function of the user's own: a Python `bootstrap` (a `#!` script, in a zip) speaking the
/// Runtime API with the standard library only. Shows the handler name and environment reach
/// it, a frozen environment uses no CPU (a busy child process stops) and a thawed one does,
/// and that a crash and a timeout each replace the environment.
#[test]
fn a_bring_your_own_function_freezes_crashes_and_times_out_like_lambda() {
    needs_root!();
    let Some(zip) = python_zip("byo", PYTHON_RUNTIME) else {
        isobench_testkit::root::skip(
            &isobench_testkit::root::test_name(module_path!()),
            "no /usr/bin/python3 for the bring-your-own function",
        );
        return;
    };
    let mut b = backend("lambda-byo");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaShared;
    let mut s = spec(1769, Duration::from_secs(60));
    s.code = Some(zip.clone());
    s.handler = "app.handler".into();
    s.timeout = Dur(Duration::from_millis(800));
    s.environment.insert("GREETING".into(), "hello".into());
    let d = b.deploy(&lambda_plan(&run, tier, 1, s)).unwrap();
    let rt = caller();
    let ep = endpoint(&d, "t0");
    let out = |r: &InvokeResult| -> Value {
        let InvokeOutcome::Ok(p) = &r.outcome else {
            panic!(
                "not Ok: {r:?}; output: {:?}",
                b.environments(Some(tier)).first().and_then(|e| b.environment_output(&e.id, 2000))
            )
        };
        serde_json::from_slice(p).unwrap()
    };

    let r = invoke(&rt, ep, "t0", json!({"op": "spin"}));
    assert!(matches!(r.start, Some(StartKind::Cold { .. })));
    let v = out(&r);
    assert_eq!(
        (v["handler"].as_str(), v["greeting"].as_str(), v["cwd"].as_str()),
        (Some("app.handler"), Some("hello"), Some("/var/task"))
    );
    let env = only_env(&b, tier);
    wait::expect("the environment to freeze", Duration::from_secs(2), || only_env(&b, tier).frozen == Some(true));
    // Frozen: the busy child stops, and the cgroup's CPU time stands still.
    let before = only_env(&b, tier).cpu_usage.unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let frozen_delta = only_env(&b, tier).cpu_usage.unwrap() - before;
    // Thawed for an invoke that sleeps: the child burns CPU again (the positive control).
    let r = invoke(&rt, ep, "t0", json!({"op": "sleep", "s": 0.4}));
    assert_eq!(r.start, Some(StartKind::Warm));
    assert!(r.billed_ms.unwrap() >= 400, "{r:?}");
    wait::expect("the environment to freeze", Duration::from_secs(2), || only_env(&b, tier).frozen == Some(true));
    let thawed_delta = only_env(&b, tier).cpu_usage.unwrap() - before - frozen_delta;
    println!("CPU: frozen for 300 ms {frozen_delta:?}, thawed for 400 ms {thawed_delta:?}");
    assert!(frozen_delta < Duration::from_millis(1), "a frozen environment used {frozen_delta:?} of CPU");
    // Loose: other tests share the two cores. Alone it is ~400 ms.
    assert!(thawed_delta > Duration::from_millis(20), "the thawed environment used only {thawed_delta:?}");

    // A timeout: the invoke ends at the function's timeout, the environment is replaced.
    let r = invoke(&rt, ep, "t0", json!({"op": "sleep", "s": 5}));
    assert_eq!(r.outcome, InvokeOutcome::Timeout);
    assert_eq!(r.billed_ms, Some(800));
    let pid = env.workload_pid.unwrap();
    wait::expect("the timed-out environment to go", Duration::from_secs(3), || {
        b.environments(Some(tier)).is_empty() && !process_running(pid)
    });
    // A crash: a function error named as Lambda names it; the next invoke starts afresh.
    let r = invoke(&rt, ep, "t0", json!({"op": "exit"}));
    assert!(matches!(r.start, Some(StartKind::Cold { .. })));
    assert_eq!(r.outcome, InvokeOutcome::FunctionError { error_type: "Runtime.ExitError".into() });
    let r = invoke(&rt, ep, "t0", json!({"op": "noop"}));
    assert!(matches!(r.start, Some(StartKind::Cold { .. })), "{r:?}");
    let s = b.teardown(tier).unwrap().environments.unwrap();
    // Warm: the sleeping invoke and the one that timed out.
    assert_eq!((s.created, s.reused, s.replaced), (3, 2, 2), "{s:?}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(zip.parent().unwrap());
}

const PYTHON_RUNTIME: &str = r#"#!/usr/bin/python3
import json, os, subprocess, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
children = []
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read() or b"{}")
    op = event.get("op")
    if op == "spin":
        children.append(subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"]))
    elif op == "sleep":
        time.sleep(event.get("s", 1))
    elif op == "exit":
        os._exit(3)
    out = {"pid": os.getpid(), "handler": os.environ.get("_HANDLER"), "greeting": os.environ.get("GREETING"),
           "cwd": os.getcwd(), "children": len(children)}
    req = urllib.request.Request(api + rid + "/response", data=json.dumps(out).encode(), method="POST")
    urllib.request.urlopen(req).read()
"#;

#[test]
fn teardown_removes_frozen_environments_even_in_a_nested_frozen_cgroup() {
    needs_root!();
    let mut b = backend("lambda-teardown");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaTenantIsolation;
    let d = b.deploy(&lambda_plan(&run, tier, 3, spec(128, Duration::from_secs(60)))).unwrap();
    let rt = caller();
    for t in ["t0", "t1", "t2"] {
        whoami(&rt, endpoint(&d, t), t);
    }
    wait::expect("three frozen environments", Duration::from_secs(3), || {
        let e = b.environments(Some(tier));
        e.len() == 3 && e.iter().all(|e| e.frozen == Some(true))
    });
    let envs = b.environments(Some(tier));
    let pids: Vec<u32> = envs.iter().map(|e| e.workload_pid.unwrap()).collect();
    // One environment's runtime moved into a nested cgroup of its own, frozen there too.
    let v2 = cgroup::v2_mount();
    if let Some(v2) = v2 {
        let dir = envs[0].cgroup_dirs.iter().find(|d| d.starts_with(&v2)).unwrap().join("nested");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), pids[0].to_string()).unwrap();
        std::fs::write(dir.join("cgroup.freeze"), "1").unwrap();
        wait::expect("the nested cgroup to freeze", Duration::from_secs(2), || {
            std::fs::read_to_string(dir.join("cgroup.events")).unwrap().contains("frozen 1")
        });
    }
    // Another's runtime in a nested cgroup of the v1 freezer, frozen there, where it exists.
    let v1 = cgroup::v1_mount("freezer");
    if let Some(v1) = v1
        && let Some(d) = envs[1].cgroup_dirs.iter().find(|d| d.starts_with(&v1))
    {
        let dir = d.join("nested");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), pids[1].to_string()).unwrap();
        std::fs::write(dir.join("freezer.state"), "FROZEN").unwrap();
        wait::expect("the nested v1 cgroup to freeze", Duration::from_secs(2), || {
            std::fs::read_to_string(dir.join("freezer.state")).unwrap().trim() == "FROZEN"
        });
        println!("nested frozen cgroup in the v1 freezer: {}", dir.display());
    } else {
        println!("environments freeze through cgroup v2 here: no v1 freezer case");
    }
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert_eq!(r.environments.unwrap().frozen_at_end, 3);
    println!("teardown of 3 frozen environments: {:.2} ms", r.duration.as_secs_f64() * 1e3);
    // Issue 8: frozen environments, a nested frozen cgroup among them, go within 2 s.
    assert!(r.duration < Duration::from_secs(2), "teardown of frozen environments took {:?}", r.duration);
    for pid in pids {
        assert!(!pid_alive(pid), "runtime {pid} still in the process table");
    }
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    assert!(!Path::new(&format!("/run/isobench/{run}.staged")).exists());
}

const CRASH_RUN: &str = "ISOBENCH_TEST_LAMBDA_CRASH_RUN";

/// Run by [`a_sweep_after_a_crash_removes_environments_and_staged_code`] in a child process:
/// deploys, starts two environments (left frozen), reports, and waits to be killed.
#[test]
#[ignore = "helper: runs only in the child process of a sweep test"]
fn crash_helper() {
    let Some(run) = std::env::var_os(CRASH_RUN) else { return };
    let run = run.to_string_lossy().into_owned();
    let mut b = LocalBackend::new(config(&run)).unwrap();
    let d = b.deploy(&lambda_plan(&run, TierId::LambdaPerTenant, 2, spec(128, Duration::from_secs(60)))).unwrap();
    let rt = caller();
    for t in ["t0", "t1"] {
        whoami(&rt, endpoint(&d, t), t);
    }
    wait::expect("frozen environments", Duration::from_secs(3), || {
        b.environments(None).iter().all(|e| e.frozen == Some(true))
    });
    let pids: Vec<String> = b.environments(None).iter().map(|e| e.workload_pid.unwrap().to_string()).collect();
    println!("READY {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(60));
    drop(b);
}

#[test]
fn a_sweep_after_a_crash_removes_environments_and_staged_code() {
    needs_root!();
    let run = run_id("lambda-crash");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lambda::crash_helper", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CRASH_RUN, &run)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .find_map(|l| l.ok().and_then(|l| l.split_once("READY ").map(|(_, p)| p.to_string())))
        .expect("the crash helper deploys and reports READY");
    let pids: Vec<u32> = line.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    let staged = PathBuf::from(format!("/run/isobench/{run}.staged"));
    assert!(staged.is_dir());
    // SAFETY: kill(2) on our own child's pid with a valid signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();

    let opts = SweepOptions { dry_run: true, run: Some(run.clone()), force: false };
    let dry = sweep(&opts).unwrap();
    assert!(dry.skipped_live.is_empty(), "{dry:?}");
    assert!(dry.found.iter().any(|f| f == &format!("staged code {}", staged.display())), "{:?}", dry.found);
    // The run's emulated internet is pinned under its run id, so the sweep finds it.
    let internet = format!("netns /run/netns/isobench-{run}@internet");
    assert!(dry.found.contains(&internet), "{:?}", dry.found);
    assert!(
        dry.found.iter().any(|f| f.starts_with("cgroup ") && f.contains("lambda-per-tenant-t1-e")),
        "{:?}",
        dry.found
    );
    let t0 = Instant::now();
    let report = sweep(&SweepOptions { dry_run: false, ..opts.clone() }).unwrap();
    let took = t0.elapsed();
    println!("sweep of a crashed run's frozen environments: {:.2} ms", took.as_secs_f64() * 1e3);
    assert!(took < Duration::from_secs(2), "sweeping frozen environments took {took:?}");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(!staged.exists());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    for pid in pids {
        assert!(!process_running(pid), "environment runtime {pid} of the crashed run survived");
    }
    let second = sweep(&SweepOptions { dry_run: false, ..opts }).unwrap();
    assert!(second.found.is_empty() && second.failed.is_empty(), "{second:?}");
}

#[test]
fn bad_code_fails_the_deploy_naming_the_problem() {
    needs_root!();
    let mut b = backend("lambda-badcode");
    let run = b.run_id().to_string();
    let dir = std::env::temp_dir().join(format!("isobench-badcode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("handler.py"), "x").unwrap();
    let mut s = spec(128, Duration::from_secs(60));
    s.code = Some(dir.clone());
    let e = b.deploy(&lambda_plan(&run, TierId::LambdaShared, 1, s.clone())).unwrap_err();
    let chain = format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default());
    let mut source = std::error::Error::source(&e);
    let mut full = chain.clone();
    while let Some(s) = source {
        full.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(full.contains("no `bootstrap`") && full.contains("lambda-shared"), "{full}");
    std::fs::write(dir.join("bootstrap"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(dir.join("bootstrap"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(b.deploy(&lambda_plan(&run, TierId::LambdaShared, 1, s)).is_err(), "a bootstrap others cannot execute");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every environment started is in the backend's record of INITs, also those whose invoke the
/// caller gave up on before INIT ended (the driver's timeout), which no answer reports; and each
/// function's start time is its own, not one staging time repeated.
#[test]
fn every_init_is_recorded_even_when_its_invoke_was_abandoned() {
    needs_root!();
    let mut b = backend("lambda-inits");
    let run = b.run_id().to_string();
    let d = b.deploy(&lambda_plan(&run, TierId::LambdaPerTenant, 3, spec(512, Duration::from_secs(60)))).unwrap();
    assert_eq!(b.inits(TierId::LambdaPerTenant), Some(Vec::new()), "no environment before the first invoke");
    assert_eq!(b.inits(TierId::LambdaShared), None, "not deployed: no record");
    let starts: BTreeSet<Duration> = d.instances.iter().map(|i| i.start_time).collect();
    assert_eq!(starts.len(), 3, "measured per function: {:?}", d.instances);
    let rt = caller();
    for t in ["t0", "t1", "t2"] {
        let Endpoint::Function(f) = endpoint(&d, t) else { panic!() };
        let event = serde_json::to_vec(&json!({"tenant": t, "op": "get", "key": "1"})).unwrap();
        // Given up after 1 ms: the invoke's future is dropped mid-INIT, as the driver drops it.
        let r = rt.block_on(async { tokio::time::timeout(Duration::from_millis(1), f.invoke(t, event)).await });
        assert!(r.is_err(), "INIT takes longer than 1 ms");
    }
    let done = wait::until(Duration::from_secs(30), || {
        b.inits(TierId::LambdaPerTenant)
            .is_some_and(|i| i.len() == 3 && i.iter().all(|r| r.state == isobench_core::backend::InitState::Ok))
    });
    let inits = b.inits(TierId::LambdaPerTenant).unwrap();
    assert!(done, "{inits:?}");
    let functions: BTreeSet<&str> = inits.iter().map(|r| r.function.as_str()).collect();
    assert_eq!(functions.len(), 3, "{inits:?}");
    assert!(inits.iter().all(|r| r.duration > Duration::from_millis(1)), "{inits:?}");
    let s = b.teardown(TierId::LambdaPerTenant).unwrap().environments.unwrap();
    assert_eq!(s.created, inits.len() as u64, "one INIT per environment started");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

/// A plan whose invokes (`put`, `get`, `compute`) each stall `stall` in the workload: they stay
/// in flight that long without using the CPU.
fn stalling(mut p: TierPlan, stall: Duration) -> TierPlan {
    p.workload.faults = Some(isobench_core::scenario::FaultSpec {
        error_rate: 0.0,
        error_body_rate: 0.0,
        stall_rate: 1.0,
        stall: Dur(stall),
    });
    p
}

/// `n` invokes of `tenant` at once, from the caller's runtime; their answers in order.
fn storm(rt: &tokio::runtime::Runtime, calls: Vec<(Endpoint, String)>) -> Vec<InvokeResult> {
    rt.block_on(async move {
        let handles: Vec<_> = calls
            .into_iter()
            .map(|(ep, tenant)| {
                let Endpoint::Function(f) = ep else { panic!("a function endpoint") };
                let event = serde_json::to_vec(&json!({"tenant": tenant, "op": "get", "key": "1"})).unwrap();
                tokio::spawn(async move { f.invoke(&tenant, event).await })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    })
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Two functions share an account of 3: the fourth invoke in flight is throttled, with reason
/// `account`, though neither function is near its own cap.
#[test]
fn an_account_pool_shared_by_two_functions_throttles_the_next_invoke_with_reason_account() {
    needs_root!();
    let mut b = backend("lambda-account");
    let run = b.run_id().to_string();
    let mut p = lambda_plan(&run, TierId::LambdaPerTenant, 2, spec(128, Duration::from_secs(60)));
    p.lambda_account_concurrency = 3;
    let d = b.deploy(&stalling(p, Duration::from_millis(1500))).unwrap();
    let rt = multi_thread();
    let calls = ["t0", "t0", "t1", "t1"].iter().map(|t| (endpoint(&d, t).clone(), t.to_string())).collect();
    let results = storm(&rt, calls);
    let throttled = results.iter().filter(|r| r.outcome == InvokeOutcome::Throttled).count();
    assert_eq!(throttled, 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| matches!(r.outcome, InvokeOutcome::Ok(_))).count(), 3, "{results:?}");
    // Every unit is free again: both functions are served.
    for t in ["t0", "t1"] {
        let r = invoke(&rt, endpoint(&d, t), t, json!({"op": "health"}));
        assert!(matches!(r.outcome, InvokeOutcome::Ok(_)), "{r:?}");
    }
    let s = b.teardown(TierId::LambdaPerTenant).unwrap().environments.unwrap();
    assert_eq!(s.throttles, 1, "{s:?}");
    assert_eq!(s.throttle_reasons.account, 1, "{s:?}");
    assert_eq!((s.throttle_reasons.function, s.throttle_reasons.reserved, s.throttle_reasons.scaling), (0, 0, 0));
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

/// An account of 104 where one function reserves 4: another function's burst takes the 100
/// unreserved units and is throttled (`account`) beyond them, while the reserved function still
/// gets its 4 (and is throttled, `reserved`, only beyond its reservation).
#[test]
fn reserved_concurrency_isolates_a_function_from_anothers_burst() {
    needs_root!();
    let mut b = backend("lambda-reserved");
    let run = b.run_id().to_string();
    let stall = Duration::from_millis(1500);
    let mut bursting = spec(128, Duration::from_secs(60));
    bursting.concurrency = 200;
    let mut p = lambda_plan(&run, TierId::LambdaPerTenant, 1, bursting);
    p.lambda_account_concurrency = 104;
    let burst = b.deploy(&stalling(p, stall)).unwrap();
    let mut reserved = spec(128, Duration::from_secs(60));
    reserved.reserved_concurrency = Some(4);
    let mut p = lambda_plan(&run, TierId::LambdaShared, 1, reserved);
    p.lambda_account_concurrency = 104;
    let protected = b.deploy(&stalling(p, stall)).unwrap();
    let rt = multi_thread();
    let mut calls: Vec<(Endpoint, String)> = (0..101).map(|_| (endpoint(&burst, "t0").clone(), "t0".into())).collect();
    calls.extend((0..5).map(|_| (endpoint(&protected, "t0").clone(), "t0".to_string())));
    let results = storm(&rt, calls);
    let (of_burst, of_protected) = results.split_at(101);
    let throttled = |rs: &[InvokeResult]| rs.iter().filter(|r| r.outcome == InvokeOutcome::Throttled).count();
    assert_eq!(throttled(of_burst), 1, "the burst gets the 100 unreserved units: {of_burst:?}");
    assert_eq!(throttled(of_protected), 1, "the reserved function gets its 4: {of_protected:?}");
    assert_eq!(of_protected.iter().filter(|r| matches!(r.outcome, InvokeOutcome::Ok(_))).count(), 4);
    let s = b.teardown(TierId::LambdaPerTenant).unwrap().environments.unwrap();
    assert_eq!((s.throttles, s.throttle_reasons.account, s.throttle_reasons.reserved), (1, 1, 0), "{s:?}");
    let s = b.teardown(TierId::LambdaShared).unwrap().environments.unwrap();
    assert_eq!((s.throttles, s.throttle_reasons.reserved, s.throttle_reasons.account), (1, 1, 0), "{s:?}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

/// The most of `spans` that overlap at one instant.
fn peak_overlap(spans: &[(Instant, Instant)]) -> usize {
    let mut edges: Vec<(Instant, i32)> = spans.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]).collect();
    // At one instant, an end before a start: touching spans do not overlap.
    edges.sort_by_key(|&(t, d)| (t, d));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    peak as usize
}

/// A storm of 50 first invokes on 50 functions: the environments are created in parallel
/// (their spawner jobs overlap in time), every INIT ends, and the storm takes less than its
/// INITs added up.
#[test]
fn a_storm_of_cold_starts_creates_environments_in_parallel() {
    needs_root!();
    let n = 50;
    let mut b = backend("lambda-storm");
    let run = b.run_id().to_string();
    let d = b.deploy(&lambda_plan(&run, TierId::LambdaPerTenant, n, spec(128, Duration::from_secs(60)))).unwrap();
    let rt = multi_thread();
    let calls = (0..n).map(|i| (endpoint(&d, &format!("t{i}")).clone(), format!("t{i}"))).collect();
    let t0 = Instant::now();
    let results = storm(&rt, calls);
    let took = t0.elapsed();
    assert!(results.iter().all(|r| matches!(r.start, Some(StartKind::Cold { .. }))), "{results:?}");
    let inits: Vec<Duration> = results
        .iter()
        .filter_map(|r| if let Some(StartKind::Cold { init }) = r.start { Some(init) } else { None })
        .collect();
    let sum: Duration = inits.iter().sum();
    let envs = b.environments(Some(TierId::LambdaPerTenant));
    assert_eq!(envs.len(), n);
    let spans: Vec<(Instant, Instant)> = envs.iter().map(|e| e.spawned).collect();
    let peak = peak_overlap(&spans);
    println!("storm of {n}: {took:?}, INITs add up to {sum:?}, at most {peak} environments created at once");
    assert!(peak >= 2, "environments were created one at a time: {spans:?}");
    assert!(took * 2 < sum, "the storm ({took:?}) took more than half its INITs added up ({sum:?})");
    let s = b.teardown(TierId::LambdaPerTenant).unwrap().environments.unwrap();
    assert_eq!((s.created, s.throttles), (n as u64, 0), "{s:?}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

/// Each environment's keep-alive, in the order the environments were created.
fn keep_alives(seed: u64) -> Vec<Duration> {
    let mut b = backend("lambda-keepalive-range");
    let run = b.run_id().to_string();
    let mut s = spec(128, Duration::from_secs(600));
    s.keep_alive = DurRange { min: Duration::from_secs(300), max: Duration::from_secs(900) };
    let mut p = lambda_plan(&run, TierId::LambdaPerTenant, 4, s);
    p.seed = seed;
    let d = b.deploy(&p).unwrap();
    let rt = caller();
    for t in ["t0", "t1", "t2", "t3"] {
        let (r, _) = whoami(&rt, endpoint(&d, t), t);
        assert!(matches!(r.start, Some(StartKind::Cold { .. })), "{r:?}");
    }
    let mut envs = b.environments(Some(TierId::LambdaPerTenant));
    envs.sort_by_key(|e| e.id.rsplit_once("-e").and_then(|(_, n)| n.parse::<u64>().ok()));
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    envs.iter().map(|e| e.keep_alive).collect()
}

#[test]
fn a_keep_alive_range_is_drawn_per_environment_from_the_seed() {
    needs_root!();
    let first = keep_alives(7);
    assert!(first.iter().all(|k| (300..=900).contains(&k.as_secs())), "{first:?}");
    assert!(first.iter().collect::<BTreeSet<_>>().len() > 1, "one seed, different keep-alives: {first:?}");
    assert_eq!(keep_alives(7), first, "a repeated seed draws the same keep-alives");
    assert_ne!(keep_alives(8), first, "another seed draws others");
}

#[test]
fn an_idle_environment_past_its_maximum_lifetime_is_recycled() {
    needs_root!();
    let mut b = backend("lambda-lifetime");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaShared;
    let mut s = spec(128, Duration::from_secs(60));
    s.max_lifetime = Some(Dur(Duration::from_millis(400)));
    let d = b.deploy(&lambda_plan(&run, tier, 1, s)).unwrap();
    let rt = caller();
    let (r1, who1) = whoami(&rt, endpoint(&d, "t0"), "t0");
    assert!(matches!(r1.start, Some(StartKind::Cold { .. })));
    let old = only_env(&b, tier).workload_pid.unwrap();
    wait::expect("the reaper to recycle the environment", Duration::from_secs(5), || !process_running(old));
    let (r2, who2) = whoami(&rt, endpoint(&d, "t0"), "t0");
    assert!(matches!(r2.start, Some(StartKind::Cold { .. })), "a new environment: {r2:?}");
    assert_ne!(who1["instance_nonce"], who2["instance_nonce"]);
    let s = b.teardown(tier).unwrap().environments.unwrap();
    assert_eq!((s.created, s.reaped, s.recycled), (2, 0, 1), "{s:?}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}
