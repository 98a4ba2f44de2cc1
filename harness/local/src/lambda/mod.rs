//! The Lambda tiers' machinery: what an execution environment is, the lifecycle the emulator
//! drives it through, and the functions that own them. How a tier maps tenants onto functions
//! and sizes them is the tier's (`tiers::lambda`); this module creates the functions it asks for
//! ([`Host::create`]) and tears them down ([`Functions::teardown`]).
//!
//! # What an execution environment is
//! A process in its own pid, mount, UTS, IPC and network namespaces, started by the sandbox
//! (`isobench-sandbox`, the same ordered isolation steps as an instance) with the filesystem
//! view of a Lambda environment: the function's code read-only at `/var/task` (its `bootstrap`
//! is what runs, with `/var/task` as working directory), `/var`, `/run` and `/dev/shm` hidden
//! under empty tmpfs, everything else read-only, and a private writable `/tmp` (512 MB, as
//! Lambda's default ephemeral storage) that lives as long as the environment. Its network
//! namespace holds `lo`, where the harness binds the Runtime API's socket on `127.0.0.1:9001`
//! (a thread enters the namespace, binds and leaves) and serves it with
//! [`isobench_rapi::RuntimeApi`] from outside, and `eth0`, egress only, on the tier's bridge
//! (see `net`): nothing can connect into an environment, as on Lambda. Its cgroup limits memory to the function's memory
//! size and CPU in proportion to it (one vCPU at 1,769 MB, capped at the host's CPUs), with one
//! full vCPU during INIT, as Lambda boosts INIT. It runs as the function's own unprivileged uid
//! with the standard Lambda variables (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_*`,
//! `AWS_REGION`, `_HANDLER`, `LAMBDA_TASK_ROOT`, the role's credentials, ...) and the
//! scenario's `environment`.
//!
//! # Lifecycle
//! INIT (cold start: from creating the environment until its runtime and every registered
//! extension ask for the first event, reported as [`StartKind::Cold`]; within 10 s, else retried
//! once inside the first invoke under the function's timeout) → INVOKE (handed to the waiting
//! `/next`; the caller's latency ends at the response, billing at the next point) → frozen when
//! the runtime and every extension ask for the next event (the cgroup freezer: v2
//! `cgroup.freeze`, or the v1 freezer) → thawed for the next invoke of its key → SHUTDOWN
//! (extensions get the event and 2 s) once idle longer than the
//! keep-alive (a reaper task per function; each environment draws its own when the keep-alive
//! is a range, from the run's seed and its number) or once idle past the maximum lifetime
//! (recycled), or at teardown. One invocation at a time per environment; concurrency grows by
//! starting environments as far as the limits admit (see `concurrency`: the account's pool
//! shared by every function of the backend, a function's reserved concurrency, its scaling
//! rate, the emulator's per-function cap), beyond which invokes are throttled
//! (`TooManyRequestsException` on Lambda, [`InvokeOutcome::Throttled`] here). A crash of the
//! runtime during an invoke is a function
//! error (`Runtime.ExitError`) and a timeout is [`InvokeOutcome::Timeout`]; both discard the
//! environment, so the next invoke starts a new one.
//!
//! # Main choices
//! - **The invoke path runs on a tokio runtime the backend owns** (two workers, created at the
//!   first Lambda deploy): the Runtime API servers, their timers and the reapers live there, and
//!   a caller on any runtime only awaits a oneshot.
//! - **Environments are created on dedicated spawner threads** (see `spawner`), never on a
//!   runtime thread: a sandbox's death signal is tied to the thread that started it, and entering
//!   a network namespace moves the calling thread. A pool of them (four per CPU), so a storm of
//!   cold starts is created in parallel rather than queued behind one thread.
//! - **The freeze point is Lambda's, the latency the caller's.** The environment is busy until
//!   its runtime and extensions park in their `next` calls (work after the response is billed
//!   and delays only this environment's next invoke); the result then reaches the caller with
//!   `responded_at`, the instant the response was complete, where its latency ends. It is back
//!   in the idle pool and frozen before the caller hears, so the caller's next invoke finds it
//!   warm and frozen, as Lambda leaves it. A per-environment lock orders freeze and thaw, so a
//!   freeze that loses the race to another caller's invoke is skipped.
//! - **Teardown kills frozen environments too**: v2 `cgroup.kill` acts on frozen tasks; under
//!   the v1 freezer a frozen process ignores SIGKILL until thawed, so teardown thaws first, in
//!   nested cgroups as well.
//!
//! [`StartKind::Cold`]: isobench_core::backend::StartKind::Cold
//! [`InvokeOutcome::Throttled`]: isobench_core::backend::InvokeOutcome::Throttled
//! [`InvokeOutcome::Timeout`]: isobench_core::backend::InvokeOutcome::Timeout

