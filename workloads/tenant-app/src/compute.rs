//! The `compute` operation: real CPU work with a budget in *thread CPU time*. Budgeting CPU time
//! rather than wall time is what makes contention visible: a neighbour stealing the CPU makes the
//! same budget take longer on the wall clock, which is exactly what the noisy-neighbour probe
//! measures.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use sha2::{Digest, Sha256};

/// Hashes per clock read: reading the thread clock is a syscall (no vDSO for it), so it is
/// amortised over a batch of hashes; a batch costs a few microseconds, the overshoot bound.
const HASHES_PER_CHECK: u32 = 32;

/// The outcome of a burn.
#[derive(Debug, Clone, Copy)]
pub struct Burn {
    /// The final SHA-256 state, so the work cannot be optimised away and the answer is checkable.
    pub digest: [u8; 32],
    /// Thread CPU time actually spent (at least the budget).
    pub cpu: Duration,
}

/// CPU time consumed so far by the calling thread.
pub fn thread_cpu_time() -> Duration {
    // CLOCK_THREAD_CPUTIME_ID exists on every Linux this runs on; a failure would be a broken
    // kernel, and zero keeps the burn loop finite (it then hashes one batch and stops).
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map(Duration::from).unwrap_or_default()
}

/// Hashes a chain seeded by `seed` until the calling thread has used `budget` of CPU time.
pub fn burn(seed: &[u8], budget: Duration) -> Burn {
    let start = thread_cpu_time();
    let mut digest: [u8; 32] = Sha256::digest(seed).into();
    let mut spent = Duration::ZERO;
    while spent < budget {
        for _ in 0..HASHES_PER_CHECK {
            digest = Sha256::digest(digest).into();
        }
        spent = thread_cpu_time().saturating_sub(start);
    }
    Burn { digest, cpu: spent }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_at_least_the_budget_of_thread_cpu_time() {
        let budget = Duration::from_millis(20);
        let before = thread_cpu_time();
        let burn = burn(b"seed", budget);
        let used = thread_cpu_time() - before;
        assert!(burn.cpu >= budget, "reported {:?}", burn.cpu);
        assert!(used >= budget, "thread clock advanced only {used:?}");
        // Generous upper bound: the loop stops soon after the budget (scheduling does not count).
        assert!(used < budget * 3, "overshot: {used:?}");
    }

    #[test]
    fn zero_budget_does_no_work_and_is_deterministic() {
        let a = burn(b"x", Duration::ZERO);
        let b = burn(b"x", Duration::ZERO);
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.cpu, Duration::ZERO);
        assert_eq!(hex(&a.digest), hex(&Sha256::digest(b"x")));
    }

    #[test]
    fn hex_encodes() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
    }
}
