use std::path::{Path, PathBuf};

use isobench_testkit::scenario::{self, repo_root};
use serde_json::Value;

use crate::util::*;

/// A real summary (the committed leakage run), costed with the built-in prices.
fn costed_summary() -> Value {
    let text = std::fs::read_to_string(repo_root().join("results/bench/leakage/summary.json")).unwrap();
    let mut s: isobench_results::Summary = serde_json::from_str(&text).unwrap();
    let pricing = isobench_cost::Pricing::built_in("us-east-1").unwrap();
    for t in &mut s.tiers {
        let shape = isobench_cost::TierShape::from_effective(&s.scenario.effective, &t.tier).unwrap();
        t.cost = Some(isobench_cost::cost_of_tier(t, &shape, &pricing).unwrap());
    }
    s.pricing = Some(pricing.info);
    serde_json::to_value(s).unwrap()
}

/// Writes `s` as `dir/name/summary.json` and returns the directory.
fn write_run(dir: &Path, name: &str, s: &Value) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("summary.json"), serde_json::to_vec_pretty(s).unwrap()).unwrap();
    d
}

fn tier<'a>(s: &'a mut Value, id: &str) -> &'a mut Value {
    s["tiers"].as_array_mut().unwrap().iter_mut().find(|t| t["tier"] == id).unwrap()
}

/// Runs `isobench compare base new extra...`: (exit code, stdout, stderr).
fn compare(base: &Value, new: &Value, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (b, n) = (write_run(dir.path(), "base", base), write_run(dir.path(), "new", new));
    let out = isobench().arg("compare").arg(&b).arg(n.join("summary.json")).args(extra).output().unwrap();
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// A latency as the diff prints it.
fn us(v: f64) -> String {
    if v < 1000.0 { format!("{v:.0} µs") } else { format!("{:.2} ms", v / 1e3) }
}

#[test]
fn an_identical_run_passes() {
    let s = costed_summary();
    let (code, out, err) = compare(&s, &s, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("**Result: pass**"), "{out}");
    assert!(out.contains("| monthly cost | $29.95 | $29.95 | +0.0% | ≤ +10% | ok |"), "{out}");
}

#[test]
fn a_slower_p99_fails_and_the_diff_names_the_cell() {
    let base = costed_summary();
    let mut new = base.clone();
    let p99 = &mut tier(&mut new, "shared-ec2")["latency"]["corrected"]["p99_us"];
    let was = p99.as_f64().unwrap();
    *p99 = Value::from(was * 2.0);
    let (code, out, err) = compare(&base, &new, &[]);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(out.contains("**Result: REGRESSION** (1 check(s) failed)"), "{out}");
    let (b, n) = (us(was), us(was * 2.0));
    assert!(out.contains(&format!("- shared-ec2: p99 (corrected) {b} → {n} (+100.0%")), "{out}");
    let section = out.split("## shared-ec2").nth(1).unwrap();
    assert!(
        section.contains(&format!("| p99 (corrected) | {b} | {n} | +100.0% | ≤ +10% or < 50 µs | **REGRESSION** |")),
        "{out}"
    );
    assert!(err.contains("regression against the baseline: 1 check(s) failed"), "{err}");
    // A looser threshold for that tier, from a file, lets it pass.
    let dir = tempfile::tempdir().unwrap();
    let th =
        scenario::write(dir.path(), "t.toml", "format_version = 1\n[tier.shared-ec2]\nmax_p99_increase = \"150%\"\n");
    let (code, out, _) = compare(&base, &new, &["--thresholds", th.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_new_leak_fails() {
    let base = costed_summary();
    let mut new = base.clone();
    let cell = &mut tier(&mut new, "silo-ec2")["probes"][0];
    assert_eq!(cell["verdict"], "blocked");
    cell["verdict"] = "leak".into();
    cell["hits"] = 3.into();
    let (code, out, err) = compare(&base, &new, &[]);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(out.contains("- silo-ec2: probe LK-TMP blocked → leak (new leak"), "{out}");
    assert!(
        out.contains(
            "| probe LK-TMP | blocked | leak | new leak | no new leak, risk or inconclusive | **REGRESSION** |"
        ),
        "{out}"
    );
}

#[test]
fn a_higher_cost_fails() {
    let base = costed_summary();
    let mut new = base.clone();
    let c = &mut tier(&mut new, "lambda-shared")["cost"];
    for k in ["monthly_usd", "per_million_requests_usd"] {
        c[k] = Value::from(c[k].as_f64().unwrap() * 1.25);
    }
    let (code, out, err) = compare(&base, &new, &[]);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(out.contains("- lambda-shared: monthly cost"), "{out}");
    assert!(out.contains("(+25.0%; threshold ≤ +10%)"), "{out}");
    let (code, out, _) = compare(&base, &new, &["--max-cost-increase", "30%"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn bad_input_exits_2() {
    let s = costed_summary();
    let (code, _, err) = compare(&s, &s, &["--max-p99-increase", "10"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no `%`"), "{err}");
    let mut other = s.clone();
    other["schema_version"] = 2.into();
    let (code, _, err) = compare(&s, &other, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("schema version 2 cannot be compared by this build (schema 1)"), "{err}");
    let out = isobench().args(["compare", "does/not/exist", "results/bench/leakage"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does/not/exist: cannot read"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let th = scenario::write(dir.path(), "t.toml", "format_version = 1\n[default]\nmax_p99 = \"5%\"\n");
    let (code, _, err) = compare(&s, &s, &["--thresholds", th.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("t.toml:3: unknown field `max_p99`"), "{err}");
}

/// The committed baseline stays readable by this build (refresh it when the schema changes).
#[test]
fn the_committed_baseline_compares_with_itself() {
    let out = isobench()
        .args(["compare", "results/baselines/quick", "results/baselines/quick/summary.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("| monthly cost |"), "the baseline is costed: {}", stdout(&out));
    crate::schema::assert_valid_summary(&repo_root().join("results/baselines/quick/summary.json"));
}

#[test]
fn a_changed_scenario_and_a_high_error_share_fail_unless_the_flags_allow_them() {
    let base = costed_summary();
    let mut new = base.clone();
    new["scenario"]["hash"] = "0".repeat(64).into();
    let (code, out, _) = compare(&base, &new, &[]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("the scenarios differ") && out.contains("--allow-scenario-change"), "{out}");
    let (code, out, _) = compare(&base, &new, &["--allow-scenario-change"]);
    assert_eq!(code, 0, "{out}");

    let mut new = base.clone();
    let t = tier(&mut new, "shared-ec2");
    let sent = t["traffic"]["sent"].as_u64().unwrap();
    t["traffic"]["errors"] = (sent / 50).into();
    let (code, out, _) = compare(&base, &new, &[]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("- shared-ec2: error share"), "{out}");
    let (code, out, _) = compare(&base, &new, &["--max-error-share", "5%"]);
    assert_eq!(code, 0, "{out}");
}
