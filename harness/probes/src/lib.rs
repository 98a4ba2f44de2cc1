//! Cross-tenant leakage probes. For every channel of the catalogue
//! ([`isobench_core::probes::CATALOGUE`]) the runner acts as a compromised tenant would:
//! one tenant plants a fresh canary through the channel, the same tenant looks for it again
//! (the positive control: proof the probe can see the channel at all), and another tenant
//! sweeps the channel. A sweep that returns another tenant's canary is a leak.
//!
//! The runner drives the workload's probe agent through the tier's own endpoints (HTTP for
//! instances and tasks, invokes for functions), so the same code runs against every backend.
//! It runs beside the traffic, so environments are reused the way production reuses them, and
//! its trials force the pattern that matters: tenant A, then tenant B, on the same warm target.

mod transport;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use isobench_core::TenantTarget;
use isobench_core::probes::{self, Channel, Expectation, Ledger, Planted, ProbeDef, Verdict};
use isobench_core::scenario::{TierSettings, WorkloadSpec};
use isobench_core::tier::TierId;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

pub use transport::{Action, CallError, Transport};

/// What to probe on one deployed tier.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub run_id: String,
    pub tier: TierId,
    pub settings: TierSettings,
    pub workload: WorkloadSpec,
    pub probes: Vec<&'static ProbeDef>,
    /// Cross-tenant trials per probe.
    pub trials: u32,
    pub seed: u64,
    /// Channels the backend cannot probe, with why (e.g. the `endpoints` target cannot reach
    /// tenants' private addresses); their cells are `not-applicable` with that note.
    pub not_applicable: Vec<(Channel, String)>,
}

/// One (probe, tier) cell of the leak matrix.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    pub probe: String,
    pub channel: Channel,
    pub tier: TierId,
    pub expected: Expectation,
    pub verdict: Verdict,
    /// A leak where the platform promises isolation.
    pub unexpected: bool,
    pub trials: u64,
    pub hits: u64,
    pub controls: u64,
    pub controls_passed: u64,
    /// Time from the start of probing to the first cross-tenant hit.
    pub first_hit_ms: Option<f64>,
    /// Tenant pairs seen leaking, `owner->finder` (at most 20 shown).
    pub pairs: Vec<String>,
    /// Calls that failed (the workload did not answer the probe); they count as no trial.
    pub failed_calls: u64,
    /// Why the cell has no verdict, when the backend could not probe the channel.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub tier: TierId,
    pub cells: Vec<CellResult>,
    pub wall_s: f64,
    /// The first few call failures, for diagnosis.
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

struct Runner<'a> {
    spec: &'a ProbeSpec,
    tenants: Vec<Tenant>,
    cancel: &'a AtomicBool,
    ledger: Ledger,
    rng: rand::rngs::StdRng,
    start: Instant,
    failed: std::collections::BTreeMap<Channel, u64>,
    errors: Vec<String>,
}

