use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use isobench_core::backend::{Endpoint, Invoke, InvokeOutcome};
use isobench_load::{Arrival, ErrorKind, LoadSpec, Op};

use crate::util::{
    Behaviour, Call, FakeFunction, Gauge, Reply, TestServer, assert_no_function_facts, check_invariants,
    function_targets, healthy_reply, planned, run, spec, targets,
};

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_healthy_function_gets_contract_events_and_every_request_is_ok() {
    let s = spec(800.0, 800, 4);
    let f = FakeFunction::new(&s, healthy_reply);
    let (r, snaps) = run(&s, &function_targets(&s, &f));
    check_invariants(&r);

    let planned = planned(&s);
    assert!(planned > 500, "{planned}");
    let t = &r.totals;
    assert_eq!((t.sent, t.ok, t.errors_total(), t.timeouts, t.not_sent), (planned, planned, 0, 0, 0), "{t:?}");
    assert_eq!(f.invokes.load(Ordering::Relaxed), planned, "one invoke per request");
    assert_eq!(f.violations(), 0, "every event is a contract event naming the invoke's tenant");
    for ((tenant, op), st) in &r.per {
        assert_eq!(st.ok, f.count(tenant, *op), "{tenant}/{op}");
        // Every result was warm and billed 1 ms at 128 MB.
        assert_eq!((st.cold, st.corrected_warm.len(), st.uncorrected_warm.len()), (0, st.ok, st.ok), "{tenant}/{op}");
        assert_eq!((st.billed_invokes, st.billed_ms_total, st.memory_mb), (st.sent, st.sent, Some(128)));
        assert_eq!(st.billed_mb_ms_total, 128 * st.sent);
        assert!(st.init.is_empty());
        assert_eq!((st.streamed, st.ttfb.len()), (0, 0), "buffered responses have no time to first byte");
    }
    assert_eq!(r.per.len(), 12, "four tenants, three operations");
    assert_eq!(t.not_found, f.tallied("not_found"));
    assert!(t.not_found > 0, "a random mix reads some unwritten keys");
    assert_eq!(r.connections_opened, 0, "a function target opens no connection");
    assert_eq!(f.completed.load(Ordering::Relaxed), planned);
    assert!(f.dropped_after.lock().unwrap().is_empty(), "no invoke was abandoned");
    assert!(f.gauge.max() <= s.max_connections);
    let last = snaps.last().unwrap();
    assert_eq!((last.sent, last.ok, last.in_flight, last.queued), (t.sent, t.ok, 0, 0));
}

