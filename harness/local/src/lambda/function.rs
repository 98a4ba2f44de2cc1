//! One Lambda function: its pool of execution environments, the invoke path through it, and the
//! reaper that shuts idle environments down after their keep-alive (drawn per environment when
//! it is a range) or once they reach the maximum lifetime.
//!
//! Invoke path (runs on the backend's tokio runtime, so the caller's runtime only awaits a
//! oneshot): take the most recently used idle environment of the invoke's key (the tenant in
//! tenant isolation mode, else one key for all) and thaw it (warm), or, when none is idle,
//! create one (cold: cgroup, network namespace, sandbox, then the runtime's first `/next`);
//! either only if the concurrency limits admit it (`concurrency`: the function's cap, its
//! reservation or the account's pool, and for a cold start the scaling rate), else throttle.
//! The invocation goes through the environment's Runtime API server; once the runtime and its
//! extensions ask for the next event the environment is put back and the caller gets the
//! outcome (with the instant of the response), then the environment is frozen (or, after a
//! crash or a timeout, discarded and replaced by the next cold start).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use isobench_core::backend::{
    EnvironmentStats, InitRecord, InitState, Invoke, InvokeOutcome, InvokeResult, StartKind, ThrottleReasons,
};
use isobench_core::units::DurRange;
use isobench_rapi::{FunctionConfig, InitFailure, Invocation, InvokeError, RuntimeApi, ShutdownReason};
use tokio::sync::oneshot;

use super::concurrency::{Account, Quota, Throttle};
use super::environment::{self, Environment, EnvironmentInfo, EnvironmentState};
use super::role::FunctionRole;
use super::spawner::{EnvRequest, RUNTIME_API_ADDR, Spawner};
use crate::cgroup::{CgroupDriver, CgroupLimits};
use crate::sandbox::{FsView, SandboxSpec, env_pairs};

/// The region every emulated function is in.
pub(crate) const REGION: &str = "us-east-1";
/// Where the function's code is, inside an environment.
pub(crate) const TASK_ROOT: &str = "/var/task";
/// What an environment runs.
pub(crate) const BOOTSTRAP_PATH: &str = "/var/task/bootstrap";
/// Directories of the host an environment sees as empty (read-only) tmpfs.
pub(crate) const HIDDEN: [&str; 3] = ["/var", "/run", "/dev/shm"];
/// Lambda's limit on the INIT phase (10 s for on-demand functions).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a tier's teardown waits for its functions' in-flight invokes to end once their
/// environments are killed (they end within milliseconds; the rest is slack for a host whose
/// load average is in the hundreds, where a cold start's INIT can run out its 10 s).
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(15);
/// Lambda's default `/tmp` (512 MB of ephemeral storage).
const TMP_SIZE: u64 = 512 << 20;

/// Error names the Invoke API uses.
pub mod errors {
    /// An invoke of a function in tenant isolation mode without a tenant id (or the reverse).
    pub const INVALID_PARAMETER: &str = "InvalidParameterValueException";
    /// An invoke of a function that no longer exists (here: after teardown).
    pub const NOT_FOUND: &str = "ResourceNotFoundException";
    /// The service failed (here: the emulator could not create an environment).
    pub const SERVICE: &str = "ServiceException";
    /// The runtime process exited during an invoke or during INIT.
    pub const EXIT: &str = "Runtime.ExitError";
    /// INIT did not finish within its limit.
    pub const INIT_TIMEOUT: &str = "Sandbox.Timedout";
    /// The invoke's payload is over the synchronous request limit (HTTP 413 on Lambda).
    pub const REQUEST_TOO_LARGE: &str = "RequestTooLargeException";
}

/// Lambda's limit on a synchronous invoke's request payload: 6 MB (Lambda quotas, "Invocation
/// payload (request and response)": 6 MB each for request and response, synchronous).
pub(crate) const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// One deployed function.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    /// The tenants whose invokes it serves.
    pub tenants: Vec<String>,
    pub tenant_isolation: bool,
    pub memory_mb: u32,
    /// CPU share while invoked, in thousandths of a CPU.
    pub cpu_millis: u64,
    /// Its execution role and the credentials its environments get.
    pub role: FunctionRole,
    /// The staged code its environments bind at `/var/task`.
    pub code_dir: PathBuf,
}

/// What every function of a backend shares.
#[derive(Debug)]
pub(crate) struct HostCtx {
    pub handle: tokio::runtime::Handle,
    pub spawner: Spawner,
    pub cgroups: Arc<dyn CgroupDriver>,
    pub sandbox_exe: PathBuf,
    /// Numbers environments across the run (they name the environments' cgroups).
    pub next_env: AtomicU64,
    /// The account's concurrency, shared by every function of the backend.
    pub account: Account,
}

