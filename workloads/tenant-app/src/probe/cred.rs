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
//!    principal is `RoleArn` if the document has one, else `role/<name>` from the path. A token
//!    request that connects but never gets its answer (what an IMDSv2 hop limit of 1 does to a
//!    caller behind a router) reads `unreachable` with error `timeout`, not `error`.
//! 5. `pod_identity`: EKS Pod Identity, `GET $AWS_CONTAINER_CREDENTIALS_FULL_URI` with
//!    `Authorization:` the contents of `$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`; the principal
//!    as for `ecs` (`RoleArn`, else `AccessKeyId`).
//! 6. `web_identity`: IRSA, STS `AssumeRoleWithWebIdentity` (a form POST to
//!    `$AWS_ENDPOINT_URL_STS`) with `$AWS_ROLE_ARN` and the token in
//!    `$AWS_WEB_IDENTITY_TOKEN_FILE`; the principal is the answer's `AssumedRoleUser/Arn`. The
//!    probe resolves no names, so without `AWS_ENDPOINT_URL_STS` (an IP URL) it is skipped.
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
/// Largest token file read (projected service-account tokens are about 1 KiB).
const MAX_TOKEN_BYTES: u64 = 16 << 10;
/// The session name the probe asks STS for.
const SESSION_NAME: &str = "isobench-probe";

/// The credential variables of the environment, as read at the sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvCreds {
    pub access_key_id: Option<String>,
    pub session_token: Option<String>,
    pub role_arn: Option<String>,
    pub relative_uri: Option<String>,
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` (EKS Pod Identity).
    pub full_uri: Option<String>,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
    pub authorization_token_file: Option<String>,
    /// `AWS_ROLE_ARN` (IRSA).
    pub web_identity_role_arn: Option<String>,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`.
    pub web_identity_token_file: Option<String>,
    /// `AWS_ENDPOINT_URL_STS`.
    pub sts_endpoint: Option<String>,
}

impl EnvCreds {
    /// Reads them from the live environment (under the environment lock).
    pub fn capture() -> EnvCreds {
        EnvCreds {
            access_key_id: super::env::var("AWS_ACCESS_KEY_ID"),
            session_token: super::env::var("AWS_SESSION_TOKEN"),
            role_arn: super::env::var("ISOBENCH_ROLE_ARN"),
            relative_uri: super::env::var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
            full_uri: super::env::var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            authorization_token_file: super::env::var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            web_identity_role_arn: super::env::var("AWS_ROLE_ARN"),
            web_identity_token_file: super::env::var("AWS_WEB_IDENTITY_TOKEN_FILE"),
            sts_endpoint: super::env::var("AWS_ENDPOINT_URL_STS"),
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
    let (ecs_outcomes, imds_outcome, pod_identity, web_identity) = tokio::join!(
        join_ordered(ecs_fetches),
        imds_source(imds, timeout),
        pod_identity_source(env, timeout),
        web_identity_source(env, timeout)
    );
    outcomes.extend(ecs_outcomes.into_iter().map(|o| {
        o.unwrap_or_else(|| Outcome::detail(json!({"source": "ecs", "outcome": "error", "error": "internal"})))
    }));
    outcomes.extend([imds_outcome, pod_identity, web_identity]);
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
        Err(e) => (None, token_failure(&e)),
    };
    let token_unanswered = token_detail["outcome"] == "unreachable";
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
        // IMDSv2's answer never came and IMDSv1 is refused: IMDS is out of reach.
        (401, ..) if token_unanswered => json!({"outcome": "unreachable", "error": "timeout", "status": 401}),
        (status, ..) => json!({"outcome": "denied", "status": status}),
    };
    insert(&mut detail, &[("roles", Value::Array(role_details))]);
    merge(&mut detail, outcome);
    Outcome { detail, principals, bodies }
}

/// The token request's detail when it got no answer: a connection that never saw its answer
/// is how a hop limit shows (the answer died at a router), so it reads `unreachable`.
fn token_failure(e: &FetchError) -> Value {
    if e.connected && e.kind == "timeout" {
        return json!({"outcome": "unreachable", "error": "timeout", "connected": true, "message": e.message});
    }
    failure(e)
}

