//! Unit tests of the deploy, teardown and sweep logic against the in-memory [`Fake`] account.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use isobench_core::backend::Phase;
use isobench_core::plan::{Overrides, Plan};
use isobench_core::scenario::Scenario;
use isobench_core::{Endpoint, TierId};

use crate::capability::{Capabilities, Emulator};
use crate::deployer::Deployer;
use crate::fake::Fake;
use crate::retry::Backoff;
use crate::tags::{EXPIRES_KEY, RUN_KEY, Selector, TOOL_KEY};

const FAST: Backoff =
    Backoff { first: Duration::from_millis(1), max: Duration::from_millis(2), budget: Duration::from_millis(200) };

fn plan(tiers: &str, aws: &str) -> Plan {
    plan_for(2, tiers, aws)
}

fn plan_for(tenants: u32, tiers: &str, aws: &str) -> Plan {
    let src = format!(
        "format_version = 1\nname = \"t\"\n[run]\nduration = \"10s\"\nrate = 10\n[tenants]\ncount = {tenants}\n{tiers}\n{aws}"
    );
    let s = Scenario::parse(&src, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    Plan::new("20270101T000000Z-abcdef".into(), s, "h".into(), &Overrides::default())
}

const EC2: &str = "[[tier]]\nid = \"silo-ec2\"\ninstance_type = \"t3.micro\"\n[[tier]]\nid = \"shared-ec2\"\ninstance_type = \"t3.micro\"\n";
const LAMBDA: &str = "[[tier]]\nid = \"lambda-per-tenant\"\n[[tier]]\nid = \"lambda-tenant-isolation\"\n";
const ECS: &str = "[[tier]]\nid = \"ecs-awsvpc\"\nlaunch_type = \"fargate\"\n";

fn deployer(fake: &Fake, p: &Plan) -> Deployer {
    let mut d =
        Deployer::new(fake.apis(), &p.run_id, p.scenario.aws.clone(), Capabilities::cloud(), Arc::new(b"elf".to_vec()));
    d.ctx.backoff = FAST;
    d
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn ec2_tiers_deploy_tagged_and_tear_down_in_dependency_order() {
    let fake = Fake::new();
    let p = plan(EC2, "");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        // Instances answer nowhere in the fake: treat EC2 as an emulator without a data plane.
        d.ctx.caps.ec2 = Emulator::Moto { url: "http://fake".into() };
        let silo = d.deploy(&p.tiers[0]).await.unwrap();
        assert_eq!(silo.instances.len(), 2);
        assert_eq!(fake.count("instance"), 2);
        assert_eq!(fake.count("vpc"), 1);
        assert_eq!(fake.count("role"), 2);
        assert_eq!(
            d.ctx.skipped[&TierId::SiloEc2].iter().map(|s| s.phase).collect::<Vec<_>>(),
            [Phase::Traffic, Phase::Probes]
        );
        let shared = d.deploy(&p.tiers[1]).await.unwrap();
        assert_eq!(shared.instances.len(), 1);
        assert_eq!(shared.targets.len(), 2, "one instance serves both tenants");
        // Everything carries the run id, the tool and an expiry.
        for (id, o) in fake.state.lock().unwrap().objects.iter().filter(|(_, o)| o.kind != "object") {
            assert_eq!(o.tags.get(RUN_KEY).map(String::as_str), Some("20270101T000000Z-abcdef"), "{id}");
            assert_eq!(o.tags.get(TOOL_KEY).map(String::as_str), Some("isobench"), "{id}");
            assert!(o.tags.contains_key(EXPIRES_KEY), "{id}");
        }
        // Silo groups admit the harness group on the workload port.
        let rules = fake.state.lock().unwrap().rules.clone();
        assert!(rules.values().flatten().all(|r| r.protocol == "tcp" && r.from_port == 8080));
        // A tier's teardown leaves the run's network; the last one removes everything.
        let r = d.teardown(Some(TierId::SiloEc2)).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(fake.count("instance"), 1);
        assert_eq!(fake.count("vpc"), 1);
        let r = d.teardown(None).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(fake.kinds().is_empty(), "left: {:?}", fake.kinds());
        // Instances went before their groups, groups before the VPC, profiles before roles.
        let calls = fake.calls();
        let pos = |op: &str| calls.iter().rposition(|c| c == op).unwrap();
        assert!(pos("TerminateInstances") < pos("DeleteSecurityGroup"));
        assert!(pos("DeleteSecurityGroup") < pos("DeleteVpc"));
        assert!(pos("DeleteInstanceProfile") < pos("DeleteRole"));
        // Idempotent: nothing left to do, nothing fails.
        assert!(d.teardown(None).await.failed.is_empty());
    });
}