/// Everything fixed about a function.
#[derive(Debug, Clone)]
pub(crate) struct FunctionSpec {
    pub name: String,
    pub tenants: Vec<String>,
    pub tenant_isolation: bool,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// Each environment draws its own keep-alive from this range (by the run's seed and its
    /// number).
    pub keep_alive: DurRange,
    /// Age after which an idle environment is recycled.
    pub max_lifetime: Option<Duration>,
    /// The emulator's cap on invocations in flight.
    pub concurrency: u32,
    /// Reserved concurrency, already reserved in the account.
    pub reserved: Option<u32>,
    /// The run's seed (keep-alive draws).
    pub seed: u64,
    pub uid: u32,
    /// Limits while invoked: memory size, CPU in proportion.
    pub limits: CgroupLimits,
    /// Limits during INIT: the same memory, at least one full vCPU (Lambda boosts INIT).
    pub init_limits: CgroupLimits,
    pub role: FunctionRole,
    /// The function's environment beside the per-environment Runtime API variables.
    pub env: Vec<(String, String)>,
    /// The staged code, bound at `/var/task`.
    pub code_dir: PathBuf,
    pub run_dirs: Vec<PathBuf>,
    /// How callers read its payloads: the sample workload's document, or any payload.
    pub payload_contract: isobench_core::backend::PayloadContract,
    /// The tier's network (egress only), which every environment joins.
    pub net: Option<Arc<super::net::TierNet>>,
}

/// Lifecycle counts of one tier, shared by its functions.
#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    created: AtomicU64,
    reused: AtomicU64,
    reaped: AtomicU64,
    recycled: AtomicU64,
    replaced: AtomicU64,
    throttles: AtomicU64,
    /// Throttles by reason, in [`Throttle`]'s order.
    throttled: [AtomicU64; 4],
    busy: AtomicU64,
    peak: AtomicU64,
    /// Every environment started, in order: the emulator's own record of its INITs, kept
    /// whatever became of the invoke that started it (the driver may have given up on it).
    inits: Mutex<Vec<InitEntry>>,
}

/// One environment's INIT as it goes: started at `t0`, and how it ended once it did.
#[derive(Debug)]
struct InitEntry {
    function: String,
    t0: Instant,
    end: Option<(Duration, InitState)>,
}

impl TierCounters {
    pub(crate) fn snapshot(&self, frozen_at_end: u64) -> EnvironmentStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EnvironmentStats {
            created: get(&self.created),
            reused: get(&self.reused),
            reaped: get(&self.reaped),
            recycled: get(&self.recycled),
            replaced: get(&self.replaced),
            peak_concurrency: get(&self.peak),
            throttles: get(&self.throttles),
            throttle_reasons: ThrottleReasons {
                function: get(&self.throttled[0]),
                reserved: get(&self.throttled[1]),
                account: get(&self.throttled[2]),
                scaling: get(&self.throttled[3]),
            },
            frozen_at_end,
        }
    }

    /// Every INIT so far; one still running is reported with its time so far.
    pub(crate) fn inits(&self) -> Vec<InitRecord> {
        lock(&self.inits)
            .iter()
            .map(|e| {
                let (duration, state) = e.end.unwrap_or((e.t0.elapsed(), InitState::Running));
                InitRecord { function: e.function.clone(), duration, state }
            })
            .collect()
    }

    /// Records an INIT starting now; returns its index for [`TierCounters::init_ended`].
    fn init_started(&self, function: &str, t0: Instant) -> usize {
        let mut inits = lock(&self.inits);
        inits.push(InitEntry { function: function.to_string(), t0, end: None });
        inits.len() - 1
    }

    fn init_ended(&self, index: usize, duration: Duration, state: InitState) {
        if let Some(e) = lock(&self.inits).get_mut(index) {
            e.end = Some((duration, state));
        }
    }

    fn throttled(&self, why: Throttle) {
        self.throttles.fetch_add(1, Ordering::Relaxed);
        self.throttled[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn busy_inc(&self) {
        let now = self.busy.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(now, Ordering::AcqRel);
    }

    fn busy_dec(&self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug)]
struct Pool {
    /// Idle (frozen) environments per key, most recently used last.
    idle: HashMap<String, Vec<Arc<Environment>>>,
    /// Every environment alive, starting, busy or idle, by number.
    all: BTreeMap<u64, Arc<Environment>>,
    /// Invocations between checkout and release (starting environments included), and the
    /// limits on them.
    quota: Quota,
    closed: bool,
}

/// A deployed function; the [`Invoke`] endpoint of its tenants.
pub(crate) struct Function {
    pub spec: FunctionSpec,
    ctx: Arc<HostCtx>,
    counters: Arc<TierCounters>,
    pool: Mutex<Pool>,
    me: Weak<Function>,
    reaper: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Background shutdowns of discarded environments not finished yet: teardown waits for
    /// them as for invokes in flight, or the runtime's stop could drop them half done.
    shutting_down: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("name", &self.spec.name).finish_non_exhaustive()
    }
}

enum Checkout {
    Warm(Arc<Environment>),
    Cold,
}

/// What a finished invoke leaves to do with its environment.
enum After {
    Keep,
    /// Discard it; `replaced` says whether it counts as replaced (crash, timeout).
    Discard {
        replaced: bool,
    },
}

/// What is left to do with an environment after its invoke's outcome is delivered.
enum Deferred {
    Freeze,
    ShutDown { replaced: bool },
}

