//! An in-memory account behind the API traits, for unit tests of the deploy, teardown and
//! sweep logic: it keeps what was created with its tags, refuses deletes that AWS would refuse
//! (a group still used by an instance, a VPC with subnets, a role in a profile), and can be told
//! to throttle, to lose a create's answer after the resource exists, or to refuse an operation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::api::*;
use crate::error::ApiError;

#[derive(Debug, Clone)]
pub struct Obj {
    pub kind: &'static str,
    pub tags: BTreeMap<String, String>,
    /// Ids this object depends on (its VPC, its groups, its role...).
    pub uses: Vec<String>,
    pub extra: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<String, Obj>,
    pub rules: HashMap<String, Vec<SgRule>>,
    pub calls: Vec<String>,
    /// Operation -> how many more calls to throttle.
    pub throttle: HashMap<&'static str, u32>,
    /// Create operation -> how many more calls make the resource and then answer with an error
    /// (an answer the SDK could not parse, a connection that dropped).
    pub lose_answer: HashMap<&'static str, u32>,
    /// Operations refused outright, as a missing permission would.
    pub refuse: HashSet<&'static str>,
    pub next: u64,
    /// The state new functions settle in.
    pub function_state: String,
    /// Object bodies by `bucket/key`.
    pub bodies: HashMap<String, Vec<u8>>,
    /// Inline role policies by role name: (policy name, document).
    pub policies: HashMap<String, Vec<(String, String)>>,
    /// Tasks told to have stopped (by ARN), with why.
    pub stopped: HashMap<String, TaskExit>,
    /// How many more describes of an EKS cluster or node group answer `CREATING` before `ACTIVE`.
    pub eks_creating_polls: u32,
}

#[derive(Clone, Default)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
}

type R<T> = std::result::Result<T, ApiError>;

impl State {
    /// A copy of the objects, for assertions that outlive the lock.
    pub fn clone_objects(&self) -> BTreeMap<String, Obj> {
        self.objects.clone()
    }
}

impl Fake {
    pub fn new() -> Fake {
        let f = Fake::default();
        f.state.lock().unwrap().function_state = "Active".into();
        f
    }

    pub fn apis(&self) -> Apis {
        Apis {
            ec2: Arc::new(self.clone()),
            iam: Arc::new(self.clone()),
            s3: Arc::new(self.clone()),
            lambda: Arc::new(self.clone()),
            ecs: Arc::new(self.clone()),
            eks: Arc::new(self.clone()),
        }
    }

