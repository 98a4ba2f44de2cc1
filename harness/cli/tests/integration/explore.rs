use std::path::Path;
use std::time::{Duration, Instant};

use isobench_testkit::{leftovers, needs_root, scenario};

use crate::util::*;

/// One tier, two tenants, 1 s of traffic; the sweep varies the rate over two points.
fn tiny(extra: &str) -> String {
    format!(
        "format_version = 1\nname = \"tiny-sweep\"\n[run]\nduration = \"1s\"\nrate = \"50\"\ntimeout = \"1s\"\nseed = 3\n\
         [tenants]\ncount = 2\n{extra}\n[[tier]]\nid = \"silo-ec2\"\ninstance_type = \"t3.micro\"\n"
    )
}

fn sweep_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).expect("sweep.json written")).unwrap()
}

#[test]
fn bad_matrices_are_refused_before_anything_deploys() {
    let dir = tempfile::tempdir().unwrap();
    let plain = scenario::write(dir.path(), "s.toml", &tiny(""));
    let weighted = scenario::write(dir.path(), "w.toml", &tiny("weights = [1, 3]"));
    let cases: [(&Path, &[&str], &str); 5] = [
        (&plain, &["--vary", "memory=1,2"], "unknown dimension `memory`"),
        (&plain, &["--vary", "tenants=2,2"], "listed twice"),
        (&plain, &["--vary", "rate="], "empty"),
        (&plain, &[], "nothing to vary"),
        (&weighted, &["--vary", "tenants=2,4"], "tenants.weights"),
    ];
    for (path, args, want) in cases {
        let out =
            isobench().arg("explore").arg(path).args(args).arg("--out").arg(dir.path().join("o")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want) && stderr(&out).contains("accepted"), "{args:?}: {}", stderr(&out));
        assert!(!dir.path().join("o").exists(), "{args:?} created the sweep directory");
    }
    // A bad [explore] section is located in the file.
    let section = scenario::write(dir.path(), "e.toml", &tiny("[explore]\nvary = { rate = [] }"));
    let out = isobench().arg("explore").arg(&section).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("e.toml:11:") && stderr(&out).contains("explore.vary.rate"), "{}", stderr(&out));
}

#[test]
fn a_killed_sweep_resumes_without_redoing_finished_points() {
    needs_root!();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "s.toml", &tiny("[explore]\nvary = { rate = [\"40\", \"80\"] }"));
    let out_dir = dir.path().join("sweep");
    let explore = || {
        let mut c = isobench();
        c.arg("explore").arg(&path).arg("--out").arg(&out_dir).arg("--no-progress-bar");
        c
    };
    let first = out_dir.join("points/tenants=2,rate=40/summary.json");
    let mut child = explore().stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    while !first.exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(first.exists(), "the first point never finished");
    // SAFETY: kill with a valid pid of our own child and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "a stopped sweep exits as interrupted");
    let s = sweep_json(&out_dir);
    assert_eq!(s["status"], "interrupted", "{s}");
    assert_eq!(s["points"][0]["status"], "complete", "{}", s["points"]);
    assert_ne!(s["points"][1]["status"], "complete", "{}", s["points"]);
    let kept = std::fs::read(&first).unwrap();
    let run1 = s["points"][0]["run_id"].as_str().unwrap().to_string();

    let out = explore().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("point 1/2 tenants=2,rate=40: kept from an earlier run"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&first).unwrap(), kept, "the finished point was redone");
    let s = sweep_json(&out_dir);
    assert_eq!(s["status"], "complete", "{s}");
    assert_eq!(
        (s["points"][0]["run_id"].as_str(), s["points"][0]["resumed"].as_bool()),
        (Some(run1.as_str()), Some(true))
    );
    assert_eq!(
        (s["points"][1]["status"].as_str(), s["points"][1]["resumed"].as_bool()),
        (Some("complete"), Some(false))
    );
    let second = read_summary(&out_dir.join("points/tenants=2,rate=80"));
    assert_eq!(second["status"], "complete");
    assert_eq!(second["tiers"][0]["target_rate"], 80.0);
    for p in s["points"].as_array().unwrap() {
        assert_eq!(leftovers::of_run(p["run_id"].as_str().unwrap()), Vec::<String>::new());
    }
    // Both reports, the sweep's linking to each point's.
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("href=\"points/tenants=2,rate=80/report.html\""), "no link to the point's report");
    assert!(html.contains("What this run is"), "the sweep's report opens with its limits");
    assert!(out_dir.join("report.md").is_file());

    // The same directory with another matrix is another sweep: refused, saying what differs.
    let other = isobench()
        .arg("explore")
        .arg(&path)
        .args(["--vary", "rate=40,120"])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(stderr(&other).contains("rates [40.0, 80.0] there, [40.0, 120.0] now"), "{}", stderr(&other));
    assert!(t0.elapsed() < Duration::from_secs(30), "the sweep test took {:?}", t0.elapsed());
}

