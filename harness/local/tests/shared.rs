use isobench_core::backend::{Backend, Endpoint};
use isobench_core::tier::TierId;
use isobench_testkit::http::get_in_netns;
use isobench_testkit::needs_root;
use isobench_testkit::process::{ns_inode, pid_alive};

use crate::util::*;

#[test]
fn one_process_answers_every_tenant() {
    needs_root!();
    let mut b = backend("shared");
    let d = b.deploy(&plan(b.run_id(), TierId::SharedEc2, 4, "t3.small")).expect("deploys");
    let netns = d.netns.clone().unwrap();
    assert_eq!(d.instances.len(), 1);
    let inst = &d.instances[0];
    assert_eq!(inst.tenants, ["t0", "t1", "t2", "t3"]);
    assert_eq!(d.targets.len(), 4);
    let pid = inst.pid.unwrap();
    let mut nonces = std::collections::BTreeSet::new();
    for t in &d.targets {
        let Endpoint::Http(sa) = t.endpoint else { panic!("an HTTP endpoint") };
        assert_eq!(Some(sa.ip()), inst.address, "every tenant goes to the one instance");
        let who = whoami(&netns, sa, &t.tenant);
        nonces.insert(who["instance_nonce"].as_str().unwrap().to_string());
        assert_eq!(who["hostname"], inst.id.as_str());
    }
    assert_eq!(nonces.len(), 1, "more than one process answered: {nonces:?}");
    // Exactly one workload process in the instance's pid namespace.
    let pid_ns = ns_inode(pid, "pid");
    let mut members = 0;
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(n) = p.file_name().to_string_lossy().parse::<u32>()
            && std::fs::metadata(format!("/proc/{n}/ns/pid")).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.ino() == pid_ns
            })
        {
            members += 1;
        }
    }
    assert_eq!(members, 1);
    // The same tier cannot be deployed twice at once.
    assert!(b.deploy(&plan(b.run_id(), TierId::SharedEc2, 1, "t3.small")).is_err());
    let r = b.teardown(TierId::SharedEc2).unwrap();
    assert_eq!(r.removed.iter().filter(|s| s.starts_with("instance ")).count(), 1, "{:?}", r.removed);
    // With the instance go its security groups and (the last EC2 tier) IMDS.
    assert!(r.removed.iter().any(|s| s.contains("security groups")) && r.removed.iter().any(|s| s.contains("IMDS")));
    // Gone, not even a zombie: the sandbox reaped the workload and the backend the sandbox.
    assert!(!pid_alive(pid), "workload {pid} still in the process table");
    // Idempotent.
    assert!(b.teardown(TierId::SharedEc2).unwrap().removed.is_empty());
    // And deployable again (as a run does tier after tier), on a fresh address.
    let again = b.deploy(&plan(b.run_id(), TierId::SharedEc2, 2, "t3.small")).unwrap();
    let Endpoint::Http(sa) = again.targets[0].endpoint else { panic!("an HTTP endpoint") };
    assert_ne!(Some(sa.ip()), inst.address, "an address was reused within the run");
    assert_eq!(get_in_netns(&netns, sa, "/healthz", None).unwrap().0, 200);
    assert!(b.teardown_all().unwrap().left_behind.is_empty());
}

#[test]
fn a_tier_with_another_tiers_settings_is_refused() {
    needs_root!();
    let mut b = backend("unsupported");
    // Every tier is implemented now; a Lambda tier given EC2 settings is a plan this backend
    // cannot deploy, and says why.
    let e = b.deploy(&plan(b.run_id(), TierId::LambdaShared, 1, "t3.micro")).unwrap_err();
    let source = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
    assert!(
        matches!(e, isobench_core::BackendError::Deploy { .. }) && source.contains("needs Lambda settings"),
        "{e}: {source}"
    );
    assert!(b.environments(None).is_empty() && b.functions(None).is_empty());
}
