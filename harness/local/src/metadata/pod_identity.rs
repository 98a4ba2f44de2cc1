//! The EKS Pod Identity agent's endpoint at `169.254.170.23:80` (a DaemonSet on the host
//! network of every node on AWS; one server per cluster here). `GET /v1/credentials` with
//! `Authorization: <the pod's projected service-account token>` (audience
//! `pods.eks.amazonaws.com`) answers the credentials of the role associated with the token's
//! (namespace, service account), in the container-credentials shape the AWS SDKs read from
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI`: `AccessKeyId`, `SecretAccessKey`, `Token`, `AccountId`,
//! `Expiration`.
//!
//! The token is a bearer credential, as on AWS: the agent (through EKS Auth's
//! `AssumeRoleForPodIdentity`) checks the token, not the caller's address. Answers: 400 with no
//! `Authorization` header, 403 for a token this cluster did not issue, that expired, has another
//! audience, or whose service account has no association.
//!
//! Emulator addition, labelled: the document also carries `RoleArn` (the real agent's does not;
//! the ECS agent's does), so the `cred` probe names the principal the same way for both agents.
//! SDKs ignore the extra field.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use isobench_core::scenario::ecs::ACCOUNT_ID;

use super::http::{Handler, Request, Response};
use super::sa_token::{POD_IDENTITY_AUDIENCE, ServiceAccountIssuer};
use super::{Credentials, json_str};

/// The agent's address on every node.
pub const POD_IDENTITY_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 23);
/// The path in `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
pub const POD_IDENTITY_PATH: &str = "/v1/credentials";

/// (namespace, service account).
type Account = (String, String);

/// The agent: the cluster's token issuer and its pod identity associations.
pub(crate) struct PodIdentityAgent {
    run: String,
    issuer: Arc<ServiceAccountIssuer>,
    /// Association -> role ARN, and the credentials issued for it (one session per association
    /// for the run, as the agent caches them).
    associations: RwLock<HashMap<Account, Credentials>>,
}

fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(status, format!("{{\"code\":{},\"message\":{}}}", json_str(code), json_str(message)))
}

impl PodIdentityAgent {
    pub(crate) fn new(run: &str, issuer: Arc<ServiceAccountIssuer>) -> PodIdentityAgent {
        PodIdentityAgent { run: run.to_owned(), issuer, associations: RwLock::default() }
    }

    /// `CreatePodIdentityAssociation`: pods of `service_account` in `namespace` get `role_arn`.
    /// Replaces an earlier association of the same service account.
    pub(crate) fn associate(&self, namespace: &str, service_account: &str, role_arn: &str) {
        let creds = Credentials::issue(&self.run, role_arn);
        self.associations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_owned(), service_account.to_owned()), creds);
    }

    /// Removes an association (its credentials are no longer served).
    #[cfg(test)]
    pub(crate) fn disassociate(&self, namespace: &str, service_account: &str) {
        let key = (namespace.to_owned(), service_account.to_owned());
        self.associations.write().unwrap_or_else(|e| e.into_inner()).remove(&key);
    }

    fn credentials(&self, token: &str) -> Response {
        let claims = match self.issuer.verify(token) {
            Ok(c) => c,
            Err(e) => return error(403, "AccessDeniedException", &e.to_string()),
        };
        if !claims.audiences.iter().any(|a| a == POD_IDENTITY_AUDIENCE) {
            return error(403, "AccessDeniedException", "token audience is not pods.eks.amazonaws.com");
        }
        let key = (claims.namespace, claims.service_account);
        let associations = self.associations.read().unwrap_or_else(|e| e.into_inner());
        let Some(c) = associations.get(&key) else {
            return error(403, "AccessDeniedException", "no pod identity association for this service account");
        };
        Response::json(
            200,
            format!(
                "{{\"AccessKeyId\":{},\"SecretAccessKey\":{},\"Token\":{},\"AccountId\":{},\"Expiration\":{},\"RoleArn\":{}}}",
                json_str(&c.access_key_id),
                json_str(&c.secret_access_key),
                json_str(&c.token),
                json_str(ACCOUNT_ID),
                json_str(&c.expiration),
                json_str(&c.role_arn),
            ),
        )
    }
}

impl Handler for PodIdentityAgent {
    fn handle(&self, req: &Request, _peer: SocketAddr) -> Response {
        if req.path() != POD_IDENTITY_PATH {
            return Response::text(404, "not found");
        }
        if req.method != "GET" {
            return Response::text(405, "method not allowed");
        }
        match req.header("authorization").map(str::trim) {
            None | Some("") => error(400, "InvalidParameterException", "missing Authorization header"),
            Some(token) => self.credentials(token),
        }
    }

    fn server_name(&self) -> &'static str {
        "isobench-eks-pod-identity-agent"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::sa_token::STS_AUDIENCE;

    fn get(a: &PodIdentityAgent, auth: Option<&str>) -> (u16, String) {
        let headers = auth.map(|t| ("authorization".to_owned(), t.to_owned())).into_iter().collect();
        let req = Request { method: "GET".into(), target: POD_IDENTITY_PATH.into(), headers, body: vec![] };
        let r = a.handle(&req, SocketAddr::from(([10, 0, 0, 2], 40000)));
        (r.status, String::from_utf8(r.body).unwrap())
    }

    #[test]
    fn a_pod_gets_its_service_accounts_role_and_nothing_else() {
        let issuer = Arc::new(ServiceAccountIssuer::new());
        let agent = PodIdentityAgent::new("r", issuer.clone());
        let role_a = "arn:aws:iam::000000000000:role/isobench-r-pod-a";
        agent.associate("tenant-a", "tenant-a", role_a);
        agent.associate("tenant-b", "tenant-b", "arn:aws:iam::000000000000:role/isobench-r-pod-b");

        let (status, body) = get(&agent, Some(&issuer.mint("tenant-a", "tenant-a", POD_IDENTITY_AUDIENCE)));
        assert_eq!(status, 200, "{body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        for k in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
            assert!(doc[k].as_str().is_some_and(|v| !v.is_empty()), "{k}: {body}");
        }
        assert_eq!((doc["AccountId"].as_str(), doc["RoleArn"].as_str()), (Some(ACCOUNT_ID), Some(role_a)));
        assert!(doc["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));

        assert_eq!(get(&agent, None).0, 400);
        assert_eq!(get(&agent, Some("not-a-token")).0, 403);
        // Unassociated service account, wrong audience, another cluster's token.
        assert_eq!(get(&agent, Some(&issuer.mint("tenant-a", "default", POD_IDENTITY_AUDIENCE))).0, 403);
        assert_eq!(get(&agent, Some(&issuer.mint("tenant-a", "tenant-a", STS_AUDIENCE))).0, 403);
        let other = ServiceAccountIssuer::new();
        assert_eq!(get(&agent, Some(&other.mint("tenant-a", "tenant-a", POD_IDENTITY_AUDIENCE))).0, 403);

        agent.disassociate("tenant-a", "tenant-a");
        assert_eq!(get(&agent, Some(&issuer.mint("tenant-a", "tenant-a", POD_IDENTITY_AUDIENCE))).0, 403);
        let post = Request { method: "POST".into(), target: POD_IDENTITY_PATH.into(), headers: vec![], body: vec![] };
        assert_eq!(agent.handle(&post, SocketAddr::from(([10, 0, 0, 2], 1))).status, 405);
    }
}
