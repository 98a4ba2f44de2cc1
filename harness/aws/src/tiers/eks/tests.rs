//! The EKS tier against the fake account (plan rows, deploy, the waiters, teardown and the tag
//! query) and the rendering of its Kubernetes objects.

use std::sync::Arc;
use std::time::Duration;

use isobench_core::TierId;
use isobench_core::scenario::aws::AwsSpec;
use serde_json::{Value, json};

use super::objects::{HarnessSource, TenantInput, render};
use super::settings::{Credentials, Pattern, Settings};
use super::*;
use isobench_core::scenario::TierSettings;

use crate::capability::{Capabilities, Emulator};
use crate::context::DeployContext;
use crate::fake::Fake;
use crate::resource::{self, Resource};
use crate::retry::Backoff;
use crate::tags::{EXPIRES_KEY, RUN_KEY, Selector, TOOL_KEY};

/// The tier the records are filed under.
const TIER: TierId = TierId::EksPod;
const RUN: &str = "20270101T000000Z-abcdef";
const FAST: Backoff =
    Backoff { first: Duration::from_millis(1), max: Duration::from_millis(2), budget: Duration::from_millis(200) };

fn settings(pattern: Pattern, credentials: Credentials, default_deny: bool) -> Settings {
    Settings {
        label: "eks-pod".into(),
        pattern,
        default_deny,
        credentials,
        namespace: "tenant-{tenant}".into(),
        service_account: "tenant-{tenant}".into(),
        role: "isobench-{run}-pod-{tenant}".into(),
        node_role: match pattern {
            Pattern::NamespacePerTenant => "isobench-{run}-node".into(),
            Pattern::NodePerTenant => "isobench-{run}-node-{tenant}".into(),
        },
        instance_type: "m5.large".into(),
        shared_nodes: 2,
        http_tokens_required: true,
        hop_limit: 1,
        cpu_millis: 250,
        memory_mib: 256,
        pod_security_groups: false,
    }
}

fn tenants() -> Vec<String> {
    vec!["t0".into(), "t1".into()]
}

fn ctx(fake: &Fake) -> DeployContext {
    let mut c =
        DeployContext::new(fake.apis(), RUN, AwsSpec::default(), Capabilities::cloud(), Arc::new(b"elf".to_vec()));
    c.backoff = FAST;
    // Nothing answers in the fake: an emulator without a data plane.
    c.caps.ec2 = Emulator::Moto { url: "http://fake".into() };
    c.caps.ecs = Emulator::Moto { url: "http://fake".into() };
    c
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn rows(p: &[crate::tier::Planned], kind: &str) -> Vec<String> {
    p.iter().filter(|r| r.kind == kind).map(|r| r.name.clone()).collect()
}

#[test]
fn the_plan_lists_cluster_nodes_and_pod_identities_with_cost_and_creation_time() {
    let s = settings(Pattern::NamespacePerTenant, Credentials::PodIdentity, true);
    let p = planned(TIER, &s, &tenants());
    let cluster = rows(&p, "eks cluster");
    assert_eq!(cluster.len(), 1);
    assert!(cluster[0].starts_with("isobench-{run}-eks-pod ("), "{cluster:?}");
    assert!(cluster[0].contains("$0.10/cluster-hour") && cluster[0].contains("about 10m"), "{cluster:?}");
    let groups = rows(&p, "eks node group");
    assert_eq!(groups, ["isobench-{run}-eks-pod/nodes (2 x m5.large, shared by every tenant; ACTIVE in about 5m)"]);
    let lt = rows(&p, "ec2 launch template");
    assert!(lt[0].contains("http_tokens = required, http_put_response_hop_limit = 1"), "{lt:?}");
    assert!(lt[0].contains("IMDSv2 tokens stop at the node"), "{lt:?}");
    let roles = rows(&p, "iam role");
    // The cluster's, the shared node role, a pod role per tenant.
    assert_eq!(roles.len(), 4, "{roles:?}");
    assert!(roles.iter().any(|r| r.starts_with("isobench-{run}-node (")));
    assert_eq!(
        rows(&p, "eks pod identity"),
        ["tenant-t0/tenant-t0 -> isobench-{run}-pod-t0", "tenant-t1/tenant-t1 -> isobench-{run}-pod-t1"]
    );
    assert_eq!(rows(&p, "eks addon").len(), 2, "the Pod Identity agent and the VPC CNI's policy agent");
    assert!(rows(&p, "kubernetes objects")[0].contains("network policy default-deny"));
    assert!(rows(&p, "iam oidc provider").is_empty());
    assert_eq!(counts(&s, 2).instances, 2);
}

#[test]
fn node_per_tenant_and_irsa_plan_a_group_and_node_role_per_tenant_and_the_oidc_provider() {
    let mut s = settings(Pattern::NodePerTenant, Credentials::Irsa, false);
    s.hop_limit = 2;
    let p = planned(TIER, &s, &tenants());
    let groups = rows(&p, "eks node group");
    assert_eq!(groups.len(), 2);
    assert!(groups[1].contains("1 x m5.large, tenant t1 only, label isobench/tenant=t1"), "{groups:?}");
    let roles = rows(&p, "iam role");
    assert!(roles.iter().any(|r| r.starts_with("isobench-{run}-node-t0 (")), "{roles:?}");
    assert!(roles.iter().any(|r| r.contains("system:serviceaccount:tenant-t1:tenant-t1")), "{roles:?}");
    assert_eq!(rows(&p, "iam oidc provider").len(), 1);
    assert!(rows(&p, "eks pod identity").is_empty() && rows(&p, "eks addon").is_empty());
    assert!(rows(&p, "ec2 launch template")[0].contains("IMDSv2 tokens reach pods"));
    assert_eq!(counts(&s, 3).instances, 3);
}

#[test]
fn the_modelled_cost_counts_the_control_plane_and_the_nodes() {
    let s = settings(Pattern::NodePerTenant, Credentials::PodIdentity, false);
    let (control, nodes) = modelled_cost(&s, 3, 2.0, Some(0.096));
    assert!((control - 0.20).abs() < 1e-9);
    assert!((nodes.unwrap() - 2.0 * 0.096 * 3.0).abs() < 1e-9);
    assert_eq!(modelled_cost(&s, 3, 1.0, None).1, None);
}

#[test]
fn security_groups_for_pods_are_refused() {
    let mut s = settings(Pattern::NamespacePerTenant, Credentials::PodIdentity, false);
    assert!(refused(&s).is_empty());
    s.pod_security_groups = true;
    assert_eq!(refused(&s)[0].field, "security_group");
}

fn input<'a>(s: &'a Settings, role: Option<&'a str>, harness: &'a HarnessSource) -> TenantInput<'a> {
    TenantInput {
        settings: s,
        run: RUN,
        tenant: "t1",
        command: command("https://b/x"),
        image: IMAGE,
        role_arn: role,
        harness,
    }
}

