//! The probe catalogue and the canary ledger: which cross-tenant channels isobench checks,
//! what each tier is expected to do on each, and how trials become verdicts.
//!
//! The catalogue is data ([`CATALOGUE`]), read by the runner, the report and the CI gate
//! alike. A verdict of "blocked" counts only when the probe's positive control (a tenant
//! finding its *own* canary through the same channel) succeeded in the same run; otherwise
//! the cell is inconclusive.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tier::TierId;

/// A channel through which one tenant's state could reach another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Tmp,
    Mem,
    Env,
    Fd,
    Proc,
    Net,
    Cred,
    Rng,
    App,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Tmp => "tmp",
            Channel::Mem => "mem",
            Channel::Env => "env",
            Channel::Fd => "fd",
            Channel::Proc => "proc",
            Channel::Net => "net",
            Channel::Cred => "cred",
            Channel::Rng => "rng",
            Channel::App => "app",
        }
    }
}

/// Expectations and verdicts are part of the summary's vocabulary, defined once in
/// `isobench-results`.
pub use isobench_results::{Expectation, Verdict};

/// An expectation that may depend on the tier's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Always(Expectation),
    /// Leaks when the workload's hygiene is `naive`, else blocked.
    NaiveHygiene,
    /// ECS: leaks when tenants share one self-referencing security group.
    SharedSecurityGroup,
    /// ECS: leaks (the instance role) on the EC2 launch type unless IMDS is blocked.
    ImdsReachable,
}

impl Rule {
    /// A short label for reports: `leak`, `blocked`, `n/a` or `depends on configuration`.
    pub fn label(self) -> &'static str {
        match self {
            Rule::Always(e @ (Expectation::Leak | Expectation::Blocked)) => e.as_str(),
            Rule::Always(Expectation::NotApplicable) => "n/a",
            _ => "depends on configuration",
        }
    }
}

/// One probe: a stable id, its channel, a one-line description and the expectation per tier.
#[derive(Debug, Clone, Copy)]
pub struct ProbeDef {
    pub id: &'static str,
    pub channel: Channel,
    pub description: &'static str,
    /// Per tier, in the order of [`TierId::ALL`].
    pub expected: [Rule; 6],
}

use Expectation::{Blocked as B, Leak as L, NotApplicable as NA};
use Rule::Always as A;

/// Tier order: silo-ec2, shared-ec2, ecs-awsvpc, lambda-per-tenant, lambda-shared,
/// lambda-tenant-isolation.
pub const CATALOGUE: &[ProbeDef] = &[
    ProbeDef {
        id: "LK-TMP",
        channel: Channel::Tmp,
        description: "a file one tenant's code leaves in /tmp is readable by another tenant's code",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B)],
    },
    ProbeDef {
        id: "LK-MEM",
        channel: Channel::Mem,
        description: "a process global or cache entry set by one tenant is visible to another",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B)],
    },
    ProbeDef {
        id: "LK-ENV",
        channel: Channel::Env,
        description: "an environment variable one tenant's code sets is visible to another in-process",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B)],
    },
    ProbeDef {
        id: "LK-FD",
        channel: Channel::Fd,
        description: "a file descriptor one tenant's code leaves open is readable by another",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B)],
    },
    ProbeDef {
        id: "LK-PROC",
        channel: Channel::Proc,
        description: "another tenant's processes (cmdline, environ) are visible through /proc",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B)],
    },
    ProbeDef {
        id: "LK-NET",
        channel: Channel::Net,
        description: "one tenant's code can open a connection to another tenant's endpoint",
        expected: [A(B), A(L), Rule::SharedSecurityGroup, A(NA), A(NA), A(NA)],
    },
    ProbeDef {
        id: "LK-CRED",
        channel: Channel::Cred,
        description: "a tenant's code can obtain a principal that is not its own (instance role, shared role, another task's role)",
        expected: [A(B), A(L), Rule::ImdsReachable, A(B), A(L), A(L)],
    },
    ProbeDef {
        id: "LK-RNG",
        channel: Channel::Rng,
        description: "two tenants' code sees the same random state (the first random bytes after start)",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B)],
    },
    ProbeDef {
        id: "LK-APP",
        channel: Channel::App,
        description: "the application's cache, keyed without the tenant, returns another tenant's record",
        expected: [A(B), Rule::NaiveHygiene, A(B), A(B), Rule::NaiveHygiene, A(B)],
    },
];

