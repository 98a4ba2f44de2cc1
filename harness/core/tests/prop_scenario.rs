//! Property tests of the scenario parser: arbitrary text, and the repository's scenarios under
//! arbitrary mutations (lines deleted, duplicated, cut, values replaced by hostile ones). The
//! parser never panics, and every problem it reports is located on a line of the file, as its
//! errors promise ("errors name the file, line, column and field").

use std::path::{Path, PathBuf};

use isobench_core::scenario::{Scenario, ScenarioError};
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

/// Values that have broken parsers: out of range, wrong type, overflowing, empty, negative.
const HOSTILE: &[&str] = &[
    "0",
    "-1",
    "1e400",
    "-0.0",
    "nan",
    "inf",
    "18446744073709551616",
    "9223372036854775807",
    "\"\"",
    "\"-5s\"",
    "\"0s\"",
    "\"99999999999999999999999h\"",
    "\"1e9999s\"",
    "\"10k\"",
    "\"9999999999999999M\"",
    "\"4KiB\"",
    "\"100000000000000000000GiB\"",
    "\"x\"",
    "\"µs\"",
    "true",
    "[]",
    "[1, \"a\"]",
    "{}",
    "{ a = 1 }",
    "1979-05-27",
    "\"shared-ec2\"",
    "\"10.0.0.0/33\"",
    "\"255.255.255.255/0\"",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    /// The value after `=` on a line replaced.
    Value(usize, String),
    Truncate(usize),
    Insert(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![
        3 => proptest::sample::select(HOSTILE).prop_map(str::to_string),
        1 => "\\PC{0,12}",
        1 => "\"[0-9.eE+-]{1,30}(ns|us|ms|s|m|h|k|M|KiB|GB)?\"",
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), value).prop_map(|(i, v)| Mutation::Value(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), "\\PC{0,8}|\n\\[\\[?[a-z_.]{1,12}\\]\\]?\n|\n[a-z_]{1,10} = [0-9]{1,3}\n")
            .prop_map(|(i, s)| Mutation::Insert(i, s)),
    ]
}

fn apply(src: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = src.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::Delete(i) if !lines.is_empty() => {
            lines.remove(i % n);
        }
        Mutation::Duplicate(i) if !lines.is_empty() => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::Value(i, v) => {
            let with_value: Vec<usize> = (0..lines.len()).filter(|&j| lines[j].contains('=')).collect();
            if let Some(&j) = with_value.get(i % with_value.len().max(1)) {
                let key = lines[j].split_once('=').unwrap().0.to_string();
                lines[j] = format!("{key}= {v}");
            }
        }
        Mutation::Truncate(i) => return src[..boundary(src, *i)].to_string(),
        Mutation::Insert(i, s) => {
            let at = boundary(src, *i);
            return format!("{}{s}{}", &src[..at], &src[at..]);
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

fn boundary(s: &str, i: usize) -> usize {
    let mut at = i % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
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
