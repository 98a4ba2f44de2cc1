//! One module per kind of tier: what it creates, beyond the run's shared network and bucket.

pub mod ec2;
pub mod ecs;
pub mod lambda;
