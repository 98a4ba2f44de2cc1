//! Tier ids: the isolation models isobench measures.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One isolation model. The list is open: VPC-attached Lambda comes later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TierId {
    /// One EC2 instance per tenant.
    SiloEc2,
    /// One EC2 instance serves every tenant.
    SharedEc2,
    /// One ECS task per tenant in `awsvpc` network mode.
    EcsAwsvpc,
    /// One Lambda function per tenant.
    LambdaPerTenant,
    /// One Lambda function serves every tenant; environments are reused across tenants.
    LambdaShared,
    /// One Lambda function in tenant isolation mode (`PER_TENANT`).
    LambdaTenantIsolation,
    /// One Kubernetes pod per tenant on EKS nodes (a namespace or a node per tenant).
    EksPod,
}

impl TierId {
    pub const ALL: [TierId; 7] = [
        TierId::SiloEc2,
        TierId::SharedEc2,
        TierId::EcsAwsvpc,
        TierId::LambdaPerTenant,
        TierId::LambdaShared,
        TierId::LambdaTenantIsolation,
        TierId::EksPod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TierId::SiloEc2 => "silo-ec2",
            TierId::SharedEc2 => "shared-ec2",
            TierId::EcsAwsvpc => "ecs-awsvpc",
            TierId::LambdaPerTenant => "lambda-per-tenant",
            TierId::LambdaShared => "lambda-shared",
            TierId::LambdaTenantIsolation => "lambda-tenant-isolation",
            TierId::EksPod => "eks-pod",
        }
    }

    /// The accepted spellings, for error messages.
    pub fn accepted() -> String {
        Self::ALL.iter().map(|t| format!("`{}`", t.as_str())).collect::<Vec<_>>().join(", ")
    }

    /// Whether one deployment unit (instance, task, function) serves every tenant.
    pub fn is_pooled(self) -> bool {
        matches!(self, TierId::SharedEc2 | TierId::LambdaShared | TierId::LambdaTenantIsolation)
    }
}

impl fmt::Display for TierId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier `{0}`")]
pub struct UnknownTier(pub String);

impl FromStr for TierId {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TierId::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownTier(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in TierId::ALL {
            assert_eq!(t.as_str().parse::<TierId>().unwrap(), t);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{}\"", t.as_str()));
        }
        assert!("silo".parse::<TierId>().is_err());
    }
}
