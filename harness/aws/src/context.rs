//! What every tier module deploys into: the run's API clients, tags and retries, the ledger of
//! everything created, and the resources the run's tiers share (the VPC and its subnets, the
//! harness's security group, the workload bucket). A leaf below the tier modules and the
//! deployer, so that neither imports the other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use isobench_core::TierId;
use isobench_core::backend::{Phase, SkippedPhase};
use isobench_core::scenario::aws::AwsSpec;

use crate::api::{Apis, Tags};
use crate::capability::Capabilities;
use crate::error::ApiError;
use crate::resource::Resource;
use crate::retry::{self, Backoff};
use crate::tags::{NAME_PREFIX, RunTags, name_id};

/// The address range of a run-made VPC (the same private range the local emulator uses).
pub const VPC_CIDR: &str = "10.213.0.0/16";
/// The workload object's key in the run's bucket.
pub const WORKLOAD_KEY: &str = "tenant-app";
/// How long a deploy waits for instances, tasks and functions to come up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    Other(String),
}

/// The VPC a run deploys into.
#[derive(Debug, Clone)]
pub struct Network {
    pub vpc: String,
    /// Scenario subnet name -> subnet id.
    pub subnets: BTreeMap<String, String>,
    /// The group rules with source `harness` admit, when the scenario gives no `harness_cidr`.
    pub harness_group: Option<String>,
    /// Scenario subnet name -> its address range, for the subnets the run made.
    pub cidrs: BTreeMap<String, String>,
}

/// One run's state in one account: what tier modules create with and record into.
pub struct DeployContext {
    pub apis: Apis,
    pub run_id: String,
    pub tags: RunTags,
    pub spec: AwsSpec,
    pub caps: Capabilities,
    pub backoff: Backoff,
    /// Everything created, with the tier it belongs to (`None`: shared by the run's tiers).
    pub ledger: Vec<(Option<TierId>, Resource)>,
    pub network: Option<Network>,
    /// A presigned URL of the workload in the run's bucket, once uploaded.
    pub workload_url: Option<String>,
    /// The workload binary for the target architecture.
    pub workload: Arc<Vec<u8>>,
    pub skipped: BTreeMap<TierId, Vec<SkippedPhase>>,
    /// Per tier, each tenant's private address where the deployment's targets are public ones
    /// (EC2): what agents inside the VPC connect to.
    pub private_targets: BTreeMap<TierId, BTreeMap<String, std::net::SocketAddr>>,
}

impl DeployContext {
    pub fn new(apis: Apis, run_id: &str, spec: AwsSpec, caps: Capabilities, workload: Arc<Vec<u8>>) -> DeployContext {
        DeployContext {
            apis,
            run_id: run_id.to_string(),
            tags: RunTags::new(run_id, SystemTime::now(), spec.max_lifetime.0),
            spec,
            caps,
            backoff: Backoff::DEFAULT,
            ledger: Vec::new(),
            network: None,
            workload_url: None,
            workload,
            skipped: BTreeMap::new(),
            private_targets: BTreeMap::new(),
        }
    }

