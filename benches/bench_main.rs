//! `cargo bench`: one harness naming the benchmark groups of every crate.

use criterion::criterion_main;

mod benchmarks {
    /// isobench-aws: deploy and teardown of one tenant's resources against LocalStack.
    pub mod aws;
    /// isobench-load: schedule generation and completion recording.
    pub mod load;
}

criterion_main!(benchmarks::load::schedule, benchmarks::load::record, benchmarks::aws::aws);
