//! `--target endpoints` against a `tenant-app` on loopback: no root, nothing deployed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use isobench_testkit::ports::free_port;
use isobench_testkit::process::KillOnDrop;
use isobench_testkit::scenario;

use crate::util::*;

/// A `tenant-app` serving on a free loopback port; killed when dropped, also when a test fails.
pub(crate) struct App {
    _child: KillOnDrop,
    pub(crate) addr: String,
}

impl App {
    pub(crate) fn start(tmp: &Path) -> App {
        let bin = tenant_app();
        let mut child = Command::new(&bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2", "--probes", "--tmp-dir"])
            .arg(tmp)
            .env("TENANT_APP_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("tenant-app said {line:?}"));
        App { addr: addr.to_string(), _child: KillOnDrop(child) }
    }
}

/// The workload binary beside `isobench` (`cargo build --workspace --bins`, as `make test` does).
fn tenant_app() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_isobench")).with_file_name("tenant-app");
    assert!(p.exists(), "{} is missing: build it with `cargo build --workspace --bins`", p.display());
    p
}

fn scenario_text(probes: &str) -> String {
    format!(
        r#"format_version = 1
name = "endpoints-test"

[run]
duration = "2s"
rate = "300"
arrival = "poisson"
timeout = "1s"
seed = 3

[tenants]
count = 3

[[tier]]
id = "shared-ec2"
instance_type = "m5.large"
{probes}
"#
    )
}

fn endpoints_file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("endpoints.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// One shared process as the `shared-ec2` tier: traffic is fully accounted for, the shared
/// channels leak as the catalogue expects, the channels the target cannot probe say why.
#[test]
fn drives_traffic_and_probes_against_a_running_workload() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path());
    let scn = scenario::write(dir.path(), "s.toml", &scenario_text("[probes]\ntrials = 6\n"));
    let eps = endpoints_file(
        dir.path(),
        &format!("format_version = 1\n[tiers.shared-ec2]\n\"*\" = \"http://{}\"\n", app.addr),
    );
    let out_dir = dir.path().join("out");
    let out = isobench()
        .args(["run", "--target", "endpoints", "--no-progress-bar", "--endpoints"])
        .arg(&eps)
        .arg(&scn)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
    let s = read_summary(&out_dir);
    assert_eq!(s["backend"]["name"], "endpoints");
    assert_eq!(s["backend"]["fidelity"], "external");
    let t = &s["tiers"][0];
    let tr = &t["traffic"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    assert!(n(&tr["sent"]) > 300, "{tr}");
    assert_eq!(n(&tr["sent"]), n(&tr["ok"]) + n(&tr["errors"]) + n(&tr["timeouts"]), "{tr}");
    assert_eq!(t["per_tenant"].as_array().unwrap().len(), 3);
    let mut seen = Vec::new();
    for c in t["probes"].as_array().unwrap() {
        let (probe, verdict) = (c["probe"].as_str().unwrap(), c["verdict"].as_str().unwrap());
        seen.push(probe.to_string());
        match probe {
            "LK-NET" | "LK-PRINCIPAL" | "LK-DATA" => {
                assert_eq!(verdict, "not-applicable", "{c}");
                assert!(c["note"].as_str().is_some_and(|n| !n.is_empty()), "{c}");
            }
            // One process for every tenant: the in-process channels leak, as expected.
            "LK-TMP" | "LK-MEM" | "LK-ENV" | "LK-FD" | "LK-PROC" => {
                assert_eq!(verdict, "leak", "{c}");
                assert_eq!(n(&c["controls_passed"]), n(&c["trials"]), "{c}");
            }
            // Scoped hygiene keys the cache by tenant and seeds the token generator per
            // request: one shared process, yet neither leaks.
            "LK-APP" | "LK-RNG" => assert_eq!(verdict, "blocked", "{c}"),
            // The workload runs on this host's kernel.
            "LK-KERNEL" => assert_eq!(verdict, "emulator-limit", "{c}"),
            other => panic!("unknown probe {other}"),
        }
        assert_eq!(c["unexpected"], false, "{c}");
    }
    assert_eq!(seen.len(), 11, "{seen:?}");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("**LK-NET** on shared-ec2: every tenant is served by one process"), "{report}");
}

/// Bad endpoint files and flags stop the run with exit 2, a location, and nothing written.
#[test]
fn bad_endpoint_files_are_refused_with_a_location() {
    let dir = tempfile::tempdir().unwrap();
    let scn = scenario::write(dir.path(), "s.toml", &scenario_text(""));
    let cases = [
        (
            "format_version = 1\n[tiers.shared-ec2]\ntenant-01 = \"http://127.0.0.1:1\"\n",
            "endpoints.toml:2:1",
            "no URL for tenant `tenant-02`",
        ),
        (
            "format_version = 1\n[tiers.shared-ec2]\n\"*\" = \"https://127.0.0.1:1\"\n",
            "endpoints.toml:3:7",
            "https is not supported",
        ),
        (
            "format_version = 1\n[tiers.shared-ec2]\n\"*\" = \"http://127.0.0.1:1\"\ntenant-99 = \"http://127.0.0.1:1\"\n",
            "endpoints.toml:4:13",
            "no tenant `tenant-99`",
        ),
        (
            "format_version = 1\n[tiers.shard-ec2]\n\"*\" = \"http://127.0.0.1:1\"\n",
            "endpoints.toml:2:1",
            "unknown tier `shard-ec2`",
        ),
    ];
    for (text, at, needle) in cases {
        let eps = endpoints_file(dir.path(), text);
        let out_dir = dir.path().join("out");
        let out = isobench()
            .args(["run", "--target", "endpoints", "--endpoints"])
            .arg(&eps)
            .arg(&scn)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{needle}: {err}");
        assert!(err.contains(at) && err.contains(needle), "{needle}: {err}");
        assert!(!out_dir.exists(), "{needle}: nothing is written on bad input");
    }
    let out = isobench().args(["run", "--target", "endpoints"]).arg(&scn).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--endpoints"), "{}", stderr(&out));
}

/// An endpoint that does not answer: exit 3 (deploy failure) naming the URL; no traffic.
#[test]
fn an_unreachable_endpoint_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let scn = scenario::write(dir.path(), "s.toml", &scenario_text(""));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let eps = endpoints_file(dir.path(), &format!("format_version = 1\n[tiers.shared-ec2]\n\"*\" = \"{url}\"\n"));
    let out = isobench()
        .args(["run", "--target", "endpoints", "--no-progress-bar", "--endpoints"])
        .arg(&eps)
        .arg(&scn)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
}
