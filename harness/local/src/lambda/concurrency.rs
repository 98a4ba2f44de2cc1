//! Concurrency as Lambda counts it: the account's pool, shared by every function of the
//! backend; reserved concurrency, carved out of it for one function; the per-function scaling
//! rate; and the emulator's own per-function cap. Pure bookkeeping (no processes, no clock of
//! its own), so it is tested without root.
//!
//! Concurrency is invocations in flight, warm or cold: a warm invoke takes a unit as a cold
//! one does; only a cold one (a new environment) spends the scaling rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) use isobench_core::scenario::lambda::MIN_UNRESERVED;

/// Lambda's concurrency scaling rate: "for each function, your concurrency scaling rate is
/// 1,000 execution environment instances every 10 seconds", refilled continuously and never
/// above 1,000 (Lambda developer guide, "Lambda scaling behavior").
pub(crate) const SCALING_BURST: u32 = 1000;
pub(crate) const SCALING_PERIOD: Duration = Duration::from_secs(10);

/// Which limit refused an invoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// The emulator's per-function cap (`concurrency`), or tenant isolation mode's limit on
    /// environments.
    Function,
    /// The function's reserved concurrency is all in use.
    Reserved,
    /// The account's unreserved concurrency is all in use.
    Account,
    /// The function's scaling rate is spent.
    Scaling,
}

/// The account's concurrency: its limit, what functions reserved, and the unreserved units in
/// use by functions without a reservation.
#[derive(Debug)]
pub(crate) struct Account {
    limit: u32,
    state: Mutex<AccountState>,
}

#[derive(Debug, Default)]
struct AccountState {
    reserved: u32,
    unreserved_busy: u32,
}

/// A reservation Lambda would refuse: it leaves fewer than [`MIN_UNRESERVED`] unreserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "reserve {asked} of the account's concurrency: {reserved} of {limit} are reserved already and at least {MIN_UNRESERVED} must stay unreserved"
)]
pub struct ReserveError {
    pub asked: u32,
    pub reserved: u32,
    pub limit: u32,
}

