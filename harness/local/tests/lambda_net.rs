//! The network of Lambda execution environments, from inside them: egress to the run's
//! emulated internet and nothing else; nothing connects into an environment (from the
//! harness, from another environment, from the internet); teardown leaves nothing.
//!
//! Each check connects from a thread entered into a namespace (an environment's, the
//! harness's, the internet's), as code running there would.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, Deployment, Endpoint, InvokeOutcome};
use isobench_core::plan::TierPlan;
use isobench_core::scenario::lambda::{LambdaSpec, LambdaVpc};
use isobench_core::security_groups::{AwsvpcConfiguration, EgressRule, NetworkSpec, Protocol, SecurityGroupSpec};
use isobench_core::tier::TierId;
use isobench_core::units::{Dur, DurRange};
use isobench_local::LocalBackend;
use isobench_testkit::http::connect;
use isobench_testkit::netns::{in_netns, local_addrs, of_pid};
use isobench_testkit::{leftovers, needs_root};
use serde_json::json;

use crate::util::*;

/// Where the run's internet answers (documented in the README).
const INTERNET: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 213, 255, 254), 80);
/// A refused or filtered connection gives up after this.
const BLOCKED_AFTER: Duration = Duration::from_millis(400);

fn spec() -> LambdaSpec {
    LambdaSpec {
        memory: 256,
        timeout: Dur(Duration::from_secs(3)),
        keep_alive: DurRange::fixed(Duration::from_secs(60)),
        concurrency: 300,
        ..LambdaSpec::default()
    }
}

fn default_plan(run_id: &str, tier: TierId, tenants: usize) -> TierPlan {
    lambda_plan(run_id, tier, tenants, spec())
}

/// Invokes `tenant`'s function once (a cold start) and returns its environment's namespace
/// and address.
fn warm_env(b: &LocalBackend, d: &Deployment, tier: TierId, tenant: &str) -> (OwnedFd, Ipv4Addr) {
    let t = d.targets.iter().find(|t| t.tenant == tenant).expect("a target");
    let Endpoint::Function(f) = &t.endpoint else { panic!("a function endpoint") };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let r = rt.block_on(f.invoke(tenant, serde_json::to_vec(&json!({"op": "whoami"})).unwrap()));
    assert!(matches!(r.outcome, InvokeOutcome::Ok(_)), "{r:?}");
    let envs = b.environments(Some(tier));
    // A per-tenant function's name ends with its tenant; a shared function has one environment here.
    let env = envs.iter().find(|e| e.function.ends_with(tenant)).or(envs.first()).expect("its environment");
    let pid = env.workload_pid.expect("a workload pid");
    let addrs = local_addrs(pid);
    assert_eq!(addrs.len(), 1, "one address on eth0: {addrs:?}");
    (of_pid(pid), *addrs.iter().next().unwrap())
}

/// `GET /` from inside `ns`.
fn get(ns: &OwnedFd, to: SocketAddrV4) -> Result<String, String> {
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&SocketAddr::V4(to), BLOCKED_AFTER).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
}

fn connect_from(ns: &OwnedFd, to: SocketAddrV4) -> Result<(), String> {
    in_netns(ns, move || connect(SocketAddr::V4(to), BLOCKED_AFTER))
}

/// A listener inside `ns` on every address, port `port`.
fn listen_in(ns: &OwnedFd, port: u16) -> TcpListener {
    in_netns(ns, move || TcpListener::bind(("0.0.0.0", port)).expect("listen inside the environment"))
}

fn internet_ns(run: &str) -> OwnedFd {
    let pin = format!("/run/netns/isobench-{run}@internet");
    std::fs::File::open(&pin).unwrap_or_else(|e| panic!("the run's internet namespace {pin}: {e}")).into()
}

