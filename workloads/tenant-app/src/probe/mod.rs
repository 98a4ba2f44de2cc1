//! The probe agent: operations that act as a compromised or buggy tenant would, so the harness
//! can measure what one tenant's code can observe of another's. The harness *plants* a canary
//! (an opaque token, `isobench-canary:v1:...`) in a channel through one tenant and *sweeps* the
//! channel through the others; a sweep returns every canary it can see, and a canary planted by
//! another tenant is a leak. The agent never interprets a canary: it stores it and greps for
//! the shape (see [`scan`]).
//!
//! One module per channel (`tmp`, `mem`, `env`, `fd`, `proc`, `net`, `cred`, `rng`, `kernel`); this module
//! maps the front-end-neutral request to them, so the HTTP and Lambda front ends share it.
//! Probes are off unless enabled (`--probes`); they bypass hygiene on purpose (they model code
//! that ignores it) but are admitted like every tenant request (tenant id, claim, silo tenant),
//! are never faulted, never fail the process, and bound every scan. Blocking scans run on the
//! blocking pool so they do not hold up other requests. The README's "Probe agent" section is
//! the protocol the harness implements against.

pub mod client;
pub mod cred;
pub mod env;
pub mod fd;
mod join;
pub mod kernel;
pub mod mem;
pub mod net;
pub mod proc_;
pub mod rng;
pub mod scan;
pub mod tmp;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::client::Endpoint;
use self::scan::Found;
use crate::identity::Identity;
use crate::response::{CONTENT_JSON, ErrorKind, Response};
use crate::store::Store;

/// What a probe request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Put a canary into the channel.
    Plant,
    /// Look for canaries in the channel.
    Sweep,
    /// `net` only: hold a canary on a beacon served on this environment's own address for a
    /// bounded window ([`net::serve`]), for functions, whose environments are frozen between
    /// invokes.
    Serve,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Plant => "plant",
            Action::Sweep => "sweep",
            Action::Serve => "serve",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        [Action::Plant, Action::Sweep, Action::Serve].into_iter().find(|a| a.as_str() == s)
    }
}

/// A channel through which one tenant's state could reach another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Files in the temp directory.
    Tmp,
    /// Process globals and the in-memory cache.
    Mem,
    /// The process environment.
    Env,
    /// Open file descriptors.
    Fd,
    /// Other processes' command lines and environments in `/proc`.
    Proc,
    /// Network reachability of other workloads.
    Net,
    /// AWS principals reachable from here.
    Cred,
    /// Random-generator state reused across tenants.
    Rng,
    /// The kernel under the code (co-residency).
    Kernel,
}

impl Channel {
    pub const ALL: [Channel; 9] = [
        Channel::Tmp,
        Channel::Mem,
        Channel::Env,
        Channel::Fd,
        Channel::Proc,
        Channel::Net,
        Channel::Cred,
        Channel::Rng,
        Channel::Kernel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Tmp => "tmp",
            Channel::Mem => "mem",
            Channel::Env => "env",
            Channel::Fd => "fd",
            Channel::Proc => "proc",
            Channel::Net => "net",
            Channel::Cred => "cred",
            Channel::Rng => "rng",
            Channel::Kernel => "kernel",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether plant stores a canary (and so needs one); `cred`, `rng` and `kernel` plant
    /// nothing.
    pub fn plants(self) -> bool {
        !matches!(self, Channel::Cred | Channel::Rng | Channel::Kernel)
    }
}

/// What the probes reach of the process they run in: its record store (`tmp`, `mem`), its
/// identity and hygiene (`rng`) and the probe settings (`cred`). The handler lends it from its state.
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    pub store: &'a Store,
    pub identity: &'a Identity,
    pub config: &'a ProbeConfig,
}

/// Probe settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Off by default: then probe routes do not exist (404 `no_route`).
    pub enabled: bool,
    /// Base URL of the ECS task credentials endpoint (`cred`); overridable for tests/emulators.
    pub ecs_endpoint: Endpoint,
    /// Base URL of the instance metadata service (`cred`); overridable for tests/emulators.
    pub imds_endpoint: Endpoint,
}

impl Default for ProbeConfig {
    fn default() -> ProbeConfig {
        ProbeConfig {
            enabled: false,
            ecs_endpoint: cred::ECS_ENDPOINT.parse().expect("a valid endpoint"),
            imds_endpoint: cred::IMDS_ENDPOINT.parse().expect("a valid endpoint"),
        }
    }
}