#[test]
fn a_tenants_objects_render_with_its_namespace_account_limits_and_policy() {
    let s = settings(Pattern::NamespacePerTenant, Credentials::Irsa, true);
    let harness = HarnessSource::VpcExcept {
        vpc: "10.213.0.0/16".into(),
        pod_subnets: vec!["10.213.0.0/24".into(), "10.213.1.0/24".into()],
    };
    let o = render(&input(&s, Some("arn:aws:iam::1:role/r-t1"), &harness));
    let ns = serde_json::to_value(&o.namespace).unwrap();
    assert_eq!(ns["metadata"]["name"], "tenant-t1");
    assert_eq!(ns["metadata"]["labels"]["isobench/tenant"], "t1");
    assert_eq!(ns["metadata"]["labels"]["isobench/run"], RUN);
    let sa = serde_json::to_value(&o.service_account).unwrap();
    assert_eq!(sa["metadata"]["namespace"], "tenant-t1");
    assert_eq!(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], "arn:aws:iam::1:role/r-t1");
    let d = serde_json::to_value(&o.deployment).unwrap();
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "tenant-t1");
    assert_eq!(pod.get("nodeSelector"), None, "shared nodes: no selector");
    let c = &pod["containers"][0];
    assert_eq!(c["resources"]["requests"], json!({"cpu": "250m", "memory": "256Mi"}));
    assert_eq!(c["resources"]["limits"], c["resources"]["requests"], "requests = limits (Guaranteed)");
    assert_eq!(c["env"], json!([{"name": "TENANT_APP_TENANT", "value": "t1"}]));
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(
        d["spec"]["selector"]["matchLabels"],
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            .as_str()
            .map(|_| json!({"app.kubernetes.io/name": "tenant-app", "isobench/tenant": "t1"}))
            .unwrap()
    );
    let svc = serde_json::to_value(&o.service).unwrap();
    assert_eq!(svc["spec"]["ports"][0], json!({"port": 8080, "targetPort": 8080, "protocol": "TCP"}));
    let np = serde_json::to_value(o.network_policy.as_ref().unwrap()).unwrap();
    assert_eq!(np["kind"], "NetworkPolicy");
    assert_eq!(np["spec"]["podSelector"], json!({}), "every pod of the namespace");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        np["spec"]["ingress"],
        json!([
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tenant-t1"}}}]},
            {
                "from": [{"ipBlock": {"cidr": "10.213.0.0/16", "except": ["10.213.0.0/24", "10.213.1.0/24"]}}],
                "ports": [{"port": 8080, "protocol": "TCP"}]
            }
        ])
    );
}

