//! The EC2 tiers' security groups and instance profiles, checked from inside the instances'
//! network namespaces (what the kernel lets through, what IMDS answers there), and the
//! `shared-tmp` isolation fault, checked through each instance's own mount namespace.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, Deployment, Endpoint};
use isobench_core::plan::{Overrides, Plan, TierPlan};
use isobench_core::scenario::Scenario;
use isobench_core::tier::TierId;
use isobench_local::{ECS_AGENT_ADDR, IMDS_ADDR, LocalBackend, SHARED_TMP_SUFFIX, SweepOptions, sweep};
use isobench_testkit::http::{connect, get_in_netns, request};
use isobench_testkit::netns::{counter, host_network, in_netns, in_netns_of, nft_in, routes_here};
use isobench_testkit::{leftovers, needs_root};

use crate::ecs_util::*;
use crate::util::*;

const PORT: u16 = 8080;
const ROLES: &str = "/latest/meta-data/iam/security-credentials/";

/// The `tier` of a scenario with `tenants` tenants (`t0`, `t1`, ...): `tier_extra` goes inside
/// the tier's table (`[tier.network]`, groups), `doc_extra` after it (`[local]`).
fn ec2_plan(run: &str, tier: TierId, tenants: usize, tier_extra: &str, doc_extra: &str) -> TierPlan {
    let ids: Vec<String> = (0..tenants).map(|i| format!("\"t{i}\"")).collect();
    let src = format!(
        "format_version = 1\nname = \"ec2\"\n[run]\nduration = \"1s\"\nrate = \"10\"\n\
         [tenants]\ncount = {tenants}\nids = [{}]\n{doc_extra}\n\
         [[tier]]\nid = \"{tier}\"\ninstance_type = \"t3.micro\"\n{tier_extra}\n",
        ids.join(", ")
    );
    let scenario = Scenario::parse(&src, Path::new("ec2.toml")).unwrap_or_else(|e| panic!("{e}"));
    Plan::new(run.to_string(), scenario, "test".into(), &Overrides::default()).tiers.remove(0)
}

fn v4(d: &Deployment, i: usize) -> Ipv4Addr {
    match d.instances[i].address {
        Some(std::net::IpAddr::V4(a)) => a,
        other => panic!("{other:?}"),
    }
}

/// Every ordered pair of distinct instances, each tried from inside the source instance's
/// network namespace, all at once: how many connections to the workload port succeeded.
fn tenant_matrix(d: &Deployment) -> (usize, usize) {
    let mut handles = Vec::new();
    for (i, from) in d.instances.iter().enumerate() {
        for j in 0..d.instances.len() {
            if i == j {
                continue;
            }
            let (pid, to) = (from.pid.unwrap(), SocketAddrV4::new(v4(d, j), PORT));
            handles.push(std::thread::spawn(move || {
                in_netns_of(pid, move || connect(SocketAddr::V4(to), Duration::from_millis(800)).is_ok())
            }));
        }
    }
    let n = handles.len();
    (handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count(), n)
}

fn harness_reaches_all(d: &Deployment) {
    let netns = d.netns.clone().unwrap();
    for t in &d.targets {
        let Endpoint::Http(addr) = t.endpoint else { panic!("an HTTP endpoint") };
        assert_eq!(get_in_netns(&netns, addr, "/healthz", None).map(|r| r.0), Ok(200), "harness -> {}", t.tenant);
    }
}

fn imds() -> SocketAddr {
    SocketAddr::from((IMDS_ADDR, 80))
}

/// An HTTP answer: status and body.
type Answer = (u16, String);

/// From inside the namespace of `pid`: an IMDSv2 token, the role listing and that role's
/// credentials with it, and the same credentials by IMDSv1.
fn fetch_role(pid: u32) -> (String, Answer, Answer, Answer) {
    in_netns_of(pid, || {
        let (status, token) =
            request("PUT", imds(), "/latest/api/token", &[("X-aws-ec2-metadata-token-ttl-seconds", "60")]).unwrap();
        assert_eq!(status, 200);
        let h = [("X-aws-ec2-metadata-token", token.as_str())];
        let (status, role) = request("GET", imds(), ROLES, &h).unwrap();
        assert_eq!(status, 200, "{role}");
        let v2 = request("GET", imds(), &format!("{ROLES}{role}"), &h).unwrap();
        let v1 = request("GET", imds(), &format!("{ROLES}{role}"), &[]).unwrap();
        (token.clone(), (status, role), v2, v1)
    })
}

