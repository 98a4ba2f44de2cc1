//! Resuming a sweep: running the same command with the same `--out` keeps every point whose
//! run finished and redoes the others. A directory holding another sweep (another scenario
//! text, matrix, tier list or target) is refused, saying what differs.

use std::path::Path;

use isobench_results::sweep::{SWEEP_FILE, SweepSummary};
use isobench_results::{REPORT_HTML_FILE, RunStatus, SUMMARY_FILE, Summary};

use crate::error::ExploreError;
use crate::matrix::Point;

/// What `--out` holds.
#[derive(Debug)]
pub enum Found {
    /// Nothing yet: a new sweep.
    Fresh,
    /// An earlier run of this same sweep.
    Resume(Box<SweepSummary>),
}

/// Reads `out`: empty or missing is a new sweep; a `sweep.json` of the same sweep is resumed;
/// anything else is refused.
pub fn inspect(out: &Path, want: &SweepSummary) -> Result<Found, ExploreError> {
    let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(true);
    if !out.exists() || empty {
        return Ok(Found::Fresh);
    }
    let path = out.join(SWEEP_FILE);
    let refuse = |why: String| {
        ExploreError::BadInput(format!(
            "--out {}: {why}; accepted: a new or empty directory, or the directory of an interrupted sweep of the same scenario and matrix",
            out.display()
        ))
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|_| refuse(format!("the directory is not empty and has no {SWEEP_FILE}")))?;
    let have: SweepSummary =
        serde_json::from_str(&text).map_err(|e| refuse(format!("{SWEEP_FILE} cannot be read: {e}")))?;
    let differs = differences(&have, want);
    if !differs.is_empty() {
        return Err(refuse(format!("it holds another sweep: {}", differs.join("; "))));
    }
    Ok(Found::Resume(Box::new(have)))
}

/// What makes `have` another sweep than `want`, in words.
pub fn differences(have: &SweepSummary, want: &SweepSummary) -> Vec<String> {
    let mut d = Vec::new();
    if have.scenario.hash != want.scenario.hash {
        d.push(format!(
            "the scenario text differs (sha256 {} there, {} now, {})",
            short(&have.scenario.hash),
            short(&want.scenario.hash),
            want.scenario.path
        ));
    }
    if have.matrix.tenants != want.matrix.tenants {
        d.push(format!("tenants {:?} there, {:?} now", have.matrix.tenants, want.matrix.tenants));
    }
    if have.matrix.rate != want.matrix.rate {
        d.push(format!("rates {:?} there, {:?} now", have.matrix.rate, want.matrix.rate));
    }
    if have.tiers != want.tiers {
        d.push(format!("tiers [{}] there, [{}] now", have.tiers.join(", "), want.tiers.join(", ")));
    }
    if have.target != want.target {
        d.push(format!("target `{}` there, `{}` now", have.target, want.target));
    }
    d
}

fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}

/// The summary of a point whose run finished: `summary.json` complete and readable, of this
/// point's scenario text (`hash`), with every tier of `tiers` at the point's tenant count and
/// rate, and its report written (the runner's last file). `None` means: redo the point.
pub fn finished(dir: &Path, hash: &str, point: &Point, tiers: &[String]) -> Option<Summary> {
    let text = std::fs::read_to_string(dir.join(SUMMARY_FILE)).ok()?;
    let s: Summary = serde_json::from_str(&text).ok()?;
    let same_tiers = s.tiers.len() == tiers.len()
        && s.tiers.iter().zip(tiers).all(|(t, want)| {
            &t.tier == want && t.tenants as u64 == point.tenants && (t.target_rate - point.rate).abs() < 1e-9
        });
    let done = s.status == RunStatus::Complete && s.scenario.hash == hash && same_tiers;
    (done && dir.join(REPORT_HTML_FILE).is_file()).then_some(s)
}