#[test]
fn node_per_tenant_pins_the_pod_and_pod_identity_needs_no_annotation_nor_policy_without_deny() {
    let s = settings(Pattern::NodePerTenant, Credentials::PodIdentity, false);
    let harness = HarnessSource::Cidr("192.0.2.0/24".into());
    let o = render(&input(&s, Some("arn:aws:iam::1:role/r-t1"), &harness));
    let d = serde_json::to_value(&o.deployment).unwrap();
    assert_eq!(d["spec"]["template"]["spec"]["nodeSelector"], json!({"isobench/tenant": "t1"}));
    let sa = serde_json::to_value(&o.service_account).unwrap();
    assert_eq!(sa["metadata"].get("annotations"), None, "Pod Identity binds by association, not annotation");
    assert!(o.network_policy.is_none(), "no policy: Kubernetes allows all");
    let mut deny = s.clone();
    deny.default_deny = true;
    let np = serde_json::to_value(render(&input(&deny, None, &harness)).network_policy.unwrap()).unwrap();
    assert_eq!(np["spec"]["ingress"][1]["from"][0]["ipBlock"], json!({"cidr": "192.0.2.0/24"}));
}

fn tagged_ok(fake: &Fake) {
    for (id, o) in fake.state.lock().unwrap().objects.iter().filter(|(_, o)| o.kind != "object") {
        assert_eq!(o.tags.get(RUN_KEY).map(String::as_str), Some(RUN), "{id}");
        assert_eq!(o.tags.get(TOOL_KEY).map(String::as_str), Some("isobench"), "{id}");
        assert!(o.tags.contains_key(EXPIRES_KEY), "{id}");
    }
}

#[test]
fn deploy_makes_the_control_plane_tagged_and_teardown_removes_it_in_order() {
    let fake = Fake::new();
    let mut c = ctx(&fake);
    // The cluster and the node group answer CREATING a few times: the waiters poll on.
    fake.state.lock().unwrap().eks_creating_polls = 3;
    let s = settings(Pattern::NodePerTenant, Credentials::PodIdentity, true);
    rt().block_on(async {
        let d = deploy(&mut c, TIER, &s, &tenants()).await.unwrap();
        assert!(d.targets.is_empty(), "nothing runs in the fake");
        assert!(c.skipped[&TIER].iter().any(|x| x.reason.contains("rendered, not applied")), "{:?}", c.skipped);
        assert_eq!(fake.count("ekscluster"), 1);
        assert_eq!(fake.count("nodegroup"), 2);
        assert_eq!(fake.count("association"), 2);
        assert_eq!(fake.count("addon"), 2);
        // Cluster role, a node role per tenant, a pod role per tenant.
        assert_eq!(fake.count("role"), 5);
        assert_eq!(fake.count("launchtemplate"), 1);
        let state = fake.state.lock().unwrap().clone_objects();
        let lt = state.values().find(|o| o.kind == "launchtemplate").unwrap();
        assert_eq!((lt.extra["http_tokens"].as_str(), lt.extra["hop_limit"].as_str()), ("required", "1"));
        let zones: Vec<&str> = state.values().filter_map(|o| o.extra.get("zone").map(String::as_str)).collect();
        assert_eq!(zones, ["us-east-1a", "us-east-1b"], "the cluster's subnets in two zones");
        let addon = state.iter().find(|(id, _)| id.ends_with("/addon/vpc-cni")).unwrap().1;
        assert_eq!(addon.extra["configuration"], identities::VPC_CNI_NETWORK_POLICY);
        let trust = &state["isobench-20270101T000000Z-abcdef-pod-t0"].extra["trust"];
        assert!(trust.contains("pods.eks.amazonaws.com") && trust.contains("sts:TagSession"), "{trust}");
        let groups: Vec<&String> =
            state.values().filter(|o| o.kind == "nodegroup").map(|o| &o.extra["labels"]).collect();
        assert!(groups[0].contains("isobench/tenant") && groups[0].contains("t0"), "{groups:?}");
        // The harness reaches the workload port on the cluster's group.
        let rules = fake.state.lock().unwrap().rules.clone();
        assert_eq!(rules[&crate::fake::eks_security_group(&s.cluster(RUN))][0].from_port, 8080);
        drop(state);
        tagged_ok(&fake);
        // Removal in rank order: associations and add-ons, node groups, cluster and template, roles.
        let ranks: Vec<(u8, String)> = c.ledger.iter().map(|(_, r)| (r.rank(), r.to_string())).collect();
        let rank_of = |p: &str| ranks.iter().find(|(_, n)| n.starts_with(p)).unwrap().0;
        assert!(rank_of("eks pod identity") < rank_of("eks node group"));
        assert!(rank_of("eks node group") < rank_of("eks cluster"));
        assert!(rank_of("eks node group") < rank_of("ec2 launch template"));
        assert!(rank_of("eks cluster") < rank_of("iam role") && rank_of("eks cluster") < rank_of("ec2 subnet"));
        let all: Vec<Resource> = std::mem::take(&mut c.ledger).into_iter().map(|(_, r)| r).collect();
        let r = resource::remove_all(&c.apis, all, FAST).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(fake.kinds().is_empty(), "left: {:?}", fake.kinds());
    });
}

