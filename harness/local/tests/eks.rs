//! `eks-pod`: pods behind their nodes, checked from inside the pods' namespaces: the harness
//! reaches every pod, a pod's only way out is its node, cross-tenant traffic passes without a
//! network policy and not with a default-deny one, IMDS answers each node as itself through
//! the node, and teardown leaves nothing.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use isobench_core::backend::{Backend, Deployment, Endpoint};
use isobench_core::plan::TierPlan;
use isobench_core::tier::TierId;
use isobench_local::{EksConfig, IMDS_ADDR, LocalBackend, POD_GATEWAY, Pattern};
use isobench_testkit::http::{connect, get_in_netns, request};
use isobench_testkit::netns::{in_netns, in_netns_of, links_here, routes_here};
use isobench_testkit::{leftovers, needs_root};

use crate::util::*;

const PORT: u16 = 8080;
/// Stands in for the `eks-pod` tier id until the core types exist.
const TIER: TierId = TierId::SiloEc2;

fn cfg(pattern: Pattern, nodes: u32, default_deny: bool) -> EksConfig {
    EksConfig {
        pattern,
        default_deny,
        node_count: nodes,
        instance_type: "m5.large".into(),
        tokens_required: true,
        hop_limit: 2,
        block_imds: false,
        pod_cpu_millis: 250,
        pod_memory_bytes: 256 << 20,
        node_role: |run, t| match t {
            Some(t) => format!("isobench-{run}-node-{t}"),
            None => format!("isobench-{run}-node"),
        },
        groups: None,
    }
}

fn eks_plan(b: &LocalBackend, tenants: usize) -> TierPlan {
    plan(b.run_id(), TIER, tenants, "m5.large")
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

/// The node role IMDS names for a caller inside pod `pid`: token, then the role listing.
fn imds_role_from(pid: u32) -> Result<String, String> {
    in_netns_of(pid, || {
        let imds = SocketAddr::V4(SocketAddrV4::new(IMDS_ADDR, 80));
        let (s, token) = request("PUT", imds, "/latest/api/token", &[("x-aws-ec2-metadata-token-ttl-seconds", "60")])?;
        if s != 200 {
            return Err(format!("token: {s}"));
        }
        let path = "/latest/meta-data/iam/security-credentials/";
        let (s, role) = request("GET", imds, path, &[("x-aws-ec2-metadata-token", &token)])?;
        if s != 200 { Err(format!("role: {s}")) } else { Ok(role) }
    })
}

#[test]
fn shared_nodes_leak_across_tenants_without_a_policy_and_not_with_default_deny() {
    needs_root!();
    let mut b = backend("eks-ns");
    let n = 4;
    let run = b.run_id().to_string();

    let t0 = std::time::Instant::now();
    let d = b.deploy_eks_with(&eks_plan(&b, n), &cfg(Pattern::NamespacePerTenant, 2, false)).expect("deploys");
    let deploy = t0.elapsed();
    assert_eq!(d.instances.len(), n, "one pod per tenant");
    let c = b.eks_cluster(TIER).unwrap().clone();
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.nodes.iter().map(|n| n.pods.len()).collect::<Vec<_>>(), [2, 2], "round robin");
    assert!(c.nodes.iter().all(|n| n.role == format!("isobench-{run}-node")), "one node role: {:?}", c.nodes);
    harness_reaches_all(&d);

    // A pod's only route is the default through 169.254.1.1, on its eth0.
    let routes = in_netns_of(d.instances[0].pid.unwrap(), routes_here);
    assert!(routes.iter().any(|r| r.prefix == 0 && r.gateway == POD_GATEWAY && r.iface == "eth0"), "{routes:?}");
    assert!(routes.iter().all(|r| r.gateway == POD_GATEWAY || r.dst == POD_GATEWAY), "{routes:?}");

    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(ok, pairs, "without a policy every tenant reaches every other, across nodes too");
    // IMDS through the node, answered as the node (its role).
    assert_eq!(imds_role_from(d.instances[1].pid.unwrap()), Ok(format!("isobench-{run}-node")));
    let r = b.teardown(TIER).unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    println!(
        "eks namespace-per-tenant, no policy: {ok}/{pairs} cross-tenant connects; deploy {:.1} ms (network {:.1} ms, nft {:.1} ms), teardown {:.1} ms",
        ms(deploy),
        ms(c.network_setup),
        ms(c.filter_install),
        ms(r.duration)
    );

    let t0 = std::time::Instant::now();
    let d = b.deploy_eks_with(&eks_plan(&b, n), &cfg(Pattern::NamespacePerTenant, 2, true)).expect("deploys");
    let deploy = t0.elapsed();
    let c = b.eks_cluster(TIER).unwrap().clone();
    assert_eq!(c.policies.len(), n, "{:?}", c.policies);
    harness_reaches_all(&d);
    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(ok, 0, "default deny: no tenant reaches another ({ok} of {pairs} did)");
    let r = b.teardown(TIER).unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    println!(
        "eks namespace-per-tenant, default deny: {ok}/{pairs} cross-tenant connects; deploy {:.1} ms, teardown {:.1} ms",
        ms(deploy),
        ms(r.duration)
    );
    let links = in_netns(&b.netns().unwrap(), links_here);
    assert!(links.iter().all(|l| !l.starts_with("eks") && !l.starts_with("nd")), "{links:?}");
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    drop(b);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

#[test]
fn node_per_tenant_gives_each_tenant_its_node_and_node_role() {
    needs_root!();
    let mut b = backend("eks-node");
    let run = b.run_id().to_string();
    let d = b.deploy_eks_with(&eks_plan(&b, 2), &cfg(Pattern::NodePerTenant, 1, false)).expect("deploys");
    let c = b.eks_cluster(TIER).unwrap().clone();
    assert_eq!(c.nodes.len(), 2, "one node per tenant");
    harness_reaches_all(&d);
    for (i, inst) in d.instances.iter().enumerate() {
        let tenant = &inst.tenants[0];
        let node = c.nodes.iter().find(|n| n.pods.contains(&inst.id)).unwrap();
        assert_eq!(node.tenant.as_deref(), Some(tenant.as_str()));
        assert_eq!(imds_role_from(inst.pid.unwrap()), Ok(format!("isobench-{run}-node-{tenant}")), "pod {i}");
    }
    assert!(b.eks_imds_requests(TIER).unwrap() >= 4);
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    drop(b);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

#[test]
fn security_groups_for_pods_block_tenants_on_a_shared_node_without_a_policy() {
    needs_root!();
    let mut b = backend("eks-sg");
    let run = b.run_id().to_string();
    let plan = eks_plan(&b, 3);
    let tenants: Vec<String> = plan.tenants.iter().map(|t| t.id.clone()).collect();
    let mut c = cfg(Pattern::NamespacePerTenant, 1, false);
    // Each tenant's pod in its own group, admitting only the harness on the workload's port.
    c.groups = Some(isobench_core::scenario::ecs::default_network().resolve(&run, &tenants));
    let d = b.deploy_eks_with(&plan, &c).expect("deploys");
    assert_eq!(b.eks_cluster(TIER).unwrap().nodes.len(), 1, "every pod on one node");
    harness_reaches_all(&d);
    let (ok, pairs) = tenant_matrix(&d);
    assert_eq!(ok, 0, "per-pod groups: no tenant reaches another ({ok} of {pairs} did)");
    assert_eq!(imds_role_from(d.instances[0].pid.unwrap()), Ok(format!("isobench-{run}-node")));
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
}
