//! The Kubernetes objects of one tenant, as typed `k8s-openapi` objects: its Namespace, its
//! ServiceAccount (IRSA: annotated with the tenant's role), the tenant-app Deployment (one pod,
//! requests = limits, on its tenant's node for node-per-tenant), a Service, and with a
//! default-deny policy a NetworkPolicy admitting ingress only from the namespace itself and the
//! harness. Rendering is pure, so the objects are unit-tested field by field; [`super::apply`]
//! sends them.

use std::collections::BTreeMap;

use isobench_core::workload_api::DEFAULT_PORT;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Namespace, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Service,
    ServiceAccount, ServicePort, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::settings::{Credentials, Pattern, Settings};

/// The IRSA annotation naming the role a service account's pods assume.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The label carrying the tenant, on every object, and on a tenant's nodes (node-per-tenant).
pub const TENANT_LABEL: &str = "isobench/tenant";
pub const RUN_LABEL: &str = "isobench/run";
pub const APP_LABEL: &str = "app.kubernetes.io/name";
pub const APP: &str = "tenant-app";
/// The label Kubernetes puts on every namespace with its own name (1.21+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where the harness's traffic comes from, for the network policy: the scenario's
/// `harness_cidr`, or the run's VPC less the subnets the pods get their addresses from (the
/// VPC CNI gives pods addresses of their node's subnet), so the agents are admitted and other
/// tenants' pods are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarnessSource {
    Cidr(String),
    VpcExcept { vpc: String, pod_subnets: Vec<String> },
}

/// What one tenant's objects are made from.
#[derive(Debug, Clone)]
pub struct TenantInput<'a> {
    pub settings: &'a Settings,
    pub run: &'a str,
    pub tenant: &'a str,
    /// The container's command (fetch the workload, serve).
    pub command: Vec<String>,
    pub image: &'a str,
    /// IRSA: the tenant's role.
    pub role_arn: Option<&'a str>,
    pub harness: &'a HarnessSource,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TenantObjects {
    pub namespace: Namespace,
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: Option<NetworkPolicy>,
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn meta(name: &str, namespace: Option<&str>, labels: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    }
}

/// A label value from a run id (labels take at most 63 of `[A-Za-z0-9_.-]`).
fn label_value(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).take(63).collect()
}

/// Every object of `x.tenant`.
pub fn render(x: &TenantInput<'_>) -> TenantObjects {
    let s = x.settings;
    let ns = s.namespace(x.tenant);
    let sa = s.service_account(x.tenant);
    let run = label_value(x.run);
    let common = labels(&[(TENANT_LABEL, x.tenant), (RUN_LABEL, &run)]);
    let app = labels(&[(APP_LABEL, APP), (TENANT_LABEL, x.tenant)]);
    let mut pod_labels = common.clone();
    pod_labels.extend(app.clone());
    let mut account = meta(&sa, Some(&ns), &common);
    if s.credentials == Credentials::Irsa {
        account.annotations = x.role_arn.map(|arn| labels(&[(ROLE_ARN_ANNOTATION, arn)]));
    }
    TenantObjects {
        namespace: Namespace { metadata: meta(&ns, None, &common), ..Namespace::default() },
        service_account: ServiceAccount { metadata: account, ..ServiceAccount::default() },
        deployment: deployment(x, &ns, &sa, &common, &app, &pod_labels),
        service: service(&ns, &common, &app),
        network_policy: s.default_deny.then(|| network_policy(&ns, &common, x.harness)),
    }
}

fn deployment(
    x: &TenantInput<'_>,
    ns: &str,
    sa: &str,
    common: &BTreeMap<String, String>,
    app: &BTreeMap<String, String>,
    pod_labels: &BTreeMap<String, String>,
) -> Deployment {
    let s = x.settings;
    // Requests = limits: the Guaranteed QoS class, a cgroup of exactly the scenario's size.
    let size = BTreeMap::from([
        ("cpu".to_string(), Quantity(format!("{}m", s.cpu_millis))),
        ("memory".to_string(), Quantity(format!("{}Mi", s.memory_mib))),
    ]);
    let container = Container {
        name: APP.into(),
        image: Some(x.image.to_string()),
        command: Some(x.command.clone()),
        env: Some(vec![EnvVar { name: "TENANT_APP_TENANT".into(), value: Some(x.tenant.into()), ..EnvVar::default() }]),
        ports: Some(vec![ContainerPort { container_port: i32::from(DEFAULT_PORT), ..ContainerPort::default() }]),
        resources: Some(ResourceRequirements {
            requests: Some(size.clone()),
            limits: Some(size),
            ..ResourceRequirements::default()
        }),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(i32::from(DEFAULT_PORT)), host: None }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        ..Container::default()
    };
    // Node per tenant: the pod only on its tenant's node (the node group's label).
    let node_selector = (s.pattern == Pattern::NodePerTenant).then(|| labels(&[(TENANT_LABEL, x.tenant)]));
    Deployment {
        metadata: meta(APP, Some(ns), common),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(app.clone()), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels.clone()), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(sa.to_string()),
                    containers: vec![container],
                    node_selector,
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn service(ns: &str, common: &BTreeMap<String, String>, app: &BTreeMap<String, String>) -> Service {
    let port = i32::from(DEFAULT_PORT);
    Service {
        metadata: meta(APP, Some(ns), common),
        spec: Some(ServiceSpec {
            selector: Some(app.clone()),
            ports: Some(vec![ServicePort {
                port,
                target_port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Selects every pod of the namespace, so each is deny-by-default for ingress; admits the
/// namespace's own pods and the harness, on the workload port only from the harness.
fn network_policy(ns: &str, common: &BTreeMap<String, String>, harness: &HarnessSource) -> NetworkPolicy {
    let own = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(labels(&[(NAMESPACE_NAME_LABEL, ns)])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    let block = match harness {
        HarnessSource::Cidr(c) => IPBlock { cidr: c.clone(), except: None },
        HarnessSource::VpcExcept { vpc, pod_subnets } => {
            IPBlock { cidr: vpc.clone(), except: Some(pod_subnets.clone()).filter(|e| !e.is_empty()) }
        }
    };
    let harness = NetworkPolicyPeer { ip_block: Some(block), ..NetworkPolicyPeer::default() };
    let port = NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(DEFAULT_PORT))),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    };
    NetworkPolicy {
        metadata: meta("default-deny", Some(ns), common),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule { from: Some(vec![own]), ports: None },
                NetworkPolicyIngressRule { from: Some(vec![harness]), ports: Some(vec![port]) },
            ]),
            ..NetworkPolicySpec::default()
        }),
    }
}
