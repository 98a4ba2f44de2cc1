//! Helpers for the `ecs-awsvpc` tests: plans from the shipped scenarios, and network calls made
//! from *inside* a task's (or the harness's) network namespace, so that what is checked is what
//! the kernel lets through, not what the backend's bookkeeping says.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use isobench_core::plan::{Overrides, Plan, TierPlan};
use isobench_core::scenario::Scenario;
use isobench_core::tier::TierId;

/// The repository's `scenarios/` directory.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

/// The `ecs-awsvpc` tier of a scenario text, with `tenants` tenants (`t0`, `t1`, ...).
pub fn ecs_plan_from(run: &str, src: &str, tenants: usize) -> TierPlan {
    let ids: Vec<String> = (0..tenants).map(|i| format!("\"t{i}\"")).collect();
    let mut doc: Vec<String> = Vec::new();
    let mut in_tenants = false;
    for line in src.lines() {
        if line.trim_start().starts_with('[') {
            in_tenants = line.trim() == "[tenants]";
            doc.push(line.to_string());
            if in_tenants {
                doc.push(format!("count = {tenants}\nids = [{}]", ids.join(", ")));
            }
            continue;
        }
        if !in_tenants {
            doc.push(line.to_string());
        }
    }
    let scenario = Scenario::parse(&doc.join("\n"), Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(run.to_string(), scenario, "test".into(), &Overrides::default());
    plan.tiers.into_iter().find(|t| t.tier == TierId::EcsAwsvpc).expect("the scenario has an ecs-awsvpc tier")
}

/// The `ecs-awsvpc` tier of `scenarios/<file>`, with `tenants` tenants.
pub fn ecs_plan(run: &str, file: &str, tenants: usize) -> TierPlan {
    let src = std::fs::read_to_string(scenarios_dir().join(file)).expect("scenario file");
    ecs_plan_from(run, &src, tenants)
}

/// `scenarios/ecs.toml`'s ECS tier with its `[tier.container_instance]` and launch type
/// replaced by `launch` (a TOML fragment such as `launch_type = "fargate"`).
pub fn ecs_plan_with(run: &str, tenants: usize, launch: &str) -> TierPlan {
    let src = std::fs::read_to_string(scenarios_dir().join("ecs.toml")).unwrap();
    let (head, _) = src.split_once("launch_type = \"ec2\"").unwrap();
    let (_, groups) = src.split_once("[tier.task_definition]").unwrap();
    let (groups, _) = groups.split_once("[tier.container_instance]").unwrap();
    ecs_plan_from(run, &format!("{head}{launch}\n[tier.task_definition]{groups}"), tenants)
}

/// Runs `f` on a fresh thread inside the network namespace of process `pid`.
pub fn in_netns_of<T: Send + 'static>(pid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns: OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("netns of the task").into();
    in_netns(&ns, f)
}

/// Runs `f` on a fresh thread inside the network namespace `ns`.
pub fn in_netns<T: Send + 'static>(ns: &OwnedFd, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.try_clone().unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("the thread in the namespace panicked")
}

/// A TCP connect from the current thread's namespace.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    TcpStream::connect_timeout(&addr, timeout).map(drop).map_err(|e| e.to_string())
}

/// One HTTP/1.1 request (`Connection: close`) from the current thread's namespace:
/// (status, body).
pub fn http(method: &str, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", addr.ip());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "PUT" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("read: {e}"))?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("no status in {out:?}"))?;
    Ok((status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

/// A variable of the environment process `pid` was started with (the kernel's copy).
pub fn env_of(pid: u32, key: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    raw.split(|b| *b == 0).find_map(|kv| {
        let kv = String::from_utf8_lossy(kv);
        kv.strip_prefix(&format!("{key}=")).map(str::to_string)
    })
}

/// A string field of a flat JSON object (the metadata documents are flat).
pub fn json_field(body: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get(key)?.as_str().map(str::to_string)
}

/// One route of `/proc/<...>/net/route`: (interface, destination, gateway, prefix length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub dst: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix: u32,
}

fn hex_addr(s: &str) -> Ipv4Addr {
    // /proc/net/route prints addresses as host-order hex of the network-order value.
    Ipv4Addr::from(u32::from_str_radix(s, 16).unwrap().to_le_bytes())
}

/// The main IPv4 routing table of the current thread's namespace, from the kernel.
pub fn routes_here() -> Vec<Route> {
    let text = std::fs::read_to_string("/proc/thread-self/net/route").unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Route {
                iface: f[0].to_string(),
                dst: hex_addr(f[1]),
                gateway: hex_addr(f[2]),
                prefix: u32::from(hex_addr(f[7])).count_ones(),
            }
        })
        .collect()
}

/// The interfaces of the current thread's namespace, from the kernel.
pub fn links_here() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
    text.lines().skip(2).filter_map(|l| l.split(':').next()).map(|s| s.trim().to_string()).collect()
}

/// Output of `nft ARGS` run inside the network namespace `ns` (the test's own view of the
/// packet filter, independent of the backend).
pub fn nft_in(ns: &OwnedFd, args: &[&str]) -> String {
    let fd = ns.as_raw_fd();
    let mut cmd = std::process::Command::new("nft");
    cmd.args(args);
    // SAFETY: only setns(2), async-signal-safe, between fork and exec; `fd` is open.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The packet count of the first `counter` on a line containing `marker` in `nft` output.
pub fn counter(listing: &str, marker: &str) -> u64 {
    listing
        .lines()
        .find(|l| l.contains(marker) && l.contains("counter packets"))
        .and_then(|l| l.split("counter packets ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
