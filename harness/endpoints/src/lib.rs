//! The `endpoints` target: traffic and the HTTP-reachable probes against a deployment someone
//! else made (or a local server), named per tier and tenant in a TOML file. Nothing is deployed
//! and nothing is torn down.
//!
//! ```toml
//! format_version = 1
//! [tiers.shared-ec2]
//! "*" = "http://10.0.1.20:8080"          # every tenant not named below
//! [tiers.silo-ec2]
//! tenant-01 = "http://10.0.2.11:8080"
//! tenant-02 = "http://10.0.2.12:8080"
//! ```
//!
//! URLs are plain `http://host[:port]` (port 80 by default), without a path: the load driver
//! speaks HTTP/1.1 over TCP to the address the host name resolves to when the file is read, and
//! sends that address as `Host`. `https` is refused (the driver has no TLS; a TLS-terminating
//! proxy in front of it would be measured too). Every check runs before any traffic: the file's
//! syntax and version, unknown tiers and tenants, a URL for every (tier, tenant) the run needs,
//! each URL's form and its host's resolution. Problems name the file, line and column.
//!
//! [`Backend::deploy`] checks that every distinct address answers `GET /healthz` with 200, and
//! fails naming the URL if one does not.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use isobench_core::backend::{
    Backend, BackendError, BackendInfo, Deployment, Endpoint, Fidelity, InstanceInfo, TeardownReport, TenantTarget,
};
use isobench_core::diagnostics::InvalidFile;
pub use isobench_core::diagnostics::Problem;
use isobench_core::plan::TierPlan;
use isobench_core::probes::Channel;
use isobench_core::tier::TierId;
use serde::Deserialize;

mod health;

/// The endpoints file format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// The key that gives the URL of every tenant a tier table does not name.
pub const ANY_TENANT: &str = "*";

/// How long `GET /healthz` may take per endpoint.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    format_version: u32,
    #[serde(default)]
    tiers: BTreeMap<String, toml::Spanned<BTreeMap<String, toml::Spanned<String>>>>,
}

/// Everything wrong with an endpoints file; its problems are always located by line and
/// column, and name no field.
pub type EndpointsError = InvalidFile;

/// What an endpoints file is called in its errors (`invalid endpoints file FILE`).
const WHAT: &str = "endpoints file";

/// One tenant's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUrl {
    pub tenant: String,
    pub url: String,
    pub addr: SocketAddr,
    /// `host:port` as written, sent as `Host` in the health check.
    pub authority: String,
}

/// The resolved file: for each tier the run drives, every tenant's endpoint.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub tiers: BTreeMap<TierId, Vec<TenantUrl>>,
}

/// What the run needs from the file.
#[derive(Debug, Clone, Copy)]
pub struct Needs<'a> {
    /// The scenario's tiers: the file may name only these.
    pub scenario_tiers: &'a [TierId],
    /// The tiers this run drives (the scenario's, or a `--tiers` subset): each needs a URL for
    /// every tenant.
    pub run_tiers: &'a [TierId],
    pub tenants: &'a [String],
}

impl Endpoints {
    /// Reads `path` and checks it against what the run needs.
    pub fn load(path: &Path, needs: Needs<'_>) -> Result<Endpoints, EndpointsError> {
        let fail = |message: String| EndpointsError {
            what: WHAT,
            file: path.to_path_buf(),
            problems: vec![Problem {
                line: Some(1),
                column: Some(1),
                ..Problem::new("", message, "a readable TOML endpoints file (see the README, `--target endpoints`)")
            }],
        };
        let src = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
        Endpoints::parse(&src, path, needs)
    }

