//! Settings of the three Lambda tiers, as a function configuration: memory size, timeout,
//! the idle keep-alive of execution environments, the concurrency limit, and optionally the
//! user's own code (a `bootstrap` file, a directory or a zip holding one) and how its
//! successful payloads are read (`response`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diagnostics::Checker;
use crate::units::Dur;

pub(super) const FIELDS: &[&str] =
    &["id", "memory", "timeout", "keep_alive", "concurrency", "code", "handler", "environment", "response"];

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
    /// directory holding one, or a zip holding one. Relative to the scenario file's directory.
    #[serde(default)]
    pub code: Option<PathBuf>,
    /// The handler name passed as `_HANDLER`.
    #[serde(default = "default_handler")]
    pub handler: String,
    /// Extra environment variables of the function.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// How a successful invoke's payload is read; `None` takes the default of the code
    /// ([`LambdaSpec::response`]). Parsing fills the default in, so the effective scenario in
    /// `summary.json` says which contract the run used.
    #[serde(default)]
    pub response: Option<PayloadContract>,
}

/// What a function's successful payload means to the caller (the scenario's `response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadContract {
    /// The sample workload's response document (`{"status": 200, "body": ...}`): its `status`
    /// decides ok or error, as an HTTP answer's does (`response = "workload"`).
    #[serde(rename = "workload")]
    WorkloadStatus,
    /// Any payload, JSON or not, is ok: a successful invoke is a success, as for a Lambda
    /// caller (`response = "any"`). Function errors are still errors.
    #[serde(rename = "any")]
    Opaque,
}

impl LambdaSpec {
    /// The scenario's `response`, else the default of the code: the sample workload's status
    /// document when the tier runs it, any payload when it runs the user's `code`.
    pub fn response(&self) -> PayloadContract {
        self.response.unwrap_or(if self.code.is_some() {
            PayloadContract::Opaque
        } else {
            PayloadContract::WorkloadStatus
        })
    }
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

/// What `response` accepts, for the located problem.
const RESPONSE_ACCEPTED: &str = "`workload` (the sample workload's status document) or `any` (any payload is ok)";

/// `base` is the scenario file's directory, which a relative `code` is read from.
pub(super) fn parse(
    table: &toml::Table,
    base: &Path,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) -> Option<LambdaSpec> {
    let mut fields = table.clone();
    fields.remove("id");
    // Checked apart, so a bad value is located at its own line with what is accepted.
    let response = match fields.remove("response") {
        None => None,
        Some(v) => match v.as_str() {
            Some("workload") => Some(PayloadContract::WorkloadStatus),
            Some("any") => Some(PayloadContract::Opaque),
            _ => {
                let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                c.fail(at("response"), format!("`{shown}` is not a response contract"), RESPONSE_ACCEPTED);
                None
            }
        },
    };
    let spec: LambdaSpec = match toml::Value::Table(fields).try_into() {
        Ok(s) => LambdaSpec { response, ..s },
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
    let spec = LambdaSpec { response: Some(spec.response()), ..spec };
    // Relative to the scenario, as a trace file is, so a scenario runs from any directory.
    let spec = LambdaSpec { code: spec.code.as_ref().map(|p| base.join(p)), ..spec };
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
mod response_tests {
    use std::path::Path;

    use super::PayloadContract;
    use crate::scenario::{Scenario, TierSettings};

    const SRC: &str = "format_version = 1\nname = \"l\"\n[run]\nduration = \"1s\"\nrate = 10\n[tenants]\ncount = 2\n\
                       [[tier]]\nid = \"lambda-shared\"\n";

    fn response(extra: &str) -> (Option<PayloadContract>, PayloadContract) {
        let s = Scenario::parse(&format!("{SRC}{extra}"), Path::new("l.toml")).unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        (l.response, l.response())
    }

    #[test]
    fn the_response_contract_defaults_by_code_and_can_be_set() {
        assert_eq!(response("").1, PayloadContract::WorkloadStatus, "the sample workload's document");
        // `code` must exist (it is staged at deploy): any file will do here.
        let code = format!("code = \"{}/Cargo.toml\"\n", env!("CARGO_MANIFEST_DIR"));
        assert_eq!(
            response(&code),
            (Some(PayloadContract::Opaque), PayloadContract::Opaque),
            "the user's code: any payload, filled in for the effective scenario"
        );
        assert_eq!(
            response(&format!("{code}response = \"workload\"\n")).1,
            PayloadContract::WorkloadStatus,
            "the user's code may speak the workload's document"
        );
        assert_eq!(response("response = \"any\"\n").1, PayloadContract::Opaque);
    }

    #[test]
    fn a_relative_code_path_is_read_from_the_scenario_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let src = format!("{SRC}code = \"src/lib.rs\"\n");
        let s = Scenario::parse(&src, &dir.join("s.toml")).unwrap();
        let TierSettings::Lambda(l) = &s.tiers[0].settings else { panic!("lambda settings") };
        assert_eq!(l.code.as_deref(), Some(dir.join("src/lib.rs").as_path()));
        let e = Scenario::parse(&src, &dir.join("src/s.toml")).unwrap_err();
        assert!(e.problems[0].message.contains("src/src/lib.rs` does not exist"), "{e}");
    }

    #[test]
    fn a_bad_response_is_located_with_what_is_accepted() {
        for bad in ["\"json\"", "1"] {
            let e = Scenario::parse(&format!("{SRC}response = {bad}\n"), Path::new("l.toml")).unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            let p = &e.problems[0];
            assert_eq!((p.field.as_str(), p.line), ("tier[0].response", Some(10)), "{e}");
            assert!(
                p.message.contains("is not a response contract")
                    && p.accepted.as_deref().is_some_and(|a| a.contains("`any`")),
                "{e}"
            );
        }
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
