//! The real implementations of [`crate::api`]'s traits, each a thin wrapper over one SDK client.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::api::*;
use crate::error::ApiError;
use crate::tags::{IAM_PATH, NAME_PREFIX, TOOL_KEY, TOOL_VALUE};

/// Converts any SDK error into an [`ApiError`] carrying the service's error code.
fn err<E>(op: &'static str) -> impl FnOnce(E) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    move |e| {
        let code = e.code().unwrap_or("Unknown").to_string();
        let message = e.message().map(str::to_string).unwrap_or_else(|| DisplayErrorContext(&e).to_string());
        ApiError::new(op, code, message)
    }
}

fn build_err(op: &'static str) -> impl FnOnce(aws_smithy_types::error::operation::BuildError) -> ApiError {
    move |e| ApiError::new(op, "BuildError", e.to_string())
}

fn missing(op: &'static str, what: &str) -> ApiError {
    ApiError::new(op, "MissingField", format!("the response has no {what}"))
}

// ---- EC2 -----------------------------------------------------------------------------------

pub struct Ec2 {
    pub client: aws_sdk_ec2::Client,
}

mod ec2t {
    pub use aws_sdk_ec2::types::*;
}

fn ec2_tags(rt: ec2t::ResourceType, tags: &Tags) -> ec2t::TagSpecification {
    ec2t::TagSpecification::builder()
        .resource_type(rt)
        .set_tags(Some(tags.iter().map(|(k, v)| ec2t::Tag::builder().key(k).value(v).build()).collect()))
        .build()
}