/// Positive controls on the first trials and then every tenth: enough to prove the channel is
/// observable without doubling the cost of every trial.
fn control_due(trial: u32) -> bool {
    trial < 3 || trial.is_multiple_of(10)
}

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
        for def in &probes {
            let expect = def.expect(self.spec.tier, &self.spec.settings, &self.spec.workload);
            if expect == Expectation::NotApplicable || self.note(def.channel).is_some() {
                continue;
            }
            for trial in 0..self.spec.trials {
                if self.cancel.load(Ordering::Relaxed) {
                    break;
                }
                let (owner, finder) = self.pair(trial);
                let r = match def.channel {
                    Channel::Net => self.net_trial(trial, owner, finder).await,
                    Channel::Cred => self.cred_trial(finder, control_due(trial)).await,
                    Channel::Rng => self.rng_trial(owner, finder).await,
                    Channel::App => self.app_trial(trial, owner, finder).await,
                    c => self.canary_trial(c, trial, owner, finder, Value::Null).await,
                };
                if let Err(e) = r {
                    *self.failed.entry(def.channel).or_default() += 1;
                    if self.errors.len() < 10 {
                        self.errors.push(format!("{} trial {trial}: {e}", def.id));
                    }
                }
            }
        }
        self.report(&probes)
    }

    fn note(&self, channel: Channel) -> Option<&str> {
        self.spec.not_applicable.iter().find(|(c, _)| *c == channel).map(|(_, why)| why.as_str())
    }

    fn at(&self) -> Duration {
        self.start.elapsed()
    }

    fn plant(&mut self, channel: Channel, trial: u32, owner: usize) -> String {
        let random: u128 = self.rng.random();
        let tenant = self.tenants[owner].id.clone();
        let token = probes::canary(&self.spec.run_id, &tenant, channel, u64::from(trial), random);
        let at = self.at();
        self.ledger.plant(Planted { token: token.clone(), tenant, channel, trial: u64::from(trial), at });
        token
    }

    async fn sweep(&mut self, channel: Channel, who: usize, params: Value, control: bool) -> Result<(), CallError> {
        let params = if params.is_null() { json!({}) } else { params };
        let answer = self.tenants[who].t.probe(&self.tenants[who].id, channel, Action::Sweep(params)).await?;
        let found = tokens(&answer);
        let at = self.at();
        let finder = self.tenants[who].id.clone();
        self.ledger.sweep(self.spec.tier, channel, &finder, &found, control, at);
        Ok(())
    }

    /// Plant by the owner, control by the owner, sweep by the finder.
    async fn canary_trial(
        &mut self,
        ch: Channel,
        trial: u32,
        owner: usize,
        finder: usize,
        params: Value,
    ) -> Result<(), CallError> {
        let token = self.plant(ch, trial, owner);
        let o = &self.tenants[owner];
        o.t.probe(&o.id, ch, Action::Plant(&token)).await?;
        if control_due(trial) {
            self.sweep(ch, owner, params.clone(), true).await?;
        }
        self.sweep(ch, finder, params, false).await
    }

    /// The owner's beacon holds the canary; the finder tries to fetch it over the network.
    async fn net_trial(&mut self, trial: u32, owner: usize, finder: usize) -> Result<(), CallError> {
        let Some(addr) = self.tenants[owner].addr else { return Ok(()) };
        let token = self.plant(Channel::Net, trial, owner);
        let o = &self.tenants[owner];
        o.t.probe(&o.id, Channel::Net, Action::Plant(&token)).await?;
        let params = json!({"peers": [addr.to_string()], "timeout_ms": 300});
        if control_due(trial) {
            self.sweep(Channel::Net, owner, params.clone(), true).await?;
        }
        self.sweep(Channel::Net, finder, params, false).await
    }

    /// Which principals the finder's code can obtain; any not its own is a leak.
    async fn cred_trial(&mut self, finder: usize, control: bool) -> Result<(), CallError> {
        let f = &self.tenants[finder];
        let answer = f.t.probe(&f.id, Channel::Cred, Action::Sweep(json!({}))).await?;
        let principals: Vec<String> = answer["found"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .filter_map(|s| s.strip_prefix("isobench-principal:"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let own = |p: &str| principal_owner(p, &self.tenants) == Some(finder);
        let leaked = principals.iter().any(|p| !own(p));
        let control = control.then_some(!principals.is_empty());
        let at = self.at();
        self.ledger.observe(self.spec.tier, Channel::Cred, leaked, control, at);
        Ok(())
    }

    /// Two tenants' first random bytes compared; the control reads the owner's twice.
    async fn rng_trial(&mut self, owner: usize, finder: usize) -> Result<(), CallError> {
        let read = |i: usize| {
            let t = &self.tenants[i];
            async move {
                let a = t.t.probe(&t.id, Channel::Rng, Action::Sweep(json!({}))).await?;
                Ok::<String, CallError>(a["detail"]["first_random"].as_str().unwrap_or_default().to_string())
            }
        };
        let a = read(owner).await?;
        let a2 = read(owner).await?;
        let b = read(finder).await?;
        let at = self.at();
        self.ledger.observe(self.spec.tier, Channel::Rng, !a.is_empty() && a == b, Some(!a.is_empty() && a == a2), at);
        Ok(())
    }

    /// The application's own cache: the owner stores a canary under a key, the finder reads
    /// the same key through its own tenant path.
    async fn app_trial(&mut self, trial: u32, owner: usize, finder: usize) -> Result<(), CallError> {
        let token = self.plant(Channel::App, trial, owner);
        let key = format!("probe-app-{}-{trial}", self.rng.random::<u32>());
        let (o, f) = (&self.tenants[owner], &self.tenants[finder]);
        let status = o.t.put(&o.id, &key, &token).await?;
        if !(200..300).contains(&status) {
            return Err(CallError::Status { status, body: "put".into() });
        }
        let (oid, fid) = (o.id.clone(), f.id.clone());
        if control_due(trial) {
            let (_, body) = self.tenants[owner].t.get(&oid, &key).await?;
            let at = self.at();
            self.ledger.sweep(self.spec.tier, Channel::App, &oid, &tokens_in(&body), true, at);
        }
        let (_, body) = self.tenants[finder].t.get(&fid, &key).await?;
        let at = self.at();
        self.ledger.sweep(self.spec.tier, Channel::App, &fid, &tokens_in(&body), false, at);
        Ok(())
    }

    fn report(self, probes: &[&'static ProbeDef]) -> ProbeReport {
        let cells = probes
            .iter()
            .map(|def| {
                let note = self.note(def.channel).map(str::to_string);
                let expected = match note {
                    Some(_) => Expectation::NotApplicable,
                    None => def.expect(self.spec.tier, &self.spec.settings, &self.spec.workload),
                };
                let counts = self.ledger.cell(self.spec.tier, def.channel);
                let verdict = probes::verdict(expected, counts);
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
                    controls: c.controls,
                    controls_passed: c.controls_passed,
                    first_hit_ms: c.first_hit.map(|d| d.as_secs_f64() * 1e3),
                    pairs: c.pairs.iter().take(20).cloned().collect(),
                    failed_calls: self.failed.get(&def.channel).copied().unwrap_or(0),
                    note,
                }
            })
            .collect();
        ProbeReport { tier: self.spec.tier, cells, wall_s: self.start.elapsed().as_secs_f64(), errors: self.errors }
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

/// The role a principal names: `…:role/NAME`, `…:assumed-role/NAME/SESSION` or `role/NAME`.
fn role_name(principal: &str) -> &str {
    let after = |marker: &str| principal.find(marker).map(|i| &principal[i + marker.len()..]);
    let rest = after("assumed-role/").or_else(|| after("role/")).unwrap_or(principal);
    rest.split('/').next().unwrap_or(rest)
}

/// The tenant a principal belongs to: its role name ends with the tenant id. Roles naming no
/// tenant (an instance role, a shared function role) belong to no one tenant.
fn principal_owner(principal: &str, tenants: &[Tenant]) -> Option<usize> {
    let role = role_name(principal);
    tenants
        .iter()
        .enumerate()
        .filter(|(_, t)| role.ends_with(&format!("-{}", t.id)) || role == t.id)
        .max_by_key(|(_, t)| t.id.len())
        .map(|(i, _)| i)
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
    fn tokens_are_extracted_exactly() {
        let body = "x isobench-canary:v1:r:a:tmp:1:00ff y\nisobench-canary:v1:r:b:app:2:abcd\"";
        assert_eq!(tokens_in(body), vec!["isobench-canary:v1:r:a:tmp:1:00ff", "isobench-canary:v1:r:b:app:2:abcd"]);
        assert!(tokens_in("nothing here").is_empty());
    }

    #[test]
    fn principals_map_to_the_longest_matching_tenant() {
        let t = tenants(&["tenant-1", "tenant-11"]);
        assert_eq!(principal_owner("arn:aws:iam::0:role/isobench-r-task-tenant-11", &t), Some(1));
        assert_eq!(principal_owner("arn:aws:iam::0:role/isobench-r-task-tenant-1", &t), Some(0));
        assert_eq!(principal_owner("arn:aws:iam::0:role/isobench-r-container-instance", &t), None);
        let assumed = "arn:aws:sts::0:assumed-role/isobench-lambda-per-tenant-tenant-1/session-7";
        assert_eq!(principal_owner(assumed, &t), Some(0));
        assert_eq!(principal_owner("role/isobench-r-instance-tenant-11", &t), Some(1));
    }

    #[test]
    fn pairs_cover_every_ordered_pair() {
        let spec = ProbeSpec {
            run_id: "r".into(),
            tier: TierId::SiloEc2,
            settings: TierSettings::Ec2(isobench_core::scenario::Ec2Spec::new(
                TierId::SiloEc2,
                isobench_core::instance_types::lookup("t3.micro").unwrap(),
            )),
            workload: WorkloadSpec::default(),
            probes: vec![],
            trials: 0,
            seed: 1,
            not_applicable: vec![],
        };
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
