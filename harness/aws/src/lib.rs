//! The AWS backend of isobench on the official SDKs: deploys each tier into an account (or an
//! emulator), tags everything with the run id, the tool and an expiry, tears down in dependency
//! order, and sweeps by tag what a crashed run left.
//!
//! Its main choice: one module per tier behind one trait, [`tier::AwsTier`], chosen once per
//! deploy from the tier's id by [`tiers::module`]. `silo-ec2` and `shared-ec2` live in
//! [`tiers::ec2`], `ecs-awsvpc` in [`tiers::ecs`], the three Lambda tiers in [`tiers::lambda`];
//! each owns its layout, sizing, preparation, deploy and what it records for teardown, and
//! answers `isobench plan` for its tier. Below them: [`context`] (the run's shared VPC,
//! subnets, bucket, ledger, tags and retries that tiers deploy into), [`security_groups`]
//! (groups and rules for EC2 and ECS alike), and [`api`], thin traits over the SDK clients
//! ([`sdk`]) so everything above is tested against an in-memory account. Above them:
//! [`deployer`] (dispatch, timing, teardown from the ledger) and [`backend`] (the
//! synchronous `Backend`). Beside the tiers, [`agents`] starts the run's load agents as Fargate
//! tasks in its VPC and carries their lines through the run's bucket.

pub mod agents;
pub mod api;
pub mod backend;
pub mod capability;
pub mod config;
pub mod context;
pub mod deployer;
pub mod emulators;
pub mod error;
#[cfg(test)]
mod fake;
pub mod package;
pub mod plan;
pub mod resource;
pub mod retry;
pub mod sdk;
pub mod security_groups;
pub mod sweep;
pub mod tags;
pub mod tier;
pub mod tiers;
pub mod traffic;

pub use backend::{AwsBackend, Workload};
pub use capability::Capabilities;
pub use config::AwsOptions;

#[cfg(test)]
mod tests;

// The SDK crates, for tests and tools that check what the backend made.
pub use {aws_config, aws_sdk_ec2, aws_sdk_ecs, aws_sdk_iam, aws_sdk_lambda, aws_sdk_s3};
