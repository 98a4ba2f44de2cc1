use isobench_testkit::scenario::{self, repo_root};

use crate::util::*;

fn run_scenario(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "bad.toml", text);
    let out = isobench().arg("run").arg(&path).arg("--out").arg(dir.path().join("out")).output().unwrap();
    assert!(!dir.path().join("out").exists(), "nothing may be written for bad input");
    (out.status.code().unwrap_or(-1), stderr(&out))
}

#[test]
fn unknown_field_is_refused_with_its_line() {
    let text = small_scenario("1s", "100", 2, "").replace("seed = 7", "seed = 7\nburst = 3");
    let (code, err) = run_scenario(&text);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:10:1"), "{err}");
    assert!(err.contains("unknown field `burst`"), "{err}");
}

#[test]
fn unknown_tier_lists_the_accepted_ones() {
    let (code, err) = run_scenario(&small_scenario("1s", "100", 2, "").replace("\"shared-ec2\"", "\"shard-ec2\""));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("field `tier[1].id`: unknown tier `shard-ec2`"), "{err}");
    assert!(err.contains("accepted: `silo-ec2`, `shared-ec2`"), "{err}");
}

#[test]
fn impossible_values_are_all_reported() {
    let text = small_scenario("0s", "0", 2, "").replace("timeout = \"1s\"", "timeout = \"0ms\"");
    let (code, err) = run_scenario(&text);
    assert_eq!(code, 2, "{err}");
    for field in ["run.duration", "run.rate", "run.timeout"] {
        assert!(err.contains(&format!("field `{field}`")), "{field} missing in: {err}");
    }
}

#[test]
fn more_tenants_than_addresses() {
    let text = small_scenario("1s", "100", 20, "[local]\nsubnet = \"10.213.7.0/28\"\n");
    let (code, err) = run_scenario(&text);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("field `tenants.count`"), "{err}");
    assert!(err.contains("subnet /28 has only 13"), "{err}");
}

#[test]
fn bad_units_on_the_command_line() {
    let out = isobench().args(["run", "--duration", "30", "scenarios/quick.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the unit is missing"), "{}", stderr(&out));
}

#[test]
fn missing_scenario_file() {
    let out = isobench().args(["run", "does/not/exist.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read the file"), "{}", stderr(&out));
}

#[test]
fn aws_target_without_the_feature_says_how_to_enable_it() {
    if cfg!(feature = "aws") {
        eprintln!("skipping: this build has the aws feature");
        return;
    }
    let out = isobench().args(["run", "--target", "aws", "scenarios/quick.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--features aws"), "{}", stderr(&out));
}

#[test]
fn shipped_scenarios_validate() {
    for entry in std::fs::read_dir(repo_root().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue; // scenarios/traces/
        }
        let out = isobench().arg("validate").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), stderr(&out));
    }
}

#[test]
fn a_bad_trace_row_is_refused_with_its_line_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.csv"),
        "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,2\no,a,g,http,3\n",
    )
    .unwrap();
    let text = small_scenario("1s", "1k", 2, "[arrivals.trace]\nfile = \"t.csv\"\nminute = \"1s\"\n");
    let scn = scenario::write(dir.path(), "s.toml", &text);
    let out = isobench().arg("run").arg(&scn).arg("--out").arg(dir.path().join("out")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("t.csv:3: 5 columns, the header has 6"), "{}", stderr(&out));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn negative_rate_is_refused_with_what_is_accepted() {
    let (code, err) = run_scenario(&small_scenario("1s", "-3", 2, ""));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml:6:"), "{err}");
    assert!(err.contains("must not be negative"), "{err}");
}
