use std::sync::atomic::Ordering;
use std::time::Duration;

use isobench_load::{ErrorKind, LoadSpec};
use isobench_testkit::ports::closed_addr;

use crate::util::{Behaviour, Raw, TestServer, check_invariants, planned, run, spec, targets};

#[test]
fn server_errors_are_counted_by_kind() {
    let server = TestServer::start(Behaviour::ErrorEvery(4), 64);
    let s = spec(800.0, 600, 3);
    let (r, _) = run(&s, &targets(&s, server.addr));
    check_invariants(&r);
    let injected = server.stats.injected_500.load(Ordering::Relaxed);
    let t = &r.totals;
    assert_eq!(t.sent, planned(&s));
    assert!(injected > 50, "{injected}");
    assert_eq!(t.errors.get(&ErrorKind::Http5xx).copied(), Some(injected));
    assert_eq!(t.errors_total(), injected, "{:?}", t.errors);
    assert_eq!(t.ok, t.sent - injected);
    assert_eq!(r.merged().corrected.len(), t.ok, "an error is never a latency sample");
    // A 5xx does not break the connection: nothing was reconnected for it.
    assert!(r.connections_opened <= 16, "{}", r.connections_opened);
}

#[test]
fn client_errors_are_http_4xx() {
    let server = TestServer::start(Behaviour::BadRequestEvery(5), 64);
    let s = spec(500.0, 400, 2);
    let (r, _) = run(&s, &targets(&s, server.addr));
    check_invariants(&r);
    let injected = server.stats.injected_400.load(Ordering::Relaxed);
    assert!(injected > 0);
    assert_eq!(r.totals.errors.get(&ErrorKind::Http4xx).copied(), Some(injected));
    assert_eq!(r.totals.errors_total(), injected);
}

#[test]
fn success_statuses_with_an_error_document_are_error_body() {
    let server = TestServer::start(Behaviour::ErrorBodyEvery(3), 64);
    let s = spec(600.0, 500, 2);
    let (r, _) = run(&s, &targets(&s, server.addr));
    check_invariants(&r);
    let injected = server.stats.injected_error_body.load(Ordering::Relaxed);
    assert!(injected > 50, "{injected}");
    assert_eq!(r.totals.errors.get(&ErrorKind::ErrorBody).copied(), Some(injected));
    assert_eq!(r.totals.errors_total(), injected, "JSON success bodies without `error` are ok: {:?}", r.totals.errors);
    assert_eq!(r.merged().corrected.len(), r.totals.ok, "an error is never a latency sample");
}

#[test]
fn stalls_beyond_the_timeout_are_timeouts_not_latency() {
    let server = TestServer::start(Behaviour::StallEvery(5, Duration::from_secs(5)), 64);
    let s = LoadSpec { timeout: Duration::from_millis(250), ..spec(200.0, 600, 2) };
    let (r, _) = run(&s, &targets(&s, server.addr));
    check_invariants(&r);
    let stalled = server.stats.stalled.load(Ordering::Relaxed);
    let t = &r.totals;
    assert_eq!(t.sent, planned(&s));
    assert!(stalled >= 10, "{stalled}");
    assert_eq!(t.timeouts, stalled, "{t:?}");
    assert_eq!(t.errors_total(), 0, "{t:?}");
    let all = r.merged();
    assert_eq!(all.corrected.len(), t.ok);
    assert!(all.uncorrected.max() < 250_000_000, "a timeout leaked into the latency: {}", all.uncorrected.max());
    // Each timed-out connection was dropped and replaced by a new one.
    assert!(r.connections_opened > stalled, "{} connections for {stalled} timeouts", r.connections_opened);
    // The run waited for the last timeouts but not for the stalls themselves.
    assert!(r.wall < Duration::from_secs(3), "{:?}", r.wall);
}

#[test]
fn connections_closed_mid_response_are_io_errors() {
    let server = TestServer::start(Behaviour::CloseMidResponseEvery(3), 64);
    let s = spec(600.0, 500, 2);
    let (r, _) = run(&s, &targets(&s, server.addr));
    check_invariants(&r);
    let closed = server.stats.closed_mid_response.load(Ordering::Relaxed);
    assert!(closed > 20, "{closed}");
    assert_eq!(r.totals.errors.get(&ErrorKind::Io).copied(), Some(closed), "{:?}", r.totals);
    assert_eq!(r.totals.errors_total(), closed);
    assert_eq!(r.totals.ok, r.totals.sent - closed);
}

#[test]
fn connections_closed_before_any_answer_are_io_errors() {
    let server = TestServer::raw(Raw::CloseAfterHead);
    let s = spec(300.0, 400, 2);
    let (r, _) = run(&s, &targets(&s, server.addr));
    check_invariants(&r);
    let t = &r.totals;
    assert!(t.sent > 50);
    assert_eq!(t.errors.get(&ErrorKind::Io).copied(), Some(t.sent), "{t:?}");
    assert_eq!(server.stats.requests.load(Ordering::Relaxed), t.sent);
}

#[test]
fn answers_that_are_not_http_are_protocol_errors() {
    let server = TestServer::raw(Raw::Garbage);
    let s = spec(300.0, 400, 2);
    let (r, _) = run(&s, &targets(&s, server.addr));
    check_invariants(&r);
    let t = &r.totals;
    assert!(t.sent > 50);
    assert_eq!(t.errors.get(&ErrorKind::Protocol).copied(), Some(t.sent), "{t:?}");
}

#[test]
fn refused_connections_are_connect_errors() {
    // A port that was just free: nothing listens there.
    let addr = closed_addr();
    let s = spec(500.0, 400, 3);
    let (r, _) = run(&s, &targets(&s, addr));
    check_invariants(&r);
    let t = &r.totals;
    assert_eq!(t.sent, planned(&s));
    assert_eq!(t.errors.get(&ErrorKind::Connect).copied(), Some(t.sent), "{t:?}");
    assert_eq!(r.connections_opened, 0);
}

#[test]
fn a_panicking_connection_task_is_a_panic_error_not_a_hang() {
    let server = TestServer::start(Behaviour::Healthy, 64);
    let s = LoadSpec {
        hooks: isobench_load::TestHooks { panic_on_request: Some(20), ..Default::default() },
        ..spec(400.0, 500, 2)
    };
    let t0 = std::time::Instant::now();
    let (r, _) = run(&s, &targets(&s, server.addr));
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
    check_invariants(&r);
    let t = &r.totals;
    assert_eq!(t.sent, planned(&s));
    assert_eq!(t.errors.get(&ErrorKind::Panic).copied(), Some(1), "{t:?}");
    assert_eq!(t.ok, t.sent - 1, "{t:?}");
    assert_eq!(t.abandoned, 0, "the task went on serving: {t:?}");
}

#[test]
fn a_dropped_completion_breaks_the_dispatched_identity() {
    let server = TestServer::start(Behaviour::Healthy, 64);
    let s = LoadSpec {
        hooks: isobench_load::TestHooks { drop_completion: true, ..Default::default() },
        ..spec(300.0, 300, 2)
    };
    let (r, _) = run(&s, &targets(&s, server.addr));
    let t = &r.totals;
    assert_eq!(t.dispatched, planned(&s), "counted by the scheduler: {t:?}");
    assert_eq!(t.sent + t.not_sent + 1, t.dispatched, "one request is missing: {t:?}");
    assert!(!t.dispatched_accounted());
    assert_eq!(r.per.values().filter(|s| !s.dispatched_accounted()).count(), 1, "in exactly one (tenant, op)");
    assert!(t.identity_holds(), "sent == ok + errors + timeouts cannot see the loss: {t:?}");
}
