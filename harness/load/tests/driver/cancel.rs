use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use isobench_load::{ErrorKind, LoadSpec};

use crate::util::{Behaviour, TestServer, check_invariants, spec, targets};

#[test]
fn cancellation_stops_promptly_with_the_identity_intact() {
    let server = TestServer::start(Behaviour::Healthy, 64);
    let s = spec(2_000.0, 30_000, 4);
    let cancel = AtomicBool::new(false);
    let t0 = Instant::now();
    let mut last = None;
    let r = isobench_load::run(&s, &targets(&s, server.addr), None, &cancel, &mut |snap| {
        if snap.elapsed >= Duration::from_millis(300) {
            cancel.store(true, Ordering::Relaxed);
        }
        last = Some(*snap);
    })
    .unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "a 30 s run cancelled at 0.3 s took {took:?}");
    check_invariants(&r);
    assert!(r.cancelled);
    assert!(r.dispatch_window < Duration::from_secs(1), "{:?}", r.dispatch_window);
    let t = &r.totals;
    assert!(t.sent > 200, "{t:?}");
    assert_eq!(t.sent, server.stats.requests.load(Ordering::Relaxed));
    assert_eq!(last.unwrap().dispatched, t.sent + t.not_sent, "every released request is accounted for");
}

#[test]
fn cancellation_aborts_requests_stuck_in_flight() {
    // Every request stalls far beyond a long timeout: cancellation must not wait for it.
    let server = TestServer::start(Behaviour::StallEvery(1, Duration::from_secs(30)), 64);
    let s = LoadSpec { timeout: Duration::from_secs(20), ..spec(50.0, 30_000, 2) };
    let cancel = AtomicBool::new(false);
    let t0 = Instant::now();
    let r = isobench_load::run(&s, &targets(&s, server.addr), None, &cancel, &mut |snap| {
        if snap.elapsed >= Duration::from_millis(300) {
            cancel.store(true, Ordering::Relaxed);
        }
    })
    .unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    check_invariants(&r);
    let t = &r.totals;
    assert!(t.sent > 3, "{t:?}");
    assert_eq!(t.errors.get(&ErrorKind::Aborted).copied(), Some(t.sent), "{t:?}");
}

#[test]
fn a_panicking_progress_callback_does_not_hang_the_run() {
    let server = TestServer::start(Behaviour::Healthy, 64);
    let s = spec(500.0, 30_000, 2);
    let t = targets(&s, server.addr);
    let cancel = AtomicBool::new(false);
    let t0 = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        isobench_load::run(&s, &t, None, &cancel, &mut |_| panic!("progress callback fails"))
    }));
    assert!(r.is_err(), "the panic propagates");
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
}
