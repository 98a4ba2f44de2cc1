//! Error types. Messages are lowercase fragments that read after "failed to"; each names
//! what failed (the path, the instance, the interface) and keeps the cause as its source.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use isobench_core::backend::BackendError;
use isobench_core::plan::TierPlan;
use isobench_core::tier::TierId;

use crate::nft::NftError;

/// The backend's name in [`BackendError`]s and results.
pub(crate) const BACKEND: &str = "local";

/// This host or process cannot run the emulator (or one of its tiers): `reason` says why.
pub(crate) fn unavailable(reason: impl Into<String>) -> BackendError {
    BackendError::Unavailable { backend: BACKEND, reason: reason.into() }
}

/// Deploying `tier` failed at `what`.
pub(crate) fn deploy_error(
    tier: TierId,
    what: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> BackendError {
    BackendError::Deploy { tier, what: what.into(), source: Box::new(e) }
}

/// A filesystem operation on a cgroup, a lock file or a proc file.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}", path.display())]
pub struct FsError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub(crate) fn new(op: &'static str, path: &Path, source: io::Error) -> FsError {
        FsError { op, path: path.to_path_buf(), source }
    }

    pub(crate) fn unsupported(op: &'static str, path: &Path, why: &str) -> FsError {
        FsError::new(op, path, io::Error::new(io::ErrorKind::Unsupported, why.to_string()))
    }

    pub(crate) fn parse(path: &Path, text: &str) -> FsError {
        let shown: String = text.chars().take(80).collect();
        FsError::new("parse", path, io::Error::new(io::ErrorKind::InvalidData, format!("unexpected content `{shown}`")))
    }
}

/// Why one instance could not be started. The caller names the instance.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error(transparent)]
    Cgroup(#[from] FsError),
    #[error("{step}")]
    Network {
        step: String,
        #[source]
        source: io::Error,
    },
    #[error("find a free address in {subnet}: its {capacity} instance addresses are taken")]
    AddressesExhausted { subnet: String, capacity: u64 },
    #[error("start the sandbox {}", exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "keep the workload running: the sandbox exited ({status}) before GET /healthz answered; its output:\n{output}"
    )]
    Exited { status: String, output: String },
    #[error("get 200 from GET /healthz on {addr} within {timeout:?} (last attempt: {last}); sandbox output:\n{output}")]
    NotReady { addr: SocketAddr, timeout: Duration, last: String, output: String },
    #[error("reach the launcher thread: it has stopped")]
    LauncherGone,
    #[error("find instance {id}: this run has no such instance")]
    Unknown { id: String },
}

impl InstanceError {
    pub(crate) fn net(step: impl Into<String>, source: io::Error) -> InstanceError {
        InstanceError::Network { step: step.into(), source }
    }
}

/// A plan whose settings are not of its tier's kind (`wanted` says what it needs): refused
/// rather than guessed.
pub(crate) fn wrong_settings(plan: &TierPlan, wanted: &str) -> BackendError {
    let why = format!("it needs {wanted}, not {:?}", plan.settings);
    deploy_error(plan.tier, "the tier", io::Error::new(io::ErrorKind::InvalidInput, why))
}

/// Why a tier's network could not be set up: its security groups, its metadata endpoints or its
/// cluster bridge (the EC2 and ECS tiers share these steps, in the `security_groups` module).
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(
        "find `nft`: {tier} enforces its security groups with nftables; install it with scripts/deps.sh (or `apt-get install nftables`)"
    )]
    NoNft { tier: TierId },
    #[error(
        "filter traffic between instances: the kernel's bridge netfilter is missing ({path}); load it with `modprobe br_netfilter` (which also sends the host's own bridged traffic through its firewall unless `net.bridge.bridge-nf-call-iptables=0` is set on the host)"
    )]
    NoBridgeNetfilter { path: &'static str },
    #[error("{what}")]
    Net {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("install the security groups")]
    Filter(#[source] NftError),
    #[error(transparent)]
    Launcher(#[from] InstanceError),
}

impl NetworkError {
    /// A failed network step, named by `what`.
    pub(crate) fn net(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetworkError {
        let what = what.into();
        move |source| NetworkError::Net { what, source }
    }

    /// As a [`BackendError`] of deploying `tier`: `Unavailable` when this host cannot run the
    /// tier at all (no `nft`, no bridge netfilter), else a failed deploy of `what`.
    pub(crate) fn into_backend(self, tier: TierId, what: &str) -> BackendError {
        match self {
            NetworkError::NoNft { .. } | NetworkError::NoBridgeNetfilter { .. } => {
                unavailable(format!("failed to {self}"))
            }
            e => deploy_error(tier, what, e),
        }
    }
}

/// Why a sweep could not run at all (a single leftover that cannot be removed is reported in
/// [`crate::SweepReport::failed`] instead).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("sweep with --force but without --run RUN_ID: --force removes one named live run, never every live run")]
    ForceWithoutRun,
    #[error(transparent)]
    Fs(#[from] FsError),
}
