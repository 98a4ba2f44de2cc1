//! `eks-pod`: pods behind their nodes, checked from inside the pods' namespaces: the harness
//! reaches every pod, a pod's only way out is its node, cross-tenant traffic passes without a
//! network policy and not with a default-deny one (nor with security groups for pods), IMDS
//! answers each node as itself through the node and its token answer dies at a hop limit of
//! 1, pods get their service account's role, and teardown leaves nothing.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, Deployment, Endpoint};
use isobench_core::plan::{Overrides, Plan, TierPlan};
use isobench_core::scenario::{Scenario, TierSettings};
use isobench_core::tier::TierId;
use isobench_local::{IMDS_ADDR, LocalBackend, POD_GATEWAY, SweepOptions, sweep};
use isobench_testkit::http::{connect, get_in_netns, request};
use isobench_testkit::netns::{host_network, in_netns, in_netns_of, links_here, nft_in, routes_here};
use isobench_testkit::process::env_of;
use isobench_testkit::process::{ns_inode, process_running};
use isobench_testkit::scenario::scenarios_dir;
use isobench_testkit::{leftovers, needs_root};

use crate::util::*;

const PORT: u16 = 8080;

/// The `eks-pod` tier `tier` (TOML after `id`) of a scenario with `tenants` tenants (`t0`, ...).
fn eks_plan(run: &str, tenants: usize, tier: &str) -> TierPlan {
    let ids: Vec<String> = (0..tenants).map(|i| format!("\"t{i}\"")).collect();
    let src = format!(
        "format_version = 1\nname = \"eks\"\n[run]\nduration = \"1s\"\nrate = \"10\"\n\
         [tenants]\ncount = {tenants}\nids = [{}]\n[[tier]]\nid = \"eks-pod\"\n{tier}",
        ids.join(", ")
    );
    let scenario = Scenario::parse(&src, Path::new("eks.toml")).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(run.to_string(), scenario, "test".into(), &Overrides::default());
    plan.tiers.into_iter().find(|t| t.tier == TierId::EksPod).expect("an eks-pod tier")
}

/// A pod's file as the harness reads it: through `/proc/<pid>/root`, where `/var/run` (an
/// absolute link to `/run`) would resolve against the reader's root, so `/run` directly.
fn in_pod(pid: u32, path: &str) -> String {
    format!("/proc/{pid}/root{}", path.strip_prefix("/var").unwrap_or(path))
}

fn pod_addr(d: &Deployment, i: usize) -> Ipv4Addr {
    match d.instances[i].address {
        Some(std::net::IpAddr::V4(a)) => a,
        other => panic!("an IPv4 address, not {other:?}"),
    }
}

/// Every ordered pair of distinct pods, each connect from inside the source pod, all at once:
/// how many got through.
fn tenant_matrix(d: &Deployment) -> (usize, usize) {
    let mut handles = Vec::new();
    for (i, from) in d.instances.iter().enumerate() {
        for j in 0..d.instances.len() {
            if i == j {
                continue;
            }
            let (pid, to) = (from.pid.unwrap(), pod_addr(d, j));
            handles.push(std::thread::spawn(move || {
                in_netns_of(pid, move || {
                    connect(SocketAddr::V4(SocketAddrV4::new(to, PORT)), Duration::from_millis(800)).is_ok()
                })
            }));
        }
    }
    let results: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (results.iter().filter(|ok| **ok).count(), results.len())
}

fn harness_reaches_all(d: &Deployment) {
    let netns = d.netns.clone().unwrap();
    for t in &d.targets {
        let Endpoint::Http(addr) = t.endpoint else { panic!("an HTTP endpoint") };
        assert_eq!(get_in_netns(&netns, addr, "/healthz", None).map(|r| r.0), Ok(200), "harness -> {}", t.tenant);
    }
}

/// The IMDSv2 token from inside pod `pid` (`Err` names the step that failed: a token answer
/// that never arrives reads `read: ...` after the 2 s answer timeout).
fn imds_token_from(pid: u32) -> Result<String, String> {
    in_netns_of(pid, || {
        let imds = SocketAddr::V4(SocketAddrV4::new(IMDS_ADDR, 80));
        match request("PUT", imds, "/latest/api/token", &[("x-aws-ec2-metadata-token-ttl-seconds", "60")])? {
            (200, token) => Ok(token),
            (s, _) => Err(format!("token: {s}")),
        }
    })
}