fn result(outcome: InvokeOutcome, start: Option<StartKind>, billed_ms: Option<u64>, memory_mb: u32) -> InvokeResult {
    InvokeResult { outcome, start, billed_ms, memory_mb: Some(memory_mb), responded_at: None, first_byte_at: None }
}

fn rejected(error_type: &str, memory_mb: u32) -> InvokeResult {
    result(InvokeOutcome::Rejected { error_type: error_type.into() }, None, None, memory_mb)
}

fn ceil_ms(d: Duration) -> u64 {
    (d.as_nanos().div_ceil(1_000_000) as u64).max(1)
}

impl Function {
    pub(crate) fn new(spec: FunctionSpec, ctx: Arc<HostCtx>, counters: Arc<TierCounters>) -> Arc<Function> {
        let quota = Quota::new(spec.concurrency, spec.reserved, Instant::now());
        let f = Arc::new_cyclic(|me| Function {
            spec,
            ctx,
            counters,
            pool: Mutex::new(Pool { idle: HashMap::new(), all: BTreeMap::new(), quota, closed: false }),
            me: me.clone(),
            reaper: Mutex::new(None),
            shutting_down: Arc::new(AtomicUsize::new(0)),
        });
        let weak = Arc::downgrade(&f);
        let shortest = f.spec.max_lifetime.map_or(f.spec.keep_alive.min, |m| m.min(f.spec.keep_alive.min));
        let tick = (shortest / 8).clamp(Duration::from_millis(5), Duration::from_secs(1));
        *lock(&f.reaper) = Some(f.ctx.handle.spawn(reap_loop(weak, tick)));
        f
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        lock(&self.pool)
    }

    pub(crate) fn info(&self) -> FunctionInfo {
        FunctionInfo {
            name: self.spec.name.clone(),
            tenants: self.spec.tenants.clone(),
            tenant_isolation: self.spec.tenant_isolation,
            memory_mb: self.spec.memory_mb,
            cpu_millis: self.spec.limits.cpu_quota_us * 1000 / self.spec.limits.cpu_period_us,
            role: self.spec.role.clone(),
            code_dir: self.spec.code_dir.clone(),
        }
    }

    /// A snapshot of every live environment, with its CPU time and frozen state read from its
    /// cgroup.
    pub(crate) fn environments(&self) -> Vec<EnvironmentInfo> {
        let envs: Vec<Arc<Environment>> = self.pool().all.values().cloned().collect();
        envs.iter()
            .map(|e| {
                let workload_pid = e.workload_pid(Duration::from_secs(1));
                let life = e.life();
                EnvironmentInfo {
                    id: e.id.clone(),
                    function: e.function.clone(),
                    tenant: e.tenant.clone(),
                    state: life.state,
                    invocations: life.invocations,
                    idle_for: (life.state == EnvironmentState::Idle).then(|| life.last_used.elapsed()),
                    age: e.created.elapsed(),
                    keep_alive: e.keep_alive,
                    spawned: e.spawned,
                    sandbox_pid: e.sandbox_pid as u32,
                    workload_pid,
                    cgroup_dirs: e.cgroup.dirs.clone(),
                    cpu_usage: self.ctx.cgroups.cpu_usage(&e.cgroup).ok(),
                    frozen: self.ctx.cgroups.is_frozen(&e.cgroup).ok(),
                }
            })
            .collect()
    }

    /// What an environment wrote to stdout and stderr (its last `max` bytes).
    pub(crate) fn output(&self, env_id: &str, max: usize) -> Option<String> {
        self.pool().all.values().find(|e| e.id == env_id).map(|e| e.output_tail(max))
    }

