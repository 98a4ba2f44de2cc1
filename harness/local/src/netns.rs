//! Network namespaces, created in-process. A network namespace belongs to a thread, so the
//! calling thread moves into a fresh one (`unshare(CLONE_NEWNET)`), keeps a descriptor to it,
//! and can move back with [`enter`]. Nothing is bind-mounted: a namespace lives exactly as long
//! as its descriptors, its processes and its sockets, so a crashed harness leaves none behind.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::sched::{CloneFlags, setns, unshare};

/// Moves the calling thread into a new network namespace and returns a descriptor to it.
pub(crate) fn unshare_net() -> io::Result<OwnedFd> {
    unshare(CloneFlags::CLONE_NEWNET)?;
    Ok(File::open("/proc/thread-self/ns/net")?.into())
}

/// Moves the calling thread into the network namespace `fd` refers to.
pub(crate) fn enter(fd: impl AsFd) -> io::Result<()> {
    Ok(setns(fd, CloneFlags::CLONE_NEWNET)?)
}

/// Writes a sysctl of the calling thread's network namespace (`/proc/sys/net/...` resolves to
/// the namespace of the thread that opens it). Missing files (no IPv6) are not an error.
pub(crate) fn sysctl(path: &str, value: &str) -> io::Result<()> {
    match std::fs::write(path, value) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