#[test]
fn per_tenant_groups_block_every_silo_pair_and_admit_the_harness() {
    needs_root!();
    let mut b = backend("ec2-sg");
    let n = 4;
    let d = b.deploy(&plan(b.run_id(), TierId::SiloEc2, n, "t3.micro")).expect("deploys");
    harness_reaches_all(&d);
    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(pairs, n * (n - 1));
    assert_eq!(ok, 0, "{ok} of {pairs} tenant-to-tenant connections got through");
    // Dropped by the packet filter (not a missing route): its default-deny counter counted
    // at least one SYN per pair.
    let netns = d.netns.clone().unwrap();
    let listing = nft_in(&netns, &["list", "chain", "ip", "isobench_silo_ec2", "ingress"]);
    assert!(counter(&listing, "default deny") >= pairs as u64, "{listing}");
    let net = b.instance_network(TierId::SiloEc2).unwrap();
    let groups: BTreeSet<&str> = net.instances.iter().map(|i| i.groups[0].as_str()).collect();
    assert_eq!(groups.len(), n, "each instance in its own group: {:?}", net.instances);
    assert!(net.instances.iter().all(|i| i.groups == [format!("tenant-{}", i.tenants[0])]));
    // The probe runner's `net` sweep asks peers for /probe/beacon: not even the handshake.
    let (pid0, to1) = (d.instances[0].pid.unwrap(), SocketAddr::from((v4(&d, 1), PORT)));
    let beacon = in_netns_of(pid0, move || request("GET", to1, "/probe/beacon", &[]));
    assert!(beacon.unwrap_err().contains("connect"), "a silo tenant reached another's beacon");
    println!(
        "silo-ec2 per-tenant groups: 0 of {pairs} tenant-to-tenant connections; harness reached all {n}; nft {:.2} ms",
        ms(net.filter_install)
    );
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert!(!nft_in(&netns, &["list", "tables"]).contains("isobench_silo_ec2"));
}

#[test]
fn a_shared_self_referencing_group_on_silo_lets_tenants_reach_each_other() {
    needs_root!();
    let mut b = backend("ec2-open");
    let n = 3;
    let open = "[tier.network]\nsecurity_groups = [\"tenants\"]\n[[tier.security_group]]\nname = \"tenants\"\n\
                ingress = [{ port = 8080, source_group = \"harness\" }, { protocol = \"all\", source_group = \"tenants\" }]";
    let d = b.deploy(&ec2_plan(b.run_id(), TierId::SiloEc2, n, open, "")).expect("deploys");
    harness_reaches_all(&d);
    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(ok, pairs, "the scenario's open group admits every tenant");
    assert!(b.instance_network(TierId::SiloEc2).unwrap().instances.iter().all(|i| i.groups == ["tenants"]));
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}

