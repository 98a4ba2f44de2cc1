//! The probe catalogue and the canary ledger: which cross-tenant channels isobench checks,
//! what each tier is expected to do on each (from AWS's documentation, cited per probe), and
//! how trials become verdicts.
//!
//! The catalogue is data ([`CATALOGUE`]), read by the runner, the report and the CI gate
//! alike. Every trial carries its own positive control (the trial's owner finding its own
//! canary, or state, through the same channel in the same trial); a trial that could not see
//! the channel at all (a failed call, an unusable answer) is *blind*. A cell reads "blocked"
//! only when no trial hit, every control passed and no trial was blind; with its hits and
//! trials it states an exact upper 95% bound on the per-trial leak probability
//! ([`leak_bound_95`]).

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
    /// Cross-tenant data access with the credentials a tenant holds.
    Data,
    /// The kernel under the code (co-residency).
    Kernel,
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
            Channel::Data => "data",
            Channel::Kernel => "kernel",
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
    /// The channel does not exist on this tier, for the reason given (the cell's note).
    NotApplicable(&'static str),
    /// Leaks when the workload's hygiene is `naive`, else blocked.
    NaiveHygiene,
    /// ECS: leaks when tenants share one self-referencing security group.
    SharedSecurityGroup,
    /// ECS: the given expectation on the EC2 launch type unless IMDS is blocked (tasks then
    /// reach the container instance's role), else blocked.
    ImdsReachable(Expectation),
    /// ECS: the given expectation on the EC2 launch type (tasks share the container
    /// instance), blocked on Fargate (one microVM per task).
    Ec2LaunchType(Expectation),
    /// EKS: leaks between tenants' pods without a default-deny NetworkPolicy, unless per-pod
    /// security groups keep tenants apart; blocked otherwise.
    PodNetwork,
    /// EKS: the given expectation when pods reach the node role through IMDS (IMDSv1, which
    /// has no hop limit, or IMDSv2 with a hop limit of 2 or more) on nodes tenants share;
    /// blocked with tokens required and hop limit 1, or on a node of the tenant's own.
    NodeImds(Expectation),
    /// EKS: the given expectation when tenants' pods share nodes (namespace per tenant),
    /// blocked for a node per tenant (separate EC2 instances).
    SharedNode(Expectation),
}

impl Rule {
    /// A short label for reports: `leak`, `blocked`, `risk`, `n/a` or `depends on configuration`.
    pub fn label(self) -> &'static str {
        match self {
            Rule::Always(e @ (Expectation::Leak | Expectation::Blocked | Expectation::Risk)) => e.as_str(),
            Rule::Always(Expectation::NotApplicable) | Rule::NotApplicable(_) => "n/a",
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
    pub expected: [Rule; 7],
    /// What a cross-tenant hit is: [`Verdict::Leak`] (data crossed), or [`Verdict::Risk`]
    /// (tenants share a resource by configuration: a principal, a kernel).
    pub hit: Verdict,
    /// The AWS documentation the expectations come from.
    pub sources: &'static [&'static str],
}

use Expectation::{Blocked as B, Leak as L, Risk as R};
use Rule::Always as A;

const ONE_PROCESS: Rule = Rule::NotApplicable(
    "every tenant is served by one process: fetching a beacon from it is the memory channel again, not a network channel",
);

const EXECUTION_ROLE: &str = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html";
const TENANT_ISOLATION: &str = "https://docs.aws.amazon.com/lambda/latest/dg/tenant-isolation.html";
const SESSION_TAGS: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html";
const TASK_ROLES: &str = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html";
const SNAPSTART_UNIQUENESS: &str = "https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html";
const LAMBDA_ISOLATION: &str =
    "https://docs.aws.amazon.com/whitepapers/latest/security-overview-aws-lambda/lambda-executions.html";
