//! Whether this process may run the emulator, and what a test does when it may not. The skip
//! policy lives in [`skip`] alone: on a developer's machine a test that cannot run here says
//! why on stderr and returns; under CI (`CI` set, as every CI service sets it) it fails, so a
//! suite that could not run its root, namespace, cgroup, packet-filter or emulator tests never
//! reads as passed.

use std::ffi::OsStr;
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

/// Whether the tests run under CI: `CI` set to anything but empty, `0` or `false`.
pub fn under_ci() -> bool {
    ci_from(std::env::var_os("CI").as_deref())
}

fn ci_from(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The skip policy: what `test` does when it cannot run here, `why` saying what is missing.
/// Under CI it panics (the test fails, naming `why`); otherwise it says so on stderr, and the
/// caller returns.
pub fn skip(test: &str, why: &str) {
    skip_as(under_ci(), test, why);
}

fn skip_as(ci: bool, test: &str, why: &str) {
    if ci {
        panic!("{test} cannot run here and CI is set, so this is a failure, not a skip: {why}");
    }
    eprintln!("skipping {test}: {why}");
}

/// The running test's name (libtest names each test's thread after it), else `fallback`.
pub fn test_name(fallback: &str) -> String {
    std::thread::current().name().filter(|n| *n != "main").unwrap_or(fallback).to_string()
}

/// Skips (returns early from) the calling test unless this process can run the emulator, by
/// the policy of [`skip`]: a failure under CI.
#[macro_export]
macro_rules! needs_root {
    () => {
        if let Some(why) = $crate::root::cannot_isolate() {
            $crate::root::skip(
                &$crate::root::test_name(module_path!()),
                &format!("needs root with namespaces and cgroups ({why})"),
            );
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::process::Command;

    use super::*;

    #[test]
    fn ci_is_any_value_but_empty_zero_or_false() {
        for v in ["true", "1", "yes", "TRUE"] {
            assert!(ci_from(Some(OsStr::new(v))), "{v}");
        }
        for v in ["", "0", "false", "False"] {
            assert!(!ci_from(Some(OsStr::new(v))), "{v:?}");
        }
        assert!(!ci_from(None));
    }

    #[test]
    #[should_panic(expected = "CI is set, so this is a failure, not a skip: needs a unicorn")]
    fn under_ci_a_skip_fails() {
        skip_as(true, "t", "needs a unicorn");
    }

    #[test]
    fn without_ci_a_skip_returns() {
        skip_as(false, "t", "needs a unicorn");
    }

    /// Run only as a child of the next test, whose environment decides what it does.
    #[test]
    #[ignore = "helper: runs only in the child process of skip_reads_ci_from_the_environment"]
    fn a_test_whose_precondition_is_false() {
        skip(&test_name("?"), "the precondition is false");
    }

    /// The whole path from the environment: the same test binary, with `CI` set and not.
    #[test]
    fn skip_reads_ci_from_the_environment() {
        let run = |ci: Option<&str>| {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args(["--ignored", "--exact", "root::tests::a_test_whose_precondition_is_false", "--nocapture"]);
            match ci {
                Some(v) => c.env("CI", v),
                None => c.env_remove("CI"),
            };
            c.output().unwrap()
        };
        let o = run(Some("true"));
        let err = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "passed under CI=true: {err}");
        assert!(err.contains("the precondition is false") && err.contains("1 failed"), "{err}");

        let o = run(None);
        let err = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "failed without CI: {err}");
        assert!(
            err.contains("skipping root::tests::a_test_whose_precondition_is_false: the precondition is false"),
            "{err}"
        );
    }
}
