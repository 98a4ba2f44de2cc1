use isobench_testkit::scenario::{self, repo_root};
use isobench_testkit::{leftovers, needs_root};
use serde_json::Value;

use crate::util::*;

/// The built-in pricing file, read as plain TOML (not through the cost crate).
fn price(key: &str) -> f64 {
    let text = std::fs::read_to_string(repo_root().join("harness/cost/pricing/us-east-1.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let (section, name) = key.split_once('.').unwrap();
    table[section][name]["usd"].as_float().unwrap_or_else(|| panic!("no price {key}"))
}

fn f(v: &Value, p: &str) -> f64 {
    v.pointer(p).and_then(Value::as_f64).unwrap_or_else(|| panic!("no {p} in {v}"))
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

/// The cost a tier should have, by hand from its summary: (run, monthly, idle).
fn by_hand(t: &Value) -> (f64, f64, f64) {
    let hours = f(t, "/duration_s").max(60.0) / 3600.0;
    let rate = f(t, "/target_rate");
    // Little's law with the ok throughput.
    let l = f(t, "/ok_rate") * f(t, "/latency/uncorrected/mean_us") / 1e6;
    let n = t["instances"].as_array().unwrap().len() as f64;
    let idle = |month: f64, vcpus: f64| month * (1.0 - (l / vcpus).min(1.0));
    match t["tier"].as_str().unwrap() {
        // t3.micro: 2 vCPUs.
        "silo-ec2" => {
            let m = n * 720.0 * price("ec2.t3.micro");
            (n * hours * price("ec2.t3.micro"), m, idle(m, 2.0 * n))
        }
        // One m5.large (2 vCPUs), not saturated at this rate.
        "shared-ec2" => {
            let m = 720.0 * price("ec2.m5.large");
            (hours * price("ec2.m5.large"), m, idle(m, 2.0))
        }
        // Fargate tasks of 256 CPU units (0.25 vCPU) and 512 MiB (0.5 GB).
        "ecs-awsvpc" => {
            let per_hour = 0.25 * price("fargate.vcpu-x86_64") + 0.5 * price("fargate.gb-x86_64");
            let m = n * 720.0 * per_hour;
            (n * hours * per_hour, m, idle(m, 0.25 * n))
        }
        "lambda-shared" => {
            let r = f(t, "/functions/billed_invokes");
            let init_ms = (f(t, "/functions/init/mean_us") * f(t, "/functions/init/count") / 1000.0).ceil();
            let gb_s = f(t, "/functions/billed_mb_ms_total") / 1024.0 / 1000.0 + init_ms * 256.0 / 1024.0 / 1000.0;
            let run = r / 1e6 * price("lambda.requests") + gb_s * price("lambda.gb-second-x86_64");
            (run, run * rate * 2_592_000.0 / r, 0.0)
        }
        other => panic!("unexpected tier {other}"),
    }
}

#[test]
fn a_run_costs_every_tier_as_recomputed_by_hand() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let extra =
        "[[tier]]\nid = \"ecs-awsvpc\"\nlaunch_type = \"fargate\"\n\n[[tier]]\nid = \"lambda-shared\"\nmemory = 256\n";
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("2s", "200", 3, extra));
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nstdout: {}", stderr(&out), stdout(&out));
    crate::schema::assert_valid_summary(&out_dir.join("summary.json"));
    let s = read_summary(&out_dir);
    assert_eq!(s["pricing"]["region"], "us-east-1");
    assert_eq!(s["pricing"]["source"], "built-in");
    let tiers = s["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 4);
    for t in tiers {
        let name = t["tier"].as_str().unwrap();
        let c = &t["cost"];
        let (run, month, idle) = by_hand(t);
        assert_eq!(cents(f(c, "/run_usd")), cents(run), "{name} run: {c}");
        assert!((f(c, "/run_usd") - run).abs() < 1e-9, "{name} run {run}: {c}");
        assert_eq!(cents(f(c, "/monthly_usd")), cents(month), "{name} month: {c}");
        assert_eq!(cents(f(c, "/monthly_idle_usd")), cents(idle), "{name} idle: {c}");
        assert_eq!(cents(f(c, "/per_tenant_usd")), cents(month / 3.0), "{name}: {c}");
        let per_m = month / (f(t, "/target_rate") * 2_592_000.0) * 1e6;
        assert_eq!(cents(f(c, "/per_million_requests_usd")), cents(per_m), "{name}: {c}");
        let items: f64 =
            c["items"].as_array().unwrap().iter().map(|i| f(i, "/quantity") * f(i, "/unit_price_usd")).sum();
        assert!((items - f(c, "/run_usd")).abs() < 1e-12, "{name}: items do not add up: {c}");
        // Calibration: the measured spread beside a published range, labelled as modelled.
        let cal = t["calibration"].as_array().unwrap();
        assert_eq!(cal.len(), 1, "{name}: {cal:?}");
        assert!(cal[0]["source"].as_str().unwrap().starts_with("modelled"), "{name}: {cal:?}");
        assert!(f(&cal[0], "/measured_ms/count") >= 1.0, "{name}: {cal:?}");
    }
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("## Cost (modelled)") && report.contains("## Calibration (modelled)"), "{report}");
    assert!(stdout(&out).contains("cost (modelled)"), "{}", stdout(&out));
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}

/// A pricing file for a region without a built-in table must price every tier itself.
#[test]
fn a_missing_price_is_bad_input_naming_the_tier() {
    let dir = tempfile::tempdir().unwrap();
    let pricing = scenario::write(
        dir.path(),
        "p.toml",
        "format_version = 1\nregion = \"eu-test-1\"\nas_of = \"2026-11-01\"\ncurrency = \"USD\"\n\n\
         [ec2.\"t3.micro\"]\nusd = 0.0114\nunit = \"instance-hour\"\nsource = \"test\"\n",
    );
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("1s", "100", 2, ""));
    let out_dir = dir.path().join("out");
    let out =
        isobench().arg("run").arg(&path).arg("--pricing").arg(&pricing).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("tier shared-ec2 needs the price `ec2.m5.large`"), "{}", stderr(&out));
    assert!(!out_dir.exists(), "nothing may be written for bad input");
}

