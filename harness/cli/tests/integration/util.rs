//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn isobench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_isobench"));
    c.current_dir(repo_root());
    c.env("ISOBENCH_LOG", "warn");
    c
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Skips (returns early from) a test that needs root, saying so on stderr.
#[macro_export]
macro_rules! needs_root {
    () => {
        if !$crate::util::is_root() {
            eprintln!("skipping {}: needs root for namespaces and cgroups", module_path!());
            return;
        }
    };
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes a scenario into `dir` and returns its path.
pub fn scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A small scenario for both EC2 tiers; `extra` is appended verbatim.
pub fn small_scenario(duration: &str, rate: &str, tenants: u32, extra: &str) -> String {
    format!(
        r#"format_version = 1
name = "test"

[run]
duration = "{duration}"
rate = "{rate}"
arrival = "poisson"
timeout = "1s"
seed = 7

[tenants]
count = {tenants}

[[tier]]
id = "silo-ec2"
instance_type = "t3.micro"

[[tier]]
id = "shared-ec2"
instance_type = "m5.large"
{extra}
"#
    )
}

/// What the host still holds of one run: cgroup directories and processes.
pub fn leftovers(run_id: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in hierarchies.flatten() {
            let dir = h.path().join("isobench").join(run_id);
            if dir.exists() {
                found.push(format!("cgroup {}", dir.display()));
            }
        }
    }
    if Path::new("/sys/fs/cgroup/isobench").join(run_id).exists() {
        found.push(format!("cgroup /sys/fs/cgroup/isobench/{run_id}"));
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let cg = std::fs::read_to_string(p.path().join("cgroup")).unwrap_or_default();
            if cg.contains(run_id) {
                found.push(format!("process {}", p.file_name().to_string_lossy()));
            }
        }
    }
    if Path::new("/run/isobench").join(format!("{run_id}.lock")).exists() {
        found.push(format!("lock /run/isobench/{run_id}.lock"));
    }
    found
}

pub fn read_summary(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// Checks `sent == ok + errors + timeouts` in one traffic object.
pub fn assert_balanced(t: &serde_json::Value, what: &str) {
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{what}: missing {k} in {t}"));
    assert_eq!(n("sent"), n("ok") + n("errors") + n("timeouts"), "{what}: {t}");
    let by_kind: u64 = t["errors_by_kind"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_kind, n("errors"), "{what}: {t}");
}