fn ec2_tag_map(tags: &[ec2t::Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

fn tool_filter() -> ec2t::Filter {
    ec2t::Filter::builder().name(format!("tag:{TOOL_KEY}")).values(TOOL_VALUE).build()
}

fn permission(r: &SgRule) -> ec2t::IpPermission {
    let b = ec2t::IpPermission::builder().ip_protocol(&r.protocol).from_port(r.from_port).to_port(r.to_port);
    match &r.source {
        SgSource::Group(g) => b.user_id_group_pairs(ec2t::UserIdGroupPair::builder().group_id(g).build()),
        SgSource::Cidr(c) => b.ip_ranges(ec2t::IpRange::builder().cidr_ip(c).build()),
    }
    .build()
}

fn rules_of(p: &ec2t::IpPermission) -> Vec<SgRule> {
    let base = |source| SgRule {
        protocol: p.ip_protocol().unwrap_or("-1").to_string(),
        from_port: p.from_port().unwrap_or(-1),
        to_port: p.to_port().unwrap_or(-1),
        source,
    };
    let groups = p.user_id_group_pairs().iter().filter_map(|g| g.group_id()).map(|g| base(SgSource::Group(g.into())));
    let cidrs = p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).map(|c| base(SgSource::Cidr(c.into())));
    groups.chain(cidrs).collect()
}

impl Ec2 {
    async fn subnet(&self, vpc: &str, cidr: &str, zone: Option<&str>, tags: &Tags) -> Result<String> {
        let out = self
            .client
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(cidr)
            .set_availability_zone(zone.map(str::to_string))
            .tag_specifications(ec2_tags(ec2t::ResourceType::Subnet, tags))
            .send()
            .await
            .map_err(err("CreateSubnet"))?;
        let id = out.subnet().and_then(|s| s.subnet_id()).ok_or_else(|| missing("CreateSubnet", "SubnetId"))?;
        // Instances fetch the workload from S3 over the internet gateway: they need a public address.
        self.client
            .modify_subnet_attribute()
            .subnet_id(id)
            .map_public_ip_on_launch(ec2t::AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(err("ModifySubnetAttribute"))?;
        Ok(id.to_string())
    }
}

#[async_trait]
impl Ec2Api for Ec2 {
    async fn create_vpc(&self, cidr: &str, tags: &Tags) -> Result<String> {
        let out = self
            .client
            .create_vpc()
            .cidr_block(cidr)
            .tag_specifications(ec2_tags(ec2t::ResourceType::Vpc, tags))
            .send()
            .await
            .map_err(err("CreateVpc"))?;
        out.vpc().and_then(|v| v.vpc_id()).map(str::to_string).ok_or_else(|| missing("CreateVpc", "VpcId"))
    }

    async fn create_subnet(&self, vpc: &str, cidr: &str, tags: &Tags) -> Result<String> {
        self.subnet(vpc, cidr, None, tags).await
    }

    async fn create_zoned_subnet(&self, vpc: &str, cidr: &str, zone: &str, tags: &Tags) -> Result<String> {
        self.subnet(vpc, cidr, Some(zone), tags).await
    }

    async fn availability_zones(&self) -> Result<Vec<String>> {
        let state = ec2t::Filter::builder().name("state").values("available").build();
        let out = self.client.describe_availability_zones().filters(state).send().await;
        let out = out.map_err(err("DescribeAvailabilityZones"))?;
        Ok(out.availability_zones().iter().filter_map(|z| z.zone_name()).map(str::to_string).collect())
    }

    async fn create_internet_gateway(&self, vpc: &str, tags: &Tags) -> Result<String> {
        let out = self
            .client
            .create_internet_gateway()
            .tag_specifications(ec2_tags(ec2t::ResourceType::InternetGateway, tags))
            .send()
            .await
            .map_err(err("CreateInternetGateway"))?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .ok_or_else(|| missing("CreateInternetGateway", "InternetGatewayId"))?
            .to_string();
        self.client
            .attach_internet_gateway()
            .internet_gateway_id(&id)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(err("AttachInternetGateway"))?;
        let tables = self
            .client
            .describe_route_tables()
            .filters(ec2t::Filter::builder().name("vpc-id").values(vpc).build())
            .filters(ec2t::Filter::builder().name("association.main").values("true").build())
            .send()
            .await
            .map_err(err("DescribeRouteTables"))?;
        let table = tables
            .route_tables()
            .first()
            .and_then(|t| t.route_table_id())
            .ok_or_else(|| missing("DescribeRouteTables", "main route table"))?;
        self.client
            .create_route()
            .route_table_id(table)
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id(&id)
            .send()
            .await
            .map_err(err("CreateRoute"))?;
        Ok(id)
    }

    async fn create_security_group(&self, vpc: &str, name: &str, description: &str, tags: &Tags) -> Result<String> {
        let out = self
            .client
            .create_security_group()
            .vpc_id(vpc)
            .group_name(name)
            .description(description)
            .tag_specifications(ec2_tags(ec2t::ResourceType::SecurityGroup, tags))
            .send()
            .await
            .map_err(err("CreateSecurityGroup"))?;
        out.group_id().map(str::to_string).ok_or_else(|| missing("CreateSecurityGroup", "GroupId"))
    }

    async fn authorize_ingress(&self, group: &str, rules: &[SgRule]) -> Result<()> {
        self.client
            .authorize_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(rules.iter().map(permission).collect()))
            .send()
            .await
            .map_err(err("AuthorizeSecurityGroupIngress"))?;
        Ok(())
    }

    async fn ingress_rules(&self, group: &str) -> Result<Vec<SgRule>> {
        let out = self
            .client
            .describe_security_groups()
            .group_ids(group)
            .send()
            .await
            .map_err(err("DescribeSecurityGroups"))?;
        Ok(out.security_groups().iter().flat_map(|g| g.ip_permissions()).flat_map(rules_of).collect())
    }

    async fn revoke_ingress(&self, group: &str, rules: &[SgRule]) -> Result<()> {
        self.client
            .revoke_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(rules.iter().map(permission).collect()))
            .send()
            .await
            .map_err(err("RevokeSecurityGroupIngress"))?;
        Ok(())
    }

    async fn latest_image(&self, pattern: &str, arch: &str) -> Result<Option<String>> {
        let out = self
            .client
            .describe_images()
            .owners("amazon")
            .filters(ec2t::Filter::builder().name("name").values(pattern).build())
            .filters(ec2t::Filter::builder().name("architecture").values(arch).build())
            .send()
            .await
            .map_err(err("DescribeImages"))?;
        let newest = out.images().iter().max_by_key(|i| i.creation_date().unwrap_or_default().to_string());
        Ok(newest.and_then(|i| i.image_id()).map(str::to_string))
    }

    async fn run_instance(&self, req: &InstanceRequest) -> Result<String> {
        let tokens = if req.imds_v1 { ec2t::HttpTokensState::Optional } else { ec2t::HttpTokensState::Required };
        let mut call = self
            .client
            .run_instances()
            .image_id(&req.image_id)
            .instance_type(ec2t::InstanceType::from(req.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .subnet_id(&req.subnet_id)
            .set_security_group_ids(Some(req.security_group_ids.clone()))
            .user_data(aws_smithy_types::base64::encode(&req.user_data))
            // IMDSv2 only unless asked (an ECS container instance's `http_tokens`): a workload
            // cannot then be tricked into reading credentials with one GET.
            .metadata_options(ec2t::InstanceMetadataOptionsRequest::builder().http_tokens(tokens).build())
            .tag_specifications(ec2_tags(ec2t::ResourceType::Instance, &req.tags));
        if let Some(p) = &req.instance_profile {
            call = call.iam_instance_profile(ec2t::IamInstanceProfileSpecification::builder().name(p).build());
        }
        let out = call.send().await.map_err(err("RunInstances"))?;
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_string)
            .ok_or_else(|| missing("RunInstances", "InstanceId"))
    }

    async fn instance_state(&self, id: &str) -> Result<Option<InstanceState>> {
        let out = match self.client.describe_instances().instance_ids(id).send().await.map_err(err("DescribeInstances"))
        {
            Err(e) if e.is_not_found() => return Ok(None),
            other => other?,
        };
        let inst = out.reservations().iter().flat_map(|r| r.instances()).next();
        Ok(inst.map(|i| InstanceState {
            state: i.state().and_then(|s| s.name()).map_or("unknown", |n| n.as_str()).to_string(),
            private_ip: i.private_ip_address().map(str::to_string),
            public_ip: i.public_ip_address().map(str::to_string),
        }))
    }

    async fn terminate_instance(&self, id: &str) -> Result<()> {
        self.client.terminate_instances().instance_ids(id).send().await.map_err(err("TerminateInstances"))?;
        Ok(())
    }

    async fn delete_security_group(&self, id: &str) -> Result<()> {
        self.client.delete_security_group().group_id(id).send().await.map_err(err("DeleteSecurityGroup"))?;
        Ok(())
    }

    async fn delete_internet_gateway(&self, id: &str, vpc: &str) -> Result<()> {
        let detach = self.client.detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc);
        match if vpc.is_empty() { Ok(None) } else { detach.send().await.map(Some) } {
            Ok(_) => {}
            // Already detached (a teardown that stopped half-way) is fine.
            Err(e) if e.code() == Some("Gateway.NotAttached") => {}
            Err(e) => return Err(err("DetachInternetGateway")(e)),
        }
        self.client
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
            .map_err(err("DeleteInternetGateway"))?;
        Ok(())
    }

    async fn delete_subnet(&self, id: &str) -> Result<()> {
        self.client.delete_subnet().subnet_id(id).send().await.map_err(err("DeleteSubnet"))?;
        Ok(())
    }

    async fn delete_vpc(&self, id: &str) -> Result<()> {
        self.client.delete_vpc().vpc_id(id).send().await.map_err(err("DeleteVpc"))?;
        Ok(())
    }

    async fn tagged(&self, kind: Ec2Kind) -> Result<Vec<Found>> {
        let found = |id: Option<&str>, tags: &[ec2t::Tag], parent: Option<&str>| {
            id.map(|id| Found {
                id: id.to_string(),
                name: id.to_string(),
                tags: ec2_tag_map(tags),
                parent: parent.map(str::to_string),
            })
        };
        let c = &self.client;
        Ok(match kind {
            Ec2Kind::Instance => {
                let live = ec2t::Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(
                        ["pending", "running", "stopping", "stopped", "shutting-down"].map(String::from).to_vec(),
                    ))
                    .build();
                let out = c.describe_instances().filters(tool_filter()).filters(live).send().await;
                let out = out.map_err(err("DescribeInstances"))?;
                out.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter_map(|i| found(i.instance_id(), i.tags(), None))
                    .collect()
            }
            Ec2Kind::SecurityGroup => {
                let out = c.describe_security_groups().filters(tool_filter()).send().await;
                let out = out.map_err(err("DescribeSecurityGroups"))?;
                out.security_groups().iter().filter_map(|g| found(g.group_id(), g.tags(), g.vpc_id())).collect()
            }
            Ec2Kind::Subnet => {
                let out = c.describe_subnets().filters(tool_filter()).send().await.map_err(err("DescribeSubnets"))?;
                out.subnets().iter().filter_map(|s| found(s.subnet_id(), s.tags(), s.vpc_id())).collect()
            }
            Ec2Kind::Vpc => {
                let out = c.describe_vpcs().filters(tool_filter()).send().await.map_err(err("DescribeVpcs"))?;
                out.vpcs().iter().filter_map(|v| found(v.vpc_id(), v.tags(), None)).collect()
            }
            Ec2Kind::InternetGateway => {
                let out = c.describe_internet_gateways().filters(tool_filter()).send().await;
                let out = out.map_err(err("DescribeInternetGateways"))?;
                out.internet_gateways()
                    .iter()
                    .filter_map(|g| {
                        let vpc = g.attachments().first().and_then(|a| a.vpc_id());
                        found(g.internet_gateway_id(), g.tags(), vpc)
                    })
                    .collect()
            }
            Ec2Kind::LaunchTemplate => {
                let out = c.describe_launch_templates().filters(tool_filter()).send().await;
                let out = out.map_err(err("DescribeLaunchTemplates"))?;
                out.launch_templates().iter().filter_map(|t| found(t.launch_template_id(), t.tags(), None)).collect()
            }
        })
    }

    async fn create_launch_template(&self, req: &LaunchTemplateRequest) -> Result<String> {
        let tokens = if req.http_tokens_required {
            ec2t::LaunchTemplateHttpTokensState::Required
        } else {
            ec2t::LaunchTemplateHttpTokensState::Optional
        };
        let metadata = ec2t::LaunchTemplateInstanceMetadataOptionsRequest::builder()
            .http_endpoint(ec2t::LaunchTemplateInstanceMetadataEndpointState::Enabled)
            .http_tokens(tokens)
            .http_put_response_hop_limit(i32::from(req.hop_limit))
            .build();
        let data = ec2t::RequestLaunchTemplateData::builder().metadata_options(metadata).build();
        let out = self
            .client
            .create_launch_template()
            .launch_template_name(&req.name)
            .launch_template_data(data)
            .tag_specifications(ec2_tags(ec2t::ResourceType::LaunchTemplate, &req.tags))
            .send()
            .await
            .map_err(err("CreateLaunchTemplate"))?;
        out.launch_template()
            .and_then(|t| t.launch_template_id())
            .map(str::to_string)
            .ok_or_else(|| missing("CreateLaunchTemplate", "LaunchTemplateId"))
    }

    async fn delete_launch_template(&self, id: &str) -> Result<()> {
        let call = self.client.delete_launch_template().launch_template_id(id);
        call.send().await.map_err(err("DeleteLaunchTemplate"))?;
        Ok(())
    }
}

