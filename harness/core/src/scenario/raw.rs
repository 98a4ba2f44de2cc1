//! The raw form of a scenario file, as written: what serde reads before validation. Sections
//! that need no checks beyond their types are read straight into the model's types; tiers stay
//! TOML tables, read by their tier's parser.

use serde::Deserialize;

use super::aws::AwsSpec;
use super::explore::ExploreSpec;
use super::model::{IsolationFault, MixSpec, NoisySpec, PicksSpec, ProbesSpec, RunSpec, WorkloadSpec};
use crate::arrivals::ArrivalsSpec;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) format_version: u32,
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    pub(super) run: RunSpec,
    #[serde(default)]
    pub(super) workload: WorkloadSpec,
    #[serde(default)]
    pub(super) mix: MixSpec,
    pub(super) tenants: RawTenants,
    #[serde(default)]
    pub(super) tier: Vec<toml::Table>,
    #[serde(default)]
    pub(super) local: RawLocal,
    #[serde(default)]
    pub(super) aws: AwsSpec,
    #[serde(default)]
    pub(super) probes: Option<ProbesSpec>,
    #[serde(default)]
    pub(super) noisy_neighbour: Option<NoisySpec>,
    #[serde(default)]
    pub(super) picks: Option<PicksSpec>,
    #[serde(default)]
    pub(super) arrivals: ArrivalsSpec,
    /// The matrix `isobench explore` runs (`[explore]`); ignored by `isobench run`.
    #[serde(default)]
    pub(super) explore: Option<ExploreSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenants {
    pub(super) count: u64,
    #[serde(default)]
    pub(super) ids: Option<Vec<String>>,
    #[serde(default)]
    pub(super) weights: Option<Vec<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLocal {
    #[serde(default)]
    pub(super) subnet: Option<String>,
    #[serde(default)]
    pub(super) break_isolation: Vec<IsolationFault>,
    #[serde(default)]
    pub(super) lambda_account_concurrency: Option<u32>,
}
