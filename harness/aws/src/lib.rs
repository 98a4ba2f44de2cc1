//! The AWS backend of isobench on the official SDKs: deploys each tier into an account (or an
//! emulator), tags everything with the run id, the tool and an expiry, tears down in dependency
//! order, and sweeps by tag what a crashed run left.

pub mod api;
pub mod backend;
pub mod capability;
pub mod config;
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
pub mod sweep;
pub mod tags;
pub mod tiers;

pub use backend::{AwsBackend, Workload};
pub use capability::Capabilities;
pub use config::AwsOptions;

#[cfg(test)]
mod tests;

// The SDK crates, for tests and tools that check what the backend made.
pub use {aws_config, aws_sdk_ec2, aws_sdk_ecs, aws_sdk_iam, aws_sdk_lambda, aws_sdk_s3};
