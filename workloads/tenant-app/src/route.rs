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

use crate::handler::{ErrorKind, Op};

/// A routed request: the operation and the parts of the path it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub op: Op,
    pub tenant: &'a str,
    pub key: &'a str,
    pub compute_us: u64,
}

impl<'a> Route<'a> {
    fn new(op: Op, tenant: &'a str) -> Self {
        Route { op, tenant, key: "", compute_us: 0 }
    }
}

/// Routes a request; `NoRoute` for an unknown path, `MethodNotAllowed` for a known path with the
/// wrong method, `BadCompute` for a compute without a usable `us`.
pub fn route<'a>(method: &str, path: &'a str, query: Option<&str>) -> Result<Route<'a>, ErrorKind> {
    match path {
        "/healthz" => read_only(method, Route::new(Op::Health, "")),
        "/whoami" => read_only(method, Route::new(Op::WhoAmI, "")),
        _ => tenant_route(method, path.strip_prefix("/t/").ok_or(ErrorKind::NoRoute)?, query),
    }
}

fn read_only<'a>(method: &str, route: Route<'a>) -> Result<Route<'a>, ErrorKind> {
    match method {
        "GET" | "HEAD" => Ok(route),
        _ => Err(ErrorKind::MethodNotAllowed),
    }
}

/// Routes what follows `/t/`.
fn tenant_route<'a>(method: &str, rest: &'a str, query: Option<&str>) -> Result<Route<'a>, ErrorKind> {
    let mut parts = rest.split('/');
    let tenant = parts.next().unwrap_or_default();
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => match method {
            "DELETE" => Ok(Route::new(Op::Purge, tenant)),
            _ => Err(ErrorKind::MethodNotAllowed),
        },
        (Some("records"), Some(key), None) => match method {
            "PUT" => Ok(Route { key, ..Route::new(Op::Put, tenant) }),
            "GET" => Ok(Route { key, ..Route::new(Op::Get, tenant) }),
            _ => Err(ErrorKind::MethodNotAllowed),
        },
        (Some("compute"), None, _) => match method {
            "POST" => Ok(Route { compute_us: compute_us(query)?, ..Route::new(Op::Compute, tenant) }),
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
        route(method, Box::leak(path.to_owned().into_boxed_str()), query)
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
}
