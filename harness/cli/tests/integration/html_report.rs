use std::path::{Path, PathBuf};

use isobench_testkit::needs_root;
use isobench_testkit::scenario::{self, repo_root};

use crate::cdp;
use crate::schema::assert_valid_summary;
use crate::util::*;

/// A copy of a committed bench run, to re-render without touching the repository.
fn copy_bench(name: &str, to: &Path) -> PathBuf {
    let src = repo_root().join("results/bench").join(name);
    let dst = to.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["summary.json", "histograms.hlog"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

/// The opening tags of the data groups of one chart in a DOM dump.
fn data_groups<'a>(dom: &'a str, chart: &str) -> Vec<&'a str> {
    let Some(start) = dom.find(&format!("<svg data-chart=\"{chart}\"")) else { return Vec::new() };
    let svg = &dom[start..start + dom[start..].find("</svg>").expect("closed svg")];
    svg.match_indices("<g class=\"data\"").map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()]).collect()
}

/// Checks the charts of a rendered DOM against the summary they were drawn from.
fn assert_charts_drawn(dom: &str, summary: &serde_json::Value) {
    let tiers = summary["tiers"].as_array().unwrap();
    let curves = data_groups(dom, "latency");
    assert_eq!(curves.len(), tiers.len(), "one latency curve per tier: {curves:?}");
    for (g, t) in curves.iter().zip(tiers) {
        assert!(g.contains(&format!("data-tier=\"{}\"", t["tier"].as_str().unwrap())), "{g}");
        assert!(g.contains("data-points=\"201\""), "curves from the full histograms: {g}");
    }
    let functions = tiers.iter().filter(|t| t.get("functions").is_some()).count();
    assert_eq!(data_groups(dom, "cold-starts").len(), functions, "one cold-start group per function tier");
    let cells: usize = tiers.iter().map(|t| t["probes"].as_array().map_or(0, |p| p.len())).sum();
    let drawn = data_groups(dom, "leak-matrix");
    assert_eq!(drawn.len(), cells, "one rect per leak-matrix cell");
    for t in tiers {
        for c in t["probes"].as_array().into_iter().flatten() {
            let want = format!(
                "data-probe=\"{}\" data-tier=\"{}\" data-verdict=\"{}\"",
                c["probe"].as_str().unwrap(),
                t["tier"].as_str().unwrap(),
                c["verdict"].as_str().unwrap()
            );
            assert!(drawn.iter().any(|g| g.contains(&want)), "cell {want} not drawn");
        }
    }
    // Host-bound slowdowns (the emulator's shared cores) are kept out of the tier chart.
    let own_cpus =
        |t: &&serde_json::Value| t["noisy_neighbour"].is_object() && t["noisy_neighbour"]["host_bound"].is_null();
    let nn = tiers.iter().filter(own_cpus).count();
    assert_eq!(data_groups(dom, "noisy-neighbour").len(), nn, "one slowdown bar per tier with CPUs of its own");
    let costed = tiers.iter().filter(|t| t.get("cost").is_some()).count();
    assert_eq!(data_groups(dom, "cost").len(), costed);
    if costed == 0 {
        assert!(dom.contains("data-empty=\"cost\""), "a note instead of the cost chart");
    }
    let projected = tiers.iter().filter(|t| t.get("projected").is_some()).count();
    assert_eq!(data_groups(dom, "projected").len(), projected, "one projected-AWS group per projected tier");
    assert!(!dom.contains("<script"), "the page has no scripts");
    // The verdict table, one row per tier in run order, and the three picks.
    let verdict = &dom[dom.find("data-table=\"verdict\"").expect("a verdict table")..];
    let verdict = &verdict[..verdict.find("</table>").unwrap()];
    let rows: Vec<&str> = verdict.split("<tr><td>").skip(1).map(|r| &r[..r.find("</td>").unwrap()]).collect();
    let names: Vec<&str> = tiers.iter().map(|t| t["tier"].as_str().unwrap()).collect();
    assert_eq!(rows, names, "one verdict row per tier");
    let picks = &dom[dom.find("<ul data-list=\"picks\"").expect("the picks")..];
    assert_eq!(picks[..picks.find("</ul>\n").unwrap_or(picks.len())].matches("<li><b>").count(), 3, "three picks");
}

/// Requests a page made other than for its own file.
fn outside(requests: &[String], page: &Path) -> Vec<String> {
    let own = format!("file://{}", page.display());
    requests.iter().filter(|u| **u != own).cloned().collect()
}

#[test]
fn report_opens_offline_in_a_real_browser_with_every_chart_drawn() {
    if !cdp::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = copy_bench("leakage", dir.path());
    let out = isobench().arg("report").arg(&run).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = run.join("report.html");
    let mut browser = cdp::Browser::launch();

    // Positive control: a page that does fetch something is seen doing so, so an empty list
    // below means the report fetched nothing, not that the check is blind.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><body><img src=\"http://isobench-control.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let seen = browser.load(&control, None);
    assert_eq!(outside(&seen.requests, &control), ["http://isobench-control.invalid/x.png"], "control");

    let shot = dir.path().join("report.png");
    let load = browser.load(&page, Some(&shot));
    assert!(
        load.requests.iter().any(|u| u.ends_with("/report.html")),
        "the page itself was loaded: {:?}",
        load.requests
    );
    assert_eq!(outside(&load.requests, &page), Vec::<String>::new(), "the report made requests");
    assert_charts_drawn(&load.dom, &read_summary(&run));

    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 50_000, "a real screenshot, {} bytes", png.len());
    if std::env::var_os("UPDATE_EXAMPLES").is_some() {
        let to = repo_root().join("results/examples/report.png");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&shot, &to).unwrap();
    }
}

#[test]
fn fresh_run_writes_a_report_and_a_summary_that_match_the_schema() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario::write(dir.path(), "s.toml", &small_scenario("2s", "200", 2, ""));
    let out_dir = dir.path().join("out");
    let out = isobench().arg("run").arg(&path).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_valid_summary(&out_dir.join("summary.json"));
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("run writes report.html");
    assert_eq!(data_groups(&html, "latency").len(), 2, "both EC2 tiers drawn");
    if !cdp::available() {
        return;
    }
    let page = out_dir.join("report.html");
    let load = cdp::Browser::launch().load(&page, None);
    assert_eq!(outside(&load.requests, &page), Vec::<String>::new(), "the report made requests");
    assert_charts_drawn(&load.dom, &read_summary(&out_dir));
}