/// Default timeout for each connect and each exchange of `net` and `cred`.
pub const DEFAULT_TIMEOUT_MS: u64 = 300;
/// Largest `timeout_ms` a sweep may ask for.
pub const MAX_TIMEOUT_MS: u64 = 10_000;
/// Largest probe request body (the canary, or a sweep's parameters).
pub const MAX_PROBE_BODY_BYTES: usize = 256 * 1024;

/// A sweep's parameters (the request body, JSON; empty means none). Unknown fields are refused,
/// so a misspelt `peers` is an error rather than a sweep of nobody.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepParams {
    /// `net`: `IP:PORT` of every workload whose beacon to fetch.
    #[serde(default)]
    pub peers: Vec<String>,
    /// `net` and `cred`: milliseconds for each connect and each exchange (1..=10000, default 300).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `cred`: extra paths to try on the ECS credentials endpoint.
    #[serde(default)]
    pub credential_paths: Vec<String>,
}

impl SweepParams {
    /// Reads the parameters; `None` when they are not a JSON object of the fields above within
    /// the bounds. An empty (or blank) body and `null` are no parameters.
    pub fn parse(body: &[u8]) -> Option<SweepParams> {
        if body.trim_ascii().is_empty() {
            return Some(SweepParams::default());
        }
        // serde would also read the struct from an array of its fields in order.
        let params = match serde_json::from_slice::<Value>(body).ok()? {
            Value::Null => SweepParams::default(),
            object @ Value::Object(_) => SweepParams::deserialize(object).ok()?,
            _ => return None,
        };
        let timeout_ok = params.timeout_ms.is_none_or(|ms| (1..=MAX_TIMEOUT_MS).contains(&ms));
        (timeout_ok
            && params.peers.len() <= net::MAX_PEERS
            && params.credential_paths.len() <= cred::MAX_CREDENTIAL_PATHS)
            .then_some(params)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }
}

/// The canary in a plant's body: exactly one canary, surrounding whitespace allowed.
pub fn canary_from(body: &[u8]) -> Option<&str> {
    std::str::from_utf8(body.trim_ascii()).ok().filter(|c| scan::is_canary(c))
}

/// A plant's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlantReply {
    pub channel: &'static str,
    /// False when the environment refused (a read-only temp dir, no memfd, no fork): the
    /// channel could not be planted here, which `detail` explains.
    pub planted: bool,
    pub detail: String,
    /// What a sweep of the channel found right after the plant, in the same environment: the
    /// trial's positive control. A function's next invoke may run in another environment,
    /// so a separate sweep cannot be sure to look where the canary is. Absent for channels
    /// that plant nothing and for `net` (its sweep needs peers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<Vec<String>>,
}

/// A sweep's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReply {
    pub channel: &'static str,
    pub found: Vec<String>,
    /// Channel-specific; always an object, always with `found_truncated`.
    pub detail: Value,
}

/// Answers a probe request that was admitted (tenant checks passed): checks the channel and the
/// body, then plants or sweeps.
pub async fn handle(host: Host<'_>, tenant: &str, channel: &str, action: Action, body: &[u8]) -> Response {
    let Some(channel) = Channel::parse(channel) else {
        return Response::error(ErrorKind::BadChannel);
    };
    let json = match action {
        Action::Plant => {
            let canary = match (channel.plants(), canary_from(body)) {
                (false, _) => "",
                (true, Some(canary)) => canary,
                (true, None) => return Response::error(ErrorKind::BadCanary),
            };
            serde_json::to_vec(&plant(host, tenant, channel, canary).await)
        }
        Action::Sweep => {
            let Some(params) = SweepParams::parse(body) else {
                return Response::error(ErrorKind::BadParams);
            };
            serde_json::to_vec(&sweep(host, channel, &params).await)
        }
        Action::Serve => {
            if channel != Channel::Net {
                return Response::error(ErrorKind::BadChannel);
            }
            let Some(params) = net::ServeParams::parse(body) else {
                return Response::error(ErrorKind::BadParams);
            };
            serde_json::to_vec(&net::serve(&params).await)
        }
    };
    Response::new(200, CONTENT_JSON, Bytes::from(json.expect("probe replies serialise")))
}

