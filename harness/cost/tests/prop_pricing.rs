//! Property tests of the pricing table parser: arbitrary text and the built-in table under
//! arbitrary mutations. It never panics, and a refused table names the line at fault, as
//! `PricingError` promises ("located in its file by line"); a table it accepts has only
//! finite, non-negative prices, each with its source.

use isobench_cost::{Pricing, PricingError};
use isobench_testkit::mutate::mutated;
use proptest::prelude::*;

const BUILT_IN: &str = include_str!("../pricing/us-east-1.toml");

fn check(src: &str) {
    match Pricing::parse(src, "p.toml") {
        Ok(p) => {
            for (key, price) in &p.prices {
                assert!(price.usd.is_finite() && price.usd >= 0.0, "{key}: {}", price.usd);
                assert!(!price.source.trim().is_empty(), "{key} has no source");
            }
        }
        Err(e) => assert_located(src, &e),
    }
}

fn assert_located(src: &str, e: &PricingError) {
    let lines = src.lines().count() + 1;
    let line = e.problem.line.unwrap_or_else(|| panic!("not located: {e}\nin:\n{src}"));
    assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
    assert!(e.to_string().starts_with(&format!("invalid pricing table p.toml:{line}")), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_and_is_located(src in "\\PC{0,160}") {
        check(&src);
    }

    #[test]
    fn mutated_tables_never_panic_and_are_located(src in mutated(BUILT_IN)) {
        check(&src);
    }
}

#[test]
fn the_seed_is_valid() {
    Pricing::parse(BUILT_IN, "p.toml").unwrap_or_else(|e| panic!("{e}"));
}