mod code;
mod concurrency;
mod environment;
mod function;
pub(crate) mod net;
mod role;
mod spawner;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use isobench_core::backend::{Deployment, Endpoint, InstanceInfo, Limits, TeardownReport, TenantTarget};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::lambda::LambdaSpec;
use isobench_core::tier::TierId;

pub use code::{STAGED_SUFFIX, StageError};
pub use concurrency::ReserveError;
pub use environment::{EnvironmentInfo, EnvironmentState};
pub use function::FunctionInfo;
pub use function::errors as invoke_errors;
pub use role::FunctionRole;

use crate::cgroup::{CgroupDriver, CgroupLimits};
use code::CodeSource;
use function::{Function, FunctionSpec, HostCtx, TASK_ROOT, TierCounters};
use spawner::SpawnerThreads;
pub(crate) use spawner::threads_for as spawner_threads;

/// One Lambda function a tier wants: its name, the tenants whose invokes it serves, the tenant
/// its (sample) code is pinned to, and whether it runs in tenant isolation mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionRequest {
    pub name: String,
    pub tenants: Vec<String>,
    pub pinned_tenant: Option<String>,
    pub tenant_isolation: bool,
}

/// What creating a tier's functions needs: the tier's layout and sizing, and the backend's
/// run, uids and workload.
pub(crate) struct FunctionsInput<'a> {
    pub plan: &'a TierPlan,
    pub spec: &'a LambdaSpec,
    pub functions: Vec<FunctionRequest>,
    /// Limits while invoked, and during INIT.
    pub limits: CgroupLimits,
    pub init_limits: CgroupLimits,
    /// The run's cgroup directories.
    pub run_dirs: Vec<PathBuf>,
    /// One uid per function (its environments run as it).
    pub uids: Vec<u32>,
    /// The sample workload, staged when the tier names no `code`.
    pub workload_exe: &'a Path,
    /// The backend's extra environment for every workload.
    pub workload_env: &'a [(String, String)],
    /// The tier's network, which its environments join.
    pub net: Option<Arc<net::TierNet>>,
}

/// The Lambda side of a backend: its runtime, its spawner threads and the account's
/// concurrency, shared by every Lambda tier (started at the first Lambda deploy, stopped at the
/// run's teardown).
pub(crate) struct Host {
    runtime: Option<tokio::runtime::Runtime>,
    spawner: SpawnerThreads,
    ctx: Arc<HostCtx>,
    run_id: String,
    /// The run's emulated internet, from the first Lambda deploy.
    internet: std::sync::Mutex<Option<net::Internet>>,
}

/// Why a Lambda tier could not be deployed.
#[derive(Debug, thiserror::Error)]
pub enum LambdaDeployError {
    #[error("read the tier's settings: it needs Lambda settings (memory, timeout, ...), not {0}")]
    Settings(String),
    #[error("create function {function}")]
    Reserve {
        function: String,
        #[source]
        source: concurrency::ReserveError,
    },
    #[error("stage the code of tier {tier}")]
    Stage {
        tier: TierId,
        #[source]
        source: StageError,
    },
}

impl Host {
    /// Starts the runtime and `spawners` spawner threads, for an account of
    /// `account_concurrency`.
    pub(crate) fn start(
        cgroups: Arc<dyn CgroupDriver>,
        sandbox_exe: PathBuf,
        run_id: &str,
        spawners: usize,
        account_concurrency: u32,
    ) -> io::Result<Host> {
        raise_fd_limit();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("isobench-lambda")
            .enable_all()
            .build()?;
        let spawner = SpawnerThreads::start(spawners)?;
        let ctx = Arc::new(HostCtx {
            handle: runtime.handle().clone(),
            spawner: spawner.spawner(),
            cgroups,
            sandbox_exe,
            next_env: AtomicU64::new(0),
            account: concurrency::Account::new(account_concurrency),
        });
        Ok(Host {
            runtime: Some(runtime),
            spawner,
            ctx,
            run_id: run_id.to_string(),
            internet: std::sync::Mutex::new(None),
        })
    }

