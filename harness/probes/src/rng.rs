//! Reading the workload's token generator (SplitMix64, see the tenant-app's `probe::rng`) back
//! to its state, to tell whether one tenant's draws repeat or continue another's. SplitMix64
//! adds a constant to its state per draw and outputs a bijective mix of it, so an output gives
//! the state, and two states give the number of draws between them.

use serde_json::Value;

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Draws between two states within which they count as one generator's: far more than a run
/// draws, yet two independently seeded generators land this close only once in 2^31 trials.
pub const WINDOW: u64 = 1 << 32;

/// Undoes `x ^ (x >> shift)`.
fn unshift(y: u64, shift: u32) -> u64 {
    let mut x = y;
    for _ in 0..64 / shift + 1 {
        x = y ^ (x >> shift);
    }
    x
}

/// The multiplicative inverse of an odd number modulo 2^64 (Newton's iteration).
fn inverse(a: u64) -> u64 {
    let mut x = a;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

/// The generator state that produced `output`.
pub fn state_of(output: u64) -> u64 {
    let z = unshift(output, 31).wrapping_mul(inverse(0x94d0_49bb_1331_11eb));
    unshift(unshift(z, 27).wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9)), 30)
}

/// Draws from state `a` to state `b` (negative: `b` came first).
pub fn steps(a: u64, b: u64) -> i64 {
    b.wrapping_sub(a).wrapping_mul(inverse(GAMMA)) as i64
}

/// The states behind a sweep's `detail.draws`; `None` if the answer has no usable draws.
pub fn states(detail: &Value) -> Option<Vec<u64>> {
    if detail["generator"] != "splitmix64" {
        return None;
    }
    let draws = detail["draws"].as_array()?;
    let states: Option<Vec<u64>> =
        draws.iter().map(|d| u64::from_str_radix(d.as_str()?, 16).ok().map(state_of)).collect();
    states.filter(|s| s.len() >= 2)
}

/// The positive control: one sweep's draws are consecutive draws of one generator, which the
/// detector must recognise.
pub fn consecutive(states: &[u64]) -> bool {
    states.windows(2).all(|w| steps(w[0], w[1]) == 1)
}

/// Whether `b`'s draws repeat or continue `a`'s: one generator's state, reused.
pub fn related(a: &[u64], b: &[u64]) -> bool {
    match (a.last(), b.first()) {
        (Some(&last), Some(&first)) => steps(last, first).unsigned_abs() <= WINDOW,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The workload's generator, as `tenant-app::probe::rng::next`.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(GAMMA);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn sweep(state: &mut u64) -> Value {
        let draws: Vec<String> = (0..4).map(|_| format!("{:016x}", next(state))).collect();
        json!({"generator": "splitmix64", "draws": draws})
    }

    #[test]
    fn outputs_invert_to_states() {
        for seed in [0u64, 1, 0xdead_beef, u64::MAX] {
            let mut s = seed;
            let out = next(&mut s);
            assert_eq!(state_of(out), s);
        }
        assert_eq!(steps(5, 5u64.wrapping_add(GAMMA.wrapping_mul(7))), 7);
        assert_eq!(steps(5u64.wrapping_add(GAMMA.wrapping_mul(3)), 5), -3);
    }

    #[test]
    fn shared_state_is_found_fresh_seeds_are_not() {
        // One generator shared by two tenants: B continues A.
        let mut shared = 42u64;
        let a = states(&sweep(&mut shared)).unwrap();
        let b = states(&sweep(&mut shared)).unwrap();
        assert!(consecutive(&a) && consecutive(&b));
        assert!(related(&a, &b));
        // A restored snapshot: both start from the same state, B repeats A.
        let (mut s1, mut s2) = (7u64, 7u64);
        assert!(related(&states(&sweep(&mut s1)).unwrap(), &states(&sweep(&mut s2)).unwrap()));
        // Seeded afresh per request: nothing in common, in any of many trials.
        let mut seeds = 0x1234_5678u64;
        for _ in 0..1000 {
            let (mut x, mut y) = (next(&mut seeds), next(&mut seeds));
            assert!(!related(&states(&sweep(&mut x)).unwrap(), &states(&sweep(&mut y)).unwrap()));
        }
    }

    #[test]
    fn unusable_answers_have_no_states() {
        assert_eq!(states(&json!({"first_random": "00"})), None);
        assert_eq!(states(&json!({"generator": "splitmix64", "draws": ["zz", "00"]})), None);
        assert_eq!(states(&json!({"generator": "splitmix64", "draws": ["01"]})), None);
        let scrambled = json!({"generator": "splitmix64", "draws": ["0000000000000001", "0000000000000002"]});
        assert!(!consecutive(&states(&scrambled).unwrap()), "a control fails on draws that are not one generator's");
    }
}
