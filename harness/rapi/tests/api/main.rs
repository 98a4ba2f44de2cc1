//! Integration tests of the Runtime API server over real loopback sockets.

/// Every endpoint and error path, driven by a plain HTTP/1.1 client.
mod conformance;
/// The Extensions API (`2020-01-01`): register, events, errors, INIT and SHUTDOWN with extensions.
mod extensions;
/// The freeze point (`wait_parked`) and billing to it.
mod freeze;
/// The real `lambda_runtime` crate, as a child process running `examples/echo_runtime.rs`.
mod lambda_runtime_client;
/// Warm-invoke overhead against a raw HTTP round trip (`#[ignore]`; run with `--release`).
mod latency;
/// Streamed responses (time to first byte, error trailers, the streamed limit).
mod streaming;
/// Plain HTTP client, server start-up and paths.
mod util;
