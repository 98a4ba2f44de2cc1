//! The agents against the in-memory [`Fake`] account: plan and guard rails, deploy, teardown,
//! the tag query afterwards, the line transport and a stopped task.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use isobench_core::backend::{Invoke, InvokeOutcome, PayloadContract};
use isobench_core::plan::{Overrides, Plan};
use isobench_core::scenario::Scenario;

use super::*;
use crate::capability::Capabilities;
use crate::deployer::Deployer;
use crate::fake::Fake;
use crate::plan::{self, GuardRail};
use crate::retry::Backoff;
use crate::sweep;
use crate::tags::{EXPIRES_KEY, RUN_KEY, Selector, TOOL_KEY};

const RUN: &str = "20270101T000000Z-abcdef";
const ECS: &str = "[[tier]]\nid = \"ecs-awsvpc\"\nlaunch_type = \"fargate\"\n";
const LAMBDA: &str = "[[tier]]\nid = \"lambda-shared\"\n";

fn plan_of(tiers: &str, aws: &str) -> Plan {
    let src = format!(
        "format_version = 1\nname = \"t\"\n[run]\nduration = \"10s\"\nrate = 10\n[tenants]\ncount = 2\n{tiers}\n{aws}"
    );
    let s = Scenario::parse(&src, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    Plan::new(RUN.into(), s, "h".into(), &Overrides::default())
}

fn deployer(fake: &Fake, p: &Plan) -> Deployer {
    let mut d =
        Deployer::new(fake.apis(), &p.run_id, p.scenario.aws.clone(), Capabilities::cloud(), Arc::new(b"elf".to_vec()));
    d.ctx.backoff =
        Backoff { first: Duration::from_millis(1), max: Duration::from_millis(2), budget: Duration::from_millis(200) };
    d
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn the_plan_lists_the_agents_and_the_guard_rails_count_them() {
    let none = plan_of(ECS, "");
    assert!(AgentsPlan::of(&none).is_none());
    assert!(plan::resources(&none).iter().all(|r| !r.name.contains("agent")));
    let p = plan_of(ECS, "[aws.agents]\ncount = 3\n");
    let a = AgentsPlan::of(&p).unwrap();
    assert_eq!((a.count, a.cpu, a.memory), (3, 1024, 2048));
    assert_eq!(a.subnets, ["private"], "the ECS tier's subnet");
    let rows = plan::resources(&p);
    let tasks: Vec<_> = rows.iter().filter(|r| r.tier.is_none() && r.kind == "ecs task").collect();
    assert_eq!(tasks.len(), 3, "{rows:?}");
    assert!(tasks[0].name.contains("1 vCPU, 2 GB, x86_64, fargate awsvpc in subnet(s) private"), "{}", tasks[0].name);
    assert!(rows.iter().any(|r| r.name.contains("agents-task") && r.name.contains("runs/{run}/agents/")));
    // The ECS tier's two tasks and the three agents: tasks and network interfaces.
    assert_eq!(plan::counts(&p).tasks, 5);
    assert_eq!(plan::network_interfaces(&p), 5);
    let capped = plan_of(ECS, "[aws]\nmax_tasks = 4\n[aws.agents]\ncount = 3\n");
    assert_eq!(plan::check(&capped, Some(0.0)), [GuardRail::Tasks { wanted: 5, cap: 4 }]);
    let wide = plan_of(ECS, "[aws]\nmax_tasks = 6000\n[aws.agents]\ncount = 5000\n");
    assert_eq!(
        plan::check(&wide, Some(0.0)),
        [GuardRail::NetworkInterfaces { wanted: 5002, cap: plan::NETWORK_INTERFACE_QUOTA }]
    );
    // From the rate: 10 req/s at 4 per agent.
    assert_eq!(AgentsPlan::of(&plan_of(ECS, "[aws.agents]\nper_agent_rate = 4\n")).unwrap().count, 3);
}

#[test]
fn agents_of_lambda_tiers_get_a_vpc_of_their_own_in_the_plan() {
    let p = plan_of(LAMBDA, "[aws.agents]\n");
    let rows = plan::resources(&p);
    let kinds: Vec<_> = rows.iter().filter(|r| r.tier.is_none()).map(|r| r.kind).collect();
    for k in ["ec2 vpc", "ec2 subnet", "ec2 security group", "s3 bucket", "ecs cluster", "ecs task"] {
        assert!(kinds.contains(&k), "{k}: {kinds:?}");
    }
    assert_eq!(AgentsPlan::of(&p).unwrap().subnets, [AGENTS_SUBNET]);
    assert_eq!(plan::counts(&p).tasks, 1);
}

#[test]
fn the_agents_cost_is_fargate_time_for_the_traffic_and_start_up() {
    let pricing = Pricing::built_in("us-east-1").unwrap();
    assert_eq!(modelled_cost(&plan_of(ECS, ""), &pricing).unwrap(), None);
    let c = modelled_cost(&plan_of(ECS, "[aws.agents]\ncount = 2\n"), &pricing).unwrap().unwrap();
    let (pv, pg) =
        (pricing.get("fargate.vcpu-x86_64", "x").unwrap().usd, pricing.get("fargate.gb-x86_64", "x").unwrap().usd);
    let want = 2.0 * 130.0 / 3600.0 * (pv + 2.0 * pg);
    assert!((c.usd - want).abs() < 1e-12, "{} vs {want}", c.usd);
    assert!(c.formula.contains("modelled") && c.formula.contains("T = 130 s"), "{}", c.formula);
    let arm = modelled_cost(&plan_of(ECS, "[aws.agents]\ncount = 2\narchitecture = \"arm64\"\n"), &pricing);
    let arm = arm.unwrap().unwrap();
    assert!(arm.formula.contains("fargate.vcpu-arm64"), "{}", arm.formula);
    assert!(arm.usd < c.usd);
}

fn deploy_two(fake: &Fake, d: &mut Deployer, p: &Plan) -> Vec<AgentHandle> {
    let a = AgentsPlan::of(p).unwrap();
    let assignments = vec![b"{\"agent\":0}".to_vec(), b"{\"agent\":1}".to_vec()];
    let handles = rt().block_on(d.deploy_agents(&a, Arc::new(b"isobench".to_vec()), &assignments)).unwrap();
    assert_eq!(handles.len(), 2);
    assert_eq!(fake.count("task"), 2);
    handles
}

#[test]
fn agents_deploy_as_tagged_tasks_with_a_scoped_role_and_tear_down() {
    let fake = Fake::new();
    let p = plan_of(ECS, "[aws.agents]\ncount = 2\n");
    let mut d = deployer(&fake, &p);
    let handles = deploy_two(&fake, &mut d, &p);
    assert_eq!(handles[1].index, 1);
    assert_eq!(handles[0].address, Some("10.213.0.20".parse().unwrap()));
    assert_eq!((fake.count("taskdef"), fake.count("cluster"), fake.count("role")), (2, 1, 2));
    let s = fake.state.lock().unwrap();
    for (id, o) in s.objects.iter().filter(|(_, o)| o.kind != "object") {
        assert_eq!(o.tags.get(RUN_KEY).map(String::as_str), Some(RUN), "{id}");
        assert_eq!(o.tags.get(TOOL_KEY).map(String::as_str), Some("isobench"), "{id}");
        assert!(o.tags.contains_key(EXPIRES_KEY), "{id}");
    }
    // Tasks sit in the run's subnet and the harness group, which tier rules admit.
    let harness = d.ctx.network.as_ref().unwrap().harness_group.clone().unwrap();
    for (_, o) in s.objects.iter().filter(|(_, o)| o.kind == "task") {
        assert!(o.uses.contains(&harness), "{:?}", o.uses);
    }
    // The task role may only get and put the run's agent objects and invoke the run's functions.
    let policies = &s.policies[&d.ctx.name("agents-task")];
    assert_eq!(policies.len(), 1);
    let doc: serde_json::Value = serde_json::from_str(&policies[0].1).unwrap();
    let st = doc["Statement"].as_array().unwrap();
    assert_eq!(st[0]["Action"], serde_json::json!(["s3:GetObject", "s3:PutObject"]));
    let bucket = d.ctx.name("workload");
    assert_eq!(st[0]["Resource"], format!("arn:aws:s3:::{bucket}/runs/{RUN}/agents/*"));
    assert_eq!(st[1]["Resource"], format!("arn:aws:lambda:*:*:function:isobench-{}-*", RUN.to_lowercase()));
    assert!(!s.policies.contains_key(&d.ctx.name("agents-exec")));
    // The assignments and the binary are in the bucket.
    assert_eq!(s.bodies[&format!("{bucket}/runs/{RUN}/agents/1/assignment.json")], b"{\"agent\":1}");
    assert_eq!(s.bodies[&format!("{bucket}/runs/{RUN}/bin/isobench")], b"isobench");
    drop(s);
    rt().block_on(async {
        let r = d.teardown_agents().await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(r.removed.len(), 7, "{:?}", r.removed);
        assert_eq!(
            (fake.count("task"), fake.count("taskdef"), fake.count("role"), fake.count("cluster")),
            (0, 0, 0, 0)
        );
        // The run's network and bucket stay for the tiers.
        assert_eq!((fake.count("vpc"), fake.count("bucket")), (1, 1));
        let r = d.teardown(None).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        let (left, report) = sweep::find(&fake.apis(), &d.ctx.caps, &Selector::Run(RUN.into())).await;
        assert!(report.failed.is_empty() && left.is_empty(), "{left:?} {:?}", report.failed);
        assert!(fake.kinds().is_empty(), "{:?}", fake.kinds());
    });
}

#[test]
fn agents_outlive_a_tier_s_teardown_and_go_with_the_run_s_also_after_a_failed_deploy() {
    let fake = Fake::new();
    let p = plan_of(ECS, "[aws.agents]\ncount = 2\n");
    let mut d = deployer(&fake, &p);
    rt().block_on(d.deploy(&p.tiers[0])).unwrap();
    assert_eq!(fake.count("task"), 2);
    let a = AgentsPlan::of(&p).unwrap();
    rt().block_on(d.deploy_agents(&a, Arc::new(vec![1]), &[vec![2], vec![3]])).unwrap();
    assert_eq!(fake.count("task"), 4);
    // A tier's teardown leaves the agents, which drive every tier.
    let r = rt().block_on(d.teardown(Some(isobench_core::TierId::EcsAwsvpc)));
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!((fake.count("task"), fake.count("cluster")), (2, 1));
    assert!(rt().block_on(d.agent_status(1)).is_ok());
    let r = rt().block_on(d.teardown(None));
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(fake.kinds().is_empty(), "{:?}", fake.kinds());
    // RunTask refused: what was made before it is recorded and removed.
    fake.state.lock().unwrap().refuse.insert("RunTask");
    let mut d = deployer(&fake, &p);
    let a = AgentsPlan::of(&p).unwrap();
    let e = rt().block_on(d.deploy_agents(&a, Arc::new(vec![1]), &[vec![2]])).unwrap_err();
    assert!(e.to_string().contains("RunTask"), "{e}");
    assert!(fake.count("taskdef") == 1 && fake.count("role") == 2);
    let r = rt().block_on(d.teardown(None));
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(fake.kinds().is_empty(), "{:?}", fake.kinds());
}

#[test]
fn the_line_reader_returns_lines_in_order_across_chunks_and_a_stopped_task_is_dead() {
    let fake = Fake::new();
    let p = plan_of(ECS, "[aws.agents]\ncount = 2\n");
    let mut d = deployer(&fake, &p);
    let handles = deploy_two(&fake, &mut d, &p);
    let bucket = d.ctx.name("workload");
    rt().block_on(async {
        let mut sink = AgentSink::new(fake.apis().s3, &bucket, RUN, 1);
        assert_eq!(sink.assignment().await.unwrap(), b"{\"agent\":1}");
        assert!(d.read_lines(1).await.unwrap().is_empty());
        sink.put(b"{\"n\":1}\n{\"n\":2}\n").await.unwrap();
        sink.put(b"{\"n\":3}").await.unwrap();
        sink.put(b"").await.unwrap();
        assert_eq!(d.read_lines(1).await.unwrap(), [&b"{\"n\":1}"[..], b"{\"n\":2}", b"{\"n\":3}"]);
        assert!(d.read_lines(1).await.unwrap().is_empty(), "nothing new");
        assert!(d.read_lines(0).await.unwrap().is_empty(), "agent 0 wrote nothing");
        // A chunk cut mid-line: the line comes whole once its end arrives.
        let s3 = fake.apis().s3;
        s3.put_object(&bucket, &transport::chunk_key(RUN, 1, Direction::Out, 2), b"{\"n\":".to_vec()).await.unwrap();
        assert!(d.read_lines(1).await.unwrap().is_empty());
        s3.put_object(&bucket, &transport::chunk_key(RUN, 1, Direction::Out, 3), b"4}\n{\"n\":5}\n".to_vec())
            .await
            .unwrap();
        assert_eq!(d.read_lines(1).await.unwrap(), [&b"{\"n\":4}"[..], b"{\"n\":5}"]);
        // The other way: lines the harness sends after the assignment, in order.
        assert!(sink.received().await.unwrap().is_empty());
        d.send(1, b"{\"tier\":\"a\"}\n").await.unwrap();
        d.send(1, b"{\"stop\":true}").await.unwrap();
        assert_eq!(sink.received().await.unwrap(), [&b"{\"tier\":\"a\"}"[..], b"{\"stop\":true}"]);
        assert!(d.read_lines(1).await.unwrap().is_empty(), "the agent's own stream is apart");
        assert!(d.send(9, b"x").await.is_err());
        assert_eq!(d.agent_status(0).await.unwrap(), AgentStatus::Running);
        fake.state.lock().unwrap().stopped.insert(
            handles[1].task.clone(),
            TaskExit {
                last_status: "STOPPED".into(),
                stopped_reason: Some("Essential container in task exited".into()),
                exit_code: Some(137),
            },
        );
        let st = d.agent_status(1).await.unwrap();
        assert!(st.is_dead());
        assert_eq!(st.to_string(), "stopped (exit 137): Essential container in task exited");
        assert!(d.agent_status(7).await.is_err());
        let r = d.teardown(None).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(d.agent_status(0).await.unwrap_err().code, "NoAgents");
    });
    assert_eq!(AgentStatus::of(None), AgentStatus::Gone);
    assert!(AgentStatus::of(None).is_dead());
}

#[test]
fn a_function_target_invokes_through_the_lambda_api() {
    let fake = Fake::new();
    let t = function::FunctionTarget::new(fake.apis().lambda, "isobench-x-f", true, PayloadContract::Opaque);
    let r = rt().block_on(t.invoke("t1", b"ping".to_vec()));
    assert_eq!(r.outcome, InvokeOutcome::Ok(b"ping".to_vec()));
    assert!(fake.calls().contains(&"Invoke".to_string()));
    assert_eq!(t.payload_contract(), PayloadContract::Opaque);
    fake.state.lock().unwrap().refuse.insert("Invoke");
    let r = rt().block_on(t.invoke("t1", vec![]));
    assert!(matches!(r.outcome, InvokeOutcome::Rejected { .. }), "{:?}", r.outcome);
    assert_eq!(function::arn_region("arn:aws:lambda:eu-west-1:123456789012:function:f").as_deref(), Some("eu-west-1"));
    assert_eq!(function::arn_region("isobench-x-f"), None);
}

#[test]
fn a_sink_outside_an_agent_task_names_the_missing_variable() {
    if std::env::var_os(ENV_BUCKET).is_some() {
        return;
    }
    let e = rt().block_on(AgentSink::from_env()).err().unwrap();
    assert_eq!(e.to_string(), "`ISOBENCH_AGENT_BUCKET` is not set (an agent task's definition sets it)");
}

#[test]
fn the_backend_drives_agents_synchronously_for_the_runner() {
    let fake = Fake::new();
    let p = plan_of(LAMBDA, "[aws.agents]\n");
    let mut b = crate::AwsBackend::from_deployer(deployer(&fake, &p));
    let a = AgentsPlan::of(&p).unwrap();
    let handles = b.deploy_agents(&a, Arc::new(vec![1]), &[b"{}".to_vec()]).unwrap();
    assert_eq!(handles.len(), 1);
    let bucket = b.deployer().ctx.name("workload");
    let mut sink = AgentSink::new(fake.apis().s3, &bucket, RUN, 0);
    rt().block_on(sink.put(b"x\n")).unwrap();
    assert_eq!(b.read_lines(0).unwrap(), [b"x"]);
    b.send(0, b"y").unwrap();
    assert_eq!(rt().block_on(sink.received()).unwrap(), [b"y"]);
    assert_eq!(b.agent_status(0).unwrap(), AgentStatus::Running);
    let r = b.teardown_agents();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert_eq!(fake.count("task"), 0);
    let r = isobench_core::Backend::teardown_all(&mut b).unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert!(fake.kinds().is_empty(), "{:?}", fake.kinds());
}
