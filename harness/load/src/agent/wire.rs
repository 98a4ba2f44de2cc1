//! The agent protocol's data: an [`Assignment`] in, a stream of [`Message`]s out, each one
//! JSON document on its own line. Nothing here knows how the lines travel (a child's pipes
//! locally, objects in a bucket on AWS).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use isobench_core::arrivals::{BurstSpec, PhaseSpec, Shape};
use isobench_core::scenario::{Arrival, MixSpec, TenantSpec};
use isobench_core::workload_api::Op;
use isobench_probes::{ProbeReport, ProbeSpec, WireProbeSpec};
use serde::{Deserialize, Serialize};

use crate::hist::Hist;
use crate::schedule::Slice;
use crate::spec::{LoadSpec, TestHooks};
use crate::stats::{ErrorKind, OpStats, Snapshot};

/// Version of the protocol; an agent refuses an assignment of another, and the harness an
/// agent whose `Hello` says another. 2: an assignment may carry probes, answered by `Probes`
/// or `ProbesFailed` before `Final`.
pub const PROTOCOL_VERSION: u32 = 2;

/// What one agent is asked to drive: the run's load spec, its slice, and where each tenant's
/// requests go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub protocol: u32,
    pub spec: WireSpec,
    /// This agent's share of the schedule.
    pub slice: Slice,
    pub targets: Vec<WireTarget>,
    /// The tier's probes, for the one agent that runs them beside its slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<WireProbeSpec>,
}

/// [`LoadSpec`] as data (durations in nanoseconds); test hooks do not travel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireSpec {
    pub label: String,
    pub duration_ns: u64,
    pub rate: f64,
    pub arrival: Arrival,
    pub seed: u64,
    pub tenants: Vec<WireTenant>,
    pub mix: MixSpec,
    pub timeout_ns: u64,
    pub max_connections: usize,
    pub compute_us: u64,
    pub record_size: usize,
    pub keys_per_tenant: u32,
    pub worker_threads: usize,
    pub realtime: bool,
    pub shape: WireShape,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTenant {
    pub id: String,
    pub weight: f64,
}

/// [`Shape`] as data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WireShape {
    Steady,
    Cycle { phases: Vec<PhaseSpec>, burst: Option<BurstSpec> },
    Trace { per_tenant: Vec<Vec<u64>>, minute_ns: u64 },
}

