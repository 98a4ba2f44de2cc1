//! Lambda targets inside an agent: the same SDK `Invoke` the backend's Lambda tiers use
//! ([`crate::sdk::Lambda`], outcomes read by [`crate::tiers::lambda::result_of`]), made from a
//! function's name or ARN and a region, so an agent in the VPC invokes through the SDK.

use std::pin::Pin;
use std::sync::Arc;

use isobench_core::backend::{Invoke, InvokeOutcome, InvokeResult, PayloadContract};

use crate::api::LambdaApi;
use crate::config::{self, AwsOptions, ConfigError};
use crate::tiers::lambda::result_of;

/// One function invoked through the Lambda API.
pub struct FunctionTarget {
    api: Arc<dyn LambdaApi>,
    function: String,
    /// Tenant isolation mode: every invoke carries the tenant's id.
    tenant_ids: bool,
    contract: PayloadContract,
}

impl FunctionTarget {
    pub fn new(api: Arc<dyn LambdaApi>, function: &str, tenant_ids: bool, contract: PayloadContract) -> FunctionTarget {
        FunctionTarget { api, function: function.to_string(), tenant_ids, contract }
    }

    /// A target on the SDK's default chain (in a task: the task role), in `region`, else the
    /// ARN's region, else the chain's.
    pub async fn connect(
        function: &str,
        region: Option<&str>,
        tenant_ids: bool,
        contract: PayloadContract,
    ) -> Result<Arc<dyn Invoke>, ConfigError> {
        let region = region.map(str::to_string).or_else(|| arn_region(function));
        let sdk = config::load(&AwsOptions { profile: None, region }).await?;
        let api = config::apis(&sdk).lambda;
        Ok(Arc::new(FunctionTarget::new(api, function, tenant_ids, contract)))
    }
}

/// The region of a function ARN (`arn:aws:lambda:<region>:<account>:function:<name>`).
pub fn arn_region(function: &str) -> Option<String> {
    let parts: Vec<&str> = function.split(':').collect();
    (parts.len() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && !parts[3].is_empty())
        .then(|| parts[3].to_string())
}

impl std::fmt::Debug for FunctionTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionTarget")
            .field("function", &self.function)
            .field("tenant_ids", &self.tenant_ids)
            .field("contract", &self.contract)
            .finish()
    }
}

impl Invoke for FunctionTarget {
    fn invoke<'a>(
        &'a self,
        tenant: &'a str,
        payload: Vec<u8>,
    ) -> Pin<Box<dyn std::future::Future<Output = InvokeResult> + Send + 'a>> {
        Box::pin(async move {
            let tenant_id = self.tenant_ids.then_some(tenant);
            match self.api.invoke(&self.function, tenant_id, payload).await {
                Ok(reply) => result_of(reply),
                // As the Lambda tiers' invoker reads a refused invoke.
                Err(e) if e.code == "TooManyRequestsException" => InvokeResult::bare(InvokeOutcome::Throttled),
                Err(e) => InvokeResult::bare(InvokeOutcome::Rejected { error_type: e.code }),
            }
        })
    }

    fn payload_contract(&self) -> PayloadContract {
        self.contract
    }
}
