//! The Lambda lifecycle as AWS documents it ("Understanding the Lambda execution environment
//! lifecycle"): an INIT past its 10 s limit retried within the first invoke, the request size
//! limit, work after the response billed and the environment busy until its runtime asks for
//! the next event, and the freeze only then.
//!
//! The function is a Python `bootstrap` speaking the Runtime API with the standard library, so
//! the timings come from a runtime this project did not write; an extension of the same kind
//! speaks the Extensions API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, Deployment, Endpoint, InitState, InvokeOutcome, StartKind};
use isobench_core::scenario::lambda::LambdaSpec;
use isobench_core::tier::TierId;
use isobench_core::units::Dur;
use isobench_local::invoke_errors;
use isobench_testkit::needs_root;
use serde_json::{Value, json};

use crate::util::*;

/// The runtime: sleeps `INIT_SLEEP` seconds before its first `/next` (its INIT); op `after`
/// answers at once, then works `s` seconds before asking for the next event.
const RUNTIME: &str = r#"#!/usr/bin/python3
import json, os, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
time.sleep(float(os.environ.get("INIT_SLEEP", "0")))
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read() or b"{}")
    out = {"pid": os.getpid(), "op": event.get("op")}
    req = urllib.request.Request(api + rid + "/response", data=json.dumps(out).encode(), method="POST")
    urllib.request.urlopen(req).read()
    if event.get("op") == "after":
        end = time.monotonic() + event.get("s", 0.3)
        while time.monotonic() < end:
            pass
"#;

/// Deploys the Python function on `lambda-shared` with `timeout` and `environment`, or skips.
fn deploy(
    name: &str,
    timeout: Duration,
    env: &[(&str, &str)],
) -> Option<(isobench_local::LocalBackend, Deployment, PathBuf)> {
    let Some(zip) = python_zip(name, RUNTIME) else {
        isobench_testkit::root::skip(&isobench_testkit::root::test_name(module_path!()), "no /usr/bin/python3");
        return None;
    };
    let mut spec = lambda_spec(zip.clone(), timeout, Duration::from_secs(60));
    spec.environment = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    let (b, d) = deploy_spec(name, spec);
    Some((b, d, zip))
}

/// Deploys `code` with a 3 s timeout and `keep_alive`.
fn deploy_code(name: &str, code: PathBuf, keep_alive: Duration) -> (isobench_local::LocalBackend, Deployment) {
    deploy_spec(name, lambda_spec(code, Duration::from_secs(3), keep_alive))
}

fn lambda_spec(code: PathBuf, timeout: Duration, keep_alive: Duration) -> LambdaSpec {
    LambdaSpec {
        memory: 1769,
        timeout: Dur(timeout),
        keep_alive: isobench_core::units::DurRange::fixed(keep_alive),
        concurrency: 10,
        code: Some(code),
        handler: "app.handler".into(),
        environment: BTreeMap::new(),
        response: None,
        ..LambdaSpec::default()
    }
}

fn deploy_spec(name: &str, spec: LambdaSpec) -> (isobench_local::LocalBackend, Deployment) {
    let mut b = backend(&format!("lifecycle-{name}"));
    let plan = lambda_plan(b.run_id(), TierId::LambdaShared, 1, spec);
    let d = b.deploy(&plan).unwrap();
    (b, d)
}

fn event(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn an_init_past_ten_seconds_is_retried_within_the_first_invoke() {
    needs_root!();
    let Some((b, d, zip)) = deploy("init-retry", Duration::from_secs(15), &[("INIT_SLEEP", "10.5")]) else { return };
    let r = invoke_on(&d.targets[0].endpoint, "t0", event(json!({"op": "noop"})));
    assert!(matches!(r.outcome, InvokeOutcome::Ok(_)), "the retried INIT serves the invoke: {r:?}");
    let Some(StartKind::Cold { init }) = r.start else { panic!("cold: {r:?}") };
    assert!(init >= Duration::from_secs(20), "both INITs are the invoke's wait: {init:?}");
    let inits = b.inits(TierId::LambdaShared).unwrap();
    let states: Vec<InitState> = inits.iter().map(|i| i.state).collect();
    assert_eq!(states, [InitState::Failed, InitState::Ok], "{inits:?}");
    assert!(inits[0].duration >= Duration::from_secs(10) && inits[0].duration < Duration::from_millis(10_500));
    finish_run(b, zip.parent().unwrap());
}

#[test]
fn a_request_over_six_mb_is_refused_before_any_environment_starts() {
    needs_root!();
    let Some((b, d, zip)) = deploy("request-limit", Duration::from_secs(3), &[]) else { return };
    let ep = &d.targets[0].endpoint;
    let r = invoke_on(ep, "t0", vec![b' '; 6 * 1024 * 1024 + 1]);
    assert_eq!(r.outcome, InvokeOutcome::Rejected { error_type: invoke_errors::REQUEST_TOO_LARGE.into() });
    assert!(b.environments(Some(TierId::LambdaShared)).is_empty(), "nothing started for a refused request");
    // Exactly at the limit is accepted (a JSON string padded with spaces).
    let mut at_limit = event(json!({"op": "noop"}));
    at_limit.resize(6 * 1024 * 1024, b' ');
    let r = invoke_on(ep, "t0", at_limit);
    assert!(matches!(r.outcome, InvokeOutcome::Ok(_)), "{r:?}");
    finish_run(b, zip.parent().unwrap());
}

#[test]
fn work_after_the_response_is_billed_and_keeps_the_environment_busy() {
    needs_root!();
    let Some((b, d, zip)) = deploy("after", Duration::from_secs(3), &[]) else { return };
    let ep = d.targets[0].endpoint.clone();
    let Endpoint::Function(f) = &ep else { panic!("a function endpoint") };
    assert!(matches!(invoke_on(&ep, "t0", event(json!({"op": "noop"}))).start, Some(StartKind::Cold { .. })));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let t0 = Instant::now();
    let (after, during) = rt.block_on(async {
        let a = f.invoke("t0", event(json!({"op": "after", "s": 0.5})));
        let b = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            f.invoke("t0", event(json!({"op": "noop"}))).await
        };
        tokio::join!(a, b)
    });
    assert!(matches!(after.outcome, InvokeOutcome::Ok(_)), "{after:?}");
    assert_eq!(after.start, Some(StartKind::Warm));
    let responded = after.responded_at.expect("the emulator says when the response was complete");
    assert!(responded.duration_since(t0) < Duration::from_millis(200), "the caller's latency ends at the response");
    assert!(after.billed_ms.unwrap() >= 500, "the work after the response is billed: {after:?}");
    // Still working after its response: a second invoke needs another environment.
    assert!(matches!(during.start, Some(StartKind::Cold { .. })), "{during:?}");
    finish_run(b, zip.parent().unwrap());
}