// ---- IAM -----------------------------------------------------------------------------------

pub struct Iam {
    pub client: aws_sdk_iam::Client,
}

fn iam_tags(tags: &Tags) -> Result<Vec<aws_sdk_iam::types::Tag>> {
    tags.iter()
        .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().map_err(build_err("iam tag")))
        .collect()
}

fn trust_policy(service: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    })
    .to_string()
}

#[async_trait]
impl IamApi for Iam {
    async fn create_role(&self, name: &str, service: &str, tags: &Tags) -> Result<String> {
        let out = self
            .client
            .create_role()
            .role_name(name)
            .path(IAM_PATH)
            .assume_role_policy_document(trust_policy(service))
            .set_tags(Some(iam_tags(tags)?))
            .send()
            .await
            .map_err(err("CreateRole"))?;
        out.role().map(|r| r.arn().to_string()).ok_or_else(|| missing("CreateRole", "Role"))
    }

    async fn create_instance_profile(&self, name: &str, role: &str, tags: &Tags) -> Result<String> {
        let out = self
            .client
            .create_instance_profile()
            .instance_profile_name(name)
            .path(IAM_PATH)
            .set_tags(Some(iam_tags(tags)?))
            .send()
            .await
            .map_err(err("CreateInstanceProfile"))?;
        self.client
            .add_role_to_instance_profile()
            .instance_profile_name(name)
            .role_name(role)
            .send()
            .await
            .map_err(err("AddRoleToInstanceProfile"))?;
        out.instance_profile().map(|p| p.arn().to_string()).ok_or_else(|| missing("CreateInstanceProfile", "Arn"))
    }

    async fn attach_managed_policy(&self, role: &str, policy_arn: &str) -> Result<()> {
        let call = self.client.attach_role_policy().role_name(role).policy_arn(policy_arn);
        call.send().await.map_err(err("AttachRolePolicy"))?;
        Ok(())
    }

    async fn delete_role(&self, name: &str) -> Result<()> {
        let c = &self.client;
        let profiles = c.list_instance_profiles_for_role().role_name(name).send().await;
        for p in profiles.map_err(err("ListInstanceProfilesForRole"))?.instance_profiles() {
            let r = c.remove_role_from_instance_profile().instance_profile_name(p.instance_profile_name());
            r.role_name(name).send().await.map_err(err("RemoveRoleFromInstanceProfile"))?;
        }
        let attached = c.list_attached_role_policies().role_name(name).send().await;
        for p in attached.map_err(err("ListAttachedRolePolicies"))?.attached_policies() {
            if let Some(arn) = p.policy_arn() {
                let d = c.detach_role_policy().role_name(name).policy_arn(arn).send().await;
                d.map_err(err("DetachRolePolicy"))?;
            }
        }
        let inline = c.list_role_policies().role_name(name).send().await.map_err(err("ListRolePolicies"))?;
        for p in inline.policy_names() {
            c.delete_role_policy().role_name(name).policy_name(p).send().await.map_err(err("DeleteRolePolicy"))?;
        }
        c.delete_role().role_name(name).send().await.map_err(err("DeleteRole"))?;
        Ok(())
    }

