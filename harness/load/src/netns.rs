//! Opening connections from inside another network namespace.
//!
//! A network namespace belongs to a thread, not a process, so every thread that creates a
//! socket for the driver joins the target namespace first: the runtime's worker and blocking
//! threads from `on_thread_start`. Joining is checked once on a scratch thread before the run,
//! so a bad descriptor or a missing capability is an error up front rather than a run of
//! connect failures; and each connection checks that its thread really joined before it
//! creates a socket, so a request can never leave from the wrong namespace.

use std::cell::Cell;
use std::os::fd::OwnedFd;

use nix::sched::{CloneFlags, setns};

thread_local! {
    static ENTERED: Cell<bool> = const { Cell::new(false) };
}

/// Moves the calling thread into the network namespace `fd` refers to.
pub(crate) fn enter(fd: &OwnedFd) -> nix::Result<()> {
    setns(fd, CloneFlags::CLONE_NEWNET)?;
    ENTERED.with(|e| e.set(true));
    Ok(())
}

/// Whether [`enter`] succeeded on this thread.
pub(crate) fn entered() -> bool {
    ENTERED.with(Cell::get)
}

/// Tries [`enter`] on a throwaway thread, leaving the caller's namespace alone.
pub(crate) fn check(fd: &OwnedFd) -> nix::Result<()> {
    std::thread::scope(|s| s.spawn(|| enter(fd)).join().unwrap_or(Err(nix::Error::EINVAL)))
}
