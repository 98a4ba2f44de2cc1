//! The three Lambda tiers from one zip (`bootstrap` for `provided.al2023`): a function and role
//! per tenant, one shared function, or one function in tenant isolation mode invoked with each
//! tenant's id. One module for the three: [`Layout`] is the one place that says how each maps
//! tenants to functions.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use isobench_core::backend::{
    Endpoint, InstanceInfo, Invoke, InvokeOutcome, InvokeResult, PayloadContract, StartKind, TenantTarget,
};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::TierSettings;
use isobench_core::scenario::lambda::LambdaSpec;
use isobench_core::{Deployment, TierId};

use crate::api::{FunctionRequest, LambdaApi};
use crate::context::{DeployContext, DeployError, wait_for};
use crate::package;
use crate::resource::Resource;
use crate::retry;
use crate::tier::{AwsTier, Counts, Needs, Planned, Refusal, planned_name};

/// How long a function may stay `Pending`.
const PENDING_TIMEOUT: Duration = Duration::from_secs(300);

/// How a Lambda tier maps tenants to functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `lambda-per-tenant`: a function and role per tenant, the tenant fixed in its environment.
    PerTenant,
    /// `lambda-shared`: one function serves every tenant.
    Shared,
    /// `lambda-tenant-isolation`: one function in tenant isolation mode (`PER_TENANT`); every
    /// invoke carries the tenant's id.
    TenantIsolation,
}

/// The Lambda tier with one layout.
#[derive(Debug)]
pub struct LambdaTier {
    pub layout: Layout,
}

/// One function of the layout.
struct Function {
    /// Its name and its role's: `isobench-<run>-<suffix>`.
    suffix: String,
    /// The tenant fixed in its environment (`TENANT_APP_TENANT`).
    fixed_tenant: Option<String>,
    serves: Vec<String>,
}

impl Layout {
    fn functions(self, tenants: &[String]) -> Vec<Function> {
        let one = |suffix: &str| Function { suffix: suffix.into(), fixed_tenant: None, serves: tenants.to_vec() };
        match self {
            Layout::PerTenant => tenants
                .iter()
                .map(|t| Function { suffix: format!("fn-{t}"), fixed_tenant: Some(t.clone()), serves: vec![t.clone()] })
                .collect(),
            Layout::Shared => vec![one("shared")],
            Layout::TenantIsolation => vec![one("isolated")],
        }
    }

    fn tenant_isolation_mode(self) -> bool {
        self == Layout::TenantIsolation
    }
}

fn spec(tp: &TierPlan) -> Result<&LambdaSpec, DeployError> {
    match &tp.settings {
        TierSettings::Lambda(spec) => Ok(spec),
        _ => Err(DeployError::Other(format!("the {} tier has no Lambda settings", tp.tier))),
    }
}

#[async_trait]
impl AwsTier for LambdaTier {
    fn id(&self) -> TierId {
        match self.layout {
            Layout::PerTenant => TierId::LambdaPerTenant,
            Layout::Shared => TierId::LambdaShared,
            Layout::TenantIsolation => TierId::LambdaTenantIsolation,
        }
    }

    fn needs(&self, _tp: &TierPlan) -> Needs {
        // The function's code goes in the create call: no VPC, no bucket.
        Needs::default()
    }

    fn counts(&self, tenants: u32) -> Counts {
        let functions = match self.layout {
            Layout::PerTenant => tenants,
            Layout::Shared | Layout::TenantIsolation => 1,
        };
        Counts { functions, ..Counts::default() }
    }

