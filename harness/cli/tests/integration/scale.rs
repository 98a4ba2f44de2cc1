//! The scale run, reduced for CI: 200 tenants on `silo-ec2` (200 instances) and
//! `lambda-per-tenant` (200 functions, 200 cold starts). The full 1,000-tenant run is
//! `scenarios/scale-1000.toml` (results in `results/bench/scale-1000/`): 3.6 minutes on the
//! 2-core host (release build), over CI's budget for one test; this one takes under a minute.

use isobench_testkit::{leftovers, needs_root, scenario};

use crate::local_run::{assert_all_balanced, histogram_counts, tier};
use crate::util::*;

const TENANTS: usize = 200;

fn scale_scenario() -> String {
    format!(
        r#"format_version = 1
name = "scale-ci"

[run]
duration = "5s"
rate = "400"             # ~2 requests/s per tenant: every tenant gets traffic
arrival = "poisson"
timeout = "10s"          # 200 cold starts queue on the emulator's one spawner thread
seed = 3
max_connections = 2      # = the functions' concurrency: invokes wait in the generator, not throttled

[tenants]
count = {TENANTS}

[[tier]]
id = "silo-ec2"
instance_type = "t3.micro"

[[tier]]
id = "lambda-per-tenant"
memory = 128
timeout = "10s"
keep_alive = "60s"
concurrency = 2
"#
    )
}

#[test]
fn two_hundred_tenants_are_all_served_accounted_and_cleaned_up() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "scale.toml", &scale_scenario());
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).arg("--out").arg(&out_dir).output().unwrap();
    let s = read_summary(&out_dir);
    if let Some(run_id) = s["run_id"].as_str() {
        assert_eq!(leftovers::of_run(run_id), Vec::<String>::new(), "nothing is left behind");
    }
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nstdout: {}", stderr(&out), stdout(&out));
    assert_eq!(s["status"], "complete");
    assert_all_balanced(&s);

    for name in ["silo-ec2", "lambda-per-tenant"] {
        let t = tier(&s, name);
        let per_tenant = t["per_tenant"].as_array().unwrap();
        assert_eq!(per_tenant.len(), TENANTS, "{name}: one section per tenant");
        // Every tenant was served at least once: on lambda-per-tenant that is one cold start per
        // function. (Throttles while 200 cold starts queue on 2 cores are Lambda's behaviour,
        // counted as errors, not a failure of the run.)
        let unserved: Vec<&str> = per_tenant
            .iter()
            .filter(|p| p["traffic"]["ok"].as_u64().unwrap() == 0)
            .map(|p| p["tenant"].as_str().unwrap())
            .collect();
        assert!(unserved.is_empty(), "{name}: tenants never served: {unserved:?}");
        let ok = t["traffic"]["ok"].as_u64().unwrap();
        // The lazily allocated per-tenant histograms still hold every sample.
        assert_eq!(histogram_counts(&out_dir, name, "corrected"), ok, "{name}");
        assert_eq!(histogram_counts(&out_dir, name, "lag"), t["traffic"]["sent"].as_u64().unwrap(), "{name}");

        let f = &t["footprint"];
        let per_unit = f["memory_per_unit_bytes"].as_u64().unwrap_or_else(|| panic!("{name}: {f}"));
        // A namespaced instance or a frozen environment holds about a megabyte here; 64 MiB
        // each would mean a leak or a limit not applied.
        assert!(per_unit > 0 && per_unit < 64 << 20, "{name}: {per_unit} bytes per unit");
        assert!(f["deploy_ms"].as_f64().unwrap() > 0.0 && f["teardown_ms"].as_f64().unwrap() > 0.0, "{name}: {f}");
    }
    let silo = tier(&s, "silo-ec2");
    assert_eq!(silo["instances"].as_array().unwrap().len(), TENANTS);
    assert_eq!(silo["footprint"]["units"], TENANTS as u64);
    let lambda = tier(&s, "lambda-per-tenant");
    let created = lambda["environments"]["created"].as_u64().unwrap();
    assert!(created >= TENANTS as u64, "one environment per function at least: {created}");
    assert!(lambda["functions"]["cold"].as_u64().unwrap() >= TENANTS as u64, "{}", lambda["functions"]);

    // The harness's own memory is recorded; with one eagerly allocated histogram set per
    // (tenant, operation) these 200 tenants took ~1 GB, lazily they take tens of MB.
    let peak = s["harness"]["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak > 0 && peak < 400 << 20, "harness peak RSS {peak} bytes");

    // The report summarizes 200 tenants instead of printing a row each.
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains(&format!("{TENANTS} tenants: requests sent per tenant")), "{report}");
    let rows = report.lines().filter(|l| l.starts_with("| tenant-")).count();
    assert!(rows <= 2 * 10, "{rows} tenant rows in the report");
    assert!(stdout(&out).contains("harness: peak RSS"), "{}", stdout(&out));
}
