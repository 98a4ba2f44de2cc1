//! Kubernetes `NetworkPolicy` (`networking.k8s.io/v1`) as data, and its translation into an
//! nftables table for one node's namespace, where the EKS tier enforces it (as the VPC CNI's
//! network policy agent does, on the node).
//!
//! The semantics are Kubernetes': a pod no policy selects is not isolated (everything passes);
//! a pod selected by a policy whose `policyTypes` name a direction is isolated in that
//! direction, and then admits only what the union of those policies' rules allows; replies to
//! admitted connections always pass (`ct state established,related`). A direction a policy does
//! not name stays open. Peers: `podSelector` alone means pods of the policy's own namespace,
//! `namespaceSelector` alone every pod of the namespaces it selects, both together the pods
//! matching the first in the namespaces matching the second, `ipBlock` a CIDR (less its
//! `except`); a rule without peers admits every source, one without ports every port.
//! Selectors are `matchLabels` only (no `matchExpressions`); ports are numbers (no named
//! ports). Traffic the node itself sends to its pods is not filtered, as with most CNIs.
//!
//! The table ([`render`]) has one `forward` chain: traffic to a pod isolated for ingress jumps
//! to `ingress` (an `accept` per allowed peer and port, then a counted `drop`); traffic from a
//! pod isolated for egress jumps to `egress` first (a `return` per allowed peer and port, then a
//! counted `drop`), so that an allowed egress still meets the destination's ingress check. Pod
//! addresses are resolved when the table is rendered (the tier knows every pod at deploy), so
//! the rules match address sets, never labels.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// `metav1.LabelSelector` with `matchLabels` only; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

impl LabelSelector {
    /// `{}`: selects everything.
    pub(crate) fn all() -> LabelSelector {
        LabelSelector::default()
    }

    #[cfg(test)]
    pub(crate) fn labels(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector { match_labels: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyType {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code, reason = "the API's protocols; the tier's own policies name none"))]
pub(crate) enum Protocol {
    Tcp,
    Udp,
}

/// `NetworkPolicyPort`: a protocol and, if given, one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PolicyPort {
    pub protocol: Protocol,
    pub port: Option<u16>,
}

/// `NetworkPolicyPeer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    Pods { namespace_selector: Option<LabelSelector>, pod_selector: Option<LabelSelector> },
    IpBlock { cidr: (Ipv4Addr, u8), except: Vec<(Ipv4Addr, u8)> },
}

/// `NetworkPolicyIngressRule` (`from`) or `NetworkPolicyEgressRule` (`to`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rule {
    pub peers: Vec<Peer>,
    pub ports: Vec<PolicyPort>,
}

/// A `NetworkPolicy` object: its name and namespace, and its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkPolicy {
    pub name: String,
    pub namespace: String,
    pub pod_selector: LabelSelector,
    /// As written; empty means Kubernetes' default (`Ingress`, plus `Egress` when there are
    /// egress rules), see [`NetworkPolicy::types`].
    pub policy_types: Vec<PolicyType>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
}

impl NetworkPolicy {
    /// The directions this policy isolates its pods in.
    pub(crate) fn types(&self) -> Vec<PolicyType> {
        if !self.policy_types.is_empty() {
            return self.policy_types.clone();
        }
        let mut t = vec![PolicyType::Ingress];
        if !self.egress.is_empty() {
            t.push(PolicyType::Egress);
        }
        t
    }

    /// A namespace's default-deny ingress policy that still admits its own pods and `cidrs`
    /// (the harness and the load agents, which stand for the tenant's clients).
    pub(crate) fn default_deny_ingress(namespace: &str, cidrs: &[(Ipv4Addr, u8)]) -> NetworkPolicy {
        let mut peers = vec![Peer::Pods { namespace_selector: None, pod_selector: Some(LabelSelector::all()) }];
        peers.extend(cidrs.iter().map(|c| Peer::IpBlock { cidr: *c, except: Vec::new() }));
        NetworkPolicy {
            name: "default-deny".into(),
            namespace: namespace.into(),
            pod_selector: LabelSelector::all(),
            policy_types: vec![PolicyType::Ingress],
            ingress: vec![Rule { peers, ports: Vec::new() }],
            egress: Vec::new(),
        }
    }
}

