//! Integration tests of the local emulator, on the real kernel. Each test skips (with a
//! message, by `isobench_testkit`'s skip policy) unless it runs as root; tests run in parallel,
//! each under its own run id, and never sweep another test's run.
//!
//! The workload is the sample `tenant-app`: `$ISOBENCH_WORKLOAD` if set, else `tenant-app` in
//! the target directory of this test's `isobench-sandbox`. Build it first, with the same target
//! directory: `cargo build -p tenant-app && cargo test -p isobench-local` (or
//! `cargo test --workspace`, which builds it anyway).

/// This crate's helpers: binaries, run ids, backends and plans, the workload's `/whoami`. What
/// every crate's tests share (root checks, namespaces, `/proc`, cgroups, leftovers) is
/// `isobench_testkit`.
mod util;

/// Bring-your-own functions through runtime clients this project did not write (Rust
/// `lambda_runtime`, Python `awslambdaric`): any payload is ok, errors by kind, tenant ids.
mod byo;
/// EC2 tiers: security groups and instance roles (IMDS) from inside the instances; the
/// `shared-tmp` isolation fault; timing.
mod ec2;
/// `ecs-awsvpc` networking: security groups from inside the tasks, routes, teardown, sweep, timing.
mod ecs;
/// `ecs-awsvpc` task-role credentials and the container instance's IMDS, from inside the tasks.
mod ecs_metadata;
/// Helpers for the `ecs-awsvpc` tests: plans from the shipped scenarios, metadata documents.
mod ecs_util;
/// `eks-pod`: pods behind their nodes, network policies, IMDS through the node, teardown.
mod eks;
/// The Lambda tiers: environment reuse, concurrency, keep-alive, tenant isolation mode, the
/// environment's view, freezing, crashes and timeouts, bring-your-own code, teardown, sweep.
mod lambda;
/// The Lambda environments' network: egress to the run's internet only, no inbound, teardown.
mod lambda_net;
/// The Lambda lifecycle: INIT retried past 10 s, the request limit, billing to the freeze.
mod lifecycle;
/// cgroup limits, freezing and CPU accounting, read back from the kernel.
mod limits;
/// `shared-ec2`: every tenant answered by one process.
mod shared;
/// `silo-ec2`: one instance per tenant, each in its own namespaces, address, uid and `/tmp`.
mod silo;
/// Response streaming: the first byte's instant in the invoke result, time to first byte in the
/// load driver.
mod streaming;
/// Sweep after a simulated crash, dry runs, live runs, and a second sweep finding nothing.
mod sweep;
/// Teardown (explicit and on drop) leaves nothing on the host, whose network is never touched.
mod teardown;
/// Instance start time, measured and printed.
mod timing;
/// Without privileges the backend refuses up front with a plain reason.
mod unprivileged;
