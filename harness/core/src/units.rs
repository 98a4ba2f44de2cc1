//! Values with units, as people write them in scenarios and on the command line:
//! durations (`30s`, `200us`, `1.5ms`, `2m`), rates (`10k`, `2500`, `1.5k/s`) and sizes
//! (`256`, `4KiB`, `1MiB`, `512MB`) and amounts of US dollars (`$20`, `20`, `0.5`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value with a unit was not understood; the message says what would be accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{input}` is not a valid {what}: {reason}; accepted: {accepted}")]
pub struct UnitError {
    pub input: String,
    pub what: &'static str,
    pub reason: String,
    pub accepted: &'static str,
}

const DURATION_ACCEPTED: &str = "a number with a unit: ns, us, ms, s, m or h (e.g. `30s`, `200us`)";
const RATE_ACCEPTED: &str = "requests per second, optionally with k or M and `/s` (e.g. `2000`, `10k`, `1.5k/s`)";
const SIZE_ACCEPTED: &str = "bytes, optionally with B, KiB, MiB, GiB, KB, MB or GB (e.g. `256`, `4KiB`)";
const USD_ACCEPTED: &str = "US dollars, optionally with a leading `$` (e.g. `$20`, `20`, `0.50`)";

fn split_number(s: &str) -> Option<(f64, &str)> {
    let end =
        s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_' || c == '-' || c == '+')).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let num: String = num.chars().filter(|c| *c != '_').collect();
    num.parse::<f64>().ok().map(|n| (n, unit.trim()))
}

fn err(input: &str, what: &'static str, reason: &str, accepted: &'static str) -> UnitError {
    UnitError { input: input.to_string(), what, reason: reason.to_string(), accepted }
}

/// Parses a duration such as `30s`, `1.5ms`, `200us` or `2m`. A bare number is refused:
/// a duration without a unit is a common source of thousand-fold mistakes.
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let s = input.trim();
    let (n, unit) = split_number(s).ok_or_else(|| err(input, "duration", "no number", DURATION_ACCEPTED))?;
    let secs_per_unit = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => return Err(err(input, "duration", "the unit is missing", DURATION_ACCEPTED)),
        _ => return Err(err(input, "duration", "unknown unit", DURATION_ACCEPTED)),
    };
    if n < 0.0 {
        return Err(err(input, "duration", "it must not be negative", DURATION_ACCEPTED));
    }
    // `from_secs_f64` panics past u64::MAX seconds (about 585 billion years).
    Duration::try_from_secs_f64(n * secs_per_unit)
        .map_err(|_| err(input, "duration", "it is too large", DURATION_ACCEPTED))
}

/// Parses a rate in requests per second: `2000`, `10k`, `1.5k/s`, `1M`.
pub fn parse_rate(input: &str) -> Result<f64, UnitError> {
    let s = input.trim();
    let s = s.strip_suffix("/s").unwrap_or(s);
    let (n, unit) = split_number(s).ok_or_else(|| err(input, "rate", "no number", RATE_ACCEPTED))?;
    let mult = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        _ => return Err(err(input, "rate", "unknown multiplier", RATE_ACCEPTED)),
    };
    let r = n * mult;
    if r < 0.0 {
        return Err(err(input, "rate", "it must not be negative", RATE_ACCEPTED));
    }
    if !r.is_finite() {
        return Err(err(input, "rate", "it is too large", RATE_ACCEPTED));
    }
    Ok(r)
}

/// Parses a size in bytes: `256`, `4KiB`, `1MiB`, `512MB`.
pub fn parse_size(input: &str) -> Result<u64, UnitError> {
    let s = input.trim();
    let (n, unit) = split_number(s).ok_or_else(|| err(input, "size", "no number", SIZE_ACCEPTED))?;
    let mult: f64 = match unit {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return Err(err(input, "size", "unknown unit", SIZE_ACCEPTED)),
    };
    if n < 0.0 {
        return Err(err(input, "size", "it must not be negative", SIZE_ACCEPTED));
    }
    // `as u64` would saturate silently; 2^64 itself is the first value out of range.
    let bytes = (n * mult).round();
    if bytes >= u64::MAX as f64 {
        return Err(err(input, "size", "it is too large", SIZE_ACCEPTED));
    }
    Ok(bytes as u64)
}

/// Parses an amount of US dollars: `$20`, `20`, `0.50`.
pub fn parse_usd(input: &str) -> Result<f64, UnitError> {
    let s = input.trim();
    let s = s.strip_prefix('$').unwrap_or(s).trim();
    let (n, unit) = split_number(s).ok_or_else(|| err(input, "amount", "no number", USD_ACCEPTED))?;
    if !unit.is_empty() {
        return Err(err(input, "amount", "unknown unit", USD_ACCEPTED));
    }
    if n < 0.0 {
        return Err(err(input, "amount", "it must not be negative", USD_ACCEPTED));
    }
    if !n.is_finite() {
        return Err(err(input, "amount", "it is too large", USD_ACCEPTED));
    }
    Ok(n)
}

/// Formats a duration compactly for people: `850ns`, `12.3µs`, `4.56ms`, `1.23s`.
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// A duration written with its unit in scenarios (`"30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ns", self.0.as_nanos()))
    }
}

/// A duration or a range of durations, written with units in scenarios: `"10m"` (fixed) or
/// `"5m..15m"` (both ends included, the lower end first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurRange {
    pub min: Duration,
    pub max: Duration,
}

const RANGE_ACCEPTED: &str = "a duration (`10m`) or a range of two, lower end first (`5m..15m`)";

