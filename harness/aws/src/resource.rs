//! Everything the backend creates, and how each is removed: in dependency order, idempotently
//! (already gone is done), retried on throttling and on dependencies still settling.

use std::fmt;
use std::time::{Duration, Instant};

use crate::api::Apis;
use crate::error::ApiError;
use crate::retry::{self, Backoff};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// An EKS Pod Identity association (a service account bound to a role).
    PodIdentityAssociation {
        cluster: String,
        id: String,
    },
    /// An EKS add-on (the Pod Identity agent).
    Addon {
        cluster: String,
        name: String,
    },
    Task {
        cluster: String,
        arn: String,
    },
    Instance(String),
    /// An EC2 instance's registration with an ECS cluster (the EC2 launch type).
    ContainerInstance {
        cluster: String,
        arn: String,
    },
    /// An EKS managed node group: its instances go with it.
    Nodegroup {
        cluster: String,
        name: String,
    },
    Function(String),
    TaskDefinition(String),
    Cluster(String),
    /// An EKS cluster: deleted after its node groups, before the subnets its interfaces sit in.
    EksCluster(String),
    /// An EC2 launch template (an EKS node group's metadata options).
    LaunchTemplate(String),
    /// A security group's inbound rules: revoked before any group is deleted, because a rule
    /// naming another group keeps that group alive.
    SecurityGroupRules(String),
    SecurityGroup(String),
    InternetGateway {
        id: String,
        vpc: String,
    },
    Subnet(String),
    Vpc(String),
    InstanceProfile(String),
    Role(String),
    /// An IAM OIDC provider (an EKS cluster's issuer, for IRSA), by ARN.
    OidcProvider(String),
    Bucket(String),
}

impl Resource {
    /// Removal order: what depends on others goes first (tasks and instances hold network
    /// interfaces in subnets and groups; profiles hold roles).
    pub fn rank(&self) -> u8 {
        match self {
            Resource::PodIdentityAssociation { .. } | Resource::Addon { .. } | Resource::Task { .. } => 0,
            // Deregistered beside its instance's termination (which deregisters it too), before
            // the cluster, which AWS keeps while instances are registered.
            // A node group's deletion terminates its instances.
            Resource::Instance(_) | Resource::ContainerInstance { .. } | Resource::Nodegroup { .. } => 1,
            Resource::Function(_) => 2,
            Resource::TaskDefinition(_) => 3,
            // A launch template cannot go while a node group uses it; the cluster holds
            // network interfaces in the run's subnets and groups.
            Resource::Cluster(_) | Resource::EksCluster(_) | Resource::LaunchTemplate(_) => 4,
            Resource::SecurityGroupRules(_) => 5,
            Resource::SecurityGroup(_) => 6,
            Resource::InternetGateway { .. } => 7,
            Resource::Subnet(_) => 8,
            Resource::Vpc(_) => 9,
            Resource::InstanceProfile(_) => 10,
            Resource::Role(_) | Resource::OidcProvider(_) => 11,
            Resource::Bucket(_) => 12,
        }
    }

    /// Whether this resource starts compute that costs money by the second.
    pub fn is_compute(&self) -> bool {
        matches!(
            self,
            Resource::Task { .. } | Resource::Instance(_) | Resource::Nodegroup { .. } | Resource::EksCluster(_)
        )
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::PodIdentityAssociation { cluster, id } => {
                write!(f, "eks pod identity association {id} (cluster {cluster})")
            }
            Resource::Addon { cluster, name } => write!(f, "eks addon {name} (cluster {cluster})"),
            Resource::Nodegroup { cluster, name } => write!(f, "eks node group {name} (cluster {cluster})"),
            Resource::EksCluster(n) => write!(f, "eks cluster {n}"),
            Resource::LaunchTemplate(id) => write!(f, "ec2 launch template {id}"),
            Resource::OidcProvider(arn) => write!(f, "iam oidc provider {arn}"),
            Resource::Task { cluster, arn } => write!(f, "ecs task {arn} (cluster {cluster})"),
            Resource::Instance(id) => write!(f, "ec2 instance {id}"),
            Resource::ContainerInstance { cluster, arn } => {
                write!(f, "ecs container instance {arn} (cluster {cluster})")
            }
            Resource::Function(n) => write!(f, "lambda function {n}"),
            Resource::TaskDefinition(a) => write!(f, "ecs task definition {a}"),
            Resource::Cluster(n) => write!(f, "ecs cluster {n}"),
            Resource::SecurityGroupRules(id) => write!(f, "inbound rules of security group {id}"),
            Resource::SecurityGroup(id) => write!(f, "ec2 security group {id}"),
            Resource::InternetGateway { id, vpc } => write!(f, "ec2 internet gateway {id} (vpc {vpc})"),
            Resource::Subnet(id) => write!(f, "ec2 subnet {id}"),
            Resource::Vpc(id) => write!(f, "ec2 vpc {id}"),
            Resource::InstanceProfile(n) => write!(f, "iam instance profile {n}"),
            Resource::Role(n) => write!(f, "iam role {n}"),
            Resource::Bucket(n) => write!(f, "s3 bucket {n}"),
        }
    }
}

/// How long to wait for an instance or task to be gone before deleting what it sits in.
const GONE_TIMEOUT: Duration = Duration::from_secs(600);
/// EKS deletes a node group (draining and terminating its nodes) and a cluster in minutes
/// each, often more than ten.
const EKS_GONE_TIMEOUT: Duration = Duration::from_secs(1800);

