//! The shared model of isobench: what a scenario says, the plan derived from it, the tiers,
//! and the [`Backend`] trait every deployment target implements.
//!
//! Everything here is synchronous and platform-neutral so that the CLI, the load driver, the
//! emulator and the cloud backend can all depend on it without pulling each other in.

pub mod arrivals;
pub mod backend;
pub mod diagnostics;
pub mod instance_types;
pub mod plan;
pub mod probes;
pub mod scenario;
pub mod security_groups;
pub mod tier;
pub mod units;
pub mod workload_api;

pub use backend::{Backend, BackendError, Deployment, Endpoint, InstanceInfo, TenantTarget};
pub use plan::{Plan, TierPlan};
pub use scenario::{Scenario, ScenarioError};
pub use tier::TierId;
