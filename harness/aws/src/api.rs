//! Thin traits over the SDK calls the backend makes, one per service, so the deploy, teardown
//! and sweep logic can be tested with fakes. The real implementations are in `sdk`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::ApiError;

pub type Tags = Vec<(String, String)>;
pub type Result<T> = std::result::Result<T, ApiError>;

/// A resource found by enumeration, with its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    /// A name for name-based selection (the id where there is no name).
    pub name: String,
    pub tags: BTreeMap<String, String>,
    /// The VPC of an internet gateway, the cluster of a task.
    pub parent: Option<String>,
}

/// One inbound rule as EC2 takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgRule {
    /// `tcp`, `udp`, `icmp` or `-1`.
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub source: SgSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SgSource {
    Group(String),
    Cidr(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ec2Kind {
    Instance,
    SecurityGroup,
    Subnet,
    Vpc,
    InternetGateway,
    /// The EKS node groups' launch templates.
    LaunchTemplate,
}

/// A launch template carrying the instance metadata options of an EKS node group's nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchTemplateRequest {
    pub name: String,
    /// IMDSv2 only (`HttpTokens: required`); false: IMDSv1 answers too.
    pub http_tokens_required: bool,
    /// `HttpPutResponseHopLimit`: 1 keeps the token (and so IMDSv2) from pods on their own
    /// network namespace; 2 lets it through.
    pub hop_limit: u8,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRequest {
    pub image_id: String,
    pub instance_type: String,
    pub subnet_id: String,
    pub security_group_ids: Vec<String>,
    pub instance_profile: Option<String>,
    pub user_data: String,
    /// IMDS answers IMDSv1 too (`HttpTokens: optional`); false: IMDSv2 only.
    pub imds_v1: bool,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceState {
    /// `pending`, `running`, `shutting-down`, `terminated`, ...
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

#[async_trait]
pub trait Ec2Api: Send + Sync {
    async fn create_vpc(&self, cidr: &str, tags: &Tags) -> Result<String>;
    async fn create_subnet(&self, vpc: &str, cidr: &str, tags: &Tags) -> Result<String>;
    /// [`Ec2Api::create_subnet`] in the availability zone `zone` (an EKS cluster needs subnets
    /// in two zones).
    async fn create_zoned_subnet(&self, vpc: &str, cidr: &str, zone: &str, tags: &Tags) -> Result<String>;
    /// The region's available zones, by name, in the service's order.
    async fn availability_zones(&self) -> Result<Vec<String>>;
    async fn create_internet_gateway(&self, vpc: &str, tags: &Tags) -> Result<String>;
    async fn create_security_group(&self, vpc: &str, name: &str, description: &str, tags: &Tags) -> Result<String>;
    async fn authorize_ingress(&self, group: &str, rules: &[SgRule]) -> Result<()>;
    async fn ingress_rules(&self, group: &str) -> Result<Vec<SgRule>>;
    async fn revoke_ingress(&self, group: &str, rules: &[SgRule]) -> Result<()>;
    /// The newest image whose name matches `pattern`, owned by Amazon, for `arch`.
    async fn latest_image(&self, pattern: &str, arch: &str) -> Result<Option<String>>;
    async fn run_instance(&self, req: &InstanceRequest) -> Result<String>;
    async fn instance_state(&self, id: &str) -> Result<Option<InstanceState>>;
    async fn terminate_instance(&self, id: &str) -> Result<()>;
    async fn delete_security_group(&self, id: &str) -> Result<()>;
    async fn delete_internet_gateway(&self, id: &str, vpc: &str) -> Result<()>;
    async fn delete_subnet(&self, id: &str) -> Result<()>;
    async fn delete_vpc(&self, id: &str) -> Result<()>;
    /// Creates a launch template; returns its id.
    async fn create_launch_template(&self, req: &LaunchTemplateRequest) -> Result<String>;
    async fn delete_launch_template(&self, id: &str) -> Result<()>;
    /// Every resource of `kind` carrying the tool tag (instances: not yet terminated).
    async fn tagged(&self, kind: Ec2Kind) -> Result<Vec<Found>>;
}

#[async_trait]
pub trait IamApi: Send + Sync {
    /// Creates a role under [`crate::tags::IAM_PATH`] that `service` may assume; returns its ARN.
    async fn create_role(&self, name: &str, service: &str, tags: &Tags) -> Result<String>;
    /// Attaches the managed policy `policy_arn` to `role` (`delete_role` detaches it).
    async fn attach_managed_policy(&self, role: &str, policy_arn: &str) -> Result<()>;
    /// Creates an instance profile holding `role`.
    async fn create_instance_profile(&self, name: &str, role: &str, tags: &Tags) -> Result<String>;
    /// Removes the role from its profiles, detaches and deletes its policies, deletes it.
    async fn delete_role(&self, name: &str) -> Result<()>;
    async fn delete_instance_profile(&self, name: &str) -> Result<()>;
    async fn roles(&self) -> Result<Vec<Found>>;
    async fn instance_profiles(&self) -> Result<Vec<Found>>;
    /// Puts an inline policy on `role` (removed with the role by [`IamApi::delete_role`]).
    async fn put_role_policy(&self, role: &str, name: &str, document: &str) -> Result<()>;
    /// Creates a role under [`crate::tags::IAM_PATH`] with its own trust policy (`document`):
    /// EKS Pod Identity's `sts:TagSession`, IRSA's web identity; returns its ARN.
    async fn create_role_with_trust(&self, name: &str, document: &str, tags: &Tags) -> Result<String>;
    /// Registers an OpenID Connect issuer (an EKS cluster's, for IRSA); returns the provider's ARN.
    async fn create_oidc_provider(&self, issuer_url: &str, thumbprint: &str, tags: &Tags) -> Result<String>;
    async fn delete_oidc_provider(&self, arn: &str) -> Result<()>;
    /// The account's OIDC providers with their tags (id and name: the ARN).
    async fn oidc_providers(&self) -> Result<Vec<Found>>;
}

#[async_trait]
pub trait S3Api: Send + Sync {
    async fn create_bucket(&self, name: &str, tags: &Tags) -> Result<()>;
    async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<()>;
    async fn presign_get(&self, bucket: &str, key: &str, ttl: Duration) -> Result<String>;
    /// Deletes every object, then the bucket.
    async fn delete_bucket(&self, name: &str) -> Result<()>;
    /// Buckets named with [`crate::tags::NAME_PREFIX`], with their tags.
    async fn buckets(&self) -> Result<Vec<Found>>;
    /// An object's bytes; `None` when there is no such key (yet).
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRequest {
    pub name: String,
    pub role_arn: String,
    pub zip: Arc<Vec<u8>>,
    pub architecture: String,
    pub memory_mb: i32,
    pub timeout_s: i32,
    pub environment: BTreeMap<String, String>,
    /// Created in tenant isolation mode (`PER_TENANT`).
    pub per_tenant: bool,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionState {
    /// `Pending`, `Active`, `Inactive`, `Failed`.
    pub state: String,
    pub reason: Option<String>,
}

/// What an invoke returned, as the service reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeReply {
    pub payload: Vec<u8>,
    /// `Unhandled` or `Handled` when the function failed.
    pub function_error: Option<String>,
    /// The last 4 KB of the invoke's log (`LogType: Tail`), with the platform's `REPORT` line.
    pub log_tail: Option<String>,
}

#[async_trait]
pub trait LambdaApi: Send + Sync {
    async fn create_function(&self, req: &FunctionRequest) -> Result<String>;
    /// Invokes `name` synchronously; `tenant` goes in the tenant id of tenant isolation mode.
    async fn invoke(&self, name: &str, tenant: Option<&str>, payload: Vec<u8>) -> Result<InvokeReply>;
    async fn function_state(&self, name: &str) -> Result<FunctionState>;
    /// Reserves `reserved` of the account's concurrency for `name` (`PutFunctionConcurrency`).
    async fn put_function_concurrency(&self, name: &str, reserved: u32) -> Result<()>;
    async fn delete_function(&self, name: &str) -> Result<()>;
    async fn functions(&self) -> Result<Vec<Found>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinitionRequest {
    pub family: String,
    pub task_role_arn: String,
    pub execution_role_arn: Option<String>,
    pub cpu: String,
    pub memory: String,
    pub launch_type: String,
    pub architecture: String,
    pub image: String,
    pub command: Vec<String>,
    pub port: i32,
    pub environment: Vec<(String, String)>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRequest {
    pub cluster: String,
    pub task_definition: String,
    pub launch_type: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub public_ip: bool,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub last_status: String,
    pub private_ip: Option<String>,
}

/// Why a task stopped, as DescribeTasks reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskExit {
    /// `PROVISIONING`, `PENDING`, `RUNNING`, `STOPPED`, ...
    pub last_status: String,
    pub stopped_reason: Option<String>,
    /// The essential container's exit code, once it exited.
    pub exit_code: Option<i32>,
}

#[async_trait]
pub trait EcsApi: Send + Sync {
    async fn create_cluster(&self, name: &str, tags: &Tags) -> Result<String>;
    async fn register_task_definition(&self, req: &TaskDefinitionRequest) -> Result<String>;
    async fn run_task(&self, req: &TaskRequest) -> Result<String>;
    async fn task_state(&self, cluster: &str, task: &str) -> Result<Option<TaskState>>;
    async fn stop_task(&self, cluster: &str, task: &str) -> Result<()>;
    async fn deregister_task_definition(&self, arn: &str) -> Result<()>;
    async fn delete_cluster(&self, name: &str) -> Result<()>;
    async fn clusters(&self) -> Result<Vec<Found>>;
    async fn task_definitions(&self) -> Result<Vec<Found>>;
    /// Running or pending tasks of a cluster.
    async fn tasks(&self, cluster: &str) -> Result<Vec<Found>>;
    /// A task's status with why it stopped; `None` when the service no longer knows it.
    async fn task_exit(&self, cluster: &str, task: &str) -> Result<Option<TaskExit>>;
    /// Registers EC2 instance `instance` with `cluster`, as its ECS agent would; for emulators,
    /// which run no agent. Returns the container instance's ARN.
    async fn register_container_instance(&self, cluster: &str, instance: &str) -> Result<String>;
    /// The container instances registered with a cluster (id: the ARN, parent: the cluster).
    async fn container_instances(&self, cluster: &str) -> Result<Vec<Found>>;
    /// Deregisters a container instance, forcing it off whatever tasks it still holds.
    async fn deregister_container_instance(&self, cluster: &str, arn: &str) -> Result<()>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksClusterRequest {
    pub name: String,
    pub role_arn: String,
    pub subnets: Vec<String>,
    /// Kubernetes version (`None`: the service's default).
    pub version: Option<String>,
    pub tags: Tags,
}

/// What DescribeCluster says of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksCluster {
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `DELETING`, `FAILED`, `UPDATING`, `PENDING`.
    pub status: String,
    /// The API server's URL, once active.
    pub endpoint: Option<String>,
    /// The API server's CA bundle, base64 PEM as EKS gives it.
    pub certificate_authority: Option<String>,
    /// The cluster's OIDC issuer URL (for IRSA).
    pub oidc_issuer: Option<String>,
    /// The security group EKS made for the cluster, which managed nodes (and pods) get.
    pub security_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodegroupRequest {
    pub cluster: String,
    pub name: String,
    pub node_role_arn: String,
    pub subnets: Vec<String>,
    pub instance_type: String,
    pub count: u32,
    /// The launch template's id (its version: `$Default`).
    pub launch_template: String,
    /// Kubernetes labels on the nodes (node per tenant: the tenant).
    pub labels: BTreeMap<String, String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentityRequest {
    pub cluster: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub tags: Tags,
}

#[async_trait]
pub trait EksApi: Send + Sync {
    /// Starts a cluster's creation; returns its ARN (the cluster is `CREATING`).
    async fn create_cluster(&self, req: &EksClusterRequest) -> Result<String>;
    /// `None` when there is no such cluster.
    async fn cluster(&self, name: &str) -> Result<Option<EksCluster>>;
    async fn delete_cluster(&self, name: &str) -> Result<()>;
    /// The account's clusters with their tags (id and name: the cluster's name).
    async fn clusters(&self) -> Result<Vec<Found>>;
    async fn create_nodegroup(&self, req: &NodegroupRequest) -> Result<String>;
    /// A node group's status (`CREATING`, `ACTIVE`, `CREATE_FAILED`, `DELETING`, ...); `None`
    /// when there is no such group.
    async fn nodegroup_status(&self, cluster: &str, name: &str) -> Result<Option<String>>;
    async fn delete_nodegroup(&self, cluster: &str, name: &str) -> Result<()>;
    /// A cluster's node groups with their tags (id and name: the group's name; parent: the cluster).
    async fn nodegroups(&self, cluster: &str) -> Result<Vec<Found>>;
    /// Installs an EKS add-on (`eks-pod-identity-agent`); returns its ARN.
    /// `configuration`: the add-on's configuration values (JSON), e.g. the VPC CNI's network
    /// policy agent.
    async fn create_addon(&self, cluster: &str, name: &str, configuration: Option<&str>, tags: &Tags)
    -> Result<String>;
    async fn delete_addon(&self, cluster: &str, name: &str) -> Result<()>;
    async fn addons(&self, cluster: &str) -> Result<Vec<Found>>;
    /// Binds a service account to a role (EKS Pod Identity); returns the association's id.
    async fn create_pod_identity_association(&self, req: &PodIdentityRequest) -> Result<String>;
    async fn delete_pod_identity_association(&self, cluster: &str, id: &str) -> Result<()>;
    /// A cluster's associations (id: the association id; name: `namespace/service account`).
    async fn pod_identity_associations(&self, cluster: &str) -> Result<Vec<Found>>;
    /// A bearer token for `cluster`'s API server, as `aws eks get-token` makes it, from the
    /// client's own credentials.
    async fn token(&self, cluster: &str) -> Result<String>;
}

/// The clients of one account and region.
#[derive(Clone)]
pub struct Apis {
    pub ec2: Arc<dyn Ec2Api>,
    pub iam: Arc<dyn IamApi>,
    pub s3: Arc<dyn S3Api>,
    pub lambda: Arc<dyn LambdaApi>,
    pub ecs: Arc<dyn EcsApi>,
    pub eks: Arc<dyn EksApi>,
}
