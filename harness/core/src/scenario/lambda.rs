//! Settings of the three Lambda tiers, as a function configuration: memory size, timeout,
//! the idle keep-alive of execution environments, the concurrency limit, and optionally the
//! user's own code (a `bootstrap` file, a directory or a zip holding one).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diagnostics::Checker;
use crate::units::Dur;

pub(super) const FIELDS: &[&str] =
    &["id", "memory", "timeout", "keep_alive", "concurrency", "code", "handler", "environment"];

/// One Lambda function configuration (per tenant, shared, or in tenant isolation mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaSpec {
    /// Memory size in MB (128 to 10240); sets the memory limit and a CPU share in proportion
    /// (one vCPU at 1,769 MB).
    #[serde(default = "default_memory")]
    pub memory: u32,
    /// Function timeout.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// Idle time after which an environment is shut down.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: Dur,
    /// Most environments of one function at once; invokes beyond are throttled.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// The function's code instead of the sample workload: an executable `bootstrap`, a
    /// directory holding one, or a zip holding one.
    #[serde(default)]
    pub code: Option<PathBuf>,
    /// The handler name passed as `_HANDLER`.
    #[serde(default = "default_handler")]
    pub handler: String,
    /// Extra environment variables of the function.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// Environment variables a function's configuration may not set: Lambda reserves them
/// ("Defined runtime environment variables" in the Lambda developer guide).
pub const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

fn default_memory() -> u32 {
    512
}
fn default_timeout() -> Dur {
    Dur(Duration::from_secs(3))
}
fn default_keep_alive() -> Dur {
    Dur(Duration::from_secs(600))
}
fn default_concurrency() -> u32 {
    100
}
fn default_handler() -> String {
    "bootstrap".into()
}

pub(super) fn parse(table: &toml::Table, at: &dyn Fn(&str) -> String, c: &mut Checker) -> Option<LambdaSpec> {
    let mut fields = table.clone();
    fields.remove("id");
    let spec: LambdaSpec = match toml::Value::Table(fields).try_into() {
        Ok(s) => s,
        Err(e) => {
            c.fail(at(""), e.message().to_string(), "see the Lambda fields in scenarios/lambda.toml");
            return None;
        }
    };
    c.check(
        (128..=10240).contains(&spec.memory),
        &at("memory"),
        format!("{} MB is out of range", spec.memory),
        "128 to 10240 (MB)",
    );
    c.check(
        spec.timeout.0 > Duration::ZERO && spec.timeout.0 <= Duration::from_secs(900),
        &at("timeout"),
        format!("timeout {} is out of range", spec.timeout),
        "more than 0s and at most 15m",
    );
    c.check(spec.keep_alive.0 > Duration::ZERO, &at("keep_alive"), "keep-alive must be more than 0s", "e.g. `10m`");
    c.check((1..=10_000).contains(&spec.concurrency), &at("concurrency"), "out of range", "1 to 10000");
    for key in spec.environment.keys() {
        let valid = key.len() >= 2
            && key.starts_with(|c: char| c.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        c.check(
            valid,
            &at(&format!("environment.{key}")),
            format!("`{key}` is not a valid environment variable name"),
            "a letter followed by letters, digits and `_` (Lambda's rule)",
        );
        c.check(
            !RESERVED_ENV.contains(&key.as_str()),
            &at(&format!("environment.{key}")),
            format!("`{key}` is reserved: Lambda sets it"),
            "any name but the reserved ones",
        );
    }
    if let Some(code) = &spec.code
        && !code.exists()
    {
        c.fail(
            at("code"),
            format!("`{}` does not exist", code.display()),
            "an executable bootstrap, a directory or a zip holding one",
        );
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use crate::scenario::{Scenario, TierSettings};

    #[test]
    fn lambda_tiers_parse_and_check_ranges() {
        let src = r#"
format_version = 1
name = "l"
[run]
duration = "1s"
rate = "10"
[tenants]
count = 2
[[tier]]
id = "lambda-shared"
memory = 1769
keep_alive = "300ms"
"#;
        let s = Scenario::parse(src, std::path::Path::new("l.toml")).unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        assert_eq!(l.memory, 1769);
        assert_eq!(l.concurrency, 100);
        let e = Scenario::parse(&src.replace("1769", "64"), std::path::Path::new("l.toml")).unwrap_err();
        assert_eq!(e.problems[0].field, "tier[0].memory");
        assert_eq!(e.problems[0].line, Some(11));
    }
}

#[cfg(test)]
mod environment_tests {
    use std::path::Path;

    use crate::scenario::Scenario;

    #[test]
    fn reserved_and_malformed_environment_names_are_refused() {
        let src = "format_version = 1\nname = \"l\"\n[run]\nduration = \"1s\"\nrate = 10\n[tenants]\ncount = 2\n\
                   [[tier]]\nid = \"lambda-per-tenant\"\n[tier.environment]\nAWS_REGION = \"eu-west-1\"\n\
                   \"1BAD\" = \"x\"\nGOOD_ONE = \"y\"\n";
        let e = Scenario::parse(src, Path::new("l.toml")).unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(e.problems.iter().any(|p| p.message.contains("`AWS_REGION` is reserved")), "{e}");
        assert!(e.problems.iter().any(|p| p.message.contains("`1BAD` is not a valid")), "{e}");
        assert!(e.problems.iter().all(|p| p.line.is_some()), "located: {e}");
    }
}
