//! End-to-end tests of the `isobench` command, run as a user would run it.

mod util;

/// The AWS target: `plan` and its guard rails, runs against LocalStack, and `sweep` after a
/// harness killed mid-deploy (feature `aws`).
mod aws;
/// Full runs on the local emulator (root): results, accounting, teardown, signals.
mod local_run;
/// Leakage probes through the CLI: the matrix against expectations, and the CI gate's exit codes.
mod probes;
/// Bad scenarios and flags are refused before anything is deployed, with a location and exit 2.
mod validation;