/// Parses `10m` (a fixed value) or `5m..15m` (a range, lower end first).
pub fn parse_duration_range(input: &str) -> Result<DurRange, UnitError> {
    let one = |s: &str| {
        parse_duration(s).map_err(|e| UnitError {
            input: input.to_string(),
            what: "duration range",
            accepted: RANGE_ACCEPTED,
            ..e
        })
    };
    let Some((lo, hi)) = input.split_once("..") else {
        return one(input).map(DurRange::fixed);
    };
    let (min, max) = (one(lo)?, one(hi)?);
    if min > max {
        return Err(err(input, "duration range", "its lower end is above its upper end", RANGE_ACCEPTED));
    }
    Ok(DurRange { min, max })
}

impl DurRange {
    pub fn fixed(d: Duration) -> DurRange {
        DurRange { min: d, max: d }
    }

    /// The value a uniformly random 64-bit `draw` picks from the range (both ends included).
    pub fn pick(&self, draw: u64) -> Duration {
        let span = (self.max - self.min).as_nanos();
        if span == 0 {
            return self.min;
        }
        let off = (u128::from(draw) * (span + 1)) >> 64;
        self.min + Duration::from_nanos(off as u64)
    }
}

impl fmt::Display for DurRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            f.write_str(&fmt_duration(self.min))
        } else {
            write!(f, "{}..{}", fmt_duration(self.min), fmt_duration(self.max))
        }
    }
}

impl<'de> Deserialize<'de> for DurRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration_range(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for DurRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.min == self.max {
            s.serialize_str(&format!("{}ns", self.min.as_nanos()))
        } else {
            s.serialize_str(&format!("{}ns..{}ns", self.min.as_nanos(), self.max.as_nanos()))
        }
    }
}

/// A rate in requests per second, written as a string (`"10k"`) or a number.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Rate(pub f64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Rate(n)),
            Raw::S(s) => parse_rate(&s).map(Rate).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

/// A size in bytes, written as a string (`"4KiB"`) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n >= 0 => Ok(Size(n as u64)),
            Raw::N(_) => Err(serde::de::Error::custom("a size must not be negative")),
            Raw::S(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// An amount of US dollars, written as a string (`"$20"`) or a number.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Usd(pub f64);

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => parse_usd(&n.to_string()).map(Usd).map_err(serde::de::Error::custom),
            Raw::S(s) => parse_usd(&s).map(Usd).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_ranges_parse_pick_and_round_trip() {
        let r = parse_duration_range("5m..15m").unwrap();
        assert_eq!((r.min, r.max), (Duration::from_secs(300), Duration::from_secs(900)));
        assert_eq!(parse_duration_range("10m").unwrap(), DurRange::fixed(Duration::from_secs(600)));
        assert_eq!(r.pick(0), r.min);
        assert_eq!(r.pick(u64::MAX), r.max);
        let mid = r.pick(u64::MAX / 2);
        assert!(mid > r.min && mid < r.max, "{mid:?}");
        let e = parse_duration_range("15m..5m").unwrap_err();
        assert!(e.reason.contains("lower end is above"), "{e}");
        assert!(e.to_string().contains("5m..15m"), "says what is accepted: {e}");
        assert!(parse_duration_range("5m..").is_err());
        assert!(parse_duration_range("5..15m").is_err(), "a bare number is refused");
        for r in [r, DurRange::fixed(Duration::from_millis(300))] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<DurRange>(&json).unwrap(), r, "{json}");
        }
        assert_eq!(r.to_string(), "300.00s..900.00s");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("200us").unwrap(), Duration::from_micros(200));
        assert_eq!(parse_duration("1.5ms").unwrap(), Duration::from_micros(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("30").unwrap_err().reason.contains("missing"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn overflowing_values_are_errors_not_panics_or_saturation() {
        let huge = "9".repeat(400);
        for input in ["6000000000000000h", "18446744073709551616s", &format!("{huge}s")] {
            assert_eq!(parse_duration(input).unwrap_err().reason, "it is too large", "{input}");
        }
        assert_eq!(parse_duration("18446744073709551615s").unwrap_err().reason, "it is too large");
        assert_eq!(parse_rate(&format!("{huge}k")).unwrap_err().reason, "it is too large");
        assert_eq!(parse_size("20000000000GB").unwrap_err().reason, "it is too large");
        assert_eq!(parse_size(&huge).unwrap_err().reason, "it is too large");
        assert_eq!(parse_duration("-0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10k").unwrap(), 10_000.0);
        assert_eq!(parse_rate("1.5k/s").unwrap(), 1_500.0);
        assert_eq!(parse_rate("2000").unwrap(), 2_000.0);
        assert!(parse_rate("-5").is_err());
        assert!(parse_rate("5x").is_err());
    }

    #[test]
    fn dollars() {
        assert_eq!(parse_usd("$20").unwrap(), 20.0);
        assert_eq!(parse_usd("20").unwrap(), 20.0);
        assert_eq!(parse_usd(" $ 0.50 ").unwrap(), 0.5);
        assert_eq!(parse_usd("$-1").unwrap_err().reason, "it must not be negative");
        assert_eq!(parse_usd("20 EUR").unwrap_err().reason, "unknown unit");
        assert!(parse_usd("twenty").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("256").unwrap(), 256);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert!(parse_size("1 parsec").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_duration(Duration::from_nanos(850)), "850ns");
        assert_eq!(fmt_duration(Duration::from_micros(12)), "12.0µs");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.50s");
    }
}