    /// A resource name carrying the run id: `isobench-<run>-<suffix>`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{NAME_PREFIX}{}-{suffix}", name_id(&self.run_id))
    }

    pub fn tag_pairs(&self, tier: Option<TierId>) -> Tags {
        self.tags.pairs(tier.map(TierId::as_str))
    }

    pub fn record(&mut self, tier: Option<TierId>, r: Resource) {
        tracing::info!("created {r}");
        self.ledger.push((tier, r));
    }

    pub fn skip(&mut self, tier: TierId, phase: Phase, reason: impl Into<String>) {
        let list = self.skipped.entry(tier).or_default();
        if !list.iter().any(|s| s.phase == phase) {
            list.push(SkippedPhase { phase, reason: reason.into() });
        }
    }

    /// Skips traffic and probes of a tier whose instances or tasks run nowhere.
    pub fn skip_data_plane(&mut self, tier: TierId, reason: &str) {
        self.skip(tier, Phase::Traffic, reason);
        self.skip(tier, Phase::Probes, reason);
    }

    /// The run's VPC, subnets and internet gateway (or the scenario's existing VPC), made once.
    pub async fn network(&mut self, subnet_names: &[String]) -> Result<Network, DeployError> {
        if self.network.is_none() {
            let net = match self.spec.vpc_id.clone() {
                Some(vpc) => Network { vpc, subnets: BTreeMap::new(), harness_group: None, cidrs: BTreeMap::new() },
                None => {
                    let tags = self.tag_pairs(None);
                    let vpc = self.apis.ec2.create_vpc(VPC_CIDR, &tags).await?;
                    self.record(None, Resource::Vpc(vpc.clone()));
                    let igw = retry::retry(self.backoff, || self.apis.ec2.create_internet_gateway(&vpc, &tags)).await?;
                    self.record(None, Resource::InternetGateway { id: igw, vpc: vpc.clone() });
                    Network { vpc, subnets: BTreeMap::new(), harness_group: None, cidrs: BTreeMap::new() }
                }
            };
            self.network = Some(net);
        }
        for name in subnet_names {
            self.subnet(name, None).await?;
        }
        self.harness_group().await?;
        Ok(self.network.clone().expect("set above"))
    }

    /// [`DeployContext::network`] with each of `subnet_names` in its own availability zone
    /// (round robin over the region's zones), as an EKS cluster needs. A subnet the run made
    /// before keeps its zone.
    pub async fn zoned_network(&mut self, subnet_names: &[String]) -> Result<Network, DeployError> {
        self.network(&[]).await?;
        let zones = if self.spec.vpc_id.is_some() { Vec::new() } else { self.apis.ec2.availability_zones().await? };
        for (i, name) in subnet_names.iter().enumerate() {
            let zone = (!zones.is_empty()).then(|| zones[i % zones.len()].clone());
            self.subnet(name, zone).await?;
        }
        Ok(self.network.clone().expect("set above"))
    }

    /// The group harness rules name, made once when the scenario gives no `harness_cidr`.
    async fn harness_group(&mut self) -> Result<(), DeployError> {
        if self.spec.harness_cidr.is_none() && self.network.as_ref().is_some_and(|n| n.harness_group.is_none()) {
            let vpc = self.network.as_ref().map(|n| n.vpc.clone()).unwrap_or_default();
            let name = self.name("harness");
            let tags = self.tag_pairs(None);
            let id = self.apis.ec2.create_security_group(&vpc, &name, "the isobench harness", &tags).await?;
            self.record(None, Resource::SecurityGroup(id.clone()));
            if let Some(n) = self.network.as_mut() {
                n.harness_group = Some(id);
            }
        }
        Ok(())
    }

    async fn subnet(&mut self, name: &str, zone: Option<String>) -> Result<(), DeployError> {
        let net = self.network.as_ref().expect("network() sets it first");
        if net.subnets.contains_key(name) {
            return Ok(());
        }
        let index = net.subnets.len();
        let id = if self.spec.vpc_id.is_some() {
            self.spec.subnet_ids.get(index).cloned().ok_or_else(|| {
                DeployError::Other(format!(
                    "the scenario names {} subnets but [aws] subnet_ids lists only {}",
                    index + 1,
                    self.spec.subnet_ids.len()
                ))
            })?
        } else {
            let cidr = format!("10.213.{index}.0/24");
            let mut tags = self.tag_pairs(None);
            tags.push(("Name".into(), self.name(name)));
            let vpc = net.vpc.clone();
            let id = match &zone {
                Some(z) => self.apis.ec2.create_zoned_subnet(&vpc, &cidr, z, &tags).await?,
                None => self.apis.ec2.create_subnet(&vpc, &cidr, &tags).await?,
            };
            self.record(None, Resource::Subnet(id.clone()));
            self.network.as_mut().expect("checked").cidrs.insert(name.to_string(), cidr);
            id
        };
        self.network.as_mut().expect("checked").subnets.insert(name.to_string(), id);
        Ok(())
    }

    /// The workload's URL for instances and tasks: uploaded once to the run's bucket, fetched
    /// through a presigned URL that lasts the run's lifetime (SigV4 allows at most 7 days).
    pub async fn workload_url(&mut self) -> Result<String, DeployError> {
        if let Some(u) = &self.workload_url {
            return Ok(u.clone());
        }
        let bucket = self.name("workload");
        let tags = self.tag_pairs(None);
        self.apis.s3.create_bucket(&bucket, &tags).await?;
        self.record(None, Resource::Bucket(bucket.clone()));
        self.apis.s3.put_object(&bucket, WORKLOAD_KEY, self.workload.as_ref().clone()).await?;
        let ttl = self.spec.max_lifetime.0.min(Duration::from_secs(7 * 24 * 3600));
        let url = self.apis.s3.presign_get(&bucket, WORKLOAD_KEY, ttl).await?;
        self.workload_url = Some(url.clone());
        Ok(url)
    }

    /// Creates a role `service` may assume, recorded under `tier`.
    pub async fn role(&mut self, tier: TierId, name: &str, service: &str) -> Result<String, DeployError> {
        let tags = self.tag_pairs(Some(tier));
        let arn = retry::retry(self.backoff, || self.apis.iam.create_role(name, service, &tags)).await?;
        self.record(Some(tier), Resource::Role(name.to_string()));
        Ok(arn)
    }
}

/// Polls `check` until it returns `Some`, the timeout passes, or it fails.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, DeployError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, DeployError>>,
{
    let start = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(DeployError::Other(format!("{what} not ready after {timeout:?}")));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// Waits until a TCP connection to `addr` succeeds: the workload is listening.
pub async fn wait_listening(addr: std::net::SocketAddr, timeout: Duration) -> Result<(), DeployError> {
    wait_for(&format!("the workload at {addr}"), timeout, || async move {
        let c = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await;
        Ok(matches!(c, Ok(Ok(_))).then_some(()))
    })
    .await
}
