//! `[explore]`: the matrix `isobench explore` runs when no `--vary` flag replaces it.
//!
//! ```toml
//! [explore]
//! vary = { tenants = [2, 8, 32], rate = ["100", "1k"] }
//! ```
//!
//! Two dimensions can vary: the tenant count (`[tenants] count`) and the rate (`[run] rate`).
//! A varied tenant count refuses explicit `[tenants] weights` and `ids` (they are one per
//! tenant, so they cannot follow the count); a Zipf mix (`[arrivals] tenants = "zipf"`)
//! recomputes its weights for every count.

use serde::{Deserialize, Deserializer, Serialize};

use crate::diagnostics::Checker;
use crate::units::{Rate, parse_rate};

/// The dimensions a sweep may vary, as they are named in `--vary` and `[explore] vary`.
pub const DIMENSIONS: &str =
    "`tenants` (tenant counts, e.g. `tenants=2,8,32`) and `rate` (requests per second per tier, e.g. `rate=100,1k`)";

/// Most tenants a scenario accepts (`[tenants] count`).
pub const MAX_TENANTS: u64 = 100_000;
/// Highest rate a run accepts (`--rate`).
pub const MAX_RATE: f64 = 10e6;

/// `[explore]` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreSpec {
    pub vary: Vary,
}

/// The values of each varied dimension; a dimension left out keeps the scenario's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<Count>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Vec<Rate>>,
}

/// A tenant count, written as a number or with the rate's multipliers (`"1k"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => {
                u64::try_from(n).map(Count).map_err(|_| serde::de::Error::custom("a count must not be negative"))
            }
            Raw::S(s) => parse_count(&s).map(Count).map_err(serde::de::Error::custom),
        }
    }
}

/// A tenant count such as `8`, `1k`: a whole number, with the rate's multipliers.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let v = parse_rate(s).map_err(|e| e.to_string().replace("valid rate", "valid tenant count"))?;
    if v.fract() != 0.0 {
        return Err(format!("`{s}` is not a whole number of tenants"));
    }
    Ok(v as u64)
}

/// Why a list of tenant counts cannot be swept, with what would be accepted.
pub fn check_tenants(values: &[u64]) -> Result<(), (String, String)> {
    let accepted = format!("a non-empty list of distinct tenant counts from 1 to {MAX_TENANTS}, e.g. [2, 8, 32]");
    if values.is_empty() {
        return Err(("the list of tenant counts is empty".into(), accepted));
    }
    if let Some(v) = values.iter().find(|v| **v == 0 || **v > MAX_TENANTS) {
        return Err((format!("{v} tenants is out of range"), accepted));
    }
    if let Some(v) = repeated(values) {
        return Err((format!("{v} tenants is listed twice"), accepted));
    }
    Ok(())
}

/// Why a list of rates cannot be swept, with what would be accepted.
pub fn check_rates(values: &[f64]) -> Result<(), (String, String)> {
    let accepted =
        "a non-empty list of distinct rates above 0 and at most 10M req/s, e.g. [\"100\", \"1k\"]".to_string();
    if values.is_empty() {
        return Err(("the list of rates is empty".into(), accepted));
    }
    if let Some(v) = values.iter().find(|v| !(**v > 0.0 && **v <= MAX_RATE)) {
        return Err((format!("rate {v} is out of range"), accepted));
    }
    if let Some(v) = repeated(values) {
        return Err((format!("rate {v} is listed twice"), accepted));
    }
    Ok(())
}

fn repeated<T: PartialEq + Copy>(values: &[T]) -> Option<T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| *v)
}

/// Why a varied tenant count conflicts with the scenario's `[tenants]`: one weight or id per
/// tenant cannot follow a count that changes.
pub fn tenant_list_conflict(has_weights: bool, has_ids: bool) -> Option<(&'static str, String, String)> {
    let field = if has_weights {
        "tenants.weights"
    } else if has_ids {
        "tenants.ids"
    } else {
        return None;
    };
    Some((
        field,
        format!("`{field}` lists one value per tenant, so it cannot follow a varied tenant count"),
        "no `weights` or `ids` in [tenants] when `tenants` is varied (uniform weights, or `[arrivals] tenants = \"zipf\"`), or vary only `rate`".into(),
    ))
}

/// Checks `[explore]` against the rest of the scenario.
pub(super) fn validate(e: &ExploreSpec, has_weights: bool, has_ids: bool, c: &mut Checker) {
    let v = &e.vary;
    if v.tenants.is_none() && v.rate.is_none() {
        c.fail("explore.vary", "no dimension is varied", format!("at least one of {DIMENSIONS}"));
    }
    if let Some(t) = &v.tenants {
        if let Err((m, a)) = check_tenants(&t.iter().map(|c| c.0).collect::<Vec<_>>()) {
            c.fail("explore.vary.tenants", m, a);
        }
        if let Some((field, m, a)) = tenant_list_conflict(has_weights, has_ids) {
            c.fail(field, m, a);
        }
    }
    if let Some(r) = &v.rate
        && let Err((m, a)) = check_rates(&r.iter().map(|r| r.0).collect::<Vec<_>>())
    {
        c.fail("explore.vary.rate", m, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_rate_multipliers_and_must_be_whole() {
        assert_eq!(parse_count("8"), Ok(8));
        assert_eq!(parse_count("1k"), Ok(1000));
        assert!(parse_count("1.5").unwrap_err().contains("whole number"));
        assert!(parse_count("x").unwrap_err().contains("tenant count"));
    }

    #[test]
    fn empty_out_of_range_and_repeated_lists_are_refused() {
        assert!(check_tenants(&[2, 8]).is_ok());
        assert!(check_tenants(&[]).unwrap_err().0.contains("empty"));
        assert!(check_tenants(&[0]).unwrap_err().0.contains("out of range"));
        assert!(check_tenants(&[2, 8, 2]).unwrap_err().0.contains("2 tenants is listed twice"));
        assert!(check_rates(&[100.0, 1000.0]).is_ok());
        assert!(check_rates(&[100.0, 100.0]).unwrap_err().0.contains("listed twice"));
        assert!(check_rates(&[0.0]).unwrap_err().0.contains("out of range"));
    }
}