/// The catalogue entry for `id`.
pub fn probe(id: &str) -> Option<&'static ProbeDef> {
    CATALOGUE.iter().find(|p| p.id == id)
}

fn tier_index(t: TierId) -> usize {
    TierId::ALL.iter().position(|x| *x == t).expect("every tier is in ALL")
}

impl ProbeDef {
    pub fn rule(&self, tier: TierId) -> Rule {
        self.expected[tier_index(tier)]
    }
    // `expect`, which reads a tier's settings, is in `scenario::expect`: this catalogue stays a
    // leaf that scenario validation can use.
}

/// A canary: fresh random (128 bits) and naming run, tenant, channel and trial, so a hit can
/// be traced to where it was planted from the token alone.
pub fn canary(run_id: &str, tenant: &str, channel: Channel, trial: u64, random: u128) -> String {
    format!("isobench-canary:v1:{run_id}:{tenant}:{}:{trial}:{random:032x}", channel.as_str())
}

/// One planted canary, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planted {
    pub token: String,
    pub tenant: String,
    pub channel: Channel,
    pub trial: u64,
    /// Time since the probe phase started.
    pub at: Duration,
}

/// What a sweep found, as the ledger classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// The sweeping tenant's own canary: the positive control.
    Own,
    /// Another tenant's canary: a leak.
    Other,
    /// A token the ledger never planted (another run's, or garbage): ignored.
    Unknown,
}

/// Every canary planted in a run, and what each sweep found.
#[derive(Debug, Default)]
pub struct Ledger {
    planted: BTreeMap<String, Planted>,
    cells: BTreeMap<(TierId, Channel), CellCounts>,
}

/// Tallies for one (tier, channel) cell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CellCounts {
    /// Cross-tenant sweeps made (each one a trial).
    pub trials: u64,
    /// Sweeps that found another tenant's canary.
    pub hits: u64,
    /// Positive controls tried and passed.
    pub controls: u64,
    pub controls_passed: u64,
    /// When the first cross-tenant hit happened (since the probe phase started).
    pub first_hit: Option<Duration>,
    /// Distinct (owner → finder) pairs seen leaking, as `owner->finder`.
    pub pairs: BTreeSet<String>,
}

impl Ledger {
    pub fn plant(&mut self, p: Planted) {
        self.planted.insert(p.token.clone(), p);
    }

    pub fn planted(&self, token: &str) -> Option<&Planted> {
        self.planted.get(token)
    }

    /// Records a sweep by `finder` that returned `found`. `control` says whether this sweep is
    /// a positive control (the finder looks for its own canary) or a cross-tenant trial.
    pub fn sweep(
        &mut self,
        tier: TierId,
        channel: Channel,
        finder: &str,
        found: &[String],
        control: bool,
        at: Duration,
    ) {
        let mut own = false;
        let mut owners = BTreeSet::new();
        for token in found {
            match self.classify(finder, token) {
                Finding::Own => own = true,
                Finding::Other => {
                    owners.insert(self.planted[token].tenant.clone());
                }
                Finding::Unknown => {}
            }
        }
        let cell = self.cells.entry((tier, channel)).or_default();
        if control {
            cell.controls += 1;
            cell.controls_passed += u64::from(own);
        } else {
            cell.trials += 1;
        }
        if !owners.is_empty() {
            if !control {
                cell.hits += 1;
            }
            cell.first_hit = Some(cell.first_hit.map_or(at, |f| f.min(at)));
            for o in owners {
                cell.pairs.insert(format!("{o}->{finder}"));
            }
        }
    }

    /// Records a cross-tenant observation decided outside the token scheme (random state
    /// compared across tenants): `leaked` says whether the trial found shared state.
    pub fn observe(
        &mut self,
        tier: TierId,
        channel: Channel,
        leaked: bool,
        control_passed: Option<bool>,
        at: Duration,
    ) {
        let cell = self.cells.entry((tier, channel)).or_default();
        cell.trials += 1;
        if leaked {
            cell.hits += 1;
            cell.first_hit = Some(cell.first_hit.map_or(at, |f| f.min(at)));
        }
        if let Some(passed) = control_passed {
            cell.controls += 1;
            cell.controls_passed += u64::from(passed);
        }
    }

