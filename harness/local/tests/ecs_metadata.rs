//! `ecs-awsvpc` task roles and the container instance's metadata, fetched by plain HTTP from
//! inside the tasks' namespaces with the URIs the tasks' own environment holds.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use isobench_core::backend::Backend;
use isobench_local::{ECS_AGENT_ADDR, IMDS_ADDR, LocalBackend};
use isobench_testkit::http::{connect, request};
use isobench_testkit::needs_root;
use isobench_testkit::netns::{counter, in_netns, in_netns_of, local_addrs, nft_in, routes_here};
use isobench_testkit::process::env_of;

use crate::ecs_util::*;
use crate::util::*;

fn agent() -> SocketAddr {
    SocketAddr::from((ECS_AGENT_ADDR, 80))
}
fn imds() -> SocketAddr {
    SocketAddr::from((IMDS_ADDR, 80))
}

#[test]
fn each_task_fetches_its_own_role_credentials_and_not_anothers() {
    needs_root!();
    let mut b = backend("ecs-creds");
    let run = b.run_id().to_string();
    let d = b.deploy(&ecs_plan(&run, "ecs.toml", 3)).expect("deploys");
    let mut key_ids = BTreeSet::new();
    let mut uris = Vec::new();
    for inst in &d.instances {
        let pid = inst.pid.unwrap();
        let tenant = inst.tenants[0].clone();
        // The workload's own environment, as the kernel holds it.
        let uri = env_of(pid, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").expect("credentials URI in the task's env");
        assert!(uri.starts_with("/v2/credentials/"), "{uri}");
        assert_eq!(env_of(pid, "AWS_REGION").as_deref(), Some("us-east-1"));
        assert_eq!(env_of(pid, "AWS_EXECUTION_ENV").as_deref(), Some("AWS_ECS_EC2"));
        let meta = env_of(pid, "ECS_CONTAINER_METADATA_URI_V4").expect("metadata URI");
        let meta_path = meta.strip_prefix("http://169.254.170.2").unwrap().to_string();
        let u = uri.clone();
        let (creds, task) = in_netns_of(pid, move || {
            (
                request("GET", agent(), &u, &[]).unwrap(),
                request("GET", agent(), &format!("{meta_path}/task"), &[]).unwrap(),
            )
        });
        assert_eq!(creds.0, 200, "{}", creds.1);
        let role = json_field(&creds.1, "RoleArn").unwrap();
        assert_eq!(role, format!("arn:aws:iam::000000000000:role/isobench-{run}-task-{tenant}"));
        let key = json_field(&creds.1, "AccessKeyId").unwrap();
        assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");
        assert_eq!(json_field(&creds.1, "SecretAccessKey").unwrap().len(), 40);
        assert!(!json_field(&creds.1, "Token").unwrap().is_empty());
        let exp = json_field(&creds.1, "Expiration").unwrap();
        assert!(exp.len() == 20 && exp.ends_with('Z') && exp.contains('T'), "{exp}");
        assert!(key_ids.insert(key), "two tasks got the same access key");
        assert_eq!(task.0, 200, "{}", task.1);
        assert_eq!(json_field(&task.1, "LaunchType").as_deref(), Some("EC2"));
        assert!(json_field(&task.1, "TaskARN").unwrap().contains(&format!("task/isobench-{run}/")));
        uris.push((pid, uri));
    }
    // Another task's credentials path, from inside every other task: refused as unknown.
    for (i, (_, uri)) in uris.iter().enumerate() {
        for (j, (pid, _)) in uris.iter().enumerate() {
            if i == j {
                continue;
            }
            let u = uri.clone();
            let (status, body) = in_netns_of(*pid, move || request("GET", agent(), &u, &[]).unwrap());
            assert_eq!(status, 400, "task {j} fetched task {i}'s credentials: {body}");
            assert_eq!(json_field(&body, "code").as_deref(), Some("InvalidIdInRequest"));
        }
    }
    // Not from the harness namespace either (it is no task), and not from the host at all.
    let u = uris[0].1.clone();
    let from_harness = in_netns(&d.netns.clone().unwrap(), move || request("GET", agent(), &u, &[]).unwrap());
    assert_eq!(from_harness.0, 400);
    // The host's namespace does not hold the endpoint's address (checked in its local table;
    // no packet is sent there: the host's own network may route link-local addresses out).
    let host_local = local_addrs(std::process::id());
    assert!(!host_local.contains(&ECS_AGENT_ADDR) && !host_local.contains(&IMDS_ADDR), "{host_local:?}");
    let (served, _) = b.ecs_endpoint_requests().unwrap();
    // 3 own fetches and 3 task documents, 6 refused fetches, 1 from the harness.
    assert!(served > 3 * 2 + 6, "{served}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}

/// IMDSv2 (token) and IMDSv1 from a task of the `ec2` launch type without blocking: the
/// container instance's role, shared by every task.
#[test]
fn imds_is_reachable_from_an_ec2_task_without_blocking() {
    needs_root!();
    let mut b = backend("ecs-imds");
    let run = b.run_id().to_string();
    let d = b.deploy(&ecs_plan(&run, "ecs.toml", 2)).expect("deploys");
    let role = format!("isobench-{run}-container-instance");
    let mut keys = BTreeSet::new();
    for inst in &d.instances {
        let r = role.clone();
        let (token, listed, v2, v1, bad) = in_netns_of(inst.pid.unwrap(), move || {
            let token =
                request("PUT", imds(), "/latest/api/token", &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")])
                    .unwrap();
            let t = token.1.clone();
            let listed = request(
                "GET",
                imds(),
                "/latest/meta-data/iam/security-credentials/",
                &[("X-aws-ec2-metadata-token", &t)],
            )
            .unwrap();
            let path = format!("/latest/meta-data/iam/security-credentials/{r}");
            let v2 = request("GET", imds(), &path, &[("X-aws-ec2-metadata-token", &t)]).unwrap();
            let v1 = request("GET", imds(), &path, &[]).unwrap();
            let bad = request("GET", imds(), &path, &[("X-aws-ec2-metadata-token", "forged")]).unwrap();
            (token, listed, v2, v1, bad)
        });
        assert_eq!(token.0, 200);
        assert_eq!(listed, (200, role.clone()));
        assert_eq!(v2.0, 200, "{}", v2.1);
        assert_eq!(json_field(&v2.1, "Code").as_deref(), Some("Success"));
        assert_eq!(json_field(&v2.1, "Type").as_deref(), Some("AWS-HMAC"));
        assert_eq!(v1, v2, "IMDSv1 (optional tokens) answers the same");
        assert_eq!(bad.0, 401);
        keys.insert(json_field(&v2.1, "AccessKeyId").unwrap());
    }
    assert_eq!(keys.len(), 1, "every task gets the one instance role");
    let pid = d.instances[0].pid.unwrap();
    let ip = in_netns_of(pid, || request("GET", imds(), "/latest/meta-data/local-ipv4", &[]).unwrap());
    assert_eq!(ip, (200, b.ecs_cluster().unwrap().gateway.to_string()));
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}

/// With `block_imds`: a blackhole route in the task (as the ECS ENI plugin installs), and
/// behind it the harness's filter, which still drops IMDS traffic from the task when root puts
/// a route back.
#[test]
fn imds_is_unreachable_with_blocking_even_past_the_route() {
    needs_root!();
    let mut b = backend("ecs-block");
    let plan = ecs_plan_with(b.run_id(), 2, "launch_type = \"ec2\"\n[tier.container_instance]\nblock_imds = true\n");
    let d = b.deploy(&plan).expect("deploys");
    let pid = d.instances[0].pid.unwrap();
    let gateway = b.ecs_cluster().unwrap().gateway;
    assert!(!b.ecs_cluster().unwrap().imds_reachable);
    let (routes, blocked, creds) = in_netns_of(pid, || {
        (routes_here(), connect(imds(), Duration::from_millis(300)), request("GET", agent(), "/", &[]).map(|r| r.0))
    });
    assert!(routes.iter().any(|r| r.dst == IMDS_ADDR && r.iface == "*"), "no blackhole route: {routes:?}");
    assert!(blocked.is_err(), "IMDS answered a blocked task");
    assert_eq!(creds, Ok(404), "the ECS agent endpoint stays reachable");
    // Put a route to IMDS back (as root in the task's namespace): the filter still drops it.
    let status = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "ip", "route", "replace", "169.254.169.254/32", "via"])
        .arg(gateway.to_string())
        .args(["dev", "eth0"])
        .status();
    if let Ok(s) = status
        && s.success()
    {
        let r = in_netns_of(pid, || connect(imds(), Duration::from_millis(500)));
        assert!(r.is_err(), "IMDS reached past the harness filter");
        let listing = nft_in(&d.netns.clone().unwrap(), &["list", "chain", "ip", "isobench_ecs", "endpoints"]);
        assert!(counter(&listing, "nothing else") >= 1, "{listing}");
    } else {
        eprintln!("(nsenter/ip unavailable: the filter behind the blackhole route is not exercised)");
    }
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}

#[test]
fn imds_is_unreachable_on_fargate() {
    needs_root!();
    let mut b = LocalBackend::new(config(&run_id("ecs-fargate"))).unwrap();
    let plan = ecs_plan_with(b.run_id(), 2, "launch_type = \"fargate\"\n");
    let d = b.deploy(&plan).expect("deploys");
    let pid = d.instances[0].pid.unwrap();
    assert_eq!(env_of(pid, "AWS_EXECUTION_ENV").as_deref(), Some("AWS_ECS_FARGATE"));
    let uri = env_of(pid, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").unwrap();
    let (routes, imds_try, creds) = in_netns_of(pid, move || {
        (routes_here(), connect(imds(), Duration::from_millis(300)), request("GET", agent(), &uri, &[]).map(|r| r.0))
    });
    assert!(!routes.iter().any(|r| r.dst == IMDS_ADDR), "{routes:?}");
    assert!(imds_try.unwrap_err().contains("unreachable"));
    assert_eq!(creds, Ok(200), "Fargate tasks still get their task role");
    // There is no IMDS at all: not even the harness namespace has one.
    let harness = in_netns(&d.netns.clone().unwrap(), || connect(imds(), Duration::from_millis(300)));
    assert!(harness.is_err());
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}