const FARGATE_ISOLATION: &str =
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-security-considerations.html";
/// Lambda runs a function in a VPC the service owns and gives a VPC configuration outbound
/// access only: nothing opens a connection into an execution environment.
const LAMBDA_NETWORKING: &str = "https://docs.aws.amazon.com/lambda/latest/dg/foundation-networking.html";
const LAMBDA_VPC: &str = "https://docs.aws.amazon.com/lambda/latest/dg/vpc.html";
/// EKS best practices, tenant isolation: namespaces are a soft boundary, pods on one node share
/// its kernel, node-per-tenant (dedicated node groups) for harder isolation.
const EKS_TENANT_ISOLATION: &str = "https://docs.aws.amazon.com/eks/latest/best-practices/tenant-isolation.html";
/// EKS network policies: without one every pod reaches every pod; the VPC CNI enforces them.
const EKS_NETWORK_POLICY: &str = "https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy.html";
/// EKS best practices, IAM: "Restrict access to the instance profile assigned to the worker
/// node" (IMDSv2 with a hop limit of 1).
const EKS_IAM: &str = "https://docs.aws.amazon.com/eks/latest/best-practices/identity-and-access-management.html";
const EKS_POD_IDENTITY: &str = "https://docs.aws.amazon.com/eks/latest/userguide/pod-identities.html";
const EKS_IRSA: &str = "https://docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts.html";
const EKS_POD_SECURITY_GROUPS: &str = "https://docs.aws.amazon.com/eks/latest/userguide/security-groups-for-pods.html";
const WANG_ATC18: &str = "https://www.usenix.org/conference/atc18/presentation/wang-liang";

/// Tier order: silo-ec2, shared-ec2, ecs-awsvpc, lambda-per-tenant, lambda-shared,
/// lambda-tenant-isolation, eks-pod.
pub const CATALOGUE: &[ProbeDef] = &[
    ProbeDef {
        id: "LK-TMP",
        channel: Channel::Tmp,
        description: "a file one tenant's code leaves in /tmp is readable by another tenant's code",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B), A(B)],
        hit: Verdict::Leak,
        sources: &[TENANT_ISOLATION, EKS_TENANT_ISOLATION],
    },
    ProbeDef {
        id: "LK-MEM",
        channel: Channel::Mem,
        description: "a process global or cache entry set by one tenant is visible to another",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B), A(B)],
        hit: Verdict::Leak,
        sources: &[TENANT_ISOLATION, EKS_TENANT_ISOLATION],
    },
    ProbeDef {
        id: "LK-ENV",
        channel: Channel::Env,
        description: "an environment variable one tenant's code sets is visible to another in-process",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B), A(B)],
        hit: Verdict::Leak,
        sources: &[TENANT_ISOLATION, EKS_TENANT_ISOLATION],
    },
    ProbeDef {
        id: "LK-FD",
        channel: Channel::Fd,
        description: "a file descriptor one tenant's code leaves open is readable by another",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B), A(B)],
        hit: Verdict::Leak,
        sources: &[TENANT_ISOLATION, EKS_TENANT_ISOLATION],
    },
    ProbeDef {
        id: "LK-PROC",
        channel: Channel::Proc,
        description: "another tenant's processes (cmdline, environ) are visible through /proc",
        expected: [A(B), A(L), A(B), A(B), A(L), A(B), A(B)],
        hit: Verdict::Leak,
        sources: &[TENANT_ISOLATION, EKS_TENANT_ISOLATION],
    },
    ProbeDef {
        id: "LK-NET",
        channel: Channel::Net,
        description: "one tenant's code can open a connection to another tenant's endpoint (on Lambda: to the \
                      execution environment serving another tenant's invoke, while it runs)",
        // lambda-shared too: an environment serving the owner's invoke runs nothing else, so the
        // finder's invoke is in another environment; sharing one is LK-MEM's and LK-TMP's finding.
        expected: [A(B), ONE_PROCESS, Rule::SharedSecurityGroup, A(B), A(B), A(B), Rule::PodNetwork],
        hit: Verdict::Leak,
        sources: &[LAMBDA_NETWORKING, LAMBDA_VPC, EKS_NETWORK_POLICY, EKS_POD_SECURITY_GROUPS],
    },
    ProbeDef {
        id: "LK-PRINCIPAL",
        channel: Channel::Cred,
        description: "two tenants' code holds the same AWS principal (one instance role, one execution role per \
                      function): a risk by configuration, not a leak by itself; AWS gives a function one \
                      execution role, and per-tenant scoping (session tags) is the customer's",
        expected: [A(B), A(R), Rule::ImdsReachable(R), A(B), A(R), A(R), Rule::NodeImds(R)],
        hit: Verdict::Risk,
        sources: &[EXECUTION_ROLE, TENANT_ISOLATION, SESSION_TAGS, TASK_ROLES, EKS_IAM, EKS_POD_IDENTITY, EKS_IRSA],
    },
    ProbeDef {
        id: "LK-DATA",
        channel: Channel::Data,
        description: "a tenant's code reads another tenant's object (one S3 prefix per tenant) with the \
                      credentials it holds; real IAM policies decide it",
        expected: [A(B), A(L), Rule::ImdsReachable(L), A(B), A(L), A(L), Rule::NodeImds(L)],
        hit: Verdict::Leak,
        sources: &[EXECUTION_ROLE, TENANT_ISOLATION, SESSION_TAGS, TASK_ROLES, EKS_IAM, EKS_POD_IDENTITY, EKS_IRSA],
    },
    ProbeDef {
        id: "LK-RNG",
        channel: Channel::Rng,
        description: "a tenant's random draws repeat or continue another tenant's (reused generator state); \
                      AWS documents random-state reuse only for restored SnapStart snapshots",
        expected: [A(B), Rule::NaiveHygiene, A(B), A(B), Rule::NaiveHygiene, A(B), A(B)],
        hit: Verdict::Leak,
        sources: &[SNAPSTART_UNIQUENESS],
    },
    ProbeDef {
        id: "LK-KERNEL",
        channel: Channel::Kernel,
        description: "two tenants' code runs on one kernel (equal boot_id, btime and release, as in Wang et \
                      al., ATC'18): instances are separate VMs, Lambda environments and Fargate tasks \
                      Firecracker microVMs",
        expected: [A(B), A(R), Rule::Ec2LaunchType(R), A(B), A(R), A(B), Rule::SharedNode(R)],
        hit: Verdict::Risk,
        sources: &[WANG_ATC18, LAMBDA_ISOLATION, FARGATE_ISOLATION, EKS_TENANT_ISOLATION],
    },
    ProbeDef {
        id: "LK-APP",
        channel: Channel::App,
        description: "the application's cache, keyed without the tenant, returns another tenant's record",
        expected: [A(B), Rule::NaiveHygiene, A(B), A(B), Rule::NaiveHygiene, A(B), A(B)],
        hit: Verdict::Leak,
        sources: &[],
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

    /// Why the channel does not exist on `tier`, when the catalogue says so.
    pub fn not_applicable_reason(&self, tier: TierId) -> Option<&'static str> {
        match self.rule(tier) {
            Rule::NotApplicable(why) => Some(why),
            _ => None,
        }
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

/// One cross-tenant trial that saw the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    pub finder: String,
    /// Whether the trial's own positive control passed.
    pub control_passed: bool,
    /// Tenants whose canary (or state) the finder saw: empty for no hit.
    pub owners: BTreeSet<String>,
}

