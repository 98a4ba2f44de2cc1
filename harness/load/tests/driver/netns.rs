use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};

use isobench_testkit::netns;
use isobench_testkit::root::{skip, test_name};

use crate::util::{Behaviour, TestServer, check_invariants, planned, spec, targets};

#[test]
fn connections_are_opened_inside_the_given_namespace() {
    let ns = match netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            skip(
                &test_name(module_path!()),
                &format!("cannot create a network namespace ({e}); run as root to test this"),
            );
            return;
        }
    };
    let listener = netns::in_netns(&ns, || TcpListener::bind("127.0.0.1:0")).expect("bind inside the namespace");
    let server = TestServer::on(listener, Behaviour::Healthy, 64);
    let s = spec(500.0, 400, 3);
    let t = targets(&s, server.addr);
    let cancel = AtomicBool::new(false);

    let r = isobench_load::run(&s, &t, Some(&ns), &cancel, &mut |_| {}).unwrap();
    check_invariants(&r);
    assert_eq!(r.totals.ok, planned(&s), "{:?}", r.totals);
    assert_eq!(server.stats.requests.load(Ordering::Relaxed), planned(&s));

    // Negative control: from the host namespace the same address does not reach the server.
    let r = isobench_load::run(&s, &t, None, &cancel, &mut |_| {}).unwrap();
    check_invariants(&r);
    assert_eq!(server.stats.requests.load(Ordering::Relaxed), planned(&s), "the host reached the namespace");
    // The calling thread itself never moved.
    let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let init = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(own, init);
}