    async fn delete_instance_profile(&self, name: &str) -> Result<()> {
        let c = &self.client;
        let p = c.get_instance_profile().instance_profile_name(name).send().await.map_err(err("GetInstanceProfile"))?;
        for r in p.instance_profile().map(|p| p.roles()).unwrap_or_default() {
            let call = c.remove_role_from_instance_profile().instance_profile_name(name).role_name(r.role_name());
            match call.send().await.map_err(err("RemoveRoleFromInstanceProfile")) {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        c.delete_instance_profile().instance_profile_name(name).send().await.map_err(err("DeleteInstanceProfile"))?;
        Ok(())
    }

    async fn roles(&self) -> Result<Vec<Found>> {
        let out = self.client.list_roles().path_prefix(IAM_PATH).send().await.map_err(err("ListRoles"))?;
        let mut found = Vec::new();
        for r in out.roles() {
            let tags = self.client.list_role_tags().role_name(r.role_name()).send().await;
            let tags = match tags.map_err(err("ListRoleTags")) {
                Ok(t) => t.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            found.push(Found { id: r.role_name().to_string(), name: r.role_name().to_string(), tags, parent: None });
        }
        Ok(found)
    }

    async fn instance_profiles(&self) -> Result<Vec<Found>> {
        let out = self.client.list_instance_profiles().path_prefix(IAM_PATH).send().await;
        let out = out.map_err(err("ListInstanceProfiles"))?;
        Ok(out
            .instance_profiles()
            .iter()
            .map(|p| Found {
                id: p.instance_profile_name().to_string(),
                name: p.instance_profile_name().to_string(),
                tags: p.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
                parent: None,
            })
            .collect())
    }

    async fn put_role_policy(&self, role: &str, name: &str, document: &str) -> Result<()> {
        let call = self.client.put_role_policy().role_name(role).policy_name(name).policy_document(document);
        call.send().await.map_err(err("PutRolePolicy"))?;
        Ok(())
    }

    async fn create_role_with_trust(&self, name: &str, document: &str, tags: &Tags) -> Result<String> {
        let out = self
            .client
            .create_role()
            .role_name(name)
            .path(IAM_PATH)
            .assume_role_policy_document(document)
            .set_tags(Some(iam_tags(tags)?))
            .send()
            .await
            .map_err(err("CreateRole"))?;
        out.role().map(|r| r.arn().to_string()).ok_or_else(|| missing("CreateRole", "Role"))
    }

    async fn create_oidc_provider(&self, issuer_url: &str, thumbprint: &str, tags: &Tags) -> Result<String> {
        let out = self
            .client
            .create_open_id_connect_provider()
            .url(issuer_url)
            .client_id_list("sts.amazonaws.com")
            .thumbprint_list(thumbprint)
            .set_tags(Some(iam_tags(tags)?))
            .send()
            .await
            .map_err(err("CreateOpenIDConnectProvider"))?;
        out.open_id_connect_provider_arn()
            .map(str::to_string)
            .ok_or_else(|| missing("CreateOpenIDConnectProvider", "OpenIDConnectProviderArn"))
    }

    async fn delete_oidc_provider(&self, arn: &str) -> Result<()> {
        let call = self.client.delete_open_id_connect_provider().open_id_connect_provider_arn(arn);
        call.send().await.map_err(err("DeleteOpenIDConnectProvider"))?;
        Ok(())
    }

    async fn oidc_providers(&self) -> Result<Vec<Found>> {
        let out = self.client.list_open_id_connect_providers().send().await;
        let mut found = Vec::new();
        for p in out.map_err(err("ListOpenIDConnectProviders"))?.open_id_connect_provider_list() {
            let Some(arn) = p.arn() else { continue };
            let tags = self.client.list_open_id_connect_provider_tags().open_id_connect_provider_arn(arn).send().await;
            let tags = match tags.map_err(err("ListOpenIDConnectProviderTags")) {
                Ok(t) => t.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            found.push(Found { id: arn.to_string(), name: arn.to_string(), tags, parent: None });
        }
        Ok(found)
    }
}

// ---- S3 ------------------------------------------------------------------------------------

pub struct S3 {
    pub client: aws_sdk_s3::Client,
    pub region: String,
}

#[async_trait]
impl S3Api for S3 {
    async fn create_bucket(&self, name: &str, tags: &Tags) -> Result<()> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, Tag, Tagging};
        let mut call = self.client.create_bucket().bucket(name);
        // us-east-1 takes no location constraint; every other region needs one.
        if self.region != "us-east-1" {
            let c = BucketLocationConstraint::from(self.region.as_str());
            call =
                call.create_bucket_configuration(CreateBucketConfiguration::builder().location_constraint(c).build());
        }
        call.send().await.map_err(err("CreateBucket"))?;
        let set: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(build_err("s3 tag")))
            .collect::<Result<_>>()?;
        let tagging = Tagging::builder().set_tag_set(Some(set)).build().map_err(build_err("s3 tagging"))?;
        self.client.put_bucket_tagging().bucket(name).tagging(tagging).send().await.map_err(err("PutBucketTagging"))?;
        Ok(())
    }

    async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
        let call = self.client.put_object().bucket(bucket).key(key).body(body.into());
        call.send().await.map_err(err("PutObject"))?;
        Ok(())
    }

