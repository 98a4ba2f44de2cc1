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
    crate::schema::assert_valid_summary(&out_dir.join("summary.json"));
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

/// Probes on both EC2 tiers, naive hygiene so that shared-ec2 leaks through some of them.
const PROBES: &str = "[workload]\nhygiene = \"naive\"\n\n[probes]\n\
     only = [\"LK-TMP\", \"LK-PROC\", \"LK-NET\", \"LK-PRINCIPAL\", \"LK-RNG\"]\ntrials = 3\n";

/// (tier, probe) -> (verdict, trials, hits, blind, controls passed): what seeded probes decide,
/// without their timings.
fn verdicts(s: &serde_json::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for t in s["tiers"].as_array().unwrap() {
        for c in t["probes"].as_array().unwrap() {
            let n = |k: &str| c[k].as_u64().unwrap();
            let v = format!(
                "{} {}/{} blind {} controls {}",
                c["verdict"],
                n("hits"),
                n("trials"),
                n("blind"),
                n("controls_passed")
            );
            out.insert(format!("{} {}", t["tier"], c["probe"]), v);
        }
    }
    out
}

/// Agent 0 runs the probes beside its slice, from its own namespace: the same verdicts and
/// hit counts per cell as the harness running them itself, and the summary names agent 0.
#[test]
fn agent_0_runs_the_probes_with_the_verdicts_of_the_harness() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("2s", "200", 3, PROBES));
    let (inproc, _) = run(dir.path(), &path, "none", &[], &[]);
    let (two, text) = run(dir.path(), &path, "two", &["--agents", "2"], &[]);
    let v = verdicts(&inproc);
    assert_eq!(v.len(), 2 * 5, "{v:?}");
    assert!(v.values().any(|x| x.starts_with("\"leak\"")), "shared-ec2 leaks with naive hygiene: {v:?}");
    assert!(v.values().any(|x| x.starts_with("\"blocked\"")), "silo-ec2 blocks: {v:?}");
    assert_eq!(verdicts(&two), v, "the same verdicts and counts per cell with the probes in agent 0");
    for id in ["silo-ec2", "shared-ec2"] {
        assert_eq!(tier(&two, id)["agents"]["probes_by"], 0, "{id}");
        assert!(text.contains(&format!("[{id}] probes ran in agent 0")), "{text}");
        assert!(tier(&inproc, id).get("agents").is_none(), "{id}");
        assert_all_balanced(&two);
    }
}

/// Agent 0 killed before its probe report: the tier's probes end as a probe error (the run
/// fails, exit 1, and says which agent), never as a verdict; nothing is left behind.
#[test]
fn a_probe_agent_that_dies_fails_the_tiers_probes() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("3s", "200", 3, PROBES));
    let out_dir = dir.path().join("out");
    let mut cmd = isobench();
    cmd.arg("run").arg(&path).arg("--out").arg(&out_dir).args(["--agents", "2", "--tiers", "shared-ec2"]);
    let out = cmd.env("ISOBENCH_TEST_KILL_AGENT", "0").process_group(0).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let s = read_summary(&out_dir);
    assert_eq!(s["status"], "failed");
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("probes for tier shared-ec2") && error.contains("load agent 0"), "{error}");
    assert!(error.contains("SIGKILL"), "{error}");
    assert!(stderr(&out).contains("load agent 0"), "{}", stderr(&out));
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}

fn assignment(addr: &str, protocol: u32, index: u32, count: u32) -> String {
    let tenants: Vec<_> = (0..3).map(|i| serde_json::json!({"id": format!("t{i}"), "weight": 1.0})).collect();
    let targets: Vec<_> = (0..3)
        .map(|i| serde_json::json!({"tenant": format!("t{i}"), "endpoint": {"kind": "http", "addr": addr}}))
        .collect();
    serde_json::json!({
        "protocol": protocol,
        "spec": {
            "label": "agent-test", "duration_ns": 1_500_000_000u64, "rate": 200.0, "arrival": "constant",
            "seed": 5, "tenants": tenants, "mix": {"put": 1.0, "get": 1.0, "compute": 1.0},
            "timeout_ns": 1_000_000_000u64, "max_connections": 4, "compute_us": 10, "record_size": 16,
            "keys_per_tenant": 8, "worker_threads": 1, "realtime": false, "shape": {"kind": "steady"}
        },
        "slice": {"index": index, "count": count},
        "targets": targets,
    })
    .to_string()
}