async fn pod_identity_source(env: &EnvCreds, timeout: Duration) -> Outcome {
    let Some(uri) = env.full_uri.as_deref() else {
        return Outcome::detail(json!({"source": "pod_identity", "outcome": "skipped",
                                      "reason": "AWS_CONTAINER_CREDENTIALS_FULL_URI is not set"}));
    };
    let Some((endpoint, path)) = split_url(uri) else {
        return Outcome::detail(json!({"source": "pod_identity", "url": uri, "outcome": "bad_url"}));
    };
    let (token, token_detail) = match env.authorization_token_file.as_deref().map(read_token) {
        None => (None, json!("absent")),
        Some(Ok(t)) => (Some(t), json!("read")),
        Some(Err(e)) => (None, json!({"unreadable": e})),
    };
    let headers: Vec<(&str, &str)> = token.as_deref().map(|t| ("Authorization", t)).into_iter().collect();
    let mut outcome = match client::request(endpoint.addr, "GET", &path, &headers, timeout).await {
        Err(e) => Outcome::detail(failure(&e)),
        Ok(reply) => {
            let (detail, principal) = credentials_document(reply.status, &reply.body);
            Outcome { detail, principals: principal.into_iter().collect(), bodies: vec![reply.body] }
        }
    };
    insert(&mut outcome.detail, &[("source", json!("pod_identity")), ("url", json!(uri)), ("token", token_detail)]);
    outcome
}

async fn web_identity_source(env: &EnvCreds, timeout: Duration) -> Outcome {
    let detail = |fields: Value| {
        let mut d = json!({"source": "web_identity"});
        merge(&mut d, fields);
        d
    };
    let (Some(role), Some(file)) = (env.web_identity_role_arn.as_deref(), env.web_identity_token_file.as_deref())
    else {
        return Outcome::detail(detail(json!({"outcome": "skipped",
                                             "reason": "AWS_ROLE_ARN or AWS_WEB_IDENTITY_TOKEN_FILE is not set"})));
    };
    let Some(sts) = env.sts_endpoint.as_deref() else {
        return Outcome::detail(detail(json!({"outcome": "skipped",
            "reason": "AWS_ENDPOINT_URL_STS is not set (the probe resolves no names)"})));
    };
    let Ok(endpoint) = sts.parse::<Endpoint>() else {
        return Outcome::detail(detail(json!({"outcome": "bad_url", "url": sts})));
    };
    let token = match read_token(file) {
        Ok(t) => t,
        Err(e) => return Outcome::detail(detail(json!({"outcome": "error", "error": "token_file", "message": e}))),
    };
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={SESSION_NAME}&WebIdentityToken={}",
        url_encode(role),
        url_encode(&token)
    );
    let headers = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")];
    let reply = client::request_with_body(endpoint.addr, "POST", "/", &headers, body.as_bytes(), timeout).await;
    let mut outcome = match reply {
        Err(e) => Outcome::detail(failure(&e)),
        Ok(reply) => {
            let (d, principal) = sts_answer(reply.status, &reply.body);
            Outcome { detail: d, principals: principal.into_iter().collect(), bodies: vec![reply.body] }
        }
    };
    merge(&mut outcome.detail, detail(json!({"url": endpoint.to_string(), "role_arn": role})));
    outcome
}

/// Reads an `AssumeRoleWithWebIdentity` answer: the detail and the principal (the assumed
/// role's ARN, else the access key id).
fn sts_answer(status: u16, body: &[u8]) -> (Value, Option<String>) {
    let text = String::from_utf8_lossy(body);
    if status != 200 {
        return (json!({"outcome": "denied", "status": status, "code": xml_text(&text, "Code")}), None);
    }
    let arn =
        text.split_once("<AssumedRoleUser>").and_then(|(_, user)| xml_text(user, "Arn")).filter(|a| is_principal(a));
    let key = xml_text(&text, "AccessKeyId").filter(|k| is_principal(k));
    match arn.clone().or_else(|| key.clone()) {
        Some(principal) => (
            json!({"outcome": "found", "status": 200, "principal": principal, "assumed_role_arn": arn,
                   "access_key_id": key}),
            Some(principal),
        ),
        None => (json!({"outcome": "no_credentials", "status": 200}), None),
    }
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..start + len].trim().to_owned())
}

/// `http://IP[:PORT]/path` as the endpoint and the path (`/` when there is none).
fn split_url(url: &str) -> Option<(Endpoint, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let addr = client::parse_addr(authority, Some(80))?;
    is_path(&path).then_some((Endpoint { addr }, path))
}

