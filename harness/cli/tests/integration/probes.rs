use isobench_testkit::{leftovers, needs_root, scenario};

use crate::util::*;

fn cells(s: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for t in s["tiers"].as_array().unwrap() {
        for c in t["probes"].as_array().cloned().unwrap_or_default() {
            out.push((t["tier"].as_str().unwrap().to_string(), c));
        }
    }
    out
}

/// The shipped leakage scenario: every cell matches the catalogue's expectation, every trial's
/// positive control passed, no trial was blind, each cell states its bound, and the run exits 0
/// (expected leaks and risks do not fail it). LK-DATA is n/a with its reason and LK-KERNEL is
/// the emulator's limit on every local tier.
#[test]
fn leakage_matrix_matches_expectations() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out =
        isobench().args(["run", "scenarios/leakage.toml", "--duration", "4s", "--out"]).arg(&out_dir).output().unwrap();
    let s = read_summary(&out_dir);
    // Probes, NN-CPU and function figures: the optional parts of the schema, from a fresh run.
    crate::schema::assert_valid_summary(&out_dir.join("summary.json"));
    let cells = cells(&s);
    assert!(cells.len() >= 6 * 11, "every probe on every tier: {} cells", cells.len());
    let mut mismatches = Vec::new();
    for (tier, c) in &cells {
        let (expected, verdict) = (c["expected"].as_str().unwrap(), c["verdict"].as_str().unwrap());
        match c["probe"].as_str().unwrap() {
            "LK-DATA" => {
                assert_eq!(verdict, "not-applicable", "{tier}: {c}");
                assert!(c["note"].as_str().unwrap().contains("no IAM is evaluated locally"), "{tier}: {c}");
                continue;
            }
            "LK-KERNEL" => {
                assert_eq!(verdict, "emulator-limit", "{tier}: {c}");
                assert!(c["note"].as_str().unwrap().starts_with("shared kernel: emulator limit"), "{tier}: {c}");
                continue;
            }
            _ => {}
        }
        if verdict != expected {
            mismatches.push(format!("{tier} {}: expected {expected}, got {verdict} ({c})", c["probe"]));
        }
        if verdict != "not-applicable" {
            let n = |k: &str| c[k].as_u64().unwrap();
            assert!(n("trials") > 0 && n("controls") == n("trials"), "{tier} {}: a control per trial: {c}", c["probe"]);
            assert!(c["leak_bound_95"].as_f64().is_some(), "{tier} {}: a bound: {c}", c["probe"]);
        }
        // Where isolation is promised, blocked means every control passed and no trial was
        // blind. (On lambda-shared an owner's control may land in another environment of the
        // function and miss its canary; its cells leak anyway.)
        if expected == "blocked" {
            let n = |k: &str| c[k].as_u64().unwrap();
            assert_eq!(n("controls_passed"), n("controls"), "{tier} {}: every control passes: {c}", c["probe"]);
            assert_eq!(n("blind"), 0, "{tier} {}: no blind trial: {c}", c["probe"]);
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    for t in s["tiers"].as_array().unwrap() {
        let n = &t["noisy_neighbour"];
        assert_eq!(n["slowdown"]["count"], 3 * 3, "{}: NN-CPU over 3 victims x 3 rounds: {n}", t["tier"]);
    }
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_ends_with_the_verdict(&stdout(&out), &s);
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<testsuite name=\"lambda-shared\"") && junit.contains("failures=\"0\""), "{junit}");
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}