/// Every canary planted in a run, and what each trial found.
#[derive(Debug, Default)]
pub struct Ledger {
    planted: BTreeMap<String, Planted>,
    cells: BTreeMap<(TierId, Channel), CellCounts>,
}

/// Tallies for one (tier, channel) cell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CellCounts {
    /// Cross-tenant trials that saw the channel (each with its own control).
    pub trials: u64,
    /// Trials that found another tenant's canary (or state).
    pub hits: u64,
    /// Trials that could not see the channel: failed calls, unusable answers.
    pub blind: u64,
    /// Positive controls run (one per trial that saw the channel) and passed.
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

    /// The tenants other than `finder` whose canaries are among `found`; tokens the ledger
    /// never planted (another run's, or garbage) are ignored.
    pub fn owners_found(&self, finder: &str, found: &[String]) -> BTreeSet<String> {
        found
            .iter()
            .filter_map(|token| self.planted.get(token))
            .filter(|p| p.tenant != finder)
            .map(|p| p.tenant.clone())
            .collect()
    }

    /// Records a trial that saw the channel.
    pub fn record(&mut self, tier: TierId, channel: Channel, trial: Trial, at: Duration) {
        let cell = self.cells.entry((tier, channel)).or_default();
        cell.trials += 1;
        cell.controls += 1;
        cell.controls_passed += u64::from(trial.control_passed);
        if !trial.owners.is_empty() {
            cell.hits += 1;
            cell.first_hit = Some(cell.first_hit.map_or(at, |f| f.min(at)));
            for o in trial.owners {
                cell.pairs.insert(format!("{o}->{}", trial.finder));
            }
        }
    }

    /// Records a trial that could not see the channel.
    pub fn record_blind(&mut self, tier: TierId, channel: Channel) {
        self.cells.entry((tier, channel)).or_default().blind += 1;
    }

    pub fn cell(&self, tier: TierId, channel: Channel) -> Option<&CellCounts> {
        self.cells.get(&(tier, channel))
    }
}