impl Account {
    pub(crate) fn new(limit: u32) -> Account {
        Account { limit, state: Mutex::new(AccountState::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AccountState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets `n` aside for one function.
    pub(crate) fn reserve(&self, n: u32) -> Result<(), ReserveError> {
        let mut s = self.state();
        let after = u64::from(s.reserved) + u64::from(n);
        if after + u64::from(MIN_UNRESERVED) > u64::from(self.limit) {
            return Err(ReserveError { asked: n, reserved: s.reserved, limit: self.limit });
        }
        s.reserved += n;
        Ok(())
    }

    /// Gives a function's reservation back (its function is gone).
    pub(crate) fn unreserve(&self, n: u32) {
        let mut s = self.state();
        s.reserved = s.reserved.saturating_sub(n);
    }

    /// Takes one unreserved unit, if one is free.
    fn take(&self) -> bool {
        let mut s = self.state();
        if s.unreserved_busy + s.reserved >= self.limit {
            return false;
        }
        s.unreserved_busy += 1;
        true
    }

    fn give_back(&self) {
        let mut s = self.state();
        s.unreserved_busy = s.unreserved_busy.saturating_sub(1);
    }
}

/// A function's scaling rate: a bucket of [`SCALING_BURST`] new environments, refilled
/// continuously over [`SCALING_PERIOD`].
#[derive(Debug)]
struct ScalingRate {
    tokens: f64,
    at: Instant,
}

impl ScalingRate {
    fn new(now: Instant) -> ScalingRate {
        ScalingRate { tokens: f64::from(SCALING_BURST), at: now }
    }

    fn refill(&mut self, now: Instant) {
        let per_sec = f64::from(SCALING_BURST) / SCALING_PERIOD.as_secs_f64();
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(f64::from(SCALING_BURST));
        self.at = now.max(self.at);
    }
}

/// One function's concurrency: its limits and its invocations in flight.
#[derive(Debug)]
pub(crate) struct Quota {
    cap: u32,
    reserved: Option<u32>,
    in_flight: u32,
    scaling: ScalingRate,
}

impl Quota {
    /// A function capped at `cap` in flight, with `reserved` concurrency of its own (already
    /// reserved in the account) or none.
    pub(crate) fn new(cap: u32, reserved: Option<u32>, now: Instant) -> Quota {
        Quota { cap, reserved, in_flight: 0, scaling: ScalingRate::new(now) }
    }

    /// Invocations between admission and release (environments starting included).
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Admits one more invocation, `cold` when it needs a new environment; on `Err` nothing
    /// was taken. Limits are checked in the order of [`Throttle`]'s variants.
    pub(crate) fn admit(&mut self, account: &Account, cold: bool, now: Instant) -> Result<(), Throttle> {
        if self.in_flight >= self.cap {
            return Err(Throttle::Function);
        }
        let shared = match self.reserved {
            Some(r) if self.in_flight >= r => return Err(Throttle::Reserved),
            Some(_) => false,
            None if !account.take() => return Err(Throttle::Account),
            None => true,
        };
        if cold {
            self.scaling.refill(now);
            if self.scaling.tokens < 1.0 {
                if shared {
                    account.give_back();
                }
                return Err(Throttle::Scaling);
            }
            self.scaling.tokens -= 1.0;
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Ends an admitted invocation.
    pub(crate) fn release(&mut self, account: &Account) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.reserved.is_none() {
            account.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit_n(q: &mut Quota, a: &Account, n: u32, now: Instant) -> Vec<Result<(), Throttle>> {
        (0..n).map(|_| q.admit(a, true, now)).collect()
    }

    #[test]
    fn the_account_pool_is_shared_by_functions_without_a_reservation() {
        let now = Instant::now();
        let a = Account::new(3);
        let (mut f, mut g) = (Quota::new(100, None, now), Quota::new(100, None, now));
        assert_eq!(admit_n(&mut f, &a, 2, now), vec![Ok(()), Ok(())]);
        assert_eq!(g.admit(&a, false, now), Ok(()));
        assert_eq!(g.admit(&a, true, now), Err(Throttle::Account), "the fourth of an account of 3");
        assert_eq!(f.admit(&a, false, now), Err(Throttle::Account), "warm invokes count too");
        f.release(&a);
        assert_eq!(g.admit(&a, false, now), Ok(()), "a released unit serves another function");
        assert_eq!((f.in_flight(), g.in_flight()), (1, 2));
    }

    #[test]
    fn a_reservation_is_the_functions_own_and_its_maximum() {
        let now = Instant::now();
        let a = Account::new(110);
        a.reserve(5).unwrap();
        let mut reserved = Quota::new(100, Some(5), now);
        let mut other = Quota::new(1000, None, now);
        // The other function takes every unreserved unit (110 - 5)...
        assert!(admit_n(&mut other, &a, 105, now).iter().all(Result::is_ok));
        assert_eq!(other.admit(&a, true, now), Err(Throttle::Account));
        // ...and the reserved one still gets its 5, and no more.
        assert!(admit_n(&mut reserved, &a, 5, now).iter().all(Result::is_ok));
        assert_eq!(reserved.admit(&a, true, now), Err(Throttle::Reserved));
        reserved.release(&a);
        assert_eq!(other.admit(&a, true, now), Err(Throttle::Account), "a reserved release is not the pool's");
        assert_eq!(reserved.admit(&a, true, now), Ok(()));
    }

    #[test]
    fn reservations_leave_100_unreserved_and_are_given_back() {
        let a = Account::new(1000);
        a.reserve(600).unwrap();
        a.reserve(300).unwrap();
        let e = a.reserve(1).unwrap_err();
        assert_eq!(e, ReserveError { asked: 1, reserved: 900, limit: 1000 });
        assert!(e.to_string().contains("at least 100 must stay unreserved"), "{e}");
        a.unreserve(300);
        a.reserve(300).unwrap();
        assert!(Account::new(99).reserve(0).is_err(), "an account under 100 cannot reserve at all");
    }

    #[test]
    fn the_function_cap_comes_first() {
        let now = Instant::now();
        let a = Account::new(1000);
        let mut q = Quota::new(2, None, now);
        assert!(admit_n(&mut q, &a, 2, now).iter().all(Result::is_ok));
        assert_eq!(q.admit(&a, false, now), Err(Throttle::Function));
        q.release(&a);
        q.release(&a);
        assert_eq!(q.in_flight(), 0);
    }

    #[test]
    fn the_scaling_rate_allows_1000_new_environments_then_100_a_second() {
        let t0 = Instant::now();
        let a = Account::new(100_000);
        let mut q = Quota::new(10_000, None, t0);
        assert!(admit_n(&mut q, &a, 1000, t0).iter().all(Result::is_ok));
        assert_eq!(q.admit(&a, true, t0), Err(Throttle::Scaling));
        assert_eq!(q.admit(&a, false, t0), Ok(()), "a warm invoke needs no new environment");
        // A refused cold invoke gave its account unit back: 1,001 in flight, 1,001 taken.
        assert_eq!(q.in_flight(), 1001);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(admit_n(&mut q, &a, 11, t1).iter().filter(|r| r.is_ok()).count(), 10, "100 a second");
        // Idle for a minute: the bucket holds 1,000 again, never more.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(admit_n(&mut q, &a, 1001, t2).iter().filter(|r| r.is_ok()).count(), 1000);
    }

    #[test]
    fn a_throttle_takes_nothing() {
        let now = Instant::now();
        let a = Account::new(1);
        let mut q = Quota::new(10_000, None, now);
        for _ in 0..1000 {
            q.scaling.tokens = 0.0;
            assert_eq!(q.admit(&a, true, now), Err(Throttle::Scaling));
        }
        assert_eq!(q.admit(&a, false, now), Ok(()), "no unit leaked by the scaling throttles");
    }
}
