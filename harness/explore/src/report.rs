//! Writes the sweep's `report.md` and `report.html` (rendered by `isobench_report::explore`).

use std::path::Path;

use isobench_results::Summary;
use isobench_results::sweep::SweepSummary;

use crate::error::ExploreError;

/// `first` is a finished point's summary: the backend and host the limits statement names.
pub fn write(out: &Path, s: &SweepSummary, first: Option<&Summary>) -> Result<(), ExploreError> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|source| ExploreError::Write { path, source })
    };
    write(isobench_results::REPORT_MD_FILE, isobench_report::explore::markdown(s, first))?;
    write(isobench_results::REPORT_HTML_FILE, isobench_report::explore::html(s, first)?)?;
    Ok(())
}

/// Re-renders a sweep directory's reports from its `sweep.json` and the first finished point's
/// summary (`isobench report DIR` on a sweep); runs nothing.
pub fn rerender(dir: &Path) -> Result<(), ExploreError> {
    let path = dir.join(isobench_results::sweep::SWEEP_FILE);
    let bad = |why: String| ExploreError::BadInput(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let s: SweepSummary =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a sweep.json this build reads: {e}")))?;
    let first = s
        .points
        .iter()
        .filter(|p| p.status == isobench_results::sweep::PointStatus::Complete)
        .find_map(|p| isobench_report::load_summary(&dir.join(&p.dir).join(isobench_results::SUMMARY_FILE)).ok());
    write(dir, &s, first.as_ref())
}
