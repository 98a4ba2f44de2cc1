//! Waiting for an intended start time with sub-millisecond precision, without burning a core.
//!
//! tokio's timer wheel has 1 ms resolution, far too coarse for releasing requests on time at
//! tens of thousands per second, so the dispatcher is a plain OS thread. With the default
//! 50 µs timer slack a `nanosleep` on this class of machine overshoots by ~80–100 µs; with the
//! slack set to 1 ns (`PR_SET_TIMERSLACK`, per thread) the overshoot is ~15–25 µs at the
//! median and ~30–55 µs at p99 (measured on the 2-vCPU Firecracker guest the project runs
//! on). The [`Pacer`] learns that overshoot as it goes, sleeps until that much before the due
//! time and spins only the last [`SPIN_MAX`] (5 µs) if it wakes that early. When the next
//! request is nearer than the overshoot it still sleeps, as briefly as the kernel allows, and
//! accepts being up to one overshoot (~20 µs) late: spinning through every short gap would cost
//! most of a core at 30k requests/s, on a 2-core machine shared with the system under test.
//!
//! Sleeping is not free either: in a Firecracker guest arming the timer for each `nanosleep`
//! costs a VM exit, and with its two context switches a sleep costs ~25 µs of CPU, so waking
//! once per request took half the generator's core at 20k requests/s. The dispatcher
//! therefore wakes at most once per [`RELEASE_QUANTUM`] and releases everything due by then.
//! (Coarser batches were once tried and made lag worse, when each request cost the connection
//! side far more than it does since the hyper client was replaced: bursts queued behind each
//! other on the connections.)

use std::time::{Duration, Instant};

/// The dispatcher wakes at most once per this, releasing everything due by then. A sleep and
/// its two context switches cost ~25 µs of CPU in a Firecracker guest: profiled at 20k
/// requests/s with a wake-up per request, the dispatcher took half of the generator's core,
/// and at 56k with a 100 µs quantum still a quarter (`results/bench/generators/profile/`).
/// 250 µs caps the wake-ups at 4k a second and adds at most that much lag to a request that
/// falls inside one, well under the 1 ms the lag is held to.
pub(crate) const RELEASE_QUANTUM: Duration = Duration::from_micros(250);

/// The longest single sleep, so that cancellation is noticed promptly.
pub(crate) const MAX_SLEEP: Duration = Duration::from_millis(5);

/// Within this of the due time the pacer spins instead of sleeping.
pub(crate) const SPIN_MAX: Duration = Duration::from_micros(5);

/// The shortest sleep asked for.
const MIN_SLEEP: Duration = Duration::from_micros(1);

/// Bounds of the learned sleep overshoot, in nanoseconds.
const MIN_MARGIN_NS: f64 = 2_000.0;
const MAX_MARGIN_NS: f64 = 100_000.0;

/// Sets this thread's timer slack to 1 ns so that sleeps end when asked. Returns whether it
/// worked (it can only fail on kernels without `PR_SET_TIMERSLACK`, older than 2.6.28).
pub(crate) fn fine_timer_slack() -> bool {
    nix::sys::prctl::set_timerslack(1).is_ok()
}

/// Sleeps until a due time, then spins the last few microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    /// Moving average of how much later than asked a sleep returns, in nanoseconds.
    overshoot_ns: f64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer { overshoot_ns: 20_000.0 }
    }
}

impl Pacer {
    /// How long before a due time sleeping stops and spinning starts.
    pub(crate) fn margin(&self) -> Duration {
        Duration::from_nanos(self.overshoot_ns.clamp(MIN_MARGIN_NS, MAX_MARGIN_NS) as u64)
    }

    /// Blocks until `due`, or returns early with `false` as soon as `stop()` is true (checked
    /// at least every [`MAX_SLEEP`]). Never returns `true` before `due`.
    pub(crate) fn wait_until(&mut self, due: Instant, stop: impl Fn() -> bool) -> bool {
        loop {
            let now = Instant::now();
            if now >= due {
                return true;
            }
            if stop() {
                return false;
            }
            let left = due - now;
            if left <= SPIN_MAX {
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                return true;
            }
            // Sleep until the learned overshoot before the due time; when that point has
            // passed already, sleep as briefly as possible and accept up to one overshoot of
            // lateness rather than spin for it.
            let ask = left.saturating_sub(self.margin()).clamp(MIN_SLEEP, MAX_SLEEP);
            std::thread::sleep(ask);
            let over = now.elapsed().saturating_sub(ask).as_nanos() as f64;
            // An exponential moving average over ~16 sleeps follows a changing machine.
            self.overshoot_ns += (over.min(MAX_MARGIN_NS) - self.overshoot_ns) / 16.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_returns_early_and_honours_stop() {
        fine_timer_slack();
        let mut p = Pacer::default();
        for us in [0u64, 5, 50, 300, 2_000, 50, 50, 50] {
            let due = Instant::now() + Duration::from_micros(us);
            assert!(p.wait_until(due, || false));
            assert!(Instant::now() >= due);
        }
        let m = p.margin();
        assert!(m >= Duration::from_nanos(MIN_MARGIN_NS as u64) && m <= Duration::from_nanos(MAX_MARGIN_NS as u64));
        let t = Instant::now();
        assert!(!p.wait_until(t + Duration::from_secs(60), || true));
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
