//! `cargo bench`: one harness naming the benchmark groups of every crate.

use criterion::criterion_main;

mod benchmarks {
    /// isobench-aws: deploy and teardown of one tenant's resources against LocalStack.
    pub mod aws;
    /// Per-tier request and invoke latency on the local emulator, warm and cold (needs root).
    pub mod invoke;
    /// isobench-load: schedule generation and completion recording.
    pub mod load;
}

criterion_main!(benchmarks::load::schedule, benchmarks::load::record, benchmarks::invoke::invoke, benchmarks::aws::aws);