    /// Creates the run's emulated internet unless it exists (`gateway`: the harness's address
    /// as it sees it).
    pub(crate) fn ensure_internet(
        &self,
        launcher: &crate::launcher::Launcher,
        tier: TierId,
        gateway: std::net::Ipv4Addr,
    ) -> Result<(), crate::error::NetworkError> {
        let mut slot = self.internet.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(net::Internet::create(launcher, tier, &self.run_id, gateway)?);
        }
        Ok(())
    }

    /// Stages the tier's code and creates its functions; starts no environment (Lambda starts
    /// none before the first invoke).
    pub(crate) fn create(&self, input: FunctionsInput<'_>) -> Result<Functions, LambdaDeployError> {
        let (plan, spec) = (input.plan, input.spec);
        let source = match &spec.code {
            Some(p) => CodeSource::User(p),
            None => CodeSource::Workload(input.workload_exe),
        };
        let staged = code::stage(&code::run_dir(&self.run_id), plan.tier.as_str(), source)
            .map_err(|source| LambdaDeployError::Stage { tier: plan.tier, source })?;
        // Every function's reservation first (each function gives its own back at teardown).
        if let Some(r) = spec.reserved_concurrency {
            for (k, req) in input.functions.iter().enumerate() {
                if let Err(source) = self.ctx.account.reserve(r) {
                    (0..k).for_each(|_| self.ctx.account.unreserve(r));
                    let _ = code::remove(&staged);
                    return Err(LambdaDeployError::Reserve { function: req.name.clone(), source });
                }
            }
        }
        let counters = Arc::new(TierCounters::default());
        let mut functions: Vec<Arc<Function>> = Vec::with_capacity(input.functions.len());
        let mut created = Vec::with_capacity(input.functions.len());
        for (i, (req, uid)) in input.functions.into_iter().zip(input.uids).enumerate() {
            let f0 = Instant::now();

            let role = FunctionRole::new(&self.run_id, &req.name);
            let env = function_env(spec, req.pinned_tenant.as_deref(), &role, plan, i as u32, input.workload_env);
            let fspec = FunctionSpec {
                name: req.name,
                tenants: req.tenants,
                tenant_isolation: req.tenant_isolation,
                memory_mb: spec.memory,
                timeout: spec.timeout.0,
                keep_alive: spec.keep_alive,
                max_lifetime: spec.max_lifetime.map(|d| d.0),
                concurrency: spec.concurrency,
                reserved: spec.reserved_concurrency,
                seed: plan.seed,
                uid,
                limits: input.limits,
                init_limits: input.init_limits,
                role,
                env,
                code_dir: staged.clone(),
                run_dirs: input.run_dirs.clone(),
                payload_contract: spec.response(),
                net: input.net.clone(),
            };
            functions.push(Function::new(fspec, self.ctx.clone(), counters.clone()));
            created.push(f0.elapsed());
        }
        Ok(Functions { functions, counters, staged: Some(staged), created, net: input.net })
    }

    /// Removes the run's staging directory and stops the spawner threads and the runtime (the
    /// tiers' functions must be torn down first).
    pub(crate) fn shutdown(mut self) -> TeardownReport {
        let mut report = TeardownReport::default();
        if let Some(mut i) = self.internet.lock().unwrap_or_else(|p| p.into_inner()).take() {
            report.merge(i.remove());
        }
        let dir = code::run_dir(&self.run_id);
        if dir.exists() {
            match code::remove(&dir) {
                Ok(()) => report.removed.push(format!("staging directory {}", dir.display())),
                Err(e) => report.left_behind.push(format!("staging directory: failed to {e}")),
            }
        }
        self.stop();
        report
    }

    fn stop(&mut self) {
        self.spawner.stop();
        // Never blocks, so dropping a backend inside another runtime is fine; every task left
        // is idle (its environment is gone).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = code::remove(&code::run_dir(&self.run_id));
        self.stop();
    }
}

/// One tier's deployed functions, with their staged code.
pub(crate) struct Functions {
    functions: Vec<Arc<Function>>,
    counters: Arc<TierCounters>,
    /// `None` once torn down.
    staged: Option<PathBuf>,
    /// How long creating each function took, measured for each (its role, environment and
    /// pool; the shared code staging is the tier's deploy, not any one function's start).
    created: Vec<Duration>,
    /// The tier's network, removed after its environments.
    net: Option<Arc<net::TierNet>>,
}

impl Functions {
    /// The deployment: each tenant's function as its endpoint; a function's start time is its
    /// own creation, measured per function (its environments' starts are the cold starts of
    /// its invokes, recorded apart: [`Functions::inits`]).
    pub(crate) fn deployment(&self, plan: &TierPlan) -> Deployment {
        let mut targets = Vec::new();
        for t in &plan.tenants {
            if let Some(f) = self.functions.iter().find(|f| f.spec.tenants.contains(&t.id)) {
                let endpoint: Arc<dyn isobench_core::backend::Invoke> = f.clone();
                targets.push(TenantTarget { tenant: t.id.clone(), endpoint: Endpoint::Function(endpoint) });
            }
        }
        let instances = self
            .functions
            .iter()
            .zip(&self.created)
            .map(|(f, created)| InstanceInfo {
                id: f.spec.name.clone(),
                tenants: f.spec.tenants.clone(),
                address: None,
                start_time: *created,
                pid: None,
                limits: Some(Limits {
                    cpu_millis: f.spec.limits.cpu_quota_us * 1000 / f.spec.limits.cpu_period_us,
                    memory_bytes: f.spec.limits.memory_bytes,
                }),
            })
            .collect();
        Deployment { tier: plan.tier, targets, instances, netns: None }
    }