/// Plants `canary` (empty for channels that plant nothing) on behalf of `tenant`.
pub async fn plant(host: Host<'_>, tenant: &str, channel: Channel, canary: &str) -> PlantReply {
    let done = |detail: String| (true, detail);
    let (planted, detail) = match channel {
        Channel::Tmp => {
            let (dir, owned) = (host.store.tmp_dir().to_owned(), canary.to_owned());
            match blocking(move || tmp::plant(&dir, &owned)).await {
                Some(Ok(path)) => done(format!("wrote {}", path.display())),
                Some(Err(e)) => (false, format!("failed to write a file in {}: {e}", host.store.tmp_dir().display())),
                None => (false, "the plant task failed".to_owned()),
            }
        }
        Channel::Mem => {
            let n = mem::plant(host.store, tenant, canary);
            done(format!("kept in a process-global list ({n} entries) and in the cache under key `{}`", mem::CACHE_KEY))
        }
        // On this thread, not the blocking pool: see `env::plant`.
        Channel::Env => done(format!("set {}", env::plant(canary))),
        Channel::Fd => match fd::plant(canary) {
            Ok(fd) => done(format!("memfd `{}` kept open as fd {fd}", fd::MEMFD_NAME)),
            Err(e) => (false, format!("failed to create a memfd: {e}")),
        },
        Channel::Proc => {
            let owned = canary.to_owned();
            match blocking(move || proc_::plant(&owned)).await {
                Some(Ok(holder)) => done(format!("holder pid {} started ({} alive)", holder.pid, holder.alive)),
                Some(Err(e)) => (false, format!("failed to start a holder: {e}")),
                None => (false, "the plant task failed".to_owned()),
            }
        }
        Channel::Net => done(format!("on the beacon ({} canaries) at GET {}", net::plant(canary), net::BEACON_PATH)),
        Channel::Cred | Channel::Rng | Channel::Kernel => done("nothing to plant".to_owned()),
    };
    if !planted {
        tracing::warn!(channel = channel.as_str(), %detail, "probe plant failed");
    }
    let found = match channel {
        Channel::Tmp | Channel::Mem | Channel::Env | Channel::Fd | Channel::Proc if planted => {
            Some(sweep(host, channel, &SweepParams::default()).await.found)
        }
        _ => None,
    };
    PlantReply { channel: channel.as_str(), planted, detail, found }
}

/// Sweeps `channel`.
pub async fn sweep(host: Host<'_>, channel: Channel, params: &SweepParams) -> SweepReply {
    let (found, mut detail) = match channel {
        Channel::Tmp => {
            let dir: PathBuf = host.store.tmp_dir().to_owned();
            scan_blocking(move |found| stats(&tmp::sweep(&dir, found))).await
        }
        Channel::Mem => {
            let mut found = Found::new();
            let memory = mem::sweep(host.store, &mut found);
            (found, stats(&memory))
        }
        Channel::Env => {
            let mut found = Found::new();
            let variables = env::sweep(&mut found);
            (found, json!({ "variables": variables }))
        }
        Channel::Fd => scan_blocking(|found| stats(&fd::sweep(found))).await,
        Channel::Proc => scan_blocking(|found| stats(&proc_::sweep(found))).await,
        Channel::Net => {
            let mut found = Found::new();
            let peers = net::sweep(&params.peers, params.timeout(), &mut found).await;
            // The sweeper's own address, so a harness learns where a function's environments are.
            let address = net::own_address().ok().map(|ip| ip.to_string());
            (found, json!({ "peers": peers, "address": address }))
        }
        Channel::Cred => {
            let mut found = Found::new();
            let probes = host.config;
            let env = cred::EnvCreds::capture();
            let sources = cred::sweep(
                probes.ecs_endpoint,
                probes.imds_endpoint,
                &env,
                &params.credential_paths,
                params.timeout(),
                &mut found,
            )
            .await;
            (found, json!({ "sources": sources }))
        }
        Channel::Rng => (Found::new(), rng::sweep(host.identity)),
        Channel::Kernel => (Found::new(), kernel::sweep()),
    };
    if let Value::Object(map) = &mut detail {
        map.insert("found_truncated".to_owned(), Value::Bool(found.truncated()));
    }
    SweepReply { channel: channel.as_str(), found: found.into_tokens(), detail }
}

/// A channel's statistics as the detail object.
fn stats(channel_stats: &impl Serialize) -> Value {
    serde_json::to_value(channel_stats).unwrap_or_else(|_| json!({}))
}

/// Runs a blocking scan on the blocking pool.
async fn scan_blocking(scan: impl FnOnce(&mut Found) -> Value + Send + 'static) -> (Found, Value) {
    let run = move || {
        let mut found = Found::new();
        let detail = scan(&mut found);
        (found, detail)
    };
    blocking(run).await.unwrap_or_else(|| (Found::new(), json!({ "error": "the sweep task failed" })))
}

/// Runs `f` on the blocking pool; `None` if it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Serialises the unit tests that touch the process-wide probe state (globals, environment,
/// descriptors, holders), so one test's "nothing before the plant" is not another's plant.
#[cfg(test)]
pub(crate) fn test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
