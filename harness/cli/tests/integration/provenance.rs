use isobench_testkit::scenario::repo_root;

use crate::util::*;

/// What git says of the checkout now: HEAD, and whether tracked files differ from it. `None`
/// outside a git checkout (a tarball build), where the harness says "commit unknown".
pub(crate) fn checkout() -> Option<(String, bool)> {
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git").arg("-C").arg(repo_root()).args(args).output().ok()?;
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    let dirty = !git(&["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"])?.is_empty();
    Some((head, dirty))
}

#[test]
fn version_names_the_commit_and_whether_the_tree_was_dirty() {
    let out = isobench().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = stdout(&out);
    match checkout() {
        Some((head, dirty)) => {
            assert!(v.contains(&head), "`{v}` does not name HEAD {head}");
            assert_eq!(v.contains("with uncommitted changes"), dirty, "`{v}`, tree dirty: {dirty}");
        }
        None => assert!(v.contains("commit unknown"), "{v}"),
    }
}

/// The summary's `tool` is the build's provenance (used by the end-to-end runs).
pub(crate) fn assert_tool_is_this_checkout(s: &serde_json::Value) {
    let Some((head, dirty)) = checkout() else { return assert!(s["tool"]["commit"].is_null(), "{}", s["tool"]) };
    assert_eq!(s["tool"]["commit"], head.as_str(), "{}", s["tool"]);
    assert_eq!(s["tool"]["dirty"], dirty, "{}", s["tool"]);
}
