//! An agent task's session over the bucket: the orders the harness gives it (the document put
//! at deploy time, then lines sent on its `in/` stream) and the agent's side of them. The
//! agents are started once per run, before the first tier has targets, so they start on
//! [`Order::Standby`] and get one [`Order::Drive`] per tier (the agent protocol's
//! [`Assignment`] and how to invoke the tier's functions), then [`Order::Stop`].

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isobench_core::backend::{Invoke, PayloadContract};
use isobench_load::agent::Assignment;
use serde::{Deserialize, Serialize};

use super::transport::AgentSink;
use crate::error::ApiError;

/// What the harness asks of an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "order", rename_all = "lowercase")]
pub enum Order {
    /// Wait for the next order (the document an agent starts with).
    Standby,
    /// Drive one tier's slice and report it on the agent's stream.
    Drive {
        tier: String,
        assignment: Box<Assignment>,
        /// How to invoke each function the assignment names.
        #[serde(default)]
        functions: Vec<FunctionRef>,
    },
    /// Stop the slice being driven (if any) and end the session.
    Stop,
}

/// A function an agent invokes through the SDK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRef {
    pub name: String,
    /// Tenant isolation mode: every invoke carries the tenant's id.
    pub tenant_ids: bool,
    pub contract: PayloadContract,
}

impl Order {
    /// One line of JSON, with its newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("orders serialise");
        v.push(b'\n');
        v
    }

    pub fn from_bytes(b: &[u8]) -> Result<Order, SessionError> {
        serde_json::from_slice(b).map_err(|e| SessionError::Order(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("not an agent order: {0}")]
    Order(String),
    #[error("failed to read the agent's orders")]
    Api(#[from] ApiError),
}

/// How often the courier looks for new orders.
const INBOX_POLL: Duration = Duration::from_secs(1);

enum Out {
    Bytes(Vec<u8>),
    Flush,
    /// Put what is left and stop (writers may still be held).
    End,
}

/// Carries the agent's lines to its stream and its orders back, on a thread of its own (the
/// load driver writes from inside its own runtime, where blocking on another is not allowed).
/// Every flush is one chunk.
pub struct Courier {
    tx: mpsc::Sender<Out>,
    orders: mpsc::Receiver<Order>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A `Write` into the courier: bytes are put as a chunk at each flush.
pub struct CourierWriter {
    tx: mpsc::Sender<Out>,
}

impl Write for CourierWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx.send(Out::Bytes(buf.to_vec())).map_err(|_| std::io::Error::other("the courier has stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tx.send(Out::Flush).map_err(|_| std::io::Error::other("the courier has stopped"))
    }
}

impl Courier {
    /// Starts the courier for `sink` on `rt`; a `Stop` order also sets `cancel`.
    pub fn start(sink: AgentSink, rt: tokio::runtime::Handle, cancel: Arc<AtomicBool>) -> Courier {
        let (tx, rx) = mpsc::channel();
        let (otx, orders) = mpsc::channel();
        let thread = std::thread::spawn(move || carry(sink, &rt, &rx, &otx, &cancel));
        Courier { tx, orders, thread: Some(thread) }
    }

    /// The next order the harness sent, if one comes within `wait`.
    pub fn next_order(&self, wait: Duration) -> Option<Order> {
        self.orders.recv_timeout(wait).ok()
    }

    pub fn writer(&self) -> CourierWriter {
        CourierWriter { tx: self.tx.clone() }
    }

    /// Puts what is left and stops the courier.
    pub fn finish(mut self) {
        let _ = self.tx.send(Out::End);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn carry(
    mut sink: AgentSink,
    rt: &tokio::runtime::Handle,
    rx: &mpsc::Receiver<Out>,
    orders: &mpsc::Sender<Order>,
    cancel: &AtomicBool,
) {
    let mut buf = Vec::new();
    let mut polled = Instant::now() - INBOX_POLL;
    let put = |buf: &mut Vec<u8>, sink: &mut AgentSink| {
        if let Err(e) = rt.block_on(sink.put(buf)) {
            tracing::warn!("agent: failed to put a chunk: {e}");
        }
        buf.clear();
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Out::Bytes(b)) => buf.extend_from_slice(&b),
            Ok(Out::Flush) => put(&mut buf, &mut sink),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(Out::End) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                put(&mut buf, &mut sink);
                return;
            }
        }
        if polled.elapsed() >= INBOX_POLL {
            polled = Instant::now();
            let lines = match rt.block_on(sink.received()) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("agent: failed to read orders: {e}");
                    continue;
                }
            };
            for line in lines {
                match Order::from_bytes(&line) {
                    Ok(o) => {
                        if matches!(o, Order::Stop) {
                            cancel.store(true, Ordering::SeqCst);
                        }
                        let _ = orders.send(o);
                    }
                    Err(e) => tracing::warn!("agent: {e}"),
                }
            }
        }
    }
}

/// Resolves a function an order names into an invoker.
pub type Connect<'a> = dyn Fn(&FunctionRef) -> Result<Arc<dyn Invoke>, String> + 'a;

/// The agent's session: reads the document put for it, then follows its orders, driving each
/// tier's slice with [`isobench_load::agent::serve`] and writing through the courier, until
/// `Stop`, `cancel`, or `idle` without an order.
pub fn run_agent(
    sink: AgentSink,
    rt: &tokio::runtime::Handle,
    connect: &Connect<'_>,
    cancel: Arc<AtomicBool>,
    idle: Duration,
) -> Result<(), SessionError> {
    let first = Order::from_bytes(&rt.block_on(sink.assignment())?)?;
    let stop = Arc::new(AtomicBool::new(false));
    let courier = Courier::start(sink, rt.clone(), stop.clone());
    let mut queue = VecDeque::from([first]);
    let mut last = Instant::now();
    loop {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        let order = match queue.pop_front() {
            Some(o) => o,
            None => match courier.orders.recv_timeout(Duration::from_millis(200)) {
                Ok(o) => o,
                Err(mpsc::RecvTimeoutError::Timeout) if last.elapsed() >= idle => break,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        match order {
            Order::Standby => {}
            Order::Stop => break,
            Order::Drive { tier, assignment, functions } => {
                tracing::info!("agent: driving tier {tier}");
                drive(&courier, &assignment, &functions, connect, &cancel, &stop);
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
        last = Instant::now();
    }
    courier.finish();
    Ok(())
}

/// One tier's slice; a failure is on the stream as `Failed` already, so it is only logged.
fn drive(
    courier: &Courier,
    a: &Assignment,
    functions: &[FunctionRef],
    connect: &Connect<'_>,
    cancel: &AtomicBool,
    stop: &AtomicBool,
) {
    let mut out = courier.writer();
    let mut invokers: BTreeMap<String, Arc<dyn Invoke>> = BTreeMap::new();
    for f in functions {
        match connect(f) {
            Ok(i) => {
                invokers.insert(f.name.clone(), i);
            }
            Err(e) => tracing::warn!("agent: cannot invoke {}: {e}", f.name),
        }
    }
    // Either flag stops the slice: the process's signal or the harness's `Stop`.
    let both = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if cancel.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
                    both.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let r = isobench_load::agent::serve(a, &|name| invokers.get(name).cloned(), None, &both, &mut out);
        done.store(true, Ordering::SeqCst);
        if let Err(e) = r {
            tracing::warn!("agent: the slice failed: {e}");
        }
    });
}
