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