#[test]
fn teardown_counts_already_gone_as_done_and_retries_throttling() {
    let fake = Fake::new();
    let p = plan(LAMBDA, "");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        fake.state.lock().unwrap().throttle.insert("CreateFunction", 3);
        d.deploy(&p.tiers[0]).await.unwrap();
        assert_eq!(fake.count("function"), 2);
        // Someone deleted one function by hand; teardown still succeeds.
        let before = fake.count("function");
        fake.state.lock().unwrap().objects.retain(|k, o| !(o.kind == "function" && k.ends_with('1')));
        assert_eq!(fake.count("function"), before - 1);
        fake.state.lock().unwrap().throttle.insert("DeleteFunction", 2);
        let r = d.teardown(None).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(fake.kinds().is_empty(), "left: {:?}", fake.kinds());
    });
}

#[test]
fn lambda_tiers_make_per_tenant_functions_and_report_what_cannot_run() {
    let fake = Fake::new();
    fake.state.lock().unwrap().function_state = "Failed".into();
    let p = plan(LAMBDA, "");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        let per = d.deploy(&p.tiers[0]).await.unwrap();
        assert_eq!(per.instances.len(), 2);
        let iso = d.deploy(&p.tiers[1]).await.unwrap();
        assert_eq!(iso.instances.len(), 1);
        let objects = fake.state.lock().unwrap().objects.clone();
        let isolated = objects.iter().find(|(k, _)| k.ends_with("-isolated")).unwrap().1;
        assert_eq!(isolated.extra["per_tenant"], "true");
        let per_tenant_roles: Vec<_> = objects
            .values()
            .filter(|o| o.kind == "function" && o.extra["per_tenant"] == "false")
            .map(|o| &o.extra["role"])
            .collect();
        assert_eq!(per_tenant_roles.len(), 2);
        assert_ne!(per_tenant_roles[0], per_tenant_roles[1], "each tenant's function has its own role");
        let skipped = &d.ctx.skipped[&TierId::LambdaTenantIsolation];
        assert!(skipped.iter().any(|s| s.phase == Phase::Traffic && s.reason.contains("Failed")), "{skipped:?}");
        // The isolation tier's invokes carry the tenant id.
        let Endpoint::Function(f) = &iso.targets[1].endpoint else { panic!("a function") };
        let r = f.invoke(&iso.targets[1].tenant, b"{}".to_vec()).await;
        assert_eq!(r.billed_ms, Some(1));
        d.teardown(None).await;
        assert!(fake.kinds().is_empty());
    });
}

#[test]
fn ecs_tasks_get_their_own_definition_role_and_groups() {
    let fake = Fake::new();
    let p = plan(ECS, "");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        d.ctx.caps.ecs = Emulator::Moto { url: "http://fake".into() };
        let dep = d.deploy(&p.tiers[0]).await.unwrap();
        assert_eq!(dep.instances.len(), 2);
        assert_eq!(fake.count("taskdef"), 2);
        assert_eq!(fake.count("cluster"), 1);
        let r = d.teardown(None).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(fake.kinds().is_empty(), "left: {:?}", fake.kinds());
    });
}