    /// The invoke, start to end, on the backend's runtime. The outcome goes to `reply` as soon
    /// as it is known; the environment is frozen and returned afterwards.
    async fn run(self: Arc<Self>, tenant: String, payload: Vec<u8>, reply: oneshot::Sender<InvokeResult>) {
        let mem = self.spec.memory_mb;
        if self.spec.tenant_isolation && tenant.is_empty() {
            let _ = reply.send(rejected(errors::INVALID_PARAMETER, mem));
            return;
        }
        let key = if self.spec.tenant_isolation { tenant.clone() } else { String::new() };
        let (env, start) = loop {
            let checkout = {
                let mut pool = self.pool();
                if pool.closed {
                    drop(pool);
                    let _ = reply.send(rejected(errors::NOT_FOUND, mem));
                    return;
                }
                let warm = pool.idle.get(&key).is_some_and(|v| !v.is_empty());
                // Tenant isolation mode: at most 2,500 tenant-aware environments (busy or
                // idle) per 1,000 of concurrency (AWS, "Troubleshooting tenant isolation").
                let environments_full = self.spec.tenant_isolation
                    && pool.all.len() as u64 >= (u64::from(self.spec.concurrency) * 5).div_ceil(2);
                let admitted = if !warm && environments_full {
                    Err(Throttle::Function)
                } else {
                    pool.quota.admit(&self.ctx.account, !warm, Instant::now())
                };
                match admitted {
                    Err(why) => Err(why),
                    Ok(()) => match pool.idle.get_mut(&key).and_then(Vec::pop) {
                        Some(env) => {
                            // Busy from here on, so a freeze still pending for it is skipped.
                            env.life().state = EnvironmentState::Busy;
                            Ok(Checkout::Warm(env))
                        }
                        None => Ok(Checkout::Cold),
                    },
                }
            };
            let checkout = match checkout {
                Ok(c) => c,
                Err(why) => {
                    self.counters.throttled(why);
                    let _ = reply.send(result(InvokeOutcome::Throttled, None, None, mem));
                    return;
                }
            };
            self.counters.busy_inc();
            match checkout {
                Checkout::Warm(env) => {
                    // A process that died while frozen, or a cgroup that cannot be thawed: drop
                    // the environment and look again.
                    if env.has_exited() || env.thaw().is_err() {
                        let d = self.put_back(&env, After::Discard { replaced: false });
                        self.finish(&env, d);
                        continue;
                    }
                    self.counters.reused.fetch_add(1, Ordering::Relaxed);
                    break (env, StartKind::Warm);
                }
                Checkout::Cold => match self.cold_start(&key).await {
                    Ok((env, init)) => break (env, StartKind::Cold { init }),
                    Err(r) => {
                        self.pool().quota.release(&self.ctx.account);
                        self.counters.busy_dec();
                        let _ = reply.send(r);
                        return;
                    }
                },
            }
        };

        {
            let mut life = env.life();
            life.state = EnvironmentState::Busy;
            life.invocations += 1;
        }
        let mut inv = Invocation::new(payload, self.spec.timeout);
        if self.spec.tenant_isolation {
            inv = inv.with_tenant(tenant);
        }
        let invoked = env.api.invoke(inv).await;
        let responded_at = Instant::now();
        let first_byte_at = invoked.as_ref().ok().and_then(|o| o.timing()).filter(|t| t.streamed).map(|t| t.first_byte);
        let (outcome, billed, after) = self.settle(&env, invoked).await;
        // Parked (or discarded): back in the pool and frozen before the caller hears the
        // outcome, so its next invoke finds the environment idle and frozen, as Lambda leaves
        // it, instead of waiting on a freeze still in progress. The caller's latency ends at
        // the response, not here.
        let deferred = self.put_back(&env, after);
        self.finish(&env, deferred);
        let mut r = result(outcome, Some(start), billed, mem);
        r.responded_at = Some(responded_at);
        r.first_byte_at = first_byte_at;
        let _ = reply.send(r);
    }

    /// An invoke's outcome, its billed duration and what becomes of its environment. After a
    /// result (a response or a function error) the environment stays busy until its runtime and
    /// every extension ask for the next event, the point where Lambda freezes it; billing runs
    /// from hand-over to that point. Lambda bounds that whole phase by the function's timeout
    /// ("Understanding the Lambda execution environment lifecycle", Invoke phase).
    async fn settle(
        &self,
        env: &Environment,
        invoked: Result<isobench_rapi::InvokeOutcome, InvokeError>,
    ) -> (InvokeOutcome, Option<u64>, After) {
        let (outcome, timing) = match invoked {
            Ok(isobench_rapi::InvokeOutcome::Ok { payload, timing }) => (InvokeOutcome::Ok(payload.to_vec()), timing),
            Ok(isobench_rapi::InvokeOutcome::FunctionError { error_type, timing, .. }) => {
                (InvokeOutcome::FunctionError { error_type }, timing)
            }
            other => return self.failed(env, other),
        };
        let deadline = timing.handed_over + self.spec.timeout;
        match tokio::time::timeout_at(deadline.into(), env.api.wait_parked()).await {
            Ok(Ok(parked)) => (outcome, Some(timing.billed_ms_until(parked)), After::Keep),
            // Work after the result ran past the timeout: Lambda ends the invoke and resets the
            // environment, billing the whole timeout.
            Err(_) => (outcome, Some(ceil_ms(self.spec.timeout)), After::Discard { replaced: true }),
            Ok(Err(_)) => {
                let closed = self.pool().closed;
                (outcome, Some(timing.billed_ms_until(Instant::now())), After::Discard { replaced: !closed })
            }
        }
    }

