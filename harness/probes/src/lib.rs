//! Cross-tenant leakage probes. For every channel of the catalogue
//! ([`isobench_core::probes::CATALOGUE`]) the runner acts as a compromised tenant would. Each
//! trial has an owner and a finder: the owner plants a fresh canary through the channel (or
//! draws random values, or reads its kernel's fingerprint), the owner then finds its own
//! canary again (the trial's positive control: proof the probe sees the channel in this very
//! trial), and the finder sweeps the channel. A sweep that returns another tenant's canary is a
//! hit. A trial whose call failed, or whose answer was unusable, is *blind*: counted, never
//! clean.
//!
//! The runner drives the workload's probe agent through the tier's own endpoints (HTTP for
//! instances and tasks, invokes for functions), so the same code runs against every backend.
//! It runs beside the traffic, so environments are reused the way production reuses them, and
//! its trials force the pattern that matters: tenant A, then tenant B, on the same warm target.

mod kernel;
mod rng;
mod served;
mod transport;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use isobench_core::TenantTarget;
use isobench_core::probes::{self, Channel, Expectation, Ledger, Planted, ProbeDef, Trial, Verdict};
use isobench_core::scenario::{TierSettings, WorkloadSpec};
use isobench_core::tier::TierId;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use transport::{Action, CallError, Transport};

/// What to probe on one deployed tier.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub run_id: String,
    pub tier: TierId,
    /// The probes to run, each with what it expects of this tier as configured
    /// ([`ProbeSpec::expectations`]).
    pub probes: Vec<(&'static ProbeDef, Expectation)>,
    /// Cross-tenant trials per probe.
    pub trials: u32,
    pub seed: u64,
    /// Channels the backend cannot probe, with why (e.g. the `endpoints` target cannot reach
    /// tenants' private addresses); their cells are `not-applicable` with that note.
    pub not_applicable: Vec<(Channel, String)>,
}

impl ProbeSpec {
    /// `probes` with what each expects of `tier` as configured (`ProbeDef::expect`), computed
    /// where the settings are, so a runner in another process needs only the result.
    pub fn expectations(
        tier: TierId,
        settings: &TierSettings,
        workload: &WorkloadSpec,
        probes: impl IntoIterator<Item = &'static ProbeDef>,
    ) -> Vec<(&'static ProbeDef, Expectation)> {
        probes.into_iter().map(|d| (d, d.expect(tier, settings, workload))).collect()
    }
}

