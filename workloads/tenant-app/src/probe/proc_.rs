//! `proc`: `/proc` visibility of other tenants' processes. Plant starts a *holder*: this binary
//! re-executed (`/proc/self/exe probe-holder <canary>`) with the canary in its argv and in its
//! environment (`ISOBENCH_CANARY=<canary>`, and nothing else of ours: the environment is cleared
//! so the `env` channel's canaries do not leak in here), which sleeps until this process dies
//! (`PR_SET_PDEATHSIG` = SIGKILL) or [`HOLDER_LIFETIME`] passes. Sweep reads `/proc/*/cmdline`
//! and `/proc/*/environ` of every process it can see and greps them: a tenant that can read
//! another tenant's holder shares its pid namespace (and has the ptrace access `environ` needs).
//!
//! At most [`MAX_HOLDERS`] holders live per process; a plant beyond that kills the oldest. Each
//! holder is started and reaped by a small thread of its own, which lives exactly as long as the
//! holder: the death signal fires when the *thread* that forked exits, so a holder started from
//! a pool thread that later retires would die early.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::{Pid, getpid, getppid};
use serde::Serialize;

use super::scan::Found;
use super::tmp::read_prefix;

/// The hidden subcommand a holder runs.
pub const HOLDER_SUBCOMMAND: &str = "probe-holder";
/// The variable that carries the canary in a holder's environment.
pub const HOLDER_ENV: &str = "ISOBENCH_CANARY";
/// The pid of the process that started the holder, so the holder can tell whether it lost its
/// parent before the death signal was armed.
const PARENT_ENV: &str = "ISOBENCH_HOLDER_PARENT";
/// Most holders alive per process.
pub const MAX_HOLDERS: usize = 16;
/// How long a holder lives if its parent does not die first.
pub const HOLDER_LIFETIME: Duration = Duration::from_secs(600);
/// Most processes a sweep looks at.
pub const MAX_PIDS: usize = 32_768;
/// Most bytes read from each `cmdline` and `environ`.
pub const MAX_PROC_BYTES: usize = 64 * 1024;

/// A running holder. `reaped` turns true, under its lock, only once the holder was waited for;
/// until then its pid cannot be reused, so killing it under the lock never hits a stranger.
struct Holder {
    pid: Pid,
    reaped: Arc<Mutex<bool>>,
}

