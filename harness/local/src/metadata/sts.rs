//! An emulated STS for IRSA: `Action=AssumeRoleWithWebIdentity` (the AWS Query API: a
//! form-encoded `POST /`, unsigned, as the SDKs send it) answered in the real XML shape
//! (`AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials`, with
//! `AssumedRoleUser`, `SubjectFromWebIdentityToken`, `Audience`, `Provider`).
//!
//! It plays IAM's side too: the OIDC providers it knows (each cluster's
//! [`ServiceAccountIssuer`]) and each role's trust policy, which trusts exactly one provider
//! and one subject `system:serviceaccount:<ns>:<sa>` with audience `sts.amazonaws.com` (the
//! `StringEquals` conditions EKS's IRSA documentation writes). Refusals, as STS words them:
//! `InvalidIdentityToken` (400: unparseable, unknown provider, bad signature),
//! `ExpiredTokenException` (400), `AccessDenied` (403: no such role, or its trust does not
//! match the token's issuer, subject or audience), `ValidationError` / `InvalidAction` (400).
//!
//! Reduced fidelity: no JWKS discovery (see [`super::sa_token`]); no session policies,
//! `DurationSeconds` is ignored (sessions last [`super::CREDENTIALS_TTL`]).
//!
//! The endpoint's address is an emulator choice: [`STS_ADDR`]`:80`, link-local and bound in
//! the harness namespace like the other metadata endpoints; pods find it through
//! `AWS_ENDPOINT_URL_STS` (the real one is `sts.<region>.amazonaws.com`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use isobench_core::scenario::ecs::ACCOUNT_ID;

use super::http::{Handler, Request, Response};
use super::sa_token::{STS_AUDIENCE, ServiceAccountIssuer, TokenError};
use super::{Credentials, random_chars, uuid4};

/// Where the emulated STS listens (an emulator choice; see the module docs).
pub const STS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 30);

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// A role's web-identity trust: the one provider and subject it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Trust {
    issuer: String,
    subject: String,
}

/// The STS endpoint's state: OIDC providers by issuer URL, and roles' trust by role ARN.
pub(crate) struct Sts {
    run: String,
    providers: RwLock<HashMap<String, Arc<ServiceAccountIssuer>>>,
    roles: RwLock<HashMap<String, Trust>>,
}

impl Sts {
    pub(crate) fn new(run: &str) -> Sts {
        Sts { run: run.to_owned(), providers: RwLock::default(), roles: RwLock::default() }
    }

    /// IAM `CreateOpenIDConnectProvider` for a cluster's issuer.
    pub(crate) fn add_provider(&self, issuer: Arc<ServiceAccountIssuer>) {
        let url = issuer.issuer().to_owned();
        self.providers.write().unwrap_or_else(|e| e.into_inner()).insert(url, issuer);
    }

    /// A role `role_arn` whose trust policy allows exactly `system:serviceaccount:<ns>:<sa>`
    /// of the cluster whose issuer URL is `issuer`, with audience `sts.amazonaws.com`.
    pub(crate) fn add_role(&self, role_arn: &str, issuer: &str, namespace: &str, service_account: &str) {
        let trust = Trust { issuer: issuer.to_owned(), subject: super::sa_token::subject(namespace, service_account) };
        self.roles.write().unwrap_or_else(|e| e.into_inner()).insert(role_arn.to_owned(), trust);
    }

    /// Deletes a role (no more sessions for it).
    #[cfg(test)]
    pub(crate) fn remove_role(&self, role_arn: &str) {
        self.roles.write().unwrap_or_else(|e| e.into_inner()).remove(role_arn);
    }

