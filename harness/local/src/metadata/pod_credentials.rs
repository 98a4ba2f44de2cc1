//! Credentials as an EKS cluster gives them to pods, per (namespace, service account), in one of
//! two ways: EKS Pod Identity (the agent at `169.254.170.23`, [`super::pod_identity`]) or IRSA
//! (a projected token and STS `AssumeRoleWithWebIdentity`, [`super::sts`]). One
//! [`PodCredentials`] per cluster: its token issuer ([`ServiceAccountIssuer`]), the endpoint to
//! serve, and what the EKS webhooks put into each pod.
//!
//! How the EKS tier uses it (all on the harness side):
//! 1. `PodCredentials::new(run, source)`.
//! 2. Bind a listener on [`PodCredentials::endpoint_addr`]`:`[`super::METADATA_PORT`] inside the
//!    harness namespace (on the launcher thread, after adding the address to the cluster's
//!    bridge: `listen_on_device(addr, bridge)` as the ECS and EC2 IMDS do, so several clusters
//!    can share the address), then [`PodCredentials::start`] it. Pods reach it through a /32
//!    route via their gateway, like the ECS agent endpoint.
//! 3. [`PodCredentials::grant`] each tenant's (namespace, service account) its role (a pod
//!    identity association, or an IAM role whose trust names exactly that service account of
//!    this cluster's OIDC provider).
//! 4. Per pod, [`PodCredentials::env_and_files`]: the variables to add to its environment and
//!    the token file to write inside its mount namespace (absolute paths in the pod).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::REGION;
use super::http::{Handler, Server};
use super::pod_identity::{POD_IDENTITY_ADDR, POD_IDENTITY_PATH, PodIdentityAgent};
use super::sa_token::{POD_IDENTITY_AUDIENCE, STS_AUDIENCE, ServiceAccountIssuer};
use super::sts::{STS_ADDR, Sts};

/// Where a pod's token goes with EKS Pod Identity.
pub const POD_IDENTITY_TOKEN_FILE: &str =
    "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token";
/// Where a pod's token goes with IRSA.
pub const WEB_IDENTITY_TOKEN_FILE: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";

/// Environment variables for a pod, `(name, value)`.
pub(crate) type PodEnv = Vec<(String, String)>;
/// Files for a pod: `(absolute path inside the pod, contents)`.
pub(crate) type PodFiles = Vec<(PathBuf, Vec<u8>)>;

/// Which of EKS's two per-pod credential mechanisms a cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodCredentialSource {
    PodIdentity,
    Irsa,
}

/// One cluster's pod credentials: its issuer, its endpoint's state and the grants.
pub(crate) struct PodCredentials {
    source: PodCredentialSource,
    issuer: Arc<ServiceAccountIssuer>,
    agent: Arc<PodIdentityAgent>,
    sts: Arc<Sts>,
    /// (namespace, service account) -> role ARN.
    grants: Mutex<BTreeMap<(String, String), String>>,
}

impl PodCredentials {
    /// A cluster with a fresh issuer (its OIDC provider registered with its STS).
    pub(crate) fn new(run: &str, source: PodCredentialSource) -> PodCredentials {
        let issuer = Arc::new(ServiceAccountIssuer::new());
        let sts = Arc::new(Sts::new(run));
        sts.add_provider(issuer.clone());
        PodCredentials {
            source,
            agent: Arc::new(PodIdentityAgent::new(run, issuer.clone())),
            issuer,
            sts,
            grants: Mutex::default(),
        }
    }

    /// The cluster's token issuer (its `iss` is the OIDC issuer URL a plan may show).
    #[cfg(test)]
    pub(crate) fn issuer(&self) -> &Arc<ServiceAccountIssuer> {
        &self.issuer
    }