    fn planned(&self, tp: &TierPlan, tenants: &[String]) -> Vec<Planned> {
        let tier = Some(self.id());
        let memory = spec(tp).map(|l| l.memory.to_string()).unwrap_or_else(|_| "?".into());
        let arch = crate::tier::tier_architecture(tp).map_or("[aws] architecture", |a| a.as_str());
        let mode = if self.layout.tenant_isolation_mode() { ", PER_TENANT" } else { "" };
        let reserved = match spec(tp).map(|l| l.reserved_concurrency) {
            Ok(Some(n)) => format!(", reserved concurrency {n}"),
            _ => String::new(),
        };
        let mut out = Vec::new();
        for f in self.layout.functions(tenants) {
            let name = planned_name(&f.suffix);
            out.push(Planned { tier, kind: "iam role", name: name.clone() });
            let desc = format!("{name} (provided.al2023, {arch}, {memory} MB{mode}{reserved})");
            out.push(Planned { tier, kind: "lambda function", name: desc });
        }
        out
    }

    fn refused(&self, tp: &TierPlan) -> Vec<Refusal> {
        spec(tp).map(refused).unwrap_or_default()
    }

    fn ignored(&self, tp: &TierPlan) -> Vec<String> {
        spec(tp).map(emulator_only).unwrap_or_default()
    }

    async fn deploy(&self, ctx: &mut DeployContext, tp: &TierPlan) -> Result<Deployment, DeployError> {
        let spec = spec(tp)?;
        // The CLI refuses these before the run; a caller of the library gets the same answer
        // before anything is created.
        if let Some(r) = refused(spec).first() {
            return Err(DeployError::Other(format!("`{}`: {}; {}", r.field, r.message, r.accepted)));
        }
        if let Some(why) = crate::tier::architecture_mismatch(tp, ctx.spec.architecture) {
            return Err(DeployError::Other(why));
        }
        let zip = Arc::new(package::lambda_zip(&ctx.workload).map_err(|e| DeployError::Other(e.to_string()))?);
        let tenants: Vec<String> = tp.tenants.iter().map(|t| t.id.clone()).collect();
        let mut targets = Vec::new();
        let mut instances = Vec::new();
        for f in self.layout.functions(&tenants) {
            let start = Instant::now();
            let name = ctx.name(&f.suffix);
            self.create(ctx, spec, &name, f.fixed_tenant.as_deref(), zip.clone()).await?;
            // The zip is the sample workload (`code` is refused), read as `response` says.
            let invoker: Arc<dyn Invoke> = Arc::new(Invoker::new(
                ctx.apis.lambda.clone(),
                &name,
                self.layout.tenant_isolation_mode(),
                spec.response(),
            ));
            for t in &f.serves {
                targets.push(TenantTarget { tenant: t.clone(), endpoint: Endpoint::Function(invoker.clone()) });
            }
            instances.push(InstanceInfo {
                id: name,
                tenants: f.serves,
                address: None,
                start_time: start.elapsed(),
                pid: None,
                limits: None,
            });
        }
        Ok(Deployment { tier: self.id(), targets, instances, netns: None })
    }
}

impl LambdaTier {
    /// One function with its own role, waited out of `Pending`; a function that does not
    /// become `Active` skips the tier's data plane, with the service's reason.
    async fn create(
        &self,
        ctx: &mut DeployContext,
        spec: &LambdaSpec,
        name: &str,
        fixed_tenant: Option<&str>,
        zip: Arc<Vec<u8>>,
    ) -> Result<(), DeployError> {
        let tier = self.id();
        let role = ctx.role(tier, name, "lambda.amazonaws.com").await?;
        let mut environment: BTreeMap<String, String> = spec.environment.clone();
        if let Some(t) = fixed_tenant {
            environment.insert("TENANT_APP_TENANT".into(), t.to_string());
        }
        let req = FunctionRequest {
            name: name.to_string(),
            role_arn: role,
            zip,
            architecture: spec.architecture.unwrap_or(ctx.spec.architecture).as_str().into(),
            memory_mb: spec.memory as i32,
            timeout_s: spec.timeout.0.as_secs().max(1) as i32,
            environment,
            per_tenant: self.layout.tenant_isolation_mode(),
            tags: ctx.tag_pairs(Some(tier)),
        };
        // A role made a moment ago "cannot be assumed by Lambda" yet: NotReady, retried.
        retry::retry(ctx.backoff, || ctx.apis.lambda.create_function(&req)).await?;
        ctx.record(Some(tier), Resource::Function(name.to_string()));
        if let Some(n) = spec.reserved_concurrency {
            retry::retry(ctx.backoff, || ctx.apis.lambda.put_function_concurrency(name, n)).await?;
        }
        let lambda = ctx.apis.lambda.clone();
        let state = wait_for(&format!("function {name}"), PENDING_TIMEOUT, || {
            let (lambda, name) = (lambda.clone(), name.to_string());
            async move { Ok(Some(lambda.function_state(&name).await?).filter(|s| s.state != "Pending")) }
        })
        .await?;
        if state.state != "Active" {
            let reason = format!(
                "function {name} is {} on {}: {}",
                state.state,
                ctx.caps.lambda.describe(),
                state.reason.as_deref().unwrap_or("no reason given")
            );
            ctx.skip_data_plane(tier, &reason);
        }
        Ok(())
    }
}

