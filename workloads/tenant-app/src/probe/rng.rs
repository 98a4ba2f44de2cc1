//! `rng`: reuse of random-generator state across tenants. Nothing is planted; a sweep draws
//! [`DRAWS`] values from the workload's token generator (SplitMix64, a common fast generator
//! whose outputs reveal its state) and returns them. The harness inverts the outputs to the
//! generator's state and checks whether one tenant's draws repeat or continue another's: then
//! one tenant can predict the other's tokens, nonces and keys.
//!
//! Where the state lives follows the workload's hygiene, as application code would keep it:
//! `naive` keeps one generator per process, seeded once at start ([`Identity::first_random`])
//! and shared by every tenant the process serves (as a restored snapshot, or a module-level
//! generator, would share it); `scoped` seeds a fresh generator from the operating system for
//! every request. Nothing is ever found.

use std::sync::Mutex;

use serde_json::{Value, json};

use crate::identity::Identity;
use crate::store::Hygiene;

/// Values drawn per sweep.
pub const DRAWS: usize = 4;

/// SplitMix64's state increment.
pub const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// One SplitMix64 step: advances `state` and returns the output.
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GAMMA);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The process-wide generator `naive` hygiene uses; `None` until the first draw seeds it from
/// the start-up draw.
static PROCESS: Mutex<Option<u64>> = Mutex::new(None);

/// Draws [`DRAWS`] values from the generator the hygiene setting picks.
pub fn draw(identity: &Identity) -> Vec<u64> {
    let mut fresh = rand::random::<u64>();
    let draw_from = |state: &mut u64| (0..DRAWS).map(|_| next(state)).collect::<Vec<_>>();
    if identity.hygiene != Hygiene::Naive.as_str() {
        return draw_from(&mut fresh);
    }
    let mut shared = PROCESS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let state = shared.get_or_insert_with(|| {
        let seed: [u8; 8] = identity.first_random[..8].try_into().expect("16 bytes");
        u64::from_le_bytes(seed)
    });
    draw_from(state)
}

/// The sweep's detail: `{"generator": "splitmix64", "draws": ["<16 hex digits>", ...]}`.
pub fn sweep(identity: &Identity) -> Value {
    let draws: Vec<String> = draw(identity).iter().map(|v| format!("{v:016x}")).collect();
    json!({ "generator": "splitmix64", "draws": draws })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_draws_continue_one_process_state_scoped_draws_do_not() {
        let _lock = crate::probe::test_lock();
        *PROCESS.lock().unwrap() = None;
        let naive = Identity::capture(None, Hygiene::Naive);
        let mut expected = u64::from_le_bytes(naive.first_random[..8].try_into().unwrap());
        let (a, b) = (draw(&naive), draw(&naive));
        let continued: Vec<u64> = (0..2 * DRAWS).map(|_| next(&mut expected)).collect();
        assert_eq!([a, b].concat(), continued, "one generator, seeded at start, shared by every call");

        let scoped = Identity::capture(None, Hygiene::Scoped);
        let (c, d) = (draw(&scoped), draw(&scoped));
        assert_ne!(c, d);
        assert!(
            ![c.as_slice(), d.as_slice()].iter().any(|x| continued.starts_with(x)),
            "the process generator is not used"
        );
    }
}