#[test]
fn sweep_finds_by_tag_only_the_selected_run() {
    let fake = Fake::new();
    let p = plan(EC2, "");
    let mut mine = deployer(&fake, &p);
    let other_plan = Plan::new("20270101T000000Z-999999".into(), p.scenario.clone(), "h".into(), &Overrides::default());
    let mut other = deployer(&fake, &other_plan);
    rt().block_on(async {
        mine.ctx.caps.ec2 = Emulator::Moto { url: "http://fake".into() };
        other.ctx.caps.ec2 = Emulator::Moto { url: "http://fake".into() };
        mine.deploy(&p.tiers[0]).await.unwrap();
        other.deploy(&other_plan.tiers[1]).await.unwrap();
        let before = fake.kinds().len();
        let caps = Capabilities::cloud();
        let sel = Selector::Run(p.run_id.clone());
        let dry = crate::sweep::sweep(&fake.apis(), &caps, &sel, true).await;
        assert!(!dry.found.is_empty());
        assert_eq!(fake.kinds().len(), before, "a dry run removes nothing");
        let r = crate::sweep::sweep(&fake.apis(), &caps, &sel, false).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        // The other run is untouched; nothing of this run is left.
        let left = fake.state.lock().unwrap().objects.clone();
        assert!(!left.is_empty());
        assert!(left.values().filter(|o| o.kind != "object").all(|o| o.tags[RUN_KEY] == other_plan.run_id));
        assert!(crate::sweep::find(&fake.apis(), &caps, &sel).await.0.is_empty());
        // Expired: nothing yet; after the lifetime, the other run's resources.
        let now = SystemTime::now();
        assert!(crate::sweep::find(&fake.apis(), &caps, &Selector::Expired(now)).await.0.is_empty());
        let later = Selector::Expired(now + Duration::from_secs(3 * 3600));
        let r = crate::sweep::sweep(&fake.apis(), &caps, &later, false).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(fake.kinds().is_empty(), "left: {:?}", fake.kinds());
    });
}

#[test]
fn guard_rails_name_the_cap_that_is_exceeded() {
    let p = plan(EC2, "[aws]\nmax_instances = 2\nmax_lifetime = \"15m\"\n");
    let rails = crate::plan::check(&p, Some(1.0));
    let text: Vec<String> = rails.iter().map(ToString::to_string).collect();
    assert_eq!(rails.len(), 2, "{text:?}");
    assert!(text[0].contains("3 EC2 instances") && text[0].contains("max_instances = 2"), "{text:?}");
    assert!(text[1].contains("max_lifetime"), "{text:?}");
    let p = plan(LAMBDA, "[aws]\nmax_cost_usd = 0.5\n");
    let rails = crate::plan::check(&p, Some(0.75));
    assert!(matches!(rails.as_slice(), [crate::plan::GuardRail::Cost { .. }]), "{rails:?}");
    assert!(crate::plan::check(&p, Some(0.25)).is_empty());
}

#[test]
fn the_plan_lists_every_resource() {
    let p = plan(&(EC2.to_string() + LAMBDA + ECS), "");
    let listed = crate::plan::resources(&p);
    let count = |kind: &str| listed.iter().filter(|r| r.kind == kind).count();
    assert_eq!(count("ec2 instance"), 3);
    assert_eq!(count("lambda function"), 3);
    assert_eq!(count("ecs task"), 2);
    assert_eq!(count("ec2 vpc"), 1);
    assert_eq!(crate::plan::counts(&p), crate::plan::Counts { instances: 3, tasks: 2, functions: 3 });
}

/// Lambda tiers with the settings this backend does not implement: `code` on the first (beside
/// reserved concurrency, which it does), a VPC on the second.
fn lambda_unsupported() -> String {
    let code = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
    format!(
        "[[tier]]\nid = \"lambda-per-tenant\"\ncode = \"{code}\"\nreserved_concurrency = 5\n\
         [[tier]]\nid = \"lambda-tenant-isolation\"\n[tier.vpc]\nsubnets = [\"private\"]\n"
    )
}

#[test]
fn lambda_settings_the_backend_lacks_are_refused_at_their_fields() {
    let mut p = plan(&lambda_unsupported(), "");
    let refused = crate::plan::refused(&p);
    let fields: Vec<&str> = refused.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(fields, ["tier[0].code", "tier[1].vpc"]);
    for r in &refused {
        assert!(r.message.contains("the AWS backend does not"), "{r:?}");
        assert!(r.accepted.as_deref().unwrap_or("").contains("--target aws: remove"), "{r:?}");
    }
    // `--tiers` narrows the plan; the field is still the tier's place in the file.
    p.tiers.retain(|t| t.tier == TierId::LambdaTenantIsolation);
    let fields: Vec<String> = crate::plan::refused(&p).into_iter().map(|r| r.field).collect();
    assert_eq!(fields, ["tier[1].vpc"]);
    assert!(crate::plan::refused(&plan(LAMBDA, "")).is_empty());
}