#[test]
fn irsa_registers_the_issuer_and_trusts_only_the_tenants_service_account() {
    let fake = Fake::new();
    let mut c = ctx(&fake);
    let s = settings(Pattern::NamespacePerTenant, Credentials::Irsa, false);
    rt().block_on(async {
        deploy(&mut c, TIER, &s, &tenants()).await.unwrap();
        assert_eq!(fake.count("oidc"), 1);
        assert_eq!(fake.count("association"), 0);
        assert_eq!(fake.count("addon"), 0, "no agent, no policy agent");
        assert_eq!(fake.count("nodegroup"), 1);
        let state = fake.state.lock().unwrap().clone_objects();
        let trust: Value =
            serde_json::from_str(&state["isobench-20270101T000000Z-abcdef-pod-t1"].extra["trust"]).unwrap();
        let st = &trust["Statement"][0];
        assert_eq!(st["Action"], "sts:AssumeRoleWithWebIdentity");
        assert!(
            st["Principal"]["Federated"]
                .as_str()
                .unwrap()
                .contains(":oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/")
        );
        let host = "oidc.eks.us-east-1.amazonaws.com/id/isobench-20270101t000000z-abcdef-eks-pod";
        assert_eq!(st["Condition"]["StringEquals"][format!("{host}:sub")], "system:serviceaccount:tenant-t1:tenant-t1");
        assert_eq!(st["Condition"]["StringEquals"][format!("{host}:aud")], "sts.amazonaws.com");
    });
}

#[test]
fn the_tag_query_finds_every_eks_resource_the_ledger_lost() {
    let fake = Fake::new();
    let mut c = ctx(&fake);
    let s = settings(Pattern::NodePerTenant, Credentials::PodIdentity, true);
    let mut irsa = settings(Pattern::NamespacePerTenant, Credentials::Irsa, false);
    irsa.label = "eks-irsa".into();
    // Both tiers live at once here (a run deploys one after the other): roles apart.
    irsa.role = "isobench-{run}-irsa-{tenant}".into();
    rt().block_on(async {
        deploy(&mut c, TIER, &s, &tenants()).await.unwrap();
        deploy(&mut c, TIER, &irsa, &tenants()).await.unwrap();
        let caps = Capabilities::cloud();
        let (found, report) = crate::sweep::find(&fake.apis(), &caps, &Selector::Run(RUN.into())).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        let n = |p: &str| text.iter().filter(|t| t.starts_with(p)).count();
        assert_eq!(n("eks cluster"), 2, "{text:?}");
        assert_eq!(n("eks node group"), 3);
        assert_eq!(n("eks pod identity association"), 2);
        assert_eq!(n("eks addon"), 2);
        assert_eq!(n("ec2 launch template"), 2);
        assert_eq!(n("iam oidc provider"), 1);
        // Found in removal order, and a sweep leaves nothing.
        assert!(found.windows(2).all(|w| w[0].rank() <= w[1].rank()));
        let r = crate::sweep::sweep(&fake.apis(), &caps, &Selector::Run(RUN.into()), false).await;
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(fake.kinds().is_empty(), "left: {:?}", fake.kinds());
    });
}

