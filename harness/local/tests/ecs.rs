//! `ecs-awsvpc` networking: security groups checked from inside the tasks' namespaces, the
//! routes the tier installs, teardown, a crashed deploy swept, and task start time.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, Deployment, Endpoint};
use isobench_core::tier::TierId;
use isobench_local::{CLUSTER_BRIDGE, ECS_AGENT_ADDR, IMDS_ADDR, LocalBackend, SweepOptions, sweep};
use isobench_testkit::http::{connect, get_in_netns};
use isobench_testkit::netns::{counter, host_network, in_netns, in_netns_of, links_here, nft_in, routes_here};
use isobench_testkit::process::{pid_alive, process_running};
use isobench_testkit::{leftovers, needs_root};

use crate::ecs_util::*;
use crate::util::*;

const PORT: u16 = 8080;

/// Tries every ordered pair of distinct tasks, each from inside the source task's network
/// namespace, all at once: the number of connections that succeeded, and the pairs.
fn tenant_matrix(d: &Deployment) -> (usize, Vec<(String, String, bool)>) {
    let tasks: Vec<(String, u32, Ipv4Addr)> = d
        .instances
        .iter()
        .map(|i| {
            let std::net::IpAddr::V4(a) = i.address.unwrap() else { panic!("IPv4") };
            (i.tenants[0].clone(), i.pid.unwrap(), a)
        })
        .collect();
    let mut handles = Vec::new();
    for (from, pid, _) in &tasks {
        for (to, _, addr) in &tasks {
            if from == to {
                continue;
            }
            let (from, to, pid, addr) = (from.clone(), to.clone(), *pid, *addr);
            handles.push(std::thread::spawn(move || {
                let ok = in_netns_of(pid, move || {
                    connect(SocketAddr::V4(SocketAddrV4::new(addr, PORT)), Duration::from_millis(800)).is_ok()
                });
                (from, to, ok)
            }));
        }
    }
    let pairs: Vec<(String, String, bool)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (pairs.iter().filter(|p| p.2).count(), pairs)
}

/// The harness reaches every task's workload (from the harness namespace, as the load driver).
fn harness_reaches_all(d: &Deployment) {
    let netns = d.netns.clone().unwrap();
    for t in &d.targets {
        let Endpoint::Http(addr) = t.endpoint else { panic!("an HTTP endpoint") };
        assert_eq!(get_in_netns(&netns, addr, "/healthz", None).map(|r| r.0), Ok(200), "harness -> {}", t.tenant);
    }
}

#[test]
fn per_tenant_groups_block_every_tenant_pair_and_admit_the_harness() {
    needs_root!();
    let mut b = backend("ecs-sg");
    let n = 4;
    let d = b.deploy(&ecs_plan(b.run_id(), "ecs.toml", n)).expect("deploys");
    assert_eq!(d.instances.len(), n, "one task per tenant");
    harness_reaches_all(&d);
    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(pairs.len(), n * (n - 1));
    assert_eq!(
        ok,
        0,
        "tenant-to-tenant connections got through: {:?}",
        pairs.iter().filter(|p| p.2).collect::<Vec<_>>()
    );
    // The packet filter dropped them (not, say, a missing route): its default-deny counter
    // counted at least one SYN per pair.
    let listing = nft_in(&d.netns.clone().unwrap(), &["list", "chain", "ip", "isobench_ecs", "ingress"]);
    assert!(counter(&listing, "default deny") >= pairs.len() as u64, "{listing}");
    println!("per-tenant groups: 0 of {} tenant-to-tenant connections; harness reached all {n} tasks", pairs.len());
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
}

#[test]
fn a_shared_self_referencing_group_lets_every_tenant_reach_every_other() {
    needs_root!();
    let mut b = backend("ecs-shared");
    let n = 4;
    let d = b.deploy(&ecs_plan(b.run_id(), "ecs-shared-sg.toml", n)).expect("deploys");
    harness_reaches_all(&d);
    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(ok, n * (n - 1), "blocked pairs: {:?}", pairs.iter().filter(|p| !p.2).collect::<Vec<_>>());
    let cluster = b.ecs_cluster().unwrap();
    assert!(cluster.tasks.iter().all(|t| t.groups == ["tenants"]), "{:?}", cluster.tasks);
    println!("shared self-referencing group: {ok} of {} tenant-to-tenant connections", pairs.len());
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}

