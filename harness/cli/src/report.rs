//! `isobench report DIR`: re-renders a results directory's reports from its files (a sweep's
//! from its `sweep.json`).

use isobench_results::{HISTOGRAMS_FILE, REPORT_HTML_FILE, REPORT_MD_FILE, SUMMARY_FILE};

use crate::args::ReportArgs;
use crate::errors::CliError;
use crate::output::outln;

pub fn report(a: ReportArgs) -> Result<i32, CliError> {
    let dir = &a.dir;
    if !dir.is_dir() {
        return Err(CliError::BadInput(format!("results directory {}: not a directory", dir.display())));
    }
    if dir.join(isobench_results::sweep::SWEEP_FILE).is_file() {
        return crate::explore::report(dir);
    }
    let bad = |e: isobench_report::InputError| CliError::BadInput(e.to_string());
    let summary = isobench_report::load_summary(&dir.join(SUMMARY_FILE)).map_err(bad)?;
    let hlog = dir.join(HISTOGRAMS_FILE);
    let histograms = if hlog.exists() {
        Some(isobench_report::read_histograms(&hlog).map_err(bad)?)
    } else {
        eprintln!("note: {} not found; latency curves are drawn through the summary's percentiles", hlog.display());
        None
    };
    isobench_report::write_reports(dir, &summary, histograms.as_ref()).map_err(|e| CliError::Internal(e.into()))?;
    outln!("wrote {}, {}", dir.join(REPORT_MD_FILE).display(), dir.join(REPORT_HTML_FILE).display());
    Ok(0)
}