    async fn presign_get(&self, bucket: &str, key: &str, ttl: Duration) -> Result<String> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|e| ApiError::new("presign", "BadTtl", e.to_string()))?;
        let req = self.client.get_object().bucket(bucket).key(key).presigned(config).await;
        Ok(req.map_err(err("GetObject (presign)"))?.uri().to_string())
    }

    async fn delete_bucket(&self, name: &str) -> Result<()> {
        loop {
            let out = self.client.list_objects_v2().bucket(name).send().await.map_err(err("ListObjectsV2"))?;
            if out.contents().is_empty() {
                break;
            }
            for o in out.contents() {
                if let Some(k) = o.key() {
                    let d = self.client.delete_object().bucket(name).key(k).send().await;
                    d.map_err(err("DeleteObject"))?;
                }
            }
        }
        self.client.delete_bucket().bucket(name).send().await.map_err(err("DeleteBucket"))?;
        Ok(())
    }

    async fn buckets(&self) -> Result<Vec<Found>> {
        let out = self.client.list_buckets().send().await.map_err(err("ListBuckets"))?;
        let mut found = Vec::new();
        for b in out.buckets() {
            let Some(name) = b.name().filter(|n| n.starts_with(NAME_PREFIX)) else { continue };
            let tags = match self.client.get_bucket_tagging().bucket(name).send().await.map_err(err("GetBucketTagging"))
            {
                Ok(t) => t.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
                Err(e) if e.code == "NoSuchTagSet" => BTreeMap::new(),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            found.push(Found { id: name.to_string(), name: name.to_string(), tags, parent: None });
        }
        Ok(found)
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let out = match self.client.get_object().bucket(bucket).key(key).send().await.map_err(err("GetObject")) {
            Err(e) if e.code == "NoSuchKey" => return Ok(None),
            other => other?,
        };
        let body = out.body.collect().await.map_err(|e| ApiError::new("GetObject", "Body", e.to_string()))?;
        Ok(Some(body.into_bytes().to_vec()))
    }
}

// ---- Lambda --------------------------------------------------------------------------------

pub struct Lambda {
    pub client: aws_sdk_lambda::Client,
}

