//! The summary's closed vocabularies: probe verdicts and expectations, run phases, backend
//! fidelity and request error kinds.
//!
//! One macro writes each enum's serde name and its [`Display`](std::fmt::Display) name from the
//! same literal, so `summary.json`, the reports and code that matches on a value cannot spell it
//! two ways. A value outside a vocabulary is a schema change, not a new string.

/// Declares a closed vocabulary: a unit enum whose variants serialize as the given names, with
/// `ALL`, `as_str` and `Display` (which honours width and alignment, like a `str`).
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The name `summary.json` and the reports use.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// The verdict of one (probe, tier) cell of the leak matrix.
    pub enum Verdict {
        /// Some cross-tenant trial found another tenant's canary (or state).
        Leak = "leak",
        /// No hit in any trial, every trial's own positive control passed and no trial was blind.
        Blocked = "blocked",
        /// Tenants share a resource by configuration (one principal, one kernel): not a leak of
        /// data by itself, but what a leak would travel through.
        Risk = "risk",
        /// No hit, but some trial was blind (a failed call, an unusable answer) or its positive
        /// control failed: the probe may simply not see the channel here.
        Inconclusive = "inconclusive",
        /// The channel does not exist on this tier, or the target could not probe it (the
        /// cell's `note` says why).
        NotApplicable = "not-applicable",
        /// What the probe found is a property of the local emulator, not of the tier on AWS
        /// (every local tier shares this host's kernel); the expectation states AWS's behaviour.
        EmulatorLimit = "emulator-limit",
    }
}

vocabulary! {
    /// What the platform's documented behaviour says a probe should find on a tier.
    pub enum Expectation {
        /// The platform documents no isolation on this channel: a hit is expected.
        Leak = "leak",
        /// The platform promises isolation: a hit fails the run.
        Blocked = "blocked",
        /// The platform documents a shared resource (one role for every tenant, one kernel):
        /// reported as a risk, not a leak.
        Risk = "risk",
        /// The channel does not exist on this tier (e.g. inbound network to a Lambda function).
        NotApplicable = "not-applicable",
    }
}

vocabulary! {
    /// A phase of a tier's run.
    pub enum Phase {
        Deploy = "deploy",
        Traffic = "traffic",
        Probes = "probes",
        Teardown = "teardown",
    }
}

vocabulary! {
    /// How faithfully a backend reproduces the isolation it claims; recorded in every result.
    pub enum Fidelity {
        /// Real kernel isolation: namespaces, cgroups, veth, packet filters.
        Emulated = "emulated",
        /// Plain processes on loopback, no isolation: a reduced-fidelity fallback without root.
        ProcessOnly = "process-only",
        /// The real cloud.
        Cloud = "cloud",
        /// A deployment the harness did not make (the `endpoints` target): its isolation is
        /// whatever it is; the harness only drives and probes it.
        External = "external",
        /// The cloud's APIs served by an emulator (LocalStack, moto): resources are created and
        /// removed for real, but nothing runs in them.
        CloudEmulator = "cloud-emulator",
    }
}

