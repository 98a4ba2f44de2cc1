//! Scenario files: TOML with a format version, unknown fields rejected, and every semantic
//! check done before anything is deployed. Errors name the file, line, column and field, and
//! say what would be accepted.
//!
//! `model` holds what a validated scenario says, `raw` the form serde reads, `validate` the
//! checks from one to the other. Each tier's settings have their own module with their parser
//! (`ec2`, `ecs`, `eks`, `lambda`); the AWS backend's settings are in `aws`. The located problems are
//! [`crate::diagnostics`]', shared with the endpoints and pricing files.

mod arrivals_check;
pub mod aws;
pub mod ec2;
pub mod ecs;
pub mod eks;
mod expect;
pub mod explore;
pub mod lambda;
mod model;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

pub use crate::diagnostics::Problem;
pub use crate::security_groups::NetworkSpec;
pub use ec2::{Ec2Spec, SHARED_INSTANCE_GROUP, TENANT_INSTANCE_GROUP};
pub use model::{
    Arrival, ErrorBudget, FORMAT_VERSION, FaultSpec, Hygiene, IsolationFault, LOCAL_RANGE, LocalSpec, MixSpec,
    NoisySpec, PicksSpec, ProbesSpec, RunSpec, Scenario, TenantSpec, TierSettings, TierSpec, WorkloadSpec,
};
pub use validate::ScenarioError;

/// SHA-256 of the scenario text, hex; recorded with results so runs can be matched.
pub fn hash(src: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(src.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}