#[test]
fn the_committed_sweep_report_rerenders_byte_for_byte() {
    let committed = isobench_testkit::scenario::repo_root().join("results/examples/explore");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("explore");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(committed.join("sweep.json"), copy.join("sweep.json")).unwrap();
    // The limits statement comes from the first finished point's summary.
    let first = "points/tenants=2,rate=100";
    std::fs::create_dir_all(copy.join(first)).unwrap();
    std::fs::copy(committed.join(first).join("summary.json"), copy.join(first).join("summary.json")).unwrap();
    let out = isobench().arg("report").arg(&copy).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for f in ["report.md", "report.html"] {
        let (have, want) = (std::fs::read(copy.join(f)).unwrap(), std::fs::read(committed.join(f)).unwrap());
        assert!(have == want, "results/examples/explore/{f} differs from what `isobench report` draws; re-render it");
    }
    // The committed sweep.json matches the committed schema.
    let schema_path = isobench_testkit::scenario::repo_root().join(isobench_results::sweep::SWEEP_SCHEMA_FILE);
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the committed sweep schema compiles");
    let s = sweep_json(&committed);
    let errors: Vec<String> = validator.iter_errors(&s).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "sweep.json does not match its schema:\n{}", errors.join("\n"));
    // Every crossover names only runs of the sweep, and every curve point says where it is from.
    let keys: Vec<&str> = s["points"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert!(!s["crossovers"].as_array().unwrap().is_empty(), "the committed sweep names no crossover");
    for c in s["crossovers"].as_array().unwrap() {
        for r in c["runs"].as_array().unwrap() {
            assert!(keys.contains(&r.as_str().unwrap()), "{c}");
        }
    }
    for curve in s["curves"].as_array().unwrap() {
        for p in curve["points"].as_array().unwrap() {
            assert!(keys.contains(&p["from"].as_str().unwrap()), "{p}");
            let file = p["source"].as_str().unwrap();
            assert!(file.contains(&format!("points/{}/summary.json", p["from"].as_str().unwrap())), "{p}");
        }
    }
}

#[test]
fn the_sweep_report_opens_offline_in_a_real_browser_with_every_chart_drawn() {
    if !crate::cdp::available() {
        return;
    }
    let page = isobench_testkit::scenario::repo_root().join("results/examples/explore/report.html");
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("sweep.png");
    let load = crate::cdp::Browser::launch().load(&page, Some(&shot));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 50_000, "a real screenshot, {} bytes", png.len());
    let own = format!("file://{}", page.display());
    let outside: Vec<&String> = load.requests.iter().filter(|u| **u != own).collect();
    assert!(outside.is_empty(), "the sweep's report made requests: {outside:?}");
    let s = sweep_json(page.parent().unwrap());
    let tiers = s["tiers"].as_array().unwrap().len();
    let (rates, counts) =
        (s["matrix"]["rate"].as_array().unwrap().len(), s["matrix"]["tenants"].as_array().unwrap().len());
    let groups = |chart: &str| load.dom.matches(&format!("<svg data-chart=\"{chart}\"")).count();
    let layers = |chart: &str| {
        load.dom
            .split(&format!("<svg data-chart=\"{chart}\""))
            .skip(1)
            .map(|svg| svg[..svg.find("</svg>").unwrap()].matches("<g class=\"data\"").count())
            .sum::<usize>()
    };
    assert_eq!((groups("sweep-cost-tenants"), layers("sweep-cost-tenants")), (rates, rates * tiers));
    assert_eq!((groups("sweep-cost-rate"), layers("sweep-cost-rate")), (counts, counts * tiers));
    assert_eq!((groups("sweep-p99"), layers("sweep-p99")), (counts, counts * tiers));
    assert!(!load.dom.contains("<script"), "the page has no scripts");
}