#[test]
fn the_cluster_waiter_names_the_cluster_and_its_status_at_the_timeout() {
    let fake = Fake::new();
    let c = ctx(&fake);
    rt().block_on(async {
        let err = control_plane::wait_active(&c, "isobench-x-eks-pod", Duration::from_millis(1)).await.unwrap_err();
        assert!(err.to_string().contains("isobench-x-eks-pod still MISSING"), "{err}");
    });
}

fn scenario_plan(tiers: &str, aws: &str) -> isobench_core::plan::Plan {
    let src = format!(
        "format_version = 1\nname = \"t\"\n[run]\nduration = \"10s\"\nrate = 10\n[tenants]\ncount = 2\n{tiers}\n{aws}"
    );
    let s = isobench_core::scenario::Scenario::parse(&src, std::path::Path::new("t.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    isobench_core::plan::Plan::new(RUN.into(), s, "h".into(), &isobench_core::plan::Overrides::default())
}

const EKS: &str = "[[tier]]\nid = \"eks-pod\"\nname = \"eks-deny\"\nnetwork_policy = \"default-deny\"\n";

#[test]
fn a_scenarios_eks_tier_is_planned_counted_and_given_its_deploy_time() {
    let p = scenario_plan(EKS, "");
    let rows = crate::plan::resources(&p);
    let eks: Vec<_> = rows.iter().filter(|r| r.tier == Some(TierId::EksPod)).collect();
    assert!(eks.iter().any(|r| r.kind == "eks cluster" && r.name.starts_with("isobench-{run}-eks-deny (")), "{eks:?}");
    assert!(eks.iter().any(|r| r.kind == "eks node group"));
    // The run's network with the cluster's two subnets, and the workload bucket.
    let shared: Vec<&str> = rows.iter().filter(|r| r.tier.is_none()).map(|r| r.name.as_str()).collect();
    assert!(shared.contains(&"isobench-{run}-eks-a") && shared.contains(&"isobench-{run}-eks-b"), "{shared:?}");
    let TierSettings::Eks(spec) = &p.tiers[0].settings else { panic!("not eks") };
    assert_eq!(crate::plan::counts(&p).instances, spec.nodes(2));
    // Deploy time: the cluster's creation and deletion are in the lifetime guard rail.
    assert_eq!(crate::plan::projected_lifetime(&p), Duration::from_secs(10) + DEPLOY_TEARDOWN);
    let short = scenario_plan(EKS, "[aws]\nmax_lifetime = \"30m\"\n");
    let rails: Vec<String> = crate::plan::check(&short, None).iter().map(ToString::to_string).collect();
    assert!(rails.iter().any(|r| r.contains("45m of deploy/teardown allowances")), "{rails:?}");
    // The control plane and the nodes while they are made and deleted, beyond the cost model's traffic time.
    let pricing = isobench_cost::Pricing::built_in("us-east-1").unwrap();
    let usd = crate::plan::allowance_usd(&p, &pricing);
    let node = pricing.prices[&format!("ec2.{}", spec.node.instance_type.name)].usd;
    let expect = 0.75 * (0.10 + node * f64::from(spec.nodes(2)));
    assert!((usd - expect).abs() < 1e-9, "{usd} vs {expect}");
    assert!(crate::plan::refused(&p).is_empty());
}

#[test]
fn an_eks_tier_with_security_groups_for_pods_is_refused_at_its_field() {
    let tiers = format!(
        "{EKS}[[tier.security_group]]\nname = \"tenant-{{tenant}}\"\ningress = [{{ port = 8080, source_group = \"harness\" }}]\n"
    );
    let p = scenario_plan(&tiers, "");
    let problems: Vec<String> = crate::plan::refused(&p).iter().map(|x| format!("{x:?}")).collect();
    assert!(problems.iter().any(|x| x.contains("tier[0].security_group")), "{problems:?}");
}

#[test]
fn a_refusal_is_located_at_the_named_tier_it_belongs_to() {
    let tiers = format!(
        "[[tier]]\nid = \"eks-pod\"\nname = \"eks-a\"\n{}",
        EKS.to_string()
            + "[[tier.security_group]]\nname = \"tenant-{tenant}\"\ningress = [{ port = 8080, source_group = \"harness\" }]\n"
    );
    let p = scenario_plan(&tiers, "");
    let problems: Vec<String> = crate::plan::refused(&p).iter().map(|x| format!("{x:?}")).collect();
    assert!(problems.iter().any(|x| x.contains("tier[1].security_group")), "{problems:?}");
    assert!(!problems.iter().any(|x| x.contains("tier[0]")), "{problems:?}");
}
