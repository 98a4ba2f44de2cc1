//! The sweep loop: every point of the matrix through the engine (`isobench_runner::run`), one
//! results directory per point, `sweep.json` rewritten after each point, the report at the end.
//!
//! A signal sets the cancel flag: the runner stops the current point's traffic and tears it
//! down, and the loop starts no other point. Points already finished stay; re-running the same
//! command resumes ([`crate::resume`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use isobench_core::backend::Backend;
use isobench_core::plan::{Overrides, Plan};
use isobench_core::scenario::Scenario;
use isobench_results::sweep::{
    POINTS_DIR, PointStatus, SWEEP_FILE, SWEEP_SCHEMA_VERSION, SweepMatrix, SweepPoint, SweepScenario, SweepSummary,
};
use isobench_results::{BackendSummary, RunStatus, Summary};
use isobench_runner::{Ending, Observer, RunOptions};

use crate::analysis::{Run, analyse};
use crate::error::ExploreError;
use crate::matrix::{Matrix, Point, point_source};
use crate::resume::{self, Found};

/// Everything decided before anything is deployed.
pub struct Sweep {
    pub out: PathBuf,
    pub scenario_path: PathBuf,
    pub scenario_name: String,
    pub scenario_hash: String,
    pub matrix: Matrix,
    /// The tiers each point runs, in the scenario's order.
    pub tiers: Vec<String>,
    pub target: String,
    pub points: Vec<Prepared>,
    pub pricing: isobench_cost::Pricing,
    /// The published overheads each point's projected-AWS latency is drawn from.
    pub overheads: isobench_cost::Overheads,
    pub cancel: Arc<AtomicBool>,
    /// An earlier run of this sweep in `out`, when resuming.
    pub earlier: Option<Box<SweepSummary>>,
}

/// A point with its own scenario, validated.
pub struct Prepared {
    pub point: Point,
    pub key: String,
    pub source: String,
    pub hash: String,
    pub scenario: Scenario,
}

/// What the caller provides per point: the backend for a plan, and where progress goes.
pub trait Hooks {
    /// A backend for this point's plan and how summaries name it; on `Err` the caller keeps
    /// its own error (for its exit code) and the sweep stops.
    fn backend(&mut self, plan: &Plan) -> Result<(Box<dyn Backend>, BackendSummary), String>;
    fn observer(&mut self) -> &mut dyn Observer;
    /// A progress line: which point of how many, and the ETA.
    fn progress(&mut self, line: &str);
}

/// A finished (or stopped) sweep.
pub struct SweepOutcome {
    pub summary: SweepSummary,
    /// How each point run by this invocation ended, by key.
    pub endings: Vec<(String, Ending)>,
    /// The sweep stopped early (signal, backend, leftovers).
    pub stopped: bool,
}

/// Validates every point's scenario and reads `out`: a new sweep, or the resume of the same one.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    out: PathBuf,
    scenario_path: PathBuf,
    scenario: &Scenario,
    src: &str,
    matrix: Matrix,
    tiers: Vec<String>,
    target: String,
    pricing: isobench_cost::Pricing,
    overheads: isobench_cost::Overheads,
    cancel: Arc<AtomicBool>,
) -> Result<Sweep, ExploreError> {
    let mut points = Vec::new();
    for point in matrix.points() {
        let key = point.key();
        let source = point_source(src, &point, &matrix.varied)?;
        let scenario = Scenario::parse(&source, &scenario_path)
            .map_err(|e| ExploreError::BadInput(format!("point {key}: {e}")))?;
        let hash = isobench_core::scenario::hash(&source);
        points.push(Prepared { point, key, source, hash, scenario });
    }
    let mut sweep = Sweep {
        out,
        scenario_path,
        scenario_name: scenario.name.clone(),
        scenario_hash: isobench_core::scenario::hash(src),
        matrix,
        tiers,
        target,
        points,
        pricing,
        overheads,
        cancel,
        earlier: None,
    };
    let want = sweep.record(String::new(), SystemTime::now(), 0.0, Vec::new());
    if let Found::Resume(earlier) = resume::inspect(&sweep.out, &want)? {
        sweep.earlier = Some(earlier);
    }
    Ok(sweep)
}

