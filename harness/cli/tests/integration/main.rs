//! End-to-end tests of the `isobench` command, run as a user would run it.

/// Headless Chromium over the DevTools protocol (pipe), for the HTML report tests.
mod cdp;
mod util;

/// `run --agents N` on the local emulator (root): N agents plan the 1-agent requests, a killed
/// agent is named and its unsent requests counted, nothing is left.
mod agents;
/// ARCHITECTURE.md's code map names every crate of the workspace, and no other.
mod architecture;
/// The AWS target: `plan` and its guard rails, runs against LocalStack, and `sweep` after a
/// harness killed mid-deploy (feature `aws`).
mod aws;
/// `isobench compare`: identical runs pass; slower, leakier or costlier runs fail with exit 5.
mod compare;
/// Costs recomputed by hand from summary.json and the pricing file; missing or bad prices are bad input.
mod cost;
/// `--target endpoints` against a workload running on loopback (no root needed).
mod endpoints;
/// `isobench explore`: bad matrices refused, a killed sweep resumed without redoing finished points.
mod explore;
/// The fault-injection suite: killed workloads and harness, stalls, blackholes, error budget, exit codes.
mod faults;
/// report.html in headless Chromium: every chart drawn, no request leaves the page.
mod html_report;
/// Full runs on the local emulator (root): results, accounting, teardown, signals.
mod local_run;
/// Leakage probes through the CLI: the matrix against expectations, and the CI gate's exit codes.
mod probes;
/// `--version` and every summary name the commit the harness was built from, and a dirty tree.
mod provenance;
/// `isobench report DIR`: re-rendering, and bad directories refused with exit 2.
mod report_cmd;
/// The scale run reduced for CI: 200 tenants on silo-ec2 and lambda-per-tenant.
mod scale;
/// The committed JSON Schema matches the types, and real summaries match it.
mod schema;
/// Bad scenarios and flags are refused before anything is deployed, with a location and exit 2.
mod validation;
