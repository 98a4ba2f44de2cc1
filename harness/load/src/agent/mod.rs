//! Load agents: the driver as a process that takes its share of a run and streams back what
//! it measured, and the harness's exact merge of what the agents said.
//!
//! # Protocol
//! Transport-neutral: the harness gives an agent one [`Assignment`] (a JSON document: the
//! run's load spec, the agent's [`Slice`], and each tenant's target), and the agent answers
//! with newline-delimited JSON [`Message`]s: `Hello`, an `Interval` about every second (the
//! requests finished in it, per (tenant, operation), counters and HdrHistograms in V2 deflate
//! encoding, base64), then `Final` (its complete figures) or `Failed`. Locally the lines travel
//! over a child's pipes; on AWS they can travel through objects in a bucket.
//!
//! # Slicing
//! Every agent walks the same seeded [`Schedule`](crate::Schedule) and keeps the requests
//! whose global sequence number is its index modulo the number of agents, so N agents plan
//! exactly the requests of one driver, request for request (same tenants, operations, keys and
//! intended times); each one's `dispatched` and `not_sent` count its slice only.
//!
//! # Merge
//! [`merge()`] adds the agents' figures (histograms add, counters add) into one
//! [`LoadReport`](crate::LoadReport), so the accounting identities hold over the union as they
//! hold for each agent. An agent that dies keeps what it streamed, and the rest of its slice
//! is counted as not sent (see the module [`merge`](mod@merge)).

pub mod merge;
pub mod serve;
pub mod wire;

pub use crate::schedule::Slice;
pub use merge::{
    AgentEnd, AgentFigures, AgentLog, PROBE_AGENT, merge, merged_snapshot, planned_slice, probe_outcome, probe_slack,
};
pub use serve::{ServeError, resolve_targets, serve};
pub use wire::{Assignment, Message, PROTOCOL_VERSION, WireEndpoint, WireError, WireSpec, WireTarget};

/// An error and its sources, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