impl Holder {
    fn is_reaped(&self) -> bool {
        *self.reaped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn kill(&self) {
        let reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if !*reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

static HOLDERS: Mutex<VecDeque<Holder>> = Mutex::new(VecDeque::new());

/// A started holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planted {
    pub pid: u32,
    /// Holders of this process alive now, this one included.
    pub alive: usize,
}

/// Starts a holder for `canary` (a valid canary, so it is one plain argument).
pub fn plant(canary: &str) -> io::Result<Planted> {
    // `/proc/self/exe` rather than the path we were started from: it works in any mount
    // namespace and after the binary was replaced; argv[0] says what it is.
    let mut holder = Command::new("/proc/self/exe");
    holder.arg0("tenant-app").arg(HOLDER_SUBCOMMAND).arg(canary);
    spawn_holder(holder, canary)
}

/// Starts `command` as a holder of `canary`: sets its environment, arms the death signal,
/// registers it, and kills the oldest holder beyond [`MAX_HOLDERS`].
pub(crate) fn spawn_holder(mut command: Command, canary: &str) -> io::Result<Planted> {
    let parent = getpid();
    command
        .env_clear()
        .env(HOLDER_ENV, canary)
        .env(PARENT_ENV, parent.to_string())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child between fork and exec, where only
    // async-signal-safe operations are allowed. It makes two system calls (prctl, getppid) and
    // on failure returns an `io::Error` made from a raw errno, which does not allocate; it
    // captures only a `Pid` (Copy) and touches no memory shared with other threads.
    unsafe {
        command.pre_exec(move || {
            prctl::set_pdeathsig(Signal::SIGKILL)?;
            // Our parent died between fork and prctl: the signal will never come; do not exec.
            if getppid() != parent {
                return Err(io::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("probe-holder".into())
        .stack_size(64 * 1024)
        .spawn(move || watch(command, &started_tx))?;
    let holder = started_rx.recv().map_err(|_| io::Error::other("the holder's thread ended early"))??;
    let pid = holder.pid.as_raw() as u32;
    let mut holders = HOLDERS.lock().unwrap_or_else(PoisonError::into_inner);
    holders.retain(|h| !h.is_reaped());
    while holders.len() >= MAX_HOLDERS {
        if let Some(oldest) = holders.pop_front() {
            oldest.kill();
        }
    }
    holders.push_back(holder);
    Ok(Planted { pid, alive: holders.len() })
}

/// The holder's thread: starts it, reports it, waits for it to exit, reaps it.
fn watch(mut command: Command, started: &SyncSender<io::Result<Holder>>) {
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    let reaped = Arc::new(Mutex::new(false));
    let _ = started.send(Ok(Holder { pid, reaped: Arc::clone(&reaped) }));
    // Wait without reaping, so the pid stays taken (a zombie) until `reaped` is set.
    while let Err(Errno::EINTR) = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {}
    let mut reaped = reaped.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = child.wait();
    *reaped = true;
}

/// Kills every holder of this process; returns how many were alive.
pub fn stop_holders() -> usize {
    let mut holders = HOLDERS.lock().unwrap_or_else(PoisonError::into_inner);
    let alive = holders.iter().filter(|h| !h.is_reaped()).count();
    holders.drain(..).for_each(|h| h.kill());
    alive
}

/// The `probe-holder` subcommand: hold the canary (it is in argv and the environment) until the
/// parent dies or [`HOLDER_LIFETIME`] passes.
pub fn run_holder(canary: &str) -> ! {
    // Already armed by the parent before exec; again here in case of another starter.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    let parent = std::env::var(PARENT_ENV).ok().and_then(|p| p.parse::<i32>().ok());
    if parent.is_some_and(|p| getppid().as_raw() != p) {
        std::process::exit(0);
    }
    std::hint::black_box(canary);
    std::thread::sleep(HOLDER_LIFETIME);
    std::process::exit(0)
}

/// What a sweep looked at.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ProcSweep {
    /// Processes listed in `/proc`.
    pub visible_pids: usize,
    pub readable_cmdlines: usize,
    pub readable_environs: usize,
    /// More than [`MAX_PIDS`] processes were visible.
    pub truncated: bool,
}

/// Greps the `cmdline` and `environ` of every visible process.
pub fn sweep(found: &mut Found) -> ProcSweep {
    let mut stats = ProcSweep::default();
    let Ok(listing) = fs::read_dir("/proc") else { return stats };
    let mut buf = vec![0; MAX_PROC_BYTES];
    for entry in listing {
        let Some(pid) = entry.ok().and_then(|e| e.file_name().to_str()?.parse::<u32>().ok()) else { continue };
        if stats.visible_pids >= MAX_PIDS {
            stats.truncated = true;
            break;
        }
        stats.visible_pids += 1;
        if let Ok(n) = read_proc(pid, "cmdline", &mut buf) {
            stats.readable_cmdlines += 1;
            found.scan(&buf[..n]);
        }
        if let Ok(n) = read_proc(pid, "environ", &mut buf) {
            stats.readable_environs += 1;
            found.scan(&buf[..n]);
        }
    }
    stats
}

fn read_proc(pid: u32, file: &str, buf: &mut [u8]) -> io::Result<usize> {
    read_prefix(&mut File::open(format!("/proc/{pid}/{file}"))?, buf)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn holder_command(canary: &str) -> Command {
        // The unit-test binary cannot be a holder: `sleep` with the canary as argv[0] stands in
        // (a process of its own, no children, argv and environment as a holder's).
        let mut command = Command::new("sleep");
        command.arg0(canary).arg("30");
        command
    }

    fn gone_or_zombie(pid: u32) -> bool {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    #[test]
    fn plant_then_sweep_finds_the_holder_and_holders_are_bounded() {
        let _serial = super::super::test_lock();
        // This run's canaries only: the sweep sees the whole host.
        let run = format!("isobench-canary:v1:unit:proc:{:016x}", rand::random::<u64>());
        let mut before = Found::new();
        let stats = sweep(&mut before);
        assert!(!before.tokens().iter().any(|t| t.starts_with(&run)), "{:?}", before.tokens());
        assert!(stats.visible_pids > 1 && stats.readable_cmdlines > 1, "{stats:?}");

        let canary = format!("{run}:0");
        let canary = canary.as_str();
        let first = spawn_holder(holder_command(canary), canary).unwrap();
        let cmdline = fs::read(format!("/proc/{}/cmdline", first.pid)).unwrap();
        assert!(cmdline.starts_with(canary.as_bytes()), "{:?}", String::from_utf8_lossy(&cmdline));
        let environ = fs::read(format!("/proc/{}/environ", first.pid)).unwrap();
        let environ = String::from_utf8(environ).unwrap();
        assert!(environ.split('\0').any(|kv| kv == format!("{HOLDER_ENV}={canary}")), "{environ:?}");
        assert!(!environ.contains("PATH="), "the holder inherited our environment: {environ:?}");
        let mut found = Found::new();
        let after = sweep(&mut found);
        assert!(found.tokens().iter().any(|t| t == canary), "{:?}", found.tokens());
        assert!(after.readable_environs >= 1);

        // Beyond MAX_HOLDERS the oldest is killed.
        let mut last = first;
        for i in 1..=MAX_HOLDERS {
            let canary = format!("{run}:{i}");
            last = spawn_holder(holder_command(&canary), &canary).unwrap();
        }
        assert_eq!(last.alive, MAX_HOLDERS);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !gone_or_zombie(first.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone_or_zombie(first.pid), "the oldest holder survived");
        assert_eq!(stop_holders(), MAX_HOLDERS);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !gone_or_zombie(last.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone_or_zombie(last.pid));
    }
}