/// Removes one resource; already gone counts as removed.
pub async fn remove(apis: &Apis, r: &Resource, backoff: Backoff) -> Result<(), ApiError> {
    match r {
        Resource::PodIdentityAssociation { cluster, id } => {
            retry::delete(backoff, || apis.eks.delete_pod_identity_association(cluster, id)).await
        }
        Resource::Addon { cluster, name } => retry::delete(backoff, || apis.eks.delete_addon(cluster, name)).await,
        Resource::Nodegroup { cluster, name } => {
            retry::delete(backoff, || apis.eks.delete_nodegroup(cluster, name)).await?;
            wait_gone_within(EKS_GONE_TIMEOUT, || async {
                Ok(apis.eks.nodegroup_status(cluster, name).await?.is_none())
            })
            .await
        }
        Resource::EksCluster(n) => {
            retry::delete(backoff, || apis.eks.delete_cluster(n)).await?;
            wait_gone_within(EKS_GONE_TIMEOUT, || async { Ok(apis.eks.cluster(n).await?.is_none()) }).await
        }
        Resource::LaunchTemplate(id) => retry::delete(backoff, || apis.ec2.delete_launch_template(id)).await,
        Resource::OidcProvider(arn) => retry::delete(backoff, || apis.iam.delete_oidc_provider(arn)).await,
        Resource::Task { cluster, arn } => {
            retry::delete(backoff, || apis.ecs.stop_task(cluster, arn)).await?;
            wait_gone(|| async {
                Ok(apis.ecs.task_state(cluster, arn).await?.is_none_or(|t| t.last_status == "STOPPED"))
            })
            .await
        }
        Resource::Instance(id) => {
            retry::delete(backoff, || apis.ec2.terminate_instance(id)).await?;
            wait_gone(|| async { Ok(apis.ec2.instance_state(id).await?.is_none_or(|s| s.state == "terminated")) }).await
        }
        Resource::ContainerInstance { cluster, arn } => {
            retry::delete(backoff, || apis.ecs.deregister_container_instance(cluster, arn)).await
        }
        Resource::Function(n) => retry::delete(backoff, || apis.lambda.delete_function(n)).await,
        Resource::TaskDefinition(a) => retry::delete(backoff, || apis.ecs.deregister_task_definition(a)).await,
        Resource::Cluster(n) => retry::delete(backoff, || apis.ecs.delete_cluster(n)).await,
        Resource::SecurityGroupRules(id) => {
            let rules = match retry::retry(backoff, || apis.ec2.ingress_rules(id)).await {
                Err(e) if e.is_not_found() => return Ok(()),
                other => other?,
            };
            if rules.is_empty() {
                return Ok(());
            }
            retry::delete(backoff, || apis.ec2.revoke_ingress(id, &rules)).await
        }
        Resource::SecurityGroup(id) => retry::delete(backoff, || apis.ec2.delete_security_group(id)).await,
        Resource::InternetGateway { id, vpc } => {
            retry::delete(backoff, || apis.ec2.delete_internet_gateway(id, vpc)).await
        }
        Resource::Subnet(id) => retry::delete(backoff, || apis.ec2.delete_subnet(id)).await,
        Resource::Vpc(id) => retry::delete(backoff, || apis.ec2.delete_vpc(id)).await,
        Resource::InstanceProfile(n) => retry::delete(backoff, || apis.iam.delete_instance_profile(n)).await,
        Resource::Role(n) => retry::delete(backoff, || apis.iam.delete_role(n)).await,
        Resource::Bucket(n) => retry::delete(backoff, || apis.s3.delete_bucket(n)).await,
    }
}

async fn wait_gone<F, Fut>(gone: F) -> Result<(), ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, ApiError>>,
{
    wait_gone_within(GONE_TIMEOUT, gone).await
}

async fn wait_gone_within<F, Fut>(timeout: Duration, mut gone: F) -> Result<(), ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, ApiError>>,
{
    let start = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        match gone().await {
            Ok(true) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
            Ok(false) if start.elapsed() > timeout => {
                return Err(ApiError::new("wait", "Timeout", format!("still there after {timeout:?}")));
            }
            Ok(false) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(if timeout > GONE_TIMEOUT { 15 } else { 5 }));
            }
        }
    }
}

/// What a removal pass did.
#[derive(Debug, Default, Clone)]
pub struct Removal {
    pub removed: Vec<String>,
    pub failed: Vec<String>,
}

/// Removes `resources` in dependency order. Resources of one rank go together; a failure is
/// recorded and the pass goes on, so one stuck resource leaves as little behind as possible.
pub async fn remove_all(apis: &Apis, mut resources: Vec<Resource>, backoff: Backoff) -> Removal {
    resources.sort();
    resources.dedup();
    resources.sort_by_key(Resource::rank);
    let mut out = Removal::default();
    let mut i = 0;
    while i < resources.len() {
        let rank = resources[i].rank();
        let end = resources[i..].iter().position(|r| r.rank() != rank).map_or(resources.len(), |p| i + p);
        let batch = &resources[i..end];
        let results = futures_util::future::join_all(batch.iter().map(|r| remove(apis, r, backoff))).await;
        for (r, res) in batch.iter().zip(results) {
            match res {
                Ok(()) => out.removed.push(r.to_string()),
                Err(e) => out.failed.push(format!("{r}: {e}")),
            }
        }
        i = end;
    }
    out
}
