//! The sample tenant workload of isobench: a small multi-tenant API (records and CPU work per
//! tenant) that keeps per-process state the way real services do — an in-memory cache and temp
//! files — so the harness's leakage probes have a realistic target and its load driver a
//! realistic latency.
//!
//! The business logic lives in [`handler`], which knows nothing about its front end; [`http`]
//! is the HTTP/1.1 front end and [`lambda`] the Lambda Runtime API front end over the same
//! handler, so one binary serves an instance, a task and a Lambda function alike. The crate
//! deliberately does not depend on the harness crates: it is shipped alone (an instance's binary,
//! a Lambda `bootstrap`).
//!
//! With `--probes`, [`probe`] adds the probe agent: operations that act as a compromised or
//! buggy tenant would (plant a canary in a channel, sweep a channel for other tenants'
//! canaries), which is how the harness measures leakage between tenants.

pub mod cli;
pub mod compute;
pub mod fault;
pub mod handler;
pub mod http;
pub mod identity;
pub mod ids;
pub mod lambda;
pub mod lambda_env;
pub mod probe;
pub mod response;
pub mod route;
pub mod store;
