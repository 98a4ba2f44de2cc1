//! `fd`: file descriptors left open. Plant creates a memfd named `isobench-probe` holding the
//! canary and keeps the descriptor open for the life of the process (in a global), without
//! close-on-exec, as careless code leaks descriptors — also into any child it starts. Sweep
//! enumerates `/proc/self/fd`, and reads the first 64 KiB of every regular file or memfd among
//! them with `pread` at offset 0 (through a fresh open of `/proc/self/fd/N`, so no descriptor's
//! offset moves), and greps. A descriptor one request leaves open is found by the next.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::{Mutex, PoisonError};

use nix::fcntl::OFlag;
use nix::sys::memfd::{MFdFlags, memfd_create};
use serde::Serialize;

use super::scan::Found;

/// Name of planted memfds (shown as `/memfd:isobench-probe` in `/proc/*/fd`).
pub const MEMFD_NAME: &str = "isobench-probe";
/// Most memfds kept open at once (the oldest is closed first).
pub const MAX_HELD: usize = 256;
/// Most descriptors a sweep looks at.
pub const MAX_FDS: usize = 10_000;
/// Most bytes read from each descriptor.
pub const MAX_FD_BYTES: usize = 64 * 1024;

/// The leaked descriptors.
static HELD: Mutex<VecDeque<OwnedFd>> = Mutex::new(VecDeque::new());

/// Creates the memfd, writes the canary and keeps it open; returns the descriptor number.
pub fn plant(canary: &str) -> io::Result<RawFd> {
    // No MFD_CLOEXEC, on purpose: the leak also reaches children.
    let file = File::from(memfd_create(MEMFD_NAME, MFdFlags::empty()).map_err(io::Error::from)?);
    file.write_all_at(canary.as_bytes(), 0)?;
    let fd = file.as_raw_fd();
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    if held.len() >= MAX_HELD {
        held.pop_front();
    }
    held.push_back(file.into());
    Ok(fd)
}

/// What a sweep looked at.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FdSweep {
    /// Descriptors listed in `/proc/self/fd`.
    pub fds: usize,
    /// Regular files and memfds read.
    pub inspected: usize,
    /// Regular files that could not be opened or read.
    pub unreadable: usize,
    /// More than [`MAX_FDS`] descriptors were open.
    pub truncated: bool,
}

/// Greps the start of every regular file this process has open.
pub fn sweep(found: &mut Found) -> FdSweep {
    let mut stats = FdSweep::default();
    let Ok(listing) = fs::read_dir("/proc/self/fd") else { return stats };
    // List first, then look: the listing's own descriptor is gone by then and is skipped.
    let mut fds: Vec<RawFd> = listing.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    if fds.len() > MAX_FDS {
        fds.truncate(MAX_FDS);
        stats.truncated = true;
    }
    stats.fds = fds.len();
    let mut buf = vec![0; MAX_FD_BYTES];
    for fd in fds {
        let path = format!("/proc/self/fd/{fd}");
        // Follows the magic link: sockets, pipes, directories and closed descriptors drop out.
        if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let flags = OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        match OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits())
            .open(&path)
            .and_then(|f| pread_prefix(&f, &mut buf))
        {
            Ok(n) => {
                stats.inspected += 1;
                found.scan(&buf[..n]);
            }
            Err(_) => stats.unreadable += 1,
        }
    }
    stats
}

/// Reads from offset 0 until `buf` is full or the end of the file.
fn pread_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plant_then_sweep_finds_the_open_memfd() {
        let _serial = super::super::test_lock();
        let mut before = Found::new();
        let stats = sweep(&mut before);
        // Only this test's tokens: other tests open files holding canaries (tmp) for a moment.
        assert!(!before.tokens().iter().any(|t| t.contains(":unit:fd:")), "{:?}", before.tokens());
        assert!(stats.fds >= 3, "{stats:?}");

        let canary = "isobench-canary:v1:unit:fd:1";
        let fd = plant(canary).unwrap();
        let target = fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(target.to_string_lossy().starts_with("/memfd:isobench-probe"), "{target:?}");
        let mut found = Found::new();
        let after = sweep(&mut found);
        assert!(found.tokens().iter().any(|t| t == canary), "{:?}", found.tokens());
        assert!(after.inspected >= 1 && after.fds > stats.fds - 1, "{after:?}");
        // Neither the plant (pwrite) nor the sweep (pread through a fresh open) moved its offset.
        let held = HELD.lock().unwrap();
        let file = File::from(held.back().unwrap().try_clone().unwrap());
        assert_eq!(io::Seek::stream_position(&mut &file).unwrap(), 0);
    }
}
