//! `cred`: credential scope. Nothing is planted; a sweep tries to obtain AWS principals from
//! everything this code can reach and returns one token `isobench-principal:<role ARN or access
//! key id>` per principal obtained (the harness maps principals to owners: a tenant holding a
//! principal other than its own is a leak). Sources, in this order:
//!
//! 1. `env`: `AWS_ACCESS_KEY_ID` in the environment; the principal is the role ARN in
//!    `ISOBENCH_ROLE_ARN` if set, else a role ARN spelled out in `AWS_SESSION_TOKEN` (an
//!    emulator's tokens may carry one), else the key id.
//! 2. `ecs`: the ECS task credentials endpoint (`http://169.254.170.2`) at
//!    `$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`; the principal is the document's `RoleArn`, else
//!    its `AccessKeyId`.
//! 3. `ecs_path`: the same endpoint at every path the sweep's `credential_paths` names (a
//!    compromised tenant trying other tasks' credential ids).
//! 4. `imds`: EC2 instance metadata, IMDSv2 (a session token from `PUT /latest/api/token`) and,
//!    when no token comes, IMDSv1 (the same GETs without one): the role names under
//!    `/latest/meta-data/iam/security-credentials/`, then each role's credentials; the
//!    principal is `RoleArn` if the document has one, else `role/<name>` from the path.
//!
//! Every request has a short timeout; an endpoint that cannot be reached is a normal result (the
//! isolation worked), reported per source. Canaries found in any response are returned too.
//! Secrets (secret keys, session tokens) never leave this module. The endpoints can be pointed
//! elsewhere (`TENANT_APP_PROBE_ECS_ENDPOINT`, `TENANT_APP_PROBE_IMDS_ENDPOINT`) for tests and
//! emulators.

use std::time::Duration;

use serde_json::{Value, json};

use super::client::{self, Endpoint, FetchError};
use super::join::join_ordered;
use super::scan::{Found, PRINCIPAL_PREFIX};

/// Where the real ECS task credentials endpoint is.
pub const ECS_ENDPOINT: &str = "http://169.254.170.2";
/// Where the real instance metadata endpoint is.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// Most extra credential paths one sweep may name.
pub const MAX_CREDENTIAL_PATHS: usize = 256;
/// Most instance roles looked up.
const MAX_ROLES: usize = 8;
const IMDS_TOKEN_PATH: &str = "/latest/api/token";
const IMDS_ROLES_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const IMDS_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const IMDS_TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";

/// The credential variables of the environment, as read at the sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvCreds {
    pub access_key_id: Option<String>,
    pub session_token: Option<String>,
    pub role_arn: Option<String>,
    pub relative_uri: Option<String>,
}

impl EnvCreds {
    /// Reads them from the live environment (under the environment lock).
    pub fn capture() -> EnvCreds {
        EnvCreds {
            access_key_id: super::env::var("AWS_ACCESS_KEY_ID"),
            session_token: super::env::var("AWS_SESSION_TOKEN"),
            role_arn: super::env::var("ISOBENCH_ROLE_ARN"),
            relative_uri: super::env::var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        }
    }
}

/// One source's result: its detail, the principals it gave and the bodies to grep.
struct Outcome {
    detail: Value,
    principals: Vec<String>,
    bodies: Vec<Vec<u8>>,
}

impl Outcome {
    fn detail(detail: Value) -> Outcome {
        Outcome { detail, principals: Vec::new(), bodies: Vec::new() }
    }
}