#[test]
fn each_silo_instance_gets_its_own_role_from_imds_and_nothing_else() {
    needs_root!();
    let mut b = backend("ec2-imds");
    let run = b.run_id().to_string();
    let d = b.deploy(&plan(&run, TierId::SiloEc2, 3, "t3.micro")).expect("deploys");
    let gateway = Ipv4Addr::new(10, 213, 0, 1);
    let mut keys = BTreeSet::new();
    let mut tokens = Vec::new();
    for inst in &d.instances {
        let (pid, tenant) = (inst.pid.unwrap(), inst.tenants[0].clone());
        let (token, (_, role), v2, v1) = fetch_role(pid);
        assert_eq!(role, format!("isobench-{run}-instance-{tenant}"));
        // The probe runner's rule: a principal is a tenant's when its role name ends in `-<tenant>`.
        assert!(role.ends_with(&format!("-{tenant}")));
        assert_eq!(v2.0, 200, "{}", v2.1);
        assert_eq!(json_field(&v2.1, "Code").as_deref(), Some("Success"));
        assert_eq!(json_field(&v2.1, "RoleArn"), None, "as real IMDS, no RoleArn");
        assert_eq!(v1, v2, "IMDSv1 answers the same");
        assert!(keys.insert(json_field(&v2.1, "AccessKeyId").unwrap()), "two instances share a key");
        // What else the instance can reach: its subnet and IMDS, nothing more.
        let (routes, agent, outside, ip) = in_netns_of(pid, || {
            (
                routes_here(),
                connect(SocketAddr::from((ECS_AGENT_ADDR, 80)), Duration::from_millis(300)),
                connect("1.1.1.1:80".parse().unwrap(), Duration::from_millis(300)),
                request("GET", imds(), "/latest/meta-data/local-ipv4", &[]).unwrap(),
            )
        });
        for r in &routes {
            let to_imds = r.dst == IMDS_ADDR && r.prefix == 32 && r.gateway == gateway;
            let subnet = r.gateway == Ipv4Addr::UNSPECIFIED && r.prefix == 16 && r.iface == "eth0";
            assert!(to_imds || subnet, "instance {} has a route outside: {r:?} (all: {routes:?})", inst.id);
        }
        assert!(routes.iter().any(|r| r.dst == IMDS_ADDR), "{routes:?}");
        assert!(agent.unwrap_err().contains("unreachable"), "the ECS agent address is routed");
        assert!(outside.unwrap_err().contains("unreachable"));
        assert_eq!(ip, (200, inst.address.unwrap().to_string()), "IMDS describes the caller's own instance");
        tokens.push((pid, token, role));
    }
    // Another instance's token, or its role's path, from inside each instance: refused.
    for (i, (_, token, role)) in tokens.iter().enumerate() {
        let (pid, _, _) = tokens[(i + 1) % tokens.len()].clone();
        let (token, path) = (token.clone(), format!("{ROLES}{role}"));
        let (foreign_token, foreign_role) = in_netns_of(pid, move || {
            let t = request("GET", imds(), ROLES, &[("X-aws-ec2-metadata-token", &token)]).unwrap();
            (t.0, request("GET", imds(), &path, &[]).unwrap().0)
        });
        assert_eq!((foreign_token, foreign_role), (401, 404));
    }
    // The harness itself is no instance.
    let harness = in_netns(&d.netns.clone().unwrap(), || request("GET", imds(), ROLES, &[]).unwrap().0);
    assert_eq!(harness, 403);
    let net = b.instance_network(TierId::SiloEc2).unwrap();
    for i in &net.instances {
        assert_eq!(i.role_arn, format!("arn:aws:iam::000000000000:role/isobench-{run}-instance-{}", i.tenants[0]));
    }
    assert!(b.imds_requests().unwrap() >= 3 * 5);
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert!(r.removed.iter().any(|s| s.contains("IMDS")), "{:?}", r.removed);
    let addr_left = in_netns(&d.netns.clone().unwrap(), || connect(imds(), Duration::from_millis(200)));
    assert!(addr_left.is_err(), "IMDS still answers after teardown");
    assert!(b.imds_requests().is_none());
}

#[test]
fn the_shared_instance_gets_one_role_for_every_tenant() {
    needs_root!();
    let mut b = backend("ec2-shared-imds");
    let run = b.run_id().to_string();
    let d = b.deploy(&plan(&run, TierId::SharedEc2, 3, "t3.small")).expect("deploys");
    harness_reaches_all(&d);
    let (_, (_, role), v2, _) = fetch_role(d.instances[0].pid.unwrap());
    assert_eq!(role, format!("isobench-{run}-instance-shared"));
    assert_eq!((v2.0, json_field(&v2.1, "Code").as_deref()), (200, Some("Success")));
    let net = b.instance_network(TierId::SharedEc2).unwrap();
    assert_eq!(net.instances.len(), 1);
    assert_eq!(net.instances[0].groups, ["shared-instance"]);
    assert!(nft_in(&d.netns.clone().unwrap(), &["list", "tables"]).contains("isobench_shared_ec2"));
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}