/// Every route in a task's namespace and in the harness namespace stays inside the subnet or
/// points at the two metadata /32s through the gateway; nothing is a default route; addresses
/// outside are unreachable from both.
#[test]
fn routes_stay_inside_the_subnet_and_the_metadata_addresses() {
    needs_root!();
    let before = host_network();
    let mut b = backend("ecs-routes");
    let plan = ecs_plan(b.run_id(), "ecs.toml", 2);
    let (net, prefix) = plan.subnet;
    let inside = move |a: Ipv4Addr, p: u32| {
        p >= u32::from(prefix) && u32::from(a) >> (32 - prefix) == u32::from(net) >> (32 - prefix)
    };
    let d = b.deploy(&plan).expect("deploys");
    let gateway = b.ecs_cluster().unwrap().gateway;
    let outside: Vec<SocketAddr> = ["1.1.1.1:80", "10.0.0.1:80", "172.16.0.1:80", "192.168.1.1:80", "169.254.1.1:80"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();

    for inst in &d.instances {
        let pid = inst.pid.unwrap();
        let targets = outside.clone();
        let (routes, tries) = in_netns_of(pid, move || {
            let tries: Vec<String> =
                targets.iter().map(|a| connect(*a, Duration::from_millis(300)).err().unwrap_or_default()).collect();
            (routes_here(), tries)
        });
        assert!(!routes.is_empty());
        for r in &routes {
            let metadata = r.prefix == 32 && (r.dst == ECS_AGENT_ADDR || r.dst == IMDS_ADDR) && r.gateway == gateway;
            let subnet = inside(r.dst, r.prefix) && r.gateway == Ipv4Addr::UNSPECIFIED && r.iface == "eth0";
            assert!(metadata || subnet, "task {} has a route outside: {r:?} (all: {routes:?})", inst.id);
            assert!(r.prefix > 0, "a default route in task {}: {r:?}", inst.id);
        }
        assert!(routes.iter().any(|r| r.dst == ECS_AGENT_ADDR), "{routes:?}");
        // ec2 launch type without blocking: IMDS through the gateway.
        assert!(routes.iter().any(|r| r.dst == IMDS_ADDR && r.gateway == gateway), "{routes:?}");
        for (a, e) in outside.iter().zip(&tries) {
            assert!(e.contains("unreachable"), "task {} -> {a}: {e:?} (expected no route)", inst.id);
        }
    }

    let outside2 = outside.clone();
    let (routes, links, tries) = in_netns(&d.netns.clone().unwrap(), move || {
        let tries: Vec<String> =
            outside2.iter().map(|a| connect(*a, Duration::from_millis(300)).err().unwrap_or_default()).collect();
        (routes_here(), links_here(), tries)
    });
    for r in &routes {
        assert!(r.prefix > 0, "the harness namespace has a default route: {r:?}");
        assert!(inside(r.dst, r.prefix), "the harness namespace routes outside the subnet: {r:?} (all: {routes:?})");
        assert_eq!(r.gateway, Ipv4Addr::UNSPECIFIED, "a route through a gateway: {r:?}");
    }
    // One host route per task on the cluster bridge.
    let on_cluster: BTreeSet<Ipv4Addr> = routes.iter().filter(|r| r.iface == CLUSTER_BRIDGE).map(|r| r.dst).collect();
    let tasks: BTreeSet<Ipv4Addr> =
        d.instances.iter().map(|i| if let Some(std::net::IpAddr::V4(a)) = i.address { a } else { panic!() }).collect();
    assert_eq!(on_cluster, tasks);
    assert!(links.contains(&CLUSTER_BRIDGE.to_string()), "{links:?}");
    for (a, e) in outside.iter().zip(&tries) {
        assert!(e.contains("unreachable"), "harness -> {a}: {e:?}");
    }
    assert_eq!(host_network(), before, "the host's interfaces or routes changed");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(host_network(), before);
}

#[test]
fn teardown_removes_tasks_rules_endpoints_and_bridge_and_a_redeploy_works() {
    needs_root!();
    let mut b = backend("ecs-teardown");
    let run = b.run_id().to_string();
    let d = b.deploy(&ecs_plan(&run, "ecs.toml", 3)).expect("deploys");
    let netns = d.netns.clone().unwrap();
    let pids: Vec<u32> = d.instances.iter().map(|i| i.pid.unwrap()).collect();
    assert!(nft_in(&netns, &["list", "tables"]).contains("isobench_ecs"));
    // Also an EC2 tier at the same time: its teardown leaves the cluster alone.
    b.deploy(&plan(&run, TierId::SiloEc2, 1, "t3.micro")).unwrap();
    b.teardown(TierId::SiloEc2).unwrap();
    assert!(b.ecs_cluster().is_some());
    harness_reaches_all(&d);

    let r = b.teardown(TierId::EcsAwsvpc).unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    println!("ecs teardown of 3 tasks: {:.2} ms; removed: {:#?}", ms(r.duration), r.removed);
    for what in ["instance ecs-awsvpc-", "ECS agent endpoint", "IMDS", "security groups", "bridge ecs0"] {
        assert!(r.removed.iter().any(|s| s.contains(what)), "no `{what}` in {:?}", r.removed);
    }
    for pid in pids {
        assert!(!pid_alive(pid), "task workload {pid} survived");
    }
    let tables = nft_in(&netns, &["list", "tables"]);
    assert!(!tables.contains("isobench_ecs"), "{tables}");
    let (links, agent) = in_netns(&netns, || {
        (links_here(), connect(SocketAddr::from((ECS_AGENT_ADDR, 80)), Duration::from_millis(200)).is_ok())
    });
    assert!(!links.contains(&CLUSTER_BRIDGE.to_string()), "{links:?}");
    assert!(!agent, "the ECS agent endpoint still answers");
    assert!(b.ecs_cluster().is_none());
    // Idempotent, and the tier deploys again (same bridge name, fresh addresses).
    assert!(b.teardown(TierId::EcsAwsvpc).unwrap().removed.is_empty());
    let again = b.deploy(&ecs_plan(&run, "ecs.toml", 2)).expect("redeploys");
    harness_reaches_all(&again);
    // Dropping the backend tears it down too.
    drop(b);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

/// A task that stops on its own takes its set elements (and credentials) with it; the rest of
/// the cluster keeps working.
#[test]
fn rules_follow_a_task_that_stops_alone() {
    needs_root!();
    let mut b = backend("ecs-stop");
    let d = b.deploy(&ecs_plan(b.run_id(), "ecs-shared-sg.toml", 3)).expect("deploys");
    let netns = d.netns.clone().unwrap();
    let addr = |i: usize| match d.instances[i].address {
        Some(std::net::IpAddr::V4(a)) => a,
        other => panic!("{other:?}"),
    };
    let ruleset = || nft_in(&netns, &["list", "ruleset"]);
    assert!(ruleset().contains(&format!("{} . \"v", addr(1))), "{}", ruleset());
    let gone = d.instances[1].pid.unwrap();
    let r = b.stop_task(&d.instances[1].id).unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    println!("stopping one task: {:.2} ms; {:?}", ms(r.duration), r.removed);
    assert!(!pid_alive(gone));
    let after = ruleset();
    assert!(!after.contains(&format!("{},", addr(1))) && !after.contains(&format!("{} ", addr(1))), "{after}");
    assert!(after.contains(&addr(0).to_string()) && after.contains(&addr(2).to_string()), "{after}");
    // The shared group still lets the remaining tasks reach each other, and the harness them.
    let (pid0, to2) = (d.instances[0].pid.unwrap(), SocketAddr::from((addr(2), PORT)));
    assert!(in_netns_of(pid0, move || connect(to2, Duration::from_millis(800))).is_ok());
    for i in [0, 2] {
        assert_eq!(get_in_netns(&netns, SocketAddr::from((addr(i), PORT)), "/healthz", None).map(|r| r.0), Ok(200));
    }
    assert_eq!(b.ecs_cluster().unwrap().tasks.len(), 2);
    assert!(b.stop_task("ecs-awsvpc-99").is_err());
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert_eq!(r.removed.iter().filter(|s| s.starts_with("instance ")).count(), 2);
}

/// A deploy that fails after the cluster is up (a workload that exits) leaves no cluster.
#[test]
fn a_failed_deploy_removes_the_cluster() {
    needs_root!();
    let run = run_id("ecs-fail");
    let mut c = config(&run);
    c.workload_exe = "/bin/sleep".into();
    c.ready_timeout = Duration::from_millis(300);
    let mut b = LocalBackend::new(c).unwrap();
    let netns = b.netns().unwrap();
    let e = b.deploy(&ecs_plan(&run, "ecs.toml", 2)).unwrap_err();
    assert!(e.to_string().contains("ecs-awsvpc"), "{e}");
    assert!(b.ecs_cluster().is_none());
    assert!(!nft_in(&netns, &["list", "tables"]).contains("isobench_ecs"));
    assert!(!in_netns(&netns, links_here).contains(&CLUSTER_BRIDGE.to_string()));
    drop(b);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

const CRASH_RUN: &str = "ISOBENCH_TEST_ECS_CRASH_RUN";

/// Run by [`a_crashed_ecs_deploy_is_swept`] in a child process: deploys, reports, waits.
#[test]
#[ignore = "helper: runs only in the child process of an ECS sweep test"]
fn ecs_crash_helper() {
    let Some(run) = std::env::var_os(CRASH_RUN) else { return };
    let run = run.to_string_lossy().into_owned();
    let mut b = LocalBackend::new(config(&run)).unwrap();
    let d = b.deploy(&ecs_plan(&run, "ecs.toml", 2)).unwrap();
    let pids: Vec<String> = d.instances.iter().map(|i| i.pid.unwrap().to_string()).collect();
    println!("READY {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(60));
    drop(b);
}

#[test]
fn a_crashed_ecs_deploy_is_swept() {
    needs_root!();
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    let host_tables =
        || std::process::Command::new("nft").args(["list", "tables"]).output().map(|o| o.stdout).unwrap_or_default();
    let before = (host_network(), host_tables());
    let run = run_id("ecs-crash");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ecs::ecs_crash_helper", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CRASH_RUN, &run)
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .find_map(|l| l.ok().and_then(|l| l.split_once("READY ").map(|(_, p)| p.to_string())))
        .expect("the helper deploys");
    let pids: Vec<u32> = line.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let t0 = Instant::now();
    let r = sweep(&SweepOptions { dry_run: false, run: Some(run.clone()), force: false }).unwrap();
    println!("sweep of a crashed ecs deploy: {:.1} ms, {} items", ms(t0.elapsed()), r.found.len());
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(r.found.iter().any(|f| f.contains("ecs-awsvpc-")), "{:?}", r.found);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    for pid in pids {
        assert!(!process_running(pid), "task workload {pid} survived the crash");
    }
    // The cluster lived in the crashed harness's namespace: nothing of it is on the host.
    assert_eq!((host_network(), host_tables()), before);
}

/// Task start time (cgroup creation to the workload's first 200) over 20 tasks, the cost of the
/// one `nft` run per deploy and of teardown; printed.
#[test]
fn task_start_time_over_20_tasks() {
    needs_root!();
    let mut b = backend("ecs-timing");
    let t0 = Instant::now();
    let d = b.deploy(&ecs_plan(b.run_id(), "ecs.toml", 20)).unwrap();
    let deploy = t0.elapsed();
    let c = b.ecs_cluster().unwrap().clone();
    let mut starts: Vec<Duration> = d.instances.iter().map(|i| i.start_time).collect();
    starts.sort();
    let median = starts[starts.len() / 2];
    let r = b.teardown(TierId::EcsAwsvpc).unwrap();
    println!(
        "ecs-awsvpc, 20 tasks: deploy {:.1} ms (bridge+listeners {:.2} ms, endpoints {:.2} ms, nft {:.2} ms); task start median {:.2} ms, min {:.2} ms, max {:.2} ms; teardown {:.1} ms",
        ms(deploy),
        ms(c.network_setup),
        ms(c.endpoints_start),
        ms(c.filter_install),
        ms(median),
        ms(starts[0]),
        ms(starts[19]),
        ms(r.duration),
    );
    // Loose: other tests share the two cores. Alone the median is single-digit ms.
    assert!(median < Duration::from_millis(500), "median {median:?}");
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    for i in &d.instances {
        let l = i.limits.unwrap();
        assert_eq!((l.cpu_millis, l.memory_bytes), (250, 512 << 20), "256 CPU units, 512 MiB");
    }
}
