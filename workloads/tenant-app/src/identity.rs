//! Who this process is, as `/whoami` reports it. Tests and probes use it to tell processes apart
//! (a fresh 128-bit nonce per start, the pid as seen inside any pid namespace) and to check what
//! configuration a deployed instance actually runs with.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

use crate::store::Hygiene;

/// Facts fixed at start-up.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub pid: u32,
    /// 128 random bits in hex, generated at start: equal nonces mean the same process.
    pub instance_nonce: String,
    pub hostname: String,
    pub uid: u32,
    /// The one tenant a silo instance serves; `None` for a shared instance.
    pub tenant: Option<String>,
    pub hygiene: &'static str,
    pub started_unix_ns: u64,
    pub version: &'static str,
    /// The first 16 bytes drawn from the thread RNG, before the nonce: the seed of the
    /// process-wide token generator that `naive` hygiene shares between tenants (the probe
    /// agent's `rng` channel); not in `/whoami`.
    #[serde(skip)]
    pub first_random: [u8; 16],
}

impl Identity {
    /// Captures the facts; call it before anything else draws random numbers, so that
    /// `first_random` is the process's first draw.
    pub fn capture(tenant: Option<String>, hygiene: Hygiene) -> Self {
        // A separate draw, first, and kept: see `first_random`.
        let first_random = rand::random::<[u8; 16]>();
        Identity {
            first_random,
            pid: std::process::id(),
            instance_nonce: format!("{:032x}", rand::random::<u128>()),
            hostname: nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
            uid: nix::unistd::getuid().as_raw(),
            tenant,
            hygiene: hygiene.as_str(),
            started_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// The identity as a JSON object.
    pub fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("identity serialises"))
    }

    /// The JSON object without its closing `}`, so fields that change (the invocation count) can
    /// be appended without serialising the fixed ones again.
    pub fn json_prefix(&self) -> String {
        let mut json = serde_json::to_string(self).expect("identity serialises");
        let closing = json.pop();
        debug_assert_eq!(closing, Some('}'));
        json
    }
}