    /// The outcome of an invoke that ended without a result.
    fn failed(
        &self,
        env: &Environment,
        invoked: Result<isobench_rapi::InvokeOutcome, InvokeError>,
    ) -> (InvokeOutcome, Option<u64>, After) {
        match invoked {
            Ok(isobench_rapi::InvokeOutcome::InitError { error_type, .. }) => {
                (InvokeOutcome::InitError { error_type }, None, After::Discard { replaced: true })
            }
            Ok(isobench_rapi::InvokeOutcome::Timeout { .. }) => {
                // Lambda bills a timed-out invoke for its whole timeout and resets the environment.
                (InvokeOutcome::Timeout, Some(ceil_ms(self.spec.timeout)), After::Discard { replaced: true })
            }
            Ok(isobench_rapi::InvokeOutcome::EnvironmentGone { handed_over }) => {
                let closed = self.pool().closed;
                let outcome = if closed {
                    InvokeOutcome::Rejected { error_type: errors::NOT_FOUND.into() }
                } else {
                    InvokeOutcome::FunctionError { error_type: errors::EXIT.into() }
                };
                (outcome, handed_over.map(|t| ceil_ms(t.elapsed())), After::Discard { replaced: !closed })
            }
            Err(InvokeError::ShutDown) => (
                InvokeOutcome::Rejected { error_type: errors::NOT_FOUND.into() },
                None,
                After::Discard { replaced: false },
            ),
            Err(InvokeError::RequestTooLarge { .. }) => {
                (InvokeOutcome::Rejected { error_type: errors::REQUEST_TOO_LARGE.into() }, None, After::Keep)
            }
            Ok(isobench_rapi::InvokeOutcome::Ok { .. } | isobench_rapi::InvokeOutcome::FunctionError { .. }) => {
                unreachable!("results are settled by `settle`")
            }
            Err(e) => {
                tracing::warn!(function = %self.spec.name, env = %env.id, error = %e, "the Runtime API refused an invoke");
                (
                    InvokeOutcome::Rejected { error_type: errors::SERVICE.into() },
                    None,
                    After::Discard { replaced: true },
                )
            }
        }
    }

    /// Returns a checked-out environment to the idle pool (to be frozen by [`Self::finish`]) or
    /// takes it out (to be shut down), and frees its concurrency slot.
    fn put_back(&self, env: &Arc<Environment>, after: After) -> Deferred {
        let keep = matches!(after, After::Keep) && !env.has_exited();
        let deferred = {
            let mut pool = self.pool();
            pool.quota.release(&self.ctx.account);
            if keep && !pool.closed {
                let mut life = env.life();
                life.state = EnvironmentState::Idle;
                life.last_used = Instant::now();
                drop(life);
                pool.idle.entry(env.tenant.clone().unwrap_or_default()).or_default().push(env.clone());
                Deferred::Freeze
            } else {
                pool.all.retain(|_, e| !Arc::ptr_eq(e, env));
                Deferred::ShutDown { replaced: matches!(after, After::Discard { replaced: true }) }
            }
        };
        self.counters.busy_dec();
        deferred
    }

    /// The second half of [`Self::put_back`]: freeze an idle environment (unless an invoke took
    /// it meanwhile), or shut a discarded one down.
    fn finish(&self, env: &Arc<Environment>, deferred: Deferred) {
        match deferred {
            Deferred::Freeze => {
                if let Err(e) = env.freeze_if_idle() {
                    tracing::warn!(env = %env.id, error = %e, "cannot freeze an idle environment; discarding it");
                    let taken = {
                        let mut pool = self.pool();
                        let before = pool.all.len();
                        pool.all.retain(|_, e| !Arc::ptr_eq(e, env));
                        for v in pool.idle.values_mut() {
                            v.retain(|e| !Arc::ptr_eq(e, env));
                        }
                        pool.all.len() < before
                    };
                    if taken {
                        self.shut_down(vec![env.clone()], ShutdownReason::Failure);
                    }
                }
            }
            Deferred::ShutDown { replaced } => {
                if replaced {
                    self.counters.replaced.fetch_add(1, Ordering::Relaxed);
                }
                self.shut_down(
                    vec![env.clone()],
                    if replaced { ShutdownReason::Failure } else { ShutdownReason::Spindown },
                );
            }
        }
    }