vocabulary! {
    /// Why a sent request failed: the keys of `errors_by_kind`.
    pub enum ErrorKind {
        /// The TCP connection could not be opened (refused, unreachable, no route, ...).
        Connect = "connect",
        /// The connection broke while the request was in flight (reset, closed mid-request).
        Io = "io",
        /// A 4xx status (except 404 on a GET, which is ok); for a function target read as the
        /// sample workload (`response = "workload"`), the `status` of its response payload.
        Http4xx = "http_4xx",
        /// A 5xx status (of the response payload, for a function target read as the sample
        /// workload: the invoke succeeded but the workload answered an error).
        Http5xx = "http_5xx",
        /// The peer did not speak HTTP/1.1 as expected: an unparsable response, or a status the
        /// workload never sends (1xx, 3xx). For a function target whose payloads are read as the
        /// sample workload's (`response = "workload"`): a payload that is not its response
        /// document (`{"status": ..., ...}`), or carries such a status. Under `response = "any"`
        /// no payload is a protocol error.
        Protocol = "protocol",
        /// Still in flight when the run was cancelled and the cancellation grace ran out: the
        /// request was abandoned without an answer.
        Aborted = "aborted",
        /// The driver's task carrying the request panicked (an HTTP connection task, or a
        /// function endpoint's invoke): a bug of the harness or the backend, logged as such;
        /// the request is counted here instead of being lost or hanging the run.
        Panic = "panic",
        /// Function targets: the function reported an error or crashed during the invoke.
        FunctionError = "function_error",
        /// Function targets: the execution environment's INIT failed.
        InitError = "init_error",
        /// Function targets: the invoke was refused over the function's concurrency limit.
        Throttled = "throttled",
        /// Function targets: the function ran past its own timeout. (The driver's per-request
        /// timeout passing first is a timeout, not an error.)
        FunctionTimeout = "function_timeout",
        /// Function targets: the invoke was refused before reaching a function (e.g. no tenant
        /// id for a function in tenant isolation mode).
        Rejected = "rejected",
        /// A success status (or, for a function target, a payload with one) whose JSON body says
        /// the request failed (a top-level `error` field, the workload's error document).
        ErrorBody = "error_body",
    }
}

/// By name: a `BTreeMap<ErrorKind, _>` then lists kinds in the order `summary.json` has always
/// had (its keys were strings), whatever the declaration order.
impl Ord for ErrorKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for ErrorKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A phase a backend cannot run where it is (an emulator without a data plane), and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SkippedPhase {
    pub phase: Phase,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Each value's JSON form, `as_str` and `Display` agree, and JSON reads back.
    fn names_agree<T>(all: &[T], names: &[&str])
    where
        T: Copy + std::fmt::Display + std::fmt::Debug + PartialEq + serde::Serialize + serde::de::DeserializeOwned,
    {
        assert_eq!(all.len(), names.len());
        for (v, name) in all.iter().zip(names) {
            assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{name}\""));
            assert_eq!(v.to_string(), *name);
            assert_eq!(serde_json::from_str::<T>(&format!("\"{name}\"")).unwrap(), *v);
        }
    }

    #[test]
    fn vocabularies_keep_their_summary_names() {
        names_agree(&Verdict::ALL, &["leak", "blocked", "risk", "inconclusive", "not-applicable", "emulator-limit"]);
        names_agree(&Expectation::ALL, &["leak", "blocked", "risk", "not-applicable"]);
        names_agree(&Phase::ALL, &["deploy", "traffic", "probes", "teardown"]);
        names_agree(&Fidelity::ALL, &["emulated", "process-only", "cloud", "external", "cloud-emulator"]);
        let kinds = [
            "connect",
            "io",
            "http_4xx",
            "http_5xx",
            "protocol",
            "aborted",
            "panic",
            "function_error",
            "init_error",
            "throttled",
            "function_timeout",
            "rejected",
            "error_body",
        ];
        names_agree(&ErrorKind::ALL, &kinds);
        assert!(serde_json::from_str::<Verdict>("\"unknown\"").is_err(), "closed");
    }

    #[test]
    fn display_pads_like_a_str() {
        assert_eq!(format!("[{:<8}]", Phase::Deploy), "[deploy  ]");
        assert_eq!(format!("[{:>6}]", Verdict::Leak), "[  leak]");
    }

    #[test]
    fn error_kinds_key_a_map_as_strings_in_name_order() {
        let map: BTreeMap<ErrorKind, u64> = ErrorKind::ALL.iter().map(|k| (*k, 1)).collect();
        let by_name: BTreeMap<String, u64> = ErrorKind::ALL.iter().map(|k| (k.to_string(), 1)).collect();
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, serde_json::to_string(&by_name).unwrap());
        assert_eq!(serde_json::from_str::<BTreeMap<ErrorKind, u64>>(&json).unwrap(), map);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::from_value::<BTreeMap<ErrorKind, u64>>(value).unwrap(), map);
    }
}
