//! The engine against a fake backend, in-process: the paths that end before any traffic.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use isobench_core::backend::{BackendInfo, Fidelity, TeardownReport};
use isobench_core::plan::{Overrides, Plan, TierPlan};
use isobench_core::{Backend, BackendError, Deployment, TierId};
use isobench_results::RunStatus;
use isobench_runner::{Ending, RunError, RunOptions, Silent};

/// A backend whose every deploy fails with the error `fail` makes.
struct Failing {
    fail: fn(TierId) -> BackendError,
    deploys: usize,
    teardowns_all: usize,
}

impl Backend for Failing {
    fn info(&self) -> BackendInfo {
        BackendInfo { name: "fake", fidelity: Fidelity::Emulated, description: "a test double".into() }
    }
    fn deploy(&mut self, plan: &TierPlan) -> Result<Deployment, BackendError> {
        self.deploys += 1;
        Err((self.fail)(plan.tier))
    }
    fn teardown(&mut self, _tier: TierId) -> Result<TeardownReport, BackendError> {
        Ok(TeardownReport::default())
    }
    fn teardown_all(&mut self) -> Result<TeardownReport, BackendError> {
        self.teardowns_all += 1;
        Ok(TeardownReport { left_behind: vec!["fake leftover".into()], ..TeardownReport::default() })
    }
}

fn plan_and_options(out: &Path) -> (Plan, RunOptions) {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/ec2-pair.toml"));
    let (scenario, source) = isobench_core::scenario::Scenario::load(path).unwrap();
    let plan = Plan::new(
        isobench_runner::new_run_id(),
        scenario,
        isobench_core::scenario::hash(&source),
        &Overrides::default(),
    );
    let opts = RunOptions {
        out: out.to_path_buf(),
        scenario_path: path.to_path_buf(),
        scenario_source: source,
        pricing: isobench_cost::Pricing::built_in("us-east-1").unwrap(),
        overheads: isobench_cost::Overheads::built_in().unwrap(),
        backend: isobench_results::BackendSummary {
            name: "fake".into(),
            fidelity: isobench_results::Fidelity::Emulated,
            description: "a test double".into(),
        },
        cancel: Arc::new(AtomicBool::new(false)),
        traffic: None,
    };
    (plan, opts)
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("isobench-runner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_failed_deploy_still_tears_down_and_writes_results() {
    let out = out_dir("deploy");
    let (plan, opts) = plan_and_options(&out);
    let mut backend = Failing {
        fail: |tier| BackendError::Deploy { tier, what: "an instance".into(), source: "no capacity".into() },
        deploys: 0,
        teardowns_all: 0,
    };
    let outcome = isobench_runner::run(&plan, &mut backend, &opts, &mut Silent).unwrap();
    assert_eq!((backend.deploys, backend.teardowns_all), (1, 1), "stops at the first tier, tears down all");
    let first = plan.tiers[0].tier;
    // The fake's teardown leaves one resource: that, not the deploy error, decides the ending
    // (exit 4); the deploy error stays in the summary.
    assert!(matches!(&outcome.ending, Ending::LeftBehind(l) if l == &["fake leftover"]), "{:?}", outcome.ending);
    let s = &outcome.summary;
    assert_eq!(s.status, RunStatus::Failed);
    assert_eq!(
        s.error.as_deref(),
        Some(format!("tier {first}: failed to deploy an instance for tier `{first}`: no capacity").as_str()),
        "the error with its causes"
    );
    assert_eq!(s.left_behind, ["fake leftover"]);
    for f in ["summary.json", "histograms.hlog", "report.md", "report.html"] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    assert!(!out.join("junit.xml").exists(), "no probes ran");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn an_unavailable_backend_is_its_own_ending() {
    let out = out_dir("unavailable");
    let (plan, opts) = plan_and_options(&out);
    let mut backend = Failing {
        fail: |_| BackendError::Unavailable { backend: "fake", reason: "no root".into() },
        deploys: 0,
        teardowns_all: 0,
    };
    let outcome = isobench_runner::run(&plan, &mut backend, &opts, &mut Silent).unwrap();
    assert!(matches!(outcome.ending, Ending::Failed(RunError::Unavailable(_))), "{:?}", outcome.ending);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_cancelled_run_deploys_nothing_and_says_interrupted() {
    let out = out_dir("cancelled");
    let (plan, opts) = plan_and_options(&out);
    opts.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut backend = Failing { fail: |_| unreachable!("nothing is deployed"), deploys: 0, teardowns_all: 0 };
    let outcome = isobench_runner::run(&plan, &mut backend, &opts, &mut Silent).unwrap();
    assert_eq!((backend.deploys, backend.teardowns_all), (0, 1));
    assert!(matches!(outcome.ending, Ending::Interrupted), "{:?}", outcome.ending);
    assert_eq!(outcome.summary.status, RunStatus::Interrupted);
    std::fs::remove_dir_all(&out).unwrap();
}
