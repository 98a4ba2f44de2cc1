//! `--target endpoints`: the endpoints file, checked against the plan before anything runs.

use std::path::Path;

use isobench_core::Backend;
use isobench_core::plan::Plan;
use isobench_endpoints::{Endpoints, EndpointsBackend, Needs};

use crate::errors::CliError;

/// The backend for `--endpoints FILE`; every problem of the file is bad input (exit 2).
pub fn backend(file: Option<&Path>, plan: &Plan) -> Result<Box<dyn Backend>, CliError> {
    let file = file.ok_or_else(|| CliError::BadInput("--target endpoints needs --endpoints FILE".into()))?;
    let scenario_tiers: Vec<_> = plan.scenario.tiers.iter().map(|t| t.id).collect();
    let run_tiers: Vec<_> = plan.tiers.iter().map(|t| t.tier).collect();
    let tenants: Vec<String> = plan.scenario.tenants.iter().map(|t| t.id.clone()).collect();
    let needs = Needs { scenario_tiers: &scenario_tiers, run_tiers: &run_tiers, tenants: &tenants };
    let endpoints = Endpoints::load(file, needs).map_err(|e| CliError::BadInput(e.to_string()))?;
    Ok(Box::new(EndpointsBackend::new(endpoints)))
}

pub fn summary() -> isobench_results::BackendSummary {
    isobench_results::BackendSummary {
        name: "endpoints".into(),
        fidelity: isobench_results::Fidelity::External,
        description: "endpoints deployed outside the harness: traffic and HTTP probes only; nothing deployed or torn \
                      down, start times not measured"
            .into(),
    }
}
