//! `isobench sweep --target aws`: find the tool's resources by enumerating the account (tags,
//! and names with the run id for what a tag query cannot reach), never from a local state
//! file, and remove those of one run or those whose expiry passed.

use crate::api::{Apis, Ec2Kind, Found};
use crate::capability::Capabilities;
use crate::error::ApiError;
use crate::resource::{self, Resource};
use crate::retry::Backoff;
use crate::tags::Selector;

#[derive(Debug, Default, Clone)]
pub struct SweepReport {
    /// What was found (and, unless a dry run, removed).
    pub found: Vec<String>,
    pub removed: Vec<String>,
    /// What could not be removed, or a service that could not be enumerated.
    pub failed: Vec<String>,
    /// Services not enumerated, and why (an emulator without them).
    pub notes: Vec<String>,
}

fn pick(found: Vec<Found>, sel: &Selector) -> impl Iterator<Item = Found> + '_ {
    found.into_iter().filter(move |f| sel.selects(&f.tags, &f.name))
}

/// Every selected resource, in no particular order.
pub async fn find(apis: &Apis, caps: &Capabilities, sel: &Selector) -> (Vec<Resource>, SweepReport) {
    let mut out = Vec::new();
    let mut report = SweepReport::default();
    let mut fail = |what: &str, e: ApiError| report.failed.push(format!("could not list {what}: {e}"));
    if let Some(why) = caps.ecs_unavailable() {
        report.notes.push(format!("ECS not enumerated: {why}"));
    } else {
        match apis.ecs.clusters().await {
            Ok(clusters) => {
                for c in clusters {
                    // A cluster's tasks go with it, whatever their own tags say.
                    let chosen = sel.selects(&c.tags, &c.name);
                    match apis.ecs.tasks(&c.id).await {
                        Ok(tasks) => out.extend(
                            tasks
                                .into_iter()
                                .filter(|t| chosen || sel.selects(&t.tags, &t.name))
                                .map(|t| Resource::Task { cluster: c.id.clone(), arn: t.id }),
                        ),
                        Err(e) => fail("ecs tasks", e),
                    }
                    if chosen {
                        out.push(Resource::Cluster(c.id));
                    }
                }
            }
            Err(e) => fail("ecs clusters", e),
        }
        match apis.ecs.task_definitions().await {
            Ok(f) => out.extend(pick(f, sel).map(|f| Resource::TaskDefinition(f.id))),
            Err(e) => fail("ecs task definitions", e),
        }
    }
    match apis.lambda.functions().await {
        Ok(f) => out.extend(pick(f, sel).map(|f| Resource::Function(f.id))),
        Err(e) => fail("lambda functions", e),
    }
    for kind in [Ec2Kind::Instance, Ec2Kind::SecurityGroup, Ec2Kind::InternetGateway, Ec2Kind::Subnet, Ec2Kind::Vpc] {
        match apis.ec2.tagged(kind).await {
            Ok(found) => {
                for f in pick(found, sel) {
                    match kind {
                        Ec2Kind::Instance => out.push(Resource::Instance(f.id)),
                        Ec2Kind::SecurityGroup => {
                            out.push(Resource::SecurityGroupRules(f.id.clone()));
                            out.push(Resource::SecurityGroup(f.id));
                        }
                        Ec2Kind::InternetGateway => {
                            out.push(Resource::InternetGateway { id: f.id, vpc: f.parent.unwrap_or_default() })
                        }
                        Ec2Kind::Subnet => out.push(Resource::Subnet(f.id)),
                        Ec2Kind::Vpc => out.push(Resource::Vpc(f.id)),
                    }
                }
            }
            Err(e) => fail(&format!("ec2 {kind:?}"), e),
        }
    }
    match apis.iam.instance_profiles().await {
        Ok(f) => out.extend(pick(f, sel).map(|f| Resource::InstanceProfile(f.id))),
        Err(e) => fail("iam instance profiles", e),
    }
    match apis.iam.roles().await {
        Ok(f) => out.extend(pick(f, sel).map(|f| Resource::Role(f.id))),
        Err(e) => fail("iam roles", e),
    }
    match apis.s3.buckets().await {
        Ok(f) => out.extend(pick(f, sel).map(|f| Resource::Bucket(f.id))),
        Err(e) => fail("s3 buckets", e),
    }
    out.sort();
    out.dedup();
    out.sort_by_key(Resource::rank);
    report.found = out.iter().map(Resource::to_string).collect();
    (out, report)
}

/// Finds and (unless `dry_run`) removes the selected resources.
pub async fn sweep(apis: &Apis, caps: &Capabilities, sel: &Selector, dry_run: bool) -> SweepReport {
    let (found, mut report) = find(apis, caps, sel).await;
    if !dry_run && !found.is_empty() {
        let removal = resource::remove_all(apis, found, Backoff::DEFAULT).await;
        report.removed = removal.removed;
        report.failed.extend(removal.failed);
    }
    report
}
