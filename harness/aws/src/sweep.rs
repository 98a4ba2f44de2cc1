//! `isobench sweep --target aws`: find the tool's resources by enumerating the account (tags,
//! and names with the run id for what a tag query cannot reach), never from a local state
//! file, and remove those of one run or those whose expiry passed. A sweep of the expired also
//! lists the runs it left in place, so a resource is never silently skipped.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::api::{Apis, Ec2Kind, Found};
use crate::capability::Capabilities;
use crate::error::ApiError;
use crate::resource::{self, Resource};
use crate::retry::Backoff;
use crate::tags::{EXPIRES_KEY, RUN_KEY, Selector};

type TagMap = BTreeMap<String, String>;

#[derive(Debug, Default, Clone)]
pub struct SweepReport {
    /// What was found (and, unless a dry run, removed).
    pub found: Vec<String>,
    pub removed: Vec<String>,
    /// What could not be removed, or a service that could not be enumerated.
    pub failed: Vec<String>,
    /// Services not enumerated, and why (an emulator without them).
    pub notes: Vec<String>,
    /// For a sweep of the expired: the runs not expired yet, left in place.
    pub live: Vec<LiveRun>,
}

/// The resources of one run whose expiry has not passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRun {
    pub run_id: String,
    /// When the run started, read from its id (`None`: an id without the time).
    pub started: Option<SystemTime>,
    /// The run's `isobench:expires-at` tag (`unknown` when missing or unreadable).
    pub expires_at: String,
    pub resources: Vec<String>,
}

impl LiveRun {
    /// The command that removes this run's resources.
    pub fn command(&self) -> String {
        format!("isobench sweep --target aws --run {}", self.run_id)
    }

    /// One line: the run, how many resources, its age and its expiry.
    pub fn describe(&self, now: SystemTime) -> String {
        let age = self
            .started
            .and_then(|s| now.duration_since(s).ok())
            .map_or("age unknown".into(), |d| format!("started {} ago", minutes(d)));
        let left = humantime::parse_rfc3339(&self.expires_at)
            .ok()
            .and_then(|at| at.duration_since(now).ok())
            .map_or(String::new(), |d| format!(" (in {})", minutes(d)));
        format!("run {}: {} resource(s), {age}, expires {}{left}", self.run_id, self.resources.len(), self.expires_at)
    }
}

fn minutes(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs() / 60 * 60))
}

/// The start time in a run id such as `20261129T051500Z-3fa9c2`.
fn started(run_id: &str) -> Option<SystemTime> {
    let t = run_id.get(..16)?;
    let text = format!("{}-{}-{}T{}:{}:{}Z", &t[..4], &t[4..6], &t[6..8], &t[9..11], &t[11..13], &t[13..15]);
    humantime::parse_rfc3339(&text).ok()
}

/// Groups resources by their run id, oldest run first.
fn live_runs(found: Vec<(Resource, TagMap)>) -> Vec<LiveRun> {
    let mut runs: BTreeMap<String, LiveRun> = BTreeMap::new();
    for (r, tags) in found {
        let id = tags.get(RUN_KEY).cloned().unwrap_or_else(|| "(no run id)".into());
        let run = runs.entry(id.clone()).or_insert_with(|| LiveRun {
            started: started(&id),
            run_id: id,
            expires_at: tags.get(EXPIRES_KEY).cloned().unwrap_or_else(|| "unknown".into()),
            resources: Vec::new(),
        });
        run.resources.push(r.to_string());
    }
    runs.into_values().collect()
}

fn pick(found: Vec<Found>, sel: &Selector) -> impl Iterator<Item = (String, TagMap)> + '_ {
    found.into_iter().filter(move |f| sel.selects(&f.tags, &f.name)).map(|f| (f.id, f.tags))
}

/// Every selected resource, in removal order.
pub async fn find(apis: &Apis, caps: &Capabilities, sel: &Selector) -> (Vec<Resource>, SweepReport) {
    let (found, report) = find_tagged(apis, caps, sel).await;
    (found.into_iter().map(|(r, _)| r).collect(), report)
}

