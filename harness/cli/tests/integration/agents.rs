use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;

use isobench_testkit::{leftovers, needs_root, scenario};

use crate::local_run::{assert_all_balanced, tier};
use crate::util::*;

/// `dispatched` per (tier, tenant, op): the requests the run planned.
fn planned(s: &serde_json::Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for t in s["tiers"].as_array().unwrap() {
        for p in t["per_tenant"].as_array().unwrap() {
            for o in p["ops"].as_array().unwrap() {
                let key = format!("{}/{}/{}", t["tier"], p["tenant"], o["op"]);
                out.insert(key, o["traffic"]["dispatched"].as_u64().unwrap());
            }
        }
    }
    out
}

/// Runs the scenario at `path` with `args` in a process group of its own; returns the summary,
/// the output, and what is left of the run and of its process group.
fn run(
    dir: &std::path::Path,
    path: &std::path::Path,
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (serde_json::Value, String) {
    let out_dir = dir.join(name);
    let mut cmd = isobench();
    cmd.arg("run").arg(path).arg("--out").arg(&out_dir).args(args).process_group(0);
    cmd.envs(env.iter().copied());
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pgid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{name}: stderr: {}\nstdout: {}", stderr(&out), stdout(&out));
    let s = read_summary(&out_dir);
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new(), "{name}");
    assert_eq!(leftovers::in_process_group(pgid), Vec::<String>::new(), "{name}: agent processes left");
    let (ifs, _, _) = isobench_testkit::netns::host_network();
    assert!(!ifs.iter().any(|i| i.starts_with("ag")), "{name}: an agent veth on the host: {ifs:?}");
    // Progress lines (one per agent among them) go to stderr, the tables to stdout.
    (s, stderr(&out) + &stdout(&out))
}

#[test]
fn two_agents_plan_the_requests_of_one_and_balance() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("2s", "300", 3, ""));
    let (inproc, _) = run(dir.path(), &path, "none", &[], &[]);
    let (one, _) = run(dir.path(), &path, "one", &["--agents", "1"], &[]);
    let (two, text) = run(dir.path(), &path, "two", &["--agents", "2"], &[]);
    for s in [&inproc, &one, &two] {
        assert_eq!(s["status"], "complete");
        assert_all_balanced(s);
    }
    assert!(inproc["tiers"][0].get("agents").is_none(), "no agents asked for: no agents field");
    let p = planned(&one);
    assert!(p.values().sum::<u64>() > 500, "{p:?}");
    assert_eq!(planned(&two), p, "2 agents plan the 1-agent requests per tier, tenant and op");
    assert_eq!(planned(&inproc), p, "and those of the harness driving traffic itself");
    for id in ["silo-ec2", "shared-ec2"] {
        let t = tier(&two, id);
        let agents = t["agents"]["agents"].as_array().unwrap();
        assert_eq!((t["agents"]["requested"].as_u64(), agents.len()), (Some(2), 2), "{id}");
        let sum = |k: &str| agents.iter().map(|a| a[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("planned"), t["traffic"]["dispatched"].as_u64().unwrap(), "{id}");
        assert_eq!(sum("sent"), t["traffic"]["sent"].as_u64().unwrap(), "{id}");
        for a in agents {
            assert_eq!(a["status"]["state"], "finished", "{id}: {a}");
            assert!(a["planned"].as_u64().unwrap() > 0 && a["achieved_rate"].as_f64().unwrap() > 0.0, "{a}");
        }
        // The agents reached every tenant's instance through their own namespaces.
        assert_eq!(t["traffic"]["errors"], 0, "{id}: {}", t["traffic"]);
        assert!(text.contains(&format!("[{id}] agent 1/2: planned")), "{text}");
    }
}

#[test]
fn an_agent_killed_mid_run_is_named_and_its_unsent_requests_counted() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("3s", "300", 3, ""));
    let args = ["--agents", "2", "--tiers", "silo-ec2"];
    let (s, text) = run(dir.path(), &path, "killed", &args, &[("ISOBENCH_TEST_KILL_AGENT", "1")]);
    let (one, _) = run(dir.path(), &path, "one", &["--agents", "1", "--tiers", "silo-ec2"], &[]);
    assert_eq!(s["status"], "complete", "the summary is complete: the dead agent's share is accounted");
    assert_all_balanced(&s);
    assert_eq!(planned(&s), planned(&one), "dispatched counts the dead agent's whole slice");
    let t = tier(&s, "silo-ec2");
    let agents = t["agents"]["agents"].as_array().unwrap();
    assert_eq!(agents[0]["status"]["state"], "finished");
    let dead = &agents[1];
    assert_eq!(dead["status"]["state"], "died", "{dead}");
    assert!(dead["status"]["how"].as_str().unwrap().contains("SIGKILL"), "{dead}");
    let n = |k: &str| dead[k].as_u64().unwrap();
    assert_eq!(n("sent") + n("not_sent"), n("planned"), "{dead}");
    assert!(n("not_sent") > n("planned") / 3, "killed after its first interval of a 3 s run: {dead}");
    assert!(t["traffic"]["not_sent"].as_u64().unwrap() >= n("not_sent"), "{}", t["traffic"]);
    assert!(text.contains("agent 1/2") && text.contains("DIED"), "{text}");
}