    /// Shuts environments down off the runtime's threads (killing waits for the kernel). Their
    /// extensions hear `SHUTDOWN` with `reason` first (see [`shutdown_extensions`]).
    fn shut_down(&self, envs: Vec<Arc<Environment>>, reason: ShutdownReason) {
        if envs.is_empty() {
            return;
        }
        let ctx = self.ctx.clone();
        let pending = self.shutting_down.clone();
        pending.fetch_add(1, Ordering::SeqCst);
        self.ctx.handle.spawn_blocking(move || {
            shutdown_extensions(&ctx.handle, &envs, reason);
            for e in &envs {
                environment::kill(&*ctx.cgroups, e);
            }
            for e in &envs {
                let left = environment::destroy(&*ctx.cgroups, e, Duration::from_secs(5));
                if !left.is_empty() {
                    tracing::warn!(env = %e.id, ?left, "an environment's shutdown left cgroups behind");
                }
            }
            pending.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Kills and removes an environment the closed pool never saw, before the invoke that
    /// started it ends: teardown waits for in-flight invokes and then removes the run's
    /// cgroups, so this one must be gone by then (a background shutdown could still be
    /// queued when the runtime stops).
    async fn shut_down_now(&self, env: Arc<Environment>) {
        let ctx = self.ctx.clone();
        let done = self.ctx.handle.spawn_blocking(move || {
            environment::kill(&*ctx.cgroups, &env);
            environment::destroy(&*ctx.cgroups, &env, Duration::from_secs(5))
        });
        match done.await {
            Ok(left) if !left.is_empty() => {
                tracing::warn!(function = %self.spec.name, ?left, "a late environment's shutdown left cgroups behind")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(function = %self.spec.name, error = %e, "a late environment's shutdown failed"),
        }
    }

    /// A cold start: an environment whose INIT runs under Lambda's 10 s limit; one that runs
    /// out of it is replaced and INIT is retried once, within this (first) invoke, under the
    /// function's timeout ("Understanding the Lambda execution environment lifecycle", Init
    /// phase). The INIT reported is the whole wait, both attempts.
    async fn cold_start(&self, key: &str) -> Result<(Arc<Environment>, Duration), InvokeResult> {
        let t0 = Instant::now();
        match self.start_environment(key, INIT_TIMEOUT).await {
            Err(r) if is_init_timeout(&r) => {
                let (env, _) = self.start_environment(key, self.spec.timeout).await?;
                Ok((env, t0.elapsed()))
            }
            started => started,
        }
    }

    /// Creates an environment and waits up to `init_limit` for its INIT. On failure the
    /// environment is gone and the invoke's result is returned.
    async fn start_environment(
        &self,
        key: &str,
        init_limit: Duration,
    ) -> Result<(Arc<Environment>, Duration), InvokeResult> {
        let mem = self.spec.memory_mb;
        let t0 = Instant::now();
        let number = self.ctx.next_env.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-e{number}", self.spec.name);
        let tenant = self.spec.tenant_isolation.then(|| key.to_string());
        let mut config = FunctionConfig::new(self.spec.name.clone(), t0);
        config.function_arn = format!("arn:aws:lambda:{}:{}:function:{}", REGION, super::role::ACCOUNT, self.spec.name);
        config.memory_mb = mem;
        config.tenant_isolation = self.spec.tenant_isolation;
        let mut env = config.runtime_env(RUNTIME_API_ADDR);
        env.extend(self.spec.env.iter().cloned());
        let req = EnvRequest {
            id: id.clone(),
            run_dirs: self.spec.run_dirs.clone(),
            limits: self.spec.init_limits,
            sandbox_exe: self.ctx.sandbox_exe.clone(),
            sandbox: self.sandbox_spec(&id, &env),
            net: self.spec.net.clone(),
        };
        let service_error = |step: String, e: &dyn std::fmt::Display| {
            tracing::warn!(function = %self.spec.name, env = %id, "failed to {step}: {e}");
            rejected(errors::SERVICE, mem)
        };
        let ctx = self.ctx.clone();
        let me = self.me.clone();
        // Starts queue for a spawner thread (a thousand cold starts at once, at scale): one whose
        // function closed while it waited is dropped there instead of started and killed.
        let spawned = self
            .ctx
            .spawner
            .run(move |s| {
                let closed = me.upgrade().is_none_or(|f| f.pool().closed);
                let t = Instant::now();
                (!closed).then(|| (s.create(&*ctx.cgroups, req), (t, Instant::now())))
            })
            .await;
        let (spawned, span) = match spawned {
            Ok(None) => return Err(rejected(errors::NOT_FOUND, mem)),
            Ok(Some((Ok(s), span))) => (s, span),
            Ok(Some((Err(e), _))) => {
                let chain = error_chain(&e);
                return Err(service_error(format!("create environment {id} of function {}", self.spec.name), &chain));
            }
            Err(_) => return Err(service_error("reach the Lambda spawner threads".into(), &"they have stopped")),
        };
        let api = match RuntimeApi::start(spawned.listener, config) {
            Ok(a) => a,
            Err(e) => {
                let _ = crate::cgroup::remove(&*self.ctx.cgroups, &spawned.cgroup, Duration::from_secs(5));
                // SAFETY: waitpid(2) on our own child, whose cgroup was just emptied.
                unsafe { libc::waitpid(spawned.sandbox_pid, std::ptr::null_mut(), 0) };
                return Err(service_error(format!("serve the Runtime API of environment {id}"), &e));
            }
        };
        let freeze_file = self.ctx.cgroups.freeze_file(&spawned.cgroup);
        let env = Environment::new(
            id.clone(),
            self.spec.name.clone(),
            tenant,
            spawned.cgroup.clone(),
            api,
            spawned.sandbox_pid,
            spawned.output,
            t0,
            freeze_file,
            spawned.status,
        );
        let env = match env {
            Ok(mut e) => {
                e.keep_alive = self.spec.keep_alive.pick(keep_alive_draw(self.spec.seed, number));
                e.spawned = span;
                Arc::new(e)
            }
            Err(e) => {
                let _ = crate::cgroup::remove(&*self.ctx.cgroups, &spawned.cgroup, Duration::from_secs(5));
                // SAFETY: waitpid(2) on our own child, whose cgroup was just emptied.
                unsafe { libc::waitpid(spawned.sandbox_pid, std::ptr::null_mut(), 0) };
                return Err(service_error(format!("open the freezer of environment {id}"), &e));
            }
        };
        self.ctx.handle.spawn(environment::watch(env.clone(), spawned.pidfd));
        let closed = {
            let mut pool = self.pool();
            if !pool.closed {
                pool.all.insert(number, env.clone());
            }
            pool.closed
        };
        if closed {
            self.shut_down_now(env).await;
            return Err(rejected(errors::NOT_FOUND, mem));
        }
        self.counters.created.fetch_add(1, Ordering::Relaxed);
        let record = self.counters.init_started(&self.spec.name, t0);
        let init = env.api.wait_init(init_limit).await;
        let init = match init {
            Ok(d) => {
                self.counters.init_ended(record, d, InitState::Ok);
                d
            }
            Err(f) => {
                self.counters.init_ended(record, t0.elapsed(), InitState::Failed);
                let error_type = match &f {
                    InitFailure::Reported { error_type, .. } => error_type.clone(),
                    InitFailure::EnvironmentGone => Some(errors::EXIT.into()),
                    InitFailure::Timeout { .. } => Some(errors::INIT_TIMEOUT.into()),
                    InitFailure::ShutDown => None,
                };
                tracing::warn!(
                    function = %self.spec.name, env = %id, error = %f,
                    output = %env.output_tail(2048), "an environment's INIT failed"
                );
                self.pool().all.remove(&number);
                self.counters.replaced.fetch_add(1, Ordering::Relaxed);
                self.shut_down(vec![env], ShutdownReason::Failure);
                let outcome = match (&f, error_type) {
                    (InitFailure::ShutDown, _) => InvokeOutcome::Rejected { error_type: errors::NOT_FOUND.into() },
                    (_, error_type) => InvokeOutcome::InitError { error_type },
                };
                return Err(result(outcome, Some(StartKind::Cold { init: t0.elapsed() }), None, mem));
            }
        };
        // INIT is over: from now on the CPU share in proportion to memory.
        if self.spec.init_limits != self.spec.limits
            && let Err(e) = self.ctx.cgroups.apply_limits(&env.cgroup, &self.spec.limits)
        {
            tracing::warn!(env = %id, error = %e, "cannot lower an environment's CPU share after INIT");
        }
        Ok((env, init))
    }

    fn sandbox_spec(&self, id: &str, env: &[(String, String)]) -> SandboxSpec {
        SandboxSpec {
            cgroup_threads: Vec::new(),
            cgroup_clone_into: None,
            netns_fd: -1,
            exe_fd: -1,
            status_fd: -1,
            parent_pid: std::process::id() as i32,
            // HOST_NAME_MAX is 64.
            hostname: id.chars().take(63).collect(),
            uid: self.spec.uid,
            gid: self.spec.uid,
            tmpfs: vec!["/tmp".into()],
            tmpfs_size: TMP_SIZE,
            tmp_binds: Vec::new(),
            env: env_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            argv: vec![BOOTSTRAP_PATH.into()],
            view: FsView {
                hide: HIDDEN.iter().map(PathBuf::from).collect(),
                ro_binds: vec![(TASK_ROOT.into(), self.spec.code_dir.clone())],
                read_only: true,
                cwd: Some(TASK_ROOT.into()),
                exe_path: Some(BOOTSTRAP_PATH.into()),
            },
        }
    }

    /// Idle environments past their keep-alive or their maximum lifetime (and dead ones),
    /// taken out of the pool, with how many were reaped and how many recycled.
    fn take_expired(&self) -> (Vec<Arc<Environment>>, u64, u64) {
        let mut pool = self.pool();
        let mut out = Vec::new();
        let (mut reaped, mut recycled) = (0, 0);
        let max_lifetime = self.spec.max_lifetime.unwrap_or(Duration::MAX);
        for envs in pool.idle.values_mut() {
            envs.retain(|e| {
                let dead = e.has_exited();
                let old = e.created.elapsed() >= max_lifetime;
                let expired = e.life().last_used.elapsed() >= e.keep_alive;
                if dead || old || expired {
                    if !dead && old {
                        recycled += 1;
                    } else if !dead {
                        reaped += 1;
                    }
                    out.push(e.clone());
                    false
                } else {
                    true
                }
            });
        }
        pool.idle.retain(|_, v| !v.is_empty());
        pool.all.retain(|_, e| !out.iter().any(|o| Arc::ptr_eq(o, e)));
        (out, reaped, recycled)
    }

    /// Stops the function, first half (blocking): refuses new invokes, kills and removes every
    /// environment (frozen ones included), and returns the count of environments that were
    /// idle (frozen) when it was called, what was removed and what was left behind. It does not
    /// wait for invokes in flight: [`Self::close_finish`] does, so that a tier closes all its
    /// functions first and their in-flight invokes end together, not one function after another.
    pub(crate) fn close_begin(&self) -> (u64, Vec<String>, Vec<String>) {
        if let Some(r) = lock(&self.reaper).take() {
            r.abort();
        }
        let (envs, idle) = {
            let mut pool = self.pool();
            pool.closed = true;
            let idle: u64 = pool.idle.values().map(|v| v.len() as u64).sum();
            pool.idle.clear();
            (std::mem::take(&mut pool.all), idle)
        };
        let envs: Vec<Arc<Environment>> = envs.into_values().collect();
        for e in &envs {
            environment::kill(&*self.ctx.cgroups, e);
        }
        let mut removed = Vec::new();
        let mut left = Vec::new();
        for e in &envs {
            let failed = environment::destroy(&*self.ctx.cgroups, e, Duration::from_secs(10));
            if failed.is_empty() {
                removed.push(format!("environment {} (sandbox pid {})", e.id, e.sandbox_pid));
            }
            for (path, why) in failed {
                left.push(format!("environment {}: cgroup {} ({why})", e.id, path.display()));
            }
        }
        (idle, removed, left)
    }

    /// Stops the function, second half: invokes still in flight end now (their environments
    /// are gone); waits for them until `deadline`, so that nothing they were starting outlives
    /// the function, and removes what they started meanwhile. Returns what was left behind.
    pub(crate) fn close_finish(&self, deadline: Instant) -> Vec<String> {
        let mut left = Vec::new();
        let busy = || self.pool().quota.in_flight() > 0 || self.shutting_down.load(Ordering::SeqCst) > 0;
        while busy() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let late: Vec<Arc<Environment>> = std::mem::take(&mut self.pool().all).into_values().collect();
        for e in &late {
            for (path, why) in environment::destroy(&*self.ctx.cgroups, e, Duration::from_secs(5)) {
                left.push(format!("environment {}: cgroup {} ({why})", e.id, path.display()));
            }
        }
        if self.pool().quota.in_flight() > 0 {
            left.push(format!("function {}: invokes still in flight at teardown's deadline", self.spec.name));
        }
        if let Some(r) = self.spec.reserved {
            self.ctx.account.unreserve(r);
        }
        if self.shutting_down.load(Ordering::SeqCst) > 0 {
            left.push(format!("function {}: environment shutdowns unfinished at teardown's deadline", self.spec.name));
        }
        left
    }
}

async fn reap_loop(f: Weak<Function>, tick: Duration) {
    loop {
        tokio::time::sleep(tick).await;
        let Some(f) = f.upgrade() else { return };
        let (expired, reaped, recycled) = f.take_expired();
        if !expired.is_empty() {
            f.counters.reaped.fetch_add(reaped, Ordering::Relaxed);
            f.counters.recycled.fetch_add(recycled, Ordering::Relaxed);
            f.shut_down(expired, ShutdownReason::Spindown);
        }
    }
}

/// Lambda's time for extensions to handle `SHUTDOWN`: 2,000 ms with external extensions
/// (500 ms with internal ones only; the emulator cannot tell them apart and gives the longer).
/// ("Extensions API", Shutdown phase.)
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(2);

/// Sends `SHUTDOWN` to the registered extensions of `envs`, thawed for it, all at once, and
/// waits up to [`SHUTDOWN_BUDGET`] (blocking: call it off the runtime's workers).
fn shutdown_extensions(handle: &tokio::runtime::Handle, envs: &[Arc<Environment>], reason: ShutdownReason) {
    let tasks: Vec<_> = envs
        .iter()
        .filter(|e| !e.has_exited() && !e.api.extensions().is_empty())
        .map(|e| {
            let e = e.clone();
            handle.spawn(async move {
                if let Err(err) = e.thaw() {
                    tracing::warn!(env = %e.id, error = %err, "cannot thaw an environment for its SHUTDOWN");
                }
                let report = e.api.shutdown_extensions(reason, SHUTDOWN_BUDGET).await;
                if !report.unfinished.is_empty() {
                    tracing::warn!(env = %e.id, unfinished = ?report.unfinished, "extensions did not finish SHUTDOWN in time");
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = handle.block_on(t);
    }
}

fn is_init_timeout(r: &InvokeResult) -> bool {
    matches!(&r.outcome, InvokeOutcome::InitError { error_type: Some(t) } if t == errors::INIT_TIMEOUT)
}

/// The random number environment `number` draws its keep-alive with: splitmix64 of the run's
/// seed and the number, so a repeated seed gives every environment the same keep-alive.
pub(crate) fn keep_alive_draw(seed: u64, number: u64) -> u64 {
    let mut z = seed ^ number.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Invoke for Function {
    fn invoke<'a>(
        &'a self,
        tenant: &'a str,
        payload: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = InvokeResult> + Send + 'a>> {
        let mem = self.spec.memory_mb;
        Box::pin(async move {
            let Some(me) = self.me.upgrade() else { return rejected(errors::NOT_FOUND, mem) };
            if payload.len() > MAX_REQUEST_BYTES {
                return rejected(errors::REQUEST_TOO_LARGE, mem);
            }
            let (tx, rx) = oneshot::channel();
            // The whole invoke runs on the backend's runtime (its timers and sockets belong
            // there); the caller's runtime only awaits the answer.
            drop(self.ctx.handle.spawn(me.run(tenant.to_string(), payload, tx)));
            rx.await.unwrap_or_else(|_| rejected(errors::NOT_FOUND, mem))
        })
    }

    fn payload_contract(&self) -> isobench_core::backend::PayloadContract {
        self.spec.payload_contract
    }
}
