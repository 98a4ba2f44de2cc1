//! Response streaming ("Response streaming for Lambda functions": the runtime posts its
//! `/response` with `Lambda-Runtime-Function-Response-Mode: streaming` and a chunked body): the
//! invoke result says when the first byte came, and the load driver records the time to first
//! byte apart from the latency.
//!
//! The function is a Python `bootstrap` speaking the Runtime API with the standard library (as
//! in `lifecycle`), writing the chunked body by hand so the pause between chunks is its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use isobench_core::backend::{Backend, Deployment, Endpoint, InvokeOutcome, InvokeResult};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::lambda::LambdaSpec;
use isobench_core::scenario::{Arrival, MixSpec};
use isobench_core::tier::TierId;
use isobench_core::units::Dur;
use isobench_load::{LoadSpec, OpStats};
use isobench_testkit::needs_root;
use serde_json::json;

use crate::util::*;

/// The runtime: streams `first` and, `PAUSE` seconds later, `second`; with `"buffered": true`
/// in the event it posts one ordinary body instead.
const RUNTIME: &str = r#"#!/usr/bin/python3
import http.client, json, os, socket, time
host = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = "/2018-06-01/runtime/invocation/"
pause = float(os.environ.get("PAUSE", "0.2"))
def conn():
    c = http.client.HTTPConnection(host)
    c.connect()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c
while True:
    c = conn()
    c.request("GET", base + "next")
    r = c.getresponse()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    event = json.loads(r.read() or b"{}")
    c.close()
    c = conn()
    if event.get("buffered"):
        c.request("POST", base + rid + "/response", body=b"whole")
    else:
        c.putrequest("POST", base + rid + "/response")
        c.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
        c.putheader("Transfer-Encoding", "chunked")
        c.putheader("Content-Type", "application/octet-stream")
        c.endheaders(b"5\r\nfirst\r\n")
        time.sleep(pause)
        c.send(b"6\r\nsecond\r\n0\r\n\r\n")
    c.getresponse().read()
    c.close()
"#;

/// Deploys the streaming function on `lambda-shared` with a `pause` between its chunks, or
/// skips.
fn deploy(name: &str, pause: Duration) -> Option<(isobench_local::LocalBackend, TierPlan, Deployment, PathBuf)> {
    let Some(zip) = python_zip(name, RUNTIME) else {
        isobench_testkit::root::skip(&isobench_testkit::root::test_name(module_path!()), "no /usr/bin/python3");
        return None;
    };
    let spec = LambdaSpec {
        memory: 1769,
        timeout: Dur(Duration::from_secs(3)),
        keep_alive: isobench_core::units::DurRange::fixed(Duration::from_secs(60)),
        concurrency: 10,
        code: Some(zip.clone()),
        handler: "app.handler".into(),
        environment: BTreeMap::from([("PAUSE".to_string(), pause.as_secs_f64().to_string())]),
        response: None,
        ..LambdaSpec::default()
    };
    let mut b = backend(&format!("streaming-{name}"));
    let plan = lambda_plan(b.run_id(), TierId::LambdaShared, 1, spec);
    let d = b.deploy(&plan).unwrap();
    Some((b, plan, d, zip))
}

fn invoke(ep: &Endpoint, event: serde_json::Value) -> InvokeResult {
    invoke_on(ep, "t0", serde_json::to_vec(&event).unwrap())
}

#[test]
fn a_streamed_response_says_when_its_first_byte_came_and_a_buffered_one_does_not() {
    needs_root!();
    let Some((b, _, d, zip)) = deploy("first-byte", Duration::from_millis(200)) else { return };
    let ep = &d.targets[0].endpoint;
    for _ in 0..2 {
        // Cold, then warm: the same either way.
        let r = invoke(ep, json!({"op": "stream"}));
        assert_eq!(r.outcome, InvokeOutcome::Ok(b"firstsecond".to_vec()), "{r:?}");
        let first = r.first_byte_at.expect("a streamed response has a first byte of its own");
        let last = r.responded_at.expect("and a last");
        let gap = last.duration_since(first);
        assert!(gap >= Duration::from_millis(150), "the first chunk came before the pause: {gap:?}");
        assert!(gap < Duration::from_secs(2), "{gap:?}");
    }
    let r = invoke(ep, json!({"buffered": true}));
    assert_eq!(r.outcome, InvokeOutcome::Ok(b"whole".to_vec()), "{r:?}");
    assert_eq!(r.first_byte_at, None, "a buffered response's first byte is its last");
    assert!(r.responded_at.is_some());
    finish_run(b, zip.parent().unwrap());
}

#[test]
fn the_load_driver_records_time_to_first_byte_below_the_latency() {
    needs_root!();
    let pause = Duration::from_millis(60);
    let Some((b, plan, d, zip)) = deploy("driver", pause) else { return };
    let spec = LoadSpec {
        label: "streaming".into(),
        duration: Duration::from_secs(1),
        rate: 20.0,
        arrival: Arrival::Constant,
        seed: 7,
        tenants: plan.tenants.clone(),
        mix: MixSpec { put: 1.0, get: 1.0, compute: 1.0 },
        timeout: Duration::from_secs(3),
        max_connections: 8,
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
    let t = &report.totals;
    assert!(t.sent >= 15 && t.ok == t.sent, "every invoke is ok: {t:?}");
    let mut all = OpStats::default();
    report.per.values().for_each(|s| all.merge(s));
    assert_eq!((all.streamed, all.ttfb.len()), (t.ok, t.ok), "every ok invoke streamed, each with its TTFB");
    let (ttfb, latency) = (all.ttfb.value_at_quantile(0.5), all.corrected.value_at_quantile(0.5));
    assert!(ttfb > 0 && ttfb < latency, "ttfb p50 {ttfb} ns, latency p50 {latency} ns");
    // The second chunk comes `pause` after the first: the latency's median is that much later.
    assert!(latency - ttfb >= (pause.as_nanos() as u64) * 2 / 3, "ttfb p50 {ttfb} ns, latency p50 {latency} ns");
    assert!(all.ttfb.max() <= all.corrected.max());
    finish_run(b, zip.parent().unwrap());
}
