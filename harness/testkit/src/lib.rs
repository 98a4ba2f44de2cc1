//! What isobench's integration tests share. The emulator's tests (`harness/local`), the CLI's
//! end-to-end tests, the workload's (`tenant-app`) and the load driver's each grew their own
//! copies of the same helpers: is this process root, enter a network namespace and probe HTTP
//! from inside it, wait for a process or a condition, read a pid's namespaces and cgroups, list
//! what a run left on the host. They live here once, so a fix (or a change of policy, such as
//! failing instead of skipping under CI, as it now does) is one edit.
//!
//! The main choice: every check reads the kernel's own view (`/proc/<pid>/...`, cgroup files,
//! `mountinfo`, a raw socket from inside a namespace) and never a backend's bookkeeping, so a
//! test proves what the kernel lets through. For the same reason the crate depends on no isobench
//! crate: any crate, the shipped-alone workload included, can take it as a dev-dependency.
//! What only one crate's tests need (building a `LocalBackend`, the load tests' scripted
//! function, the workload's server wrapper) stays in that crate's test `util` module.
//!
//! One module per concern:

/// Cgroup hierarchies and a process's cgroup directories.
pub mod cgroup;
/// Plain HTTP/1.1 over a raw socket, from this thread's namespace or another's.
pub mod http;
/// What a run left on the host: cgroups, processes, its lock, staged files, pinned namespaces.
pub mod leftovers;
/// Mutations of TOML files for the parsers' property tests.
pub mod mutate;
/// Running code inside a network namespace, and what the kernel shows of one.
pub mod netns;
/// Loopback listeners, free ports and addresses where nothing listens.
pub mod ports;
/// What `/proc` says of a process: alive, running, namespaces, status, environment, sockets.
pub mod process;
/// Root checks and the skip policy ([`needs_root!`], [`root::skip`]: a failure under CI).
pub mod root;
/// The repository's paths and scenario files written for a test.
pub mod scenario;
/// Polling with a deadline: a condition, a value, a child's exit.
pub mod wait;