/// IMDS for EC2 instances (on `br0`) and an ECS cluster's container instance (on `ecs0`)
/// share the address, each answering its own callers; either tier's teardown leaves the other's.
#[test]
fn ec2_and_ecs_imds_share_the_address_and_answer_their_own() {
    needs_root!();
    let mut b = backend("ec2-ecs");
    let run = b.run_id().to_string();
    let silo = b.deploy(&plan(&run, TierId::SiloEc2, 2, "t3.micro")).expect("silo deploys");
    let ecs = b.deploy(&ecs_plan(&run, "ecs.toml", 2)).expect("ecs deploys");
    let task_role = || in_netns_of(ecs.instances[0].pid.unwrap(), || request("GET", imds(), ROLES, &[]).unwrap());
    assert_eq!(task_role(), (200, format!("isobench-{run}-container-instance")));
    assert_eq!(fetch_role(silo.instances[1].pid.unwrap()).1.1, format!("isobench-{run}-instance-t1"));
    // An ECS task cannot reach a silo instance, nor the reverse (other bridge, no forwarding).
    let (task_pid, silo_addr) = (ecs.instances[0].pid.unwrap(), SocketAddr::from((v4(&silo, 0), PORT)));
    assert!(in_netns_of(task_pid, move || connect(silo_addr, Duration::from_millis(300))).is_err());
    b.teardown(TierId::SiloEc2).unwrap();
    assert_eq!(task_role().0, 200, "the ECS cluster's IMDS survives the EC2 tier");
    let again = b.deploy(&plan(&run, TierId::SharedEc2, 2, "t3.micro")).expect("shared deploys");
    assert_eq!(fetch_role(again.instances[0].pid.unwrap()).1.1, format!("isobench-{run}-instance-shared"));
    b.teardown(TierId::EcsAwsvpc).unwrap();
    assert_eq!(fetch_role(again.instances[0].pid.unwrap()).1.1, format!("isobench-{run}-instance-shared"));
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
}

const FAULT: &str = "[local]\nbreak_isolation = [\"shared-tmp\"]";

/// With `break_isolation = ["shared-tmp"]` a file one silo instance writes in its /tmp is in
/// every other's; without it, in none. Through each workload's own mount namespace.
#[test]
fn the_shared_tmp_fault_makes_silo_instances_share_tmp_and_only_with_it() {
    needs_root!();
    for broken in [true, false] {
        let mut b = backend(if broken { "ec2-fault" } else { "ec2-nofault" });
        let run = b.run_id().to_string();
        let plan = ec2_plan(&run, TierId::SiloEc2, 3, "", if broken { FAULT } else { "" });
        assert_eq!(plan.faults.len(), usize::from(broken));
        let d = b.deploy(&plan).expect("deploys");
        let pids: Vec<u32> = d.instances.iter().map(|i| i.pid.unwrap()).collect();
        let canary = format!("isobench-probe-canary-{run}");
        // Written as the workload would: a file in its own /tmp.
        std::fs::write(format!("/proc/{}/root/tmp/{canary}", pids[0]), "x").unwrap();
        for pid in &pids[1..] {
            let seen = Path::new(&format!("/proc/{pid}/root/tmp/{canary}")).exists();
            assert_eq!(seen, broken, "instance {pid} sees the other's file: {seen}, fault on: {broken}");
        }
        let shared = Path::new("/run/isobench").join(format!("{run}{SHARED_TMP_SUFFIX}"));
        assert_eq!(b.shared_tmp().is_some(), broken);
        assert_eq!(shared.join(&canary).exists(), broken);
        // One filesystem behind every /tmp, or one each; a tmpfs either way.
        let devs: BTreeSet<u64> = pids
            .iter()
            .map(|p| std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(format!("/proc/{p}/root/tmp")).unwrap()))
            .collect();
        assert_eq!(devs.len(), if broken { 1 } else { pids.len() }, "{devs:?}");
        let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", pids[1])).unwrap();
        let tmp = mountinfo.lines().find(|l| l.split(' ').nth(4) == Some("/tmp")).unwrap().to_string();
        assert!(tmp.contains(" - tmpfs "), "{tmp}");
        // The workload runs as usual on it.
        let who = whoami(&d.netns.clone().unwrap(), SocketAddr::from((v4(&d, 1), PORT)), "t1");
        assert_eq!(who["tenant"], "t1");
        let r = b.teardown_all().unwrap();
        assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
        assert_eq!(r.removed.iter().any(|s| s.contains("shared /tmp")), broken, "{:?}", r.removed);
        assert!(!shared.exists(), "{} left behind", shared.display());
        assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    }
}

