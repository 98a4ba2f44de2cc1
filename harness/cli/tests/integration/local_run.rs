use std::io::Read;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use isobench_testkit::{leftovers, needs_root, scenario};

use crate::util::*;

pub(crate) fn tier<'a>(s: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    s["tiers"].as_array().unwrap().iter().find(|t| t["tier"] == id).unwrap_or_else(|| panic!("no tier {id}"))
}

pub(crate) fn assert_all_balanced(s: &serde_json::Value) {
    for t in s["tiers"].as_array().unwrap() {
        let name = t["tier"].as_str().unwrap();
        assert_balanced(&t["traffic"], name);
        for p in t["per_tenant"].as_array().unwrap() {
            assert_balanced(&p["traffic"], &format!("{name}/{}", p["tenant"]));
            for o in p["ops"].as_array().unwrap() {
                assert_balanced(&o["traffic"], &format!("{name}/{}/{}", p["tenant"], o["op"]));
            }
        }
    }
}

/// Sum of the counts of all histograms in the log whose tag ends with `/measure`, per tier.
pub(crate) fn histogram_counts(out: &std::path::Path, tier: &str, measure: &str) -> u64 {
    let bytes = std::fs::read(out.join("histograms.hlog")).unwrap();
    let mut d = Deserializer::new();
    let mut total = 0;
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(h) = entry.expect("valid interval log") {
            let tag = h.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
            if tag.starts_with(&format!("{tier}/")) && tag.ends_with(&format!("/{measure}")) {
                let raw = base64_decode(h.encoded_histogram());
                let hist: hdrhistogram::Histogram<u64> = d.deserialize(&mut &raw[..]).unwrap();
                total += hist.len();
            }
        }
    }
    total
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        buf = (buf << 6) | A.iter().position(|a| *a == c).expect("base64") as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

#[test]
fn both_ec2_tiers_run_end_to_end_and_leave_nothing() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("3s", "400", 3, ""));
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nstdout: {}", stderr(&out), stdout(&out));
    let s = read_summary(&out_dir);
    assert_eq!(s["schema_version"], 1);
    assert_eq!(s["status"], "complete");
    assert_eq!(s["backend"]["fidelity"], "emulated");
    crate::provenance::assert_tool_is_this_checkout(&s);
    for at in ["load_at_start", "load_at_end"] {
        assert_eq!(s["host"][at].as_array().map(Vec::len), Some(3), "{}", s["host"]);
    }
    assert_all_balanced(&s);

    let silo = tier(&s, "silo-ec2");
    assert_eq!(silo["instances"].as_array().unwrap().len(), 3, "one instance per tenant");
    let shared = tier(&s, "shared-ec2");
    assert_eq!(shared["instances"].as_array().unwrap().len(), 1, "one instance for all tenants");
    assert_eq!(shared["instances"][0]["tenants"].as_array().unwrap().len(), 3);
    for t in [silo, shared] {
        let ok = t["traffic"]["ok"].as_u64().unwrap();
        assert!(ok > 500, "expected ~1200 ok requests, got {ok}");
        assert_eq!(t["traffic"]["errors"], 0, "{}", t["traffic"]);
        let c = &t["latency"]["corrected"];
        let u = &t["latency"]["uncorrected"];
        for q in ["p50_us", "p99_us", "max_us"] {
            let (c, u) = (c[q].as_f64().unwrap(), u[q].as_f64().unwrap());
            assert!(c >= u * 0.99, "{q}: corrected {c} < uncorrected {u}");
        }
        assert!(t["instance_start_ms"]["median"].as_f64().unwrap() > 0.0);
        // The histogram log holds exactly the ok requests as latency samples.
        let name = t["tier"].as_str().unwrap();
        assert_eq!(histogram_counts(&out_dir, name, "corrected"), ok, "{name}");
        assert_eq!(histogram_counts(&out_dir, name, "lag"), t["traffic"]["sent"].as_u64().unwrap(), "{name}");
    }
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("## shared-ec2"));
    assert!(report.contains("What this run is: local emulation") && report.contains("one kernel"), "{report}");
    assert!(report.contains("load average"), "{report}");
    let run_id = s["run_id"].as_str().unwrap();
    assert_eq!(leftovers::of_run(run_id), Vec::<String>::new());
}

#[test]
fn injected_errors_and_stalls_are_counted_exactly() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let extra = "[workload.faults]\nerror_rate = 0.2\nstall_rate = 0.05\nstall = \"3s\"\n";
    let text = small_scenario("3s", "300", 2, extra).replace("timeout = \"1s\"", "timeout = \"300ms\"");
    let path = scenario::write(dir.path(), "s.toml", &text);
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).args(["--tiers", "shared-ec2", "--out"]).arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let s = read_summary(&out_dir);
    assert_all_balanced(&s);
    let t = tier(&s, "shared-ec2");
    let traffic = &t["traffic"];
    let sent = traffic["sent"].as_u64().unwrap() as f64;
    let errors = traffic["errors_by_kind"]["http_5xx"].as_u64().unwrap_or(0) as f64;
    let timeouts = traffic["timeouts"].as_u64().unwrap() as f64;
    assert!((0.12..0.28).contains(&(errors / sent)), "5xx share {} of {sent}", errors / sent);
    assert!((0.02..0.09).contains(&(timeouts / sent)), "timeout share {} of {sent}", timeouts / sent);
    // Errors and timeouts are never latency samples; nothing slower than the timeout is recorded.
    assert_eq!(histogram_counts(&out_dir, "shared-ec2", "corrected"), traffic["ok"].as_u64().unwrap());
    assert!(t["latency"]["uncorrected"]["max_us"].as_f64().unwrap() < 300_000.0 * 1.01);
    assert!(t["injected_faults"].is_object(), "fault runs are labelled");
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}