#[test]
fn a_refused_lambda_tier_calls_nothing_in_the_account() {
    let fake = Fake::new();
    let p = plan(&lambda_unsupported(), "");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        for (tp, field) in p.tiers.iter().zip(["`code`", "`vpc`"]) {
            let e = d.deploy(tp).await.expect_err("refused").to_string();
            assert!(e.contains(field) && e.contains("does not"), "{e}");
        }
    });
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    assert!(fake.kinds().is_empty() && d.ctx.ledger.is_empty());
}

#[test]
fn emulator_only_lambda_settings_are_listed_as_ignored() {
    assert!(crate::plan::ignored(&plan(LAMBDA, "")).is_empty());
    let tiers = LAMBDA.replace(
        "id = \"lambda-per-tenant\"\n",
        "id = \"lambda-per-tenant\"\nkeep_alive = \"5m..15m\"\nmax_lifetime = \"6h\"\nconcurrency = 50\n",
    );
    let p = plan(&tiers, "[local]\nlambda_account_concurrency = 500\n");
    assert_eq!(
        crate::plan::ignored(&p),
        [
            "lambda-per-tenant: keep_alive = \"5m..15m\", max_lifetime = \"6h\", concurrency = 50",
            "[local]: lambda_account_concurrency = 500 (the account's own quota applies)",
        ]
    );
    // Ignored, not refused: the plan goes ahead.
    assert!(crate::plan::refused(&p).is_empty());
}

#[test]
fn teardown_removes_what_a_create_with_a_lost_answer_made() {
    let fake = Fake::new();
    let p = plan(EC2, "");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        d.ctx.caps.ec2 = Emulator::Moto { url: "http://fake".into() };
        fake.state.lock().unwrap().lose_answer.insert("RunInstances", 1);
        d.deploy(&p.tiers[0]).await.expect_err("the answer was lost");
        assert_eq!(fake.count("instance"), 1, "the instance exists");
        assert!(!d.ctx.ledger.iter().any(|(_, r)| r.is_compute()), "but the ledger never saw it");
        let r = d.teardown(None).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(fake.kinds().is_empty(), "left: {:?}", fake.kinds());
        let by_tag: Vec<_> = r.removed.iter().filter(|x| x.ends_with(crate::deployer::FOUND_BY_TAG)).collect();
        assert_eq!(by_tag.len(), 1, "{:?}", r.removed);
        assert!(by_tag[0].starts_with("ec2 instance "), "{by_tag:?}");
        // The tag query ran after the ledger was read, and found only what the ledger lacked.
        assert!(fake.calls().iter().any(|c| c == "TerminateInstances"));
    });
}

#[test]
fn what_the_tag_query_finds_but_cannot_remove_is_left_behind() {
    let fake = Fake::new();
    let p = plan(EC2, "");
    let mut d = deployer(&fake, &p);
    d.ctx.caps.ec2 = Emulator::Moto { url: "http://fake".into() };
    rt().block_on(async {
        fake.state.lock().unwrap().lose_answer.insert("RunInstances", 1);
        d.deploy(&p.tiers[0]).await.expect_err("the answer was lost");
    });
    fake.state.lock().unwrap().refuse.insert("TerminateInstances");
    // Through the backend: what the summary and the exit code (4) are made from.
    let mut backend = crate::AwsBackend::from_deployer(d);
    let report = isobench_core::Backend::teardown_all(&mut backend).unwrap();
    let stuck: Vec<_> = report.left_behind.iter().filter(|x| x.contains(crate::deployer::FOUND_BY_TAG)).collect();
    assert_eq!(stuck.len(), 1, "{:?}", report.left_behind);
    assert!(stuck[0].starts_with("ec2 instance ") && stuck[0].contains("UnauthorizedOperation"), "{stuck:?}");
    assert_eq!(fake.count("instance"), 1);
}