/// Where one tenant's requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTarget {
    pub tenant: String,
    pub endpoint: WireEndpoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WireEndpoint {
    /// An HTTP/1.1 server the agent connects to from its own network.
    Http { addr: SocketAddr },
    /// A function the agent invokes by name, through an invoker its host provides (the AWS
    /// SDK on AWS); locally, function tiers are not driven by agents.
    Function { name: String },
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl WireSpec {
    pub fn from_spec(s: &LoadSpec) -> WireSpec {
        WireSpec {
            label: s.label.clone(),
            duration_ns: ns(s.duration),
            rate: s.rate,
            arrival: s.arrival,
            seed: s.seed,
            tenants: s.tenants.iter().map(|t| WireTenant { id: t.id.clone(), weight: t.weight }).collect(),
            mix: s.mix.clone(),
            timeout_ns: ns(s.timeout),
            max_connections: s.max_connections,
            compute_us: s.compute_us,
            record_size: s.record_size,
            keys_per_tenant: s.keys_per_tenant,
            worker_threads: s.worker_threads,
            realtime: s.realtime,
            shape: match &s.shape {
                Shape::Steady => WireShape::Steady,
                Shape::Cycle { phases, burst } => WireShape::Cycle { phases: phases.clone(), burst: burst.clone() },
                Shape::Trace { per_tenant, minute } => {
                    WireShape::Trace { per_tenant: per_tenant.as_ref().clone(), minute_ns: ns(*minute) }
                }
            },
        }
    }

    /// The spec of `slice` of this run.
    pub fn to_spec(&self, slice: Slice) -> LoadSpec {
        LoadSpec {
            label: self.label.clone(),
            duration: Duration::from_nanos(self.duration_ns),
            rate: self.rate,
            arrival: self.arrival,
            seed: self.seed,
            tenants: self.tenants.iter().map(|t| TenantSpec { id: t.id.clone(), weight: t.weight }).collect(),
            mix: self.mix.clone(),
            timeout: Duration::from_nanos(self.timeout_ns),
            max_connections: self.max_connections,
            compute_us: self.compute_us,
            record_size: self.record_size,
            keys_per_tenant: self.keys_per_tenant,
            worker_threads: self.worker_threads,
            realtime: self.realtime,
            shape: match &self.shape {
                WireShape::Steady => Shape::Steady,
                WireShape::Cycle { phases, burst } => Shape::Cycle { phases: phases.clone(), burst: burst.clone() },
                WireShape::Trace { per_tenant, minute_ns } => Shape::Trace {
                    per_tenant: std::sync::Arc::new(per_tenant.clone()),
                    minute: Duration::from_nanos(*minute_ns),
                },
            },
            hooks: TestHooks::default(),
            slice,
        }
    }
}

/// One line an agent writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Message {
    /// First line: the agent took its assignment.
    Hello { protocol: u32, slice: Slice, pid: u32 },
    /// The requests that finished since the previous interval, and the agent's live counters.
    Interval { snapshot: Snapshot, cells: Vec<WireStats> },
    /// The probes of the assignment ran: their report (before `Final`).
    Probes { report: Box<ProbeReport> },
    /// The probes of the assignment could not run (before `Final`).
    ProbesFailed { reason: String },
    /// Last line of an agent that finished: its complete figures (they replace its intervals).
    Final(Box<WireFinal>),
    /// The agent could not run its slice (bad assignment, a setup failure); last line.
    Failed { reason: String },
}

/// The complete result of one agent's slice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireFinal {
    pub cells: Vec<WireStats>,
    pub wall_ns: u64,
    pub started_at_unix_ns: u64,
    pub dispatch_window_ns: u64,
    pub cancelled: bool,
    pub achieved_rate: f64,
    pub ok_rate: f64,
    pub connections_opened: u64,
    /// Base64 of the V2-deflate-encoded release-lag histogram.
    pub release_lag: String,
}

/// One (tenant, operation)'s [`OpStats`]: its counters, and each non-empty histogram in
/// HdrHistogram's V2 deflate encoding, base64, by measure name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireStats {
    pub tenant: String,
    pub op: Op,
    pub dispatched: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub timeouts: u64,
    pub not_found: u64,
    pub not_sent: u64,
    pub sent_in_window: u64,
    pub ok_in_window: u64,
    pub abandoned: u64,
    pub cold: u64,
    pub streamed: u64,
    pub billed_ms_total: u64,
    pub billed_invokes: u64,
    pub billed_mb_ms_total: u64,
    pub memory_mb: Option<u32>,
    pub histograms: BTreeMap<String, String>,
}

/// Why a line could not be read as protocol data.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("bad JSON line")]
    Json(#[from] serde_json::Error),
    #[error("refused: the agent speaks protocol {got}, the harness {PROTOCOL_VERSION}")]
    Protocol { got: u32 },
    #[error("bad histogram `{measure}`: {reason}")]
    Histogram { measure: String, reason: String },
}

pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut raw = Vec::new();
    // Writing to a Vec fails only on a histogram the serializer cannot encode, never here.
    let _ = V2DeflateSerializer::new().serialize(h, &mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

pub fn decode_histogram(measure: &str, s: &str) -> Result<Histogram<u64>, WireError> {
    let bad = |reason: String| WireError::Histogram { measure: measure.into(), reason };
    let raw = base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| bad(e.to_string()))?;
    let h: Histogram<u64> = Deserializer::new().deserialize(&mut &raw[..]).map_err(|e| bad(format!("{e:?}")))?;
    Ok(h)
}