    /// Parses and checks endpoints text; `file` is used in messages only.
    pub fn parse(src: &str, file: &Path, needs: Needs<'_>) -> Result<Endpoints, EndpointsError> {
        let mut c = Checker { src, problems: Vec::new() };
        let raw: RawFile = match toml::from_str(src) {
            Ok(r) => r,
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                c.fail(at, e.message().to_string(), None);
                return Err(EndpointsError { what: WHAT, file: file.to_path_buf(), problems: c.problems });
            }
        };
        if raw.format_version != FORMAT_VERSION {
            let at = src.find("format_version").unwrap_or(0);
            c.fail(
                at,
                format!("format version {} is not supported by this build", raw.format_version),
                Some(format!("format_version = {FORMAT_VERSION}")),
            );
        }
        let out = resolve(&raw, needs, &mut c);
        if c.problems.is_empty() {
            Ok(out)
        } else {
            Err(EndpointsError { what: WHAT, file: file.to_path_buf(), problems: c.problems })
        }
    }
}

/// Collects problems, each located by a byte offset in the file (the spans `toml` keeps).
struct Checker<'a> {
    src: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn fail(&mut self, offset: usize, message: String, accepted: Option<String>) {
        let problem = Problem::new("", message, accepted.unwrap_or_default());
        self.problems.push(problem.at_offset(self.src, offset));
    }
}

fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().take(12).map(|t| format!("`{t}`")).collect();
    v.join(", ")
}

fn resolve(raw: &RawFile, needs: Needs<'_>, c: &mut Checker<'_>) -> Endpoints {
    let mut out = Endpoints::default();
    for (name, table) in &raw.tiers {
        let at = table.span().start;
        let tier: TierId = match name.parse() {
            Ok(t) => t,
            Err(_) => {
                c.fail(at, format!("unknown tier `{name}`"), Some(TierId::accepted()));
                continue;
            }
        };
        if !needs.scenario_tiers.contains(&tier) {
            c.fail(
                at,
                format!("tier `{name}` is not in the scenario"),
                Some(format!("the scenario's tiers: {}", list(needs.scenario_tiers.iter().map(|t| t.as_str())))),
            );
            continue;
        }
        let entries = table.get_ref();
        for (tenant, url) in entries {
            if tenant != ANY_TENANT && !needs.tenants.contains(tenant) {
                c.fail(
                    url.span().start,
                    format!("tier `{name}`: no tenant `{tenant}` in the scenario"),
                    Some(format!(
                        "the scenario's tenants ({}), or `\"*\"` for all",
                        list(needs.tenants.iter().take(8))
                    )),
                );
            }
        }
        if !needs.run_tiers.contains(&tier) {
            continue;
        }
        let mut urls = Vec::new();
        for tenant in needs.tenants {
            let Some(url) = entries.get(tenant).or_else(|| entries.get(ANY_TENANT)) else {
                c.fail(
                    at,
                    format!("tier `{name}`: no URL for tenant `{tenant}`"),
                    Some(format!("a line `{tenant} = \"http://host:port\"`, or `\"*\" = \"http://host:port\"`")),
                );
                continue;
            };
            match parse_url(url.get_ref()) {
                Ok((addr, authority)) => {
                    urls.push(TenantUrl { tenant: tenant.clone(), url: url.get_ref().clone(), addr, authority })
                }
                Err((message, accepted)) => {
                    // Report a bad URL once, not once per tenant that uses it.
                    let start = url.span().start;
                    if !c.problems.iter().any(|p| p.message == message) {
                        c.fail(start, message, Some(accepted.into()));
                    }
                }
            }
        }
        out.tiers.insert(tier, urls);
    }
    for tier in needs.run_tiers {
        if !out.tiers.contains_key(tier) && !raw.tiers.contains_key(tier.as_str()) {
            c.fail(
                c.src.len(),
                format!("no `[tiers.{tier}]` table: the run drives tier `{tier}`"),
                Some(format!("a table `[tiers.{tier}]` with one URL per tenant, or `--tiers` without it")),
            );
        }
    }
    out
}

const URL_ACCEPTED: &str = "http://host[:port] (no path, query, user or https), e.g. `http://10.0.1.20:8080`";

