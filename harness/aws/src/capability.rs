//! What the endpoint behind each service can do. Real AWS runs every phase; LocalStack's free
//! edition and moto answer the control plane but run nothing: their instances and tasks are
//! records, and LocalStack's Lambda needs Docker to invoke. The backend deploys and tears down
//! there and skips the phases that need a data plane, saying why, so no latency is ever reported
//! that was not measured.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::endpoint_override;

/// Who answers a service's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulator {
    /// No override: the real AWS endpoint.
    Aws,
    LocalStack {
        url: String,
        services: Vec<String>,
    },
    Moto {
        url: String,
    },
    /// An override that is neither: treated like AWS, since the harness cannot tell.
    Unknown {
        url: String,
    },
}

impl Emulator {
    /// Whether instances and tasks on it run a workload that can be reached.
    pub fn runs_workloads(&self) -> bool {
        matches!(self, Emulator::Aws | Emulator::Unknown { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Emulator::Aws => "AWS".into(),
            Emulator::LocalStack { url, .. } => format!("LocalStack at {url}"),
            Emulator::Moto { url } => format!("moto at {url}"),
            Emulator::Unknown { url } => format!("the endpoint {url}"),
        }
    }
}

/// The emulators behind the services the backend uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub ec2: Emulator,
    pub ecs: Emulator,
    pub lambda: Emulator,
}

impl Capabilities {
    pub fn cloud() -> Capabilities {
        Capabilities { ec2: Emulator::Aws, ecs: Emulator::Aws, lambda: Emulator::Aws }
    }

    /// Probes the endpoints the environment overrides.
    pub fn detect() -> Capabilities {
        Capabilities { ec2: detect("EC2"), ecs: detect("ECS"), lambda: detect("LAMBDA") }
    }

    /// Why a tier's whole deployment cannot happen here, if it cannot.
    pub fn ecs_unavailable(&self) -> Option<String> {
        match &self.ecs {
            Emulator::LocalStack { url, services } if !services.iter().any(|s| s == "ecs") => Some(format!(
                "LocalStack at {url} has no ECS (not in its free edition); point AWS_ENDPOINT_URL_ECS at a moto server"
            )),
            _ => None,
        }
    }
}

impl Capabilities {
    /// Why EKS cannot be used here, if it cannot: LocalStack's free edition has no EKS. EKS is
    /// judged by the ECS endpoint's emulator (every setup the harness knows serves both from
    /// one emulator: moto), so the emulators' and the benches' `Capabilities` need no new field.
    pub fn eks_unavailable(&self) -> Option<String> {
        match &self.ecs {
            Emulator::LocalStack { url, services } if !services.iter().any(|s| s == "eks") => Some(format!(
                "LocalStack at {url} has no EKS (not in its free edition); point AWS_ENDPOINT_URL at a moto server"
            )),
            _ => None,
        }
    }

    /// Whether EKS node groups start nodes that run pods: EC2 runs instances.
    pub fn eks_runs_workloads(&self) -> bool {
        self.ec2.runs_workloads() && self.ecs.runs_workloads()
    }
}

fn detect(service: &str) -> Emulator {
    match endpoint_override(service) {
        Some(url) => probe(&url),
        None => Emulator::Aws,
    }
}

/// Who answers at `url`.
pub fn probe(url: &str) -> Emulator {
    let url = url.to_string();
    if let Some(body) = http_get(&url, "/_localstack/health") {
        let services = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let services = v.get("services")?.as_object()?;
                Some(services.iter().filter(|(_, state)| *state != "disabled").map(|(k, _)| k.clone()).collect())
            })
            .unwrap_or_default();
        return Emulator::LocalStack { url, services };
    }
    if http_get(&url, "/moto-api/").is_some() {
        return Emulator::Moto { url };
    }
    Emulator::Unknown { url }
}

/// A plain HTTP/1.0 GET of `path` on an `http://host:port` endpoint; the body on a 200.
/// Hand-written (a dozen lines) because the SDK's HTTP client is not meant for arbitrary
/// requests and the emulators only speak plain HTTP on loopback.
pub fn http_get(base: &str, path: &str) -> Option<String> {
    let hostport = base.strip_prefix("http://")?.trim_end_matches('/');
    let addr = hostport.to_socket_addrs().ok()?.next()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then_some(())?;
    head.split_whitespace().nth(1).filter(|c| *c == "200")?;
    Some(body.to_string())
}