/// Runs every source (the endpoints concurrently), adds principals and canaries to `found` in
/// source order, and returns one detail object per source.
pub async fn sweep(
    ecs: Endpoint,
    imds: Endpoint,
    env: &EnvCreds,
    credential_paths: &[String],
    timeout: Duration,
    found: &mut Found,
) -> Vec<Value> {
    let mut outcomes = vec![env_source(env)];
    let relative = env.relative_uri.clone();
    let ecs_fetches = std::iter::once(("ecs", relative))
        .chain(credential_paths.iter().map(|p| ("ecs_path", Some(p.clone()))))
        .map(|(source, path)| ecs_source(source, ecs, path, timeout))
        .collect();
    let (ecs_outcomes, imds_outcome) = tokio::join!(join_ordered(ecs_fetches), imds_source(imds, timeout));
    outcomes.extend(ecs_outcomes.into_iter().map(|o| {
        o.unwrap_or_else(|| Outcome::detail(json!({"source": "ecs", "outcome": "error", "error": "internal"})))
    }));
    outcomes.push(imds_outcome);
    outcomes
        .into_iter()
        .map(|outcome| {
            for principal in &outcome.principals {
                found.add(&format!("{PRINCIPAL_PREFIX}{principal}"));
            }
            for body in &outcome.bodies {
                found.scan(body);
            }
            outcome.detail
        })
        .collect()
}

fn env_source(env: &EnvCreds) -> Outcome {
    let Some(key) = env.access_key_id.as_deref() else {
        return Outcome::detail(json!({"source": "env", "outcome": "absent"}));
    };
    let (principal, from) = if let Some(arn) = env.role_arn.as_deref() {
        (arn, "ISOBENCH_ROLE_ARN")
    } else if let Some(arn) = env.session_token.as_deref().and_then(role_arn_in) {
        (arn, "AWS_SESSION_TOKEN")
    } else {
        (key, "AWS_ACCESS_KEY_ID")
    };
    if !is_principal(principal) {
        return Outcome::detail(json!({"source": "env", "outcome": "invalid", "principal_from": from}));
    }
    Outcome {
        detail: json!({"source": "env", "outcome": "found", "access_key_id": key, "principal": principal,
                       "principal_from": from}),
        principals: vec![principal.to_owned()],
        bodies: Vec::new(),
    }
}

async fn ecs_source(source: &'static str, endpoint: Endpoint, path: Option<String>, timeout: Duration) -> Outcome {
    let Some(path) = path else {
        return Outcome::detail(json!({"source": source, "outcome": "skipped",
                                      "reason": "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not set"}));
    };
    let url = format!("{endpoint}{path}");
    if !is_path(&path) {
        return Outcome::detail(json!({"source": source, "url": url, "outcome": "bad_path"}));
    }
    let mut outcome = match client::request(endpoint.addr, "GET", &path, &[], timeout).await {
        Err(e) => Outcome::detail(failure(&e)),
        Ok(reply) => {
            let (detail, principal) = credentials_document(reply.status, &reply.body);
            Outcome { detail, principals: principal.into_iter().collect(), bodies: vec![reply.body] }
        }
    };
    insert(&mut outcome.detail, &[("source", json!(source)), ("url", json!(url))]);
    outcome
}

