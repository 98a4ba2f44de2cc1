//! Helpers of the CLI's tests: running `isobench`, its output, small scenarios, summary checks.
//! What every crate's tests share (root checks, leftovers of a run, temp scenarios, the
//! repository's paths) is in `isobench_testkit`.

use std::path::Path;
use std::process::{Command, Output};

use isobench_testkit::scenario::repo_root;

pub fn isobench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_isobench"));
    c.current_dir(repo_root());
    c.env("ISOBENCH_LOG", "warn");
    c
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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

pub fn read_summary(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// Checks `sent == ok + errors + timeouts` and `dispatched == sent + not_sent` in one traffic
/// object.
pub fn assert_balanced(t: &serde_json::Value, what: &str) {
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{what}: missing {k} in {t}"));
    assert_eq!(n("sent"), n("ok") + n("errors") + n("timeouts"), "{what}: {t}");
    let by_kind: u64 = t["errors_by_kind"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_kind, n("errors"), "{what}: {t}");
    assert_eq!(n("dispatched"), n("sent") + n("not_sent"), "{what}: dispatched != sent + not sent: {t}");
}
