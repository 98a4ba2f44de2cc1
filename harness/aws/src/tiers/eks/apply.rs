//! Applies the tenants' objects through the cluster's Kubernetes API (`kube`, server-side
//! apply as field manager `isobench`) and waits for each tenant's pod to be ready. The client
//! is built from DescribeCluster's endpoint and CA and a token made as `aws eks get-token`
//! makes it ([`super::token`]). Never run against a real cluster from this repository's tests
//! (no cluster here; moto's clusters have no API server): the objects' rendering, the CA
//! decoding and the token are what is tested.

use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::objects::{APP, APP_LABEL, TenantObjects};
use crate::context::{DeployError, wait_for};

pub const FIELD_MANAGER: &str = "isobench";

fn err(what: &str) -> impl FnOnce(kube::Error) -> DeployError + '_ {
    move |e| DeployError::Other(format!("kubernetes: {what}: {e}"))
}

/// The DER certificates in EKS's `certificateAuthority.data` (base64 of a PEM bundle).
pub fn ca_certificates(data: &str) -> Result<Vec<Vec<u8>>, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let pem = b64.decode(data.trim()).map_err(|e| format!("the cluster's CA is not base64: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|_| "the cluster's CA is not PEM text".to_string())?;
    let mut out = Vec::new();
    for block in pem.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let body = block.split("-----END CERTIFICATE-----").next().unwrap_or_default();
        let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        out.push(b64.decode(body).map_err(|e| format!("a certificate of the cluster's CA: {e}"))?);
    }
    if out.is_empty() {
        return Err("the cluster's CA holds no certificate".into());
    }
    Ok(out)
}

/// A client of the API server at `endpoint` trusting `ca` (EKS's base64 PEM), with `token`.
pub fn client(endpoint: &str, ca: &str, token: String) -> Result<kube::Client, DeployError> {
    let uri = endpoint.parse().map_err(|e| DeployError::Other(format!("the cluster endpoint `{endpoint}`: {e}")))?;
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(ca_certificates(ca).map_err(DeployError::Other)?);
    config.auth_info.token = Some(token.into());
    kube::Client::try_from(config).map_err(err("client"))
}

async fn apply<K>(api: Api<K>, obj: &K) -> Result<(), DeployError>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(obj)).await.map_err(err(&format!("apply {name}")))?;
    Ok(())
}

/// Applies one tenant's objects: the namespace first, then what lives in it.
pub async fn apply_tenant(client: &kube::Client, o: &TenantObjects) -> Result<(), DeployError> {
    let ns = o.namespace.metadata.name.clone().unwrap_or_default();
    apply(Api::all(client.clone()), &o.namespace).await?;
    apply(Api::namespaced(client.clone(), &ns), &o.service_account).await?;
    if let Some(p) = &o.network_policy {
        // Before the pod exists, so it never runs unprotected.
        apply(Api::namespaced(client.clone(), &ns), p).await?;
    }
    apply(Api::namespaced(client.clone(), &ns), &o.service).await?;
    apply(Api::namespaced(client.clone(), &ns), &o.deployment).await
}

/// A ready pod of the tenant app in `namespace`: its name and address.
pub async fn wait_ready(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> Result<(String, String), DeployError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{APP_LABEL}={APP}");
    wait_for(&format!("the tenant-app pod in namespace {namespace}"), timeout, || {
        let (pods, selector) = (pods.clone(), selector.clone());
        async move {
            let list = pods.list(&ListParams::default().labels(&selector)).await.map_err(err("list pods"))?;
            Ok(list.items.iter().find_map(ready))
        }
    })
    .await
}

fn ready(p: &Pod) -> Option<(String, String)> {
    let status = p.status.as_ref()?;
    let ok = status.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    ok.then(|| Some((p.metadata.name.clone()?, status.pod_ip.clone()?))).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_ca_is_decoded_to_der() {
        let der = [0x30u8, 0x82, 0x01, 0x0a, 0xff];
        let b64 = base64::engine::general_purpose::STANDARD;
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            b64.encode(der),
            b64.encode([1u8, 2, 3])
        );
        let certs = ca_certificates(&b64.encode(pem)).unwrap();
        assert_eq!(certs, vec![der.to_vec(), vec![1, 2, 3]]);
        assert!(ca_certificates(&b64.encode("no certificate")).is_err());
        assert!(ca_certificates("%%").is_err());
    }
}
