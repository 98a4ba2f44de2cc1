//! End-to-end tests of the `isobench` command, run as a user would run it.

mod util;

/// Full runs on the local emulator (root): results, accounting, teardown, signals.
mod local_run;
/// Leakage probes through the CLI: the matrix against expectations, and the CI gate's exit codes.
mod probes;
/// The committed JSON Schema matches the types, and real summaries match it.
mod schema;
/// Bad scenarios and flags are refused before anything is deployed, with a location and exit 2.
mod validation;
