//! Maps a method, path and query to a handler operation. Kept apart from the HTTP server so a
//! front end that receives HTTP-shaped events (a Lambda function URL, API Gateway) can reuse it.
//!
//! | method | path | op |
//! |---|---|---|
//! | GET, HEAD | `/healthz` | Health |
//! | GET, HEAD | `/whoami` | WhoAmI |
//! | PUT | `/t/{tenant}/records/{key}` | Put |
//! | GET | `/t/{tenant}/records/{key}` | Get |
//! | POST | `/t/{tenant}/compute?us=N` | Compute |
//! | DELETE | `/t/{tenant}` | Purge |
//! | POST | `/t/{tenant}/probe/{channel}/plant` | Probe(Plant), with probes enabled |
//! | POST | `/t/{tenant}/probe/{channel}/sweep` | Probe(Sweep), with probes enabled |
//! | GET, HEAD | `/probe/beacon` | Beacon, with probes enabled |
//!
//! Without probes enabled the probe paths do not exist: every method gets `NoRoute`.

use crate::handler::Op;
use crate::probe::Action;
use crate::response::ErrorKind;

/// A routed request: the operation and the parts of the path it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub op: Op,
    pub tenant: &'a str,
    pub key: &'a str,
    pub compute_us: u64,
    /// The probe channel, for `Probe` (not checked here: an unknown one is the handler's 400).
    pub channel: &'a str,
}

impl<'a> Route<'a> {
    fn new(op: Op, tenant: &'a str) -> Self {
        Route { op, tenant, key: "", compute_us: 0, channel: "" }
    }
}

/// Routes a request; `NoRoute` for an unknown path (the probe paths are unknown unless `probes`),
/// `MethodNotAllowed` for a known path with the wrong method, `BadCompute` for a compute without
/// a usable `us`.
pub fn route<'a>(method: &str, path: &'a str, query: Option<&str>, probes: bool) -> Result<Route<'a>, ErrorKind> {
    match path {
        "/healthz" => read_only(method, Route::new(Op::Health, "")),
        "/whoami" => read_only(method, Route::new(Op::WhoAmI, "")),
        "/probe/beacon" if probes => read_only(method, Route::new(Op::Beacon, "")),
        _ => tenant_route(method, path.strip_prefix("/t/").ok_or(ErrorKind::NoRoute)?, query, probes),
    }
}

fn read_only<'a>(method: &str, route: Route<'a>) -> Result<Route<'a>, ErrorKind> {
    match method {
        "GET" | "HEAD" => Ok(route),
        _ => Err(ErrorKind::MethodNotAllowed),
    }
}

/// Routes what follows `/t/`.
fn tenant_route<'a>(method: &str, rest: &'a str, query: Option<&str>, probes: bool) -> Result<Route<'a>, ErrorKind> {
    let mut parts = rest.split('/');
    let tenant = parts.next().unwrap_or_default();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (None, ..) => match method {
            "DELETE" => Ok(Route::new(Op::Purge, tenant)),
            _ => Err(ErrorKind::MethodNotAllowed),
        },
        (Some("records"), Some(key), None, _) => match method {
            "PUT" => Ok(Route { key, ..Route::new(Op::Put, tenant) }),
            "GET" => Ok(Route { key, ..Route::new(Op::Get, tenant) }),
            _ => Err(ErrorKind::MethodNotAllowed),
        },
        (Some("compute"), None, ..) => match method {
            "POST" => Ok(Route { compute_us: compute_us(query)?, ..Route::new(Op::Compute, tenant) }),
            _ => Err(ErrorKind::MethodNotAllowed),
        },
        (Some("probe"), Some(channel), Some(action), None) if probes => match (method, Action::parse(action)) {
            (_, None) => Err(ErrorKind::NoRoute),
            ("POST", Some(action)) => Ok(Route { channel, ..Route::new(Op::Probe(action), tenant) }),
            _ => Err(ErrorKind::MethodNotAllowed),
        },
        _ => Err(ErrorKind::NoRoute),
    }
}

