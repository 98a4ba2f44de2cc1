//! The run lock: each live run holds an advisory `flock` on `/run/isobench/<run_id>.lock`, so
//! a sweep can tell a live run (lock held) from a crashed one (lock free or missing) without
//! trusting any state file's contents. The kernel drops the lock when the process dies, however
//! it dies.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::FsError;

/// Where lock files live.
pub const LOCK_DIR: &str = "/run/isobench";

/// The lock file of `run_id`.
pub fn lock_path(run_id: &str) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("{run_id}.lock"))
}

/// A held run lock; released (and its file removed) by [`RunLock::release`] or on drop.
#[derive(Debug)]
pub(crate) struct RunLock {
    path: PathBuf,
    file: Option<File>,
}

impl RunLock {
    /// Creates and locks the run's lock file. Fails if another live process holds it.
    pub(crate) fn acquire(run_id: &str) -> Result<RunLock, FsError> {
        let path = lock_path(run_id);
        for _ in 0..5 {
            fs::create_dir_all(LOCK_DIR).map_err(|e| FsError::new("create", Path::new(LOCK_DIR), e))?;
            let file =
                match OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644).open(&path) {
                    Ok(f) => f,
                    // A concurrent teardown removed the empty directory between the two calls.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(FsError::new("create", &path, e)),
                };
            match try_lock(&file) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(FsError::new(
                        "lock",
                        &path,
                        io::Error::new(io::ErrorKind::AddrInUse, "another live process holds this run id"),
                    ));
                }
                Err(e) => return Err(FsError::new("lock", &path, e)),
            }
            // A sweep may have removed the file between our open and our lock; the lock is
            // only meaningful on the file the path names now.
            let same = match (file.metadata(), fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                // For people looking: who holds it. Only the lock itself means anything.
                let mut f = &file;
                let _ = file.set_len(0);
                let _ = writeln!(f, "{}", std::process::id());
                return Ok(RunLock { path, file: Some(file) });
            }
        }
        Err(FsError::new("lock", &path, io::Error::other("the lock file kept being replaced")))
    }

    /// Removes the file, then drops the lock.
    pub(crate) fn release(&mut self) -> Option<Result<PathBuf, FsError>> {
        let file = self.file.take()?;
        let r = match fs::remove_file(&self.path) {
            // A forced sweep may have removed it already.
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FsError::new("remove", &self.path, e)),
            _ => Ok(()),
        };
        drop(file);
        // The directory is shared by every run; remove it only when empty.
        let _ = fs::remove_dir(LOCK_DIR);
        Some(r.map(|()| self.path.clone()))
    }

    pub(crate) fn is_held(&self) -> bool {
        self.file.is_some()
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when someone else holds the lock.
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock(2) on a descriptor `file` keeps open for the duration of the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(e) }
}
