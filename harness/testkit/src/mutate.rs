//! Mutations of a TOML file for property tests of the parsers that read one (scenarios,
//! endpoints files, pricing tables): lines deleted, duplicated, cut short, values replaced by
//! hostile ones, text inserted. Each parser's test starts from its valid files and checks that
//! whatever the mutations make, the parser never panics and locates what it refuses.

use proptest::prelude::*;

/// Values that have broken parsers: out of range, wrong type, overflowing, empty, negative.
pub const HOSTILE: &[&str] = &[
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
pub enum Mutation {
    Delete(usize),
    Duplicate(usize),
    /// The value after `=` on a line replaced.
    Value(usize, String),
    Truncate(usize),
    Insert(usize, String),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
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

pub fn apply(src: &str, m: &Mutation) -> String {
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

/// One to three mutations applied in order to `src`.
pub fn mutated(src: &str) -> impl Strategy<Value = String> + use<> {
    let src = src.to_string();
    prop::collection::vec(mutation(), 1..4).prop_map(move |ms| ms.iter().fold(src.clone(), |s, m| apply(&s, m)))
}
