//! The three Lambda tiers, which differ only in how tenants map onto functions ([`Mapping`]):
//!
//! - `lambda-per-tenant`: one function per tenant, its code pinned to that tenant; an execution
//!   environment never serves another function, so never another tenant.
//! - `lambda-shared`: one function serves every tenant, with one role; its execution
//!   environments are reused across invocations, so across tenants.
//! - `lambda-tenant-isolation`: one function created in tenant isolation mode (`PER_TENANT`):
//!   every invoke carries a tenant id, and execution environments are keyed by it and never
//!   serve another tenant. An invoke without one is rejected, as the real service rejects it.
//!
//! Everything the emulator does for these tiers is decided here: the layout ([`functions`]),
//! the sizing ([`sizing`]: the function's memory size, CPU in proportion to it, one vCPU at
//! 1,769 MB as on Lambda, at least one full vCPU during INIT), the preparation (the backend's
//! Lambda runtime and spawner threads, started at the first Lambda deploy; the code staged),
//! deploy and teardown. Environments themselves, started by invokes, are the machinery in
//! [`crate::lambda`].

use isobench_core::backend::{BackendError, Deployment, TeardownReport};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;

use std::sync::Arc;

use super::driver::TierDriver;
use crate::cgroup::{CPU_PERIOD_US, CgroupLimits};
use crate::context::Context;
use crate::error::deploy_error;
use crate::lambda::net::{TierNet, internet_egress, vpc_egress};
use crate::lambda::{EnvironmentInfo, FunctionInfo, FunctionRequest, Functions, FunctionsInput, LambdaDeployError};
use crate::launcher::gateway_of;
use isobench_core::scenario::lambda::LambdaSpec;

/// Lambda's rule: one full vCPU at 1,769 MB.
const MB_PER_VCPU: u64 = 1769;

/// How a Lambda tier maps its tenants onto functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// `lambda-per-tenant`.
    PerTenant,
    /// `lambda-shared`.
    Shared,
    /// `lambda-tenant-isolation`.
    TenantIsolation,
}

/// A Lambda tier's deploy.
pub(crate) struct LambdaTier {
    mapping: Mapping,
    functions: Option<Functions>,
}

impl LambdaTier {
    pub(crate) fn new(mapping: Mapping) -> LambdaTier {
        LambdaTier { mapping, functions: None }
    }

    /// The execution environments of the tier's functions.
    pub(crate) fn environments(&self) -> Vec<EnvironmentInfo> {
        self.functions.as_ref().map(Functions::environments).unwrap_or_default()
    }

    /// Every INIT of the tier's environments started so far (none before deploy).
    pub(crate) fn inits(&self) -> Vec<isobench_core::backend::InitRecord> {
        self.functions.as_ref().map(Functions::inits).unwrap_or_default()
    }

    pub(crate) fn functions(&self) -> Vec<FunctionInfo> {
        self.functions.as_ref().map(Functions::infos).unwrap_or_default()
    }

    /// What environment `env_id`'s runtime wrote, if it is one of this tier's.
    pub(crate) fn output(&self, env_id: &str, max: usize) -> Option<String> {
        self.functions.as_ref()?.output(env_id, max)
    }
}

impl TierDriver for LambdaTier {
    /// Stages the tier's code and creates its functions; no environment starts before the
    /// first invoke, as on Lambda.
    fn deploy(&mut self, cx: &mut Context, plan: &TierPlan) -> Result<Deployment, BackendError> {
        let tier = plan.tier;
        let TierSettings::Lambda(spec) = &plan.settings else {
            let e = LambdaDeployError::Settings(format!("{:?}", plan.settings));
            return Err(deploy_error(tier, "the Lambda functions", e));
        };
        let requests = functions(self.mapping, plan);
        let (limits, init_limits) = sizing(spec.memory, cx.host_cpus(), cx.config().pids_max);
        let run_dirs = cx.ensure_run().map_err(|e| deploy_error(tier, "the run's cgroups", e))?;
        let uids = requests.iter().map(|_| cx.next_uid()).collect();
        cx.start_lambda(plan.lambda_account_concurrency)
            .map_err(|e| deploy_error(tier, "the Lambda runtime and spawner threads", e))?;
        let net = network(cx, plan, spec)?;
        let c = cx.config();
        let input = FunctionsInput {
            plan,
            spec,
            functions: requests,
            limits,
            init_limits,
            run_dirs,
            uids,
            workload_exe: &c.workload_exe,
            workload_env: &c.workload_env,
            net: Some(net),
        };
        let host = cx.lambda().expect("started above");
        let functions = host.create(input).map_err(|e| deploy_error(tier, "the Lambda functions", e))?;
        Ok(self.functions.insert(functions).deployment(plan))
    }

