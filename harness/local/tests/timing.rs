use std::time::Duration;

use isobench_core::backend::Backend;
use isobench_core::tier::TierId;
use isobench_testkit::needs_root;

use crate::util::*;

/// Prints the median start time over 20 instances (run alone for clean figures:
/// `cargo test -p isobench-local --test integration timing -- --nocapture`; the example
/// `start_times` does the same outside the test harness).
#[test]
fn instance_start_time_over_20_instances() {
    needs_root!();
    let mut b = backend("timing");
    let d = b.deploy(&plan(b.run_id(), TierId::SiloEc2, 20, "t3.micro")).unwrap();
    let mut starts: Vec<Duration> = d.instances.iter().map(|i| i.start_time).collect();
    starts.sort();
    let median = starts[starts.len() / 2];
    let teardown = b.teardown(TierId::SiloEc2).unwrap();
    println!(
        "instance start over {} instances ({} cgroups): median {:.2} ms, min {:.2} ms, max {:.2} ms; teardown {:.2} ms ({:.2} ms each)",
        starts.len(),
        b.cgroup_layout(),
        ms(median),
        ms(starts[0]),
        ms(starts[starts.len() - 1]),
        ms(teardown.duration),
        ms(teardown.duration) / starts.len() as f64,
    );
    assert!(starts[0] > Duration::ZERO);
    // Loose bounds: other tests share the two cores. Alone the median is single-digit ms.
    assert!(median < Duration::from_millis(500), "median start {median:?}");
    assert!(teardown.left_behind.is_empty(), "{:?}", teardown.left_behind);
}