    pub fn count(&self, kind: &str) -> usize {
        self.state.lock().unwrap().objects.values().filter(|o| o.kind == kind).count()
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.state.lock().unwrap().objects.values().map(|o| o.kind).collect()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    fn enter(&self, op: &'static str) -> R<std::sync::MutexGuard<'_, State>> {
        let mut s = self.state.lock().unwrap();
        if let Some(n) = s.throttle.get_mut(op)
            && *n > 0
        {
            *n -= 1;
            return Err(ApiError::new(op, "Throttling", "Rate exceeded"));
        }
        if s.refuse.contains(op) {
            return Err(ApiError::new(op, "UnauthorizedOperation", "refused by the fake account"));
        }
        s.calls.push(op.to_string());
        Ok(s)
    }

    fn create(&self, op: &'static str, kind: &'static str, id: Option<&str>, tags: &Tags, uses: &[&str]) -> R<String> {
        let mut s = self.enter(op)?;
        s.next += 1;
        let id = id.map_or_else(|| format!("{kind}-{:04}", s.next), str::to_string);
        if s.objects.contains_key(&id) {
            return Err(ApiError::new(op, "EntityAlreadyExists", id));
        }
        for u in uses {
            if !s.objects.contains_key(*u) {
                return Err(ApiError::new(op, format!("Invalid{kind}.NotFound"), format!("{u} does not exist")));
            }
        }
        let obj = Obj {
            kind,
            tags: tags.iter().cloned().collect(),
            uses: uses.iter().map(|u| u.to_string()).collect(),
            extra: BTreeMap::new(),
        };
        s.objects.insert(id.clone(), obj);
        if let Some(n) = s.lose_answer.get_mut(op)
            && *n > 0
        {
            *n -= 1;
            return Err(ApiError::new(op, "Unhandled", "failed to parse the response (the resource exists)"));
        }
        Ok(id)
    }

    fn delete(&self, op: &'static str, id: &str, not_found: &str) -> R<()> {
        let mut s = self.enter(op)?;
        if !s.objects.contains_key(id) {
            return Err(ApiError::new(op, not_found, format!("{id} not found (does not exist)")));
        }
        let users: Vec<String> = s
            .objects
            .iter()
            .filter(|(_, o)| o.uses.iter().any(|u| u == id))
            .map(|(k, _)| k.clone())
            .chain(
                s.rules
                    .iter()
                    .filter(|(_, r)| r.iter().any(|r| r.source == SgSource::Group(id.into())))
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        if !users.is_empty() {
            return Err(ApiError::new(op, "DependencyViolation", format!("{id} is used by {users:?}")));
        }
        s.objects.remove(id);
        s.rules.remove(id);
        Ok(())
    }

    /// Where ECS would place an `awsvpc` task of the EC2 launch type: the first container
    /// instance of `cluster` with a network interface to spare (its type's limit − 1, no trunking).
    fn place(&self, cluster: &str) -> R<String> {
        let s = self.state.lock().unwrap();
        let on = |ci: &str| {
            s.objects.values().filter(|o| o.extra.get("container_instance").is_some_and(|c| c == ci)).count()
        };
        let free =
            s.objects.iter().filter(|(_, o)| o.kind == "containerinstance" && o.uses[0] == cluster).find(|(id, o)| {
                let enis =
                    o.extra.get("instance_type").and_then(|t| isobench_core::instance_types::max_network_interfaces(t));
                enis.is_some_and(|n| on(id) < n as usize - 1)
            });
        free.map(|(id, _)| id.clone()).ok_or_else(|| {
            ApiError::new(
                "RunTask",
                "TaskFailure",
                format!("RESOURCE:ENI: no container instance of {cluster} has a network interface to spare"),
            )
        })
    }

    fn found(&self, kind: &str) -> Vec<Found> {
        let s = self.state.lock().unwrap();
        s.objects
            .iter()
            .filter(|(_, o)| o.kind == kind)
            .map(|(id, o)| Found {
                id: id.clone(),
                name: id.clone(),
                tags: o.tags.clone(),
                parent: o.uses.first().cloned(),
            })
            .collect()
    }
}

#[async_trait]
impl Ec2Api for Fake {
    async fn create_vpc(&self, _cidr: &str, tags: &Tags) -> R<String> {
        self.create("CreateVpc", "vpc", None, tags, &[])
    }
    async fn create_subnet(&self, vpc: &str, _cidr: &str, tags: &Tags) -> R<String> {
        self.create("CreateSubnet", "subnet", None, tags, &[vpc])
    }
    async fn create_zoned_subnet(&self, vpc: &str, _cidr: &str, zone: &str, tags: &Tags) -> R<String> {
        let id = self.create("CreateSubnet", "subnet", None, tags, &[vpc])?;
        let mut s = self.state.lock().unwrap();
        s.objects.get_mut(&id).expect("just made").extra.insert("zone".into(), zone.to_string());
        Ok(id)
    }
    async fn availability_zones(&self) -> R<Vec<String>> {
        let _s = self.enter("DescribeAvailabilityZones")?;
        Ok(vec!["us-east-1a".into(), "us-east-1b".into(), "us-east-1c".into()])
    }
    async fn create_internet_gateway(&self, vpc: &str, tags: &Tags) -> R<String> {
        self.create("CreateInternetGateway", "igw", None, tags, &[vpc])
    }
    async fn create_security_group(&self, vpc: &str, _name: &str, _d: &str, tags: &Tags) -> R<String> {
        self.create("CreateSecurityGroup", "sg", None, tags, &[vpc])
    }
    async fn authorize_ingress(&self, group: &str, rules: &[SgRule]) -> R<()> {
        let mut s = self.enter("AuthorizeSecurityGroupIngress")?;
        s.rules.entry(group.to_string()).or_default().extend(rules.iter().cloned());
        Ok(())
    }
    async fn ingress_rules(&self, group: &str) -> R<Vec<SgRule>> {
        let s = self.enter("DescribeSecurityGroups")?;
        if !s.objects.contains_key(group) {
            return Err(ApiError::new("DescribeSecurityGroups", "InvalidGroup.NotFound", group));
        }
        Ok(s.rules.get(group).cloned().unwrap_or_default())
    }
    async fn revoke_ingress(&self, group: &str, rules: &[SgRule]) -> R<()> {
        let mut s = self.enter("RevokeSecurityGroupIngress")?;
        if let Some(r) = s.rules.get_mut(group) {
            r.retain(|x| !rules.contains(x));
        }
        Ok(())
    }
    async fn latest_image(&self, _p: &str, _a: &str) -> R<Option<String>> {
        let _s = self.enter("DescribeImages")?;
        Ok(Some("ami-al2023".into()))
    }
    async fn run_instance(&self, req: &InstanceRequest) -> R<String> {
        let mut uses: Vec<&str> = req.security_group_ids.iter().map(String::as_str).collect();
        uses.push(&req.subnet_id);
        if let Some(p) = &req.instance_profile {
            uses.push(p);
        }
        let id = self.create("RunInstances", "instance", None, &req.tags, &uses)?;
        let mut s = self.state.lock().unwrap();
        let o = s.objects.get_mut(&id).expect("just made");
        o.extra.insert("image".into(), req.image_id.clone());
        o.extra.insert("instance_type".into(), req.instance_type.clone());
        o.extra.insert("user_data".into(), req.user_data.clone());
        o.extra.insert("imds_v1".into(), req.imds_v1.to_string());
        Ok(id)
    }
    async fn instance_state(&self, id: &str) -> R<Option<InstanceState>> {
        let s = self.enter("DescribeInstances")?;
        Ok(s.objects.get(id).map(|_| InstanceState {
            state: "running".into(),
            private_ip: Some("10.213.0.10".into()),
            public_ip: None,
        }))
    }
    async fn terminate_instance(&self, id: &str) -> R<()> {
        self.delete("TerminateInstances", id, "InvalidInstanceID.NotFound")
    }
    async fn delete_security_group(&self, id: &str) -> R<()> {
        self.delete("DeleteSecurityGroup", id, "InvalidGroup.NotFound")
    }
    async fn delete_internet_gateway(&self, id: &str, _vpc: &str) -> R<()> {
        self.delete("DeleteInternetGateway", id, "InvalidInternetGatewayID.NotFound")
    }
    async fn delete_subnet(&self, id: &str) -> R<()> {
        self.delete("DeleteSubnet", id, "InvalidSubnetID.NotFound")
    }
    async fn delete_vpc(&self, id: &str) -> R<()> {
        self.delete("DeleteVpc", id, "InvalidVpcID.NotFound")
    }
    async fn create_launch_template(&self, req: &LaunchTemplateRequest) -> R<String> {
        let id = self.create("CreateLaunchTemplate", "launchtemplate", None, &req.tags, &[])?;
        let mut s = self.state.lock().unwrap();
        let o = s.objects.get_mut(&id).expect("just made");
        o.extra.insert("name".into(), req.name.clone());
        o.extra.insert("http_tokens".into(), if req.http_tokens_required { "required" } else { "optional" }.into());
        o.extra.insert("hop_limit".into(), req.hop_limit.to_string());
        Ok(id)
    }
    async fn delete_launch_template(&self, id: &str) -> R<()> {
        self.delete("DeleteLaunchTemplate", id, "InvalidLaunchTemplateId.NotFound")
    }
    async fn tagged(&self, kind: Ec2Kind) -> R<Vec<Found>> {
        let k = match kind {
            Ec2Kind::Instance => "instance",
            Ec2Kind::SecurityGroup => "sg",
            Ec2Kind::Subnet => "subnet",
            Ec2Kind::Vpc => "vpc",
            Ec2Kind::InternetGateway => "igw",
            Ec2Kind::LaunchTemplate => "launchtemplate",
        };
        Ok(self.found(k))
    }
}

#[async_trait]
impl IamApi for Fake {
    async fn create_role(&self, name: &str, _service: &str, tags: &Tags) -> R<String> {
        self.create("CreateRole", "role", Some(name), tags, &[]).map(|n| format!("arn:aws:iam::000000000000:role/{n}"))
    }
    async fn create_instance_profile(&self, name: &str, role: &str, tags: &Tags) -> R<String> {
        // The profile's id is prefixed so it does not clash with the role of the same name.
        let id = format!("profile/{name}");
        self.create("CreateInstanceProfile", "profile", Some(&id), tags, &[role])?;
        Ok(name.to_string())
    }
    async fn attach_managed_policy(&self, role: &str, policy_arn: &str) -> R<()> {
        let mut s = self.enter("AttachRolePolicy")?;
        let o = s.objects.get_mut(role).ok_or_else(|| ApiError::new("AttachRolePolicy", "NoSuchEntity", role))?;
        o.extra.insert("policy".into(), policy_arn.to_string());
        Ok(())
    }
    async fn delete_role(&self, name: &str) -> R<()> {
        self.delete("DeleteRole", name, "NoSuchEntity")?;
        self.state.lock().unwrap().policies.remove(name);
        Ok(())
    }
    async fn delete_instance_profile(&self, name: &str) -> R<()> {
        self.delete("DeleteInstanceProfile", &format!("profile/{name}"), "NoSuchEntity")
    }
    async fn roles(&self) -> R<Vec<Found>> {
        Ok(self.found("role"))
    }
    async fn put_role_policy(&self, role: &str, name: &str, document: &str) -> R<()> {
        let mut s = self.enter("PutRolePolicy")?;
        if !s.objects.contains_key(role) {
            return Err(ApiError::new("PutRolePolicy", "NoSuchEntity", role));
        }
        s.policies.entry(role.to_string()).or_default().push((name.to_string(), document.to_string()));
        Ok(())
    }
    async fn create_role_with_trust(&self, name: &str, document: &str, tags: &Tags) -> R<String> {
        let arn = self.create("CreateRole", "role", Some(name), tags, &[])?;
        let mut s = self.state.lock().unwrap();
        s.objects.get_mut(&arn).expect("just made").extra.insert("trust".into(), document.to_string());
        Ok(format!("arn:aws:iam::000000000000:role/{arn}"))
    }
    async fn create_oidc_provider(&self, issuer_url: &str, _thumbprint: &str, tags: &Tags) -> R<String> {
        let host = issuer_url.trim_start_matches("https://");
        let arn = format!("arn:aws:iam::000000000000:oidc-provider/{host}");
        self.create("CreateOpenIDConnectProvider", "oidc", Some(&arn), tags, &[])
    }
    async fn delete_oidc_provider(&self, arn: &str) -> R<()> {
        self.delete("DeleteOpenIDConnectProvider", arn, "NoSuchEntity")
    }
    async fn oidc_providers(&self) -> R<Vec<Found>> {
        Ok(self.found("oidc"))
    }
    async fn instance_profiles(&self) -> R<Vec<Found>> {
        Ok(self
            .found("profile")
            .into_iter()
            .map(|mut f| {
                f.id = f.id.trim_start_matches("profile/").to_string();
                f.name = f.id.clone();
                f
            })
            .collect())
    }
}

#[async_trait]
impl S3Api for Fake {
    async fn create_bucket(&self, name: &str, tags: &Tags) -> R<()> {
        self.create("CreateBucket", "bucket", Some(name), tags, &[]).map(|_| ())
    }
    async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> R<()> {
        let id = format!("{bucket}/{key}");
        // A put replaces what the key held.
        self.state.lock().unwrap().objects.remove(&id);
        self.create("PutObject", "object", Some(&id), &Vec::new(), &[bucket])?;
        self.state.lock().unwrap().bodies.insert(id, body);
        Ok(())
    }
    async fn get_object(&self, bucket: &str, key: &str) -> R<Option<Vec<u8>>> {
        let s = self.enter("GetObject")?;
        if !s.objects.contains_key(bucket) {
            return Err(ApiError::new("GetObject", "NoSuchBucket", bucket));
        }
        Ok(s.bodies.get(&format!("{bucket}/{key}")).cloned())
    }
    async fn presign_get(&self, bucket: &str, key: &str, _ttl: Duration) -> R<String> {
        Ok(format!("https://{bucket}.s3.example/{key}?X-Amz-Signature=fake"))
    }
    async fn delete_bucket(&self, name: &str) -> R<()> {
        let objects: Vec<String> = {
            let s = self.state.lock().unwrap();
            s.objects.iter().filter(|(_, o)| o.kind == "object" && o.uses[0] == name).map(|(k, _)| k.clone()).collect()
        };
        for o in objects {
            self.delete("DeleteObject", &o, "NoSuchKey")?;
        }
        self.delete("DeleteBucket", name, "NoSuchBucket")
    }
    async fn buckets(&self) -> R<Vec<Found>> {
        Ok(self.found("bucket"))
    }
}

#[async_trait]
impl LambdaApi for Fake {
    async fn create_function(&self, req: &FunctionRequest) -> R<String> {
        let role = req.role_arn.rsplit('/').next().unwrap_or_default().to_string();
        // Functions have their own namespace (a role may have the same name).
        let id = format!("function/{}", req.name);
        self.create("CreateFunction", "function", Some(&id), &req.tags, &[])?;
        let mut s = self.state.lock().unwrap();
        let o = s.objects.get_mut(&id).expect("just made");
        o.extra.insert("role".into(), role);
        o.extra.insert("per_tenant".into(), req.per_tenant.to_string());
        o.extra.insert("architecture".into(), req.architecture.clone());
        Ok(format!("arn:aws:lambda:us-east-1:000000000000:function:{}", req.name))
    }
    async fn invoke(&self, name: &str, tenant: Option<&str>, payload: Vec<u8>) -> R<InvokeReply> {
        let _s = self.enter("Invoke")?;
        let tail = format!(
            "REPORT RequestId: x\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\t{name} {tenant:?}"
        );
        Ok(InvokeReply { payload, function_error: None, log_tail: Some(tail) })
    }
    async fn function_state(&self, name: &str) -> R<FunctionState> {
        let s = self.enter("GetFunctionConfiguration")?;
        if !s.objects.contains_key(&format!("function/{name}")) {
            return Err(ApiError::new("GetFunctionConfiguration", "ResourceNotFoundException", name));
        }
        let failed = s.function_state == "Failed";
        Ok(FunctionState { state: s.function_state.clone(), reason: failed.then(|| "no Docker".into()) })
    }
    async fn put_function_concurrency(&self, name: &str, reserved: u32) -> R<()> {
        let mut s = self.enter("PutFunctionConcurrency")?;
        let id = format!("function/{name}");
        let o = s
            .objects
            .get_mut(&id)
            .ok_or_else(|| ApiError::new("PutFunctionConcurrency", "ResourceNotFoundException", name))?;
        o.extra.insert("reserved".into(), reserved.to_string());
        Ok(())
    }
    async fn delete_function(&self, name: &str) -> R<()> {
        self.delete("DeleteFunction", &format!("function/{name}"), "ResourceNotFoundException")
    }
    async fn functions(&self) -> R<Vec<Found>> {
        Ok(self
            .found("function")
            .into_iter()
            .map(|mut f| {
                f.id = f.id.trim_start_matches("function/").to_string();
                f.name = f.id.clone();
                f
            })
            .collect())
    }
}

#[async_trait]
impl EcsApi for Fake {
    async fn create_cluster(&self, name: &str, tags: &Tags) -> R<String> {
        self.create("CreateCluster", "cluster", Some(name), tags, &[])
    }
    async fn register_task_definition(&self, req: &TaskDefinitionRequest) -> R<String> {
        let role = req.task_role_arn.rsplit('/').next().unwrap_or_default().to_string();
        let id = format!("{}:1", req.family);
        self.create("RegisterTaskDefinition", "taskdef", Some(&id), &req.tags, &[&role])?;
        let mut s = self.state.lock().unwrap();
        let o = s.objects.get_mut(&id).expect("just made");
        o.extra.insert("architecture".into(), req.architecture.clone());
        o.extra.insert("launch_type".into(), req.launch_type.clone());
        Ok(id)
    }
    async fn run_task(&self, req: &TaskRequest) -> R<String> {
        let mut uses: Vec<&str> = req.security_groups.iter().map(String::as_str).collect();
        uses.extend(req.subnets.iter().map(String::as_str));
        uses.push(&req.cluster);
        uses.push(&req.task_definition);
        let host = if req.launch_type == "EC2" { Some(self.place(&req.cluster)?) } else { None };
        let id = self.create("RunTask", "task", None, &req.tags, &uses)?;
        if let Some(host) = host {
            let mut s = self.state.lock().unwrap();
            s.objects.get_mut(&id).expect("just made").extra.insert("container_instance".into(), host);
        }
        Ok(id)
    }
    async fn task_state(&self, _cluster: &str, task: &str) -> R<Option<TaskState>> {
        let s = self.enter("DescribeTasks")?;
        Ok(s.objects
            .get(task)
            .map(|_| TaskState { last_status: "RUNNING".into(), private_ip: Some("10.213.0.20".into()) }))
    }
    async fn stop_task(&self, _cluster: &str, task: &str) -> R<()> {
        self.delete("StopTask", task, "InvalidParameterException")
    }
    async fn deregister_task_definition(&self, arn: &str) -> R<()> {
        self.delete("DeregisterTaskDefinition", arn, "ClientException")
    }
    async fn delete_cluster(&self, name: &str) -> R<()> {
        self.delete("DeleteCluster", name, "ClusterNotFoundException")
    }
    async fn clusters(&self) -> R<Vec<Found>> {
        Ok(self.found("cluster"))
    }
    async fn task_definitions(&self) -> R<Vec<Found>> {
        Ok(self.found("taskdef"))
    }
    async fn register_container_instance(&self, cluster: &str, instance: &str) -> R<String> {
        let itype = {
            let s = self.state.lock().unwrap();
            s.objects.get(instance).and_then(|o| o.extra.get("instance_type").cloned()).unwrap_or_default()
        };
        let id = self.create("RegisterContainerInstance", "containerinstance", None, &Vec::new(), &[cluster])?;
        let mut s = self.state.lock().unwrap();
        let o = s.objects.get_mut(&id).expect("just made");
        o.extra.insert("instance".into(), instance.to_string());
        o.extra.insert("instance_type".into(), itype);
        Ok(id)
    }
    async fn container_instances(&self, cluster: &str) -> R<Vec<Found>> {
        Ok(self.found("containerinstance").into_iter().filter(|c| c.parent.as_deref() == Some(cluster)).collect())
    }
    async fn deregister_container_instance(&self, _cluster: &str, arn: &str) -> R<()> {
        self.delete("DeregisterContainerInstance", arn, "ClientException")
    }
    async fn tasks(&self, cluster: &str) -> R<Vec<Found>> {
        Ok(self
            .found("task")
            .into_iter()
            .filter(|t| self.state.lock().unwrap().objects[&t.id].uses.contains(&cluster.to_string()))
            .collect())
    }
    async fn task_exit(&self, _cluster: &str, task: &str) -> R<Option<TaskExit>> {
        let s = self.enter("DescribeTasks")?;
        if let Some(x) = s.stopped.get(task) {
            return Ok(Some(x.clone()));
        }
        Ok(s.objects.get(task).map(|_| TaskExit {
            last_status: "RUNNING".into(),
            stopped_reason: None,
            exit_code: None,
        }))
    }
}

/// Ids of the fake's EKS objects, apart from ECS clusters and IAM roles of the same names.
fn eks_id(cluster: &str) -> String {
    format!("eks/{cluster}")
}

impl Fake {
    /// `CREATING` while the fake has polls of that left, then `ACTIVE`.
    fn eks_status(&self) -> String {
        let mut s = self.state.lock().unwrap();
        if s.eks_creating_polls > 0 {
            s.eks_creating_polls -= 1;
            return "CREATING".into();
        }
        "ACTIVE".into()
    }

    /// The objects of `kind` under an EKS cluster, their ids without the cluster's prefix.
    fn eks_children(&self, kind: &str, cluster: &str) -> Vec<Found> {
        let prefix = format!("{}/{kind}/", eks_id(cluster));
        let s = self.state.lock().unwrap();
        s.objects
            .iter()
            .filter(|(id, o)| o.kind == kind && id.starts_with(&prefix))
            .map(|(id, o)| {
                let short = id[prefix.len()..].to_string();
                Found {
                    name: o.extra.get("name").cloned().unwrap_or_else(|| short.clone()),
                    id: short,
                    tags: o.tags.clone(),
                    parent: Some(cluster.to_string()),
                }
            })
            .collect()
    }
}

/// The security group EKS makes for a cluster (not an object of the fake's: it has no tags).
pub fn eks_security_group(cluster: &str) -> String {
    format!("sg-eks-{cluster}")
}

fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or_default()
}

#[async_trait]
impl EksApi for Fake {
    async fn create_cluster(&self, req: &EksClusterRequest) -> R<String> {
        let mut uses: Vec<&str> = req.subnets.iter().map(String::as_str).collect();
        uses.push(role_name(&req.role_arn));
        self.create("CreateCluster", "ekscluster", Some(&eks_id(&req.name)), &req.tags, &uses)?;
        Ok(format!("arn:aws:eks:us-east-1:000000000000:cluster/{}", req.name))
    }
    async fn cluster(&self, name: &str) -> R<Option<EksCluster>> {
        let exists = self.enter("DescribeCluster")?.objects.contains_key(&eks_id(name));
        if !exists {
            return Ok(None);
        }
        Ok(Some(EksCluster {
            arn: format!("arn:aws:eks:us-east-1:000000000000:cluster/{name}"),
            status: self.eks_status(),
            endpoint: Some(format!("https://{name}.eks.example")),
            certificate_authority: Some("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t".into()),
            oidc_issuer: Some(format!("https://oidc.eks.us-east-1.amazonaws.com/id/{name}")),
            security_group: Some(eks_security_group(name)),
        }))
    }
    async fn delete_cluster(&self, name: &str) -> R<()> {
        self.delete("DeleteCluster", &eks_id(name), "ResourceNotFoundException")?;
        // EKS deletes the cluster's own group, and its rules with it.
        self.state.lock().unwrap().rules.remove(&eks_security_group(name));
        Ok(())
    }
    async fn clusters(&self) -> R<Vec<Found>> {
        Ok(self
            .found("ekscluster")
            .into_iter()
            .map(|mut f| {
                f.id = f.id.trim_start_matches("eks/").to_string();
                f.name = f.id.clone();
                f.parent = None;
                f
            })
            .collect())
    }
    async fn create_nodegroup(&self, req: &NodegroupRequest) -> R<String> {
        let cluster = eks_id(&req.cluster);
        let mut uses: Vec<&str> = req.subnets.iter().map(String::as_str).collect();
        uses.extend([cluster.as_str(), role_name(&req.node_role_arn), req.launch_template.as_str()]);
        let id = format!("{cluster}/nodegroup/{}", req.name);
        self.create("CreateNodegroup", "nodegroup", Some(&id), &req.tags, &uses)?;
        let mut s = self.state.lock().unwrap();
        let o = s.objects.get_mut(&id).expect("just made");
        o.extra.insert("instance_type".into(), req.instance_type.clone());
        o.extra.insert("count".into(), req.count.to_string());
        o.extra.insert("labels".into(), format!("{:?}", req.labels));
        Ok(format!("arn:aws:eks:us-east-1:000000000000:nodegroup/{}/{}", req.cluster, req.name))
    }
    async fn nodegroup_status(&self, cluster: &str, name: &str) -> R<Option<String>> {
        let exists =
            self.enter("DescribeNodegroup")?.objects.contains_key(&format!("{}/nodegroup/{name}", eks_id(cluster)));
        Ok(exists.then(|| self.eks_status()))
    }
    async fn delete_nodegroup(&self, cluster: &str, name: &str) -> R<()> {
        self.delete("DeleteNodegroup", &format!("{}/nodegroup/{name}", eks_id(cluster)), "ResourceNotFoundException")
    }
    async fn nodegroups(&self, cluster: &str) -> R<Vec<Found>> {
        Ok(self.eks_children("nodegroup", cluster))
    }
    async fn create_addon(&self, cluster: &str, name: &str, configuration: Option<&str>, tags: &Tags) -> R<String> {
        let c = eks_id(cluster);
        let id = format!("{c}/addon/{name}");
        self.create("CreateAddon", "addon", Some(&id), tags, &[c.as_str()])?;
        let mut s = self.state.lock().unwrap();
        let o = s.objects.get_mut(&id).expect("just made");
        o.extra.insert("configuration".into(), configuration.unwrap_or_default().to_string());
        Ok(format!("arn:aws:eks:us-east-1:000000000000:addon/{cluster}/{name}"))
    }
    async fn delete_addon(&self, cluster: &str, name: &str) -> R<()> {
        self.delete("DeleteAddon", &format!("{}/addon/{name}", eks_id(cluster)), "ResourceNotFoundException")
    }
    async fn addons(&self, cluster: &str) -> R<Vec<Found>> {
        Ok(self.eks_children("addon", cluster))
    }
    async fn create_pod_identity_association(&self, req: &PodIdentityRequest) -> R<String> {
        let c = eks_id(&req.cluster);
        let n = {
            let mut s = self.state.lock().unwrap();
            s.next += 1;
            s.next
        };
        let id = format!("{c}/association/a-{n:04}");
        self.create(
            "CreatePodIdentityAssociation",
            "association",
            Some(&id),
            &req.tags,
            &[c.as_str(), role_name(&req.role_arn)],
        )?;
        let mut s = self.state.lock().unwrap();
        let o = s.objects.get_mut(&id).expect("just made");
        o.extra.insert("name".into(), format!("{}/{}", req.namespace, req.service_account));
        Ok(id.rsplit('/').next().unwrap_or_default().to_string())
    }
    async fn delete_pod_identity_association(&self, cluster: &str, id: &str) -> R<()> {
        let full = format!("{}/association/{id}", eks_id(cluster));
        self.delete("DeletePodIdentityAssociation", &full, "ResourceNotFoundException")
    }
    async fn pod_identity_associations(&self, cluster: &str) -> R<Vec<Found>> {
        Ok(self.eks_children("association", cluster))
    }
    async fn token(&self, cluster: &str) -> R<String> {
        Ok(format!("k8s-aws-v1.fake-{cluster}"))
    }
}