impl Sweep {
    /// `sweep.json` for the points as they stand, without the analysis.
    fn record(&self, id: String, started: SystemTime, wall: f64, points: Vec<SweepPoint>) -> SweepSummary {
        let points = if points.is_empty() { self.points.iter().map(pending).collect() } else { points };
        SweepSummary {
            schema_version: SWEEP_SCHEMA_VERSION,
            sweep_id: id,
            status: RunStatus::Interrupted,
            error: None,
            started_at: humantime::format_rfc3339_seconds(started).to_string(),
            wall_time_s: wall,
            tool: None,
            scenario: SweepScenario {
                name: self.scenario_name.clone(),
                path: self.scenario_path.display().to_string(),
                hash: self.scenario_hash.clone(),
            },
            matrix: SweepMatrix {
                tenants: self.matrix.tenants.clone(),
                rate: self.matrix.rates.clone(),
                varied: self.matrix.varied.iter().map(|a| a.as_str().to_string()).collect(),
                from: self.matrix.from.to_string(),
            },
            tiers: self.tiers.clone(),
            target: self.target.clone(),
            backend: None,
            points,
            curves: Vec::new(),
            latency: Vec::new(),
            crossovers: Vec::new(),
        }
    }

    /// The sweep's id: the earlier run's when resuming.
    pub fn id(&self) -> String {
        match &self.earlier {
            Some(e) => e.sweep_id.clone(),
            None => self.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        }
    }
}

fn pending(p: &Prepared) -> SweepPoint {
    SweepPoint {
        key: p.key.clone(),
        tenants: p.point.tenants,
        rate: p.point.rate,
        dir: format!("{POINTS_DIR}/{}", p.key),
        status: PointStatus::Pending,
        run_id: None,
        scenario_hash: p.hash.clone(),
        resumed: false,
        wall_time_s: None,
        error: None,
        picks: Vec::new(),
    }
}

/// Runs every point not finished yet, then writes `sweep.json` and the sweep's report.
pub fn run(sweep: &Sweep, hooks: &mut dyn Hooks) -> Result<SweepOutcome, ExploreError> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    std::fs::create_dir_all(sweep.out.join(POINTS_DIR))
        .map_err(|source| ExploreError::Write { path: sweep.out.join(POINTS_DIR), source })?;
    let n = sweep.points.len();
    let mut records: Vec<SweepPoint> = sweep.points.iter().map(pending).collect();
    let mut summaries: Vec<Option<Summary>> = vec![None; n];
    let mut endings = Vec::new();
    let mut backend_summary = None;
    let mut stopped = false;
    let mut error = None;

    // Points an earlier invocation finished are kept as they are.
    for (i, p) in sweep.points.iter().enumerate() {
        let dir = sweep.out.join(&records[i].dir);
        if let Some(s) = resume::finished(&dir, &p.hash, &p.point, &sweep.tiers) {
            records[i].status = PointStatus::Complete;
            records[i].run_id = Some(s.run_id.clone());
            records[i].resumed = true;
            records[i].wall_time_s = Some(s.wall_time_s);
            summaries[i] = Some(s);
        }
    }
    // Written before the first point, so that a sweep killed during it can be resumed.
    write_json(sweep, &records, started, t0, &summaries, None, None)?;
    let to_run = records.iter().filter(|r| r.status != PointStatus::Complete).count();
    let mut ran = 0usize;
    let mut run_time = Duration::ZERO;
    for (i, p) in sweep.points.iter().enumerate() {
        if records[i].status == PointStatus::Complete {
            hooks.progress(&format!(
                "[explore] point {}/{n} {}: kept from an earlier run ({})",
                i + 1,
                p.key,
                records[i].run_id.as_deref().unwrap_or("?")
            ));
            continue;
        }
        if sweep.cancel.load(Ordering::SeqCst) {
            stopped = true;
            break;
        }
        let eta = eta(run_time, ran, to_run);
        hooks.progress(&format!("[explore] point {}/{n} {} ({eta})", i + 1, p.key));
        let dir = sweep.out.join(&records[i].dir);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| ExploreError::Remove { path: dir.clone(), source })?;
        }
        let started_point = Instant::now();
        let result = run_point(sweep, p, &dir, hooks);
        run_time += started_point.elapsed();
        ran += 1;
        let (outcome, summary) = match result {
            Ok(o) => o,
            Err(why) => {
                records[i].status = PointStatus::Failed;
                records[i].error = Some(why.clone());
                error = Some(format!("point {}: {why}", p.key));
                stopped = true;
                break;
            }
        };
        backend_summary = Some(summary);
        let s = outcome.summary;
        records[i].run_id = Some(s.run_id.clone());
        records[i].wall_time_s = Some(s.wall_time_s);
        records[i].error = s.error.clone();
        records[i].status = match s.status {
            RunStatus::Complete => PointStatus::Complete,
            RunStatus::Interrupted => PointStatus::Interrupted,
            RunStatus::Failed => PointStatus::Failed,
        };
        let left_behind = matches!(outcome.ending, Ending::LeftBehind(_));
        if records[i].status == PointStatus::Complete {
            summaries[i] = Some(s);
        }
        endings.push((p.key.clone(), outcome.ending));
        write_json(sweep, &records, started, t0, &summaries, backend_summary.clone(), None)?;
        if left_behind {
            error = Some(format!("point {} left resources behind; the sweep stopped", p.key));
            stopped = true;
            break;
        }
        if sweep.cancel.load(Ordering::SeqCst) {
            stopped = true;
            break;
        }
    }
    let summary = write_json(sweep, &records, started, t0, &summaries, backend_summary, error)?;
    let first = summaries.iter().flatten().next();
    crate::report::write(&sweep.out, &summary, first)?;
    Ok(SweepOutcome { summary, endings, stopped })
}