async fn imds_source(endpoint: Endpoint, timeout: Duration) -> Outcome {
    let mut bodies = Vec::new();
    let token = client::request(endpoint.addr, "PUT", IMDS_TOKEN_PATH, &[(IMDS_TTL_HEADER, "21600")], timeout).await;
    let (token, token_detail) = match token {
        Ok(reply) => {
            let text = String::from_utf8_lossy(&reply.body).trim().to_owned();
            let usable = reply.status == 200 && is_header_value(&text);
            bodies.push(reply.body);
            if usable {
                (Some(text), json!({"outcome": "obtained"}))
            } else {
                (None, json!({"outcome": "denied", "status": reply.status}))
            }
        }
        Err(e) => (None, failure(&e)),
    };
    let version = if token.is_some() { "v2" } else { "v1" };
    let headers: Vec<(&str, &str)> = token.as_deref().map(|t| (IMDS_TOKEN_HEADER, t)).into_iter().collect();
    let mut detail = json!({"source": "imds", "url": endpoint.to_string(), "version": version, "token": token_detail});
    let listing = match client::request(endpoint.addr, "GET", IMDS_ROLES_PATH, &headers, timeout).await {
        Err(e) => {
            insert(&mut detail, &[("roles", json!([]))]);
            merge(&mut detail, failure(&e));
            return Outcome { detail, principals: Vec::new(), bodies };
        }
        Ok(reply) => reply,
    };
    let roles: Vec<String> = if listing.status == 200 {
        String::from_utf8_lossy(&listing.body)
            .lines()
            .map(str::trim)
            .filter(|role| is_role_name(role))
            .take(MAX_ROLES)
            .map(str::to_owned)
            .collect()
    } else {
        Vec::new()
    };
    let listing_status = listing.status;
    bodies.push(listing.body);
    let mut principals = Vec::new();
    let mut role_details = Vec::new();
    for role in &roles {
        let path = format!("{IMDS_ROLES_PATH}{role}");
        let mut role_detail = match client::request(endpoint.addr, "GET", &path, &headers, timeout).await {
            Err(e) => failure(&e),
            Ok(reply) => {
                let (detail, principal) = credentials_document(reply.status, &reply.body);
                // IMDS documents carry no RoleArn; the role is the path's last segment.
                principals.extend(principal.map(|p| if p.starts_with("arn:") { p } else { format!("role/{role}") }));
                bodies.push(reply.body);
                detail
            }
        };
        insert(&mut role_detail, &[("role", json!(role))]);
        role_details.push(role_detail);
    }
    let outcome = match (listing_status, roles.is_empty(), principals.is_empty()) {
        (200, _, false) => json!({"outcome": "found", "principals": principals}),
        (200, true, _) => json!({"outcome": "no_role", "status": 200}),
        (200, false, true) => json!({"outcome": "no_credentials", "status": 200}),
        (404, ..) => json!({"outcome": "no_role", "status": 404}),
        (status, ..) => json!({"outcome": "denied", "status": status}),
    };
    insert(&mut detail, &[("roles", Value::Array(role_details))]);
    merge(&mut detail, outcome);
    Outcome { detail, principals, bodies }
}

/// Reads a credentials document (ECS or IMDS): the detail and the principal, if any.
fn credentials_document(status: u16, body: &[u8]) -> (Value, Option<String>) {
    if status != 200 {
        return (json!({"outcome": "denied", "status": status}), None);
    }
    let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| doc.get(name).and_then(Value::as_str).filter(|v| is_principal(v)).map(str::to_owned);
    let (role_arn, key) = (field("RoleArn"), field("AccessKeyId"));
    match role_arn.clone().or_else(|| key.clone()) {
        Some(principal) => (
            json!({"outcome": "found", "status": 200, "principal": principal, "role_arn": role_arn,
                   "access_key_id": key}),
            Some(principal),
        ),
        None => (json!({"outcome": "no_credentials", "status": 200}), None),
    }
}

/// The detail of a request that got no response: `unreachable` when no connection was made
/// (the isolation held), `error` when the peer was reached but the exchange failed.
fn failure(e: &FetchError) -> Value {
    let outcome = if e.connected { "error" } else { "unreachable" };
    json!({"outcome": outcome, "error": e.kind, "message": e.message})
}

fn insert(detail: &mut Value, fields: &[(&str, Value)]) {
    if let Value::Object(map) = detail {
        for (name, value) in fields {
            map.insert((*name).to_owned(), value.clone());
        }
    }
}

fn merge(detail: &mut Value, other: Value) {
    if let Value::Object(other) = other {
        let fields: Vec<(&str, Value)> = other.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        insert(detail, &fields);
    }
}

/// A role ARN (`arn:<partition>:iam::<account>:role/...` or an STS assumed-role ARN) spelled
/// out in `text`.
fn role_arn_in(text: &str) -> Option<&str> {
    let is_arn_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-:/".contains(c);
    let mut from = 0;
    while let Some(at) = text[from..].find("arn:") {
        let start = from + at;
        let end = text[start..].find(|c: char| !is_arn_char(c)).map_or(text.len(), |n| start + n);
        let arn = &text[start..end];
        if arn.contains(":role/") || arn.contains(":assumed-role/") {
            return Some(arn);
        }
        from = start + 4;
    }
    None
}

