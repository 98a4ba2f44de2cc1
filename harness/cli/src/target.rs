//! Target selection: which backend a run deploys on, and how its summary describes it.

use isobench_core::Backend;
use isobench_core::plan::Plan;
use isobench_results::BackendSummary;

use crate::args::{RunArgs, Target};
use crate::errors::CliError;

/// The backend `--target` names, for this plan's run id.
pub fn make_backend(a: &RunArgs, plan: &Plan) -> Result<Box<dyn Backend>, CliError> {
    if a.endpoints.is_some() && a.target != Target::Endpoints {
        return Err(CliError::BadInput("--endpoints is only used with --target endpoints".into()));
    }
    match a.target {
        Target::Local => local_backend(&plan.run_id),
        Target::Aws => aws_backend(a, plan),
        Target::Endpoints => crate::endpoints::backend(a.endpoints.as_deref(), plan),
    }
}

/// How the summary names the backend and what its figures can stand for.
pub fn backend_summary(target: Target, info: &isobench_core::backend::BackendInfo) -> BackendSummary {
    match target {
        Target::Local => BackendSummary {
            name: "local".into(),
            fidelity: isobench_results::Fidelity::Emulated,
            description: info.description.clone(),
        },
        Target::Aws => {
            BackendSummary { name: "aws".into(), fidelity: info.fidelity, description: info.description.clone() }
        }
        Target::Endpoints => crate::endpoints::summary(),
    }
}

#[cfg(feature = "aws")]
fn aws_backend(a: &RunArgs, plan: &Plan) -> Result<Box<dyn Backend>, CliError> {
    Ok(Box::new(aws_backend_of(a, plan)?))
}

/// The AWS backend of `--target aws`, after the guard rails.
#[cfg(feature = "aws")]
pub fn aws_backend_of(a: &RunArgs, plan: &Plan) -> Result<isobench_aws::AwsBackend, CliError> {
    crate::aws::check_guard_rails(plan, &crate::plan::load_pricing(&a.pricing)?)?;
    let workload = match &a.workload_binary {
        Some(p) => isobench_aws::Workload::Binary(p.clone()),
        None => isobench_aws::Workload::Build {
            workspace: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            target_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        },
    };
    let opts = crate::aws::options(&a.aws, a.pricing.region.as_ref());
    match isobench_aws::AwsBackend::new(&plan.run_id, plan.scenario.aws.clone(), &opts, &workload) {
        Ok(b) => Ok(b),
        Err(e) => Err(CliError::Unavailable(e.to_string())),
    }
}

#[cfg(not(feature = "aws"))]
fn aws_backend(_a: &RunArgs, _plan: &Plan) -> Result<Box<dyn Backend>, CliError> {
    Err(CliError::BadInput(aws_unavailable()))
}

/// Why `--target aws` cannot run in this build, and what would help.
#[cfg_attr(feature = "aws", allow(dead_code))]
pub fn aws_unavailable() -> String {
    "--target aws: this build has no AWS backend; rebuild with `cargo build --release --features aws`".into()
}

#[cfg(target_os = "linux")]
fn local_backend(run_id: &str) -> Result<Box<dyn Backend>, CliError> {
    let dir = std::env::current_exe()
        .map_err(|e| CliError::Internal(anyhow::Error::new(e).context("failed to find the isobench executable")))?
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let config = isobench_local::LocalConfig::beside_executable(&dir, run_id);
    match isobench_local::LocalBackend::new(config) {
        Ok(b) => Ok(Box::new(b)),
        Err(e @ isobench_core::BackendError::Unavailable { .. }) => Err(CliError::Unavailable(e.to_string())),
        Err(e) => Err(CliError::Deploy(e.into())),
    }
}

#[cfg(not(target_os = "linux"))]
fn local_backend(_run_id: &str) -> Result<Box<dyn Backend>, CliError> {
    Err(CliError::Unavailable("the local emulator needs Linux (namespaces and cgroups)".into()))
}
