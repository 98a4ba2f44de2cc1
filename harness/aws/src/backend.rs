//! The [`Backend`] over AWS: a tokio runtime of its own (the trait is synchronous) driving the
//! [`Deployer`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isobench_core::backend::{BackendInfo, Fidelity, SkippedPhase, TeardownReport};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::aws::AwsSpec;
use isobench_core::{Backend, BackendError, Deployment, TierId};

use crate::agents::{AgentHandle, AgentStatus, AgentsPlan};
use crate::capability::Capabilities;
use crate::config::{self, AwsOptions};
use crate::deployer::{DeployError, Deployer};
use crate::error::ApiError;
use crate::package;

/// Where the workload binary comes from.
#[derive(Debug, Clone)]
pub enum Workload {
    /// Build `tenant-app` from this workspace for the scenario's target (the normal case).
    Build { workspace: PathBuf, target_dir: PathBuf },
    /// A binary built already (for the scenario's architecture).
    Binary(PathBuf),
}

pub struct AwsBackend {
    rt: tokio::runtime::Runtime,
    deployer: Deployer,
}

fn unavailable(reason: impl Into<String>) -> BackendError {
    BackendError::Unavailable { backend: "aws", reason: reason.into() }
}

impl AwsBackend {
    /// Loads credentials and region, probes the endpoints and prepares the workload; creates
    /// nothing in the account.
    pub fn new(
        run_id: &str,
        spec: AwsSpec,
        opts: &AwsOptions,
        workload: &Workload,
    ) -> Result<AwsBackend, BackendError> {
        // What the harness cannot provide is refused before any call to AWS: a binary of the
        // other architecture, or a Rust target that is not installed.
        let given = match workload {
            Workload::Binary(p) => Some(read_checked(p, spec.architecture)?),
            Workload::Build { .. } => {
                package::check_target(spec.rust_target()).map_err(|e| unavailable(e.to_string()))?;
                None
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("cannot start a runtime: {e}")))?;
        let mut opts = opts.clone();
        opts.region = opts.region.or_else(|| spec.region.clone());
        let sdk = rt.block_on(config::load(&opts)).map_err(|e| unavailable(e.to_string()))?;
        let account = rt.block_on(config::caller_account(&sdk)).map_err(unavailable)?;
        tracing::info!("AWS account {account}, region {:?}", sdk.region());
        let mut apis = config::apis(&sdk);
        let bytes = match (given, workload) {
            (Some(bytes), _) => bytes,
            (None, Workload::Build { workspace, target_dir }) => {
                let built = package::build_workload(workspace, spec.rust_target(), target_dir)
                    .map_err(|e| unavailable(e.to_string()))?;
                // A `rust_target` of the other architecture is caught here.
                read_checked(&built, spec.architecture)?
            }
            (None, Workload::Binary(p)) => read_checked(p, spec.architecture)?,
        };
        let caps = Capabilities::detect();
        if matches!(caps.ecs, crate::capability::Emulator::Moto { .. }) {
            // moto's EKS answers need rewriting before the SDK can read them.
            let client = crate::emulators::moto_eks_client(&sdk);
            apis.eks = Arc::new(crate::sdk::Eks { client, config: sdk.clone() });
        }
        let deployer = Deployer::new(apis, run_id, spec, caps, Arc::new(bytes));
        Ok(AwsBackend { rt, deployer })
    }

    /// From parts, for tests with fakes.
    pub fn from_deployer(deployer: Deployer) -> AwsBackend {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        AwsBackend { rt, deployer }
    }

    pub fn deployer(&self) -> &Deployer {
        &self.deployer
    }

    pub fn deployer_mut(&mut self) -> &mut Deployer {
        &mut self.deployer
    }

    /// Deploy time per tier so far.
    pub fn deploy_times(&self) -> &BTreeMap<TierId, Duration> {
        &self.deployer.deploy_times
    }

