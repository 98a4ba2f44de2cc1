//! Security groups as nftables rules in the harness network namespace. The EC2 tiers use the
//! same rules for their instances on `br0`, in a table of their own ([`Table`]): "task" below
//! means an ECS task or an EC2 instance.
//!
//! The kernel's bridge netfilter (`net.bridge.bridge-nf-call-iptables`, per namespace) passes
//! frames bridged between tasks through the IPv4 `forward` hook with connection tracking, so
//! one `ip` table there sees every packet into a task's ENI: from another task (`forward`) and
//! from the harness itself (`output`). Layout:
//!
//! - a named set per security group holding its members' addresses (`sg<N>`), the set of all
//!   task addresses (`tasks`), the harness's address (`harness`), and the tasks that may reach
//!   IMDS (`imds`); starting or stopping a task only adds or deletes set elements;
//! - chain `ingress` (jumped to for every packet whose destination is a task): established and
//!   related traffic passes (security groups are stateful), then one `accept` rule per inbound
//!   rule of each group, matching the destination's group set, then a counted `drop`. A task in
//!   several groups is admitted by any of their rules, as on AWS. Egress is open, as in a
//!   group's default outbound rule; the tasks' routes keep it inside the harness anyway;
//! - chain `endpoints` (for packets from a task to the harness namespace itself): the ECS agent
//!   endpoint for every task, IMDS for the `imds` set, nothing else;
//! - a `bridge` table that drops IPv4 frames whose source address is not the one of the port
//!   they came in on (the ENI's source/destination check), so group membership by address
//!   cannot be spoofed.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use isobench_core::scenario::ecs::{Protocol, ResolvedGroups, ResolvedSource};

use crate::metadata::{ECS_AGENT_ADDR, IMDS_ADDR, METADATA_PORT};

/// Name of both tables (`ip` and `bridge` families).
pub(crate) const TABLE: &str = "isobench_ecs";

/// Which tables a filter is, and which harness endpoints its tasks may reach (IMDS always, for
/// the tasks in its `imds` set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    /// Name of both tables (`ip` and `bridge` families).
    pub name: &'static str,
    /// The ECS agent endpoint, for every task.
    pub ecs_agent: bool,
}

/// The `ecs-awsvpc` cluster's filter.
pub(crate) const ECS: Table = Table { name: TABLE, ecs_agent: true };

/// One task as the filter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterTask {
    pub addr: Ipv4Addr,
    /// The host end of its veth (a port of the cluster bridge).
    pub port: String,
    /// Indices into [`ResolvedGroups::groups`].
    pub groups: Vec<usize>,
    pub imds: bool,
}

fn elements<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() { String::new() } else { format!(" elements = {{ {} }};", v.join(", ")) }
}

/// The whole ruleset for a cluster, replacing any earlier one atomically.
pub(crate) fn ruleset(groups: &ResolvedGroups, tasks: &[FilterTask], harness: Ipv4Addr) -> String {
    ruleset_in(ECS, groups, tasks, harness)
}

/// The whole ruleset of `table`, replacing any earlier one of that name atomically.
pub(crate) fn ruleset_in(table: Table, groups: &ResolvedGroups, tasks: &[FilterTask], harness: Ipv4Addr) -> String {
    let tbl = table.name;
    let mut s = String::new();
    // `add` then `delete` removes a leftover table without failing when there is none; the
    // whole script is one transaction.
    for family in ["ip", "bridge"] {
        let _ = writeln!(s, "add table {family} {tbl}\ndelete table {family} {tbl}");
    }
    let _ = writeln!(s, "table ip {tbl} {{");
    let _ = writeln!(s, "  set tasks {{ type ipv4_addr;{} }}", elements(tasks.iter().map(|t| t.addr)));
    let _ = writeln!(s, "  set harness {{ type ipv4_addr;{} }}", elements([harness]));
    let _ =
        writeln!(s, "  set imds {{ type ipv4_addr;{} }}", elements(tasks.iter().filter(|t| t.imds).map(|t| t.addr)));
    for (i, g) in groups.groups.iter().enumerate() {
        let members = tasks.iter().filter(|t| t.groups.contains(&i)).map(|t| t.addr);
        let _ = writeln!(s, "  set sg{i} {{ type ipv4_addr; comment \"{}\";{} }}", g.name, elements(members));
    }
    let _ = writeln!(
        s,
        "  chain forward {{ type filter hook forward priority filter; policy accept; ip daddr @tasks jump ingress; }}"
    );
    let _ = writeln!(
        s,
        "  chain output {{ type filter hook output priority filter; policy accept; ip daddr @tasks jump ingress; }}"
    );
    let _ = writeln!(s, "  chain ingress {{");
    let _ = writeln!(s, "    ct state established,related accept");
    for (i, g) in groups.groups.iter().enumerate() {
        for r in &g.ingress {
            let src = match r.source {
                ResolvedSource::Group(j) => format!("ip saddr @sg{j}"),
                ResolvedSource::Harness => "ip saddr @harness".into(),
                ResolvedSource::Cidr(a, p) => format!("ip saddr {a}/{p}"),
            };
            let proto = match (r.protocol, r.ports) {
                (Protocol::All, _) => String::new(),
                (Protocol::Icmp, _) => " ip protocol icmp".into(),
                (p, ports) => {
                    let name = if p == Protocol::Tcp { "tcp" } else { "udp" };
                    match ports {
                        Some((a, b)) if a == b => format!(" {name} dport {a}"),
                        Some((a, b)) => format!(" {name} dport {a}-{b}"),
                        None => format!(" ip protocol {name}"),
                    }
                }
            };
            let _ = writeln!(s, "    ip daddr @sg{i} {src}{proto} accept comment \"{}\"", g.name);
        }
    }
    let _ = writeln!(s, "    counter drop comment \"default deny\"");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain input {{ type filter hook input priority filter; policy accept; ip saddr @tasks jump endpoints; }}"
    );
    let _ = writeln!(s, "  chain endpoints {{");
    let _ = writeln!(s, "    ct state established,related accept");
    if table.ecs_agent {
        let _ = writeln!(s, "    ip daddr {ECS_AGENT_ADDR} tcp dport {METADATA_PORT} accept comment \"ecs agent\"");
    }
    let _ = writeln!(s, "    ip daddr {IMDS_ADDR} tcp dport {METADATA_PORT} ip saddr @imds accept comment \"imds\"");
    let _ = writeln!(s, "    counter drop comment \"nothing else of the harness\"");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    let _ = writeln!(s, "table bridge {tbl} {{");
    let _ = writeln!(s, "  set ports {{ type ifname;{} }}", elements(tasks.iter().map(|t| format!("\"{}\"", t.port))));
    let _ = writeln!(
        s,
        "  set eni {{ type ipv4_addr . ifname;{} }}",
        elements(tasks.iter().map(|t| format!("{} . \"{}\"", t.addr, t.port)))
    );
    let _ = writeln!(s, "  chain prerouting {{ type filter hook prerouting priority filter; policy accept;");
    let _ = writeln!(s, "    iifname @ports ip saddr . iifname != @eni counter drop comment \"source check\"");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    s
}