    /// The address the endpoint listens on (port [`super::METADATA_PORT`]): the Pod Identity
    /// agent's `169.254.170.23`, or the emulated STS's [`STS_ADDR`].
    pub(crate) fn endpoint_addr(&self) -> Ipv4Addr {
        match self.source {
            PodCredentialSource::PodIdentity => POD_IDENTITY_ADDR,
            PodCredentialSource::Irsa => STS_ADDR,
        }
    }

    fn handler(&self) -> Arc<dyn Handler> {
        match self.source {
            PodCredentialSource::PodIdentity => self.agent.clone(),
            PodCredentialSource::Irsa => self.sts.clone(),
        }
    }

    /// Serves the endpoint on `listener` (bound by the caller, see the module docs).
    pub(crate) fn start(&self, listener: TcpListener) -> std::io::Result<Server> {
        let name = match self.source {
            PodCredentialSource::PodIdentity => "eks-pod-identity",
            PodCredentialSource::Irsa => "sts",
        };
        Server::start(name, listener, self.handler())
    }

    /// Pods of `service_account` in `namespace` get `role_arn`: a pod identity association, or
    /// (IRSA) the role with a trust policy for exactly that service account of this cluster.
    pub(crate) fn grant(&self, namespace: &str, service_account: &str, role_arn: &str) {
        match self.source {
            PodCredentialSource::PodIdentity => self.agent.associate(namespace, service_account, role_arn),
            PodCredentialSource::Irsa => self.sts.add_role(role_arn, self.issuer.issuer(), namespace, service_account),
        }
        let key = (namespace.to_owned(), service_account.to_owned());
        self.grants.lock().unwrap_or_else(|e| e.into_inner()).insert(key, role_arn.to_owned());
    }

    /// Undoes [`Self::grant`].
    #[cfg(test)]
    pub(crate) fn revoke(&self, namespace: &str, service_account: &str) {
        let key = (namespace.to_owned(), service_account.to_owned());
        let Some(role) = self.grants.lock().unwrap_or_else(|e| e.into_inner()).remove(&key) else { return };
        match self.source {
            PodCredentialSource::PodIdentity => self.agent.disassociate(namespace, service_account),
            PodCredentialSource::Irsa => self.sts.remove_role(&role),
        }
    }

    /// The role granted to a service account, if any.
    pub(crate) fn role(&self, namespace: &str, service_account: &str) -> Option<String> {
        let key = (namespace.to_owned(), service_account.to_owned());
        self.grants.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned()
    }