#[async_trait]
impl LambdaApi for Lambda {
    async fn create_function(&self, req: &FunctionRequest) -> Result<String> {
        use aws_sdk_lambda::primitives::Blob;
        use aws_sdk_lambda::types::{
            Architecture, Environment, FunctionCode, Runtime, TenancyConfig, TenantIsolationMode,
        };
        let mut call = self
            .client
            .create_function()
            .function_name(&req.name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(&req.role_arn)
            .code(FunctionCode::builder().zip_file(Blob::new(req.zip.as_slice())).build())
            .architectures(Architecture::from(req.architecture.as_str()))
            .memory_size(req.memory_mb)
            .timeout(req.timeout_s)
            .environment(
                Environment::builder()
                    .set_variables(Some(req.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
                    .build(),
            )
            .set_tags(Some(req.tags.iter().cloned().collect::<HashMap<_, _>>()));
        if req.per_tenant {
            let t = TenancyConfig::builder().tenant_isolation_mode(TenantIsolationMode::PerTenant).build();
            call = call.tenancy_config(t.map_err(build_err("tenancy config"))?);
        }
        let out = call.send().await.map_err(err("CreateFunction"))?;
        out.function_arn().map(str::to_string).ok_or_else(|| missing("CreateFunction", "FunctionArn"))
    }

    async fn invoke(&self, name: &str, tenant: Option<&str>, payload: Vec<u8>) -> Result<InvokeReply> {
        let out = self
            .client
            .invoke()
            .function_name(name)
            .set_tenant_id(tenant.map(str::to_string))
            .log_type(aws_sdk_lambda::types::LogType::Tail)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(err("Invoke"))?;
        let log_tail = out
            .log_result()
            .and_then(|b| aws_smithy_types::base64::decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(InvokeReply {
            payload: out.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default(),
            function_error: out.function_error().map(str::to_string),
            log_tail,
        })
    }

    async fn function_state(&self, name: &str) -> Result<FunctionState> {
        let out = self.client.get_function_configuration().function_name(name).send().await;
        let out = out.map_err(err("GetFunctionConfiguration"))?;
        Ok(FunctionState {
            state: out.state().map_or("Active", |s| s.as_str()).to_string(),
            reason: out.state_reason().map(str::to_string),
        })
    }

    async fn put_function_concurrency(&self, name: &str, reserved: u32) -> Result<()> {
        let call = self.client.put_function_concurrency().function_name(name);
        call.reserved_concurrent_executions(reserved as i32).send().await.map_err(err("PutFunctionConcurrency"))?;
        Ok(())
    }

    async fn delete_function(&self, name: &str) -> Result<()> {
        self.client.delete_function().function_name(name).send().await.map_err(err("DeleteFunction"))?;
        Ok(())
    }

    async fn functions(&self) -> Result<Vec<Found>> {
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let out = self.client.list_functions().set_marker(marker).send().await.map_err(err("ListFunctions"))?;
            for f in out.functions() {
                let (Some(name), Some(arn)) = (f.function_name(), f.function_arn()) else { continue };
                let tags = match self.client.list_tags().resource(arn).send().await.map_err(err("ListTags")) {
                    Ok(t) => t.tags().map(|t| t.clone().into_iter().collect()).unwrap_or_default(),
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                found.push(Found { id: name.to_string(), name: name.to_string(), tags, parent: None });
            }
            marker = out.next_marker().map(str::to_string);
            if marker.is_none() {
                return Ok(found);
            }
        }
    }
}

// ---- ECS -----------------------------------------------------------------------------------

pub struct Ecs {
    pub client: aws_sdk_ecs::Client,
}

fn ecs_tags(tags: &Tags) -> Vec<aws_sdk_ecs::types::Tag> {
    tags.iter().map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build()).collect()
}

fn ecs_tag_map(tags: &[aws_sdk_ecs::types::Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

#[async_trait]
impl EcsApi for Ecs {
    async fn create_cluster(&self, name: &str, tags: &Tags) -> Result<String> {
        let out = self.client.create_cluster().cluster_name(name).set_tags(Some(ecs_tags(tags))).send().await;
        let out = out.map_err(err("CreateCluster"))?;
        out.cluster().and_then(|c| c.cluster_arn()).map(str::to_string).ok_or_else(|| missing("CreateCluster", "arn"))
    }

    async fn register_task_definition(&self, req: &TaskDefinitionRequest) -> Result<String> {
        use aws_sdk_ecs::types::*;
        let container = ContainerDefinition::builder()
            .name("tenant-app")
            .image(&req.image)
            .essential(true)
            // The one container takes the whole task size; moto's RunTask also needs these to
            // sum the task's requirements (without them it answers HTTP 500).
            .set_cpu(req.cpu.parse().ok())
            .set_memory(req.memory.parse().ok())
            .set_command(Some(req.command.clone()))
            .port_mappings(PortMapping::builder().container_port(req.port).protocol(TransportProtocol::Tcp).build())
            .set_environment(Some(
                req.environment.iter().map(|(k, v)| KeyValuePair::builder().name(k).value(v).build()).collect(),
            ))
            .build();
        let arch = if req.architecture == "arm64" { CpuArchitecture::Arm64 } else { CpuArchitecture::X8664 };
        let out = self
            .client
            .register_task_definition()
            .family(&req.family)
            .task_role_arn(&req.task_role_arn)
            .set_execution_role_arn(req.execution_role_arn.clone())
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::from(req.launch_type.as_str()))
            .cpu(&req.cpu)
            .memory(&req.memory)
            .runtime_platform(
                RuntimePlatform::builder().cpu_architecture(arch).operating_system_family(OsFamily::Linux).build(),
            )
            .container_definitions(container)
            .set_tags(Some(ecs_tags(&req.tags)))
            .send()
            .await
            .map_err(err("RegisterTaskDefinition"))?;
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_string)
            .ok_or_else(|| missing("RegisterTaskDefinition", "taskDefinitionArn"))
    }

    async fn run_task(&self, req: &TaskRequest) -> Result<String> {
        use aws_sdk_ecs::types::*;
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(req.subnets.clone()))
            .set_security_groups(Some(req.security_groups.clone()))
            .assign_public_ip(if req.public_ip { AssignPublicIp::Enabled } else { AssignPublicIp::Disabled })
            .build()
            .map_err(build_err("awsvpcConfiguration"))?;
        let out = self
            .client
            .run_task()
            .cluster(&req.cluster)
            .task_definition(&req.task_definition)
            .launch_type(LaunchType::from(req.launch_type.as_str()))
            .count(1)
            .network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
            .set_tags(Some(ecs_tags(&req.tags)))
            .send()
            .await
            .map_err(err("RunTask"))?;
        if let Some(f) = out.failures().first() {
            let reason = format!("{} {}", f.reason().unwrap_or_default(), f.detail().unwrap_or_default());
            return Err(ApiError::new("RunTask", "TaskFailure", reason));
        }
        out.tasks().first().and_then(|t| t.task_arn()).map(str::to_string).ok_or_else(|| missing("RunTask", "taskArn"))
    }

    async fn task_state(&self, cluster: &str, task: &str) -> Result<Option<TaskState>> {
        let out = self.client.describe_tasks().cluster(cluster).tasks(task).send().await;
        let out = match out.map_err(err("DescribeTasks")) {
            Err(e) if e.is_not_found() => return Ok(None),
            other => other?,
        };
        Ok(out.tasks().first().map(|t| TaskState {
            last_status: t.last_status().unwrap_or("UNKNOWN").to_string(),
            private_ip: t
                .attachments()
                .iter()
                .flat_map(|a| a.details())
                .find(|d| d.name() == Some("privateIPv4Address"))
                .and_then(|d| d.value())
                .map(str::to_string),
        }))
    }

    async fn stop_task(&self, cluster: &str, task: &str) -> Result<()> {
        let call = self.client.stop_task().cluster(cluster).task(task).reason("isobench teardown");
        call.send().await.map_err(err("StopTask"))?;
        Ok(())
    }

    async fn deregister_task_definition(&self, arn: &str) -> Result<()> {
        let out = self.client.deregister_task_definition().task_definition(arn).send().await;
        out.map_err(err("DeregisterTaskDefinition"))?;
        Ok(())
    }

    async fn delete_cluster(&self, name: &str) -> Result<()> {
        self.client.delete_cluster().cluster(name).send().await.map_err(err("DeleteCluster"))?;
        Ok(())
    }

    async fn clusters(&self) -> Result<Vec<Found>> {
        let arns = self.client.list_clusters().send().await.map_err(err("ListClusters"))?;
        if arns.cluster_arns().is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .describe_clusters()
            .set_clusters(Some(arns.cluster_arns().to_vec()))
            .include(aws_sdk_ecs::types::ClusterField::Tags)
            .send()
            .await
            .map_err(err("DescribeClusters"))?;
        Ok(out
            .clusters()
            .iter()
            .filter(|c| c.status() != Some("INACTIVE"))
            .filter_map(|c| {
                let name = c.cluster_name()?;
                name.starts_with(NAME_PREFIX).then(|| Found {
                    id: name.to_string(),
                    name: name.to_string(),
                    tags: ecs_tag_map(c.tags()),
                    parent: None,
                })
            })
            .collect())
    }

    async fn task_definitions(&self) -> Result<Vec<Found>> {
        let out = self.client.list_task_definitions().family_prefix(NAME_PREFIX).send().await;
        let mut found = Vec::new();
        for arn in out.map_err(err("ListTaskDefinitions"))?.task_definition_arns() {
            let d = self
                .client
                .describe_task_definition()
                .task_definition(arn)
                .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(err("DescribeTaskDefinition"))?;
            if d.task_definition().and_then(|t| t.status()).is_some_and(|s| s.as_str() == "INACTIVE") {
                continue;
            }
            let family = d.task_definition().and_then(|t| t.family()).unwrap_or(arn);
            found.push(Found { id: arn.clone(), name: family.to_string(), tags: ecs_tag_map(d.tags()), parent: None });
        }
        Ok(found)
    }

    async fn tasks(&self, cluster: &str) -> Result<Vec<Found>> {
        let arns = self.client.list_tasks().cluster(cluster).send().await.map_err(err("ListTasks"))?;
        if arns.task_arns().is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns.task_arns().to_vec()))
            .include(aws_sdk_ecs::types::TaskField::Tags)
            .send()
            .await
            .map_err(err("DescribeTasks"))?;
        Ok(out
            .tasks()
            .iter()
            .filter(|t| t.last_status() != Some("STOPPED"))
            .filter_map(|t| {
                Some(Found {
                    id: t.task_arn()?.to_string(),
                    name: cluster.to_string(),
                    tags: ecs_tag_map(t.tags()),
                    parent: Some(cluster.to_string()),
                })
            })
            .collect())
    }

