//! The three Lambda tiers from one zip (`bootstrap` for `provided.al2023`): a function and role
//! per tenant, one shared function, or one function in tenant isolation mode invoked with each
//! tenant's id.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::backend::{Endpoint, InstanceInfo, Invoke, InvokeOutcome, InvokeResult, StartKind, TenantTarget};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::lambda::LambdaSpec;
use isobench_core::{Deployment, TierId};

use crate::api::{FunctionRequest, LambdaApi};
use crate::deployer::{DeployError, Deployer, wait_for};
use crate::package;
use crate::resource::Resource;
use crate::retry;

/// How long a function may stay `Pending`.
const PENDING_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn deploy(d: &mut Deployer, tp: &TierPlan, spec: &LambdaSpec) -> Result<Deployment, DeployError> {
    let tier = tp.tier;
    let zip = Arc::new(package::lambda_zip(&d.workload).map_err(|e| DeployError::Other(e.to_string()))?);
    let tenants: Vec<String> = tp.tenants.iter().map(|t| t.id.clone()).collect();
    // (function name, tenant the function is for (per-tenant tier), tenants it serves)
    let functions: Vec<(String, Option<String>, Vec<String>)> = match tier {
        TierId::LambdaPerTenant => {
            tenants.iter().map(|t| (d.name(&format!("fn-{t}")), Some(t.clone()), vec![t.clone()])).collect()
        }
        TierId::LambdaShared => vec![(d.name("shared"), None, tenants.clone())],
        _ => vec![(d.name("isolated"), None, tenants.clone())],
    };
    let mut targets = Vec::new();
    let mut instances = Vec::new();
    for (name, tenant, serves) in functions {
        let start = Instant::now();
        let role = d.role(tier, &name, "lambda.amazonaws.com").await?;
        let mut environment: BTreeMap<String, String> = spec.environment.clone();
        if let Some(t) = &tenant {
            environment.insert("TENANT_APP_TENANT".into(), t.clone());
        }
        let req = FunctionRequest {
            name: name.clone(),
            role_arn: role,
            zip: zip.clone(),
            architecture: d.spec.architecture.as_str().into(),
            memory_mb: spec.memory as i32,
            timeout_s: spec.timeout.0.as_secs().max(1) as i32,
            environment,
            per_tenant: tier == TierId::LambdaTenantIsolation,
            tags: d.tag_pairs(Some(tier)),
        };
        // A role made a moment ago "cannot be assumed by Lambda" yet: NotReady, retried.
        retry::retry(d.backoff, || d.apis.lambda.create_function(&req)).await?;
        d.record(Some(tier), Resource::Function(name.clone()));
        let lambda = d.apis.lambda.clone();
        let state = wait_for(&format!("function {name}"), PENDING_TIMEOUT, || {
            let (lambda, name) = (lambda.clone(), name.clone());
            async move { Ok(Some(lambda.function_state(&name).await?).filter(|s| s.state != "Pending")) }
        })
        .await?;
        if state.state != "Active" {
            let reason = format!(
                "function {name} is {} on {}: {}",
                state.state,
                d.caps.lambda.describe(),
                state.reason.as_deref().unwrap_or("no reason given")
            );
            d.skip_data_plane(tier, &reason);
        }
        let invoker: Arc<dyn Invoke> = Arc::new(Invoker {
            api: d.apis.lambda.clone(),
            function: name.clone(),
            tenant_ids: tier == TierId::LambdaTenantIsolation,
        });
        for t in &serves {
            targets.push(TenantTarget { tenant: t.clone(), endpoint: Endpoint::Function(invoker.clone()) });
        }
        instances.push(InstanceInfo {
            id: name,
            tenants: serves,
            address: None,
            start_time: start.elapsed(),
            pid: None,
            limits: None,
        });
    }
    Ok(Deployment { tier, targets, instances, netns: None })
}

/// Invokes a function through the Lambda API.
pub struct Invoker {
    api: Arc<dyn LambdaApi>,
    function: String,
    /// Tenant isolation mode: every invoke carries the tenant's id.
    tenant_ids: bool,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker").field("function", &self.function).field("tenant_ids", &self.tenant_ids).finish()
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
                    InvokeResult { outcome, start: None, billed_ms: None, memory_mb: None }
                }
            }
        })
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
    let start = match field("Init Duration") {
        Some(ms) => Some(StartKind::Cold { init: Duration::from_secs_f64(ms / 1e3) }),
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
    fn without_a_report_nothing_is_claimed() {
        let r = result_of(InvokeReply { payload: vec![], function_error: Some("Unhandled".into()), log_tail: None });
        assert_eq!(r.start, None);
        assert_eq!(r.billed_ms, None);
        assert!(matches!(r.outcome, InvokeOutcome::FunctionError { .. }));
    }
}