    /// Starts the run's load agents (see [`Deployer::deploy_agents`]), on the backend's runtime.
    pub fn deploy_agents(
        &mut self,
        plan: &AgentsPlan,
        binary: Arc<Vec<u8>>,
        assignments: &[Vec<u8>],
    ) -> Result<Vec<AgentHandle>, DeployError> {
        self.rt.block_on(self.deployer.deploy_agents(plan, binary, assignments))
    }

    /// The new complete lines of agent `k` since the last call, in order.
    pub fn read_lines(&mut self, k: u32) -> Result<Vec<Vec<u8>>, ApiError> {
        self.rt.block_on(self.deployer.read_lines(k))
    }

    /// Sends `lines` to agent `k`.
    pub fn send(&mut self, k: u32, lines: &[u8]) -> Result<(), ApiError> {
        self.rt.block_on(self.deployer.send(k, lines))
    }

    /// Whether agent `k`'s task runs, or why it stopped.
    pub fn agent_status(&self, k: u32) -> Result<AgentStatus, ApiError> {
        self.rt.block_on(self.deployer.agent_status(k))
    }

    /// Removes the agents (the run-wide teardown also does).
    pub fn teardown_agents(&mut self) -> TeardownReport {
        let start = Instant::now();
        let removal = self.rt.block_on(self.deployer.teardown_agents());
        TeardownReport {
            removed: removal.removed,
            left_behind: removal.failed,
            duration: start.elapsed(),
            environments: None,
        }
    }

    fn teardown_report(&mut self, tier: Option<TierId>) -> TeardownReport {
        let start = Instant::now();
        let removal = self.rt.block_on(self.deployer.teardown(tier));
        TeardownReport {
            removed: removal.removed,
            left_behind: removal.failed,
            duration: start.elapsed(),
            environments: None,
        }
    }
}

/// The workload binary at `path`, refused unless it is for `arch`.
fn read_checked(
    path: &std::path::Path,
    arch: isobench_core::scenario::aws::Architecture,
) -> Result<Vec<u8>, BackendError> {
    let bytes = package::read_binary(path).map_err(|e| unavailable(e.to_string()))?;
    package::check_architecture(path, &bytes, arch).map_err(|e| unavailable(e.to_string()))?;
    Ok(bytes)
}

impl Backend for AwsBackend {
    fn info(&self) -> BackendInfo {
        let caps = &self.deployer.ctx.caps;
        let endpoints = format!(
            "EC2 on {}, ECS on {}, Lambda on {}",
            caps.ec2.describe(),
            caps.ecs.describe(),
            caps.lambda.describe()
        );
        let all_aws = [&caps.ec2, &caps.ecs, &caps.lambda].iter().all(|e| **e == crate::capability::Emulator::Aws);
        let fidelity = if all_aws { Fidelity::Cloud } else { Fidelity::CloudEmulator };
        BackendInfo { name: "aws", fidelity, description: endpoints }
    }

    fn skipped_phases(&self, tier: TierId) -> Vec<SkippedPhase> {
        self.deployer.ctx.skipped.get(&tier).cloned().unwrap_or_default()
    }

    fn deploy(&mut self, plan: &TierPlan) -> Result<Deployment, BackendError> {
        let tier = plan.tier;
        self.rt.block_on(self.deployer.deploy(plan)).map_err(|e| BackendError::Deploy {
            tier,
            what: format!("the {tier} tier on AWS"),
            source: match e {
                DeployError::Api(a) => Box::new(a),
                DeployError::Other(s) => s.into(),
            },
        })
    }

    fn teardown(&mut self, tier: TierId) -> Result<TeardownReport, BackendError> {
        Ok(self.teardown_report(Some(tier)))
    }

    fn teardown_all(&mut self) -> Result<TeardownReport, BackendError> {
        Ok(self.teardown_report(None))
    }
}

impl Drop for AwsBackend {
    fn drop(&mut self) {
        if !self.deployer.ctx.ledger.is_empty() {
            tracing::warn!(
                "{} AWS resource(s) not torn down; run `isobench sweep --target aws`",
                self.deployer.ctx.ledger.len()
            );
        }
    }
}