    async fn task_exit(&self, cluster: &str, task: &str) -> Result<Option<TaskExit>> {
        let out = self.client.describe_tasks().cluster(cluster).tasks(task).send().await;
        let out = match out.map_err(err("DescribeTasks")) {
            Err(e) if e.is_not_found() => return Ok(None),
            other => other?,
        };
        Ok(out.tasks().first().map(|t| TaskExit {
            last_status: t.last_status().unwrap_or("UNKNOWN").to_string(),
            stopped_reason: t.stopped_reason().map(str::to_string),
            exit_code: t.containers().iter().find_map(|c| c.exit_code()),
        }))
    }

    async fn register_container_instance(&self, cluster: &str, instance: &str) -> Result<String> {
        // The part of the instance identity document an emulator reads; on AWS the agent
        // registers with the signed document, and the harness never calls this.
        let doc = serde_json::json!({ "instanceId": instance }).to_string();
        let call = self.client.register_container_instance().cluster(cluster).instance_identity_document(doc);
        let out = call.send().await.map_err(err("RegisterContainerInstance"))?;
        out.container_instance()
            .and_then(|c| c.container_instance_arn())
            .map(str::to_string)
            .ok_or_else(|| missing("RegisterContainerInstance", "containerInstanceArn"))
    }

    async fn container_instances(&self, cluster: &str) -> Result<Vec<Found>> {
        let out = self.client.list_container_instances().cluster(cluster).send().await;
        let out = out.map_err(err("ListContainerInstances"))?;
        Ok(out
            .container_instance_arns()
            .iter()
            .map(|arn| Found {
                id: arn.clone(),
                name: cluster.to_string(),
                tags: BTreeMap::new(),
                parent: Some(cluster.to_string()),
            })
            .collect())
    }

    async fn deregister_container_instance(&self, cluster: &str, arn: &str) -> Result<()> {
        let call = self.client.deregister_container_instance().cluster(cluster).container_instance(arn).force(true);
        call.send().await.map_err(err("DeregisterContainerInstance"))?;
        Ok(())
    }
}

// ---- EKS -----------------------------------------------------------------------------------

pub struct Eks {
    pub client: aws_sdk_eks::Client,
    /// Where the token's credentials and region come from.
    pub config: aws_config::SdkConfig,
}

fn eks_tags(tags: &Tags) -> HashMap<String, String> {
    tags.iter().cloned().collect()
}

fn eks_found(name: &str, tags: Option<&HashMap<String, String>>, parent: Option<&str>) -> Found {
    Found {
        id: name.to_string(),
        name: name.to_string(),
        tags: tags.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        parent: parent.map(str::to_string),
    }
}

#[async_trait]
impl EksApi for Eks {
    async fn create_cluster(&self, req: &EksClusterRequest) -> Result<String> {
        use aws_sdk_eks::types::*;
        let vpc = VpcConfigRequest::builder()
            .set_subnet_ids(Some(req.subnets.clone()))
            .endpoint_public_access(true)
            .endpoint_private_access(true)
            .build();
        // API access entries: the creator is the cluster's admin, which the harness needs to
        // apply the tenants' objects; no aws-auth ConfigMap.
        let access = CreateAccessConfigRequest::builder()
            .authentication_mode(AuthenticationMode::Api)
            .bootstrap_cluster_creator_admin_permissions(true)
            .build();
        let out = self
            .client
            .create_cluster()
            .name(&req.name)
            .role_arn(&req.role_arn)
            .resources_vpc_config(vpc)
            .set_version(req.version.clone())
            .access_config(access)
            .set_tags(Some(eks_tags(&req.tags)))
            .send()
            .await
            .map_err(err("CreateCluster"))?;
        out.cluster().and_then(|c| c.arn()).map(str::to_string).ok_or_else(|| missing("CreateCluster", "arn"))
    }

