//! Whether this process may run the emulator, and what a test does when it may not. The skip
//! policy lives in [`skip`] alone: a test that cannot run here says why on stderr and returns
//! (so it passes). Making it fail instead (under CI, say) is a change to that one function.

use std::path::Path;

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Why this process cannot run the emulator (root, with net, mount, pid, uts and ipc
/// namespaces), if it cannot.
pub fn cannot_isolate() -> Option<String> {
    if !is_root() {
        return Some("not root".into());
    }
    for ns in ["net", "mnt", "pid", "uts", "ipc"] {
        if !Path::new(&format!("/proc/self/ns/{ns}")).exists() {
            return Some(format!("no {ns} namespaces"));
        }
    }
    None
}

/// The skip policy: what `test` does when it cannot run here, `why` saying what is missing.
/// Today it says so on stderr; the caller then returns, and the test passes.
pub fn skip(test: &str, why: &str) {
    eprintln!("skipping {test}: {why}");
}

/// Skips (returns early from) the calling test unless this process can run the emulator, by
/// the policy of [`skip`].
#[macro_export]
macro_rules! needs_root {
    () => {
        if let Some(why) = $crate::root::cannot_isolate() {
            $crate::root::skip(module_path!(), &format!("needs root with namespaces and cgroups ({why})"));
            return;
        }
    };
}
