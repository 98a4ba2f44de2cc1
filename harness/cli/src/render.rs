//! Writing a run's reports (`report.md`, `report.html`, `junit.xml`), at the end of `isobench run`
//! and again from a results directory with `isobench report DIR`.

use std::path::Path;

use anyhow::Context;
use isobench_report::Histograms;
use isobench_results::{
    HISTOGRAMS_FILE, JUNIT_FILE, REPORT_HTML_FILE, REPORT_MD_FILE, SCHEMA_VERSION, SUMMARY_FILE, Summary,
};

use crate::args::ReportArgs;
use crate::errors::CliError;
use crate::report;

/// Writes the Markdown and HTML reports, and the JUnit file when probes ran.
pub fn write_reports(out: &Path, summary: &Summary, histograms: Option<&Histograms>) -> Result<(), CliError> {
    let write = |name: &str, bytes: &[u8]| {
        let p = out.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("failed to write {}", p.display()))
    };
    write(REPORT_MD_FILE, report::markdown(summary).as_bytes())?;
    let html = isobench_report::html(summary, histograms).map_err(|e| CliError::Internal(e.into()))?;
    write(REPORT_HTML_FILE, html.as_bytes())?;
    if summary.tiers.iter().any(|t| !t.probes.is_empty()) {
        write(JUNIT_FILE, report::junit(summary).as_bytes())?;
    }
    Ok(())
}

/// `isobench report DIR`.
pub fn report(a: ReportArgs) -> Result<i32, CliError> {
    let dir = &a.dir;
    if !dir.is_dir() {
        return Err(CliError::BadInput(format!("results directory {}: not a directory", dir.display())));
    }
    let summary = load_summary(&dir.join(SUMMARY_FILE))?;
    let hlog = dir.join(HISTOGRAMS_FILE);
    let histograms = if hlog.exists() {
        let bytes = std::fs::read(&hlog).map_err(|e| CliError::BadInput(format!("{}: {e}", hlog.display())))?;
        Some(isobench_report::hlog::read(&bytes).map_err(|e| CliError::BadInput(format!("{}: {e}", hlog.display())))?)
    } else {
        eprintln!("note: {} not found; latency curves are drawn through the summary's percentiles", hlog.display());
        None
    };
    write_reports(dir, &summary, histograms.as_ref())?;
    crate::outln!("wrote {}, {}", dir.join(REPORT_MD_FILE).display(), dir.join(REPORT_HTML_FILE).display());
    Ok(0)
}

/// Reads a summary, refusing one this build cannot read with a message that says why.
pub fn load_summary(path: &Path) -> Result<Summary, CliError> {
    let bad = |why: String| CliError::BadInput(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        None => return Err(bad("no `schema_version`: not an isobench summary".into())),
        Some(v) if v > u64::from(SCHEMA_VERSION) => {
            return Err(bad(format!(
                "schema_version {v} was written by a newer isobench; this build reads schema_version {SCHEMA_VERSION}"
            )));
        }
        Some(_) => {}
    }
    serde_json::from_str(&text)
        .map_err(|e| bad(format!("does not match the summary schema (version {SCHEMA_VERSION}): {e}")))
}