    async fn cluster(&self, name: &str) -> Result<Option<EksCluster>> {
        let out = match self.client.describe_cluster().name(name).send().await.map_err(err("DescribeCluster")) {
            Err(e) if e.is_not_found() => return Ok(None),
            other => other?,
        };
        Ok(out.cluster().map(|c| EksCluster {
            arn: c.arn().unwrap_or_default().to_string(),
            status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            endpoint: c.endpoint().map(str::to_string),
            certificate_authority: c.certificate_authority().and_then(|a| a.data()).map(str::to_string),
            oidc_issuer: c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()).map(str::to_string),
            security_group: c
                .resources_vpc_config()
                .and_then(|v| v.cluster_security_group_id())
                .filter(|g| !g.is_empty())
                .map(str::to_string),
        }))
    }

    async fn delete_cluster(&self, name: &str) -> Result<()> {
        self.client.delete_cluster().name(name).send().await.map_err(err("DeleteCluster"))?;
        Ok(())
    }

    async fn clusters(&self) -> Result<Vec<Found>> {
        let out = self.client.list_clusters().send().await.map_err(err("ListClusters"))?;
        let mut found = Vec::new();
        for name in out.clusters().iter().filter(|n| n.starts_with(NAME_PREFIX)) {
            let d = match self.client.describe_cluster().name(name).send().await.map_err(err("DescribeCluster")) {
                Err(e) if e.is_not_found() => continue,
                other => other?,
            };
            found.push(eks_found(name, d.cluster().and_then(|c| c.tags()), None));
        }
        Ok(found)
    }

    async fn create_nodegroup(&self, req: &NodegroupRequest) -> Result<String> {
        use aws_sdk_eks::types::*;
        let n = req.count as i32;
        let out = self
            .client
            .create_nodegroup()
            .cluster_name(&req.cluster)
            .nodegroup_name(&req.name)
            .node_role(&req.node_role_arn)
            .set_subnets(Some(req.subnets.clone()))
            .instance_types(&req.instance_type)
            .scaling_config(NodegroupScalingConfig::builder().min_size(n).max_size(n).desired_size(n).build())
            .launch_template(LaunchTemplateSpecification::builder().id(&req.launch_template).build())
            .set_labels(Some(req.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            .set_tags(Some(eks_tags(&req.tags)))
            .send()
            .await
            .map_err(err("CreateNodegroup"))?;
        out.nodegroup()
            .and_then(|g| g.nodegroup_arn())
            .map(str::to_string)
            .ok_or_else(|| missing("CreateNodegroup", "nodegroupArn"))
    }

    async fn nodegroup_status(&self, cluster: &str, name: &str) -> Result<Option<String>> {
        let call = self.client.describe_nodegroup().cluster_name(cluster).nodegroup_name(name);
        match call.send().await.map_err(err("DescribeNodegroup")) {
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
            Ok(out) => Ok(out.nodegroup().and_then(|g| g.status()).map(|s| s.as_str().to_string())),
        }
    }

    async fn delete_nodegroup(&self, cluster: &str, name: &str) -> Result<()> {
        let call = self.client.delete_nodegroup().cluster_name(cluster).nodegroup_name(name);
        call.send().await.map_err(err("DeleteNodegroup"))?;
        Ok(())
    }

    async fn nodegroups(&self, cluster: &str) -> Result<Vec<Found>> {
        let out = self.client.list_nodegroups().cluster_name(cluster).send().await.map_err(err("ListNodegroups"))?;
        let mut found = Vec::new();
        for name in out.nodegroups() {
            let call = self.client.describe_nodegroup().cluster_name(cluster).nodegroup_name(name);
            let d = match call.send().await.map_err(err("DescribeNodegroup")) {
                Err(e) if e.is_not_found() => continue,
                other => other?,
            };
            found.push(eks_found(name, d.nodegroup().and_then(|g| g.tags()), Some(cluster)));
        }
        Ok(found)
    }

    async fn create_addon(
        &self,
        cluster: &str,
        name: &str,
        configuration: Option<&str>,
        tags: &Tags,
    ) -> Result<String> {
        let call = self.client.create_addon().cluster_name(cluster).addon_name(name).set_tags(Some(eks_tags(tags)));
        let call = call.set_configuration_values(configuration.map(str::to_string));
        // A cluster made through the API runs the VPC CNI self-managed: the add-on takes it over.
        let call = call.resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite);
        let out = call.send().await.map_err(err("CreateAddon"))?;
        out.addon().and_then(|a| a.addon_arn()).map(str::to_string).ok_or_else(|| missing("CreateAddon", "addonArn"))
    }

    async fn delete_addon(&self, cluster: &str, name: &str) -> Result<()> {
        let call = self.client.delete_addon().cluster_name(cluster).addon_name(name);
        call.send().await.map_err(err("DeleteAddon"))?;
        Ok(())
    }

    async fn addons(&self, cluster: &str) -> Result<Vec<Found>> {
        let out = self.client.list_addons().cluster_name(cluster).send().await.map_err(err("ListAddons"))?;
        let mut found = Vec::new();
        for name in out.addons() {
            let call = self.client.describe_addon().cluster_name(cluster).addon_name(name);
            let d = match call.send().await.map_err(err("DescribeAddon")) {
                Err(e) if e.is_not_found() => continue,
                other => other?,
            };
            found.push(eks_found(name, d.addon().and_then(|a| a.tags()), Some(cluster)));
        }
        Ok(found)
    }

    async fn create_pod_identity_association(&self, req: &PodIdentityRequest) -> Result<String> {
        let out = self
            .client
            .create_pod_identity_association()
            .cluster_name(&req.cluster)
            .namespace(&req.namespace)
            .service_account(&req.service_account)
            .role_arn(&req.role_arn)
            .set_tags(Some(eks_tags(&req.tags)))
            .send()
            .await
            .map_err(err("CreatePodIdentityAssociation"))?;
        out.association()
            .and_then(|a| a.association_id())
            .map(str::to_string)
            .ok_or_else(|| missing("CreatePodIdentityAssociation", "associationId"))
    }

    async fn delete_pod_identity_association(&self, cluster: &str, id: &str) -> Result<()> {
        let call = self.client.delete_pod_identity_association().cluster_name(cluster).association_id(id);
        call.send().await.map_err(err("DeletePodIdentityAssociation"))?;
        Ok(())
    }

    async fn pod_identity_associations(&self, cluster: &str) -> Result<Vec<Found>> {
        let out = self.client.list_pod_identity_associations().cluster_name(cluster).send().await;
        let out = out.map_err(err("ListPodIdentityAssociations"))?;
        let mut found = Vec::new();
        for a in out.associations() {
            let Some(id) = a.association_id() else { continue };
            let call = self.client.describe_pod_identity_association().cluster_name(cluster).association_id(id);
            let d = match call.send().await.map_err(err("DescribePodIdentityAssociation")) {
                Err(e) if e.is_not_found() => continue,
                other => other?,
            };
            let name = format!("{}/{}", a.namespace().unwrap_or_default(), a.service_account().unwrap_or_default());
            let mut f = eks_found(id, d.association().and_then(|x| x.tags()), Some(cluster));
            f.name = name;
            found.push(f);
        }
        Ok(found)
    }

    async fn token(&self, cluster: &str) -> Result<String> {
        use aws_credential_types::provider::ProvideCredentials;
        let provider = self.config.credentials_provider().ok_or_else(|| missing("GetToken", "credentials provider"))?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| ApiError::new("GetToken", "Credentials", e.to_string()))?;
        let region = self.config.region().map(|r| r.to_string()).ok_or_else(|| missing("GetToken", "region"))?;
        crate::tiers::eks::token::token(&creds, &region, cluster, std::time::SystemTime::now())
            .map_err(|e| ApiError::new("GetToken", "Presign", e))
    }
}