/// Every histogram of an [`OpStats`] by measure name, `timed_out` included.
fn hists_mut(s: &mut OpStats) -> [(&'static str, &mut Hist); 13] {
    [
        ("corrected", &mut s.corrected),
        ("uncorrected", &mut s.uncorrected),
        ("lag", &mut s.lag),
        ("waited_lag", &mut s.waited_lag),
        ("waited_own_lag", &mut s.waited_own_lag),
        ("waited_connection_wait", &mut s.waited_connection_wait),
        ("timed_out", &mut s.timed_out),
        ("corrected_cold", &mut s.corrected_cold),
        ("corrected_warm", &mut s.corrected_warm),
        ("uncorrected_cold", &mut s.uncorrected_cold),
        ("uncorrected_warm", &mut s.uncorrected_warm),
        ("init", &mut s.init),
        ("ttfb", &mut s.ttfb),
    ]
}

impl WireStats {
    pub fn from_stats(tenant: &str, op: Op, s: &OpStats) -> WireStats {
        let mut copy = s.clone();
        let histograms = hists_mut(&mut copy)
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(m, h)| (m.to_string(), encode_histogram(&h.histogram())))
            .collect();
        WireStats {
            tenant: tenant.into(),
            op,
            dispatched: s.dispatched,
            sent: s.sent,
            ok: s.ok,
            errors: s.errors.clone(),
            timeouts: s.timeouts,
            not_found: s.not_found,
            not_sent: s.not_sent,
            sent_in_window: s.sent_in_window,
            ok_in_window: s.ok_in_window,
            abandoned: s.abandoned,
            cold: s.cold,
            streamed: s.streamed,
            billed_ms_total: s.billed_ms_total,
            billed_invokes: s.billed_invokes,
            billed_mb_ms_total: s.billed_mb_ms_total,
            memory_mb: s.memory_mb,
            histograms,
        }
    }

    pub fn to_stats(&self) -> Result<OpStats, WireError> {
        let mut s = OpStats {
            dispatched: self.dispatched,
            sent: self.sent,
            ok: self.ok,
            errors: self.errors.clone(),
            timeouts: self.timeouts,
            not_found: self.not_found,
            not_sent: self.not_sent,
            sent_in_window: self.sent_in_window,
            ok_in_window: self.ok_in_window,
            abandoned: self.abandoned,
            cold: self.cold,
            streamed: self.streamed,
            billed_ms_total: self.billed_ms_total,
            billed_invokes: self.billed_invokes,
            billed_mb_ms_total: self.billed_mb_ms_total,
            memory_mb: self.memory_mb,
            ..OpStats::default()
        };
        for (measure, h) in hists_mut(&mut s) {
            if let Some(enc) = self.histograms.get(measure) {
                h.add_histogram(&decode_histogram(measure, enc)?);
            }
        }
        Ok(s)
    }
}

impl Assignment {
    /// The assignment of `slice` of `spec`'s run to `targets`.
    pub fn new(spec: &LoadSpec, slice: Slice, targets: Vec<WireTarget>) -> Assignment {
        Assignment { protocol: PROTOCOL_VERSION, spec: WireSpec::from_spec(spec), slice, targets, probes: None }
    }

    /// This assignment, with the tier's probes to run beside the slice.
    pub fn with_probes(mut self, probes: &ProbeSpec) -> Assignment {
        self.probes = Some(WireProbeSpec::from_spec(probes));
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("assignments serialise")
    }

    pub fn from_json(s: &str) -> Result<Assignment, WireError> {
        Ok(serde_json::from_str(s)?)
    }
}

impl Message {
    /// One line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("protocol messages serialise")
    }

    pub fn from_line(line: &str) -> Result<Message, WireError> {
        Ok(serde_json::from_str(line)?)
    }
}
