//! ARCHITECTURE.md stays true: every crate of the workspace is in its code map, under its
//! directory and its package name, and the map names no crate that is gone.

use std::collections::BTreeSet;

use isobench_testkit::scenario::repo_root;

/// (directory, package name) of every workspace member, read from the manifests.
fn members() -> Vec<(String, String)> {
    let root = repo_root();
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml")).unwrap().parse().unwrap();
    let dirs = manifest["workspace"]["members"].as_array().expect("workspace.members is a list");
    dirs.iter()
        .map(|d| {
            let dir = d.as_str().unwrap().to_string();
            let m: toml::Table = std::fs::read_to_string(root.join(&dir).join("Cargo.toml")).unwrap().parse().unwrap();
            let name = m["package"]["name"].as_str().unwrap().to_string();
            (dir, name)
        })
        .collect()
}

/// The code map's section headings: `### \`dir\` — \`package\``.
fn code_map() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md at the root");
    text.lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| {
            let (dir, rest) = l.split_once('`')?;
            let name = rest.split('`').nth(1)?;
            Some((dir.to_string(), name.to_string()))
        })
        .collect()
}

#[test]
fn every_workspace_crate_is_in_the_code_map_and_no_other() {
    let map = code_map();
    let mut members: BTreeSet<(String, String)> = members().into_iter().collect();
    // The root package (the `isobench` binary) lives in harness/cli.
    members.insert(("harness/cli".into(), "isobench".into()));
    let missing: Vec<_> = members.difference(&map).collect();
    let stale: Vec<_> = map.difference(&members).collect();
    assert!(
        missing.is_empty(),
        "crates missing from ARCHITECTURE.md's code map (add a `### `dir` — `package`` section): {missing:?}"
    );
    assert!(stale.is_empty(), "ARCHITECTURE.md's code map names crates that are not in the workspace: {stale:?}");
}

#[test]
fn the_code_map_parser_sees_a_missing_crate() {
    // The check above must be able to fail: a map without one section misses that crate.
    let map = code_map();
    assert!(map.contains(&("harness/core".to_string(), "isobench-core".to_string())), "{map:?}");
    let fewer: BTreeSet<_> = map.iter().filter(|(d, _)| d != "harness/core").cloned().collect();
    let members: BTreeSet<_> = members().into_iter().collect();
    assert!(members.difference(&fewer).any(|(d, _)| d == "harness/core"));
}