/// Decides a cell. Any hit is `hit` (a leak, or a risk for shared-resource probes); without
/// one, the cell is blocked only if it has trials, every trial's control passed and no trial
/// was blind, else inconclusive.
pub fn verdict(expect: Expectation, hit: Verdict, counts: Option<&CellCounts>) -> Verdict {
    if expect == Expectation::NotApplicable {
        return Verdict::NotApplicable;
    }
    match counts {
        Some(c) if c.hits > 0 => hit,
        Some(c) if c.trials > 0 && c.blind == 0 && c.controls_passed == c.controls => Verdict::Blocked,
        _ => Verdict::Inconclusive,
    }
}

/// Whether a verdict contradicts the expectation in the direction CI must fail on: a leak, or
/// a shared resource, where the platform promises isolation.
pub fn unexpected_leak(expect: Expectation, v: Verdict) -> bool {
    matches!(v, Verdict::Leak | Verdict::Risk) && expect == Expectation::Blocked
}

/// The exact one-sided 95% upper bound (Clopper-Pearson) on the per-trial leak probability
/// after `hits` of `trials`: the largest p under which seeing at most `hits` still has 5%
/// probability. 0 of n gives 1 − 0.05^(1/n) (0 of 1,000: 0.0030). `None` without trials.
pub fn leak_bound_95(hits: u64, trials: u64) -> Option<f64> {
    const ALPHA: f64 = 0.05;
    if trials == 0 {
        return None;
    }
    if hits >= trials {
        return Some(1.0);
    }
    if hits == 0 {
        return Some(1.0 - ALPHA.powf(1.0 / trials as f64));
    }
    // P(X <= hits) falls as p rises: bisect for the p where it equals ALPHA.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if binomial_cdf(hits, trials, mid) > ALPHA {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

/// P(X <= k) for X ~ Binomial(n, p), 0 < p < 1, summed in log space so large n do not
/// underflow.
fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    // log of C(n, i) p^i q^(n-i), term by term from i = 0.
    let mut term = n as f64 * lq;
    let mut terms = Vec::with_capacity(k as usize + 1);
    for i in 0..=k {
        terms.push(term);
        term += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + lp - lq;
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planted(token: &str, tenant: &str) -> Planted {
        Planted { token: token.into(), tenant: tenant.into(), channel: Channel::Tmp, trial: 0, at: Duration::ZERO }
    }

    fn trial(finder: &str, control_passed: bool, owners: &[&str]) -> Trial {
        Trial { finder: finder.into(), control_passed, owners: owners.iter().map(|o| o.to_string()).collect() }
    }

    #[test]
    fn catalogue_ids_are_unique_and_stable() {
        let ids: BTreeSet<_> = CATALOGUE.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), CATALOGUE.len());
        assert!(probe("LK-TMP").is_some() && probe("LK-XYZ").is_none());
        let channels: BTreeSet<_> = CATALOGUE.iter().map(|p| p.channel).collect();
        assert_eq!(channels.len(), CATALOGUE.len(), "one mechanism per channel, one channel per probe");
    }

    #[test]
    fn shared_resource_probes_report_a_risk_and_cite_aws() {
        for id in ["LK-PRINCIPAL", "LK-KERNEL"] {
            let p = probe(id).unwrap();
            assert_eq!(p.hit, Verdict::Risk, "{id}");
            assert!(p.sources.iter().all(|s| s.starts_with("https://")) && !p.sources.is_empty(), "{id}");
        }
        for id in ["LK-DATA", "LK-RNG"] {
            assert!(probe(id).unwrap().sources.iter().any(|s| s.starts_with("https://docs.aws.amazon.com/")));
        }
        let net = probe("LK-NET").unwrap();
        assert!(net.not_applicable_reason(TierId::SharedEc2).unwrap().contains("one process"));
        assert_eq!(net.not_applicable_reason(TierId::SiloEc2), None);
        for tier in [TierId::LambdaPerTenant, TierId::LambdaShared, TierId::LambdaTenantIsolation] {
            assert_eq!(net.rule(tier), A(B), "{tier:?}: Lambda admits no inbound connection");
        }
        assert!(net.sources.contains(&LAMBDA_NETWORKING));
    }

    #[test]
    fn canaries_are_distinct_and_name_their_origin() {
        let a = canary("r1", "acme", Channel::Tmp, 3, 0xdead_beef);
        assert!(a.starts_with("isobench-canary:v1:r1:acme:tmp:3:"));
        assert_eq!(a.rsplit(':').next().unwrap().len(), 32);
        assert_ne!(a, canary("r1", "acme", Channel::Tmp, 3, 0xdead_bef0));
    }

    #[test]
    fn other_tenants_canaries_are_hits_own_and_unknown_are_not() {
        let mut l = Ledger::default();
        l.plant(planted("c-a", "a"));
        l.plant(planted("c-b", "b"));
        let owners = l.owners_found("a", &["c-a".into(), "c-b".into(), "junk".into()]);
        assert_eq!(owners.into_iter().collect::<Vec<_>>(), ["b"]);
        let t = TierId::SharedEc2;
        l.record(t, Channel::Tmp, trial("a", true, &["b"]), Duration::from_millis(9));
        l.record(t, Channel::Tmp, trial("b", true, &[]), Duration::from_millis(12));
        let c = l.cell(t, Channel::Tmp).unwrap();
        assert_eq!((c.trials, c.hits, c.controls, c.controls_passed, c.blind), (2, 1, 2, 2, 0));
        assert_eq!(c.first_hit, Some(Duration::from_millis(9)));
        assert!(c.pairs.contains("b->a"));
        assert_eq!(verdict(Expectation::Leak, Verdict::Leak, Some(c)), Verdict::Leak);
        assert_eq!(verdict(Expectation::Risk, Verdict::Risk, Some(c)), Verdict::Risk);
    }

    #[test]
    fn blocked_needs_every_control_and_no_blind_trial() {
        let t = TierId::SiloEc2;
        let v = |l: &Ledger| verdict(Expectation::Blocked, Verdict::Leak, l.cell(t, Channel::Tmp));
        let mut l = Ledger::default();
        assert_eq!(v(&l), Verdict::Inconclusive, "no trial");
        l.record(t, Channel::Tmp, trial("b", true, &[]), Duration::ZERO);
        assert_eq!(v(&l), Verdict::Blocked);
        l.record(t, Channel::Tmp, trial("b", false, &[]), Duration::ZERO);
        assert_eq!(v(&l), Verdict::Inconclusive, "one control of two failed");

        let mut l = Ledger::default();
        l.record(t, Channel::Tmp, trial("b", true, &[]), Duration::ZERO);
        l.record_blind(t, Channel::Tmp);
        assert_eq!(v(&l), Verdict::Inconclusive, "a blind trial");
        assert_eq!(l.cell(t, Channel::Tmp).unwrap().blind, 1);
        assert_eq!(verdict(Expectation::NotApplicable, Verdict::Leak, l.cell(t, Channel::Tmp)), Verdict::NotApplicable);
    }

    #[test]
    fn unexpected_means_a_hit_where_isolation_is_promised() {
        assert!(unexpected_leak(Expectation::Blocked, Verdict::Leak));
        assert!(unexpected_leak(Expectation::Blocked, Verdict::Risk));
        assert!(!unexpected_leak(Expectation::Risk, Verdict::Risk));
        assert!(!unexpected_leak(Expectation::Blocked, Verdict::EmulatorLimit));
    }

    #[test]
    fn leak_bound_is_exact_clopper_pearson() {
        let b = |h, n| leak_bound_95(h, n).unwrap();
        assert_eq!(leak_bound_95(0, 0), None);
        assert!((b(0, 1000) - 0.002_991).abs() < 1e-6, "{}", b(0, 1000));
        assert!((b(0, 30) - 0.095_034).abs() < 1e-6, "{}", b(0, 30));
        // 1 of 10: solves 0.9^... (1-p)^10 + 10 p (1-p)^9 = 0.05.
        assert!((b(1, 10) - 0.393_8).abs() < 1e-3, "{}", b(1, 10));
        // 5 of 100: the tabulated one-sided 95% bound is 0.1023.
        assert!((b(5, 100) - 0.102_3).abs() < 1e-3, "{}", b(5, 100));
        assert_eq!(b(7, 7), 1.0);
        // Large n does not underflow, and more hits never lower the bound.
        assert!(b(10, 100_000) > b(9, 100_000) && b(10, 100_000) < 1e-3);
    }
}