    /// What the EKS webhooks add to a pod of `service_account` in `namespace`: environment
    /// variables, and files (absolute paths inside the pod, contents) holding a freshly minted
    /// projected token. Nothing for a service account without a grant (EKS injects nothing).
    pub(crate) fn env_and_files(&self, namespace: &str, service_account: &str) -> (PodEnv, PodFiles) {
        let Some(role) = self.role(namespace, service_account) else { return (Vec::new(), Vec::new()) };
        let var = |k: &str, v: String| (k.to_owned(), v);
        let mut env = vec![
            var("AWS_STS_REGIONAL_ENDPOINTS", "regional".into()),
            var("AWS_DEFAULT_REGION", REGION.into()),
            var("AWS_REGION", REGION.into()),
        ];
        let (file, audience) = match self.source {
            PodCredentialSource::PodIdentity => {
                env.push(var(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    format!("http://{POD_IDENTITY_ADDR}{POD_IDENTITY_PATH}"),
                ));
                env.push(var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", POD_IDENTITY_TOKEN_FILE.into()));
                (POD_IDENTITY_TOKEN_FILE, POD_IDENTITY_AUDIENCE)
            }
            PodCredentialSource::Irsa => {
                env.push(var("AWS_ROLE_ARN", role));
                env.push(var("AWS_WEB_IDENTITY_TOKEN_FILE", WEB_IDENTITY_TOKEN_FILE.into()));
                // Emulator addition: the STS endpoint (AWS's is sts.us-east-1.amazonaws.com).
                env.push(var("AWS_ENDPOINT_URL_STS", format!("http://{STS_ADDR}")));
                (WEB_IDENTITY_TOKEN_FILE, STS_AUDIENCE)
            }
        };
        let token = self.issuer.mint(namespace, service_account, audience);
        (env, vec![(PathBuf::from(file), token.into_bytes())])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn pods_get_the_webhooks_variables_and_a_token_for_their_service_account() {
        let pi = PodCredentials::new("r", PodCredentialSource::PodIdentity);
        assert_eq!(pi.env_and_files("tenant-a", "tenant-a"), (vec![], vec![]), "no grant, no injection");
        pi.grant("tenant-a", "tenant-a", "arn:aws:iam::000000000000:role/isobench-r-pod-a");
        let (env, files) = pi.env_and_files("tenant-a", "tenant-a");
        let env: HashMap<_, _> = env.into_iter().collect();
        assert_eq!(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], "http://169.254.170.23/v1/credentials");
        assert_eq!(env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], POD_IDENTITY_TOKEN_FILE);
        assert_eq!(files[0].0, PathBuf::from(POD_IDENTITY_TOKEN_FILE));
        let claims = pi.issuer().verify(std::str::from_utf8(&files[0].1).unwrap()).unwrap();
        assert_eq!(
            (claims.subject.as_str(), claims.audiences[0].as_str()),
            ("system:serviceaccount:tenant-a:tenant-a", POD_IDENTITY_AUDIENCE)
        );
        assert_eq!(pi.endpoint_addr(), POD_IDENTITY_ADDR);

        let irsa = PodCredentials::new("r", PodCredentialSource::Irsa);
        irsa.grant("tenant-b", "tenant-b", "arn:aws:iam::000000000000:role/isobench-r-pod-b");
        let (env, files) = irsa.env_and_files("tenant-b", "tenant-b");
        let env: HashMap<_, _> = env.into_iter().collect();
        assert_eq!(env["AWS_ROLE_ARN"], "arn:aws:iam::000000000000:role/isobench-r-pod-b");
        assert_eq!(env["AWS_WEB_IDENTITY_TOKEN_FILE"], WEB_IDENTITY_TOKEN_FILE);
        assert_eq!(env["AWS_ENDPOINT_URL_STS"], "http://169.254.170.30");
        let claims = irsa.issuer().verify(std::str::from_utf8(&files[0].1).unwrap()).unwrap();
        assert_eq!(claims.audiences, [STS_AUDIENCE]);
        assert_eq!(irsa.endpoint_addr(), STS_ADDR);
        irsa.revoke("tenant-b", "tenant-b");
        assert_eq!(irsa.env_and_files("tenant-b", "tenant-b").0, vec![]);
    }

    #[test]
    fn both_endpoints_serve_over_http() {
        use std::io::{Read, Write};
        for source in [PodCredentialSource::PodIdentity, PodCredentialSource::Irsa] {
            let pc = PodCredentials::new("r", source);
            pc.grant("ns", "sa", "arn:aws:iam::000000000000:role/isobench-r-pod-x");
            let server = pc.start(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
            let (env, files) = pc.env_and_files("ns", "sa");
            let token = String::from_utf8(files[0].1.clone()).unwrap();
            let req = match source {
                PodCredentialSource::PodIdentity => {
                    format!("GET /v1/credentials HTTP/1.1\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n")
                }
                PodCredentialSource::Irsa => {
                    let role = &env.iter().find(|(k, _)| k == "AWS_ROLE_ARN").unwrap().1;
                    let body = format!(
                        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={role}&RoleSessionName=s1&WebIdentityToken={token}"
                    );
                    format!(
                        "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
            };
            let mut s = std::net::TcpStream::connect(server.local_addr()).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{source:?}: {answer}");
            assert!(answer.contains("isobench-r-pod-x"), "{answer}");
            server.stop();
        }
    }
}