/// The settings this backend does not implement yet. Deploying without them would measure
/// something else than the scenario describes (the sample workload instead of the user's code,
/// a function outside the VPC), so they are refused instead.
pub fn refused(spec: &LambdaSpec) -> Vec<Refusal> {
    let mut out = Vec::new();
    if spec.code.is_some() {
        out.push(Refusal {
            field: "code",
            message: "the AWS backend does not upload a function's own code; \
                      it would deploy the sample workload instead",
            accepted: "no `code` with --target aws: remove it (the local emulator runs it)",
        });
    }
    if spec.vpc.is_some() {
        out.push(Refusal {
            field: "vpc",
            message: "the AWS backend does not attach functions to a VPC yet (planned for a later round); \
                      they would run with Lambda's default networking, outside the tier's subnets and groups",
            accepted: "no [tier.vpc] or [[tier.security_group]] with --target aws: remove them (the local emulator applies them)",
        });
    }
    out
}

/// Settings that only shape the emulator's environments: on AWS the service decides keep-alive
/// and recycling, and only the account pool and reserved concurrency bound a function. Listed
/// when they differ from their defaults.
pub fn emulator_only(spec: &LambdaSpec) -> Vec<String> {
    let d = LambdaSpec::default();
    let text = |d: Duration| humantime::format_duration(d).to_string();
    let mut out = Vec::new();
    let k = spec.keep_alive;
    if k != d.keep_alive {
        let range = if k.min == k.max { text(k.min) } else { format!("{}..{}", text(k.min), text(k.max)) };
        out.push(format!("keep_alive = \"{range}\""));
    }
    if let Some(life) = spec.max_lifetime {
        out.push(format!("max_lifetime = \"{}\"", text(life.0)));
    }
    if spec.concurrency != d.concurrency {
        out.push(format!("concurrency = {}", spec.concurrency));
    }
    out
}

/// Invokes a function through the Lambda API.
pub struct Invoker {
    api: Arc<dyn LambdaApi>,
    function: String,
    /// Tenant isolation mode: every invoke carries the tenant's id.
    tenant_ids: bool,
    /// How the function's payloads are read.
    contract: PayloadContract,
}

impl Invoker {
    pub fn new(api: Arc<dyn LambdaApi>, function: &str, tenant_ids: bool, contract: PayloadContract) -> Invoker {
        Invoker { api, function: function.to_string(), tenant_ids, contract }
    }
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker")
            .field("function", &self.function)
            .field("tenant_ids", &self.tenant_ids)
            .field("contract", &self.contract)
            .finish()
    }
}

