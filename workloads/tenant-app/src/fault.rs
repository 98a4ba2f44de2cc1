//! Fault injection, for testing the harness's accounting (`sent == ok + errors + timeouts`).
//!
//! Each tenant operation draws one number: below `error_rate` it is answered 500, in the next
//! `error_body_rate` it is answered 200 with the error document as its body (an API that hides
//! failures in its bodies), in the next `stall_rate` it stalls and is then answered normally,
//! otherwise it runs untouched. The bands are disjoint so each configured fraction is exactly what a client observes. Draws come
//! from a counter hashed with the seed (SplitMix64): lock-free on the hot path and, for a fixed
//! seed, the same sequence of outcomes in request order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Fault settings, as given on the command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Fraction (0..=1) of tenant operations answered HTTP 500.
    pub error_rate: f64,
    /// Fraction (0..=1) of tenant operations answered HTTP 200 with an error body.
    pub error_body_rate: f64,
    /// Fraction (0..=1) of tenant operations that stall before answering.
    pub stall_rate: f64,
    /// How long a stalled operation stalls.
    pub stall: Duration,
    /// Seed for the outcome sequence; random when absent.
    pub seed: Option<u64>,
}

/// What to do to one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Error,
    ErrorBody,
    Stall(Duration),
}

/// A fault configuration that cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultConfigError {
    #[error("{name} {value} is outside 0..=1")]
    RateOutOfRange { name: &'static str, value: f64 },
    #[error(
        "error rate {error}, error-body rate {error_body} and stall rate {stall} exceed 1 together (they are disjoint fractions)"
    )]
    RatesExceedOne { error: f64, error_body: f64, stall: f64 },
}

/// Draws a [`Fault`] per operation.
#[derive(Debug)]
pub struct Faults {
    error_rate: f64,
    error_body_rate: f64,
    stall_rate: f64,
    stall: Duration,
    seed: u64,
    counter: AtomicU64,
}

impl Faults {
    pub fn new(config: &FaultConfig) -> Result<Self, FaultConfigError> {
        check_rate("error rate", config.error_rate)?;
        check_rate("stall rate", config.stall_rate)?;
        check_rate("error-body rate", config.error_body_rate)?;
        if config.error_rate + config.error_body_rate + config.stall_rate > 1.0 {
            return Err(FaultConfigError::RatesExceedOne {
                error: config.error_rate,
                error_body: config.error_body_rate,
                stall: config.stall_rate,
            });
        }
        Ok(Faults {
            error_rate: config.error_rate,
            error_body_rate: config.error_body_rate,
            stall_rate: config.stall_rate,
            stall: config.stall,
            seed: config.seed.unwrap_or_else(rand::random),
            counter: AtomicU64::new(0),
        })
    }

    /// Whether any fault can be drawn; when not, [`Faults::draw`] costs nothing.
    pub fn enabled(&self) -> bool {
        self.error_rate > 0.0 || self.error_body_rate > 0.0 || self.stall_rate > 0.0
    }

    /// The fault for the next operation.
    pub fn draw(&self) -> Fault {
        if !self.enabled() {
            return Fault::None;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let u = unit_interval(splitmix64(self.seed.wrapping_add(n.wrapping_mul(GOLDEN_GAMMA))));
        if u < self.error_rate {
            Fault::Error
        } else if u < self.error_rate + self.error_body_rate {
            Fault::ErrorBody
        } else if u < self.error_rate + self.error_body_rate + self.stall_rate {
            Fault::Stall(self.stall)
        } else {
            Fault::None
        }
    }
}

fn check_rate(name: &'static str, value: f64) -> Result<(), FaultConfigError> {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err(FaultConfigError::RateOutOfRange { name, value }) }
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a good 64-bit mix of a counter-based state.
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps 64 random bits to [0, 1) using the top 53 (an f64 mantissa).
fn unit_interval(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(error_rate: f64, stall_rate: f64, seed: u64) -> Faults {
        let stall = Duration::from_millis(7);
        Faults::new(&FaultConfig { error_rate, stall_rate, stall, seed: Some(seed), ..FaultConfig::default() }).unwrap()
    }

    fn counts(f: &Faults, n: usize) -> (usize, usize) {
        let draws: Vec<Fault> = (0..n).map(|_| f.draw()).collect();
        let errors = draws.iter().filter(|d| **d == Fault::Error).count();
        let stalls = draws.iter().filter(|d| **d == Fault::Stall(Duration::from_millis(7))).count();
        (errors, stalls)
    }

    #[test]
    fn rates_are_roughly_honoured() {
        let n = 20_000;
        for seed in [1, 42, 0xdead_beef] {
            let (errors, stalls) = counts(&faults(0.1, 0.05, seed), n);
            // Binomial sd is ~42 and ~31 here; allow 5 sd.
            assert!((1_790..=2_210).contains(&errors), "seed {seed}: {errors} errors of {n}");
            assert!((845..=1_155).contains(&stalls), "seed {seed}: {stalls} stalls of {n}");
        }
    }

    #[test]
    fn same_seed_same_sequence_other_seed_differs() {
        let seq = |seed| {
            let f = faults(0.3, 0.3, seed);
            (0..200).map(|_| f.draw()).collect::<Vec<_>>()
        };
        assert_eq!(seq(7), seq(7));
        assert_ne!(seq(7), seq(8));
    }

    #[test]
    fn extremes() {
        assert_eq!(counts(&faults(0.0, 0.0, 1), 1000), (0, 0));
        assert_eq!(counts(&faults(1.0, 0.0, 1), 1000), (1000, 0));
        assert_eq!(counts(&faults(0.0, 1.0, 1), 1000), (0, 1000));
    }

    #[test]
    fn error_bodies_are_their_own_band() {
        let cfg = FaultConfig { error_rate: 0.2, error_body_rate: 0.3, seed: Some(5), ..FaultConfig::default() };
        let f = Faults::new(&cfg).unwrap();
        let draws: Vec<Fault> = (0..10_000).map(|_| f.draw()).collect();
        let bodies = draws.iter().filter(|d| **d == Fault::ErrorBody).count();
        let errors = draws.iter().filter(|d| **d == Fault::Error).count();
        assert!((2_800..=3_200).contains(&bodies), "{bodies} error bodies of 10000");
        assert!((1_800..=2_200).contains(&errors), "{errors} errors of 10000");
        let over = FaultConfig { error_rate: 0.5, error_body_rate: 0.6, ..FaultConfig::default() };
        assert!(matches!(Faults::new(&over), Err(FaultConfigError::RatesExceedOne { .. })));
    }

    #[test]
    fn rejects_bad_rates() {
        let cfg = |e, s| FaultConfig { error_rate: e, stall_rate: s, ..FaultConfig::default() };
        assert!(matches!(Faults::new(&cfg(1.5, 0.0)), Err(FaultConfigError::RateOutOfRange { .. })));
        assert!(matches!(Faults::new(&cfg(0.0, -0.1)), Err(FaultConfigError::RateOutOfRange { .. })));
        assert!(matches!(Faults::new(&cfg(f64::NAN, 0.0)), Err(FaultConfigError::RateOutOfRange { .. })));
        assert!(matches!(Faults::new(&cfg(0.6, 0.6)), Err(FaultConfigError::RatesExceedOne { .. })));
    }
}
