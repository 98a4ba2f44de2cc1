//! Property tests of the scenario parser: arbitrary text, and the repository's scenarios under
//! arbitrary mutations (lines deleted, duplicated, cut, values replaced by hostile ones). The
//! parser never panics, and every problem it reports is located on a line of the file, as its
//! errors promise ("errors name the file, line, column and field").

use std::path::{Path, PathBuf};

use isobench_core::scenario::{Scenario, ScenarioError};
use isobench_testkit::mutate::{apply, mutation};
use proptest::prelude::*;

/// The committed scenarios, each with its path (trace files are read relative to it).
fn seeds() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() >= 5, "the scenarios folder moved: {}", dir.display());
    out
}

/// Every problem on a line of `src` (1-based, at most one past the last line).
fn assert_located(src: &str, e: &ScenarioError) {
    let lines = src.lines().count() + 1;
    assert!(!e.problems.is_empty(), "an error without problems");
    for p in &e.problems {
        let line = p.line.unwrap_or_else(|| panic!("problem not located: {p:?}\nin:\n{src}"));
        assert!((1..=lines).contains(&line), "line {line} of {lines}: {p:?}");
    }
    assert!(e.to_string().starts_with("invalid scenario "), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_and_errors_are_located(src in "\\PC{0,200}|(\\[?[a-z_.]{1,10}\\]? ?=? ?[0-9a-z\"\\[\\]{}.,-]{0,12}\n){0,12}") {
        match Scenario::parse(&src, Path::new("fuzz.toml")) {
            Ok(_) => {}
            Err(e) => assert_located(&src, &e),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_scenarios_never_panic_and_errors_are_located(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let seeds = seeds();
        let (path, text) = &seeds[seed.index(seeds.len())];
        let src = mutations.iter().fold(text.clone(), |s, m| apply(&s, m));
        match Scenario::parse(&src, path) {
            Ok(_) => {}
            Err(e) => assert_located(&src, &e),
        }
    }
}

/// The seeds themselves parse: otherwise every mutation above tests only the first error.
#[test]
fn the_seeds_are_valid() {
    for (path, text) in seeds() {
        Scenario::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    }
}