    fn assume_role_with_web_identity(&self, form: &HashMap<String, String>) -> Response {
        let (Some(role_arn), Some(session), Some(token)) =
            (form.get("RoleArn"), form.get("RoleSessionName"), form.get("WebIdentityToken"))
        else {
            return sts_error(400, "ValidationError", "RoleArn, RoleSessionName and WebIdentityToken are required");
        };
        if !valid_session_name(session) {
            return sts_error(400, "ValidationError", "invalid RoleSessionName");
        }
        let Some(issuer) = unverified_issuer(token) else {
            return sts_error(400, "InvalidIdentityToken", "Couldn't parse the web identity token");
        };
        let provider = self.providers.read().unwrap_or_else(|e| e.into_inner()).get(&issuer).cloned();
        let Some(provider) = provider else {
            return sts_error(400, "InvalidIdentityToken", &format!("No OpenIDConnect provider found for {issuer}"));
        };
        let claims = match provider.verify(token) {
            Ok(c) => c,
            Err(TokenError::Expired) => return sts_error(400, "ExpiredTokenException", "Token expired"),
            Err(e) => return sts_error(400, "InvalidIdentityToken", &e.to_string()),
        };
        let trusted = self.roles.read().unwrap_or_else(|e| e.into_inner()).get(role_arn.as_str()).is_some_and(|t| {
            t.issuer == claims.issuer
                && t.subject == claims.subject
                && claims.audiences.iter().any(|a| a == STS_AUDIENCE)
        });
        if !trusted {
            return sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
        }
        let creds = Credentials::issue(&self.run, role_arn);
        let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
        let assumed_arn = format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name}/{session}");
        let body = format!(
            concat!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"{xmlns}\">\n",
                "  <AssumeRoleWithWebIdentityResult>\n",
                "    <SubjectFromWebIdentityToken>{sub}</SubjectFromWebIdentityToken>\n",
                "    <Audience>{aud}</Audience>\n",
                "    <AssumedRoleUser>\n",
                "      <Arn>{arn}</Arn>\n",
                "      <AssumedRoleId>AROA{role_id}:{session}</AssumedRoleId>\n",
                "    </AssumedRoleUser>\n",
                "    <Credentials>\n",
                "      <SessionToken>{token}</SessionToken>\n",
                "      <SecretAccessKey>{secret}</SecretAccessKey>\n",
                "      <Expiration>{exp}</Expiration>\n",
                "      <AccessKeyId>{key}</AccessKeyId>\n",
                "    </Credentials>\n",
                "    <Provider>{provider}</Provider>\n",
                "  </AssumeRoleWithWebIdentityResult>\n",
                "  <ResponseMetadata>\n",
                "    <RequestId>{request}</RequestId>\n",
                "  </ResponseMetadata>\n",
                "</AssumeRoleWithWebIdentityResponse>\n"
            ),
            xmlns = XMLNS,
            sub = xml(&claims.subject),
            aud = STS_AUDIENCE,
            arn = xml(&assumed_arn),
            role_id = random_chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 17),
            session = xml(session),
            token = xml(&creds.token),
            secret = xml(&creds.secret_access_key),
            exp = creds.expiration,
            key = creds.access_key_id,
            provider = xml(claims.issuer.trim_start_matches("https://")),
            request = uuid4(),
        );
        Response::new(200, "text/xml", body)
    }
}

impl Handler for Sts {
    fn handle(&self, req: &Request, _peer: SocketAddr) -> Response {
        // The Query API also takes its parameters in the query string.
        let query = req.target.split_once('?').map_or("", |(_, q)| q);
        let mut form = parse_form(query);
        if req.method == "POST" {
            form.extend(parse_form(&String::from_utf8_lossy(&req.body)));
        } else if req.method != "GET" {
            return sts_error(405, "InvalidAction", "use POST");
        }
        match form.get("Action").map(String::as_str) {
            Some("AssumeRoleWithWebIdentity") => self.assume_role_with_web_identity(&form),
            Some(other) => sts_error(400, "InvalidAction", &format!("Could not find operation {other}")),
            None => sts_error(400, "MissingAction", "Missing Action"),
        }
    }

    fn server_name(&self) -> &'static str {
        "isobench-sts"
    }
}

fn sts_error(status: u16, code: &str, message: &str) -> Response {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    Response::new(
        status,
        "text/xml",
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            xml(code),
            xml(message),
            uuid4()
        ),
    )
}