/// The address a URL names, and its `host:port`. Parsed with `http::Uri` (hyper's), the parser
/// of the client that will send the requests.
fn parse_url(text: &str) -> Result<(SocketAddr, String), (String, &'static str)> {
    let bad = |why: String| Err((format!("`{text}`: {why}"), URL_ACCEPTED));
    let uri: hyper::Uri = match text.parse() {
        Ok(u) => u,
        Err(e) => return bad(format!("not a URL ({e})")),
    };
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return bad("https is not supported: the load driver speaks plain HTTP/1.1".into()),
        Some(s) => return bad(format!("scheme `{s}` is not supported")),
        None => return bad("not a URL (no scheme)".into()),
    }
    let Some(authority) = uri.authority() else { return bad("no host".into()) };
    if authority.as_str().contains('@') {
        return bad("credentials in the URL are not supported".into());
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    if path != "/" && !path.is_empty() {
        return bad("a path or query is not supported: requests go to the workload's own paths".into());
    }
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(80);
    // `host` keeps IPv6 brackets, which is what `to_socket_addrs` wants for `host:port`.
    let authority = format!("{host}:{port}");
    match authority.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => Ok((addr, authority)),
        Ok(None) => bad(format!("host `{host}` resolves to no address")),
        Err(e) => bad(format!("cannot resolve host `{host}`: {e}")),
    }
}

/// A [`Backend`] over endpoints someone else deployed: deploy checks they answer, teardown
/// does nothing.
#[derive(Debug)]
pub struct EndpointsBackend {
    endpoints: Endpoints,
    health_timeout: Duration,
}

impl EndpointsBackend {
    pub fn new(endpoints: Endpoints) -> EndpointsBackend {
        EndpointsBackend { endpoints, health_timeout: HEALTH_TIMEOUT }
    }
}

/// Probe channels the endpoints target cannot probe, and why.
pub const UNPROBEABLE: [(Channel, &str); 2] = [
    (
        Channel::Net,
        "needs each tenant's private address and a network the harness controls; the endpoints target only knows the URLs it was given",
    ),
    (
        Channel::Cred,
        "a deployment the harness did not make may give the workload no credential endpoint at all, so a missing principal could not be told from a blocked channel; not probed",
    ),
];

impl Backend for EndpointsBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "endpoints",
            fidelity: Fidelity::External,
            description:
                "endpoints deployed outside the harness; nothing deployed or torn down, start times not measured".into(),
        }
    }

    fn deploy(&mut self, plan: &TierPlan) -> Result<Deployment, BackendError> {
        let Some(urls) = self.endpoints.tiers.get(&plan.tier) else {
            return Err(BackendError::UnsupportedTier { backend: "endpoints", tier: plan.tier });
        };
        // One health check and one "instance" per distinct URL.
        let mut by_url: BTreeMap<&str, (&TenantUrl, Vec<String>)> = BTreeMap::new();
        for u in urls {
            by_url.entry(&u.url).or_insert((u, Vec::new())).1.push(u.tenant.clone());
        }
        let mut instances = Vec::new();
        for (url, (u, tenants)) in by_url {
            health::check(u.addr, &u.authority, self.health_timeout).map_err(|e| BackendError::Deploy {
                tier: plan.tier,
                what: format!("anything: endpoint {url} ({}) did not pass GET /healthz", u.addr),
                source: e.into(),
            })?;
            instances.push(InstanceInfo {
                id: url.to_string(),
                tenants,
                address: Some(u.addr.ip()),
                start_time: Duration::ZERO,
                pid: None,
                limits: None,
            });
        }
        let targets =
            urls.iter().map(|u| TenantTarget { tenant: u.tenant.clone(), endpoint: Endpoint::Http(u.addr) }).collect();
        Ok(Deployment {
            tier: plan.tier,
            targets,
            instances,
            #[cfg(unix)]
            netns: None,
        })
    }

    fn teardown(&mut self, _tier: TierId) -> Result<TeardownReport, BackendError> {
        Ok(TeardownReport::default())
    }

    fn teardown_all(&mut self) -> Result<TeardownReport, BackendError> {
        Ok(TeardownReport::default())
    }

    fn unprobeable(&self) -> Vec<(Channel, &'static str)> {
        UNPROBEABLE.to_vec()
    }
}

#[cfg(test)]
mod tests;