/// `isobench agent` on its own, no root: one assignment in, `Hello`, intervals and `Final`
/// out, and what the intervals streamed adds up to the final figures.
#[test]
fn an_agent_streams_hello_intervals_and_a_final_report_that_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::endpoints::App::start(dir.path());
    let file = dir.path().join("a.json");
    std::fs::write(&file, assignment(&app.addr, 2, 1, 3)).unwrap();
    let out = isobench().args(["agent", "--assignment"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["type"], "hello");
    assert_eq!(lines[0]["slice"], serde_json::json!({"index": 1, "count": 3}));
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "final", "{last}");
    let intervals: Vec<_> = lines.iter().filter(|l| l["type"] == "interval").collect();
    assert!(intervals.len() >= 2, "an interval about every second of a 1.5 s run, and the last: {}", intervals.len());
    let sum = |cells: &serde_json::Value, k: &str| {
        cells.as_array().unwrap().iter().map(|c| c[k].as_u64().unwrap()).sum::<u64>()
    };
    let streamed: u64 = intervals.iter().map(|i| sum(&i["cells"], "sent")).sum();
    let (dispatched, sent) = (sum(&last["cells"], "dispatched"), sum(&last["cells"], "sent"));
    // 200 req/s × 1.5 s, constant: 300 requests; a third of them is this slice.
    assert_eq!(dispatched, 100);
    assert_eq!((sent, streamed), (100, 100), "every finished request was streamed, then reported");
    for c in last["cells"].as_array().unwrap() {
        assert!(c["histograms"]["corrected"].as_str().is_some_and(|h| !h.is_empty()), "{c}");
    }
}

#[test]
fn an_agent_refuses_another_protocol_with_a_failed_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.json");
    std::fs::write(&file, assignment("127.0.0.1:9", 99, 0, 1)).unwrap();
    let out = isobench().args(["agent", "--assignment"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let last: serde_json::Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "failed");
    assert!(last["reason"].as_str().unwrap().contains("protocol 99"), "{last}");
    std::fs::write(&file, "{}").unwrap();
    let out = isobench().args(["agent", "--assignment"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "not an assignment is bad input: {}", stderr(&out));
}

/// A function tier is invoked in-process by the emulator: with `--agents` the harness drives
/// it itself, and the summary says so.
#[test]
fn function_tiers_stay_in_process_and_the_summary_says_so() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = isobench_testkit::scenario::repo_root().join("scenarios/lambda.toml");
    let args = ["--agents", "2", "--tiers", "lambda-shared", "--duration", "1s", "--rate", "50"];
    let (s, text) = run(dir.path(), &path, "lambda", &args, &[]);
    assert_all_balanced(&s);
    let a = &tier(&s, "lambda-shared")["agents"];
    assert_eq!(a["requested"], 2);
    assert_eq!(a["agents"].as_array().map(Vec::len), Some(0), "{a}");
    assert!(a["note"].as_str().unwrap().contains("in-process"), "{a}");
    assert!(text.contains("2 agent(s) asked for"), "{text}");
}

#[test]
fn agents_are_refused_off_the_local_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("1s", "10", 1, ""));
    let endpoints = scenario::write(dir.path(), "e.toml", "");
    let out = isobench()
        .arg("run")
        .arg(&path)
        .args(["--target", "endpoints", "--agents", "2", "--endpoints"])
        .arg(&endpoints)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("--agents"), "{}", stderr(&out));
}

/// ECS tasks on their own bridge, behind security groups that admit only the harness: the
/// agents' requests reach them (routed and masqueraded by the harness namespace).
#[test]
fn agents_reach_ecs_tasks_through_their_security_groups() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = isobench_testkit::scenario::repo_root().join("scenarios/ecs.toml");
    let args = ["--agents", "2", "--tiers", "ecs-awsvpc", "--duration", "1s", "--rate", "200"];
    let (s, _) = run(dir.path(), &path, "ecs", &args, &[]);
    assert_all_balanced(&s);
    let t = tier(&s, "ecs-awsvpc");
    assert!(t["traffic"]["sent"].as_u64().unwrap() > 150, "{}", t["traffic"]);
    assert_eq!(t["traffic"]["ok"], t["traffic"]["sent"], "{}", t["traffic"]);
    for a in t["agents"]["agents"].as_array().unwrap() {
        assert_eq!(a["status"]["state"], "finished", "{a}");
    }
}