    /// Shuts every environment down (blocking) and removes the staged code. Idempotent.
    pub(crate) fn teardown(&mut self) -> TeardownReport {
        let mut report = TeardownReport::default();
        let Some(staged) = self.staged.take() else { return report };
        let mut frozen = 0;
        for f in &self.functions {
            let (idle, removed, left) = f.close_begin();
            frozen += idle;
            report.removed.push(format!("function {} ({} environments)", f.spec.name, removed.len()));
            report.removed.extend(removed);
            report.left_behind.extend(left);
        }
        // One deadline for the whole tier: its in-flight invokes end together.
        let deadline = Instant::now() + function::CLOSE_WAIT;
        for f in &self.functions {
            report.left_behind.extend(f.close_finish(deadline));
        }
        match code::remove(&staged) {
            Ok(()) => report.removed.push(format!("staged code {}", staged.display())),
            Err(e) => report.left_behind.push(format!("staged code: failed to {e}")),
        }
        if let Some(n) = self.net.take() {
            report.merge(n.remove());
        }
        report.environments = Some(self.counters.snapshot(frozen));
        report
    }

    /// Every INIT of the tier's environments started so far, whatever became of its invoke.
    pub(crate) fn inits(&self) -> Vec<isobench_core::backend::InitRecord> {
        self.counters.inits()
    }

    /// Every function's execution environments.
    pub(crate) fn environments(&self) -> Vec<EnvironmentInfo> {
        self.functions.iter().flat_map(|f| f.environments()).collect()
    }

    pub(crate) fn infos(&self) -> Vec<FunctionInfo> {
        self.functions.iter().map(|f| f.info()).collect()
    }

    /// What environment `env_id`'s runtime wrote (the last `max` bytes), if it is one of these.
    pub(crate) fn output(&self, env_id: &str, max: usize) -> Option<String> {
        self.functions.iter().find_map(|f| f.output(env_id, max))
    }
}

impl Drop for Functions {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// A function's environment, beside the per-environment Runtime API variables: Lambda's
/// standard variables, the role's credentials, the sample workload's configuration (when it is
/// the code) and the scenario's `environment` (last, so it wins).
fn function_env(
    spec: &LambdaSpec,
    pinned_tenant: Option<&str>,
    role: &FunctionRole,
    plan: &TierPlan,
    index: u32,
    workload_env: &[(String, String)],
) -> Vec<(String, String)> {
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut env = vec![
        kv("_HANDLER", &spec.handler),
        kv("LAMBDA_TASK_ROOT", TASK_ROOT),
        kv("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        kv("TZ", ":UTC"),
        kv("LANG", "en_US.UTF-8"),
        kv("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
        kv(
            "LD_LIBRARY_PATH",
            "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
        ),
    ];
    env.extend(role.env());
    // What sts:GetCallerIdentity would answer for these credentials; there is no STS here.
    env.push(kv("ISOBENCH_ROLE_ARN", &role.role_arn));
    env.extend(workload_env.iter().cloned());
    if spec.code.is_none() {
        let w = &plan.workload;
        env.push(kv("TENANT_APP_HYGIENE", w.hygiene.as_str()));
        env.push(kv("TENANT_APP_TMP_DIR", "/tmp"));
        if w.probes {
            env.push(kv("TENANT_APP_PROBES", "1"));
        }
        if let Some(t) = pinned_tenant {
            env.push(kv("TENANT_APP_TENANT", t));
        }
        if let Some(f) = &w.faults {
            env.push(kv("TENANT_APP_FAULT_ERROR_RATE", &f.error_rate.to_string()));
            env.push(kv("TENANT_APP_FAULT_ERROR_BODY_RATE", &f.error_body_rate.to_string()));
            env.push(kv("TENANT_APP_FAULT_STALL_RATE", &f.stall_rate.to_string()));
            env.push(kv("TENANT_APP_FAULT_STALL", &format!("{}us", f.stall.0.as_micros())));
            env.push(kv("TENANT_APP_FAULT_SEED", &crate::workload::fault_seed(plan.seed, index).to_string()));
        }
    }
    env.extend(spec.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Raises this process's soft limit on open files to its hard limit: each environment holds a
/// few descriptors in the harness (its Runtime API socket and connection, a pidfd, its output).
fn raise_fd_limit() {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid, live rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