#[test]
fn a_sweep_of_the_expired_lists_the_runs_it_leaves() {
    let fake = Fake::new();
    let p = plan(EC2, "");
    let mut mine = deployer(&fake, &p);
    let other_plan = Plan::new("20270101T010000Z-999999".into(), p.scenario.clone(), "h".into(), &Overrides::default());
    let mut other = deployer(&fake, &other_plan);
    rt().block_on(async {
        mine.ctx.caps.ec2 = Emulator::Moto { url: "http://fake".into() };
        other.ctx.caps.ec2 = Emulator::Moto { url: "http://fake".into() };
        mine.deploy(&p.tiers[0]).await.unwrap();
        other.deploy(&other_plan.tiers[1]).await.unwrap();
        let before = fake.kinds().len();
        let caps = Capabilities::cloud();
        let r = crate::sweep::sweep(&fake.apis(), &caps, &Selector::Expired(SystemTime::now()), false).await;
        assert!(r.found.is_empty() && r.failed.is_empty(), "{r:?}");
        assert_eq!(fake.kinds().len(), before, "nothing unexpired is removed");
        let ids: Vec<&str> = r.live.iter().map(|l| l.run_id.as_str()).collect();
        assert_eq!(ids, [p.run_id.as_str(), other_plan.run_id.as_str()]);
        for l in &r.live {
            let (of_run, _) = crate::sweep::find(&fake.apis(), &caps, &Selector::Run(l.run_id.clone())).await;
            assert_eq!(l.resources.len(), of_run.len(), "{l:?}");
            assert_eq!(l.command(), format!("isobench sweep --target aws --run {}", l.run_id));
            assert!(humantime::parse_rfc3339(&l.expires_at).is_ok(), "{l:?}");
        }
        let at = humantime::parse_rfc3339("2027-01-01T02:30:00Z").unwrap();
        let line = r.live[0].describe(at);
        assert!(
            line.starts_with(&format!(
                "run {}: {} resource(s), started 2h 30m ago, expires ",
                p.run_id,
                r.live[0].resources.len()
            )),
            "{line}"
        );
        // Once expired, the same runs are swept and none is listed.
        let later = SystemTime::now() + Duration::from_secs(3 * 3600);
        let r = crate::sweep::sweep(&fake.apis(), &caps, &Selector::Expired(later), true).await;
        assert!(r.live.is_empty() && !r.found.is_empty(), "{r:?}");
    });
}

const ECS_EC2: &str = "[[tier]]\nid = \"ecs-awsvpc\"\nlaunch_type = \"ec2\"\n\
                       [tier.container_instance]\nblock_imds = true\ninstance_type = \"m5.large\"\n";

/// Both services as emulators without a data plane: nothing answers in the fake account.
fn no_data_plane(d: &mut Deployer) {
    d.ctx.caps.ec2 = Emulator::Moto { url: "http://fake".into() };
    d.ctx.caps.ecs = Emulator::Moto { url: "http://fake".into() };
}

fn extra(fake: &Fake, kind: &str, key: &str) -> Vec<String> {
    let s = fake.state.lock().unwrap();
    s.objects.values().filter(|o| o.kind == kind).map(|o| o.extra.get(key).cloned().unwrap_or_default()).collect()
}

