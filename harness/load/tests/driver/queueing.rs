use std::time::Duration;

use isobench_load::{Arrival, LoadSpec};

use crate::util::{Behaviour, TestServer, check_invariants, planned, run, spec, targets};

#[test]
fn a_saturated_pool_shows_up_as_lag_and_corrected_latency_and_as_the_wait_for_a_connection() {
    // One connection to a server that takes 5 ms per request can carry ~200 req/s; offer 400.
    let server = TestServer::start(Behaviour::Slow(Duration::from_millis(5)), 64);
    let s = LoadSpec {
        max_connections: 1,
        arrival: Arrival::Constant,
        timeout: Duration::from_secs(5),
        ..spec(400.0, 1_000, 2)
    };
    let (r, snaps) = run(&s, &targets(&s, server.addr));
    check_invariants(&r);
    assert_eq!(r.connections_opened, 1);
    let t = &r.totals;
    assert_eq!(t.sent + t.not_sent, planned(&s));
    assert_eq!(t.sent, t.ok, "{t:?}");
    let all = r.merged();
    let ms = |ns: u64| ns as f64 / 1e6;
    let (c99, u99, l99) = (
        all.corrected.value_at_quantile(0.99),
        all.uncorrected.value_at_quantile(0.99),
        all.lag.value_at_quantile(0.99),
    );
    // The server answers each request in ~5 ms, but requests waited ever longer in the
    // generator's queue: a closed-loop measurement would hide that wait entirely.
    assert!(u99 < 100_000_000, "uncorrected p99 {:.1} ms", ms(u99));
    assert!(c99 > 300_000_000, "corrected p99 {:.1} ms", ms(c99));
    assert!(l99 > 300_000_000, "lag p99 {:.1} ms", ms(l99));
    // That lag is the server holding the one connection, not the generator: the split says so.
    let (w99, o99) = (all.connection_wait().value_at_quantile(0.99), all.own_lag().value_at_quantile(0.99));
    assert!(w99 > 300_000_000, "connection wait p99 {:.1} ms", ms(w99));
    assert!(o99 * 10 < w99, "own lag p99 {:.1} ms against a wait of {:.1} ms", ms(o99), ms(w99));
    assert!(snaps.iter().any(|s| s.queued > 10), "the backlog is visible in progress");
    // What went on the wire within the window is what one connection carries, not the plan;
    // the backlog sent after the window does not count.
    assert!(r.achieved_rate < 0.7 * s.rate, "achieved {:.1} of {} req/s", r.achieved_rate, s.rate);
    assert!(r.achieved_rate > 100.0, "achieved {:.1} req/s", r.achieved_rate);
    assert!(r.ok_rate <= r.achieved_rate + 1.0, "ok {:.1}, achieved {:.1}", r.ok_rate, r.achieved_rate);
    assert!(t.sent_in_window < t.sent, "{t:?}");
}