/// A namespace and its labels (`kubernetes.io/metadata.name` among them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Namespace {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl Namespace {
    /// A namespace labelled as the API server labels every one.
    pub(crate) fn named(name: &str) -> Namespace {
        let labels = [("kubernetes.io/metadata.name".to_string(), name.to_string())].into();
        Namespace { name: name.into(), labels }
    }
}

/// A pod as the policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pod {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub addr: Ipv4Addr,
}

/// The cluster's objects a node's table is rendered from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cluster<'a> {
    pub namespaces: &'a [Namespace],
    pub pods: &'a [Pod],
    pub policies: &'a [NetworkPolicy],
}

impl Cluster<'_> {
    fn selects(&self, p: &NetworkPolicy, pod: &Pod) -> bool {
        pod.namespace == p.namespace && p.pod_selector.matches(&pod.labels)
    }

    /// Addresses of the pods `peer` names for a policy of `namespace`; `None` for an
    /// `ipBlock`.
    fn peer_pods(&self, namespace: &str, peer: &Peer) -> Option<Vec<Ipv4Addr>> {
        let Peer::Pods { namespace_selector, pod_selector } = peer else { return None };
        let ns_ok = |pod: &Pod| match namespace_selector {
            None => pod.namespace == namespace,
            Some(sel) => self.namespaces.iter().any(|n| n.name == pod.namespace && sel.matches(&n.labels)),
        };
        let pod_ok = |pod: &Pod| pod_selector.as_ref().is_none_or(|s| s.matches(&pod.labels));
        Some(self.pods.iter().filter(|p| ns_ok(p) && pod_ok(p)).map(|p| p.addr).collect())
    }
}

fn elements(items: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = items.into_iter().collect();
    if v.is_empty() { String::new() } else { format!(" elements = {{ {} }};", v.join(", ")) }
}

fn port_matches(ports: &[PolicyPort]) -> Vec<String> {
    if ports.is_empty() {
        return vec![String::new()];
    }
    ports
        .iter()
        .map(|p| {
            let proto = if p.protocol == Protocol::Tcp { "tcp" } else { "udp" };
            match p.port {
                Some(n) => format!(" {proto} dport {n}"),
                None => format!(" meta l4proto {proto}"),
            }
        })
        .collect()
}