/// An extension the bootstrap starts before its runtime (as Lambda starts extensions first):
/// registers for INVOKE and SHUTDOWN, works `EXT_WORK` seconds after each INVOKE, and writes the
/// SHUTDOWN's reason to `/tmp/shutdown`, then takes half a second before asking for more.
const EXTENSION: &str = r#"import json, os, time, urllib.request
base = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-01-01/extension/"
req = urllib.request.Request(base + "register", data=json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode(),
                             method="POST", headers={"Lambda-Extension-Name": "ext.py"})
with urllib.request.urlopen(req) as r:
    eid = r.headers["Lambda-Extension-Identifier"]
open("/tmp/registered", "w").close()
while True:
    req = urllib.request.Request(base + "event/next", headers={"Lambda-Extension-Identifier": eid})
    with urllib.request.urlopen(req) as r:
        ev = json.loads(r.read())
    if ev["eventType"] == "INVOKE":
        time.sleep(float(os.environ.get("EXT_WORK", "0.3")))
    elif ev["eventType"] == "SHUTDOWN":
        with open("/tmp/shutdown", "w") as f:
            f.write(ev.get("shutdownReason", ""))
        time.sleep(0.5)
"#;

const WITH_EXTENSION: &str = "#!/bin/sh
/usr/bin/python3 /var/task/ext.py &
while [ ! -e /tmp/registered ]; do sleep 0.01; done
exec /usr/bin/python3 /var/task/runtime.py
";

/// A code directory: the bootstrap above, the extension and [`RUNTIME`].
fn extension_function(name: &str) -> Option<PathBuf> {
    let zip = python_zip(name, RUNTIME)?;
    let dir = zip.parent().unwrap().join("code");
    std::fs::create_dir_all(&dir).unwrap();
    let exec = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    exec(dir.join("bootstrap"), WITH_EXTENSION);
    exec(dir.join("ext.py"), EXTENSION);
    exec(dir.join("runtime.py"), RUNTIME);
    Some(zip)
}

#[test]
fn an_extension_is_billed_for_its_work_after_each_invoke_and_hears_the_shutdown() {
    needs_root!();
    let Some(zip) = extension_function("extension") else {
        isobench_testkit::root::skip(&isobench_testkit::root::test_name(module_path!()), "no /usr/bin/python3");
        return;
    };
    let code = zip.parent().unwrap().join("code");
    let (mut b, d) = deploy_code("extension", code, Duration::from_secs(1));
    let ep = d.targets[0].endpoint.clone();
    for (i, want_cold) in [true, false].into_iter().enumerate() {
        let t0 = Instant::now();
        let r = invoke_on(&ep, "t0", event(json!({"op": "noop"})));
        assert!(matches!(r.outcome, InvokeOutcome::Ok(_)), "invoke {i}: {r:?}");
        assert_eq!(matches!(r.start, Some(StartKind::Cold { .. })), want_cold, "invoke {i}: {r:?}");
        assert!(r.billed_ms.unwrap() >= 300, "the extension's work after invoke {i} is billed: {r:?}");
        // The caller's latency ends at the response, before the extension's 300 ms of work
        // that the result waits for (the freeze point).
        let responded = r.responded_at.unwrap().duration_since(t0);
        let returned = t0.elapsed();
        assert!(responded + Duration::from_millis(250) <= returned, "responded {responded:?}, returned {returned:?}");
    }
    let env = b.environments(Some(TierId::LambdaShared)).pop().expect("one environment");
    let pid = env.workload_pid.expect("the runtime's pid");
    // Idle past the 1 s keep-alive: the reaper sends SHUTDOWN before it stops the environment.
    let marker = PathBuf::from(format!("/proc/{pid}/root/tmp/shutdown"));
    let mut reason = None;
    let t0 = Instant::now();
    while reason.is_none() && t0.elapsed() < Duration::from_secs(10) {
        reason = std::fs::read_to_string(&marker).ok().filter(|r| !r.is_empty());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(reason.as_deref(), Some("spindown"), "SHUTDOWN reached the extension");
    let s = b.teardown(TierId::LambdaShared).unwrap().environments.unwrap();
    assert_eq!(s.reaped, 1, "{s:?}");
    finish_run(b, zip.parent().unwrap());
}
