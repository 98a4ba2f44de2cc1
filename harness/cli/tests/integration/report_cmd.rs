use std::path::Path;

use isobench_testkit::scenario::repo_root;

use crate::util::*;

fn report(dir: &Path) -> (i32, String, String) {
    let out = isobench().arg("report").arg(dir).output().unwrap();
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// A results directory holding only `summary.json` with the given text.
fn with_summary(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("summary.json"), text).unwrap();
    dir
}

fn leakage_summary() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("results/bench/leakage/summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn rerenders_every_report_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let src = repo_root().join("results/bench/leakage");
    for f in ["summary.json", "histograms.hlog"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let (code, out, err) = report(dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("report.html"), "{out}");
    for f in ["report.md", "report.html", "junit.xml"] {
        assert!(dir.path().join(f).exists(), "{f} written");
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert_eq!(md, std::fs::read_to_string(src.join("report.md")).unwrap(), "same Markdown as the run wrote");
}

#[test]
fn without_histograms_it_says_so_and_still_renders() {
    let dir = with_summary(&leakage_summary().to_string());
    let (code, _, err) = report(dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("histograms.hlog not found"), "{err}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("histogram log was not available"));
}

#[test]
fn missing_directory_is_bad_input() {
    let (code, _, err) = report(Path::new("/nonexistent/isobench-run"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/isobench-run: not a directory"), "{err}");
}

#[test]
fn directory_without_summary_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = report(dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("summary.json"), "{err}");
    assert!(!dir.path().join("report.html").exists());
}

#[test]
fn invalid_json_names_its_line() {
    let dir = with_summary("{\n  \"schema_version\": 1,\n  oops\n}\n");
    let (code, _, err) = report(dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not valid JSON") && err.contains("line 3"), "{err}");
}

#[test]
fn newer_schema_is_refused_clearly() {
    let mut s = leakage_summary();
    s["schema_version"] = 2.into();
    let dir = with_summary(&s.to_string());
    let (code, _, err) = report(dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("schema_version 2 was written by a newer isobench"), "{err}");
}

#[test]
fn summary_missing_a_field_is_refused() {
    let mut s = leakage_summary();
    s["tiers"][0].as_object_mut().unwrap().remove("latency");
    let dir = with_summary(&serde_json::to_string_pretty(&s).unwrap());
    let (code, _, err) = report(dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing field `latency`"), "{err}");
}
