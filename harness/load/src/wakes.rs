//! Wakes the dispatcher hands to a runtime once per release batch instead of once per request.
//!
//! Waking a task from another thread is a syscall: tokio pushes it onto the runtime's shared
//! queue and writes the driver's `eventfd`. The dispatcher releases a batch of requests each
//! time it wakes, and each request woke one connection task, so at 128k req/s that was 128k
//! `eventfd` writes a second on the generator's core. A connection task now waits for its next
//! request through a [`TaskWake`]: woken on the dispatcher thread it only notes the task in its
//! runtime's [`DeferredWakes`], and the dispatcher's [`DeferredWakes::flush`] after the batch
//! wakes the runtime's flusher task once, which wakes the noted tasks from inside the runtime
//! (a local wake, no syscall). Woken on any other thread it wakes the task at once.

use std::cell::Cell;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

thread_local! {
    /// Set on the dispatcher thread: its wakes wait for its next flush.
    static DEFER: Cell<bool> = const { Cell::new(false) };
}

/// Makes [`TaskWake`]s woken on the calling thread wait for a [`DeferredWakes::flush`]; the
/// caller must flush every runtime after each batch and before it stops.
pub(crate) fn defer_on_this_thread() {
    DEFER.with(|d| d.set(true));
}

/// The wakes waiting for one runtime's flusher.
#[derive(Default)]
pub(crate) struct DeferredWakes {
    pending: Mutex<Vec<Arc<TaskWaker>>>,
    /// The flusher task's waker, once it first ran.
    flusher: Mutex<Option<Waker>>,
}

impl DeferredWakes {
    /// Hands the wakes noted so far to the runtime: one cross-thread wake, if any are waiting.
    pub(crate) fn flush(&self) {
        if lock(&self.pending).is_empty() {
            return;
        }
        if let Some(w) = lock(&self.flusher).as_ref() {
            w.wake_by_ref();
        }
    }

    /// The flusher: runs on the runtime for as long as the runtime does, waking noted tasks
    /// from inside it whenever [`DeferredWakes::flush`] wakes it.
    pub(crate) async fn run_flusher(self: Arc<Self>) {
        let mut batch = Vec::new();
        std::future::poll_fn(|cx| {
            // Registered before taking the batch: a task noted after the take is followed by a
            // flush that finds this waker.
            *lock(&self.flusher) = Some(cx.waker().clone());
            std::mem::swap(&mut batch, &mut *lock(&self.pending));
            batch.drain(..).for_each(|t| t.wake_now());
            Poll::<()>::Pending
        })
        .await;
    }
}

/// How a connection task waits for its next request (see the module docs).
pub(crate) struct TaskWake {
    waker: Waker,
    inner: Arc<TaskWaker>,
}

impl TaskWake {
    /// For a task of the runtime `wakes` belongs to.
    pub(crate) fn new(wakes: &Arc<DeferredWakes>) -> TaskWake {
        let inner = Arc::new(TaskWaker { task: Mutex::new(None), wakes: Arc::clone(wakes) });
        TaskWake { waker: Waker::from(Arc::clone(&inner)), inner }
    }

    /// Runs `fut` with this waker standing in for the task's own.
    pub(crate) async fn wait<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| {
            {
                let mut slot = lock(&self.inner.task);
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *slot = Some(cx.waker().clone());
                }
            }
            fut.as_mut().poll(&mut Context::from_waker(&self.waker))
        })
        .await
    }
}

struct TaskWaker {
    /// The task's own waker, from its last wait.
    task: Mutex<Option<Waker>>,
    wakes: Arc<DeferredWakes>,
}

impl TaskWaker {
    fn wake_now(&self) {
        if let Some(w) = lock(&self.task).take() {
            w.wake();
        }
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if DEFER.with(Cell::get) {
            lock(&self.wakes.pending).push(Arc::clone(self));
        } else {
            self.wake_now();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtimes::Runtimes;

    /// A task woken on a deferring thread waits for the flush; one woken elsewhere does not.
    #[test]
    fn deferred_wakes_wait_for_the_flush() {
        let failure = Arc::default();
        let rts = Runtimes::new(1, false, false, None, &failure).unwrap();
        let (jobs, queue) = async_channel::unbounded::<u32>();
        let (got, received) = std::sync::mpsc::channel();
        let (runtime, wakes) = rts.for_connection();
        let wake = TaskWake::new(wakes);
        runtime.spawn(async move {
            while let Ok(n) = wake.wait(queue.recv()).await {
                let _ = got.send(n);
            }
        });
        let (rts_ref, jobs_ref) = (&rts, &jobs);
        let received = std::thread::scope(|s| {
            s.spawn(move || {
                defer_on_this_thread();
                // Let the task reach its wait, so that the send below wakes it.
                std::thread::sleep(Duration::from_millis(50));
                jobs_ref.try_send(1).unwrap();
                assert!(received.recv_timeout(Duration::from_millis(200)).is_err(), "woken before the flush");
                rts_ref.flush_wakes();
                assert_eq!(received.recv_timeout(Duration::from_secs(5)), Ok(1));
                received
            })
            .join()
            .unwrap()
        });
        // This thread does not defer: the task is woken at once.
        jobs.try_send(2).unwrap();
        assert_eq!(received.recv_timeout(Duration::from_secs(5)), Ok(2));
        drop(jobs);
        rts.shutdown();
    }
}