/// Every selected resource with its tags, in removal order.
async fn find_tagged(apis: &Apis, caps: &Capabilities, sel: &Selector) -> (Vec<(Resource, TagMap)>, SweepReport) {
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
                        Ok(tasks) => {
                            out.extend(tasks.into_iter().filter(|t| chosen || sel.selects(&t.tags, &t.name)).map(|t| {
                                let tags = if t.tags.is_empty() { c.tags.clone() } else { t.tags };
                                (Resource::Task { cluster: c.id.clone(), arn: t.id }, tags)
                            }))
                        }
                        Err(e) => fail("ecs tasks", e),
                    }
                    // Container instances carry no tags of their own: they go with their cluster.
                    if chosen {
                        match apis.ecs.container_instances(&c.id).await {
                            Ok(ci) => out.extend(ci.into_iter().map(|i| {
                                (Resource::ContainerInstance { cluster: c.id.clone(), arn: i.id }, c.tags.clone())
                            })),
                            Err(e) => fail("ecs container instances", e),
                        }
                    }
                    if chosen {
                        out.push((Resource::Cluster(c.id), c.tags));
                    }
                }
            }
            Err(e) => fail("ecs clusters", e),
        }
        match apis.ecs.task_definitions().await {
            Ok(f) => out.extend(pick(f, sel).map(|(id, t)| (Resource::TaskDefinition(id), t))),
            Err(e) => fail("ecs task definitions", e),
        }
    }
    if let Some(why) = caps.eks_unavailable() {
        report.notes.push(format!("EKS not enumerated: {why}"));
    } else {
        match apis.eks.clusters().await {
            Ok(clusters) => {
                for c in clusters {
                    out.extend(eks_cluster(apis, sel, c, &mut fail).await);
                }
            }
            Err(e) => fail("eks clusters", e),
        }
    }
    match apis.lambda.functions().await {
        Ok(f) => out.extend(pick(f, sel).map(|(id, t)| (Resource::Function(id), t))),
        Err(e) => fail("lambda functions", e),
    }
    for kind in [
        Ec2Kind::Instance,
        Ec2Kind::SecurityGroup,
        Ec2Kind::InternetGateway,
        Ec2Kind::Subnet,
        Ec2Kind::Vpc,
        Ec2Kind::LaunchTemplate,
    ] {
        match apis.ec2.tagged(kind).await {
            Ok(found) => {
                for f in found.into_iter().filter(|f| sel.selects(&f.tags, &f.name)) {
                    let t = f.tags;
                    match kind {
                        Ec2Kind::Instance => out.push((Resource::Instance(f.id), t)),
                        Ec2Kind::SecurityGroup => {
                            out.push((Resource::SecurityGroupRules(f.id.clone()), t.clone()));
                            out.push((Resource::SecurityGroup(f.id), t));
                        }
                        Ec2Kind::InternetGateway => {
                            out.push((Resource::InternetGateway { id: f.id, vpc: f.parent.unwrap_or_default() }, t))
                        }
                        Ec2Kind::Subnet => out.push((Resource::Subnet(f.id), t)),
                        Ec2Kind::Vpc => out.push((Resource::Vpc(f.id), t)),
                        Ec2Kind::LaunchTemplate => out.push((Resource::LaunchTemplate(f.id), t)),
                    }
                }
            }
            Err(e) => fail(&format!("ec2 {kind:?}"), e),
        }
    }
    match apis.iam.instance_profiles().await {
        Ok(f) => out.extend(pick(f, sel).map(|(id, t)| (Resource::InstanceProfile(id), t))),
        Err(e) => fail("iam instance profiles", e),
    }
    match apis.iam.roles().await {
        Ok(f) => out.extend(pick(f, sel).map(|(id, t)| (Resource::Role(id), t))),
        Err(e) => fail("iam roles", e),
    }
    match apis.iam.oidc_providers().await {
        Ok(f) => out.extend(pick(f, sel).map(|(id, t)| (Resource::OidcProvider(id), t))),
        Err(e) => fail("iam oidc providers", e),
    }
    match apis.s3.buckets().await {
        Ok(f) => out.extend(pick(f, sel).map(|(id, t)| (Resource::Bucket(id), t))),
        Err(e) => fail("s3 buckets", e),
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out.sort_by_key(|(r, _)| r.rank());
    report.found = out.iter().map(|(r, _)| r.to_string()).collect();
    (out, report)
}

/// An EKS cluster's resources the selector chooses: a chosen cluster takes its node groups,
/// add-ons and pod identity associations with it (add-ons and associations carry the run's
/// tags too, but a cluster's deletion removes them whatever they say); in a cluster not
/// chosen, those whose own tags are.
async fn eks_cluster(
    apis: &Apis,
    sel: &Selector,
    c: Found,
    fail: &mut impl FnMut(&str, ApiError),
) -> Vec<(Resource, TagMap)> {
    let chosen = sel.selects(&c.tags, &c.name);
    let mut out = Vec::new();
    let take = |f: &Found| chosen || sel.selects(&f.tags, &f.name);
    let tags = |f: &Found| if f.tags.is_empty() { c.tags.clone() } else { f.tags.clone() };
    match apis.eks.pod_identity_associations(&c.id).await {
        Ok(found) => out.extend(
            found
                .iter()
                .filter(|f| take(f))
                .map(|f| (Resource::PodIdentityAssociation { cluster: c.id.clone(), id: f.id.clone() }, tags(f))),
        ),
        // An emulator without the operation (moto 4.2) has none to remove.
        Err(e) if e.is_unsupported() => {}
        Err(e) => fail("eks pod identity associations", e),
    }
    match apis.eks.addons(&c.id).await {
        Ok(found) => out.extend(
            found
                .iter()
                .filter(|f| take(f))
                .map(|f| (Resource::Addon { cluster: c.id.clone(), name: f.id.clone() }, tags(f))),
        ),
        Err(e) if e.is_unsupported() => {}
        Err(e) => fail("eks addons", e),
    }
    match apis.eks.nodegroups(&c.id).await {
        Ok(found) => out.extend(
            found
                .iter()
                .filter(|f| take(f))
                .map(|f| (Resource::Nodegroup { cluster: c.id.clone(), name: f.id.clone() }, tags(f))),
        ),
        Err(e) => fail("eks node groups", e),
    }
    if chosen {
        out.push((Resource::EksCluster(c.id), c.tags));
    }
    out
}

/// Finds and (unless `dry_run`) removes the selected resources. A sweep of the expired also
/// lists the tool's runs not expired yet (a second enumeration), which it leaves in place.
pub async fn sweep(apis: &Apis, caps: &Capabilities, sel: &Selector, dry_run: bool) -> SweepReport {
    let (found, mut report) = find(apis, caps, sel).await;
    if let Selector::Expired(now) = sel {
        let (unexpired, r) = find_tagged(apis, caps, &Selector::Unexpired(*now)).await;
        report.failed.extend(r.failed.into_iter().filter(|f| !report.failed.contains(f)).collect::<Vec<_>>());
        report.live = live_runs(unexpired);
    }
    if !dry_run && !found.is_empty() {
        let removal = resource::remove_all(apis, found, Backoff::DEFAULT).await;
        report.removed = removal.removed;
        report.failed.extend(removal.failed);
    }
    report
}
