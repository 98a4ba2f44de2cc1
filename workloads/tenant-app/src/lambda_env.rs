//! How the process tells that Lambda started it: the variable Lambda sets for a function's
//! runtime. A leaf module, so the command line (which then defaults to `lambda`) and the Lambda
//! front end (which reads the Runtime API's address from it) share it without importing each
//! other.

/// Where Lambda tells `bootstrap` to find the Runtime API (`host:port`).
pub const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";

/// Whether Lambda started this process (`AWS_LAMBDA_RUNTIME_API` is set and not empty).
pub fn in_lambda() -> bool {
    std::env::var_os(RUNTIME_API_ENV).is_some_and(|v| !v.is_empty())
}