#[test]
fn the_ec2_launch_type_starts_container_instances_within_eni_limits_and_removes_them() {
    // 5 tasks on m5.large: 3 network interfaces, so 2 awsvpc tasks an instance and 3 instances.
    let fake = Fake::new();
    let p = plan_for(5, ECS_EC2, "");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        no_data_plane(&mut d);
        let dep = d.deploy(&p.tiers[0]).await.unwrap();
        assert_eq!(dep.instances.len(), 5, "one task per tenant");
        assert_eq!(fake.count("instance"), 3);
        assert_eq!(fake.count("containerinstance"), 3);
        assert_eq!(fake.count("profile"), 1);
        let cluster = d.ctx.name("ecs");
        for ud in extra(&fake, "instance", "user_data") {
            assert!(ud.contains("/etc/ecs/ecs.config"), "{ud}");
            assert!(ud.contains(&format!("ECS_CLUSTER={cluster}\n")), "{ud}");
            assert!(ud.contains("ECS_AWSVPC_BLOCK_IMDS=true\n"), "{ud}");
        }
        assert_eq!(extra(&fake, "instance", "instance_type"), ["m5.large"; 3]);
        // The emulator's stand-in image (on AWS: resolve:ssm:), IMDSv1 as `http_tokens` says.
        assert_eq!(extra(&fake, "instance", "image"), ["ami-al2023"; 3]);
        assert_eq!(extra(&fake, "instance", "imds_v1"), ["true"; 3]);
        assert!(extra(&fake, "role", "policy").contains(&crate::tiers::ecs::CONTAINER_INSTANCE_POLICY.to_string()));
        assert_eq!(extra(&fake, "taskdef", "launch_type"), ["EC2"; 5]);
        // Placed within the limit: no container instance holds more than 2 tasks.
        let hosts = extra(&fake, "task", "container_instance");
        assert_eq!(hosts.len(), 5);
        for h in &hosts {
            assert!(hosts.iter().filter(|x| *x == h).count() <= 2, "{hosts:?}");
        }
        // The tag query finds the container instances through their cluster.
        let (found, _) = crate::sweep::find(&fake.apis(), &d.ctx.caps, &Selector::Run(p.run_id.clone())).await;
        let registered = found.iter().filter(|r| matches!(r, crate::resource::Resource::ContainerInstance { .. }));
        assert_eq!(registered.count(), 3);
        let r = d.teardown(None).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(fake.kinds().is_empty(), "left: {:?}", fake.kinds());
        let calls = fake.calls();
        let pos = |op: &str| calls.iter().rposition(|c| c == op).unwrap();
        assert!(pos("StopTask") < pos("DeregisterContainerInstance"));
        assert!(pos("StopTask") < pos("TerminateInstances"));
        assert!(pos("DeregisterContainerInstance") < pos("DeleteCluster"));
        assert!(pos("TerminateInstances") < pos("DeleteInstanceProfile"));
        assert!(pos("DeleteInstanceProfile") < pos("DeleteRole"));
        assert!(crate::sweep::find(&fake.apis(), &d.ctx.caps, &Selector::Run(p.run_id.clone())).await.0.is_empty());
    });
}

#[test]
fn the_plan_shows_and_counts_container_instances() {
    let p = plan_for(5, ECS_EC2, "[aws]\nmax_instances = 2\n");
    let listed = crate::plan::resources(&p);
    let instances: Vec<_> = listed.iter().filter(|r| r.kind == "ec2 instance").collect();
    assert_eq!(instances.len(), 3, "{listed:?}");
    for i in &instances {
        for part in ["m5.large", "up to 2 awsvpc tasks", "network interfaces 3 − 1", "ECS_AWSVPC_BLOCK_IMDS=true"] {
            assert!(i.name.contains(part), "{part}: {}", i.name);
        }
        assert!(i.name.contains("/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"), "{}", i.name);
    }
    assert!(listed.iter().any(|r| r.kind == "iam role" && r.name.contains("AmazonEC2ContainerServiceforEC2Role")));
    assert!(!listed.iter().any(|r| r.kind.contains("not supported")));
    assert_eq!(crate::plan::counts(&p), crate::plan::Counts { instances: 3, tasks: 5, functions: 0 });
    let rails: Vec<String> = crate::plan::check(&p, None).iter().map(ToString::to_string).collect();
    assert!(rails.iter().any(|r| r.contains("3 EC2 instances")), "{rails:?}");
    // Fargate starts none.
    assert_eq!(crate::plan::counts(&plan_for(5, ECS, "")).instances, 0);
}

#[test]
fn a_container_instance_of_the_other_architecture_is_refused_before_any_call() {
    let fake = Fake::new();
    let p = plan(ECS_EC2, "[aws]\narchitecture = \"arm64\"\n");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        no_data_plane(&mut d);
        let e = d.deploy(&p.tiers[0]).await.expect_err("refused").to_string();
        assert!(e.contains("runs x86_64 but the run's workload binary is for arm64"), "{e}");
    });
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    let refused = crate::plan::refused(&p);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].field, "tier[0].container_instance.instance_type");
}

