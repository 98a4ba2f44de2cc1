//! Exit codes of `isobench`, documented once here and in the README; each has a test.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | internal error (a bug in the harness, or an I/O failure writing results) |
//! | 2 | bad input: scenario, flags or paths; nothing was deployed |
//! | 3 | deploy failure: a tier could not be brought up; everything was torn down |
//! | 4 | resources were left behind after teardown (run `isobench sweep`) |
//! | 5 | a threshold or regression check failed (`compare`) |
//! | 6 | an unexpected cross-tenant leak was found |
//! | 7 | a probe was inconclusive (a positive control failed, or a trial was blind) |
//! | 8 | the backend is unavailable here (e.g. the local emulator without root) |
//! | 9 | the error budget was exhausted: traffic stopped early, partial results written, teardown ran |
//! | 10 | a guard rail of `[aws]` would be exceeded (instances, tasks, functions, cost, lifetime); nothing was created |
//! | 130 | interrupted by Ctrl-C or SIGTERM; partial results were written and teardown ran |

pub const SUCCESS: i32 = 0;
pub const INTERNAL: i32 = 1;
pub const BAD_INPUT: i32 = 2;
pub const DEPLOY_FAILED: i32 = 3;
pub const LEFT_BEHIND: i32 = 4;
pub const REGRESSION: i32 = 5;
pub const UNEXPECTED_LEAK: i32 = 6;
pub const INCONCLUSIVE: i32 = 7;
pub const UNAVAILABLE: i32 = 8;
pub const ERROR_BUDGET: i32 = 9;
pub const GUARD_RAIL: i32 = 10;
pub const INTERRUPTED: i32 = 130;

/// Every code with a one-line meaning, for `--help` and the README.
pub const ALL: &[(i32, &str)] = &[
    (SUCCESS, "success"),
    (INTERNAL, "internal error"),
    (BAD_INPUT, "bad input (scenario, flags, paths); nothing was deployed"),
    (DEPLOY_FAILED, "deploy failure; everything was torn down"),
    (LEFT_BEHIND, "resources left behind after teardown; run `isobench sweep`"),
    (REGRESSION, "threshold or regression check failed"),
    (UNEXPECTED_LEAK, "unexpected cross-tenant leak"),
    (INCONCLUSIVE, "inconclusive probe (a positive control failed, or a trial was blind)"),
    (UNAVAILABLE, "backend unavailable here (e.g. no root for the local emulator)"),
    (ERROR_BUDGET, "error budget exhausted; traffic stopped early, partial results written, teardown ran"),
    (GUARD_RAIL, "an [aws] guard rail would be exceeded; nothing was created"),
    (INTERRUPTED, "interrupted; partial results written, teardown ran"),
];

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<i32> = super::ALL.iter().map(|(c, _)| *c).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), super::ALL.len());
    }
}