const CRASH_RUN: &str = "ISOBENCH_TEST_EC2_CRASH_RUN";

/// Run by [`a_crashed_run_with_the_fault_is_swept`] in a child process: deploys, reports, waits.
#[test]
#[ignore = "helper: runs only in the child process of an EC2 sweep test"]
fn ec2_crash_helper() {
    let Some(run) = std::env::var_os(CRASH_RUN) else { return };
    let run = run.to_string_lossy().into_owned();
    let mut b = LocalBackend::new(config(&run)).unwrap();
    let d = b.deploy(&ec2_plan(&run, TierId::SiloEc2, 2, "", FAULT)).unwrap();
    let pids: Vec<String> = d.instances.iter().map(|i| i.pid.unwrap().to_string()).collect();
    println!("READY {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(60));
    drop(b);
}

#[test]
fn a_crashed_run_with_the_fault_is_swept() {
    needs_root!();
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    let before = host_network();
    let run = run_id("ec2-crash");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ec2::ec2_crash_helper", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CRASH_RUN, &run)
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .find_map(|l| l.ok().and_then(|l| l.split_once("READY ").map(|(_, p)| p.to_string())))
        .expect("the helper deploys");
    assert_eq!(line.split_whitespace().count(), 2);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let shared = Path::new("/run/isobench").join(format!("{run}{SHARED_TMP_SUFFIX}"));
    assert!(shared.is_dir(), "the crash left the shared /tmp");
    let dry = sweep(&SweepOptions { dry_run: true, run: Some(run.clone()), force: false }).unwrap();
    assert!(dry.found.iter().any(|f| f.starts_with("shared /tmp ")), "{:?}", dry.found);
    let r = sweep(&SweepOptions { dry_run: false, run: Some(run.clone()), force: false }).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(!shared.exists(), "the sweep left {}", shared.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!("{run}{SHARED_TMP_SUFFIX}")), "still mounted");
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    assert_eq!(host_network(), before);
}

/// Silo start time (cgroup creation to the first 200) over 20 instances with security groups
/// and IMDS, and what the one `nft` run and the IMDS setup cost; printed (the example
/// `start_times` does the same outside the test harness).
#[test]
fn silo_start_time_with_groups_and_imds_over_20_instances() {
    needs_root!();
    let mut b = backend("ec2-timing");
    let t0 = Instant::now();
    let d = b.deploy(&plan(b.run_id(), TierId::SiloEc2, 20, "t3.micro")).unwrap();
    let deploy = t0.elapsed();
    let net = b.instance_network(TierId::SiloEc2).unwrap().clone();
    let mut starts: Vec<Duration> = d.instances.iter().map(|i| i.start_time).collect();
    starts.sort();
    let median = starts[starts.len() / 2];
    let r = b.teardown(TierId::SiloEc2).unwrap();
    println!(
        "silo-ec2, 20 instances with groups and IMDS: deploy {:.1} ms (IMDS + bridge netfilter {:.2} ms, identities {:.2} ms, nft {:.2} ms); start median {:.2} ms, min {:.2} ms, max {:.2} ms; teardown {:.1} ms",
        ms(deploy),
        ms(net.imds_setup),
        ms(net.identities),
        ms(net.filter_install),
        ms(median),
        ms(starts[0]),
        ms(starts[19]),
        ms(r.duration),
    );
    // Loose: other tests share the two cores. Alone the median is single-digit ms.
    assert!(median < Duration::from_millis(500), "median {median:?}");
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
}
