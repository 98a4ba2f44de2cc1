//! The business logic, independent of any front end. A front end (the HTTP server in
//! [`crate::http`], the Lambda Runtime API client in [`crate::lambda`]) counts what it receives
//! with [`State::count_invocation`], turns it into a [`Request`], awaits [`handle`], and turns
//! the [`Response`] back into its own format. Nothing here knows about HTTP beyond using its
//! status codes as the outcome vocabulary.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::compute;
use crate::fault::{Fault, FaultConfig, FaultConfigError, Faults};
use crate::identity::Identity;
use crate::ids::{is_valid_key, is_valid_tenant};
use crate::probe::{self, ProbeConfig};
use crate::response::{CONTENT_BYTES, CONTENT_JSON, CONTENT_TEXT, ErrorKind, Response};
use crate::store::{Hygiene, Store, StoreError};

/// Largest CPU budget one `compute` request may ask for (1 s).
pub const MAX_COMPUTE_US: u64 = 1_000_000;
/// Default largest record a `put` accepts (1 MiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// What the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Liveness; no tenant.
    Health,
    /// This process's [`Identity`]; no tenant.
    WhoAmI,
    /// Store `body` as record `key` of `tenant`.
    Put,
    /// Read record `key` of `tenant`.
    Get,
    /// Burn `compute_us` microseconds of thread CPU time.
    Compute,
    /// Forget all of `tenant`'s state.
    Purge,
    /// Plant a canary in, or sweep, the probe channel `channel` on behalf of `tenant` (only
    /// with probes enabled; see [`crate::probe`]).
    Probe(probe::Action),
    /// This process's `net` probe beacon; no tenant (only with probes enabled).
    Beacon,
}

impl Op {
    fn needs_key(self) -> bool {
        matches!(self, Op::Put | Op::Get)
    }

    /// Whether the operation exists only with probes enabled.
    pub fn is_probe(self) -> bool {
        matches!(self, Op::Probe(_) | Op::Beacon)
    }

    /// Whether the operation acts for a tenant, and so needs a tenant claim.
    pub fn is_tenant_op(self) -> bool {
        matches!(self, Op::Put | Op::Get | Op::Compute | Op::Purge | Op::Probe(_))
    }

    /// Faults hit the traffic operations only: probes and clean-up (`Purge`), health checks and
    /// `WhoAmI` must stay reliable for the harness to reason about the run.
    fn takes_faults(self) -> bool {
        matches!(self, Op::Put | Op::Get | Op::Compute)
    }
}

/// One operation, borrowed from whatever the front end received.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub op: Op,
    /// The tenant the resource belongs to (the path segment, the Lambda event's `tenant`).
    pub tenant: &'a str,
    /// The tenant the caller says it is (the `x-tenant-id` header, the Lambda invoke's tenant id).
    pub claimed_tenant: Option<&'a str>,
    /// Record key, for `Put` and `Get`.
    pub key: &'a str,
    /// Record bytes, for `Put`; the canary (plant) or the parameters (sweep), for `Probe`.
    pub body: Bytes,
    /// CPU budget in microseconds, for `Compute`.
    pub compute_us: u64,
    /// The probe channel, for `Probe` (its body is the canary or the sweep's parameters).
    pub channel: &'a str,
}

impl<'a> Request<'a> {
    /// A request for `op` on behalf of `tenant`, claiming to be that tenant; other fields empty.
    pub fn new(op: Op, tenant: &'a str) -> Self {
        Request { op, tenant, claimed_tenant: Some(tenant), key: "", body: Bytes::new(), compute_us: 0, channel: "" }
    }
}

/// How to build a [`State`].
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub hygiene: Hygiene,
    /// Serve only this tenant (a silo instance); `None` serves every tenant.
    pub tenant: Option<String>,
    pub tmp_dir: PathBuf,
    pub faults: FaultConfig,
    pub max_record_bytes: usize,
    /// The probe agent's settings (off by default).
    pub probes: ProbeConfig,
}