#[test]
fn payload_statuses_are_classified_like_http_answers() {
    let s = spec(800.0, 600, 3);
    let f = FakeFunction::new(&s, |c: &Call| match c.n % 6 {
        0 => Reply::status(500, "5xx"),
        1 => Reply::status(403, "4xx"),
        2 if c.op == Op::Get => Reply::status(404, "not_found"),
        2 => Reply::status(404, "4xx"),
        3 => Reply::outcome(InvokeOutcome::Ok(b"<html>502 Bad Gateway</html>".to_vec()), "protocol"),
        4 => Reply::outcome(InvokeOutcome::Ok(br#"{"body":"no status"}"#.to_vec()), "protocol"),
        _ => healthy_reply(c),
    });
    let (r, _) = run(&s, &function_targets(&s, &f));
    check_invariants(&r);
    assert_eq!(f.violations(), 0);
    let t = &r.totals;
    assert_eq!(t.sent, planned(&s));
    let kind = |k| t.errors.get(&k).copied().unwrap_or(0);
    assert!(f.tallied("5xx") > 20 && f.tallied("protocol") > 40, "{:?}", f.tally.lock().unwrap());
    assert_eq!(kind(ErrorKind::Http5xx), f.tallied("5xx"), "an error payload is an error, not a latency sample");
    assert_eq!(kind(ErrorKind::Http4xx), f.tallied("4xx"), "4xx, and 404 on anything but a get");
    assert_eq!(kind(ErrorKind::Protocol), f.tallied("protocol"), "a payload without a status");
    assert_eq!(t.errors_total(), f.tallied("5xx") + f.tallied("4xx") + f.tallied("protocol"), "{:?}", t.errors);
    assert_eq!(t.not_found, f.tallied("not_found"), "404 on a get is ok, and not found");
    assert_eq!(t.ok, ["put", "get", "compute", "not_found"].iter().map(|l| f.tallied(l)).sum::<u64>());
    assert_eq!(r.merged().corrected.len(), t.ok);
}

#[test]
fn each_invoke_outcome_is_an_error_of_its_own_kind() {
    let s = spec(600.0, 600, 2);
    let f = FakeFunction::new(&s, |c: &Call| match c.n % 6 {
        0 => Reply::outcome(InvokeOutcome::FunctionError { error_type: "InjectedFault".into() }, "function_error"),
        // An environment whose INIT failed: a cold start, billed, no payload.
        1 => Reply::outcome(InvokeOutcome::InitError { error_type: Some("Runtime.ExitError".into()) }, "init_error")
            .cold(2 * MS),
        2 => Reply::outcome(InvokeOutcome::Throttled, "throttled").no_environment(),
        3 => Reply::outcome(InvokeOutcome::Timeout, "function_timeout"),
        4 => Reply::outcome(InvokeOutcome::Rejected { error_type: "TenantIdRequired".into() }, "rejected")
            .no_environment(),
        _ => healthy_reply(c),
    });
    let (r, _) = run(&s, &function_targets(&s, &f));
    check_invariants(&r);
    let t = &r.totals;
    assert_eq!(t.sent, planned(&s));
    let mut failed = 0;
    for kind in [
        ErrorKind::FunctionError,
        ErrorKind::InitError,
        ErrorKind::Throttled,
        ErrorKind::FunctionTimeout,
        ErrorKind::Rejected,
    ] {
        let n = f.tallied(kind.as_str());
        assert!(n > 20, "{kind}: {n}");
        assert_eq!(t.errors.get(&kind).copied(), Some(n), "{kind}: {:?}", t.errors);
        failed += n;
    }
    assert_eq!(t.errors_total(), failed, "{:?}", t.errors);
    assert_eq!(t.timeouts, 0, "the function's own timeout is an error, not the driver's timeout");
    assert_eq!(t.ok, t.sent - failed);
    let all = r.merged();
    assert_eq!(all.corrected.len(), t.ok);
    assert_eq!(all.billed_invokes, t.sent - f.tallied("throttled") - f.tallied("rejected"), "no environment, no bill");
    assert_eq!(all.billed_ms_total, all.billed_invokes);
    // The failed INITs were cold starts: their INIT is recorded, but none is an ok cold start.
    assert_eq!(all.init.len(), f.tallied("init_error"));
    assert_eq!(all.cold, 0);
}

#[test]
fn invokes_stalled_past_the_timeout_are_timeouts_and_are_dropped() {
    let timeout = Duration::from_millis(250);
    let s = LoadSpec { timeout, ..spec(200.0, 600, 2) };
    let f = FakeFunction::new(&s, |c: &Call| {
        if c.n.is_multiple_of(5) {
            Reply { label: "stalled", ..healthy_reply(c).after(Duration::from_secs(30)) }
        } else {
            healthy_reply(c)
        }
    });
    let t0 = Instant::now();
    let (r, _) = run(&s, &function_targets(&s, &f));
    let took = t0.elapsed();
    check_invariants(&r);
    let stalled = f.tallied("stalled");
    let t = &r.totals;
    assert_eq!(t.sent, planned(&s));
    assert!(stalled >= 10, "{stalled}");
    assert_eq!(t.timeouts, stalled, "{t:?}");
    assert_eq!(t.errors_total(), 0, "{t:?}");
    // Each stalled invoke's future was dropped at its deadline, not left running.
    let dropped = f.dropped_after.lock().unwrap().clone();
    assert_eq!(dropped.len() as u64, stalled, "every timed-out invoke was dropped");
    for d in &dropped {
        assert!(*d >= timeout - MS && *d < timeout + Duration::from_millis(500), "dropped after {d:?}");
    }
    assert_eq!(f.completed.load(Ordering::Relaxed), t.sent - stalled);
    assert_eq!(f.gauge.now(), 0, "nothing is left in flight");
    let all = r.merged();
    assert!(all.uncorrected.max() < timeout.as_nanos() as u64, "a timeout leaked into the latency");
    // Timed-out invokes returned no result: nothing to bill, as far as the driver knows.
    assert_eq!(all.billed_invokes, t.ok);
    assert!(took < Duration::from_secs(3), "the run waited for the stalls: {took:?}");
}

#[test]
fn cold_and_warm_starts_are_split() {
    let init = Duration::from_millis(30);
    let s = spec(300.0, 800, 3);
    let f = FakeFunction::new(&s, move |c: &Call| {
        let r = healthy_reply(c).after(MS);
        if c.first_for_tenant { r.cold(init) } else { r }
    });
    let (r, _) = run(&s, &function_targets(&s, &f));
    check_invariants(&r);
    let t = &r.totals;
    assert_eq!((t.sent, t.ok), (planned(&s), planned(&s)), "{t:?}");
    for tenant in ["t0", "t1", "t2"] {
        let s = r.by_tenant(tenant);
        assert_eq!((s.cold, s.init.len()), (1, 1), "{tenant}: one cold start, the first invoke");
        assert_eq!(s.corrected_warm.len(), s.ok - 1, "{tenant}");
    }
    for ((tenant, op), st) in &r.per {
        assert_eq!(
            st.corrected_cold.len() + st.corrected_warm.len(),
            st.ok,
            "{tenant}/{op}: every ok invoke is cold or warm"
        );
        assert_eq!(st.uncorrected_cold.len() + st.uncorrected_warm.len(), st.ok, "{tenant}/{op}");
    }
    let all = r.merged();
    assert_eq!((all.cold, all.init.len(), all.corrected_cold.len()), (3, 3, 3));
    assert_eq!(all.init.min(), all.init.lowest_equivalent(init.as_nanos() as u64), "INIT as the function reported it");
    assert_eq!(all.init.max(), all.init.highest_equivalent(init.as_nanos() as u64));
    // A cold start's latency includes its INIT; a warm one's does not.
    assert!(all.uncorrected_cold.min() >= init.as_nanos() as u64);
    assert!(all.uncorrected_warm.value_at_quantile(0.5) < init.as_nanos() as u64);
    assert_eq!(all.corrected.len(), all.corrected_cold.len() + all.corrected_warm.len());
}

#[test]
fn streamed_invokes_have_a_time_to_first_byte_before_their_latency() {
    let s = spec(200.0, 800, 2);
    // Every other invoke streams: first byte after 2 ms, the last after 25 ms.
    let f = FakeFunction::new(&s, |c: &Call| {
        let r = healthy_reply(c).after(25 * MS);
        if c.n.is_multiple_of(2) { Reply { label: "streamed", ..r.streamed(2 * MS) } } else { r }
    });
    let (r, _) = run(&s, &function_targets(&s, &f));
    check_invariants(&r);
    let t = &r.totals;
    assert_eq!((t.sent, t.ok), (planned(&s), planned(&s)), "{t:?}");
    let all = r.merged();
    assert_eq!(all.streamed, f.tallied("streamed"), "every streamed ok invoke is counted");
    assert!(all.streamed > 20, "{}", all.streamed);
    assert_eq!(all.ttfb.len(), all.streamed);
    assert!(all.ttfb.min() >= all.ttfb.lowest_equivalent(2_000_000), "the first byte came 2 ms in");
    assert!(all.ttfb.value_at_quantile(0.5) < 20_000_000, "{}", all.ttfb.value_at_quantile(0.5));
    assert!(all.corrected.min() >= 25_000_000, "the latency runs to the last byte");
}

#[test]
fn tenants_of_one_function_share_its_in_flight_cap() {
    // Two tenants, one function that takes 10 ms per invoke, at most 2 in flight: ~200
    // invokes/s for 400 offered.
    let s = LoadSpec {
        max_connections: 2,
        arrival: Arrival::Constant,
        timeout: Duration::from_secs(5),
        ..spec(400.0, 500, 2)
    };
    let f = FakeFunction::new(&s, |c: &Call| healthy_reply(c).after(10 * MS));
    let (r, snaps) = run(&s, &function_targets(&s, &f));
    check_invariants(&r);
    let t = &r.totals;
    assert_eq!((t.sent, t.ok), (planned(&s), planned(&s)), "{t:?}");
    assert_eq!(f.gauge.max(), 2, "the cap is reached and never exceeded, across both tenants");
    // The wait for a free slot is the generator's lag, and part of the corrected latency.
    let all = r.merged();
    assert!(all.lag.value_at_quantile(0.99) > 100_000_000, "lag p99 {} ns", all.lag.value_at_quantile(0.99));
    assert!(all.uncorrected.value_at_quantile(0.99) < 100_000_000);
    assert!(snaps.iter().any(|s| s.queued > 5), "the backlog is visible in progress");
}

#[test]
fn separate_functions_have_separate_caps() {
    let both = Arc::new(Gauge::default());
    let s = LoadSpec {
        max_connections: 2,
        arrival: Arrival::Constant,
        timeout: Duration::from_secs(5),
        ..spec(400.0, 500, 2)
    };
    let slow = |c: &Call| healthy_reply(c).after(20 * MS);
    let a = FakeFunction::with_gauge(&s, Some(Arc::clone(&both)), slow);
    let b = FakeFunction::with_gauge(&s, Some(Arc::clone(&both)), slow);
    let mut t = function_targets(&s, &a);
    t[1].endpoint = Endpoint::Function(Arc::clone(&b) as Arc<dyn Invoke>);
    let (r, _) = run(&s, &t);
    check_invariants(&r);
    assert_eq!(r.totals.ok, planned(&s));
    assert_eq!((a.gauge.max(), b.gauge.max()), (2, 2), "each function has its own cap");
    assert_eq!(both.max(), 4, "and both were full at once");
    assert_eq!((a.count("t1", Op::Get), b.count("t0", Op::Get)), (0, 0), "each tenant reached its own function");
}

#[test]
fn cancellation_aborts_and_drops_invokes_in_flight() {
    let s = LoadSpec { timeout: Duration::from_secs(20), ..spec(50.0, 30_000, 2) };
    let f = FakeFunction::new(&s, |c: &Call| healthy_reply(c).after(Duration::from_secs(30)));
    let cancel = AtomicBool::new(false);
    let t0 = Instant::now();
    let r = isobench_load::run(&s, &function_targets(&s, &f), None, &cancel, &mut |snap| {
        if snap.elapsed >= Duration::from_millis(300) {
            cancel.store(true, Ordering::Relaxed);
        }
    })
    .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
    check_invariants(&r);
    let t = &r.totals;
    assert!(t.sent > 3, "{t:?}");
    assert_eq!(t.errors.get(&ErrorKind::Aborted).copied(), Some(t.sent), "{t:?}");
    assert_eq!(f.dropped_after.lock().unwrap().len() as u64, t.sent, "every aborted invoke was dropped");
}

#[test]
fn a_panicking_invoke_is_counted_and_does_not_hang_the_run() {
    let s = spec(300.0, 400, 2);
    let f = FakeFunction::new(&s, |c: &Call| {
        if c.n.is_multiple_of(4) { Reply { label: "panic", panic: true, ..healthy_reply(c) } } else { healthy_reply(c) }
    });
    let t0 = Instant::now();
    let (r, _) = run(&s, &function_targets(&s, &f));
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
    check_invariants(&r);
    let t = &r.totals;
    assert_eq!(t.sent, planned(&s));
    assert!(f.tallied("panic") > 10);
    assert_eq!(t.errors.get(&ErrorKind::Panic).copied(), Some(f.tallied("panic")), "{t:?}");
    assert_eq!(t.ok, t.sent - f.tallied("panic"));
}

#[test]
fn http_and_function_tenants_in_one_run() {
    let server = TestServer::start(Behaviour::Healthy, 64);
    let s = spec(600.0, 600, 2);
    let f = FakeFunction::new(&s, healthy_reply);
    let mut t = targets(&s, server.addr);
    t[1].endpoint = Endpoint::Function(Arc::clone(&f) as Arc<dyn Invoke>);
    let (r, _) = run(&s, &t);
    check_invariants(&r);
    assert_eq!((r.totals.sent, r.totals.ok), (planned(&s), planned(&s)));
    for op in Op::ALL {
        assert_eq!(f.count("t0", op), 0, "the HTTP tenant never reached the function");
        assert_eq!(server.stats.count("t1", op), 0, "the function tenant never reached the server");
    }
    let (http, func) = (r.by_tenant("t0"), r.by_tenant("t1"));
    assert_eq!(http.ok, Op::ALL.iter().map(|op| server.stats.count("t0", *op)).sum::<u64>());
    assert_eq!(func.ok, f.invokes.load(Ordering::Relaxed));
    assert!(http.ok > 0 && func.ok > 0);
    for ((tenant, _), st) in r.per.iter().filter(|((tenant, _), _)| tenant == "t0") {
        assert_no_function_facts(st);
        assert!(st.ok > 0, "{tenant}");
    }
    assert_eq!((func.corrected_warm.len(), func.billed_invokes, func.memory_mb), (func.ok, func.sent, Some(128)));
    assert!(r.connections_opened >= 1, "the HTTP tenant's pool connected");
    assert_eq!(f.violations(), 0);
    assert_eq!(server.stats.contract_violations.load(Ordering::Relaxed), 0);
}

/// An invoke that blocks its runtime thread (a backend calling blocking code inside a
/// future) until the test lets it go: the abort cannot reach it.
#[derive(Debug)]
struct BlockingFunction {
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Invoke for BlockingFunction {
    fn invoke<'a>(
        &'a self,
        _tenant: &'a str,
        _payload: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = isobench_core::backend::InvokeResult> + Send + 'a>> {
        Box::pin(async move {
            let _ = self.release.lock().unwrap().recv_timeout(Duration::from_secs(60));
            // Released after the run returned: the runtime is gone, nothing waits for this.
            std::future::pending().await
        })
    }
}

#[test]
fn tasks_stuck_past_the_abort_are_counted_by_the_final_deadline() {
    let s = LoadSpec { timeout: Duration::from_millis(300), ..spec(50.0, 300, 2) };
    let (tx, rx) = std::sync::mpsc::channel();
    let f = Arc::new(BlockingFunction { release: std::sync::Mutex::new(rx) });
    let targets: Vec<_> = s
        .tenants
        .iter()
        .map(|t| isobench_core::backend::TenantTarget {
            tenant: t.id.clone(),
            endpoint: Endpoint::Function(Arc::clone(&f) as Arc<dyn Invoke>),
        })
        .collect();
    let t0 = Instant::now();
    let (r, _) = run(&s, &targets);
    let took = t0.elapsed();
    drop(tx); // lets the blocked thread go
    // Abort at end + 2 × timeout + slop (~1.1 s), the final deadline 2 s after.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(took >= isobench_load::FINAL_GRACE, "took {took:?}: ended before the final deadline");
    check_invariants(&r);
    let t = &r.totals;
    assert!(t.abandoned >= 1, "{t:?}");
    assert!(t.timeouts >= 1, "the invoke stuck in flight is a timeout: {t:?}");
    assert_eq!(t.dispatched, planned(&s), "{t:?}");
    assert_eq!(t.sent + t.not_sent, t.dispatched, "nothing is lost: {t:?}");
}