#[test]
fn a_tier_of_another_architecture_than_the_workload_binary_is_refused_at_its_field() {
    // The run's binary is x86_64 ([aws] default); the second tier asks for arm64.
    let tiers = "[[tier]]\nid = \"lambda-shared\"\n[[tier]]\nid = \"lambda-per-tenant\"\narchitecture = \"arm64\"\n";
    let p = plan(tiers, "");
    let refused = crate::plan::refused(&p);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].field, "tier[1].architecture");
    assert!(refused[0].message.contains("runs arm64 but the run's workload binary is for x86_64"), "{refused:?}");
    let accepted = refused[0].accepted.clone().unwrap_or_default();
    assert!(accepted.contains("[aws] architecture = \"arm64\"") && accepted.contains("aarch64-unknown-linux-musl"));
    // A library caller that skips the check is refused before anything is created.
    let fake = Fake::new();
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        let e = d.deploy(&p.tiers[1]).await.expect_err("refused").to_string();
        assert!(e.contains("arm64"), "{e}");
    });
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    // With the run on arm64 the same tiers are accepted, and the plan says arm64.
    let p = plan(tiers, "[aws]\narchitecture = \"arm64\"\n");
    assert!(crate::plan::refused(&p).is_empty());
    let listed = crate::plan::resources(&p);
    assert!(listed.iter().filter(|r| r.kind == "lambda function").all(|r| r.name.contains(", arm64,")), "{listed:?}");
}

#[test]
fn the_deploy_waits_for_registration_and_names_a_shortfall() {
    let fake = Fake::new();
    let p = plan(ECS_EC2, "");
    let d = deployer(&fake, &p);
    let wait = |n| crate::tiers::ecs::wait_registered(&d.ctx, "c", n, Duration::from_millis(300));
    rt().block_on(async {
        fake.apis().ecs.create_cluster("c", &Vec::new()).await.unwrap();
        let e = wait(2).await.expect_err("none registered").to_string();
        assert!(e.starts_with("only 0 of 2 container instance(s) registered with ecs cluster c within 300ms"), "{e}");
        // The agents of two instances register (here: by hand); the wait sees both.
        for i in ["i-1", "i-2"] {
            fake.apis().ecs.register_container_instance("c", i).await.unwrap();
        }
        assert_eq!(wait(2).await.unwrap().len(), 2);
        let e = wait(3).await.expect_err("one short").to_string();
        assert!(e.starts_with("only 2 of 3"), "{e}");
    });
}

#[test]
fn unregistered_container_instances_name_the_cluster_and_the_likely_cause() {
    let e = crate::tiers::ecs::not_registered("isobench-x-ecs", 1, 3, Duration::from_secs(300));
    assert!(e.starts_with("only 1 of 3 container instance(s) registered with ecs cluster isobench-x-ecs within 5m"));
    assert!(e.contains("ECS_CLUSTER"), "{e}");
}

#[test]
fn reserved_concurrency_is_put_after_each_function_is_created() {
    let fake = Fake::new();
    let tiers = "[[tier]]\nid = \"lambda-per-tenant\"\nreserved_concurrency = 5\nconcurrency = 10\n";
    let p = plan(tiers, "");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        d.deploy(&p.tiers[0]).await.unwrap();
    });
    assert_eq!(extra(&fake, "function", "reserved"), ["5", "5"]);
    let calls = fake.calls();
    let first_put = calls.iter().position(|c| c == "PutFunctionConcurrency").expect("called");
    assert!(calls.iter().position(|c| c == "CreateFunction").unwrap() < first_put);
    assert_eq!(calls.iter().filter(|c| *c == "PutFunctionConcurrency").count(), 2);
    let listed = crate::plan::resources(&p);
    assert!(listed.iter().filter(|r| r.kind == "lambda function").all(|r| r.name.contains("reserved concurrency 5")));
    // Without the setting, no call.
    let fake = Fake::new();
    let p = plan(LAMBDA, "");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        d.deploy(&p.tiers[0]).await.unwrap();
    });
    assert!(!fake.calls().iter().any(|c| c == "PutFunctionConcurrency"));
}

#[test]
fn arm64_goes_to_lambda_and_fargate() {
    let fake = Fake::new();
    let p = plan(&(LAMBDA.to_string() + ECS), "[aws]\narchitecture = \"arm64\"\n");
    let mut d = deployer(&fake, &p);
    rt().block_on(async {
        no_data_plane(&mut d);
        for tp in &p.tiers {
            d.deploy(tp).await.unwrap();
        }
    });
    assert_eq!(extra(&fake, "function", "architecture"), ["arm64"; 3]);
    assert_eq!(extra(&fake, "taskdef", "architecture"), ["arm64"; 2]);
    assert_eq!(extra(&fake, "taskdef", "launch_type"), ["FARGATE"; 2]);
}