/// [`ProbeSpec`] as data, for a probe runner in another process (a load agent): the catalogue
/// entries by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireProbeSpec {
    pub run_id: String,
    pub tier: TierId,
    pub probes: Vec<WireProbe>,
    pub trials: u32,
    pub seed: u64,
    pub not_applicable: Vec<(Channel, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireProbe {
    pub id: String,
    pub expected: Expectation,
}

impl WireProbeSpec {
    pub fn from_spec(s: &ProbeSpec) -> WireProbeSpec {
        WireProbeSpec {
            run_id: s.run_id.clone(),
            tier: s.tier,
            probes: s.probes.iter().map(|(d, e)| WireProbe { id: d.id.to_string(), expected: *e }).collect(),
            trials: s.trials,
            seed: s.seed,
            not_applicable: s.not_applicable.clone(),
        }
    }

    /// The spec, its probes looked up in this build's catalogue.
    pub fn to_spec(&self) -> Result<ProbeSpec, ProbeError> {
        let probes = self
            .probes
            .iter()
            .map(|p| {
                probes::probe(&p.id).map(|d| (d, p.expected)).ok_or_else(|| ProbeError::UnknownProbe(p.id.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(ProbeSpec {
            run_id: self.run_id.clone(),
            tier: self.tier,
            probes,
            trials: self.trials,
            seed: self.seed,
            not_applicable: self.not_applicable.clone(),
        })
    }
}

/// Why `LK-DATA` has no verdict on a backend that gives no reason of its own (AWS).
pub const DATA_PROBE_NOT_BUILT: &str = "the data-access probe (a bucket with one prefix per tenant, roles as the \
     scenario states them, each tenant reading another's object with its own credentials) is not built yet";

/// One (probe, tier) cell of the leak matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub probe: String,
    pub channel: Channel,
    pub tier: TierId,
    pub expected: Expectation,
    pub verdict: Verdict,
    /// A leak where the platform promises isolation.
    pub unexpected: bool,
    /// Trials that saw the channel, and those that hit.
    pub trials: u64,
    pub hits: u64,
    /// Trials that could not see the channel (failed calls, unusable answers).
    pub blind: u64,
    /// One control per trial that saw the channel, and those that passed.
    pub controls: u64,
    pub controls_passed: u64,
    /// Exact upper 95% bound on the per-trial leak probability.
    pub leak_bound_95: Option<f64>,
    /// Time from the start of probing to the first cross-tenant hit.
    pub first_hit_ms: Option<f64>,
    /// Tenant pairs seen leaking, `owner->finder` (at most 20 shown).
    pub pairs: Vec<String>,
    /// Calls that failed (the workload did not answer the probe); each made a trial blind.
    pub failed_calls: u64,
    /// Why the cell has no verdict, or what an `emulator-limit` verdict means here.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub tier: TierId,
    pub cells: Vec<CellResult>,
    pub wall_s: f64,
    /// The first few blind trials, for diagnosis.
    pub errors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probing needs at least two tenants, the plan has {0}")]
    TooFewTenants(usize),
    #[error("failed to join the harness network namespace: {0}")]
    Netns(nix::Error),
    #[error("failed to start the probe runtime: {0}")]
    Runtime(std::io::Error),
    #[error("probe `{0}` is not in this build's catalogue")]
    UnknownProbe(String),
    /// The probes ran in a load agent, which gave no report (it died, failed, or said why).
    #[error("the probes ran in load agent {agent}, which gave no report: {reason}")]
    Agent { agent: u32, reason: String },
    #[error("the traffic driver was to run the probes and gave no report")]
    NoReport,
}

/// Runs every probe of `spec` against the deployed `targets`, from inside `netns` when given.
/// Blocks until done or `cancel` is set.
pub fn run(
    spec: &ProbeSpec,
    targets: &[TenantTarget],
    netns: Option<&OwnedFd>,
    cancel: &AtomicBool,
) -> Result<ProbeReport, ProbeError> {
    let mut tenants: Vec<Tenant> = targets
        .iter()
        .map(|target| {
            let t = Transport::from(&target.endpoint);
            let addr = match &t {
                Transport::Http(a) => Some(*a),
                Transport::Function(_) => None,
            };
            Tenant { id: target.tenant.clone(), t, addr }
        })
        .collect();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    if tenants.len() < 2 {
        return Err(ProbeError::TooFewTenants(tenants.len()));
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(fd) = netns {
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(ProbeError::Netns)?;
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ProbeError::Runtime)?;
            Ok(rt.block_on(Runner::new(spec, tenants, cancel).run_all()))
        })
        .join()
        .expect("the probe runner does not panic")
    })
}

struct Tenant {
    id: String,
    t: Transport,
    addr: Option<SocketAddr>,
}

/// Why a trial could not see its channel.
#[derive(Debug, thiserror::Error)]
enum Blind {
    #[error("{0}")]
    Call(#[from] CallError),
    #[error("unusable answer: {0}")]
    Answer(String),
}

struct Runner<'a> {
    spec: &'a ProbeSpec,
    tenants: Vec<Tenant>,
    cancel: &'a AtomicBool,
    ledger: Ledger,
    rng: rand::rngs::StdRng,
    start: Instant,
    failed: std::collections::BTreeMap<Channel, u64>,
    errors: Vec<String>,
    /// The harness's own kernel, and whether some tenant's fingerprint was it.
    host_kernel: Option<kernel::Fingerprint>,
    on_host_kernel: bool,
    /// Addresses functions' environments reported (`net` on functions).
    net_addrs: BTreeSet<std::net::IpAddr>,
}

/// Sweeps an owner's control may take to find its canary when the plant's answer carries no
/// sweep of its own: a function's invokes are routed to any of its execution environments, and
/// state such as `/tmp` lives in the one that planted.
/// Each attempt races the traffic for that environment, hence many (each a fast call; a
/// control that finds its canary stops).
const CONTROL_ATTEMPTS: u32 = 50;
const CONTROL_PAUSE: Duration = Duration::from_millis(20);

impl<'a> Runner<'a> {
    fn new(spec: &'a ProbeSpec, tenants: Vec<Tenant>, cancel: &'a AtomicBool) -> Runner<'a> {
        Runner {
            spec,
            tenants,
            cancel,
            ledger: Ledger::default(),
            rng: rand::rngs::StdRng::seed_from_u64(spec.seed ^ 0x9e37_79b9_7f4a_7c15),
            start: Instant::now(),
            failed: Default::default(),
            errors: Vec::new(),
            host_kernel: kernel::host(),
            on_host_kernel: false,
            net_addrs: BTreeSet::new(),
        }
    }

    /// Owner and finder of a trial: every ordered pair comes round in turn.
    fn pair(&self, trial: u32) -> (usize, usize) {
        let n = self.tenants.len() as u32;
        let owner = trial % n;
        let finder = (owner + 1 + (trial / n) % (n - 1)) % n;
        (owner as usize, finder as usize)
    }

    async fn run_all(mut self) -> ProbeReport {
        let probes = self.spec.probes.clone();
        for &(def, expect) in &probes {
            if expect == Expectation::NotApplicable || self.note(def).is_some() {
                continue;
            }
            for trial in 0..self.spec.trials {
                if self.cancel.load(Ordering::Relaxed) {
                    break;
                }
                let (owner, finder) = self.pair(trial);
                let r = match def.channel {
                    Channel::Net => self.net_trial(trial, owner, finder).await,
                    Channel::Cred => self.principal_trial(owner, finder).await,
                    Channel::Rng => self.rng_trial(owner, finder).await,
                    Channel::Kernel => self.kernel_trial(owner, finder).await,
                    Channel::App => self.app_trial(trial, owner, finder).await,
                    c => self.canary_trial(c, trial, owner, finder, json!({})).await,
                };
                let at = self.at();
                match r {
                    Ok(t) => self.ledger.record(self.spec.tier, def.channel, t, at),
                    Err(e) => {
                        self.ledger.record_blind(self.spec.tier, def.channel);
                        if matches!(e, Blind::Call(_)) {
                            *self.failed.entry(def.channel).or_default() += 1;
                        }
                        if self.errors.len() < 10 {
                            self.errors.push(format!("{} trial {trial} blind: {e}", def.id));
                        }
                    }
                }
            }
        }
        self.report(&probes)
    }

    /// Why `def` is not probed here: the catalogue's reason for this tier, the backend's, or
    /// (data access) the probe not being built.
    fn note(&self, def: &ProbeDef) -> Option<String> {
        let backend = self.spec.not_applicable.iter().find(|(c, _)| *c == def.channel).map(|(_, why)| why.clone());
        let data = (def.channel == Channel::Data).then(|| DATA_PROBE_NOT_BUILT.to_string());
        def.not_applicable_reason(self.spec.tier).map(str::to_string).or(backend).or(data)
    }

    fn at(&self) -> Duration {
        self.start.elapsed()
    }

    fn id(&self, i: usize) -> String {
        self.tenants[i].id.clone()
    }

    /// A trial that saw the channel: `found` are the finder's tokens.
    fn trial(&self, finder: usize, control_passed: bool, found: &[String]) -> Trial {
        let finder = self.id(finder);
        let owners = self.ledger.owners_found(&finder, found);
        Trial { finder, control_passed, owners }
    }

    /// A trial decided outside the token scheme: `shared` says whether the finder saw the
    /// owner's state.
    fn compared(&self, owner: usize, finder: usize, control_passed: bool, shared: bool) -> Trial {
        let owners = if shared { BTreeSet::from([self.id(owner)]) } else { BTreeSet::new() };
        Trial { finder: self.id(finder), control_passed, owners }
    }

    /// Plants a fresh canary through `owner`; blind if the workload could not plant it. Returns
    /// the token and the plant's own sweep (`found`, when the agent makes one).
    async fn plant(
        &mut self,
        channel: Channel,
        trial: u32,
        owner: usize,
    ) -> Result<(String, Option<Vec<String>>), Blind> {
        let random: u128 = self.rng.random();
        let tenant = self.id(owner);
        let token = probes::canary(&self.spec.run_id, &tenant, channel, u64::from(trial), random);
        let at = self.at();
        self.ledger.plant(Planted { token: token.clone(), tenant, channel, trial: u64::from(trial), at });
        let o = &self.tenants[owner];
        let answer = o.t.probe(&o.id, channel, Action::Plant(&token)).await?;
        if answer["planted"] != true {
            return Err(Blind::Answer(format!("not planted: {}", answer["detail"])));
        }
        let found = answer["found"].is_array().then(|| tokens(&answer));
        Ok((token, found))
    }

    /// A sweep's answer; blind when it lacks the list of found canaries.
    async fn sweep(&self, who: usize, channel: Channel, params: Value) -> Result<Value, Blind> {
        let t = &self.tenants[who];
        let answer = t.t.probe(&t.id, channel, Action::Sweep(params)).await?;
        if !answer["found"].is_array() {
            return Err(Blind::Answer(format!("no list of found canaries in {answer}")));
        }
        Ok(answer)
    }

    /// Plant by the owner, control by the owner, sweep by the finder.
    async fn canary_trial(
        &mut self,
        ch: Channel,
        trial: u32,
        owner: usize,
        finder: usize,
        params: Value,
    ) -> Result<Trial, Blind> {
        let (token, own) = self.plant(ch, trial, owner).await?;
        // The plant's own sweep, in the environment that planted; else separate sweeps.
        let mut control = own.is_some_and(|own| own.contains(&token));
        for _ in 0..if control { 0 } else { CONTROL_ATTEMPTS } {
            control = tokens(&self.sweep(owner, ch, params.clone()).await?).contains(&token);
            if control {
                break;
            }
        }
        let found = tokens(&self.sweep(finder, ch, params).await?);
        Ok(self.trial(finder, control, &found))
    }

    /// The owner's beacon holds the canary; the owner and then the finder fetch it over the
    /// network. A function's owner serves it during one invoke instead ([`served`]).
    async fn net_trial(&mut self, trial: u32, owner: usize, finder: usize) -> Result<Trial, Blind> {
        if matches!(self.tenants[owner].t, Transport::Function(_)) {
            return self.served_net_trial(trial, owner, finder).await;
        }
        let Some(addr) = self.tenants[owner].addr else {
            return Err(Blind::Answer(format!("no network address for {}", self.id(owner))));
        };
        let params = json!({"peers": [addr.to_string()], "timeout_ms": 300});
        self.canary_trial(Channel::Net, trial, owner, finder, params).await
    }

    /// The principals the owner's and the finder's code can obtain: one in common is a shared
    /// principal. The control: the owner obtains a principal at all.
    async fn principal_trial(&mut self, owner: usize, finder: usize) -> Result<Trial, Blind> {
        let mine = principals(&self.sweep(owner, Channel::Cred, json!({})).await?);
        let theirs = principals(&self.sweep(finder, Channel::Cred, json!({})).await?);
        let shared = !mine.is_disjoint(&theirs);
        Ok(self.compared(owner, finder, !mine.is_empty(), shared))
    }

    /// The owner's and then the finder's draws from the workload's generator: the finder's
    /// repeating or continuing the owner's is reused state. The control: the detector
    /// recognises the owner's own draws as one generator's.
    async fn rng_trial(&mut self, owner: usize, finder: usize) -> Result<Trial, Blind> {
        let draws = |answer: &Value| {
            rng::states(&answer["detail"]).ok_or_else(|| Blind::Answer(format!("no draws in {answer}")))
        };
        let mine = draws(&self.sweep(owner, Channel::Rng, json!({})).await?)?;
        let theirs = draws(&self.sweep(finder, Channel::Rng, json!({})).await?)?;
        Ok(self.compared(owner, finder, rng::consecutive(&mine), rng::related(&mine, &theirs)))
    }

    /// Both tenants' kernel fingerprints: equal ones are one kernel. The control: the owner
    /// reads a complete fingerprint.
    async fn kernel_trial(&mut self, owner: usize, finder: usize) -> Result<Trial, Blind> {
        let mine = kernel::from_detail(&self.sweep(owner, Channel::Kernel, json!({})).await?["detail"]);
        let theirs = kernel::from_detail(&self.sweep(finder, Channel::Kernel, json!({})).await?["detail"]);
        if mine.is_some() && mine == self.host_kernel {
            self.on_host_kernel = true;
        }
        let shared = mine.is_some() && mine == theirs;
        Ok(self.compared(owner, finder, mine.is_some(), shared))
    }

    /// The application's own cache: the owner stores a canary under a key and reads it back
    /// (the control), the finder reads the same key through its own tenant path.
    async fn app_trial(&mut self, trial: u32, owner: usize, finder: usize) -> Result<Trial, Blind> {
        let random: u128 = self.rng.random();
        let (oid, fid) = (self.id(owner), self.id(finder));
        let token = probes::canary(&self.spec.run_id, &oid, Channel::App, u64::from(trial), random);
        let at = self.at();
        self.ledger.plant(Planted {
            token: token.clone(),
            tenant: oid.clone(),
            channel: Channel::App,
            trial: u64::from(trial),
            at,
        });
        let key = format!("probe-app-{}-{trial}", self.rng.random::<u32>());
        let status = self.tenants[owner].t.put(&oid, &key, &token).await?;
        if !(200..300).contains(&status) {
            return Err(CallError::Status { status, body: "put".into() }.into());
        }
        let mut control = false;
        for _ in 0..CONTROL_ATTEMPTS {
            let (status, body) = self.tenants[owner].t.get(&oid, &key).await?;
            control = status == 200 && tokens_in(&body).contains(&token);
            if control {
                break;
            }
            // Give the planting environment time to come free of traffic; if the owner's calls
            // now reach another environment (the planting one was busy or reaped), plant the
            // same record there too, so the control asks the channel, not the router.
            tokio::time::sleep(CONTROL_PAUSE).await;
            let status = self.tenants[owner].t.put(&oid, &key, &token).await?;
            if !(200..300).contains(&status) {
                return Err(CallError::Status { status, body: "put".into() }.into());
            }
        }
        let (status, body) = self.tenants[finder].t.get(&fid, &key).await?;
        if status != 200 && status != 404 {
            return Err(CallError::Status { status, body }.into());
        }
        Ok(self.trial(finder, control, &tokens_in(&body)))
    }

    fn report(self, probes: &[(&'static ProbeDef, Expectation)]) -> ProbeReport {
        let cells = probes.iter().map(|&(def, expected)| self.cell(def, expected)).collect();
        ProbeReport { tier: self.spec.tier, cells, wall_s: self.start.elapsed().as_secs_f64(), errors: self.errors }
    }

    fn cell(&self, def: &ProbeDef, expected: Expectation) -> CellResult {
        let mut note = self.note(def);
        let counts = self.ledger.cell(self.spec.tier, def.channel);
        let mut verdict = match note {
            Some(_) => Verdict::NotApplicable,
            None => probes::verdict(expected, def.hit, counts),
        };
        if def.channel == Channel::Kernel && self.on_host_kernel && verdict != Verdict::NotApplicable {
            verdict = Verdict::EmulatorLimit;
            note = Some(emulator_kernel_note(expected));
        }
        let c = counts.cloned().unwrap_or_default();
        CellResult {
            probe: def.id.to_string(),
            channel: def.channel,
            tier: self.spec.tier,
            expected,
            verdict,
            unexpected: probes::unexpected_leak(expected, verdict),
            trials: c.trials,
            hits: c.hits,
            blind: c.blind,
            controls: c.controls,
            controls_passed: c.controls_passed,
            leak_bound_95: probes::leak_bound_95(c.hits, c.trials),
            first_hit_ms: c.first_hit.map(|d| d.as_secs_f64() * 1e3),
            pairs: c.pairs.iter().take(20).cloned().collect(),
            failed_calls: self.failed.get(&def.channel).copied().unwrap_or(0),
            note,
        }
    }
}

/// What LK-KERNEL means where the tenants run on the harness's own kernel.
fn emulator_kernel_note(expected: Expectation) -> String {
    let aws = match expected {
        Expectation::Blocked => {
            "separate kernels (a VM per instance; a Firecracker microVM per Lambda environment or Fargate task)"
        }
        Expectation::Risk => "one kernel by design (the tenants share an instance or an execution environment)",
        Expectation::Leak | Expectation::NotApplicable => "see the expectation",
    };
    format!(
        "shared kernel: emulator limit. The tenants run on the harness host's own kernel, as every local tier \
         does; this is not a finding about AWS, where this tier has {aws}"
    )
}

/// The roles behind the principals in a `cred` sweep answer: two sessions of one role (each
/// Lambda environment assumes the execution role under its own session name) are one
/// principal.
fn principals(answer: &Value) -> BTreeSet<String> {
    tokens(answer).iter().filter_map(|s| s.strip_prefix("isobench-principal:")).map(role).collect()
}

/// `…:assumed-role/NAME/SESSION` as `…:role/NAME`; any other principal as it is.
fn role(principal: &str) -> String {
    match principal.split_once(":assumed-role/") {
        Some((head, rest)) => {
            let name = rest.split('/').next().unwrap_or(rest);
            format!("{}:role/{name}", head.replacen(":sts:", ":iam:", 1))
        }
        None => principal.to_string(),
    }
}

/// The canary tokens in a sweep answer.
fn tokens(answer: &Value) -> Vec<String> {
    answer["found"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Canary tokens inside arbitrary text (a record body).
fn tokens_in(text: &str) -> Vec<String> {
    const PREFIX: &str = "isobench-canary:v1:";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(ids: &[&str]) -> Vec<Tenant> {
        ids.iter()
            .map(|id| Tenant { id: id.to_string(), t: Transport::Http(([127, 0, 0, 1], 1).into()), addr: None })
            .collect()
    }

    #[test]
    fn sessions_of_one_role_are_one_principal() {
        let answer = json!({"found": [
            "isobench-principal:arn:aws:sts::1:assumed-role/fn-role/env-a",
            "isobench-principal:arn:aws:sts::1:assumed-role/fn-role/env-b",
            "isobench-principal:arn:aws:iam::1:role/fn-role",
            "isobench-principal:arn:aws:iam::1:role/other",
            "isobench-canary:v1:not-a-principal",
        ]});
        let p: Vec<String> = principals(&answer).into_iter().collect();
        assert_eq!(p, ["arn:aws:iam::1:role/fn-role", "arn:aws:iam::1:role/other"]);
    }

    #[test]
    fn tokens_are_extracted_exactly() {
        let body = "x isobench-canary:v1:r:a:tmp:1:00ff y\nisobench-canary:v1:r:b:app:2:abcd\"";
        assert_eq!(tokens_in(body), vec!["isobench-canary:v1:r:a:tmp:1:00ff", "isobench-canary:v1:r:b:app:2:abcd"]);
        assert!(tokens_in("nothing here").is_empty());
    }

    fn spec(tier: TierId, probes: &[&str], trials: u32) -> ProbeSpec {
        ProbeSpec {
            run_id: "r".into(),
            tier,
            probes: ProbeSpec::expectations(
                tier,
                &TierSettings::Ec2(isobench_core::scenario::Ec2Spec::new(
                    tier,
                    isobench_core::instance_types::lookup("t3.micro").unwrap(),
                )),
                &WorkloadSpec::default(),
                probes.iter().map(|id| probes::probe(id).unwrap()),
            ),
            trials,
            seed: 1,
            not_applicable: vec![],
        }
    }

    /// A fake function whose `tmp` channel keeps canaries per tenant (`shared`: one list for
    /// all) and whose `sweep` calls can be made to fail or to answer without `found`.
    #[derive(Debug, Default)]
    struct Fake {
        shared: bool,
        /// Sweep numbers (counting from 0) that answer 500, and that answer without `found`.
        fail: Vec<u32>,
        unusable: Vec<u32>,
        /// Plants that are acknowledged but not kept: the control cannot pass.
        forget: bool,
        /// Invokes (counting from 0) refused as over the concurrency limit.
        throttle: Vec<u32>,
        invokes: std::sync::atomic::AtomicU32,
        state: std::sync::Mutex<(u32, std::collections::BTreeMap<String, Vec<String>>)>,
    }

    impl isobench_core::backend::Invoke for Fake {
        fn invoke<'a>(
            &'a self,
            tenant: &'a str,
            payload: Vec<u8>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = isobench_core::backend::InvokeResult> + Send + 'a>>
        {
            if self.throttle.contains(&self.invokes.fetch_add(1, Ordering::SeqCst)) {
                let outcome = isobench_core::backend::InvokeOutcome::Throttled;
                return Box::pin(async move { isobench_core::backend::InvokeResult::bare(outcome) });
            }
            let event: Value = serde_json::from_slice(&payload).unwrap();
            let key = if self.shared { "all".to_string() } else { tenant.to_string() };
            let mut st = self.state.lock().unwrap();
            let (status, body) = if event["action"] == "plant" {
                if !self.forget {
                    st.1.entry(key).or_default().push(event["canary"].as_str().unwrap().to_string());
                }
                (200, json!({"channel": "tmp", "planted": true, "detail": ""}))
            } else {
                let n = st.0;
                st.0 += 1;
                let found = st.1.get(&key).cloned().unwrap_or_default();
                match n {
                    n if self.fail.contains(&n) => (500, json!({"error": "boom"})),
                    n if self.unusable.contains(&n) => (200, json!({"channel": "tmp", "detail": {}})),
                    _ => (200, json!({"channel": "tmp", "found": found, "detail": {}})),
                }
            };
            let envelope = json!({"status": status, "body": body.to_string()});
            let outcome = isobench_core::backend::InvokeOutcome::Ok(envelope.to_string().into_bytes());
            Box::pin(async move { isobench_core::backend::InvokeResult::bare(outcome) })
        }
    }

    /// Runs `probe` on `tier` against one function `f` serving tenants `a` and `b`.
    fn function_cell(
        f: impl isobench_core::backend::Invoke + 'static,
        tier: TierId,
        probe: &str,
        trials: u32,
    ) -> CellResult {
        let f: std::sync::Arc<dyn isobench_core::backend::Invoke> = std::sync::Arc::new(f);
        let targets: Vec<TenantTarget> = ["a", "b"]
            .iter()
            .map(|t| TenantTarget {
                tenant: t.to_string(),
                endpoint: isobench_core::backend::Endpoint::Function(std::sync::Arc::clone(&f)),
            })
            .collect();
        let cancel = AtomicBool::new(false);
        let r = run(&spec(tier, &[probe], trials), &targets, None, &cancel).unwrap();
        r.cells.into_iter().next().unwrap()
    }

    fn tmp_cell(tier: TierId, fake: Fake, trials: u32) -> CellResult {
        function_cell(fake, tier, "LK-TMP", trials)
    }

    #[test]
    fn every_trial_carries_its_control_and_states_its_bound() {
        let c = tmp_cell(TierId::SiloEc2, Fake::default(), 40);
        assert_eq!(c.verdict, Verdict::Blocked, "{c:?}");
        assert_eq!((c.trials, c.hits, c.blind, c.controls, c.controls_passed), (40, 0, 0, 40, 40));
        assert!((c.leak_bound_95.unwrap() - (1.0 - 0.05f64.powf(1.0 / 40.0))).abs() < 1e-12);

        let c = tmp_cell(TierId::SharedEc2, Fake { shared: true, ..Fake::default() }, 10);
        assert_eq!((c.verdict, c.hits, c.trials, c.unexpected), (Verdict::Leak, 10, 10, false));
        assert_eq!(c.leak_bound_95, Some(1.0));
        assert!(c.pairs.contains(&"a->b".to_string()), "{c:?}");
    }

    #[test]
    fn a_blind_trial_or_a_failed_control_is_never_clean() {
        // Sweep 5 fails (a 500), sweep 8 answers without `found`: two blind trials of 20.
        let c = tmp_cell(TierId::SiloEc2, Fake { fail: vec![5], unusable: vec![8], ..Fake::default() }, 20);
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert_eq!((c.trials, c.blind, c.failed_calls, c.controls_passed), (18, 2, 1, 18));
        // Throttled invokes never reached the code: retried, not blind (three in a row, once).
        let c = tmp_cell(TierId::SiloEc2, Fake { throttle: vec![3, 4, 5, 9], ..Fake::default() }, 10);
        assert_eq!((c.verdict, c.trials, c.blind), (Verdict::Blocked, 10, 0), "{c:?}");
        // Plants acknowledged but never seen again: every control fails.
        let c = tmp_cell(TierId::SiloEc2, Fake { forget: true, ..Fake::default() }, 5);
        assert_eq!((c.verdict, c.controls, c.controls_passed, c.blind), (Verdict::Inconclusive, 5, 0, 0));
    }

    /// A function whose app records live per execution environment, and whose first
    /// environment is gone after the first call: the owner's later calls reach another one.
    #[derive(Debug, Default)]
    struct Reaped {
        calls: std::sync::atomic::AtomicU32,
        records: std::sync::Mutex<std::collections::BTreeMap<(u32, String, String), String>>,
    }

    impl isobench_core::backend::Invoke for Reaped {
        fn invoke<'a>(
            &'a self,
            tenant: &'a str,
            payload: Vec<u8>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = isobench_core::backend::InvokeResult> + Send + 'a>>
        {
            let env = self.calls.fetch_add(1, Ordering::SeqCst).min(1);
            let event: Value = serde_json::from_slice(&payload).unwrap();
            let key = (env, tenant.to_string(), event["key"].as_str().unwrap().to_string());
            let mut records = self.records.lock().unwrap();
            let (status, body) = match event["op"].as_str() {
                Some("put") => {
                    records.insert(key, event["body"].as_str().unwrap().to_string());
                    (200, String::new())
                }
                _ => records.get(&key).map_or((404, String::new()), |v| (200, v.clone())),
            };
            let envelope = json!({"status": status, "body": body});
            let outcome = isobench_core::backend::InvokeOutcome::Ok(envelope.to_string().into_bytes());
            Box::pin(async move { isobench_core::backend::InvokeResult::bare(outcome) })
        }
    }

    #[test]
    fn an_app_record_planted_in_a_reaped_environment_is_planted_again_for_the_control() {
        let c = function_cell(Reaped::default(), TierId::LambdaTenantIsolation, "LK-APP", 1);
        assert_eq!((c.verdict, c.controls, c.controls_passed, c.blind), (Verdict::Blocked, 1, 1, 0), "{c:?}");
    }

    /// A function for LK-NET: each tenant's environment at its own address (`moved`: the
    /// owner serves from an address no sweep learnt of first), serving a canary for the window
    /// it is asked; a sweep finds it only through a `broken` filter, while it is served.
    #[derive(Debug, Default)]
    struct Served {
        broken: bool,
        moved: bool,
        /// A sweep that answers without `found`, and one that takes this long first.
        unusable: bool,
        slow: Option<Duration>,
        serving: std::sync::Mutex<Option<(String, String)>>,
    }

    fn address(tenant: &str, moved: bool) -> &'static str {
        match (tenant, moved) {
            ("a", false) => "10.0.0.7",
            ("a", true) => "10.0.9.7",
            _ => "10.0.0.9",
        }
    }

    impl isobench_core::backend::Invoke for Served {
        fn invoke<'a>(
            &'a self,
            tenant: &'a str,
            payload: Vec<u8>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = isobench_core::backend::InvokeResult> + Send + 'a>>
        {
            Box::pin(async move {
                let event: Value = serde_json::from_slice(&payload).unwrap();
                let p = &event["params"];
                let body = if event["action"] == "serve" {
                    let (token, at) = (p["canary"].as_str().unwrap().to_string(), address(tenant, self.moved));
                    let at = format!("{at}:{}", p["port"]);
                    *self.serving.lock().unwrap() = Some((token.clone(), at.clone()));
                    tokio::time::sleep(Duration::from_millis(p["serve_ms"].as_u64().unwrap())).await;
                    *self.serving.lock().unwrap() = None;
                    json!({"channel": "net", "planted": true, "address": at, "found": [token]})
                } else {
                    if let Some(d) = self.slow {
                        tokio::time::sleep(d).await;
                    }
                    let peers: Vec<String> = serde_json::from_value(p["peers"].clone()).unwrap_or_default();
                    let seen = self.serving.lock().unwrap().clone().filter(|(_, at)| self.broken && peers.contains(at));
                    let found: Vec<String> = seen.into_iter().map(|(t, _)| t).collect();
                    let detail = json!({"address": address(tenant, false)});
                    if self.unusable {
                        json!({"channel": "net", "detail": detail})
                    } else {
                        json!({"channel": "net", "found": found, "detail": detail})
                    }
                };
                let envelope = json!({"status": 200, "body": body.to_string()});
                isobench_core::backend::InvokeResult::bare(isobench_core::backend::InvokeOutcome::Ok(
                    envelope.to_string().into_bytes(),
                ))
            })
        }
    }

    #[test]
    fn a_function_beacon_is_swept_while_it_is_served() {
        let net = |f: Served, trials| function_cell(f, TierId::LambdaPerTenant, "LK-NET", trials);
        let c = net(Served::default(), 2);
        assert_eq!((c.verdict, c.trials, c.controls_passed, c.blind), (Verdict::Blocked, 2, 2, 0), "{c:?}");
        assert!((c.leak_bound_95.unwrap() - (1.0 - 0.05f64.powf(0.5))).abs() < 1e-12);
        // A broken filter: the finder fetches the owner's beacon, an unexpected leak.
        let c = net(Served { broken: true, ..Served::default() }, 2);
        assert_eq!((c.verdict, c.hits, c.unexpected), (Verdict::Leak, 2, true), "{c:?}");
        assert_eq!(c.pairs, ["a->b", "b->a"]);
        // The owner serves from an address no one reported: that attempt proves nothing, the
        // next sweeps it.
        let c = net(Served { moved: true, broken: true, ..Served::default() }, 1);
        assert_eq!((c.verdict, c.hits, c.blind), (Verdict::Leak, 1, 0), "{c:?}");
    }

    #[test]
    fn a_function_sweep_that_cannot_have_met_the_beacon_is_blind() {
        let net = |f: Served| function_cell(f, TierId::LambdaPerTenant, "LK-NET", 1);
        let c = net(Served { unusable: true, ..Served::default() });
        assert_eq!((c.verdict, c.trials, c.blind), (Verdict::Inconclusive, 0, 1), "{c:?}");
        // A sweep that starts after the window closed would read "blocked" through a broken
        // filter: it is blind instead.
        let c = net(Served { broken: true, slow: Some(served::SERVE), ..Served::default() });
        assert_eq!((c.verdict, c.trials, c.hits, c.blind), (Verdict::Inconclusive, 0, 0, 1), "{c:?}");
    }

    #[test]
    fn channels_without_a_probe_here_say_why() {
        let (spec, cancel) = (spec(TierId::SharedEc2, &["LK-NET", "LK-DATA"], 0), AtomicBool::new(false));
        let r = Runner::new(&spec, tenants(&["a", "b"]), &cancel);
        let net = r.cell(spec.probes[0].0, spec.probes[0].1);
        assert_eq!(net.verdict, Verdict::NotApplicable);
        assert!(net.note.unwrap().contains("one process"));
        let data = r.cell(spec.probes[1].0, spec.probes[1].1);
        assert_eq!((data.verdict, data.note.as_deref()), (Verdict::NotApplicable, Some(DATA_PROBE_NOT_BUILT)));
        assert_eq!(data.expected, Expectation::Leak, "the AWS expectation stays beside the n/a");
    }

    #[test]
    fn a_spec_and_a_report_travel_as_data() {
        let s = spec(TierId::SiloEc2, &["LK-TMP", "LK-NET"], 3);
        let wire: WireProbeSpec =
            serde_json::from_str(&serde_json::to_string(&WireProbeSpec::from_spec(&s)).unwrap()).unwrap();
        let back = wire.to_spec().unwrap();
        let ids = |s: &ProbeSpec| s.probes.iter().map(|(d, e)| (d.id, *e)).collect::<Vec<_>>();
        assert_eq!((ids(&back), back.trials, back.seed, back.tier), (ids(&s), 3, 1, TierId::SiloEc2));
        let mut unknown = wire.clone();
        unknown.probes[0].id = "LK-NOPE".into();
        assert!(matches!(unknown.to_spec(), Err(ProbeError::UnknownProbe(id)) if id == "LK-NOPE"));
        let cancel = AtomicBool::new(false);
        let report = Runner::new(&s, tenants(&["a", "b"]), &cancel).report(&s.probes);
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<ProbeReport>(&json).unwrap(), report);
    }

    #[test]
    fn pairs_cover_every_ordered_pair() {
        let spec = spec(TierId::SiloEc2, &[], 0);
        let cancel = AtomicBool::new(false);
        let r = Runner::new(&spec, tenants(&["a", "b", "c"]), &cancel);
        let mut seen = std::collections::BTreeSet::new();
        for trial in 0..6 {
            let (o, f) = r.pair(trial);
            assert_ne!(o, f);
            seen.insert((o, f));
        }
        assert_eq!(seen.len(), 6);
    }
}
