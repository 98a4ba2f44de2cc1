use std::collections::BTreeSet;

use isobench_core::backend::{Backend, Endpoint};
use isobench_core::tier::TierId;
use isobench_testkit::needs_root;
use isobench_testkit::netns::local_addrs;
use isobench_testkit::process::{ns_inode, status_field};

use crate::util::*;

#[test]
fn each_tenant_gets_its_own_namespaces_address_uid_and_tmp() {
    needs_root!();
    let mut b = backend("silo");
    let d = b.deploy(&plan(b.run_id(), TierId::SiloEc2, 3, "t3.micro")).expect("deploys");
    let netns = d.netns.clone().expect("a harness namespace");
    assert_eq!(d.instances.len(), 3, "one instance per tenant");
    assert_eq!(d.targets.len(), 3);

    let me = std::process::id();
    let mut seen: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); 5];
    let mut addrs = BTreeSet::new();
    let mut uids = BTreeSet::new();
    for (inst, target) in d.instances.iter().zip(&d.targets) {
        assert_eq!(inst.tenants, std::slice::from_ref(&target.tenant));
        let pid = inst.pid.expect("the workload's host pid");
        // The real workload process, not the sandbox: its executable is the workload.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.ends_with("tenant-app") || std::env::var_os("ISOBENCH_WORKLOAD").is_some(), "{exe:?}");
        for (i, kind) in ["net", "mnt", "pid", "uts", "ipc"].iter().enumerate() {
            let ino = ns_inode(pid, kind);
            assert_ne!(ino, ns_inode(me, kind), "{} shares the harness's {kind} namespace", inst.id);
            assert!(seen[i].insert(ino), "{} shares a {kind} namespace with another tenant", inst.id);
        }
        // The address, as the kernel inside the instance's namespace has it.
        let local = local_addrs(pid);
        assert_eq!(local.len(), 1, "{local:?}");
        let addr = *local.iter().next().unwrap();
        assert_eq!(Some(addr.into()), inst.address);
        assert!(addrs.insert(addr), "address {addr} used twice");
        let Endpoint::Http(sa) = target.endpoint else { panic!("an HTTP endpoint") };
        assert_eq!(sa.ip(), std::net::IpAddr::V4(addr));

        // A dedicated, unprivileged uid and gid.
        let uid: u32 = status_field(pid, "Uid").parse().unwrap();
        let gid: u32 = status_field(pid, "Gid").parse().unwrap();
        assert!(uid >= 200_000 && gid == uid, "uid {uid} gid {gid}");
        assert!(uids.insert(uid), "uid {uid} used twice");
        assert_eq!(status_field(pid, "CapEff"), "0000000000000000", "no capabilities left");
        assert_eq!(status_field(pid, "NoNewPrivs"), "1");

        // Nothing of the harness's leaks in through descriptors: above stdio, only what the
        // workload opened itself (no namespace, executable, status pipe or log descriptor).
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
            let n: u32 = fd.file_name().to_string_lossy().parse().unwrap();
            let target = std::fs::read_link(fd.path()).map(|t| t.display().to_string()).unwrap_or_default();
            if n <= 2 {
                continue;
            }
            assert!(
                !target.starts_with("net:") && !target.starts_with("/memfd:") && !target.ends_with("tenant-app"),
                "{} inherited fd {n} -> {target}",
                inst.id
            );
        }
        assert_eq!(std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap(), std::path::Path::new("/dev/null"));

        // What the workload says about itself, over the instance network.
        let who = whoami(&netns, sa, &target.tenant);
        assert_eq!(who["tenant"], target.tenant.as_str());
        assert_eq!(who["hostname"], inst.id.as_str());
        assert_eq!(who["uid"], uid);
        assert_eq!(who["pid"], 1, "PID 1 of its own pid namespace");
        // Its /proc shows only its own pid namespace.
        let procs: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/root/proc"))
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().filter(|n| n.parse::<u32>().is_ok()).map(str::to_string))
            .collect();
        assert_eq!(procs, ["1"], "the workload sees other processes");
    }

    // A private /tmp: a file planted in one instance's /tmp is in no other's, nor the host's.
    let pids: Vec<u32> = d.instances.iter().map(|i| i.pid.unwrap()).collect();
    let canary = format!("canary-{}", b.run_id());
    let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", pids[0])).unwrap();
    assert!(mountinfo.lines().any(|l| l.split(' ').nth(4) == Some("/tmp") && l.contains(" - tmpfs ")), "{mountinfo}");
    std::fs::write(format!("/proc/{}/root/tmp/{canary}", pids[0]), "x").unwrap();
    assert!(std::path::Path::new(&format!("/proc/{}/root/tmp/{canary}", pids[0])).exists());
    for pid in &pids[1..] {
        assert!(!std::path::Path::new(&format!("/proc/{pid}/root/tmp/{canary}")).exists(), "leaked to {pid}");
    }
    assert!(!std::path::Path::new(&format!("/tmp/{canary}")).exists(), "leaked to the host's /tmp");

    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
}