/// Adds (`add`) or removes (`delete`) one task's set elements: how rules follow a task that
/// starts or stops on its own.
pub(crate) fn task_elements(op: &str, t: &FilterTask) -> String {
    task_elements_in(ECS, op, t)
}

/// [`task_elements`] of `table`.
pub(crate) fn task_elements_in(table: Table, op: &str, t: &FilterTask) -> String {
    let tbl = table.name;
    let mut s = String::new();
    let _ = writeln!(s, "{op} element ip {tbl} tasks {{ {} }}", t.addr);
    for g in &t.groups {
        let _ = writeln!(s, "{op} element ip {tbl} sg{g} {{ {} }}", t.addr);
    }
    if t.imds {
        let _ = writeln!(s, "{op} element ip {tbl} imds {{ {} }}", t.addr);
    }
    let _ = writeln!(s, "{op} element bridge {tbl} ports {{ \"{}\" }}", t.port);
    let _ = writeln!(s, "{op} element bridge {tbl} eni {{ {} . \"{}\" }}", t.addr, t.port);
    s
}

/// Removes both tables (and does not fail when they are already gone).
pub(crate) fn teardown_script() -> String {
    teardown_script_in(ECS)
}

/// [`teardown_script`] of `table`.
pub(crate) fn teardown_script_in(table: Table) -> String {
    let tbl = table.name;
    ["ip", "bridge"].iter().map(|f| format!("add table {f} {tbl}\ndelete table {f} {tbl}\n")).collect()
}

#[cfg(test)]
mod tests {
    use isobench_core::scenario::ecs::{ResolvedGroup, ResolvedRule};

    use super::*;

    #[test]
    fn rules_per_group_and_elements_per_task() {
        let groups = ResolvedGroups {
            groups: vec![
                ResolvedGroup {
                    name: "tenant-a".into(),
                    tenant: Some("a".into()),
                    members: vec!["a".into()],
                    ingress: vec![ResolvedRule {
                        protocol: Protocol::Tcp,
                        ports: Some((8080, 8080)),
                        source: ResolvedSource::Harness,
                    }],
                },
                ResolvedGroup {
                    name: "shared".into(),
                    tenant: None,
                    members: vec![],
                    ingress: vec![
                        ResolvedRule { protocol: Protocol::All, ports: None, source: ResolvedSource::Group(1) },
                        ResolvedRule {
                            protocol: Protocol::Udp,
                            ports: Some((1, 9)),
                            source: ResolvedSource::Cidr(Ipv4Addr::new(10, 0, 0, 0), 8),
                        },
                    ],
                },
            ],
            tasks: vec![("a".into(), vec![0])],
        };
        let tasks = [FilterTask { addr: Ipv4Addr::new(10, 213, 0, 2), port: "v7".into(), groups: vec![0], imds: true }];
        let s = ruleset(&groups, &tasks, Ipv4Addr::new(10, 213, 0, 1));
        for want in [
            "set sg0 { type ipv4_addr; comment \"tenant-a\"; elements = { 10.213.0.2 }; }",
            "set sg1 { type ipv4_addr; comment \"shared\"; }",
            "ip daddr @sg0 ip saddr @harness tcp dport 8080 accept",
            "ip daddr @sg1 ip saddr @sg1 accept",
            "ip daddr @sg1 ip saddr 10.0.0.0/8 udp dport 1-9 accept",
            "set imds { type ipv4_addr; elements = { 10.213.0.2 }; }",
            "set eni { type ipv4_addr . ifname; elements = { 10.213.0.2 . \"v7\" }; }",
        ] {
            assert!(s.contains(want), "missing `{want}` in\n{s}");
        }
        let add = task_elements("add", &tasks[0]);
        assert!(add.contains("add element ip isobench_ecs sg0 { 10.213.0.2 }"), "{add}");
        assert!(teardown_script().contains("delete table bridge isobench_ecs"));
    }
}