#[test]
fn an_invalid_price_is_located_in_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let pricing = scenario::write(
        dir.path(),
        "p.toml",
        "format_version = 1\nregion = \"us-east-1\"\nas_of = \"2026-11-01\"\ncurrency = \"USD\"\n\n\
         [ec2.\"t3.micro\"]\nusd = -0.01\nunit = \"instance-hour\"\nsource = \"test\"\n",
    );
    let out = isobench().args(["validate", "scenarios/quick.toml", "--pricing"]).arg(&pricing).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("p.toml:7: field `ec2.\"t3.micro\".usd`: -0.01 is not a price"), "{}", stderr(&out));
}

#[test]
fn an_unknown_region_lists_the_built_in_ones() {
    let out = isobench().args(["validate", "scenarios/quick.toml", "--region", "mars-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no built-in prices for region `mars-1`; accepted: `us-east-1`"), "{}", stderr(&out));
}

#[test]
fn validate_projects_the_cost_before_deploy() {
    let out = isobench().args(["validate", "scenarios/quick.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("projected cost before deploy (prices: us-east-1 USD"), "{}", stdout(&out));
    assert!(stdout(&out).contains("tier silo-ec2"), "{}", stdout(&out));
}

/// A compute-bound workload offered far past what this host's cores can serve (20 ms of CPU per
/// request, 300 req/s: 6 cores' worth on a 2-vCPU shared instance): what went on the wire and
/// what was served stay well below the target, the lag grows, and the shared-ec2 cost scales
/// its instances by the measured throughput.
#[test]
fn a_saturated_target_reports_its_achieved_rate_lag_and_scaled_cost() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let text = r#"format_version = 1
name = "saturated"

[run]
duration = "2s"
rate = "300"
arrival = "constant"
timeout = "1s"
max_connections = 8
seed = 7

[mix]
compute = 1

[workload]
compute = "20ms"

[tenants]
count = 2

[[tier]]
id = "shared-ec2"
instance_type = "m5.large"
"#;
    let path = scenario::write(dir.path(), "s.toml", text);
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nstdout: {}", stderr(&out), stdout(&out));
    let s = read_summary(&out_dir);
    let t = &s["tiers"][0];
    assert_balanced(&t["traffic"], "shared-ec2");
    let (target, achieved, ok) = (f(t, "/target_rate"), f(t, "/achieved_rate"), f(t, "/ok_rate"));
    let lag_p99_s = f(t, "/latency/generator_lag/p99_us") / 1e6;
    eprintln!("saturated: target {target} req/s, achieved {achieved:.1}, ok {ok:.1}, lag p99 {lag_p99_s:.3} s");
    // At most 2 cores / 20 ms = 100 req/s can be served, and 8 connections carry no more.
    assert!(achieved < 0.5 * target, "achieved {achieved:.1} of {target} req/s");
    assert!(ok > 0.0 && ok <= achieved + 1.0, "ok {ok:.1}, achieved {achieved:.1}");
    assert!(lag_p99_s > 0.5, "the backlog grew: lag p99 {lag_p99_s:.3} s");
    let c = &t["cost"];
    let notes: Vec<&str> = c["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(notes[0].starts_with("the tier saturated: ok throughput"), "{notes:?}");
    assert!(notes[0].contains("lag grew"), "{notes:?}");
    // c = ok throughput / 1 instance, ceil(target / c) instances for the month.
    let needed = (target / ok).ceil();
    assert!(needed >= 3.0, "{needed}");
    assert_eq!(cents(f(c, "/monthly_usd")), cents(needed * 720.0 * price("ec2.m5.large")), "{c}");
    assert!(c["formula"].as_str().unwrap().contains(&format!("M = ceil(λ / c) = {needed}")), "{c}");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        report.contains(&format!("achieved {achieved:.0} req/s on the wire, ok throughput {ok:.0} req/s")),
        "{report}"
    );
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}

/// Lambda INITs are priced from the emulator's record of every environment it started, also
/// those whose invoke the driver timed out first (no answer carried their INIT); each
/// function's start time is its own.
#[test]
fn every_lambda_init_is_priced_even_when_its_invoke_timed_out() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    // A 5 ms driver timeout: every cold start's invoke times out during INIT.
    let text = r#"format_version = 1
name = "inits"

[run]
duration = "2s"
rate = "20"
arrival = "constant"
timeout = "5ms"
seed = 7

[mix]
get = 1

[tenants]
count = 3

[[tier]]
id = "lambda-per-tenant"
memory = 1769
"#;
    let path = scenario::write(dir.path(), "s.toml", text);
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).arg("--out").arg(&out_dir).output().unwrap();
    // Timeouts may exhaust the default error budget (exit 9); the figures are written either way.
    assert!(matches!(out.status.code(), Some(0 | 9)), "stderr: {}\nstdout: {}", stderr(&out), stdout(&out));
    let s = read_summary(&out_dir);
    let t = &s["tiers"][0];
    let fx = &t["functions"];
    let (count, unanswered) = (f(fx, "/init/count"), f(fx, "/init_unanswered"));
    let created = f(t, "/environments/created");
    let answered: f64 = t["per_tenant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["functions"]["init"]["count"].as_f64().unwrap_or(0.0))
        .sum();
    eprintln!("inits: {count} recorded, {answered} answered, {unanswered} unanswered; {created} environments created");
    assert!(unanswered >= 3.0, "each tenant's first cold start timed out in the driver: {fx}");
    assert_eq!(count, answered + unanswered, "{fx}");
    // Asked right after traffic: at most the last request per tenant may still be starting one.
    assert!(count <= created && created - count <= 3.0, "{count} INITs of {created} environments");
    let init_ms = (f(fx, "/init/mean_us") * count / 1000.0).ceil();
    let formula = t["cost"]["formula"].as_str().unwrap();
    assert!(formula.contains(&format!("INIT ms = {init_ms}")), "{formula}");
    let starts: std::collections::BTreeSet<u64> =
        t["instances"].as_array().unwrap().iter().map(|i| f(i, "/start_ms").to_bits()).collect();
    assert_eq!(starts.len(), 3, "one start time measured per function, not one repeated: {}", t["instances"]);
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}

/// A local run projects every tier onto AWS from the published overheads (here one entry
/// overridden by a file, recorded with its hash), labelled modelled; the histogram log keeps
/// only measured figures.
#[test]
fn a_local_run_projects_every_tier_and_keeps_the_projection_out_of_the_histograms() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let overheads = scenario::write(
        dir.path(),
        "o.toml",
        "format_version = 1\nas_of = \"2026-12-01\"\n\n[overhead.vpc-hop-ec2]\nwhat = \"hop\"\nlow_ms = 0.3\n\
         high_ms = 0.7\nsource = \"test\"\nread_on = \"2026-12-01\"\nquality = \"judgement\"\n",
    );
    let path =
        scenario::write(dir.path(), "s.toml", &small_scenario("1s", "100", 2, "[[tier]]\nid = \"lambda-shared\"\n"));
    let out_dir = dir.path().join("out");
    let out = isobench()
        .arg("run")
        .arg(&path)
        .arg("--overheads")
        .arg(&overheads)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nstdout: {}", stderr(&out), stdout(&out));
    crate::schema::assert_valid_summary(&out_dir.join("summary.json"));
    let s = read_summary(&out_dir);
    assert!(s["overheads"]["source"].as_str().unwrap().ends_with("o.toml over built-in"), "{}", s["overheads"]);
    assert_eq!(s["overheads"]["sha256"].as_str().map(str::len), Some(64));
    let log = std::fs::read(out_dir.join("histograms.hlog")).unwrap();
    let hist = isobench_results::hlog::read(&log).unwrap();
    for t in s["tiers"].as_array().unwrap() {
        let name = t["tier"].as_str().unwrap();
        let p = &t["projected"];
        assert_eq!(p["basis"], "modelled", "{name}: {p}");
        let measured = f(t, "/latency/corrected/p50_us") / 1e3;
        assert_eq!(f(p, "/measured_p50_ms"), measured, "{name}");
        let hop = if name == "lambda-shared" { 5.0 } else { 0.3 };
        assert!(f(p, "/p50/low_ms") >= measured + hop - 1e-9, "{name}: {p}");
        assert!(!p["components"][0]["source"].as_str().unwrap().is_empty(), "{name}: {p}");
        if name != "lambda-shared" {
            assert_eq!(f(p, "/components/0/high_ms"), 0.7, "{name}: the file's figure: {p}");
        }
        // The log's corrected p50 is the measured one, not the projection.
        let logged = hist.corrected[name].value_at_quantile(0.5) as f64 / 1e6;
        assert!(logged < f(p, "/p50/low_ms"), "{name}: the log holds {logged} ms, projected {p}");
    }
    let measures = ["corrected", "uncorrected", "lag", "corrected_cold", "corrected_warm", "uncorrected_cold"];
    let measures = [&measures[..], &["uncorrected_warm", "init", "ttfb"]].concat();
    for e in isobench_results::hlog::entries(&log) {
        let tag = e.unwrap().tag;
        assert!(measures.contains(&tag.measure.as_str()), "a measure that is not measured: {tag}");
    }
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("## Projected on AWS (modelled)"), "{report}");
    assert!(stdout(&out).contains("projected AWS latency (modelled"), "{}", stdout(&out));
    assert_eq!(leftovers::of_run(s["run_id"].as_str().unwrap()), Vec::<String>::new());
}

#[test]
fn an_invalid_overheads_file_is_bad_input_located_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let overheads = scenario::write(
        dir.path(),
        "o.toml",
        "format_version = 1\nas_of = \"2026-12-01\"\n\n[overhead.lambda-invoke-path]\nwhat = \"w\"\nlow_ms = 9.0\n\
         high_ms = 1.0\nsource = \"s\"\nread_on = \"2026-12-01\"\nquality = \"secondary\"\n",
    );
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("1s", "100", 2, ""));
    let out_dir = dir.path().join("out");
    let out = isobench()
        .arg("run")
        .arg(&path)
        .arg("--overheads")
        .arg(&overheads)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("o.toml:7: field `overhead.lambda-invoke-path.high_ms`: 1 is below low_ms 9"),
        "{}",
        stderr(&out)
    );
    assert!(!out_dir.exists(), "nothing may be written for bad input");
}
