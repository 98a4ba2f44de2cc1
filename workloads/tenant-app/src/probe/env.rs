//! `env`: environment mutation. Plant sets `ISOBENCH_CANARY_<n>=<canary>` in this process's
//! environment, as code that "configures" itself through `setenv` does; sweep reads the
//! in-process environment (`std::env::vars_os`, not `/proc/self/environ`, which only shows the
//! environment the process started with). A mutation that survives into the next request of a
//! reused process is found.
//!
//! Every access to the environment this crate makes after start-up goes through [`lock`], one
//! process-wide lock, so a plant's `set_var` never runs while another probe reads the
//! environment; the `// SAFETY:` comment in [`plant`] says why that makes `set_var` sound here.

use std::os::unix::ffi::OsStrExt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::scan::Found;

/// Name prefix of planted variables; `<n>` runs 1..=[`MAX_VARS`] and then wraps.
pub const VAR_PREFIX: &str = "ISOBENCH_CANARY_";
/// Most variables planted at once (later plants overwrite the oldest).
pub const MAX_VARS: u64 = 1024;

/// The environment lock; holds how many plants there were.
static ENV: Mutex<u64> = Mutex::new(0);

/// Takes the environment lock. Hold it for every read of the environment that could run while
/// a plant writes it.
pub fn lock() -> MutexGuard<'static, u64> {
    ENV.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads one variable under the lock (lossy on non-UTF-8, absent when unset or empty).
pub fn var(name: &str) -> Option<String> {
    let _env = lock();
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()).filter(|v| !v.is_empty())
}

/// Sets the next `ISOBENCH_CANARY_<n>` to `canary`, which must be a valid canary (so neither
/// name nor value has `=` or NUL, which would make `set_var` panic); returns the name.
///
/// Call it on the runtime's thread (not a blocking-pool thread): in Lambda mode that is the one
/// thread lambda_runtime also sets variables on.
pub fn plant(canary: &str) -> String {
    debug_assert!(super::scan::is_canary(canary));
    let mut planted = lock();
    let name = format!("{VAR_PREFIX}{}", *planted % MAX_VARS + 1);
    // SAFETY: `set_var` is unsound only while another thread reads or writes the environment
    // without synchronising with it. std's own accessors (`env::var`, `vars_os`, `Command::spawn`
    // capturing the environment) take std's environment lock, as `set_var` does, and this crate
    // additionally reads the environment only under `ENV`, held here. What is left is libc-level
    // `getenv` behind std's back on another thread, and this binary makes none while serving: it
    // resolves no names (`getaddrinfo` reads `LOCALDOMAIN`/`RES_OPTIONS`) because listen
    // addresses, probe peers and endpoints are IP literals and so is the Lambda Runtime API
    // address its client connects to; logs are stamped in UTC without `localtime`/`TZ`; and
    // `RUST_LOG` and tokio's settings are read once before any request. In Lambda mode the
    // runtime is single-threaded and this runs on that thread, so lambda_runtime's per-invocation
    // `set_var` of `_X_AMZN_TRACE_ID` is never concurrent with it either.
    unsafe { std::env::set_var(&name, canary) };
    *planted += 1;
    name
}

/// Greps every variable of the in-process environment (names and values); returns how many
/// there were.
pub fn sweep(found: &mut Found) -> usize {
    let _env = lock();
    let mut count = 0;
    for (name, value) in std::env::vars_os() {
        count += 1;
        found.scan(name.as_bytes());
        found.scan(value.as_bytes());
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plant_then_sweep_finds_it_in_the_live_environment() {
        let _serial = super::super::test_lock();
        let mut before = Found::new();
        let variables = sweep(&mut before);
        assert!(variables > 0);
        assert!(before.tokens().is_empty(), "{:?}", before.tokens());

        let canary = "isobench-canary:v1:unit:env:1";
        let name = plant(canary);
        assert!(name.starts_with(VAR_PREFIX), "{name}");
        assert_eq!(var(&name).as_deref(), Some(canary));
        let mut found = Found::new();
        assert_eq!(sweep(&mut found), variables + 1);
        assert_eq!(found.tokens(), [canary]);
        // /proc/self/environ shows only the initial environment: the reason sweep does not use it.
        let initial = std::fs::read("/proc/self/environ").unwrap();
        assert_eq!(super::super::scan::canaries(&initial).count(), 0);
    }
}
