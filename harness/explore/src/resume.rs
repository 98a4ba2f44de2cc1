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

#[cfg(test)]
mod tests {
    use isobench_results::sweep::{SweepMatrix, SweepScenario};

    use super::*;

    fn sweep(hash: &str, rates: &[f64]) -> SweepSummary {
        SweepSummary {
            schema_version: 1,
            sweep_id: "s".into(),
            status: RunStatus::Interrupted,
            error: None,
            started_at: String::new(),
            wall_time_s: 0.0,
            tool: None,
            scenario: SweepScenario { name: "t".into(), path: "s.toml".into(), hash: hash.into() },
            matrix: SweepMatrix {
                tenants: vec![2],
                rate: rates.to_vec(),
                varied: vec!["rate".into()],
                from: "--vary".into(),
            },
            tiers: vec!["silo-ec2".into()],
            target: "local".into(),
            backend: None,
            points: Vec::new(),
            curves: Vec::new(),
            latency: Vec::new(),
            crossovers: Vec::new(),
        }
    }

    #[test]
    fn another_scenario_or_matrix_is_another_sweep() {
        let a = sweep("aaaaaaaaaaaaaaaa", &[1.0, 2.0]);
        assert!(differences(&a, &a).is_empty());
        let d = differences(&a, &sweep("bbbbbbbbbbbbbbbb", &[1.0, 3.0]));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("scenario text differs (sha256 aaaaaaaaaaaa there, bbbbbbbbbbbb now"), "{d:?}");
        assert!(d[1].contains("rates [1.0, 2.0] there, [1.0, 3.0] now"), "{d:?}");
    }

    #[test]
    fn a_directory_without_sweep_json_is_refused_and_an_empty_one_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let want = sweep("h", &[1.0]);
        assert!(matches!(inspect(dir.path(), &want), Ok(Found::Fresh)));
        std::fs::write(dir.path().join("x"), "").unwrap();
        let e = inspect(dir.path(), &want).unwrap_err().to_string();
        assert!(e.contains("not empty and has no sweep.json"), "{e}");
        std::fs::write(dir.path().join(SWEEP_FILE), serde_json::to_string(&want).unwrap()).unwrap();
        assert!(matches!(inspect(dir.path(), &want), Ok(Found::Resume(_))));
    }

    #[test]
    fn a_half_written_point_is_not_finished() {
        let dir = tempfile::tempdir().unwrap();
        let p = Point { tenants: 2, rate: 1.0 };
        assert!(finished(dir.path(), "h", &p, &["silo-ec2".into()]).is_none());
        std::fs::write(dir.path().join(SUMMARY_FILE), "{\"schema_version\": 1, \"run_id\"").unwrap();
        assert!(finished(dir.path(), "h", &p, &["silo-ec2".into()]).is_none());
    }
}
