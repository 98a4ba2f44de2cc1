use std::path::Path;

use isobench_results::{SCHEMA_FILE, summary_schema};
use isobench_testkit::scenario::repo_root;

/// The schema as committed: pretty JSON with a final newline.
fn generated() -> String {
    serde_json::to_string_pretty(&summary_schema()).unwrap() + "\n"
}

/// Checks `summary` against the committed schema, listing every violation.
pub fn assert_valid_summary(summary: &Path) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join(SCHEMA_FILE)).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the committed schema compiles");
    let text = std::fs::read_to_string(summary).unwrap_or_else(|e| panic!("{}: {e}", summary.display()));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{} does not match {SCHEMA_FILE}:\n{}", summary.display(), errors.join("\n"));
}

#[test]
fn committed_schema_matches_the_types() {
    let path = repo_root().join(SCHEMA_FILE);
    let want = generated();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{SCHEMA_FILE} differs from what the types in harness/results generate.\n\
         If the change is intended (and follows the compatibility rule in results/README.md), regenerate it with:\n  \
         UPDATE_SCHEMA=1 cargo test --test integration schema::committed_schema_matches_the_types"
    );
}

#[test]
fn committed_bench_summaries_match_the_schema() {
    let bench = repo_root().join("results/bench");
    let mut n = 0;
    for dir in std::fs::read_dir(&bench).unwrap().flatten() {
        let summary = dir.path().join("summary.json");
        if summary.exists() {
            assert_valid_summary(&summary);
            n += 1;
        }
    }
    assert!(n >= 2, "expected the committed bench runs under {}", bench.display());
}

#[test]
fn schema_rejects_a_broken_summary() {
    // The check must be able to fail: a summary with a tier missing its traffic is refused.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("results/bench/leakage/summary.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["tiers"][0].as_object_mut().unwrap().remove("traffic");
    v["status"] = "finished".into();
    let p = dir.path().join("summary.json");
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    let r = std::panic::catch_unwind(|| assert_valid_summary(&p));
    let msg = *r.expect_err("a broken summary must fail validation").downcast::<String>().unwrap();
    assert!(msg.contains("traffic") && msg.contains("finished"), "{msg}");
}

#[test]
fn committed_sweep_schema_matches_the_types() {
    use isobench_results::sweep::SWEEP_SCHEMA_FILE;
    let path = repo_root().join(SWEEP_SCHEMA_FILE);
    let want = serde_json::to_string_pretty(&isobench_results::sweep_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{SWEEP_SCHEMA_FILE} differs from what the types in harness/results/src/sweep.rs generate; regenerate it with:\n  \
         UPDATE_SCHEMA=1 cargo test --test integration schema::committed_sweep_schema_matches_the_types"
    );
}
