//! The repository's paths, and scenario files written for one test.

use std::path::{Path, PathBuf};

/// The repository's root (this crate sits at `harness/testkit`).
pub fn repo_root() -> PathBuf {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR"));
    kit.ancestors().nth(2).expect("the crate sits two levels below the root").to_path_buf()
}

/// The repository's `scenarios/` directory.
pub fn scenarios_dir() -> PathBuf {
    repo_root().join("scenarios")
}

/// Writes a scenario into `dir` (a test's temporary directory) and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}
