//! Lambda targets inside an agent: the backend's own Lambda invoker
//! ([`crate::tiers::lambda::Invoker`], outcomes read by [`crate::tiers::lambda::result_of`]),
//! made from a function's name or ARN and a region, so an agent in the VPC invokes through the
//! SDK exactly as the Lambda tiers do.

use std::sync::Arc;

use isobench_core::backend::{Invoke, PayloadContract};

use crate::config::{self, AwsOptions, ConfigError};
pub use crate::tiers::lambda::Invoker as FunctionTarget;

/// A target on the SDK's default chain (in a task: the task role), in `region`, else the ARN's
/// region, else the chain's.
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

/// The region of a function ARN (`arn:aws:lambda:<region>:<account>:function:<name>`).
pub fn arn_region(function: &str) -> Option<String> {
    let parts: Vec<&str> = function.split(':').collect();
    (parts.len() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && !parts[3].is_empty())
        .then(|| parts[3].to_string())
}
