use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isobench_core::backend::{Backend, Endpoint};
use isobench_core::tier::TierId;
use isobench_local::{SweepOptions, sweep};
use isobench_testkit::http::get_in_netns;
use isobench_testkit::process::process_running;
use isobench_testkit::{cgroup, leftovers, needs_root};

use crate::util::*;

const CRASH_RUN: &str = "ISOBENCH_TEST_CRASH_RUN";

/// Run by [`sweep_after_a_crash_removes_everything_and_a_second_sweep_finds_nothing`] in a
/// child process: deploys, reports, and waits to be killed.
#[test]
#[ignore = "helper: runs only in the child process of a sweep test"]
fn crash_helper() {
    let Some(run) = std::env::var_os(CRASH_RUN) else { return };
    let run = run.to_string_lossy().into_owned();
    let mut b = isobench_local::LocalBackend::new(config(&run)).unwrap();
    let d = b.deploy(&plan(&run, TierId::SiloEc2, 2, "t3.micro")).unwrap();
    let pids: Vec<String> = d.instances.iter().map(|i| i.pid.unwrap().to_string()).collect();
    println!("READY {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(60));
    drop(b);
}

/// Starts the crash helper for `run` and returns it with the workload pids it deployed.
fn deploy_in_child(run: &str) -> (std::process::Child, Vec<u32>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sweep::crash_helper", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CRASH_RUN, run)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .find_map(|l| l.ok().and_then(|l| l.split_once("READY ").map(|(_, p)| p.to_string())))
        .expect("the crash helper deploys and reports READY");
    let pids = line.split_whitespace().map(|p| p.parse().unwrap()).collect();
    (child, pids)
}

/// The run's cgroup directories for instance `id` in every mounted hierarchy.
fn instance_dirs(run: &str, id: &str) -> Vec<PathBuf> {
    cgroup::mounts().into_iter().map(|m| m.path.join("isobench").join(run).join(id)).filter(|d| d.exists()).collect()
}

#[test]
fn sweep_after_a_crash_removes_everything_and_a_second_sweep_finds_nothing() {
    needs_root!();
    let run = run_id("crash");
    let (mut child, pids) = deploy_in_child(&run);
    assert_eq!(pids.len(), 2);
    // SAFETY: kill(2) on our own child's pid with a valid signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();

    // A leftover that does not die with the harness: a process placed in the crashed run's
    // cgroups, and, where the v1 freezer exists, frozen there (SIGKILL waits for a thaw).
    let mut stray = Command::new("sleep").arg("120").spawn().unwrap();
    for d in instance_dirs(&run, "silo-ec2-0") {
        std::fs::write(d.join("cgroup.procs"), stray.id().to_string()).unwrap();
    }
    let freezer = cgroup::v1_mount("freezer");
    if let Some(m) = &freezer {
        let d = m.join("isobench").join(&run).join("stray");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cgroup.procs"), stray.id().to_string()).unwrap();
        std::fs::write(d.join("freezer.state"), "FROZEN").unwrap();
    }
    let before = leftovers::of_run(&run);
    assert!(before.iter().any(|l| l.starts_with("cgroup")), "{before:?}");
    assert!(before.iter().any(|l| l == &format!("process {}", stray.id())), "{before:?}");

    // A dry run lists and removes nothing.
    let only_this = SweepOptions { dry_run: true, run: Some(run.clone()), force: false };
    let dry = sweep(&only_this).unwrap();
    assert!(dry.skipped_live.is_empty(), "the crashed run looks alive: {dry:?}");
    assert!(dry.found.iter().any(|f| f.contains(&format!("process {}", stray.id()))), "{:?}", dry.found);
    assert!(dry.found.iter().any(|f| f.starts_with("cgroup ") && f.contains("silo-ec2-1")), "{:?}", dry.found);
    assert!(dry.found.iter().any(|f| f.starts_with("lock ")), "{:?}", dry.found);
    assert_eq!(leftovers::of_run(&run), before, "a dry run removed something");

    let t0 = Instant::now();
    let report = sweep(&SweepOptions { dry_run: false, ..only_this.clone() }).unwrap();
    println!("sweep of a crashed run: {:.1} ms, {} items", t0.elapsed().as_secs_f64() * 1e3, report.found.len());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.found.len(), dry.found.len());
    let status = stray.wait().unwrap();
    assert!(!status.success(), "the stray process was killed");
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
    // The crashed harness's workloads died with it (through their death signals). On a host
    // whose init does not reap orphans they linger as zombies, which hold nothing.
    for pid in pids {
        assert!(!process_running(pid), "workload {pid} of the crashed run survived");
    }

    let second = sweep(&SweepOptions { dry_run: false, ..only_this }).unwrap();
    assert!(second.found.is_empty() && second.failed.is_empty(), "{second:?}");
}

#[test]
fn a_live_run_is_skipped_unless_forced() {
    needs_root!();
    let mut b = backend("live");
    let run = b.run_id().to_string();
    let d = b.deploy(&plan(&run, TierId::SiloEc2, 1, "t3.micro")).unwrap();
    let netns = d.netns.clone().unwrap();
    let Endpoint::Http(addr) = d.targets[0].endpoint else { panic!("an HTTP endpoint") };

    let r = sweep(&SweepOptions { dry_run: false, run: Some(run.clone()), force: false }).unwrap();
    assert_eq!(r.skipped_live, std::slice::from_ref(&run));
    assert!(r.found.is_empty(), "{:?}", r.found);
    assert_eq!(get_in_netns(&netns, addr, "/healthz", None).unwrap().0, 200, "the live run was disturbed");

    assert!(sweep(&SweepOptions { dry_run: true, run: None, force: true }).is_err(), "--force needs --run");

    let forced = sweep(&SweepOptions { dry_run: false, run: Some(run.clone()), force: true }).unwrap();
    assert!(forced.failed.is_empty(), "{:?}", forced.failed);
    assert!(forced.found.iter().any(|f| f.starts_with("process ")), "{:?}", forced.found);
    assert!(get_in_netns(&netns, addr, "/healthz", None).is_err(), "the forced sweep left the workload running");
    // The backend's own teardown copes with what the sweep already removed.
    let t = b.teardown_all().unwrap();
    assert!(t.left_behind.is_empty(), "{:?}", t.left_behind);
    assert_eq!(leftovers::of_run(&run), Vec::<String>::new());
}