/// `ETA 3m 20s` from the mean time of the points run so far.
fn eta(spent: Duration, ran: usize, to_run: usize) -> String {
    if ran == 0 {
        return format!("{to_run} to run, ETA after the first");
    }
    let left = spent / ran as u32 * (to_run - ran) as u32;
    format!("{} to run, ETA {}", to_run - ran, humantime::format_duration(Duration::from_secs(left.as_secs())))
}

/// One point through the engine; `Err` only when no run could start (the backend).
fn run_point(
    sweep: &Sweep,
    p: &Prepared,
    dir: &Path,
    hooks: &mut dyn Hooks,
) -> Result<(isobench_runner::RunOutcome, BackendSummary), String> {
    let mut plan = Plan::new(isobench_runner::new_run_id(), p.scenario.clone(), p.hash.clone(), &Overrides::default());
    plan.tiers.retain(|t| sweep.tiers.contains(&t.name));
    let (mut backend, summary) = hooks.backend(&plan)?;
    let opts = RunOptions {
        out: dir.to_path_buf(),
        scenario_path: sweep.scenario_path.clone(),
        scenario_source: p.source.clone(),
        pricing: sweep.pricing.clone(),
        overheads: sweep.overheads.clone(),
        backend: summary.clone(),
        cancel: sweep.cancel.clone(),
        traffic: None,
    };
    let outcome = isobench_runner::run(&plan, backend.as_mut(), &opts, hooks.observer());
    drop(backend);
    outcome.map(|o| (o, summary)).map_err(|e| e.to_string())
}

/// Writes `sweep.json` with the analysis of the finished points, and returns it.
fn write_json(
    sweep: &Sweep,
    records: &[SweepPoint],
    started: SystemTime,
    t0: Instant,
    summaries: &[Option<Summary>],
    backend: Option<BackendSummary>,
    error: Option<String>,
) -> Result<SweepSummary, ExploreError> {
    let mut s = sweep.record(sweep.id(), started, t0.elapsed().as_secs_f64(), records.to_vec());
    // A resumed sweep keeps its first start and adds this invocation's time to the earlier ones.
    if let Some(e) = &sweep.earlier {
        s.started_at = e.started_at.clone();
        s.wall_time_s += e.wall_time_s;
    }
    let runs: Vec<Run> = sweep
        .points
        .iter()
        .zip(summaries)
        .filter_map(|(p, s)| s.as_ref().map(|summary| Run { point: p.point, key: p.key.clone(), summary }))
        .collect();
    for (rec, summary) in s.points.iter_mut().zip(summaries) {
        if let Some(summary) = summary {
            rec.picks = crate::picks::for_point(summary);
        }
    }
    let a = analyse(&sweep.matrix, &runs, &sweep.tiers, &sweep.pricing);
    s.curves = a.curves;
    s.latency = a.latency;
    s.crossovers = a.crossovers;
    s.tool = runs.first().map(|r| r.summary.tool.clone());
    s.backend = backend.or_else(|| runs.first().map(|r| r.summary.backend.clone()));
    let all_done = s.points.iter().all(|p| p.status == PointStatus::Complete);
    let any_failed = s.points.iter().any(|p| p.status == PointStatus::Failed);
    s.status = if all_done {
        RunStatus::Complete
    } else if any_failed || error.is_some() {
        RunStatus::Failed
    } else {
        RunStatus::Interrupted
    };
    let mut notes = a.notes;
    if let Some(e) = error {
        notes.insert(0, e);
    }
    s.error = (!notes.is_empty()).then(|| notes.join("; "));
    let path = sweep.out.join(SWEEP_FILE);
    let json =
        serde_json::to_vec_pretty(&s).map_err(|e| ExploreError::Write { path: path.clone(), source: e.into() })?;
    write_atomic(&path, &json)?;
    Ok(s)
}

/// Writes through a temporary file and a rename, so a killed sweep never leaves half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExploreError> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| ExploreError::Write { path: path.to_path_buf(), source })
}