    pub fn classify(&self, finder: &str, token: &str) -> Finding {
        match self.planted.get(token) {
            Some(p) if p.tenant == finder => Finding::Own,
            Some(_) => Finding::Other,
            None => Finding::Unknown,
        }
    }

    pub fn cell(&self, tier: TierId, channel: Channel) -> Option<&CellCounts> {
        self.cells.get(&(tier, channel))
    }
}

/// Decides a cell: any hit is a leak; no hit is "blocked" only if a positive control passed.
pub fn verdict(expect: Expectation, counts: Option<&CellCounts>) -> Verdict {
    if expect == Expectation::NotApplicable {
        return Verdict::NotApplicable;
    }
    match counts {
        Some(c) if c.hits > 0 => Verdict::Leak,
        Some(c) if c.controls_passed > 0 && c.trials > 0 => Verdict::Blocked,
        _ => Verdict::Inconclusive,
    }
}

/// Whether a verdict contradicts the expectation in the direction CI must fail on: a leak
/// where the platform promises isolation.
pub fn unexpected_leak(expect: Expectation, v: Verdict) -> bool {
    v == Verdict::Leak && expect == Expectation::Blocked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planted(token: &str, tenant: &str) -> Planted {
        Planted { token: token.into(), tenant: tenant.into(), channel: Channel::Tmp, trial: 0, at: Duration::ZERO }
    }

    #[test]
    fn catalogue_ids_are_unique_and_stable() {
        let ids: BTreeSet<_> = CATALOGUE.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), CATALOGUE.len());
        assert!(probe("LK-TMP").is_some() && probe("LK-XYZ").is_none());
    }

    #[test]
    fn canaries_are_distinct_and_name_their_origin() {
        let a = canary("r1", "acme", Channel::Tmp, 3, 0xdead_beef);
        assert!(a.starts_with("isobench-canary:v1:r1:acme:tmp:3:"));
        assert_eq!(a.rsplit(':').next().unwrap().len(), 32);
        assert_ne!(a, canary("r1", "acme", Channel::Tmp, 3, 0xdead_bef0));
    }

    #[test]
    fn own_canary_is_a_control_other_is_a_hit() {
        let mut l = Ledger::default();
        l.plant(planted("c-a", "a"));
        l.plant(planted("c-b", "b"));
        let t = TierId::SharedEc2;
        l.sweep(t, Channel::Tmp, "a", &["c-a".into()], true, Duration::from_millis(5));
        l.sweep(t, Channel::Tmp, "a", &["c-a".into(), "c-b".into(), "junk".into()], false, Duration::from_millis(9));
        let c = l.cell(t, Channel::Tmp).unwrap();
        assert_eq!((c.trials, c.hits, c.controls, c.controls_passed), (1, 1, 1, 1));
        assert_eq!(c.first_hit, Some(Duration::from_millis(9)));
        assert!(c.pairs.contains("b->a"));
    }

    #[test]
    fn blocked_needs_a_passing_control() {
        let mut l = Ledger::default();
        l.plant(planted("c-a", "a"));
        let t = TierId::SiloEc2;
        l.sweep(t, Channel::Tmp, "b", &[], false, Duration::ZERO);
        assert_eq!(verdict(Expectation::Blocked, l.cell(t, Channel::Tmp)), Verdict::Inconclusive);
        l.sweep(t, Channel::Tmp, "a", &[], true, Duration::ZERO);
        assert_eq!(verdict(Expectation::Blocked, l.cell(t, Channel::Tmp)), Verdict::Inconclusive, "control failed");
        l.sweep(t, Channel::Tmp, "a", &["c-a".into()], true, Duration::ZERO);
        assert_eq!(verdict(Expectation::Blocked, l.cell(t, Channel::Tmp)), Verdict::Blocked);
        assert_eq!(verdict(Expectation::Blocked, None), Verdict::Inconclusive);
    }
}
