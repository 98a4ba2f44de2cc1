//! The agent's side of the protocol: take an [`Assignment`], drive its slice with
//! [`run_with_intervals`](crate::driver::run_with_intervals), and write the messages.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use isobench_core::backend::{Endpoint, Invoke, TenantTarget};

use crate::agent::wire::{Assignment, Message, PROTOCOL_VERSION, WireEndpoint, WireFinal, WireStats, encode_histogram};
use crate::error::LoadError;

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

/// Drives the assignment's slice and writes `Hello`, an `Interval` per progress interval,
/// and `Final`, one line each, flushed as written. On an error after `Hello`, writes `Failed`
/// before returning it. Opens its connections from the calling process's network namespace,
/// or from `netns` when given.
pub fn serve(
    a: &Assignment,
    invoker: &dyn Fn(&str) -> Option<Arc<dyn Invoke>>,
    netns: Option<&OwnedFd>,
    cancel: &AtomicBool,
    out: &mut dyn Write,
) -> Result<(), ServeError> {
    let mut write = |m: &Message| -> Result<(), ServeError> {
        writeln!(out, "{}", m.to_line()).and_then(|()| out.flush()).map_err(ServeError::Write)
    };
    let result = (|| {
        if a.protocol != PROTOCOL_VERSION {
            return Err(ServeError::Protocol { got: a.protocol });
        }
        write(&Message::Hello { protocol: PROTOCOL_VERSION, slice: a.slice, pid: std::process::id() })?;
        let spec = a.spec.to_spec(a.slice);
        let targets = resolve_targets(a, invoker)?;
        let names: Vec<String> = spec.tenants.iter().map(|t| t.id.clone()).collect();
        let mut write_err = None;
        let report =
            crate::driver::run_with_intervals(&spec, &targets, netns, cancel, &mut |_| {}, &mut |snap, cells| {
                let cells = cells.iter().map(|(t, op, s)| WireStats::from_stats(&names[*t as usize], *op, s)).collect();
                if write_err.is_none()
                    && let Err(e) = write(&Message::Interval { snapshot: *snap, cells })
                {
                    write_err = Some(e);
                }
            })?;
        if let Some(e) = write_err {
            return Err(e);
        }
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
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
        write(&Message::Final(Box::new(fin)))
    })();
    if let Err(e) = &result
        && !matches!(e, ServeError::Write(_))
    {
        let _ = writeln!(out, "{}", Message::Failed { reason: crate::agent::error_chain(e) }.to_line());
        let _ = out.flush();
    }
    result
}
