//! Where the driver's tasks run: HTTP connection tasks on one single-threaded tokio runtime
//! per core (each driven by its own thread), function invokes on a multi-threaded runtime.
//!
//! A connection task only ever waits on its own socket, so it gains nothing from work stealing,
//! and a single-threaded runtime wakes and polls it for less: no shared run queue, no other
//! worker to notify. Invokes stay on a multi-threaded runtime because a backend's invoke may
//! block its thread for a while, and other invokes must keep going meanwhile.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

use crate::error::LoadError;
use crate::netns;
use crate::wakes::DeferredWakes;

/// One single-threaded runtime and the thread that drives it.
struct Core {
    handle: Handle,
    /// The dispatcher's wakes for this runtime's tasks, and the flusher that delivers them.
    wakes: Arc<DeferredWakes>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The runtimes of one run.
pub(crate) struct Runtimes {
    cores: Vec<Core>,
    /// Round robin over `cores` for new connection tasks.
    next: AtomicUsize,
    functions: Option<Runtime>,
}

impl Runtimes {
    /// `threads` single-threaded runtimes for connections (0: one per CPU this process may run
    /// on), at real-time priority when `realtime`, and a multi-threaded one with as many
    /// workers when `functions`. Every thread joins `netns` first, if given; a failure to is
    /// recorded in `netns_failure`.
    pub(crate) fn new(
        threads: usize,
        realtime: bool,
        functions: bool,
        netns: Option<Arc<OwnedFd>>,
        netns_failure: &Arc<OnceLock<nix::Error>>,
    ) -> Result<Runtimes, LoadError> {
        let threads = if threads > 0 { threads } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
        let on_start = {
            let (netns, failure) = (netns.clone(), Arc::clone(netns_failure));
            move || {
                if let Some(fd) = &netns
                    && let Err(e) = netns::enter(fd)
                {
                    let _ = failure.set(e);
                }
            }
        };
        let built = |b: &mut Builder| {
            b.enable_all().thread_name("isobench-load").on_thread_start(on_start.clone());
            b.build().map_err(|source| LoadError::Setup { what: "build the tokio runtime", source })
        };
        let mut cores = Vec::with_capacity(threads);
        for i in 0..threads {
            let rt = built(&mut Builder::new_current_thread())?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let on_start = on_start.clone();
            let thread = std::thread::Builder::new()
                .name(format!("isobench-load-{i}"))
                .spawn(move || {
                    // This thread is the runtime's worker: it joins the namespace itself.
                    on_start();
                    if realtime && let Err(e) = realtime_priority() {
                        tracing::warn!(
                            "cannot give a connection thread a real-time priority ({e}); continuing without"
                        );
                    }
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                    rt.shutdown_timeout(Duration::from_millis(100));
                })
                .map_err(|source| LoadError::Setup { what: "start a runtime thread", source })?;
            let wakes = Arc::new(DeferredWakes::default());
            handle.spawn(Arc::clone(&wakes).run_flusher());
            cores.push(Core { handle, wakes, stop: Some(stop), thread: Some(thread) });
        }
        let functions = if functions {
            let mut b = Builder::new_multi_thread();
            b.worker_threads(threads);
            Some(built(&mut b)?)
        } else {
            None
        };
        Ok(Runtimes { cores, next: AtomicUsize::new(0), functions })
    }

    /// Where the next connection task goes (the runtimes take turns), and where the wakes of
    /// a task there wait for [`Runtimes::flush_wakes`].
    pub(crate) fn for_connection(&self) -> (&Handle, &Arc<DeferredWakes>) {
        let core = &self.cores[self.next.fetch_add(1, Ordering::Relaxed) % self.cores.len()];
        (&core.handle, &core.wakes)
    }

    /// Delivers the wakes deferred on the calling thread: one cross-thread wake per runtime.
    pub(crate) fn flush_wakes(&self) {
        self.cores.iter().for_each(|c| c.wakes.flush());
    }

    /// Where invoke tasks go.
    pub(crate) fn for_functions(&self) -> &Handle {
        self.functions.as_ref().map_or(&self.cores[0].handle, |r| r.handle())
    }

    /// Stops every runtime, giving tasks still running a moment to end.
    pub(crate) fn shutdown(mut self) {
        for c in &mut self.cores {
            if let Some(stop) = c.stop.take() {
                let _ = stop.send(());
            }
        }
        for c in &mut self.cores {
            if let Some(t) = c.thread.take() {
                let _ = t.join();
            }
        }
        if let Some(rt) = self.functions.take() {
            rt.shutdown_timeout(Duration::from_millis(100));
        }
    }
}

impl Drop for Runtimes {
    fn drop(&mut self) {
        // An early return (an error, a panic) still stops the threads.
        for c in &mut self.cores {
            if let Some(stop) = c.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

/// Moves the calling thread to `SCHED_FIFO` priority 1, the lowest real-time priority: it
/// then preempts ordinary threads as soon as it wakes. The generator's threads sleep or wait
/// on their sockets between requests and spin at most a few microseconds, so at a rate the
/// core can carry they starve nothing (and the kernel's real-time throttling stops a thread
/// that tries). Needs `CAP_SYS_NICE`.
pub(crate) fn realtime_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `sched_setscheduler` reads the `sched_param` we pass by reference for the
    // duration of the call; pid 0 means the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connection tasks take turns over the runtimes, each on its own thread.
    #[test]
    fn connections_spread_over_one_runtime_per_thread() {
        let failure = Arc::default();
        let rts = Runtimes::new(2, false, false, None, &failure).unwrap();
        let names: Vec<String> = (0..4)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel();
                rts.for_connection().0.spawn(async move {
                    let _ = tx.send(std::thread::current().name().unwrap_or_default().to_owned());
                });
                rx.recv_timeout(Duration::from_secs(5)).unwrap()
            })
            .collect();
        assert_eq!(names, ["isobench-load-0", "isobench-load-1", "isobench-load-0", "isobench-load-1"]);
        assert!(rts.functions.is_none());
        rts.shutdown();
    }

    /// `realtime` puts the connection threads at `SCHED_FIFO` (needs root: CI runs as root).
    #[test]
    fn realtime_connection_threads_run_at_fifo_priority() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "CI must run this as root");
            eprintln!("skipped: setting a real-time priority needs root");
            return;
        }
        let failure = Arc::default();
        for (realtime, want) in [(true, libc::SCHED_FIFO), (false, libc::SCHED_OTHER)] {
            let rts = Runtimes::new(1, realtime, false, None, &failure).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            rts.for_connection().0.spawn(async move {
                // SAFETY: reads the calling thread's policy; no pointers involved.
                let _ = tx.send(unsafe { libc::sched_getscheduler(0) });
            });
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), want, "realtime {realtime}");
            rts.shutdown();
        }
    }
}
