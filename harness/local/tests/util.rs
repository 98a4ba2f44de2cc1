//! Helpers shared by the integration tests. Everything that checks isolation reads the kernel's
//! view (`/proc/<pid>/...`, cgroup files, mountinfo) rather than the backend's bookkeeping.
//!
//! Binaries: the sandbox is `CARGO_BIN_EXE_isobench-sandbox`; the workload is
//! `$ISOBENCH_WORKLOAD` if set, else `tenant-app` in the same target directory (build it first
//! with `cargo build -p tenant-app`, using the same `CARGO_TARGET_DIR`).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use isobench_core::instance_types::lookup;
use isobench_core::plan::TierPlan;
use isobench_core::scenario::{Ec2Spec, TenantSpec, TierSettings, WorkloadSpec};
use isobench_core::tier::TierId;
use isobench_local::{LocalBackend, LocalConfig};

/// Skips the test (with a message) unless it runs as root on a kernel with namespaces.
#[macro_export]
macro_rules! needs_root {
    () => {
        if let Some(why) = $crate::util::cannot_isolate() {
            eprintln!("skipping {}: needs root with namespaces and cgroups ({why})", module_path!());
            return;
        }
    };
}

/// Why this process cannot run the emulator, if it cannot.
pub fn cannot_isolate() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for ns in ["net", "mnt", "pid", "uts", "ipc"] {
        if !Path::new(&format!("/proc/self/ns/{ns}")).exists() {
            return Some(format!("no {ns} namespaces"));
        }
    }
    None
}

pub fn sandbox_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_isobench-sandbox"))
}

/// The workload: `$ISOBENCH_WORKLOAD`, else `tenant-app` beside the sandbox.
pub fn workload_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("ISOBENCH_WORKLOAD") {
        return p.into();
    }
    let p = sandbox_exe().with_file_name("tenant-app");
    assert!(
        p.is_file(),
        "the workload {} is missing: build it with `cargo build -p tenant-app` (same CARGO_TARGET_DIR) or set ISOBENCH_WORKLOAD",
        p.display()
    );
    p
}

/// A run id no other test (or test process) uses.
pub fn run_id(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("test-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

pub fn config(run_id: &str) -> LocalConfig {
    LocalConfig::new(run_id, sandbox_exe(), workload_exe())
}

pub fn backend(name: &str) -> LocalBackend {
    LocalBackend::new(config(&run_id(name))).expect("local backend starts")
}

pub fn plan(run_id: &str, tier: TierId, tenants: usize, instance_type: &str) -> TierPlan {
    TierPlan {
        run_id: run_id.into(),
        tier,
        settings: TierSettings::Ec2(Ec2Spec::new(tier, lookup(instance_type).expect("known instance type"))),
        tenants: (0..tenants).map(|i| TenantSpec { id: format!("t{i}"), weight: 1.0 }).collect(),
        workload: WorkloadSpec::default(),
        subnet: (Ipv4Addr::new(10, 213, 0, 0), 16),
        seed: 1,
        faults: Vec::new(),
    }
}

/// A plain HTTP/1.1 GET from a thread inside the network namespace `netns`: (status, body).
pub fn http_get(netns: &OwnedFd, addr: SocketAddr, path: &str, tenant: Option<&str>) -> Result<(u16, String), String> {
    let ns = netns.try_clone().map_err(|e| e.to_string())?;
    let path = path.to_string();
    let tenant = tenant.map(str::to_string);
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(500))).map_err(|e| e.to_string())?;
        let header = tenant.map(|t| format!("x-tenant-id: {t}\r\n")).unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: i\r\n{header}Connection: close\r\n\r\n").map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| format!("read: {e}"))?;
        let status =
            out.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("no status in {out:?}"))?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    })
    .join()
    .map_err(|_| "request thread panicked".to_string())?
}

/// `GET /whoami` as JSON.
pub fn whoami(netns: &OwnedFd, addr: SocketAddr, tenant: &str) -> serde_json::Value {
    let (status, body) = http_get(netns, addr, "/whoami", Some(tenant)).expect("whoami answers");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("whoami is JSON ({e}): {body}"))
}

/// The inode of a process's namespace of `kind` (`net`, `mnt`, `pid`, ...).
pub fn ns_inode(pid: u32, kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}")).unwrap_or_else(|e| panic!("ns {kind} of {pid}: {e}")).ino()
}

/// The local IPv4 addresses of the namespace `pid` is in, other than loopback, from its
/// `/proc/<pid>/net/fib_trie` (the kernel's own table, no `ip` needed).
pub fn local_addrs(pid: u32) -> BTreeSet<Ipv4Addr> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie")).expect("fib_trie");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeSet::new();
    for w in lines.windows(2) {
        if let Some(a) = w[0].trim().strip_prefix("|-- ")
            && w[1].contains("/32 host LOCAL")
            && let Ok(a) = a.parse::<Ipv4Addr>()
            && !a.is_loopback()
        {
            out.insert(a);
        }
    }
    out
}

/// A field of `/proc/<pid>/status` (e.g. `Uid`), its first value.
pub fn status_field(pid: u32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {field} in status of {pid}"))
        .to_string()
}

/// Cgroup mounts from `/proc/self/mountinfo`: (mount point, v2, controllers).
pub fn cgroup_mounts() -> Vec<(PathBuf, bool, Vec<String>)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((l, r)) = line.split_once(" - ") else { continue };
        let l: Vec<&str> = l.split(' ').collect();
        let r: Vec<&str> = r.split(' ').collect();
        match r[0] {
            "cgroup2" => out.push((PathBuf::from(l[4]), true, Vec::new())),
            "cgroup" => out.push((PathBuf::from(l[4]), false, r[2].split(',').map(str::to_string).collect())),
            _ => {}
        }
    }
    out
}

/// The directory of `pid`'s cgroup in the hierarchy with `controller` (`""` for v2), read
/// from `/proc/<pid>/cgroup`.
pub fn cgroup_dir(pid: u32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mounts = cgroup_mounts();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() { ctrls.is_empty() } else { ctrls.split(',').any(|c| c == controller) };
        if !matches {
            continue;
        }
        let mount = mounts
            .iter()
            .find(|(_, v2, c)| if controller.is_empty() { *v2 } else { !*v2 && c.iter().any(|x| x == controller) })?;
        return Some(mount.0.join(path.trim_start_matches('/')));
    }
    None
}

/// Everything of `run_id` still on the host: cgroup dirs in any hierarchy, processes in its
/// cgroups, its lock file.
pub fn leftovers(run_id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (m, _, _) in cgroup_mounts() {
        let d = m.join("isobench").join(run_id);
        if d.exists() {
            found.push(format!("cgroup {}", d.display()));
        }
    }
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let cg = std::fs::read_to_string(p.path().join("cgroup")).unwrap_or_default();
        let pid = p.file_name().to_string_lossy().parse().unwrap_or(0);
        if cg.contains(&format!("/isobench/{run_id}/")) && process_running(pid) {
            found.push(format!("process {}", p.file_name().to_string_lossy()));
        }
    }
    let lock = Path::new("/run/isobench").join(format!("{run_id}.lock"));
    if lock.exists() {
        found.push(format!("lock {}", lock.display()));
    }
    found
}

/// The host's network configuration as seen from this (the host's) namespace: interface
/// names and the IPv4 and IPv6 route tables.
pub fn host_network() -> (Vec<String>, String, String) {
    let mut ifs: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    ifs.sort();
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    (ifs, v4, v6)
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` exists and is not a zombie.
pub fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| !r.trim_start().starts_with('Z')))
        .unwrap_or(false)
}
