//! Integration tests of the load driver against real HTTP servers on 127.0.0.1 and scripted
//! function endpoints.

/// Test servers, spec builders and the invariants every report must satisfy.
mod util;

/// Cancellation stops promptly and keeps the accounting intact.
mod cancel;
/// Servers that fail: 5xx, 4xx, stalls past the timeout, closed connections, non-HTTP, refused.
mod faults;
/// Function targets through a scripted `Invoke`: events, classification, cold/warm, in-flight caps.
mod function;
/// A healthy server: everything ok, every count adds up and matches what the server saw.
mod healthy;
/// Connections opened from inside another network namespace (root only).
mod netns;
/// A generator that cannot keep up: queueing shows in lag and corrected latency.
mod queueing;