/// The run's output ends with the picks and the verdict table: a header, one row per tier in
/// run order, the legend.
fn assert_ends_with_the_verdict(out: &str, s: &serde_json::Value) {
    let lines: Vec<&str> = out.lines().collect();
    let at =
        lines.iter().rposition(|l| l.starts_with("verdict (")).unwrap_or_else(|| panic!("no verdict table:\n{out}"));
    let tiers: Vec<&str> = s["tiers"].as_array().unwrap().iter().map(|t| t["tier"].as_str().unwrap()).collect();
    assert_eq!(tiers.len(), 6, "{tiers:?}");
    assert_eq!(lines[at], "verdict (6 tiers)");
    assert!(lines[at + 1].starts_with("tier ") && lines[at + 1].contains("leaks (hits/trials)"), "{out}");
    for (i, tier) in tiers.iter().enumerate() {
        assert!(lines[at + 2 + i].starts_with(&format!("{tier} ")), "row {i} is {tier}:\n{out}");
    }
    assert_eq!(lines.len(), at + 2 + 6 + 1, "only the legend after the rows:\n{out}");
    assert!(lines[at + 8].starts_with("Leaks and risks:"), "{out}");
    let shared = lines[at + 2 + tiers.iter().position(|t| *t == "shared-ec2").unwrap()];
    assert!(
        shared.contains("LK-TMP") && shared.contains("LK-PRINCIPAL"),
        "shared-ec2 leaks /tmp, shares a role: {shared}"
    );
    assert_eq!(lines[at - 1], "", "{out}");
    assert!(lines[at - 4..at - 1].iter().all(|l| l.starts_with("pick, ")), "three picks just before:\n{out}");
}

/// Silo instances that share one /tmp (a deliberate misconfiguration) leak through LK-TMP,
/// which the catalogue says must be blocked: the run fails with the unexpected-leak code.
#[test]
fn broken_isolation_gives_the_unexpected_leak_exit_code() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let text = small_scenario(
        "2s",
        "100",
        3,
        "[probes]\nonly = [\"LK-TMP\"]\ntrials = 20\n\n[local]\nbreak_isolation = [\"shared-tmp\"]\n",
    )
    .replace("[[tier]]\nid = \"shared-ec2\"\ninstance_type = \"m5.large\"\n", "");
    let path = scenario::write(dir.path(), "broken.toml", &text);
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("LK-TMP on silo-ec2"), "{}", stderr(&out));
    let s = read_summary(&out_dir);
    let (_, c) = cells(&s).into_iter().find(|(t, c)| t == "silo-ec2" && c["probe"] == "LK-TMP").unwrap();
    assert_eq!(c["verdict"], "leak");
    assert_eq!(c["unexpected"], true);
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("type=\"unexpected-leak\""), "{junit}");
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}

/// LK-NET on the Lambda tiers: each owner's invoke serves its canary on its environment's
/// address while another tenant's invoke sweeps the neighbourhood. Nothing reaches an
/// environment inbound, also from a VPC tier whose groups allow every outbound connection
/// (so only the inbound block stands between the tenants), and every control passes.
#[test]
fn lambda_environments_accept_no_inbound_connection() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let text = small_scenario("2s", "50", 3, "[probes]\nonly = [\"LK-NET\"]\ntrials = 6\n")
        .replace("[[tier]]\nid = \"silo-ec2\"\ninstance_type = \"t3.micro\"\n", "")
        .replace(
            "[[tier]]\nid = \"shared-ec2\"\ninstance_type = \"m5.large\"\n",
            "[[tier]]\nid = \"lambda-per-tenant\"\nmemory = 256\n\n[tier.vpc]\n\n\
             [[tier]]\nid = \"lambda-shared\"\nmemory = 256\n\n\
             [[tier]]\nid = \"lambda-tenant-isolation\"\nmemory = 256\n",
        );
    let path = scenario::write(dir.path(), "net.toml", &text);
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).arg("--out").arg(&out_dir).output().unwrap();
    let s = read_summary(&out_dir);
    let net = cells(&s);
    assert_eq!(net.len(), 3, "{net:?}");
    for (tier, c) in &net {
        let n = |k: &str| c[k].as_u64().unwrap();
        assert_eq!((c["expected"].as_str(), c["verdict"].as_str()), (Some("blocked"), Some("blocked")), "{tier}: {c}");
        assert_eq!((n("trials"), n("controls_passed"), n("blind"), n("hits")), (6, 6, 0, 0), "{tier}: {c}");
    }
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}
