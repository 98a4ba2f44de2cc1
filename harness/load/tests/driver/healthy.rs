use std::sync::atomic::{AtomicBool, Ordering};

use isobench_load::{LoadError, Op};

use crate::util::{Behaviour, TestServer, check_invariants, planned, run, spec, targets};

#[test]
fn all_ok_and_counts_match_the_server() {
    let server = TestServer::start(Behaviour::Healthy, 64);
    let s = spec(1_000.0, 1_000, 4);
    let (r, snaps) = run(&s, &targets(&s, server.addr));
    check_invariants(&r);

    let planned = planned(&s);
    assert!(planned > 800, "{planned}");
    let t = &r.totals;
    assert_eq!(t.sent, planned, "every planned request is sent");
    assert_eq!((t.ok, t.errors_total(), t.timeouts, t.not_sent), (planned, 0, 0, 0), "{t:?}");
    assert_eq!(server.stats.requests.load(Ordering::Relaxed), planned, "the server saw each request once");
    assert_eq!(
        server.stats.contract_violations.load(Ordering::Relaxed),
        0,
        "path, header and body follow the contract"
    );
    // Per tenant and operation, the driver's count is what the server received.
    for ((tenant, op), st) in &r.per {
        assert_eq!(st.ok, server.stats.count(tenant, *op), "{tenant}/{op}");
    }
    // GETs of never-written keys are ok, and counted as not found.
    assert_eq!(t.not_found, server.stats.not_found.load(Ordering::Relaxed));
    assert!(t.not_found > 0, "a random mix reads some unwritten keys");
    assert!(r.per.keys().any(|(_, op)| *op == Op::Compute));
    // Four tenants, three operations.
    assert_eq!(r.per.len(), 12);

    assert!(!r.cancelled);
    assert_eq!(r.dispatch_window, s.duration);
    assert!(r.wall >= s.duration);
    assert!(r.connections_opened >= 1 && r.connections_opened <= 16, "{}", r.connections_opened);
    // Nothing waited: every request went on the wire within the window, and was answered.
    assert_eq!(t.sent_in_window, planned, "{t:?}");
    assert!((r.achieved_rate - planned as f64).abs() < 1.0, "{}", r.achieved_rate);
    assert!(r.ok_rate > 0.98 * planned as f64 && r.ok_rate <= r.achieved_rate, "{}", r.ok_rate);
    assert!(r.started_at_unix_ns > 1_700_000_000_000_000_000);

    // Progress: several snapshots, monotone, the last one final.
    assert!(snaps.len() >= 3, "{} snapshots", snaps.len());
    assert!(snaps.windows(2).all(|w| w[0].elapsed <= w[1].elapsed && w[0].sent <= w[1].sent));
    let last = snaps.last().unwrap();
    assert_eq!((last.sent, last.ok, last.in_flight, last.queued), (t.sent, t.ok, 0, 0));
    assert_eq!(last.dispatched, planned);
    assert!(snaps.iter().any(|s| s.lag_p99_recent.is_some()));
}

#[test]
fn same_seed_sends_the_same_requests() {
    let a = TestServer::start(Behaviour::Healthy, 64);
    let b = TestServer::start(Behaviour::Healthy, 64);
    let s = spec(800.0, 400, 3);
    run(&s, &targets(&s, a.addr));
    run(&s, &targets(&s, b.addr));
    let seen = |srv: &TestServer| srv.stats.by_tenant_op.lock().unwrap().clone();
    assert_eq!(seen(&a), seen(&b));
}

#[test]
fn tenants_on_separate_endpoints_reach_their_own() {
    let a = TestServer::start(Behaviour::Healthy, 64);
    let b = TestServer::start(Behaviour::Healthy, 64);
    let s = spec(600.0, 500, 2);
    let mut t = targets(&s, a.addr);
    t[1].endpoint = isobench_core::backend::Endpoint::Http(b.addr);
    let (r, _) = run(&s, &t);
    check_invariants(&r);
    let count = |srv: &TestServer, tenant: &str| Op::ALL.iter().map(|op| srv.stats.count(tenant, *op)).sum::<u64>();
    assert!(count(&a, "t0") > 0 && count(&b, "t1") > 0);
    assert_eq!((count(&a, "t1"), count(&b, "t0")), (0, 0), "no request went to the other tenant's endpoint");
    assert_eq!(r.by_tenant("t0").ok, count(&a, "t0"));
    assert_eq!(r.by_tenant("t1").ok, count(&b, "t1"));
}

#[test]
fn missing_target_and_invalid_spec_are_errors() {
    let s = spec(100.0, 100, 2);
    let cancel = AtomicBool::new(false);
    let mut t = targets(&s, "127.0.0.1:9".parse().unwrap());
    t.pop();
    let e = isobench_load::run(&s, &t, None, &cancel, &mut |_| {}).unwrap_err();
    assert!(matches!(&e, LoadError::MissingTarget { tenant } if tenant == "t1"), "{e}");

    let bad = isobench_load::LoadSpec { rate: 0.0, ..s.clone() };
    let e =
        isobench_load::run(&bad, &targets(&s, "127.0.0.1:9".parse().unwrap()), None, &cancel, &mut |_| {}).unwrap_err();
    assert!(matches!(e, LoadError::InvalidSpec { field: "rate", .. }), "{e}");
}
