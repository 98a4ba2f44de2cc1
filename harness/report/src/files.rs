//! A results directory's report files: written at the end of `isobench run` and again from the
//! directory's `summary.json` and `histograms.hlog` by `isobench report DIR`.

use std::path::Path;

use isobench_results::hlog::{self, Histograms};
use isobench_results::{JUNIT_FILE, REPORT_HTML_FILE, REPORT_MD_FILE, SCHEMA_VERSION, Summary};

use crate::error::{InputError, ReportError};

/// Writes `report.md` and `report.html`, and `junit.xml` when probes ran.
pub fn write_reports(dir: &Path, summary: &Summary, histograms: Option<&Histograms>) -> Result<(), ReportError> {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| ReportError::Write { path, source })
    };
    write(REPORT_MD_FILE, crate::markdown::markdown(summary).as_bytes())?;
    write(REPORT_HTML_FILE, crate::html::html(summary, histograms)?.as_bytes())?;
    if summary.tiers.iter().any(|t| !t.probes.is_empty()) {
        write(JUNIT_FILE, crate::junit::junit(summary).as_bytes())?;
    }
    Ok(())
}

/// Reads a summary, refusing one this build cannot read with a message that says why.
pub fn load_summary(path: &Path) -> Result<Summary, InputError> {
    let bad = |why: String| InputError::new(path, why);
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

/// Reads a histogram log for the report's latency curves.
pub fn read_histograms(path: &Path) -> Result<Histograms, InputError> {
    let bytes = std::fs::read(path).map_err(|e| InputError::new(path, e.to_string()))?;
    hlog::read(&bytes).map_err(|e| InputError::new(path, format!("failed to read the histogram log: {e}")))
}
