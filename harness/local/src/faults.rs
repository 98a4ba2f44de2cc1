//! Isolation the emulator breaks on purpose (`[local] break_isolation` in a scenario,
//! [`IsolationFault`]), so that a test can show the leakage probes and the CI gate catching a
//! broken boundary. A run with a fault measures a deliberately broken emulator, never a tier;
//! its plan carries the fault so results can say so.
//!
//! `shared-tmp`: silo instances share one /tmp. The backend mounts one tmpfs (mode 1777, the
//! size of an instance's private tmpfs) at `/run/isobench/<run_id>.shared-tmp` at the first
//! deploy that asks for it, and every instance of that deploy (EC2 instances and ECS tasks)
//! binds it at `/tmp` instead of a private tmpfs. It lives until the run's teardown, which
//! unmounts and removes it; after a crash, [`crate::sweep()`] finds it by its name.
//!
//! [`IsolationFault`]: isobench_core::scenario::IsolationFault

use std::io;
use std::path::{Path, PathBuf};

use isobench_core::backend::TeardownReport;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::FsError;
use crate::lock::LOCK_DIR;

/// Suffix of a run's shared `/tmp` in the lock directory: `/run/isobench/<run_id>.shared-tmp`.
pub const SHARED_TMP_SUFFIX: &str = ".shared-tmp";

/// Where run `run_id`'s shared `/tmp` is mounted.
pub(crate) fn shared_tmp_path(run_id: &str) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("{run_id}{SHARED_TMP_SUFFIX}"))
}

/// The run's shared `/tmp`: `current` if it is already mounted, else a fresh tmpfs of `size`
/// bytes (a leftover of a crashed run of the same id is removed first).
pub(crate) fn ensure_shared_tmp(current: &mut Option<PathBuf>, run_id: &str, size: u64) -> Result<PathBuf, FsError> {
    if let Some(p) = current {
        return Ok(p.clone());
    }
    let path = shared_tmp_path(run_id);
    std::fs::create_dir_all(LOCK_DIR).map_err(|e| FsError::new("create", Path::new(LOCK_DIR), e))?;
    if path.exists() {
        remove_shared_tmp(&path)?;
    }
    std::fs::create_dir(&path).map_err(|e| FsError::new("create", &path, e))?;
    let opts = format!("mode=1777,size={size}");
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if let Err(e) = mount(Some("tmpfs"), &path, Some("tmpfs"), flags, Some(opts.as_str())) {
        let _ = std::fs::remove_dir(&path);
        return Err(FsError::new("mount a tmpfs on", &path, e.into()));
    }
    *current = Some(path.clone());
    Ok(path)
}

/// Unmounts (lazily: an instance still holding it keeps its view) and removes a shared `/tmp`;
/// a directory that is not mounted (a crash between the two steps) is removed with what it
/// holds. Idempotent.
pub(crate) fn remove_shared_tmp(path: &Path) -> Result<(), FsError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point; ENOENT: already gone.
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(FsError::new("unmount", path, e.into())),
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::new("remove", path, e)),
    }
}

/// Removes the run's shared `/tmp`, if it has one, into `report` (kept in `current` if that
/// fails, for a later teardown to retry).
pub(crate) fn teardown_shared_tmp(current: &mut Option<PathBuf>, report: &mut TeardownReport) {
    let Some(p) = current.take() else { return };
    match remove_shared_tmp(&p) {
        Ok(()) => report.removed.push(format!("shared /tmp {} (isolation fault shared-tmp)", p.display())),
        Err(e) => {
            report.left_behind.push(format!("shared /tmp of isolation fault shared-tmp: failed to {e}"));
            *current = Some(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_tmp_is_named_after_its_run() {
        assert_eq!(shared_tmp_path("r-1.x"), Path::new("/run/isobench/r-1.x.shared-tmp"));
        assert_eq!("r-1.x.shared-tmp".strip_suffix(SHARED_TMP_SUFFIX), Some("r-1.x"));
    }
}