/// The node role IMDS names for a caller inside pod `pid`: token, then the role listing.
fn imds_role_from(pid: u32) -> Result<String, String> {
    let token = imds_token_from(pid)?;
    in_netns_of(pid, move || {
        let imds = SocketAddr::V4(SocketAddrV4::new(IMDS_ADDR, 80));
        let path = "/latest/meta-data/iam/security-credentials/";
        match request("GET", imds, path, &[("x-aws-ec2-metadata-token", &token)])? {
            (200, role) => Ok(role),
            (s, _) => Err(format!("role: {s}")),
        }
    })
}

/// Deploys, checks the pods' network and returns the deployment and how long the deploy took.
fn deploy(b: &mut LocalBackend, plan: &TierPlan) -> (Deployment, Duration) {
    let t0 = Instant::now();
    let d = b.deploy(plan).expect("deploys");
    let took = t0.elapsed();
    assert_eq!(d.instances.len(), plan.tenants.len(), "one pod per tenant");
    harness_reaches_all(&d);
    (d, took)
}

/// Network namespaces this process holds a descriptor to (the harness holds its nodes' and
/// pods' namespaces only so; nothing else pins them).
fn held_netns() -> Vec<u64> {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap();
    fds.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok())
        .collect()
}

/// Tears the tier down and checks that its bridge, node veths and tables are gone, and that
/// no descriptor holds a node's or a pod's network namespace any more.
fn teardown(b: &mut LocalBackend) -> Duration {
    let c = b.eks_cluster().unwrap().clone();
    let mut namespaces: Vec<u64> = c.nodes.iter().map(|n| n.netns_inode).collect();
    assert!(namespaces.iter().all(|i| held_netns().contains(i)), "the harness holds its nodes' namespaces");
    namespaces.extend(b.instances().iter().map(|i| ns_inode(i.pid.unwrap(), "net")));
    let r = b.teardown(TierId::EksPod).unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    let held = held_netns();
    assert!(
        namespaces.iter().all(|i| !held.contains(i)),
        "node or pod namespaces still held: {namespaces:?} in {held:?}"
    );
    let netns = b.netns().unwrap();
    let links = in_netns(&netns, links_here);
    assert!(links.iter().all(|l| !l.starts_with("eks") && !l.starts_with("nd")), "{links:?}");
    let tables = nft_in(&netns, &["list", "tables"]);
    assert!(!tables.contains("isobench_eks"), "{tables}");
    r.duration
}

fn finish(mut b: LocalBackend) {
    let run = b.run_id().to_string();
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    drop(b);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    assert_eq!(leftovers::run_files(&run), Vec::<String>::new());
}

