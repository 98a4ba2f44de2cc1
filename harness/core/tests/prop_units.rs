//! Property tests of the units parser (durations, rates, sizes): it never panics, a refusal
//! names the input, what it was read as and why, and what it accepts reads back as written.

use std::time::Duration;

use isobench_core::units::{UnitError, parse_duration, parse_rate, parse_size};
use proptest::prelude::*;

/// Numbers as people (and typos) write them: digits with `_`, `.`, signs, long runs of 9s.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        "[+-]?[0-9_]{1,30}(\\.[0-9]{0,10})?",
        "9{15,400}",
        "[0-9.+_-]{1,12}",
        any::<f64>().prop_map(|f| f.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
    ]
}

fn unit() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "", "ns", "us", "µs", "ms", "s", "m", "min", "h", "k", "K", "M", "/s", "k/s", "B", "KiB", "MiB", "GiB",
                "KB", "kB", "MB", "GB", " s", "S", "d",
            ][..]
        )
        .prop_map(str::to_string),
        "\\PC{0,4}",
    ]
}

fn input() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (number(), unit(), "[ \t]{0,2}").prop_map(|(n, u, pad)| format!("{pad}{n}{u}{pad}")),
        1 => "\\PC{0,24}",
    ]
}

fn assert_names_input(input: &str, what: &str, e: &UnitError) {
    assert_eq!((e.input.as_str(), e.what), (input, what));
    assert!(!e.reason.is_empty() && !e.accepted.is_empty(), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&format!("`{input}`")) && text.contains("accepted:"), "{text}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_input_is_a_value_or_an_error_that_names_it(s in input()) {
        match parse_duration(&s) {
            Ok(d) => prop_assert!(d <= Duration::MAX),
            Err(e) => assert_names_input(&s, "duration", &e),
        }
        match parse_rate(&s) {
            Ok(r) => prop_assert!(r.is_finite() && r >= 0.0, "{s} -> {r}"),
            Err(e) => assert_names_input(&s, "rate", &e),
        }
        match parse_size(&s) {
            Ok(_) => {}
            Err(e) => assert_names_input(&s, "size", &e),
        }
    }

    #[test]
    fn whole_units_read_back_exactly(n in 0u64..(1 << 53)) {
        prop_assert_eq!(parse_duration(&format!("{n}s")).unwrap(), Duration::from_secs(n));
        prop_assert_eq!(parse_size(&n.to_string()).unwrap(), n);
        prop_assert_eq!(parse_rate(&format!("{n}/s")).unwrap(), n as f64);
        let ns = parse_duration(&format!("{n}ns")).unwrap().as_nanos() as i128;
        prop_assert!((ns - n as i128).abs() <= 1 + (n as i128 >> 50), "{n}ns read as {ns}");
    }

    #[test]
    fn too_large_is_said_so(digits in 29usize..400, u in proptest::sample::select(&["s", "h", "ns", "m"][..])) {
        let s = format!("{}{u}", "9".repeat(digits));
        prop_assert_eq!(parse_duration(&s).unwrap_err().reason, "it is too large");
    }
}
