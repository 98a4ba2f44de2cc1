//! Error types. Messages are lowercase fragments that read after "failed to"; each names
//! what failed (the path, the instance, the interface) and keeps the cause as its source.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Why a sweep could not run at all (a single leftover that cannot be removed is reported in
/// [`crate::SweepReport::failed`] instead).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("sweep with --force but without --run RUN_ID: --force removes one named live run, never every live run")]
    ForceWithoutRun,
    #[error(transparent)]
    Fs(#[from] FsError),
}
