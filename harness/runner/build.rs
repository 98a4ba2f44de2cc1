//! Captures the commit the harness is built from, and whether the tree had uncommitted
//! changes, so `--version` and every summary name the code that produced them.
//! `ISOBENCH_COMMIT` overrides the commit (builds from a tarball, with no `.git`).

use std::path::Path;
use std::process::Command;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    println!("cargo:rerun-if-env-changed=ISOBENCH_COMMIT");
    // Any source change may flip the dirty flag; the git files move with commits and checkouts.
    for dir in ["harness", "workloads", "benches", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for file in ["HEAD", "index", "packed-refs", "refs"] {
        if let Some(p) = git(&root, &["rev-parse", "--git-path", file]) {
            println!("cargo:rerun-if-changed={}", root.join(p).display());
        }
    }
    let commit = std::env::var("ISOBENCH_COMMIT").ok().or_else(|| git(&root, &["rev-parse", "HEAD"]));
    // `--no-optional-locks`: do not refresh the index, which would re-trigger this script.
    let dirty =
        commit.as_ref().and(git(&root, &["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"]));
    let commit = commit.unwrap_or_default();
    let dirty = match dirty {
        Some(s) if s.is_empty() => "clean",
        Some(_) => "dirty",
        None => "unknown",
    };
    println!("cargo:rustc-env=ISOBENCH_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=ISOBENCH_BUILD_TREE={dirty}");
    let version = match (commit.as_str(), dirty) {
        ("", _) => format!("{} (commit unknown)", env!("CARGO_PKG_VERSION")),
        (c, "dirty") => format!("{} ({c}, with uncommitted changes)", env!("CARGO_PKG_VERSION")),
        (c, _) => format!("{} ({c})", env!("CARGO_PKG_VERSION")),
    };
    println!("cargo:rustc-env=ISOBENCH_BUILD_VERSION={version}");
}

/// `git` in `root`, trimmed stdout, or `None` when git is missing or fails.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(root).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