    fn teardown(&mut self, _cx: &mut Context) -> TeardownReport {
        self.functions.take().map(|mut f| f.teardown()).unwrap_or_default()
    }
}

/// The tier's network: the run's internet (made at the first Lambda deploy), a block of the
/// subnet, the tier's bridge and table: egress to the internet only, or as the `vpc`'s
/// security groups allow.
fn network(cx: &mut Context, plan: &TierPlan, spec: &LambdaSpec) -> Result<Arc<TierNet>, BackendError> {
    let tier = plan.tier;
    let gateway = gateway_of(plan.subnet);
    let block =
        cx.reserve_block(tier, plan.subnet).map_err(|e| deploy_error(tier, "the environments' addresses", e))?;
    let launcher = cx.launcher()?;
    let host = cx.lambda().expect("started before");
    host.ensure_internet(launcher, tier, gateway).map_err(|e| e.into_backend(tier, "the run's internet"))?;
    let egress = match &spec.vpc {
        Some(vpc) => vpc_egress(&vpc.egress_rules()),
        None => internet_egress(),
    };
    let net = TierNet::create(launcher, tier, gateway, block, &egress)
        .map_err(|e| e.into_backend(tier, "the environments' network"))?;
    Ok(Arc::new(net))
}

/// The functions a tier wants: one per tenant, pinned to it; or one for every tenant, in tenant
/// isolation mode or not.
fn functions(mapping: Mapping, plan: &TierPlan) -> Vec<FunctionRequest> {
    let all = || plan.tenants.iter().map(|t| t.id.clone()).collect();
    match mapping {
        Mapping::PerTenant => plan
            .tenants
            .iter()
            .map(|t| FunctionRequest {
                name: format!("{}-{}", plan.tier, t.id),
                tenants: vec![t.id.clone()],
                pinned_tenant: Some(t.id.clone()),
                tenant_isolation: false,
            })
            .collect(),
        Mapping::Shared => {
            vec![FunctionRequest {
                name: plan.tier.to_string(),
                tenants: all(),
                pinned_tenant: None,
                tenant_isolation: false,
            }]
        }
        Mapping::TenantIsolation => {
            vec![FunctionRequest {
                name: plan.tier.to_string(),
                tenants: all(),
                pinned_tenant: None,
                tenant_isolation: true,
            }]
        }
    }
}

/// Cgroup limits of a function of `memory_mb`: the memory size; CPU in proportion (one vCPU
/// at 1,769 MB, at least 1 ms per period, at most the host's CPUs); and, for INIT, at least one
/// full vCPU.
fn sizing(memory_mb: u32, host_cpus: u32, pids_max: u64) -> (CgroupLimits, CgroupLimits) {
    let host = u64::from(host_cpus.max(1)) * CPU_PERIOD_US;
    let quota = (u64::from(memory_mb) * CPU_PERIOD_US / MB_PER_VCPU).clamp(1000, host);
    let limits = CgroupLimits {
        cpu_quota_us: quota,
        cpu_period_us: CPU_PERIOD_US,
        memory_bytes: u64::from(memory_mb) << 20,
        pids_max,
    };
    let init = CgroupLimits { cpu_quota_us: quota.max(CPU_PERIOD_US.min(host)), ..limits };
    (limits, init)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_follows_memory_with_one_vcpu_at_1769_mb() {
        let (l, init) = sizing(1769, 2, 1024);
        assert_eq!(l.cpu_quota_us, 100_000);
        assert_eq!(l.memory_bytes, 1769 << 20);
        assert_eq!(init, l);
        let (l, init) = sizing(512, 2, 1024);
        assert_eq!(l.cpu_quota_us, 28_942, "512 MB is ~0.29 vCPU");
        assert_eq!(init.cpu_quota_us, 100_000, "INIT gets a full vCPU");
        assert_eq!(sizing(10240, 2, 1024).0.cpu_quota_us, 200_000, "capped at the host's CPUs");
        assert_eq!(sizing(128, 1, 1024).0.cpu_quota_us, 7_235);
    }
}