#[test]
fn shared_nodes_leak_across_tenants_without_a_policy_and_not_with_default_deny() {
    needs_root!();
    let mut b = backend("eks-ns");
    let run = b.run_id().to_string();
    let n = 4;

    let (d, took) = deploy(&mut b, &eks_plan(&run, n, "[tier.node]\ncount = 2\n"));
    let c = b.eks_cluster().unwrap().clone();
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.nodes.iter().map(|n| n.pods.len()).collect::<Vec<_>>(), [2, 2], "round robin");
    assert!(c.nodes.iter().all(|n| n.role == format!("isobench-{run}-node")), "one node role: {:?}", c.nodes);
    // A pod's only route is the default through 169.254.1.1, on its eth0.
    let routes = in_netns_of(d.instances[0].pid.unwrap(), routes_here);
    assert!(routes.iter().any(|r| r.prefix == 0 && r.gateway == POD_GATEWAY && r.iface == "eth0"), "{routes:?}");
    assert!(routes.iter().all(|r| r.gateway == POD_GATEWAY || r.dst == POD_GATEWAY), "{routes:?}");
    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(ok, pairs, "without a policy every tenant reaches every other, across nodes too");
    // Hop limit 2 (the default): IMDS answers through the node, as the node (its role).
    assert_eq!(imds_role_from(d.instances[1].pid.unwrap()), Ok(format!("isobench-{run}-node")));
    let down = teardown(&mut b);
    println!(
        "eks namespace-per-tenant, no policy: {ok}/{pairs} cross-tenant connects; deploy {:.1} ms (network {:.1} ms, nft {:.1} ms), teardown {:.1} ms",
        ms(took),
        ms(c.network_setup),
        ms(c.filter_install),
        ms(down)
    );

    let (d, took) = deploy(&mut b, &eks_plan(&run, n, "network_policy = \"default-deny\"\n[tier.node]\ncount = 2\n"));
    let c = b.eks_cluster().unwrap().clone();
    assert_eq!(c.policies.len(), n, "{:?}", c.policies);
    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(ok, 0, "default deny: no tenant reaches another ({ok} of {pairs} did)");
    let down = teardown(&mut b);
    println!(
        "eks namespace-per-tenant, default deny: {ok}/{pairs} cross-tenant connects; deploy {:.1} ms (nft {:.1} ms), teardown {:.1} ms",
        ms(took),
        ms(c.filter_install),
        ms(down)
    );
    finish(b);
}

#[test]
fn node_per_tenant_with_hop_limit_1_keeps_the_node_role_from_pods() {
    needs_root!();
    let mut b = backend("eks-node");
    let run = b.run_id().to_string();
    let tier = "pattern = \"node-per-tenant\"\n[tier.node]\nhttp_put_response_hop_limit = 1\n";
    let (d, took) = deploy(&mut b, &eks_plan(&run, 2, tier));
    let c = b.eks_cluster().unwrap().clone();
    assert_eq!(c.nodes.len(), 2, "one node per tenant");
    for inst in &d.instances {
        let tenant = &inst.tenants[0];
        let node = c.nodes.iter().find(|n| n.pods.contains(&inst.id)).unwrap();
        assert_eq!(node.tenant.as_deref(), Some(tenant.as_str()));
        assert_eq!(node.role, format!("isobench-{run}-node-{tenant}"));
        let e = imds_token_from(inst.pid.unwrap()).expect_err("the token answer dies at the node");
        assert!(e.starts_with("read:"), "connected, then no answer: {e}");
    }
    let (served, _) = b.eks_endpoint_requests().unwrap();
    assert!(served >= 2, "IMDS answered (the answer died on the way): {served}");
    let down = teardown(&mut b);
    println!(
        "eks node-per-tenant, hop limit 1: no IMDS token in any pod; deploy {:.1} ms, teardown {:.1} ms",
        ms(took),
        ms(down)
    );

    let tier = "pattern = \"node-per-tenant\"\n[tier.node]\nhttp_put_response_hop_limit = 2\n";
    let (d, _) = deploy(&mut b, &eks_plan(&run, 2, tier));
    for inst in &d.instances {
        let tenant = &inst.tenants[0];
        assert_eq!(imds_role_from(inst.pid.unwrap()), Ok(format!("isobench-{run}-node-{tenant}")), "hop limit 2");
    }
    teardown(&mut b);
    finish(b);
}