/// The `us` query parameter. The cap is the handler's business; this only parses.
fn compute_us(query: Option<&str>) -> Result<u64, ErrorKind> {
    query
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("us=")))
        .and_then(|v| v.parse().ok())
        .ok_or(ErrorKind::BadCompute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, path: &str, query: Option<&str>) -> Result<Route<'static>, ErrorKind> {
        // Leak in tests only, to keep the borrowed route easy to compare.
        route(method, Box::leak(path.to_owned().into_boxed_str()), query, false)
    }

    fn probe_op(method: &str, path: &str, probes: bool) -> Result<Route<'static>, ErrorKind> {
        route(method, Box::leak(path.to_owned().into_boxed_str()), None, probes)
    }

    #[test]
    fn routes_every_operation() {
        assert_eq!(op("GET", "/healthz", None).unwrap().op, Op::Health);
        assert_eq!(op("HEAD", "/whoami", None).unwrap().op, Op::WhoAmI);
        let put = op("PUT", "/t/acme/records/k1", None).unwrap();
        assert_eq!((put.op, put.tenant, put.key), (Op::Put, "acme", "k1"));
        assert_eq!(op("GET", "/t/acme/records/k1", None).unwrap().op, Op::Get);
        let compute = op("POST", "/t/acme/compute", Some("x=1&us=250")).unwrap();
        assert_eq!((compute.op, compute.tenant, compute.compute_us), (Op::Compute, "acme", 250));
        let purge = op("DELETE", "/t/acme", None).unwrap();
        assert_eq!((purge.op, purge.tenant), (Op::Purge, "acme"));
    }

    #[test]
    fn rejects_unknown_paths_methods_and_arguments() {
        assert_eq!(op("GET", "/", None), Err(ErrorKind::NoRoute));
        assert_eq!(op("GET", "/t/acme/records", None), Err(ErrorKind::NoRoute));
        assert_eq!(op("GET", "/t/acme/records/a/b", None), Err(ErrorKind::NoRoute));
        assert_eq!(op("GET", "/t/acme/other/k", None), Err(ErrorKind::NoRoute));
        assert_eq!(op("POST", "/healthz", None), Err(ErrorKind::MethodNotAllowed));
        assert_eq!(op("POST", "/t/acme/records/k", None), Err(ErrorKind::MethodNotAllowed));
        assert_eq!(op("GET", "/t/acme/compute", Some("us=1")), Err(ErrorKind::MethodNotAllowed));
        assert_eq!(op("GET", "/t/acme", None), Err(ErrorKind::MethodNotAllowed));
        assert_eq!(op("POST", "/t/acme/compute", None), Err(ErrorKind::BadCompute));
        assert_eq!(op("POST", "/t/acme/compute", Some("us=-1")), Err(ErrorKind::BadCompute));
        assert_eq!(op("POST", "/t/acme/compute", Some("us=ten")), Err(ErrorKind::BadCompute));
    }

    #[test]
    fn probe_routes_exist_only_when_enabled() {
        let plant = probe_op("POST", "/t/acme/probe/tmp/plant", true).unwrap();
        assert_eq!((plant.op, plant.tenant, plant.channel), (Op::Probe(Action::Plant), "acme", "tmp"));
        let sweep = probe_op("POST", "/t/acme/probe/nosuch/sweep", true).unwrap();
        assert_eq!((sweep.op, sweep.channel), (Op::Probe(Action::Sweep), "nosuch"));
        assert_eq!(probe_op("GET", "/probe/beacon", true).unwrap().op, Op::Beacon);
        assert_eq!(probe_op("HEAD", "/probe/beacon", true).unwrap().op, Op::Beacon);
        assert_eq!(probe_op("GET", "/t/acme/probe/tmp/plant", true), Err(ErrorKind::MethodNotAllowed));
        assert_eq!(probe_op("POST", "/probe/beacon", true), Err(ErrorKind::MethodNotAllowed));
        assert_eq!(probe_op("POST", "/t/acme/probe/tmp/peek", true), Err(ErrorKind::NoRoute));
        assert_eq!(probe_op("POST", "/t/acme/probe/tmp", true), Err(ErrorKind::NoRoute));
        assert_eq!(probe_op("POST", "/t/acme/probe/tmp/plant/x", true), Err(ErrorKind::NoRoute));
        // Disabled: no such resource, whatever the method.
        for (method, path) in
            [("POST", "/t/acme/probe/tmp/plant"), ("GET", "/t/acme/probe/tmp/sweep"), ("GET", "/probe/beacon")]
        {
            assert_eq!(probe_op(method, path, false), Err(ErrorKind::NoRoute), "{method} {path}");
        }
    }
}
