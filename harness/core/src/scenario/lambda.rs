//! Settings of the three Lambda tiers, as a function configuration: memory size, timeout,
//! the idle keep-alive of execution environments, the concurrency limit, and optionally the
//! user's own code (a `bootstrap` file, a directory or a zip holding one).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Checker, TierSettings};
use crate::tier::TierId;
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

pub(super) fn parse(
    _id: TierId,
    table: &toml::Table,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) -> Option<TierSettings> {
    let spec: LambdaSpec = match toml::Value::Table(table.clone()).try_into() {
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
    if let Some(code) = &spec.code
        && !code.exists()
    {
        c.fail(
            at("code"),
            format!("`{}` does not exist", code.display()),
            "an executable bootstrap, a directory or a zip holding one",
        );
    }
    Some(TierSettings::Lambda(spec))
}
