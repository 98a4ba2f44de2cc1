//! Waiting with a deadline, by polling: for a condition, for a value, for a child's exit.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How often a condition is polled: short against the waits tests make (hundreds of ms and
/// more), long enough to leave the CPU to what is being waited for.
const POLL: Duration = Duration::from_millis(2);

/// Polls `cond` until it holds or `timeout` has passed; whether it held.
pub fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    until_some(timeout, || cond().then_some(())).is_some()
}

/// Polls `f` until it returns a value or `timeout` has passed.
pub fn until_some<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// [`until`], failing the test with "timed out waiting for {what}" when `cond` never held.
#[track_caller]
pub fn expect(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    assert!(until(timeout, cond), "timed out waiting for {what}");
}

/// Waits for `child` to exit on its own; its status, or `None` after `timeout`.
pub fn for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    until_some(timeout, || child.try_wait().expect("try_wait on a child"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_reports_whether_the_condition_held() {
        let mut n = 0;
        assert!(until(Duration::from_secs(1), || {
            n += 1;
            n == 3
        }));
        assert!(!until(Duration::from_millis(10), || false));
    }
}
