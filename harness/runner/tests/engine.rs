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

/// A backend whose deploys succeed with nothing in them (the traffic is a fake's).
struct Empty;

impl Backend for Empty {
    fn info(&self) -> BackendInfo {
        BackendInfo { name: "fake", fidelity: Fidelity::Emulated, description: "a test double".into() }
    }
    fn deploy(&mut self, plan: &TierPlan) -> Result<Deployment, BackendError> {
        Ok(Deployment { tier: plan.tier, targets: Vec::new(), instances: Vec::new(), netns: None })
    }
    fn teardown(&mut self, _tier: TierId) -> Result<TeardownReport, BackendError> {
        Ok(TeardownReport::default())
    }
    fn teardown_all(&mut self) -> Result<TeardownReport, BackendError> {
        Ok(TeardownReport::default())
    }
}

/// Two agents that both died before their first interval: the merge a pool would hand back.
struct DeadAgents;

impl isobench_runner::TrafficDriver for DeadAgents {
    fn drive(
        &self,
        spec: &isobench_load::LoadSpec,
        _d: &Deployment,
        _cancel: &AtomicBool,
        _progress: &mut dyn FnMut(&isobench_load::Snapshot),
    ) -> Result<isobench_runner::Driven, isobench_load::LoadError> {
        use isobench_load::agent::{AgentEnd, AgentLog, Slice};
        let died = || AgentEnd::Died { how: "killed by signal 9 (SIGKILL)".into() };
        let logs: Vec<_> = (0..2).map(|k| (AgentLog::new(Slice { index: k, count: 2 }), died())).collect();
        let (report, figures) = isobench_load::agent::merge(spec, &logs).unwrap();
        let agents = figures
            .into_iter()
            .map(|f| isobench_results::AgentSummary {
                id: f.index,
                planned: f.planned,
                sent: f.sent,
                not_sent: f.not_sent,
                lag_p99_ns: f.lag_p99_ns,
                achieved_rate: f.achieved_rate,
                status: isobench_results::AgentStatus::Died { how: "killed by signal 9 (SIGKILL)".into() },
            })
            .collect();
        let agents = Some(isobench_results::LoadAgents { requested: 2, note: None, agents, probes_by: None });
        Ok(isobench_runner::Driven { report, agents, probes: None })
    }
}

struct Lines(Vec<String>);

impl isobench_runner::Observer for Lines {
    fn line(&mut self, text: &str) {
        self.0.push(text.into());
    }
    fn snapshot(&mut self, _tier: &str, _snapshot: &isobench_load::Snapshot) {}
    fn phase_end(&mut self) {}
}

/// The traffic seam: the engine takes whatever drove the traffic, checks its accounting as
/// always, and keeps the agents' figures; agents that died leave every planned request
/// counted as not sent, and the identities hold.
#[test]
fn a_traffic_driver_of_agents_that_died_still_gives_a_balanced_summary_naming_them() {
    let out = out_dir("agents");
    let (plan, mut opts) = plan_and_options(&out);
    opts.traffic = Some(Arc::new(DeadAgents));
    let mut lines = Lines(Vec::new());
    let outcome = isobench_runner::run(&plan, &mut Empty, &opts, &mut lines).unwrap();
    assert!(isobench_runner::check_identity(&outcome.summary).is_ok());
    assert!(matches!(outcome.ending, Ending::Complete | Ending::Inconclusive(_)), "{:?}", outcome.ending);
    for t in &outcome.summary.tiers {
        let a = t.agents.as_ref().expect("the agents' figures are kept");
        assert_eq!(a.agents.len(), 2);
        let planned: u64 = a.agents.iter().map(|x| x.planned).sum();
        assert!(planned > 20_000, "ec2-pair plans 2k/s for 15 s: {planned}");
        assert_eq!((t.traffic.dispatched, t.traffic.sent, t.traffic.not_sent), (planned, 0, planned));
    }
    assert!(lines.0.iter().any(|l| l.contains("agent 1/2") && l.contains("DIED")), "{:?}", lines.0);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Agents that run the probes themselves: their traffic as [`DeadAgents`]', and the probe
/// report they bring back (or agent 0's death before it).
struct ProbingAgents {
    report: bool,
    /// The tier (by its name, the load spec's label) whose LK-TMP cell leaks.
    leak_on: Option<&'static str>,
}

impl isobench_runner::TrafficDriver for ProbingAgents {
    fn drive(
        &self,
        _spec: &isobench_load::LoadSpec,
        _d: &Deployment,
        _cancel: &AtomicBool,
        _progress: &mut dyn FnMut(&isobench_load::Snapshot),
    ) -> Result<isobench_runner::Driven, isobench_load::LoadError> {
        panic!("a driver that runs the probes is asked to drive with them")
    }

    fn runs_probes(&self, _d: &Deployment) -> bool {
        true
    }

    fn drive_with_probes(
        &self,
        spec: &isobench_load::LoadSpec,
        probes: &isobench_probes::ProbeSpec,
        d: &Deployment,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&isobench_load::Snapshot),
    ) -> Result<isobench_runner::Driven, isobench_load::LoadError> {
        let mut driven = DeadAgents.drive(spec, d, cancel, progress)?;
        driven.agents.as_mut().unwrap().probes_by = Some(0);
        let (def, expected) = probes.probes[0];
        let leak = self.leak_on == Some(spec.label.as_str());
        let cell = isobench_probes::CellResult {
            probe: def.id.into(),
            channel: def.channel,
            tier: probes.tier,
            expected,
            verdict: if leak { isobench_results::Verdict::Leak } else { isobench_results::Verdict::Blocked },
            unexpected: false,
            trials: 3,
            hits: u64::from(leak),
            blind: 0,
            controls: 3,
            controls_passed: 3,
            leak_bound_95: Some(0.63),
            first_hit_ms: None,
            pairs: Vec::new(),
            failed_calls: 0,
            note: None,
        };
        let report = isobench_probes::ProbeReport { tier: probes.tier, cells: vec![cell], wall_s: 0.1, errors: vec![] };
        driven.probes = Some(match self.report {
            true => Ok(report),
            false => {
                Err(isobench_probes::ProbeError::Agent { agent: 0, reason: "killed by signal 9 (SIGKILL)".into() })
            }
        });
        Ok(driven)
    }
}

