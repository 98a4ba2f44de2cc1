//! nftables through the `nft` tool: one `nft -f -` process per change, run *inside* a network
//! namespace the harness owns, fed a whole script at once.
//!
//! Why a process and not netlink: the nf_tables netlink protocol (expressions, sets, batches
//! with generation ids) is large, and the one maintained pure-Rust client (`rustables`) would
//! be a second netlink stack beside [`crate::netlink`] for a few calls per deploy. A tier
//! therefore changes its rules in one batch per deploy and per teardown (and per task that
//! starts or stops alone), never per rule: the script declares named sets (security-group
//! members), and starting tasks only adds set elements. One `nft` run costs ~2–5 ms here, once
//! per deploy; see the ECS tests for measured figures.
//!
//! The process is forked with `setns(CLONE_NEWNET)` to the target namespace in `pre_exec`
//! (async-signal-safe), so it can be run from any thread; nothing ever touches the host's own
//! ruleset.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where `nft` is looked for, after `$PATH`.
const SBIN: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"];

/// The `nft` executable, if installed.
pub(crate) fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(SBIN.iter().map(PathBuf::from)).map(|d| d.join("nft")).find(|p| p.is_file())
}

/// `nft` failed, with what it said.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("run {}", exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("apply the nftables script ({status}): {stderr}")]
    Rejected { status: String, stderr: String },
}

/// Runs `nft -f -` with `script` on stdin, inside the network namespace `netns`; returns how
/// long it took (spawn to exit).
pub(crate) fn apply(nft: &Path, netns: &OwnedFd, script: &str) -> Result<Duration, NftError> {
    let t0 = Instant::now();
    let spawn = |e| NftError::Spawn { exe: nft.to_path_buf(), source: e };
    let mut cmd = Command::new(nft);
    cmd.args(["-f", "-"])
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let fd = netns.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls setns(2), which
    // is async-signal-safe; `fd` stays open in the child (it is inherited, close-on-exec only
    // at exec) and refers to a network namespace.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(spawn)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let written = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().map_err(spawn)?;
    if !out.status.success() {
        return Err(NftError::Rejected {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    written.map_err(spawn)?;
    Ok(t0.elapsed())
}