#[test]
fn pods_get_their_service_accounts_role_through_pod_identity_and_irsa() {
    needs_root!();
    let mut b = backend("eks-creds");
    let run = b.run_id().to_string();
    let (d, _) = deploy(&mut b, &eks_plan(&run, 2, "credentials = \"pod-identity\"\n"));
    for inst in &d.instances {
        let (pid, tenant) = (inst.pid.unwrap(), inst.tenants[0].clone());
        let uri = env_of(pid, "AWS_CONTAINER_CREDENTIALS_FULL_URI").expect("the webhook's variable");
        let file = env_of(pid, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").unwrap();
        let token = std::fs::read_to_string(in_pod(pid, &file)).expect("the projected token");
        let addr: SocketAddr =
            format!("{}:80", uri.trim_start_matches("http://").split('/').next().unwrap()).parse().unwrap();
        let path = format!("/{}", uri.trim_start_matches("http://").split_once('/').unwrap().1);
        let (status, body) =
            in_netns_of(pid, move || request("GET", addr, &path, &[("authorization", token.trim())])).unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("role/isobench-{run}-pod-{tenant}")), "tenant {tenant}'s role: {body}");
        assert!(body.contains("\"AccessKeyId\""), "{body}");
    }
    teardown(&mut b);

    let (d, _) = deploy(&mut b, &eks_plan(&run, 2, "credentials = \"irsa\"\n"));
    for inst in &d.instances {
        let (pid, tenant) = (inst.pid.unwrap(), &inst.tenants[0]);
        assert_eq!(
            env_of(pid, "AWS_ROLE_ARN"),
            Some(format!("arn:aws:iam::000000000000:role/isobench-{run}-pod-{tenant}"))
        );
        let file = env_of(pid, "AWS_WEB_IDENTITY_TOKEN_FILE").unwrap();
        let token = std::fs::read_to_string(in_pod(pid, &file)).expect("the projected token");
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        // The host's own /run holds no token: the pod's /run is its own.
        assert!(!Path::new(&file).exists());
    }
    teardown(&mut b);
    finish(b);
}

#[test]
fn security_groups_for_pods_block_tenants_on_a_shared_node_without_a_policy() {
    needs_root!();
    let mut b = backend("eks-sg");
    let run = b.run_id().to_string();
    let tier = "[tier.node]\ncount = 1\n[tier.network]\nsecurity_groups = [\"tenant-{tenant}\"]\n\
                [[tier.security_group]]\nname = \"tenant-{tenant}\"\ningress = [{ port = 8080, source_group = \"harness\" }]\n";
    let (d, _) = deploy(&mut b, &eks_plan(&run, 3, tier));
    let c = b.eks_cluster().unwrap().clone();
    assert_eq!(c.nodes.len(), 1, "every pod on one node");
    assert!(c.pods.iter().all(|p| p.groups == [format!("tenant-{}", p.tenant)]), "{:?}", c.pods);
    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(ok, 0, "per-pod groups: no tenant reaches another ({ok} of {pairs} did)");
    assert_eq!(imds_role_from(d.instances[0].pid.unwrap()), Ok(format!("isobench-{run}-node")));
    teardown(&mut b);
    finish(b);
}

/// The three patterns of `scenarios/eks.toml` side by side, as a run does them: each deployed
/// and torn down in turn through one backend, each tenant pair and each pod's IMDS token checked against what the tier's
/// settings lead one to expect on AWS.
#[test]
fn the_three_patterns_side_by_side() {
    needs_root!();
    let mut b = backend("eks-three");
    let run = b.run_id().to_string();
    let src = std::fs::read_to_string(scenarios_dir().join("eks.toml")).expect("scenarios/eks.toml");
    let scenario = Scenario::parse(&src, Path::new("eks.toml")).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(run.clone(), scenario, "test".into(), &Overrides::default());
    let tiers: Vec<TierPlan> = plan.tiers.into_iter().filter(|t| t.tier == TierId::EksPod).collect();
    assert_eq!(tiers.len(), 3, "three eks-pod tiers in scenarios/eks.toml");
    for t in &tiers {
        let TierSettings::Eks(spec) = &t.settings else { panic!("eks settings") };
        let (d, took) = deploy(&mut b, t);
        let isolated = spec.network_policy == isobench_core::scenario::eks::NetworkPolicy::DefaultDeny
            || spec.security_groups.is_some();
        let (ok, pairs) = tenant_matrix(&d);
        assert_eq!(ok, if isolated { 0 } else { pairs }, "{}: {ok} of {pairs} cross-tenant connects", t.name);
        let token = imds_token_from(d.instances[0].pid.unwrap());
        // The token PUT is hop-limited whatever `http_tokens` says (IMDSv1 GETs are not).
        assert_eq!(token.is_ok(), spec.node.http_put_response_hop_limit >= 2, "{}: {token:?}", t.name);
        let down = teardown(&mut b);
        println!(
            "{} ({}): {ok}/{pairs} cross-tenant connects, IMDS token from a pod: {}; deploy {:.1} ms, teardown {:.1} ms",
            t.name,
            spec.pattern.as_str(),
            if token.is_ok() { "yes" } else { "no" },
            ms(took),
            ms(down)
        );
    }
    finish(b);
}

