//! End-to-end tests of the `tenant-app` binary: each starts the real server on a free loopback
//! port with its own temp directory and speaks HTTP/1.1 to it over a raw socket, or runs it in
//! Lambda mode against a Runtime API server of its own.

/// Status codes, keep-alive, tenant checks, hygiene and faults over the wire.
mod api;
/// Configuration through flags and `TENANT_APP_*` variables, help and bad input.
mod config;
/// Lambda mode: environment reuse, the invoke's tenant id, both error paths, INIT and its errors.
mod lambda;
/// SIGTERM/SIGINT drain and exit 0, also as PID 1 of a pid namespace.
mod lifecycle;
/// The probe agent (`--probes`): every channel's plant and sweep over HTTP and Lambda, holders
/// dying with the app, beacons between two processes, credentials from stand-in endpoints.
mod probe;
/// A minimal Lambda Runtime API server (`/next`, `/response`, `/error`, `/init/error`).
mod runtime_api;
/// Starting the server (killed on drop) and a minimal HTTP/1.1 keep-alive client.
mod util;