/// The `iss` of a token without checking it (to pick the provider that will).
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let claims = token.trim().split('.').nth(1)?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// `RoleSessionName`: 2 to 64 of `[\w+=,.@-]`.
fn valid_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// `application/x-www-form-urlencoded` pairs (later keys win).
fn parse_form(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::sa_token::POD_IDENTITY_AUDIENCE;

    fn post(sts: &Sts, body: &str) -> (u16, String) {
        let req =
            Request { method: "POST".into(), target: "/".into(), headers: vec![], body: body.as_bytes().to_vec() };
        let r = sts.handle(&req, SocketAddr::from(([10, 0, 0, 2], 40000)));
        (r.status, String::from_utf8(r.body).unwrap())
    }

    fn form(role: &str, token: &str) -> String {
        format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=botocore-session-1&WebIdentityToken={token}",
            role.replace(':', "%3A").replace('/', "%2F")
        )
    }

    fn code(body: &str) -> &str {
        body.split("<Code>").nth(1).and_then(|r| r.split("</Code>").next()).unwrap_or("")
    }

    #[test]
    fn a_service_account_assumes_its_role_only() {
        let issuer = Arc::new(ServiceAccountIssuer::new());
        let sts = Sts::new("r");
        sts.add_provider(issuer.clone());
        let (role_a, role_b) =
            ("arn:aws:iam::000000000000:role/isobench-r-pod-a", "arn:aws:iam::000000000000:role/isobench-r-pod-b");
        sts.add_role(role_a, issuer.issuer(), "tenant-a", "tenant-a");
        sts.add_role(role_b, issuer.issuer(), "tenant-b", "tenant-b");
        let token_a = issuer.mint("tenant-a", "tenant-a", STS_AUDIENCE);

        let (status, body) = post(&sts, &form(role_a, &token_a));
        assert_eq!(status, 200, "{body}");
        assert!(
            body.starts_with("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">")
        );
        for part in [
            "<Arn>arn:aws:sts::000000000000:assumed-role/isobench-r-pod-a/botocore-session-1</Arn>",
            "<SubjectFromWebIdentityToken>system:serviceaccount:tenant-a:tenant-a</SubjectFromWebIdentityToken>",
            "<Audience>sts.amazonaws.com</Audience>",
            "<AccessKeyId>ASIA",
            "<SecretAccessKey>",
            "<SessionToken>",
            "<Expiration>",
        ] {
            assert!(body.contains(part), "{part}: {body}");
        }
        let creds = body.split("<Credentials>").nth(1).unwrap();
        assert!(creds.contains("</Credentials>"));

        // Another tenant's role, a token for another audience, another cluster's token.
        assert_eq!(post(&sts, &form(role_b, &token_a)).0, 403);
        assert_eq!(code(&post(&sts, &form(role_b, &token_a)).1), "AccessDenied");
        let wrong_aud = issuer.mint("tenant-a", "tenant-a", POD_IDENTITY_AUDIENCE);
        assert_eq!(code(&post(&sts, &form(role_a, &wrong_aud)).1), "AccessDenied");
        let other = ServiceAccountIssuer::new();
        let foreign = other.mint("tenant-a", "tenant-a", STS_AUDIENCE);
        let (status, body) = post(&sts, &form(role_a, &foreign));
        assert_eq!((status, code(&body)), (400, "InvalidIdentityToken"));
        // The foreign cluster registered, but the role trusts ours.
        sts.add_provider(Arc::new(other));
        assert_eq!(code(&post(&sts, &form(role_a, &foreign)).1), "AccessDenied");
        assert_eq!(code(&post(&sts, &form(role_a, "garbage")).1), "InvalidIdentityToken");
        assert_eq!(code(&post(&sts, &form("arn:aws:iam::000000000000:role/nope", &token_a)).1), "AccessDenied");
        assert_eq!(code(&post(&sts, "Action=GetCallerIdentity").1), "InvalidAction");
        assert_eq!(code(&post(&sts, "Action=AssumeRoleWithWebIdentity").1), "ValidationError");
        sts.remove_role(role_a);
        assert_eq!(post(&sts, &form(role_a, &token_a)).0, 403);
    }

    #[test]
    fn forms_decode() {
        let f = parse_form("a=b%3Ac&d=e+f&g&h=%zz&i=%4");
        assert_eq!(f["a"], "b:c");
        assert_eq!(f["d"], "e f");
        assert_eq!(f["g"], "");
        assert_eq!(f["h"], "%zz");
        assert_eq!(f["i"], "%4");
        assert_eq!(xml("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
        assert!(valid_session_name("botocore-session-1") && !valid_session_name("a b") && !valid_session_name("a"));
    }
}