/// A deploy whose pods never become ready leaves nothing: no bridge, no table, no cgroup.
#[test]
fn a_failed_deploy_leaves_nothing() {
    needs_root!();
    let run = run_id("eks-fail");
    let mut c = config(&run);
    c.workload_exe = "/bin/sleep".into();
    c.ready_timeout = Duration::from_millis(300);
    let mut b = LocalBackend::new(c).unwrap();
    let netns = b.netns().unwrap();
    let e = b.deploy(&eks_plan(&run, 2, "network_policy = \"default-deny\"\n")).unwrap_err();
    assert!(e.to_string().contains("eks-pod"), "{e}");
    assert!(b.eks_cluster().is_none());
    let links = in_netns(&netns, links_here);
    assert!(links.iter().all(|l| !l.starts_with("eks") && !l.starts_with("nd")), "{links:?}");
    drop(b);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

const CRASH_RUN: &str = "ISOBENCH_TEST_EKS_CRASH_RUN";

#[test]
fn a_crashed_eks_deploy_is_swept() {
    needs_root!();
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    let host_tables =
        || std::process::Command::new("nft").args(["list", "tables"]).output().map(|o| o.stdout).unwrap_or_default();
    let before = (host_network(), host_tables());
    let run = run_id("eks-crash");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "eks::eks_crash_helper", "--ignored", "--nocapture", "--test-threads=1"])
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
    let r = sweep(&SweepOptions { dry_run: false, run: Some(run.clone()), force: false }).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(r.found.iter().any(|f| f.contains("eks-pod-")), "{:?}", r.found);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    assert_eq!(leftovers::run_files(&run), Vec::<String>::new());
    for pid in pids {
        assert!(!process_running(pid), "pod workload {pid} survived the crash");
    }
    // Nodes and bridge lived in namespaces only the crashed harness held: nothing on the host.
    assert_eq!((host_network(), host_tables()), before);
}

/// Run by [`a_crashed_eks_deploy_is_swept`] in a child process: deploys, reports, waits.
#[test]
#[ignore = "helper: runs only in the child process of an EKS sweep test"]
fn eks_crash_helper() {
    let Some(run) = std::env::var_os(CRASH_RUN) else { return };
    let run = run.to_string_lossy().into_owned();
    let mut b = LocalBackend::new(config(&run)).unwrap();
    let d = b.deploy(&eks_plan(&run, 2, "network_policy = \"default-deny\"\n")).unwrap();
    let pids: Vec<String> = d.instances.iter().map(|i| i.pid.unwrap().to_string()).collect();
    println!("READY {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(60));
    drop(b);
}

/// Deploy and teardown of 20 pods on shared nodes with default-deny policies: pod start time
/// (cgroup creation to the workload's first 200), the node namespaces, the `nft` runs; printed.
#[test]
fn twenty_pods_deploy_and_teardown_timing() {
    needs_root!();
    let mut b = backend("eks-timing");
    let run = b.run_id().to_string();
    let (d, took) = deploy(&mut b, &eks_plan(&run, 20, "network_policy = \"default-deny\"\n"));
    let c = b.eks_cluster().unwrap().clone();
    assert!(c.nodes.len() >= 3, "20 pods of 250m do not fit on fewer m5.large nodes: {}", c.nodes.len());
    let mut starts: Vec<Duration> = d.instances.iter().map(|i| i.start_time).collect();
    starts.sort();
    let down = teardown(&mut b);
    println!(
        "eks 20 pods on {} nodes, default deny: deploy {:.1} ms (bridge, endpoints and nodes {:.1} ms, {} nft runs {:.1} ms), pod start p50 {:.1} ms max {:.1} ms, teardown {:.1} ms",
        c.nodes.len(),
        ms(took),
        ms(c.network_setup),
        c.nodes.len(),
        ms(c.filter_install),
        ms(starts[starts.len() / 2]),
        ms(starts[starts.len() - 1]),
        ms(down)
    );
    finish(b);
}
