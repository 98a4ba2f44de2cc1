//! Load agents against moto 4.2.14 (ECS `awsvpc` RunTask with its own EC2, IAM and S3): the
//! plan and its guard rails count them, they are deployed as Fargate tasks carrying the run's
//! tags with a scoped task role, their lines travel through the run's bucket, and a tag query
//! after teardown finds nothing. Nothing runs in moto's tasks (they are records).
//!
//! Needs `scripts/emulators.sh install` (done by `make test`); skips with a message without it,
//! and fails under CI=true.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use isobench_aws::agents::{AgentSink, AgentsPlan};
use isobench_aws::deployer::Deployer;
use isobench_aws::emulators::{self, Emulators};
use isobench_aws::plan::{self, GuardRail};
use isobench_aws::tags::{EXPIRES_KEY, RUN_KEY, Selector, TOOL_KEY};
use isobench_core::plan::{Overrides, Plan};
use isobench_core::scenario::Scenario;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn plan(run_id: &str, aws: &str) -> Plan {
    let src = format!(
        "format_version = 1\nname = \"emu\"\n[run]\nduration = \"1s\"\nrate = 10\n[tenants]\ncount = 2\n\
         [[tier]]\nid = \"ecs-awsvpc\"\nlaunch_type = \"fargate\"\n{aws}"
    );
    let s = Scenario::parse(&src, Path::new("emu.toml")).unwrap_or_else(|e| panic!("{e}"));
    Plan::new(run_id.into(), s, "h".into(), &Overrides::default())
}

#[test]
fn agents_deploy_as_tagged_fargate_tasks_and_tear_down_on_moto() {
    let emu = match Emulators::start(&root()) {
        Ok(e) => e,
        Err(why) => {
            isobench_testkit::root::skip(&isobench_testkit::root::test_name(module_path!()), &why);
            return;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(moto_agents(&emu));
}

async fn moto_agents(emu: &Emulators) {
    let (apis, caps) = emu.apis(true).await;
    let config = emulators::sdk_config(&emu.moto_url).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let iam = aws_sdk_iam::Client::new(&config);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let id = format!("20270101T000000Z-ag{:04x}", now.subsec_micros() & 0xffff);
    // The plan and its guard rails count the agents: 2 tier tasks + 2 agents over a cap of 3.
    let capped = plan(&id, "[aws]\nmax_tasks = 3\n[aws.agents]\ncount = 2\n");
    assert_eq!(plan::check(&capped, Some(0.0)), [GuardRail::Tasks { wanted: 4, cap: 3 }]);
    let p = plan(&id, "[aws.agents]\ncount = 2\n");
    assert!(plan::check(&p, Some(0.0)).is_empty());
    assert_eq!(plan::resources(&p).iter().filter(|r| r.tier.is_none() && r.kind == "ecs task").count(), 2);
    let mut d = Deployer::new(apis.clone(), &p.run_id, p.scenario.aws.clone(), caps.clone(), Arc::new(vec![0x7f]));
    d.deploy(&p.tiers[0]).await.unwrap_or_else(|e| panic!("deploy ecs-awsvpc: {e}"));
    let a = AgentsPlan::of(&p).unwrap();
    let t0 = Instant::now();
    let handles = d
        .deploy_agents(&a, Arc::new(b"isobench".to_vec()), &[b"{\"k\":0}".to_vec(), b"{\"k\":1}".to_vec()])
        .await
        .unwrap_or_else(|e| panic!("deploy agents: {e}"));
    let deploy = t0.elapsed();
    assert_eq!(handles.len(), 2);
    let cluster = d.ctx.name("agents");
    let listed = ecs.list_tasks().cluster(&cluster).send().await.unwrap();
    assert_eq!(listed.task_arns().len(), 2);
    let described = ecs
        .describe_tasks()
        .cluster(&cluster)
        .set_tasks(Some(listed.task_arns().to_vec()))
        .include(aws_sdk_ecs::types::TaskField::Tags)
        .send()
        .await
        .unwrap();
    for t in described.tasks() {
        let tags: std::collections::HashMap<_, _> =
            t.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect();
        assert_eq!(tags.get(RUN_KEY), Some(&id), "{tags:?}");
        assert_eq!(tags.get(TOOL_KEY).map(String::as_str), Some("isobench"));
        assert!(tags.get(EXPIRES_KEY).is_some_and(|e| humantime::parse_rfc3339(e).is_ok()));
        let eni = t.attachments().iter().find(|a| a.r#type() == Some("ElasticNetworkInterface"));
        assert!(eni.is_some(), "awsvpc: its own network interface: {t:?}");
        let def = ecs.describe_task_definition().task_definition(t.task_definition_arn().unwrap()).send().await;
        let def = def.unwrap();
        let def = def.task_definition().unwrap();
        assert_eq!(def.network_mode().map(|m| m.as_str()), Some("awsvpc"));
        assert_eq!(def.requires_compatibilities().first().map(|c| c.as_str()), Some("FARGATE"));
        assert!(def.execution_role_arn().is_some());
    }
    // The task role carries only the agents' inline policy.
    let pol = iam.get_role_policy().role_name(d.ctx.name("agents-task")).policy_name("isobench-agent").send().await;
    let doc = pol.unwrap().policy_document().to_string();
    let doc = urlencoding_decode(&doc);
    assert!(doc.contains(&format!("runs/{id}/agents/")) && doc.contains("lambda:InvokeFunction"), "{doc}");
    // Lines through moto's S3, in order across chunks.
    let mut sink = AgentSink::new(apis.s3.clone(), &d.ctx.name("workload"), &id, 1);
    assert_eq!(sink.assignment().await.unwrap(), b"{\"k\":1}");
    sink.put(b"a\nb\n").await.unwrap();
    sink.put(b"c\n").await.unwrap();
    assert_eq!(d.read_lines(1).await.unwrap(), [&b"a"[..], b"b", b"c"]);
    d.send(1, b"stop\n").await.unwrap();
    assert_eq!(sink.received().await.unwrap(), [b"stop"]);
    d.agent_status(0).await.unwrap();
    let t1 = Instant::now();
    let r = d.teardown_agents().await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let agents_teardown = t1.elapsed();
    let r = d.teardown(None).await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    eprintln!(
        "figure: moto 2 agents deploy {:.0} ms teardown {:.0} ms",
        deploy.as_secs_f64() * 1e3,
        agents_teardown.as_secs_f64() * 1e3
    );
    let (left, report) = isobench_aws::sweep::find(&apis, &caps, &Selector::Run(id.clone())).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