/// A token file's contents, trimmed; an error message if it cannot be read or is not a header
/// value.
fn read_token(path: &str) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKEN_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("{path}: {e}"))?;
    let token = text.trim();
    if is_header_value(token) { Ok(token.to_owned()) } else { Err(format!("{path}: not a token")) }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
    use std::io::{BufRead, BufReader, Read, Write};
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
        let route = Arc::new(route);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (log, route) = (Arc::clone(&log), Arc::clone(&route));
                std::thread::spawn(move || {
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
                    let len =
                        headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).unwrap();
                    // The body, for routes that read one, as a pseudo-header.
                    headers.push(("#body".into(), String::from_utf8(body).unwrap()));
                    let token = headers.iter().any(|(n, _)| n == "x-aws-ec2-metadata-token");
                    log.lock().unwrap().push(format!("{method} {path}{}", if token { " +token" } else { "" }));
                    let (status, body) = route(&method, &path, &headers);
                    if status == 0 {
                        // Never answer (a hop-limited answer dies on the way).
                        std::thread::sleep(Duration::from_secs(2));
                        return;
                    }
                    let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                });
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
            [
                (Some("env"), Some("absent")),
                (Some("ecs"), Some("skipped")),
                (Some("imds"), Some("unreachable")),
                (Some("pod_identity"), Some("skipped")),
                (Some("web_identity"), Some("skipped")),
            ]
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
            ..EnvCreds::default()
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
                ("imds", "found"),
                ("pod_identity", "skipped"),
                ("web_identity", "skipped"),
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

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn pod_identity_and_web_identity_each_give_their_principal() {
        let tmp = tempfile::tempdir().unwrap();
        let (pod_token, web_token) = (tmp.path().join("pod-token"), tmp.path().join("web-token"));
        std::fs::write(&pod_token, "pod.jwt.sig\n").unwrap();
        std::fs::write(&web_token, "web.jwt+/=\n").unwrap();
        let (agent, agent_seen) = stub(Box::new(|method, path, headers| {
            match (method, path) {
            ("GET", "/v1/credentials") if header(headers, "authorization") == Some("pod.jwt.sig") => (
                200,
                r#"{"AccessKeyId":"ASIAPOD","SecretAccessKey":"s","Token":"t","AccountId":"111122223333","Expiration":"2030-01-01T00:00:00Z","RoleArn":"arn:aws:iam::111122223333:role/pod-a"}"#.into(),
            ),
            _ => (403, r#"{"code":"AccessDeniedException"}"#.into()),
        }
        }));
        let (sts, _) = stub(Box::new(|method, path, headers| {
            let body = header(headers, "#body").unwrap_or("");
            let form_ok = header(headers, "content-type")
                .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
                && body.contains("Action=AssumeRoleWithWebIdentity")
                && body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Firsa-a")
                && body.contains("WebIdentityToken=web.jwt%2B%2F%3D")
                && body.contains("RoleSessionName=isobench-probe");
            if (method, path, form_ok) != ("POST", "/", true) {
                return (400, "<ErrorResponse><Error><Code>ValidationError</Code></Error></ErrorResponse>".into());
            }
            (
                200,
                concat!(
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>",
                    "<AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/irsa-a/isobench-probe</Arn>",
                    "<AssumedRoleId>AROAX:isobench-probe</AssumedRoleId></AssumedRoleUser>",
                    "<Credentials><SessionToken>t</SessionToken><SecretAccessKey>s</SecretAccessKey>",
                    "<Expiration>2030-01-01T00:00:00Z</Expiration><AccessKeyId>ASIAWEB</AccessKeyId></Credentials>",
                    "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
                )
                .into(),
            )
        }));
        let env = EnvCreds {
            full_uri: Some(format!("{agent}/v1/credentials")),
            authorization_token_file: Some(pod_token.to_string_lossy().into_owned()),
            web_identity_role_arn: Some("arn:aws:iam::111122223333:role/irsa-a".into()),
            web_identity_token_file: Some(web_token.to_string_lossy().into_owned()),
            sts_endpoint: Some(format!("{sts}/")),
            ..EnvCreds::default()
        };
        let mut found = Found::new();
        let detail = sweep(closed(), closed(), &env, &[], T, &mut found).await;
        assert_eq!(
            found.tokens(),
            [
                "isobench-principal:arn:aws:iam::111122223333:role/pod-a",
                "isobench-principal:arn:aws:sts::111122223333:assumed-role/irsa-a/isobench-probe",
            ]
        );
        let (pod, web) = (&detail[3], &detail[4]);
        assert_eq!(
            (pod["source"].as_str(), pod["outcome"].as_str(), pod["token"].as_str()),
            (Some("pod_identity"), Some("found"), Some("read"))
        );
        assert_eq!((web["source"].as_str(), web["outcome"].as_str()), (Some("web_identity"), Some("found")));
        assert_eq!(web["access_key_id"], "ASIAWEB");
        assert_eq!(*agent_seen.lock().unwrap(), ["GET /v1/credentials"]);
        let text = serde_json::to_string(&detail).unwrap();
        assert!(!text.contains("\"s\"") && !text.contains("jwt"), "no secret or token in the detail: {text}");

        // Another tenant's token: both refuse.
        std::fs::write(&pod_token, "other").unwrap();
        std::fs::write(&web_token, "other").unwrap();
        let detail = sweep(closed(), closed(), &env, &[], T, &mut found).await;
        assert_eq!((detail[3]["outcome"].as_str(), detail[3]["status"].as_u64()), (Some("denied"), Some(403)));
        assert_eq!(
            (detail[4]["outcome"].as_str(), detail[4]["code"].as_str()),
            (Some("denied"), Some("ValidationError"))
        );
        // No token file; no STS endpoint; a missing token file.
        let bare = EnvCreds { authorization_token_file: None, sts_endpoint: None, ..env.clone() };
        let detail = sweep(closed(), closed(), &bare, &[], T, &mut found).await;
        assert_eq!((detail[3]["outcome"].as_str(), detail[3]["token"].as_str()), (Some("denied"), Some("absent")));
        assert_eq!(detail[4]["outcome"], "skipped");
        let gone = EnvCreds { web_identity_token_file: Some("/nonexistent/token".into()), ..env.clone() };
        assert_eq!(sweep(closed(), closed(), &gone, &[], T, &mut found).await[4]["error"], "token_file");
        // Unreachable endpoints read as such.
        let down = EnvCreds {
            full_uri: Some(format!("{}/v1/credentials", closed())),
            sts_endpoint: Some(closed().to_string()),
            ..env
        };
        std::fs::write(&web_token, "web").unwrap();
        let detail = sweep(closed(), closed(), &down, &[], T, &mut found).await;
        assert_eq!(
            (detail[3]["outcome"].as_str(), detail[4]["outcome"].as_str()),
            (Some("unreachable"), Some("unreachable"))
        );
    }

    #[tokio::test]
    async fn an_unanswered_token_request_reads_unreachable_not_error() {
        // A hop limit of 1 behind a router: the PUT connects but its answer never arrives.
        let (required, _) =
            stub(Box::new(|method, _, _| if method == "PUT" { (0, String::new()) } else { (401, String::new()) }));
        let mut found = Found::new();
        let detail = sweep(closed(), required, &EnvCreds::default(), &[], T, &mut found).await;
        let imds = &detail[2];
        assert_eq!(
            (imds["token"]["outcome"].as_str(), imds["token"]["error"].as_str()),
            (Some("unreachable"), Some("timeout"))
        );
        assert_eq!(
            (imds["outcome"].as_str(), imds["error"].as_str(), imds["version"].as_str()),
            (Some("unreachable"), Some("timeout"), Some("v1"))
        );
        assert!(found.tokens().is_empty());
        // With IMDSv1 allowed the hop limit does not protect the role, as on AWS.
        let (optional, _) = stub(Box::new(|method, path, _| match (method, path) {
            ("PUT", _) => (0, String::new()),
            ("GET", IMDS_ROLES_PATH) => (200, "node-role\n".into()),
            _ => (200, r#"{"AccessKeyId":"ASIANODE"}"#.into()),
        }));
        let detail = sweep(closed(), optional, &EnvCreds::default(), &[], T, &mut found).await;
        assert_eq!(
            (detail[2]["outcome"].as_str(), detail[2]["token"]["outcome"].as_str()),
            (Some("found"), Some("unreachable"))
        );
        assert_eq!(found.tokens(), ["isobench-principal:role/node-role"]);
        // A token request refused at once (not hop-limited) stays what it was.
        let (refusing, _) = stub(Box::new(|_, _, _| (401, String::new())));
        let detail = sweep(closed(), refusing, &EnvCreds::default(), &[], T, &mut found).await;
        assert_eq!((detail[2]["outcome"].as_str(), detail[2]["status"].as_u64()), (Some("denied"), Some(401)));
    }

    #[test]
    fn urls_and_encoding() {
        let (e, p) = split_url("http://169.254.170.23/v1/credentials").unwrap();
        assert_eq!((e.to_string(), p.as_str()), ("http://169.254.170.23".into(), "/v1/credentials"));
        assert_eq!(split_url("http://127.0.0.1:8080").unwrap().1, "/");
        assert!(split_url("https://169.254.170.23/v1").is_none() && split_url("http://host.name/x").is_none());
        assert_eq!(url_encode("a:b/c+d=e~f.g_h-i j"), "a%3Ab%2Fc%2Bd%3De~f.g_h-i%20j");
        assert_eq!(xml_text("<a><Code> X </Code></a>", "Code").as_deref(), Some("X"));
        assert_eq!(xml_text("<a>", "Code"), None);
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
