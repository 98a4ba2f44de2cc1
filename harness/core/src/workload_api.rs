//! The sample tenant workload's HTTP contract, shared by the load driver (which builds
//! requests) and the tests (which check the workload answers them). The workload itself
//! (`workloads/tenant-app`) does not depend on this crate, so it can be shipped alone; its
//! README documents the same paths, and the integration tests hold both sides to it.

/// Header that carries the tenant id on every request (the path carries it too).
pub const TENANT_HEADER: &str = "x-tenant-id";
/// Readiness probe path; answers 200 once the workload serves.
pub const HEALTH_PATH: &str = "/healthz";
/// Default port the workload listens on inside an instance.
pub const DEFAULT_PORT: u16 = 8080;

use serde::{Deserialize, Serialize};

/// The operations of the sample workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `PUT /t/{tenant}/records/{key}`: store a record.
    Put,
    /// `GET /t/{tenant}/records/{key}`: read it back.
    Get,
    /// `POST /t/{tenant}/compute?us=N`: N microseconds of real CPU work.
    Compute,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Put, Op::Get, Op::Compute];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Compute => "compute",
        }
    }

    pub fn method(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Get => "GET",
            Op::Compute => "POST",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request path for an operation.
pub fn path(op: Op, tenant: &str, key: &str, compute_us: u64) -> String {
    match op {
        Op::Put | Op::Get => format!("/t/{tenant}/records/{key}"),
        Op::Compute => format!("/t/{tenant}/compute?us={compute_us}"),
    }
}