#[test]
fn an_environment_reaches_the_runs_internet_and_nothing_else() {
    needs_root!();
    let mut b = backend("lambda-net-egress");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaPerTenant;
    let silo = b.deploy(&plan(&run, TierId::SiloEc2, 1, "t3.micro")).unwrap();
    let d = b.deploy(&default_plan(&run, tier, 2)).unwrap();
    let (ns, addr) = warm_env(&b, &d, tier, "t0");
    let (_, other) = warm_env(&b, &d, tier, "t1");

    // The internet answers, and sees the environment's own address (no translation).
    let page = get(&ns, INTERNET).expect("the internet answers an environment");
    assert!(page.starts_with("HTTP/1.1 200") && page.contains(&format!("from {addr}")), "{page}");

    // Nothing else: an EC2 instance the harness reaches (the control), the harness itself,
    // the other environment, an address off the emulator's range.
    let Some(std::net::IpAddr::V4(instance)) = silo.instances[0].address else { panic!("an instance address") };
    let wport = isobench_core::workload_api::DEFAULT_PORT;
    let harness = b.netns().expect("the harness namespace");
    connect_from(&harness, SocketAddrV4::new(instance, wport)).expect("control: the harness reaches the instance");
    // A listener of the harness's own on the environments' gateway (only the packet filter
    // stands between them: the gateway is on-link for the environment).
    let gateway = SocketAddrV4::new(Ipv4Addr::new(10, 213, 0, 1), 7778);
    let _harness_listener = in_netns(&harness, move || TcpListener::bind(gateway).expect("listen in the harness"));
    connect_from(&harness, gateway).expect("control: the harness reaches its own listener");
    let port = |a: Ipv4Addr, p: u16| SocketAddrV4::new(a, p);
    for to in [
        port(instance, wport),
        gateway,
        port(isobench_local::IMDS_ADDR, 80),
        port(other, 8080),
        port(Ipv4Addr::new(1, 1, 1, 1), 80),
    ] {
        let r = connect_from(&ns, to);
        assert!(r.is_err(), "an environment reached {to}");
    }
    let report = b.teardown_all().unwrap();
    assert!(report.left_behind.is_empty(), "{:?}", report.left_behind);
    for what in ["lambda-pt", "isobench_lambda_pt", "isobench_internet", "internet responder"] {
        assert!(report.removed.iter().any(|r| r.contains(what)), "teardown names {what}: {:#?}", report.removed);
    }
    assert!(!std::path::Path::new(&format!("/run/netns/isobench-{run}@internet")).exists());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

#[test]
fn nothing_connects_into_an_environment() {
    needs_root!();
    let mut b = backend("lambda-net-inbound");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaPerTenant;
    let d = b.deploy(&default_plan(&run, tier, 2)).unwrap();
    let (a, a_addr) = warm_env(&b, &d, tier, "t0");
    let (other, _) = warm_env(&b, &d, tier, "t1");
    let _listener = listen_in(&a, 7777);
    let target = SocketAddrV4::new(a_addr, 7777);

    // Control: the listener answers inside its own environment.
    connect_from(&a, target).expect("control: the environment reaches its own listener");
    let harness = b.netns().expect("the harness namespace");
    let internet = internet_ns(&run);
    for (from, ns) in [("the harness", &*harness), ("another environment", &other), ("the internet", &internet)] {
        let t0 = Instant::now();
        let r = connect_from(ns, target);
        assert!(r.is_err(), "{from} connected into an environment");
        println!("{from} -> environment: {} after {:.0} ms", r.unwrap_err(), ms(t0.elapsed()));
    }
    let report = b.teardown_all().unwrap();
    assert!(report.left_behind.is_empty(), "{:?}", report.left_behind);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

/// A VPC whose one group (per tenant) allows TCP to the responder's port 80 only.
fn vpc_to_port_80() -> LambdaVpc {
    let group = "fn-{tenant}".to_string();
    let rule = EgressRule { protocol: Protocol::Tcp, ports: Some((80, 80)), destination: (*INTERNET.ip(), 32) };
    LambdaVpc {
        network: NetworkSpec {
            interface: AwsvpcConfiguration { security_groups: vec![group.clone()], ..Default::default() },
            security_groups: vec![SecurityGroupSpec {
                name: group.clone(),
                description: String::new(),
                ingress: vec![],
            }],
        },
        egress: [(group, vec![rule])].into_iter().collect(),
    }
}

#[test]
fn with_a_vpc_what_the_groups_allow_is_reachable_and_nothing_else() {
    needs_root!();
    let mut b = backend("lambda-net-vpc");
    let run = b.run_id().to_string();
    let mut s = spec();
    s.vpc = Some(vpc_to_port_80());
    let d_vpc = b.deploy(&lambda_plan(&run, TierId::LambdaPerTenant, 1, s)).unwrap();
    let d_open = b.deploy(&default_plan(&run, TierId::LambdaShared, 1)).unwrap();
    let (vpc_env, vpc_addr) = warm_env(&b, &d_vpc, TierId::LambdaPerTenant, "t0");
    let (open_env, _) = warm_env(&b, &d_open, TierId::LambdaShared, "t0");
    // A second service in the internet namespace, on a port the group does not allow.
    let internet = internet_ns(&run);
    let other = SocketAddrV4::new(*INTERNET.ip(), 81);
    let _other_listener = in_netns(&internet, move || TcpListener::bind(other).expect("listen in the internet"));

    // Allowed by the group: the responder's port 80.
    let page = get(&vpc_env, INTERNET).expect("the group allows port 80");
    assert!(page.contains(&format!("from {vpc_addr}")), "{page}");
    // Not allowed: port 81 on the same address, which the tier without a VPC reaches (the
    // control: only the group's rules stand between them).
    connect_from(&open_env, other).expect("control: a tier without a VPC reaches port 81");
    assert!(connect_from(&vpc_env, other).is_err(), "the group does not allow port 81");
    // Still nothing inbound.
    let _listener = listen_in(&vpc_env, 7777);
    let target = SocketAddrV4::new(vpc_addr, 7777);
    connect_from(&vpc_env, target).expect("control: its own listener answers inside");
    let harness = b.netns().expect("the harness namespace");
    for (from, ns) in
        [("the harness", &*harness), ("another tier's environment", &open_env), ("the internet", &internet)]
    {
        assert!(connect_from(ns, target).is_err(), "{from} connected into a VPC environment");
    }
    let report = b.teardown_all().unwrap();
    assert!(report.left_behind.is_empty(), "{:?}", report.left_behind);
    for what in ["lambda-pt", "lambda-s", "isobench_internet"] {
        assert!(report.removed.iter().any(|r| r.contains(what)), "teardown names {what}: {:#?}", report.removed);
    }
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

/// What wiring environments into the network costs: INIT of lone cold starts one after
/// another, then a storm of first invokes on as many functions at once
/// (`ISOBENCH_STORM`, default 50). Printed; asserts only that every invoke is ok.
#[test]
fn cold_starts_on_the_network_timed() {
    needs_root!();
    let storm: usize = std::env::var("ISOBENCH_STORM").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let mut b = backend("lambda-net-timing");
    let run = b.run_id().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cold = |r: &isobench_core::backend::InvokeResult| match (&r.outcome, r.start) {
        (InvokeOutcome::Ok(_), Some(isobench_core::backend::StartKind::Cold { init })) => init,
        _ => panic!("not an ok cold start: {r:?}"),
    };
    let event = serde_json::to_vec(&json!({"op": "whoami"})).unwrap();
    let functions = |d: &Deployment| -> Vec<(String, std::sync::Arc<dyn isobench_core::backend::Invoke>)> {
        d.targets
            .iter()
            .map(|t| match &t.endpoint {
                Endpoint::Function(f) => (t.tenant.clone(), f.clone()),
                _ => panic!("a function endpoint"),
            })
            .collect()
    };

    let d = b.deploy(&default_plan(&run, TierId::LambdaPerTenant, 20)).unwrap();
    let mut lone = Vec::new();
    for (tenant, f) in functions(&d) {
        let t0 = Instant::now();
        let r = rt.block_on(f.invoke(&tenant, event.clone()));
        lone.push((cold(&r), t0.elapsed()));
    }
    lone.sort();
    let (init, wall) = lone[lone.len() / 2];
    println!("lone cold start, median of {}: INIT {:.2} ms, invoke {:.2} ms", lone.len(), ms(init), ms(wall));

    b.teardown(TierId::LambdaPerTenant).unwrap();
    let d = b.deploy(&default_plan(&run, TierId::LambdaPerTenant, storm)).unwrap();
    let t0 = Instant::now();
    let results = rt.block_on(async {
        let calls = functions(&d).into_iter().map(|(tenant, f)| {
            let event = event.clone();
            tokio::spawn(async move { f.invoke(&tenant, event).await })
        });
        futures_join(calls.collect()).await
    });
    let all = t0.elapsed();
    let mut inits: Vec<Duration> = results.iter().map(cold).collect();
    inits.sort();
    println!(
        "storm of {storm} first invokes: all done in {:.0} ms, INIT median {:.2} ms, max {:.2} ms; loadavg {}",
        ms(all),
        ms(inits[inits.len() / 2]),
        ms(*inits.last().unwrap()),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let report = b.teardown_all().unwrap();
    assert!(report.left_behind.is_empty(), "{:?}", report.left_behind);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

async fn futures_join<T: Send + 'static>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("the invoke task"));
    }
    out
}

/// A tier deployed again in one backend gets its block of addresses back, as a bench or a
/// long test redeploys one many times: forty deploys take more than the /16's 32 blocks.
#[test]
fn a_tier_redeployed_many_times_keeps_its_block_of_addresses() {
    needs_root!();
    let mut b = backend("lambda-net-redeploy");
    let run = b.run_id().to_string();
    let tier = TierId::LambdaPerTenant;
    let mut addrs = Vec::new();
    for i in 0..40 {
        let d = b.deploy(&default_plan(&run, tier, 1)).unwrap_or_else(|e| panic!("deploy {i}: {e}"));
        if i % 13 == 0 {
            addrs.push(warm_env(&b, &d, tier, "t0").1);
        }
        drop(d);
        assert!(b.teardown(tier).unwrap().left_behind.is_empty());
    }
    let block = |a: &Ipv4Addr| u32::from(*a) >> 11;
    assert!(addrs.windows(2).all(|w| block(&w[0]) == block(&w[1])), "one /21 throughout: {addrs:?}");
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}