/// The table `table` (replacing any earlier one of that name) enforcing `cluster`'s policies
/// for the pods `local` says live on this node. No policy selecting a local pod: no chain
/// drops anything.
pub(crate) fn render(table: &str, cluster: Cluster<'_>, local: impl Fn(&Pod) -> bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "add table ip {table}\ndelete table ip {table}");
    let _ = writeln!(s, "table ip {table} {{");
    let mut chains: Vec<(PolicyType, Vec<String>)> = Vec::new();
    for dir in [PolicyType::Ingress, PolicyType::Egress] {
        let (this, other, verdict) = match dir {
            PolicyType::Ingress => ("daddr", "saddr", "accept"),
            PolicyType::Egress => ("saddr", "daddr", "return"),
        };
        let tag = if dir == PolicyType::Ingress { "in" } else { "out" };
        let mut isolated: Vec<Ipv4Addr> = Vec::new();
        let mut rules = Vec::new();
        for (i, p) in cluster.policies.iter().enumerate().filter(|(_, p)| p.types().contains(&dir)) {
            let selected: Vec<Ipv4Addr> =
                cluster.pods.iter().filter(|pod| local(pod) && cluster.selects(p, pod)).map(|pod| pod.addr).collect();
            if selected.is_empty() {
                continue;
            }
            isolated.extend(&selected);
            let set = format!("{tag}{i}");
            let _ = writeln!(
                s,
                "  set {set} {{ type ipv4_addr; comment \"{}/{}\";{} }}",
                p.namespace,
                p.name,
                elements(selected.iter().map(|a| a.to_string()))
            );
            let dir_rules = if dir == PolicyType::Ingress { &p.ingress } else { &p.egress };
            for (j, r) in dir_rules.iter().enumerate() {
                let mut peers: Vec<String> = Vec::new();
                for (k, peer) in r.peers.iter().enumerate() {
                    match (cluster.peer_pods(&p.namespace, peer), peer) {
                        (Some(addrs), _) => {
                            let pset = format!("{set}_{j}_{k}");
                            let _ = writeln!(
                                s,
                                "  set {pset} {{ type ipv4_addr;{} }}",
                                elements(addrs.iter().map(|a| a.to_string()))
                            );
                            peers.push(format!(" ip {other} @{pset}"));
                        }
                        (None, Peer::IpBlock { cidr, except }) => {
                            let mut m = format!(" ip {other} {}/{}", cidr.0, cidr.1);
                            if !except.is_empty() {
                                let ex: Vec<String> = except.iter().map(|(a, l)| format!("{a}/{l}")).collect();
                                let _ = write!(m, " ip {other} != {{ {} }}", ex.join(", "));
                            }
                            peers.push(m);
                        }
                        (None, Peer::Pods { .. }) => unreachable!("pod peers resolve to addresses"),
                    }
                }
                if r.peers.is_empty() {
                    peers.push(String::new());
                }
                for peer in &peers {
                    for port in port_matches(&r.ports) {
                        rules.push(format!(
                            "ip {this} @{set}{peer}{port} {verdict} comment \"{}/{} rule {j}\"",
                            p.namespace, p.name
                        ));
                    }
                }
            }
        }
        isolated.sort();
        isolated.dedup();
        if !isolated.is_empty() {
            let _ = writeln!(
                s,
                "  set {tag}_isolated {{ type ipv4_addr;{} }}",
                elements(isolated.iter().map(|a| a.to_string()))
            );
            chains.push((dir, rules));
        }
    }
    if !chains.is_empty() {
        let _ = writeln!(s, "  chain forward {{");
        let _ = writeln!(s, "    type filter hook forward priority filter; policy accept;");
        let _ = writeln!(s, "    ct state established,related accept");
        // Egress first: its allowed rules return, so the destination's ingress is still checked.
        for (dir, _) in chains.iter().rev() {
            match dir {
                PolicyType::Egress => {
                    let _ = writeln!(s, "    ip saddr @out_isolated jump egress");
                }
                PolicyType::Ingress => {
                    let _ = writeln!(s, "    ip daddr @in_isolated jump ingress");
                }
            }
        }
        let _ = writeln!(s, "  }}");
        for (dir, rules) in &chains {
            let name = if *dir == PolicyType::Ingress { "ingress" } else { "egress" };
            let _ = writeln!(s, "  chain {name} {{");
            for r in rules {
                let _ = writeln!(s, "    {r}");
            }
            let _ = writeln!(s, "    counter drop comment \"{name} default deny\"");
            let _ = writeln!(s, "  }}");
        }
    }
    let _ = writeln!(s, "}}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ns: &str, last: u8) -> Pod {
        let labels = [("app".to_string(), "tenant-app".to_string())].into();
        Pod { name: name.into(), namespace: ns.into(), labels, addr: Ipv4Addr::new(10, 213, 0, last) }
    }

    fn fixture() -> (Vec<Namespace>, Vec<Pod>) {
        let ns = vec![Namespace::named("tenant-a"), Namespace::named("tenant-b")];
        let pods = vec![pod("a", "tenant-a", 10), pod("b", "tenant-b", 11), pod("a2", "tenant-a", 12)];
        (ns, pods)
    }

    const HARNESS: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 213, 0, 1), 32);

    #[test]
    fn no_policy_drops_nothing() {
        let (namespaces, pods) = fixture();
        let s = render("t", Cluster { namespaces: &namespaces, pods: &pods, policies: &[] }, |_| true);
        assert!(!s.contains("drop"), "{s}");
        assert!(!s.contains("hook"), "no chain at all: {s}");
        assert!(s.starts_with("add table ip t\ndelete table ip t\n"), "{s}");
    }

    #[test]
    fn default_deny_drops_all_but_its_namespace_and_the_harness() {
        let (namespaces, pods) = fixture();
        let policies = vec![NetworkPolicy::default_deny_ingress("tenant-b", &[HARNESS])];
        let s = render("t", Cluster { namespaces: &namespaces, pods: &pods, policies: &policies }, |_| true);
        for want in [
            "set in0 { type ipv4_addr; comment \"tenant-b/default-deny\"; elements = { 10.213.0.11 }; }",
            // `podSelector: {}` alone: the policy's own namespace only.
            "set in0_0_0 { type ipv4_addr; elements = { 10.213.0.11 }; }",
            "set in_isolated { type ipv4_addr; elements = { 10.213.0.11 }; }",
            "ip daddr @in_isolated jump ingress",
            "ip daddr @in0 ip saddr @in0_0_0 accept",
            "ip daddr @in0 ip saddr 10.213.0.1/32 accept",
            "counter drop comment \"ingress default deny\"",
            "ct state established,related accept",
        ] {
            assert!(s.contains(want), "missing `{want}` in\n{s}");
        }
        assert!(!s.contains("10.213.0.10"), "tenant a's pods are neither isolated nor admitted: {s}");
        // Egress not named: untouched.
        assert!(!s.contains("egress") && !s.contains("out_isolated"), "{s}");
    }

    #[test]
    fn only_the_nodes_own_pods_are_isolated_there() {
        let (namespaces, pods) = fixture();
        let policies = vec![NetworkPolicy::default_deny_ingress("tenant-a", &[])];
        let c = Cluster { namespaces: &namespaces, pods: &pods, policies: &policies };
        let s = render("t", c, |p| p.name == "a2");
        assert!(s.contains("set in_isolated { type ipv4_addr; elements = { 10.213.0.12 }; }"), "{s}");
        // Both tenant-a pods are peers, wherever they run.
        assert!(s.contains("set in0_0_0 { type ipv4_addr; elements = { 10.213.0.10, 10.213.0.12 }; }"), "{s}");
        let other = render("t", c, |p| p.name == "b");
        assert!(!other.contains("drop"), "no pod of tenant-a on that node: {other}");
    }

    #[test]
    fn selectors_ports_ip_blocks_and_egress() {
        let (namespaces, pods) = fixture();
        let p = NetworkPolicy {
            name: "web".into(),
            namespace: "tenant-a".into(),
            pod_selector: LabelSelector::labels(&[("app", "tenant-app")]),
            policy_types: vec![PolicyType::Ingress, PolicyType::Egress],
            ingress: vec![Rule {
                peers: vec![
                    Peer::Pods {
                        namespace_selector: Some(LabelSelector::labels(&[("kubernetes.io/metadata.name", "tenant-b")])),
                        pod_selector: None,
                    },
                    Peer::IpBlock {
                        cidr: (Ipv4Addr::new(10, 0, 0, 0), 8),
                        except: vec![(Ipv4Addr::new(10, 9, 0, 0), 16)],
                    },
                ],
                ports: vec![PolicyPort { protocol: Protocol::Tcp, port: Some(8080) }],
            }],
            egress: vec![Rule { peers: vec![], ports: vec![PolicyPort { protocol: Protocol::Udp, port: Some(53) }] }],
        };
        let policies = [p];
        let s = render("t", Cluster { namespaces: &namespaces, pods: &pods, policies: &policies }, |_| true);
        for want in [
            "set in0_0_0 { type ipv4_addr; elements = { 10.213.0.11 }; }",
            "ip daddr @in0 ip saddr @in0_0_0 tcp dport 8080 accept",
            "ip daddr @in0 ip saddr 10.0.0.0/8 ip saddr != { 10.9.0.0/16 } tcp dport 8080 accept",
            "ip saddr @out0 udp dport 53 return",
            "counter drop comment \"egress default deny\"",
        ] {
            assert!(s.contains(want), "missing `{want}` in\n{s}");
        }
        let (e, i) = (s.find("jump egress").unwrap(), s.find("jump ingress").unwrap());
        assert!(e < i, "egress is checked before ingress: {s}");
        // An egress-only policy leaves ingress open.
        let mut egress_only = policies[0].clone();
        egress_only.policy_types = vec![PolicyType::Egress];
        let s = render("t", Cluster { namespaces: &namespaces, pods: &pods, policies: &[egress_only] }, |_| true);
        assert!(!s.contains("in_isolated") && s.contains("out_isolated"), "{s}");
    }

    #[test]
    fn policy_types_default_as_in_kubernetes() {
        let mut p = NetworkPolicy::default_deny_ingress("x", &[]);
        p.policy_types.clear();
        assert_eq!(p.types(), [PolicyType::Ingress]);
        p.egress.push(Rule::default());
        assert_eq!(p.types(), [PolicyType::Ingress, PolicyType::Egress]);
    }
}