/// A [`State`] that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("`{0}` is not a tenant id (expected [a-z0-9][a-z0-9-]{{0,31}})")]
    BadTenant(String),
    #[error("invalid fault settings")]
    Faults(#[source] FaultConfigError),
    #[error("failed to open the record store")]
    Store(#[source] StoreError),
}

/// Everything a request can touch; one per process, shared by all front-end tasks. Created once
/// at start-up (a Lambda environment's INIT) and never reset, so it lives as long as the process:
/// what survives between requests (cache, files, the nonce) is what the leakage probes look for.
#[derive(Debug)]
pub struct State {
    store: Store,
    faults: Faults,
    silo_tenant: Option<String>,
    identity: Identity,
    /// The `/whoami` body up to (not including) its closing brace, rendered once.
    whoami_prefix: String,
    /// Requests (Lambda: invocations) received by this process so far.
    invocations: AtomicU64,
    max_record_bytes: usize,
    probes: ProbeConfig,
}

impl State {
    pub fn new(config: Config) -> Result<Self, StateError> {
        if let Some(t) = config.tenant.as_deref().filter(|t| !is_valid_tenant(t)) {
            return Err(StateError::BadTenant(t.to_owned()));
        }
        // First: its first random draw is the process's (the `rng` probe reports it).
        let identity = Identity::capture(config.tenant.clone(), config.hygiene);
        let faults = Faults::new(&config.faults).map_err(StateError::Faults)?;
        let store = Store::open(config.hygiene, &config.tmp_dir).map_err(StateError::Store)?;
        let whoami_prefix = identity.json_prefix();
        Ok(State {
            store,
            faults,
            silo_tenant: config.tenant,
            identity,
            whoami_prefix,
            invocations: AtomicU64::new(0),
            max_record_bytes: config.max_record_bytes,
            probes: config.probes,
        })
    }

    /// Counts one request (Lambda: one invocation) received by the front end, whatever becomes
    /// of it; returns the count including this one. `/whoami` reports it, so a client can tell
    /// a reused process (a warm Lambda environment) from a fresh one.
    pub fn count_invocation(&self) -> u64 {
        self.invocations.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Requests (Lambda: invocations) received so far.
    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    /// The `/whoami` body: the [`Identity`] plus `"invocations"`.
    fn whoami(&self) -> Bytes {
        let mut body = String::with_capacity(self.whoami_prefix.len() + 32);
        body.push_str(&self.whoami_prefix);
        let _ = write!(body, r#","invocations":{}}}"#, self.invocations());
        Bytes::from(body)
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    pub fn probe_config(&self) -> &ProbeConfig {
        &self.probes
    }

    /// What the probe agent may reach of this process.
    pub fn probe_host(&self) -> probe::Host<'_> {
        probe::Host { store: &self.store, identity: &self.identity, config: &self.probes }
    }

    /// Whether the probe operations exist.
    pub fn probes_enabled(&self) -> bool {
        self.probes.enabled
    }

    /// Checks who is asking for what, in the order a client can act on: a malformed id, a
    /// missing or contradicting claim, a tenant this instance does not serve, then the arguments.
    fn admit(&self, req: &Request<'_>) -> Result<(), ErrorKind> {
        if !is_valid_tenant(req.tenant) {
            return Err(ErrorKind::BadTenant);
        }
        match req.claimed_tenant {
            None => return Err(ErrorKind::TenantMissing),
            Some(claimed) if claimed != req.tenant => return Err(ErrorKind::TenantMismatch),
            Some(_) => {}
        }
        if self.silo_tenant.as_deref().is_some_and(|silo| silo != req.tenant) {
            return Err(ErrorKind::WrongTenant);
        }
        if req.op.needs_key() && !is_valid_key(req.key) {
            return Err(ErrorKind::BadKey);
        }
        if req.op == Op::Compute && req.compute_us > MAX_COMPUTE_US {
            return Err(ErrorKind::BadCompute);
        }
        if req.op == Op::Put && req.body.len() > self.max_record_bytes {
            return Err(ErrorKind::TooLarge);
        }
        Ok(())
    }
}

/// Answers one request. Async only because an injected stall sleeps; `Compute` burns the CPU of
/// the calling thread on purpose (that is the work being measured).
pub async fn handle(state: &State, req: Request<'_>) -> Response {
    match req.op {
        Op::Health => Response::new(200, CONTENT_TEXT, Bytes::from_static(b"ok\n")),
        Op::WhoAmI => Response::new(200, CONTENT_JSON, state.whoami()),
        // Without `--probes` the probe operations do not exist.
        op if op.is_probe() && !state.probes_enabled() => Response::error(ErrorKind::NoRoute),
        Op::Beacon => Response::new(200, CONTENT_TEXT, probe::net::beacon_body()),
        Op::Put | Op::Get | Op::Compute | Op::Purge | Op::Probe(_) => tenant_op(state, req).await,
    }
}

async fn tenant_op(state: &State, req: Request<'_>) -> Response {
    if let Err(kind) = state.admit(&req) {
        return Response::error(kind);
    }
    if req.op.takes_faults() {
        match state.faults.draw() {
            Fault::None => {}
            Fault::Error => return Response::error(ErrorKind::Injected),
            // A success status over the error document: only a client reading bodies sees it.
            Fault::ErrorBody => return Response { status: 200, error: None, ..Response::error(ErrorKind::Injected) },
            Fault::Stall(d) => tokio::time::sleep(d).await,
        }
    }
    match req.op {
        Op::Put => put(state, &req),
        Op::Get => get(state, &req),
        Op::Compute => compute(&req),
        Op::Purge => purge(state, &req),
        Op::Probe(action) => probe::handle(state.probe_host(), req.tenant, req.channel, action, &req.body).await,
        Op::Health | Op::WhoAmI | Op::Beacon => unreachable!("answered in handle"),
    }
}

fn put(state: &State, req: &Request<'_>) -> Response {
    match state.store.put(req.tenant, req.key, req.body.clone()) {
        Ok(()) => Response::empty(201),
        Err(e) => storage_failure(&e),
    }
}

fn get(state: &State, req: &Request<'_>) -> Response {
    match state.store.get(req.tenant, req.key) {
        Ok(Some(record)) => Response::new(200, CONTENT_BYTES, record),
        Ok(None) => Response::error(ErrorKind::NotFound),
        Err(e) => storage_failure(&e),
    }
}

fn compute(req: &Request<'_>) -> Response {
    let burn = compute::burn(req.tenant.as_bytes(), Duration::from_micros(req.compute_us));
    let body = format!(r#"{{"sha256":"{}","cpu_us":{}}}"#, compute::hex(&burn.digest), burn.cpu.as_micros());
    Response::new(200, CONTENT_JSON, Bytes::from(body))
}

fn purge(state: &State, req: &Request<'_>) -> Response {
    match state.store.purge(req.tenant) {
        Ok(_) => Response::empty(204),
        Err(e) => storage_failure(&e),
    }
}

/// Storage failures are rare and point at the host, so they are worth a log line each.
fn storage_failure(e: &StoreError) -> Response {
    tracing::warn!(error = %e, cause = %e.source, "record storage failed");
    Response::error(ErrorKind::Storage)
}

#[cfg(test)]
mod tests;
