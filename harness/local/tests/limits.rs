use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, Endpoint};
use isobench_core::tier::TierId;
use isobench_testkit::http::get_in_netns;
use isobench_testkit::process::status_value;
use isobench_testkit::{cgroup, leftovers, needs_root};

use crate::util::*;

fn read(dir: &std::path::Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

#[test]
fn limits_from_the_instance_type_are_in_the_workloads_cgroups() {
    needs_root!();
    let mut b = backend("limits");
    // c7g.medium: 1 vCPU, 2 GiB.
    let d = b.deploy(&plan(b.run_id(), TierId::SiloEc2, 1, "c7g.medium")).expect("deploys");
    let inst = &d.instances[0];
    let pid = inst.pid.unwrap();
    let limits = inst.limits.unwrap();
    assert_eq!(limits.cpu_millis, 1000);
    assert_eq!(limits.memory_bytes, 2 << 30);

    // Read back through the workload's own /proc/<pid>/cgroup, whichever layout the host has.
    let mut checked = 0;
    if let Some(cpu) = cgroup::dir_of(pid, "cpu") {
        assert!(cpu.to_string_lossy().contains(b.run_id()), "{cpu:?}");
        assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "100000");
        assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
        let mem = cgroup::dir_of(pid, "memory").unwrap();
        assert_eq!(read(&mem, "memory.limit_in_bytes"), (2u64 << 30).to_string());
        let pids = cgroup::dir_of(pid, "pids").unwrap();
        assert_eq!(read(&pids, "pids.max"), "1024");
        checked += 1;
    } else {
        let v2 = cgroup::dir_of(pid, "").expect("a v2 cgroup");
        assert_eq!(read(&v2, "cpu.max"), "100000 100000");
        assert_eq!(read(&v2, "memory.max"), (2u64 << 30).to_string());
        assert_eq!(read(&v2, "pids.max"), "1024");
        checked += 1;
    }
    assert_eq!(checked, 1);
    // Where a v2 tree exists the workload is in it too (for cgroup.kill and cgroup.freeze).
    if cgroup::v2_mount().is_some() {
        let v2 = cgroup::dir_of(pid, "").unwrap();
        assert!(v2.to_string_lossy().contains(&format!("isobench/{}/{}", b.run_id(), inst.id)), "{v2:?}");
    }
    b.teardown_all().unwrap();
}

#[test]
fn a_frozen_instance_stops_answering_until_thawed() {
    needs_root!();
    let mut b = backend("freeze");
    let d = b.deploy(&plan(b.run_id(), TierId::SiloEc2, 1, "t3.micro")).expect("deploys");
    let netns = d.netns.clone().unwrap();
    let Endpoint::Http(addr) = d.targets[0].endpoint else { panic!("an HTTP endpoint") };
    let id = d.instances[0].id.clone();
    let pid = d.instances[0].pid.unwrap();

    assert_eq!(get_in_netns(&netns, addr, "/healthz", None).unwrap().0, 200);
    let used = b.cpu_usage(&id).unwrap();
    assert!(used > Duration::ZERO, "no CPU time accounted");

    b.freeze(&id).unwrap();
    let state = status_value(pid, "State");
    assert!(
        state.contains("stopped") || state.contains("frozen") || state.starts_with('S') || state.starts_with('D'),
        "{state}"
    );
    let t0 = Instant::now();
    assert!(get_in_netns(&netns, addr, "/healthz", None).is_err(), "a frozen workload answered");
    assert!(t0.elapsed() >= Duration::from_millis(400));
    let frozen_cpu = b.cpu_usage(&id).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(b.cpu_usage(&id).unwrap(), frozen_cpu, "CPU time grew while frozen");

    b.thaw(&id).unwrap();
    assert_eq!(get_in_netns(&netns, addr, "/healthz", None).unwrap().0, 200);

    // Teardown of a frozen instance still works (the kill goes through the freezer).
    b.freeze(&id).unwrap();
    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert_eq!(leftovers::of_run(b.run_id()), Vec::<String>::new());
}