impl Invoke for Invoker {
    fn invoke<'a>(
        &'a self,
        tenant: &'a str,
        payload: Vec<u8>,
    ) -> Pin<Box<dyn std::future::Future<Output = InvokeResult> + Send + 'a>> {
        Box::pin(async move {
            let tenant_id = self.tenant_ids.then_some(tenant);
            match self.api.invoke(&self.function, tenant_id, payload).await {
                Ok(reply) => result_of(reply),
                Err(e) => {
                    let outcome = match e.code.as_str() {
                        "TooManyRequestsException" => InvokeOutcome::Throttled,
                        _ => InvokeOutcome::Rejected { error_type: e.code.clone() },
                    };
                    InvokeResult::bare(outcome)
                }
            }
        })
    }

    fn payload_contract(&self) -> PayloadContract {
        self.contract
    }
}

/// An invoke's outcome and the platform's `REPORT` figures (billed duration, memory, and the
/// init duration that marks a cold start).
pub fn result_of(reply: crate::api::InvokeReply) -> InvokeResult {
    let report = reply.log_tail.as_deref().and_then(|t| t.lines().find(|l| l.starts_with("REPORT"))).unwrap_or("");
    let field = |name: &str| -> Option<f64> {
        let rest = report.split(&format!("{name}: ")).nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    // The log tail is the function's own output: a forged `REPORT` line must not panic us.
    let start = match field("Init Duration").and_then(|ms| Duration::try_from_secs_f64(ms / 1e3).ok()) {
        Some(init) => Some(StartKind::Cold { init }),
        None if !report.is_empty() => Some(StartKind::Warm),
        None => None,
    };
    let outcome = match reply.function_error {
        Some(_) if report.contains("Status: timeout") => InvokeOutcome::Timeout,
        Some(e) => InvokeOutcome::FunctionError { error_type: e },
        None => InvokeOutcome::Ok(reply.payload),
    };
    InvokeResult {
        outcome,
        start,
        billed_ms: field("Billed Duration").map(|v| v as u64),
        memory_mb: field("Memory Size").map(|v| v as u32),
        responded_at: None,
        // `Invoke`, not `InvokeWithResponseStream`: the payload arrives whole.
        first_byte_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::InvokeReply;

    #[test]
    fn report_lines_give_cold_starts_and_billing() {
        let tail = "START RequestId: 1\nREPORT RequestId: 1\tDuration: 3.21 ms\tBilled Duration: 4 ms\t\
                    Memory Size: 128 MB\tMax Memory Used: 20 MB\tInit Duration: 12.50 ms\t\n";
        let r = result_of(InvokeReply { payload: b"{}".to_vec(), function_error: None, log_tail: Some(tail.into()) });
        assert_eq!(r.outcome, InvokeOutcome::Ok(b"{}".to_vec()));
        assert_eq!(r.start, Some(StartKind::Cold { init: Duration::from_micros(12_500) }));
        assert_eq!(r.billed_ms, Some(4));
        assert_eq!(r.memory_mb, Some(128));
        let warm = "REPORT RequestId: 2\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\t";
        let r = result_of(InvokeReply { payload: vec![], function_error: None, log_tail: Some(warm.into()) });
        assert_eq!(r.start, Some(StartKind::Warm));
    }

    #[test]
    fn a_forged_report_line_is_not_a_panic() {
        for init in ["-5.0", "NaN", "inf", "1e300"] {
            let tail = format!("REPORT RequestId: x Duration: 1 ms Billed Duration: 2 ms Init Duration: {init} ms");
            let r = result_of(InvokeReply { payload: vec![], function_error: None, log_tail: Some(tail) });
            assert!(matches!(r.start, Some(StartKind::Warm)), "{init}: {:?}", r.start);
        }
    }

    #[test]
    fn without_a_report_nothing_is_claimed() {
        let r = result_of(InvokeReply { payload: vec![], function_error: Some("Unhandled".into()), log_tail: None });
        assert_eq!(r.start, None);
        assert_eq!(r.billed_ms, None);
        assert!(matches!(r.outcome, InvokeOutcome::FunctionError { .. }));
    }
}