/// The probe seam: a driver that runs the probes gives their report, and the engine starts no
/// probe thread of its own (it would fail here: the fake deployment has no tenants to probe);
/// a driver whose probe runner died fails the run as a probe error does.
#[test]
fn a_traffic_driver_that_runs_the_probes_gives_the_tiers_probe_cells() {
    let out = out_dir("probing-agents");
    let (mut plan, mut opts) = plan_and_options(&out);
    plan.scenario.probes = Some(isobench_core::scenario::ProbesSpec { only: vec!["LK-TMP".into()], trials: 3 });
    opts.traffic = Some(Arc::new(ProbingAgents { report: true, leak_on: None }));
    let mut lines = Lines(Vec::new());
    let outcome = isobench_runner::run(&plan, &mut Empty, &opts, &mut lines).unwrap();
    assert_eq!(outcome.summary.status, RunStatus::Complete, "{:?}", outcome.summary.error);
    assert!(lines.0.iter().any(|l| l.contains("probes ran in agent 0")), "{:?}", lines.0);
    for t in &outcome.summary.tiers {
        let cells: Vec<_> = t.probes.iter().map(|c| (c.probe.as_str(), c.verdict, c.trials)).collect();
        assert_eq!(cells, [("LK-TMP", isobench_results::Verdict::Blocked, 3)], "{}", t.tier);
        assert_eq!(t.agents.as_ref().unwrap().probes_by, Some(0), "the summary says where the probes ran");
    }

    opts.traffic = Some(Arc::new(ProbingAgents { report: false, leak_on: None }));
    let outcome = isobench_runner::run(&plan, &mut Empty, &opts, &mut Silent).unwrap();
    assert_eq!(outcome.summary.status, RunStatus::Failed);
    let error = outcome.summary.error.as_deref().unwrap_or_default();
    assert!(error.contains("probes for tier") && error.contains("load agent 0"), "{error}");
    assert!(matches!(outcome.ending, Ending::Failed(RunError::Probes { .. })), "{:?}", outcome.ending);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Two tiers of one id, told apart by their names: each its own summary, histograms, cost and
/// probe column, and progress lines naming it.
#[test]
fn two_tiers_of_one_id_keep_separate_results_by_name() {
    let out = out_dir("named");
    let (mut plan, mut opts) = plan_and_options(&out);
    let silo = plan.tiers.iter().find(|t| t.tier == TierId::SiloEc2).unwrap().clone();
    plan.tiers = ["silo-a", "silo-b"].map(|name| TierPlan { name: name.into(), ..silo.clone() }).to_vec();
    plan.scenario.probes = Some(isobench_core::scenario::ProbesSpec { only: vec!["LK-TMP".into()], trials: 3 });
    opts.traffic = Some(Arc::new(ProbingAgents { report: true, leak_on: Some("silo-b") }));
    let mut lines = Lines(Vec::new());
    let outcome = isobench_runner::run(&plan, &mut Empty, &opts, &mut lines).unwrap();
    let tiers: Vec<_> =
        outcome.summary.tiers.iter().map(|t| (t.tier.as_str(), t.tier_id(), t.probes[0].verdict)).collect();
    use isobench_results::Verdict::{Blocked, Leak};
    assert_eq!(tiers, [("silo-a", "silo-ec2", Blocked), ("silo-b", "silo-ec2", Leak)]);
    assert!(outcome.summary.tiers.iter().all(|t| t.cost.is_some()), "each named tier is costed as its id");
    assert!(lines.0.iter().any(|l| l.starts_with("[silo-b] deploying")), "{:?}", lines.0);
    let hlog = std::fs::read(out.join("histograms.hlog")).unwrap();
    let tags: std::collections::BTreeSet<String> =
        isobench_results::hlog::entries(&hlog).map(|e| e.unwrap().tag.tier.clone()).collect();
    assert_eq!(tags.into_iter().collect::<Vec<_>>(), ["silo-a", "silo-b"]);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["tiers"][1]["tier_id"], "silo-ec2");
    std::fs::remove_dir_all(&out).unwrap();
}