/// What may follow `isobench-principal:`: visible ASCII, no spaces, bounded.
fn is_principal(s: &str) -> bool {
    (1..=2048).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

fn is_path(s: &str) -> bool {
    s.starts_with('/') && s.len() <= 2048 && s.bytes().all(|b| b.is_ascii_graphic())
}

fn is_role_name(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn is_header_value(s: &str) -> bool {
    (1..=4096).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::{Arc, Mutex};

    use super::*;

    type Route = Box<dyn Fn(&str, &str, &[(String, String)]) -> (u16, String) + Send + Sync>;

    /// A stand-in metadata/credentials server: answers each request with `route(method, path,
    /// headers)` and records the requests.
    fn stub(route: Route) -> (Endpoint, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((n, v)) = h.split_once(':') {
                        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let token = headers.iter().any(|(n, _)| n == "x-aws-ec2-metadata-token");
                log.lock().unwrap().push(format!("{method} {path}{}", if token { " +token" } else { "" }));
                let (status, body) = route(&method, &path, &headers);
                let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            }
        });
        (Endpoint { addr }, seen)
    }

    fn closed() -> Endpoint {
        Endpoint { addr: TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap() }
    }

    const T: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn nothing_reachable_and_no_environment_finds_nothing() {
        let mut found = Found::new();
        let detail = sweep(closed(), closed(), &EnvCreds::default(), &[], T, &mut found).await;
        assert!(found.tokens().is_empty());
        let outcomes: Vec<_> = detail.iter().map(|d| (d["source"].as_str(), d["outcome"].as_str())).collect();
        assert_eq!(
            outcomes,
            [(Some("env"), Some("absent")), (Some("ecs"), Some("skipped")), (Some("imds"), Some("unreachable"))]
        );
        assert_eq!(
            (detail[2]["error"].as_str(), detail[2]["token"]["error"].as_str()),
            (Some("refused"), Some("refused"))
        );
    }

    #[tokio::test]
    async fn environment_ecs_extra_paths_and_imds_v2_each_give_a_principal() {
        let (ecs, _) = stub(Box::new(|_, path, _| {
            match path {
            "/v2/credentials/mine" => (200, r#"{"RoleArn":"arn:aws:iam::111122223333:role/task-a","AccessKeyId":"ASIAA","SecretAccessKey":"s","Token":"t isobench-canary:v1:unit:cred:1"}"#.into()),
            "/v2/credentials/other" => (200, r#"{"AccessKeyId":"ASIAB","SecretAccessKey":"s"}"#.into()),
            _ => (400, r#"{"code":"InvalidIdentifier"}"#.into()),
        }
        }));
        let (imds, seen) = stub(Box::new(|method, path, headers| {
            let has_token = headers.iter().any(|(n, v)| n == "x-aws-ec2-metadata-token" && v == "tok");
            match (method, path) {
                ("PUT", IMDS_TOKEN_PATH)
                    if headers.iter().any(|(n, v)| n == "x-aws-ec2-metadata-token-ttl-seconds" && v == "21600") =>
                {
                    (200, "tok".into())
                }
                ("GET", IMDS_ROLES_PATH) if has_token => (200, "instance-role\n".into()),
                ("GET", "/latest/meta-data/iam/security-credentials/instance-role") if has_token => {
                    (200, r#"{"Code":"Success","AccessKeyId":"ASIAIMDS","SecretAccessKey":"s","Token":"t"}"#.into())
                }
                _ => (401, String::new()),
            }
        }));
        let env = EnvCreds {
            access_key_id: Some("AKIAENV".into()),
            session_token: Some("x arn:aws:sts::111122223333:assumed-role/fn-role/session y".into()),
            role_arn: None,
            relative_uri: Some("/v2/credentials/mine".into()),
        };
        let paths = vec!["/v2/credentials/other".to_owned(), "/v2/credentials/nope".to_owned(), "no-slash".to_owned()];
        let mut found = Found::new();
        let detail = sweep(ecs, imds, &env, &paths, T, &mut found).await;
        assert_eq!(
            found.tokens(),
            [
                "isobench-principal:arn:aws:sts::111122223333:assumed-role/fn-role/session",
                "isobench-principal:arn:aws:iam::111122223333:role/task-a",
                "isobench-canary:v1:unit:cred:1",
                "isobench-principal:ASIAB",
                "isobench-principal:role/instance-role",
            ]
        );
        let sources: Vec<_> =
            detail.iter().map(|d| (d["source"].as_str().unwrap(), d["outcome"].as_str().unwrap())).collect();
        assert_eq!(
            sources,
            [
                ("env", "found"),
                ("ecs", "found"),
                ("ecs_path", "found"),
                ("ecs_path", "denied"),
                ("ecs_path", "bad_path"),
                ("imds", "found")
            ]
        );
        assert_eq!(detail[0]["principal_from"], "AWS_SESSION_TOKEN");
        assert_eq!(detail[3]["status"], 400);
        assert_eq!(
            (detail[5]["version"].as_str(), detail[5]["roles"][0]["role"].as_str()),
            (Some("v2"), Some("instance-role"))
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "PUT /latest/api/token",
                "GET /latest/meta-data/iam/security-credentials/ +token",
                "GET /latest/meta-data/iam/security-credentials/instance-role +token",
            ]
        );
        // No secret reached the detail.
        let text = serde_json::to_string(&detail).unwrap();
        assert!(!text.contains("SecretAccessKey") && !text.contains("\"s\""), "{text}");
    }

    #[tokio::test]
    async fn imds_falls_back_to_v1_and_isobench_role_arn_names_the_env_principal() {
        let (imds, seen) = stub(Box::new(|method, path, _| match (method, path) {
            ("PUT", _) => (405, String::new()),
            ("GET", IMDS_ROLES_PATH) => (200, "legacy\n".into()),
            ("GET", _) => (200, r#"{"AccessKeyId":"ASIAV1","RoleArn":"arn:aws:iam::1:role/legacy"}"#.into()),
            _ => (400, String::new()),
        }));
        let env = EnvCreds {
            access_key_id: Some("AKIAENV".into()),
            role_arn: Some("arn:aws:iam::1:role/env".into()),
            ..EnvCreds::default()
        };
        let mut found = Found::new();
        let detail = sweep(closed(), imds, &env, &[], T, &mut found).await;
        assert_eq!(
            found.tokens(),
            ["isobench-principal:arn:aws:iam::1:role/env", "isobench-principal:arn:aws:iam::1:role/legacy"]
        );
        assert_eq!((detail[1]["outcome"].as_str(), detail[1]["error"].as_str()), (Some("skipped"), None));
        assert_eq!((detail[2]["version"].as_str(), detail[2]["token"]["status"].as_u64()), (Some("v1"), Some(405)));
        assert!(seen.lock().unwrap().iter().skip(1).all(|r| !r.ends_with("+token")));
        // Without a relative URI but with extra paths, the endpoint is still tried.
        let detail =
            sweep(closed(), closed(), &EnvCreds::default(), &["/v2/credentials/x".into()], T, &mut found).await;
        assert_eq!(
            (detail[2]["outcome"].as_str(), detail[2]["error"].as_str()),
            (Some("unreachable"), Some("refused"))
        );
    }

    #[test]
    fn role_arns_in_session_tokens() {
        assert_eq!(role_arn_in("IQoJb3JpZ2luX2Vj"), None);
        assert_eq!(role_arn_in("arn:aws:s3:::bucket arn:aws:iam::1:role/a/b x"), Some("arn:aws:iam::1:role/a/b"));
        assert_eq!(
            role_arn_in("{\"arn\":\"arn:aws-cn:sts::1:assumed-role/r/s\"}"),
            Some("arn:aws-cn:sts::1:assumed-role/r/s")
        );
    }
}
