use isobench_core::backend::Backend;
use isobench_core::tier::TierId;
use isobench_testkit::netns::host_network;
use isobench_testkit::process::pid_alive;
use isobench_testkit::{cgroup, leftovers, needs_root};

use crate::util::*;

#[test]
fn teardown_all_leaves_nothing_and_the_host_network_is_untouched() {
    needs_root!();
    let before = host_network();
    let mut b = backend("teardown");
    let run = b.run_id().to_string();
    let silo = b.deploy(&plan(&run, TierId::SiloEc2, 3, "t3.micro")).unwrap();
    let shared = b.deploy(&plan(&run, TierId::SharedEc2, 3, "t3.micro")).unwrap();
    let pids: Vec<u32> = silo.instances.iter().chain(&shared.instances).map(|i| i.pid.unwrap()).collect();
    assert_eq!(host_network(), before, "deploying changed the host's interfaces or routes");
    assert!(std::path::Path::new(&format!("/run/isobench/{run}.lock")).exists());
    assert!(!leftovers::of_run(&run).is_empty());

    let r = b.teardown_all().unwrap();
    assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
    assert_eq!(r.removed.iter().filter(|s| s.starts_with("instance ")).count(), 4, "{:?}", r.removed);
    println!("teardown_all of 4 instances: {:.2} ms", r.duration.as_secs_f64() * 1e3);
    // Gone, not even zombies (no process is orphaned on teardown).
    for pid in pids {
        assert!(!pid_alive(pid), "workload {pid} still in the process table");
    }
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    assert_eq!(host_network(), before);
    // Idempotent.
    let again = b.teardown_all().unwrap();
    assert!(again.removed.is_empty() && again.left_behind.is_empty(), "{again:?}");
    drop(b);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

#[test]
fn dropping_the_backend_tears_everything_down() {
    needs_root!();
    let mut b = backend("drop");
    let run = b.run_id().to_string();
    let d = b.deploy(&plan(&run, TierId::SiloEc2, 2, "t3.micro")).unwrap();
    assert_eq!(d.instances.len(), 2);
    drop(b);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}

#[test]
fn a_workload_that_exits_fails_the_deploy_cleanly_with_its_output() {
    needs_root!();
    let run = run_id("noanswer");
    // `/bin/sleep` rejects the serve flags and exits: the deploy fails naming the instance,
    // with the workload's own words, and leaves no instance behind.
    let mut c = config(&run);
    c.workload_exe = "/bin/sleep".into();
    c.ready_timeout = std::time::Duration::from_millis(300);
    let mut b = isobench_local::LocalBackend::new(c).unwrap();
    let e = b.deploy(&plan(&run, TierId::SiloEc2, 2, "t3.micro")).unwrap_err();
    let chain = format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default());
    // Both instances start together; whichever fails first is named.
    let named = chain.contains("silo-ec2-0") || chain.contains("silo-ec2-1");
    assert!(named && chain.contains("/healthz") && chain.contains("--listen"), "{chain}");
    println!("a failed deploy reads: {chain}");
    assert!(b.instances().is_empty());
    // Only the (empty) run directories remain while the backend lives: no instance cgroups.
    for m in cgroup::mounts() {
        let dir = m.path.join("isobench").join(&run);
        let inside: Vec<_> =
            std::fs::read_dir(&dir).map(|e| e.flatten().filter(|e| e.path().is_dir()).collect()).unwrap_or_default();
        assert!(inside.is_empty(), "{}: {inside:?}", dir.display());
    }
    drop(b);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}
