//! The agent's side of the protocol: take an [`Assignment`], drive its slice with
//! [`run_with_intervals`](crate::driver::run_with_intervals), and write the messages.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use isobench_core::backend::{Endpoint, Invoke, TenantTarget};

use crate::agent::wire::{Assignment, Message, PROTOCOL_VERSION, WireEndpoint, WireFinal, WireStats, encode_histogram};
use crate::error::LoadError;
use crate::stats::{OpStats, Snapshot};
use isobench_core::workload_api::Op;

/// Why an agent stopped without `Final`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("assignment of protocol {got}; this agent speaks {PROTOCOL_VERSION}")]
    Protocol { got: u32 },
    #[error("tenant `{tenant}` targets function `{function}`, and this agent has no invoker for it")]
    NoInvoker { tenant: String, function: String },
    #[error("failed to run the slice")]
    Load(#[from] LoadError),
    #[error("failed to write to the harness")]
    Write(#[source] std::io::Error),
}

/// Turns the assignment's targets into endpoints; `invoker` resolves a function by name
/// (`None`: this agent cannot invoke it).
pub fn resolve_targets(
    a: &Assignment,
    invoker: &dyn Fn(&str) -> Option<Arc<dyn Invoke>>,
) -> Result<Vec<TenantTarget>, ServeError> {
    a.targets
        .iter()
        .map(|t| {
            let endpoint = match &t.endpoint {
                WireEndpoint::Http { addr } => Endpoint::Http(*addr),
                WireEndpoint::Function { name } => Endpoint::Function(
                    invoker(name)
                        .ok_or_else(|| ServeError::NoInvoker { tenant: t.tenant.clone(), function: name.clone() })?,
                ),
            };
            Ok(TenantTarget { tenant: t.tenant.clone(), endpoint })
        })
        .collect()
}

/// How often an agent writes an `Interval`: at the first progress tick past it. Intervals are
/// gathered until then, since encoding them is an agent's main cost besides its requests.
pub const INTERVAL: Duration = Duration::from_secs(1);

fn emit(out: &mut dyn Write, m: &Message) -> Result<(), ServeError> {
    writeln!(out, "{}", m.to_line()).and_then(|()| out.flush()).map_err(ServeError::Write)
}

/// Finished requests not yet written, per (tenant index, operation).
type Pending = BTreeMap<(u32, Op), OpStats>;

fn emit_interval(
    out: &mut dyn Write,
    names: &[String],
    snap: &Snapshot,
    pending: &mut Pending,
) -> Result<(), ServeError> {
    let cells =
        std::mem::take(pending).iter().map(|((t, op), s)| WireStats::from_stats(&names[*t as usize], *op, s)).collect();
    emit(out, &Message::Interval { snapshot: *snap, cells })
}

/// Drives the assignment's slice and writes `Hello`, an `Interval` about every [`INTERVAL`]
/// (the last one right before `Final`, so the intervals add up to everything recorded), the
/// assignment's probes' report (`Probes` or `ProbesFailed`; they run beside the slice), and
/// `Final`, one line each, flushed as written. On an error after reading the assignment,
/// writes `Failed` before returning it. Opens its connections from the calling process's
/// network namespace, or from `netns` when given.
pub fn serve(
    a: &Assignment,
    invoker: &dyn Fn(&str) -> Option<Arc<dyn Invoke>>,
    netns: Option<&OwnedFd>,
    cancel: &AtomicBool,
    out: &mut dyn Write,
) -> Result<(), ServeError> {
    let result = drive(a, invoker, netns, cancel, out);
    if let Err(e) = &result
        && !matches!(e, ServeError::Write(_))
    {
        let _ = emit(out, &Message::Failed { reason: crate::agent::error_chain(e) });
    }
    result
}

fn drive(
    a: &Assignment,
    invoker: &dyn Fn(&str) -> Option<Arc<dyn Invoke>>,
    netns: Option<&OwnedFd>,
    cancel: &AtomicBool,
    out: &mut dyn Write,
) -> Result<(), ServeError> {
    if a.protocol != PROTOCOL_VERSION {
        return Err(ServeError::Protocol { got: a.protocol });
    }
    emit(out, &Message::Hello { protocol: PROTOCOL_VERSION, slice: a.slice, pid: std::process::id() })?;
    let spec = a.spec.to_spec(a.slice);
    let targets = resolve_targets(a, invoker)?;
    let names: Vec<String> = spec.tenants.iter().map(|t| t.id.clone()).collect();
    let mut write_err = None;
    let mut pending = Pending::new();
    let mut last: Option<Snapshot> = None;
    let mut written_at = Duration::ZERO;
    let mut on_interval = |snap: &Snapshot, cells: crate::IntervalCells| {
        for (t, op, s) in cells {
            pending.entry((t, op)).or_default().merge(&s);
        }
        last = Some(*snap);
        if write_err.is_none() && snap.elapsed >= written_at + INTERVAL {
            written_at = snap.elapsed;
            write_err = emit_interval(out, &names, snap, &mut pending).err();
        }
    };
    let probe_spec = a.probes.as_ref().map(|p| p.to_spec());
    // The probes run beside the slice, as in the harness, and are reported before `Final`.
    let (report, probes) = std::thread::scope(|s| {
        let probes = probe_spec.map(|p| {
            let targets = &targets;
            s.spawn(move || isobench_probes::run(&p?, targets, netns, cancel))
        });
        let report = crate::driver::run_with_intervals(&spec, &targets, netns, cancel, &mut |_| {}, &mut on_interval);
        (report, probes.map(|h| h.join().expect("the probe thread does not panic")))
    });
    let report = report?;
    if let Some(e) = write_err {
        return Err(e);
    }
    if let Some(snap) = last
        && !pending.is_empty()
    {
        emit_interval(out, &names, &snap, &mut pending)?;
    }
    match probes {
        Some(Ok(report)) => emit(out, &Message::Probes { report: Box::new(report) })?,
        Some(Err(e)) => emit(out, &Message::ProbesFailed { reason: crate::agent::error_chain(&e) })?,
        None => {}
    }
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let fin = WireFinal {
        cells: report.per.iter().map(|((t, op), s)| WireStats::from_stats(t, *op, s)).collect(),
        wall_ns: ns(report.wall),
        started_at_unix_ns: report.started_at_unix_ns,
        dispatch_window_ns: ns(report.dispatch_window),
        cancelled: report.cancelled,
        achieved_rate: report.achieved_rate,
        ok_rate: report.ok_rate,
        connections_opened: report.connections_opened,
        release_lag: encode_histogram(&report.release_lag),
    };
    emit(out, &Message::Final(Box::new(fin)))
}