#[test]
fn sigterm_stops_the_run_tears_down_and_keeps_partial_results() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("60s", "200", 2, ""));
    let out_dir = dir.path().join("out");
    let mut child = isobench()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out_dir)
        .arg("--no-progress-bar")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until traffic is flowing (the progress line for the first tier), then stop it.
    let mut err = child.stderr.take().unwrap();
    let started = Instant::now();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("instance(s) up") && started.elapsed() < Duration::from_secs(30) {
        let n = err.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill with a valid pid of our own child and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "stopping took {:?}", t.elapsed());
    assert_eq!(status.code(), Some(130), "{seen}");
    let s = read_summary(&out_dir);
    assert_eq!(s["status"], "interrupted");
    assert_all_balanced(&s);
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}

#[test]
fn without_root_the_emulator_says_so_before_deploying() {
    needs_root!(); // to become another user
    let dir = tempfile::tempdir().unwrap();
    // A copy of the binary the unprivileged user can reach, beside its helpers.
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let exe = bin_dir.join("isobench");
    std::fs::copy(env!("CARGO_BIN_EXE_isobench"), &exe).unwrap();
    let text = small_scenario("1s", "100", 2, "");
    let path = scenario::write(dir.path(), "s.toml", &text);
    for p in [dir.path(), bin_dir.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(&exe)
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("out-nobody"))
        .current_dir(dir.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("root"), "{}", stderr(&out));
    // A sweep says the same before it makes its directory.
    let sweep = dir.path().join("sweep-nobody");
    let out = std::process::Command::new(&exe)
        .args(["explore", "--vary", "rate=10,20", "--out"])
        .arg(&sweep)
        .arg(&path)
        .current_dir(dir.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("root"), "{}", stderr(&out));
    assert!(!sweep.exists(), "the refused sweep wrote {}", sweep.display());
}

#[test]
fn noisy_neighbour_alternates_solo_and_contended_windows() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let extra = "[noisy_neighbour]\nrate = \"150\"\ncompute = \"4ms\"\nrounds = 3\nwindow = \"600ms\"\n";
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("1s", "200", 3, extra));
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).args(["--tiers", "shared-ec2", "--out"]).arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = read_summary(&out_dir);
    let n = &tier(&s, "shared-ec2")["noisy_neighbour"];
    assert_eq!(n["aggressor"], "tenant-01");
    let victims = n["victims"].as_array().unwrap();
    assert_eq!(victims.len(), 2, "every tenant but the aggressor is a victim");
    for v in victims {
        assert_eq!(v["solo_p99_us"].as_array().unwrap().len(), 3);
        assert_eq!(v["contended_p99_us"].as_array().unwrap().len(), 3);
    }
    assert_eq!(n["slowdown"]["count"], 6);
    // One process serves the aggressor too: its CPU bursts must show in the victims' p99.
    assert!(n["slowdown"]["median"].as_f64().unwrap() > 1.0, "{n}");
    // Every tenant and the generator share this host's cores: the figure is labelled host-bound.
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(n["host_bound"]["host_cpus"], cpus, "{n}");
    assert!(n["host_bound"]["quota_vcpus"].as_f64().unwrap() > 0.0, "{n}");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("Noisy neighbour (NN-CPU)"));
    assert!(report.contains("Host-bound figures") && report.contains(&format!("on {cpus} cores")), "{report}");
}

/// A function of the user's own that streams its response: `isobench run` records each
/// streamed invoke's time to first byte in `summary.json` and `histograms.hlog`, before its
/// latency (the stream's last byte).
#[test]
fn a_streaming_function_has_its_time_to_first_byte_in_the_summary() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("bootstrap");
    std::fs::write(&code, STREAMING_RUNTIME).unwrap();
    std::fs::set_permissions(&code, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let scenario = dir.path().join("streaming.toml");
    let text = small_scenario("2s", "20", 2, "").split("[[tier]]").next().unwrap().to_string()
        + "[[tier]]\nid = \"lambda-shared\"\nmemory = 1769\ncode = \"bootstrap\"\n";
    std::fs::write(&scenario, text).unwrap();
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&scenario).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let s = read_summary(&out_dir);
    let t = tier(&s, "lambda-shared");
    let f = &t["functions"];
    let ok = t["traffic"]["ok"].as_u64().unwrap();
    assert!(ok > 0 && f["streamed"].as_u64() == Some(ok), "every ok invoke streamed: {f}");
    let (ttfb, latency) =
        (f["ttfb"]["p50_us"].as_f64().unwrap(), t["latency"]["corrected"]["p50_us"].as_f64().unwrap());
    // The runtime pauses 50 ms between its two chunks.
    assert!(ttfb + 40_000.0 < latency, "ttfb p50 {ttfb} µs, latency p50 {latency} µs");
    assert_eq!(histogram_counts(&out_dir, "lambda-shared", "ttfb"), ok);
}

/// A custom runtime (Python, standard library) that streams `first`, waits 50 ms, then `second`.
const STREAMING_RUNTIME: &str = r#"#!/usr/bin/python3
import http.client, json, os, time
host = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = "/2018-06-01/runtime/invocation/"
while True:
    c = http.client.HTTPConnection(host)
    c.request("GET", base + "next")
    r = c.getresponse()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    r.read()
    c.putrequest("POST", base + rid + "/response")
    c.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders(b"5\r\nfirst\r\n")
    time.sleep(0.05)
    c.send(b"6\r\nsecond\r\n0\r\n\r\n")
    c.getresponse().read()
    c.close()
"#;
