//! Security groups, for every tier that has them (the EC2 tiers' instances and the
//! `ecs-awsvpc` tier's tasks): nftables rules in the harness network namespace, one table pair
//! per tier ([`Table`]), installed by one `nft -f -` per deploy before any instance starts, with
//! every member's set elements in the same batch. A "member" below is an ECS task or an EC2
//! instance: an address behind a veth port of a bridge in the harness namespace. The groups
//! come resolved from the scenario ([`ResolvedGroups`]); this module only enforces them.
//!
//! The kernel's bridge netfilter (`net.bridge.bridge-nf-call-iptables`, per namespace) passes
//! frames bridged between members through the IPv4 `forward` hook with connection tracking, so
//! one `ip` table there sees every packet into a member's ENI: from another member (`forward`)
//! and from the harness itself (`output`). Layout:
//!
//! - a named set per security group holding its members' addresses (`sg<N>`), the set of all
//!   member addresses (`tasks`), the harness's address (`harness`), and the members that may
//!   reach IMDS (`imds`); starting or stopping a member only adds or deletes set elements;
//! - chain `ingress` (jumped to for every packet whose destination is a member): established and
//!   related traffic passes (security groups are stateful), then one `accept` rule per inbound
//!   rule of each group, matching the destination's group set, then a counted `drop`. A member
//!   in several groups is admitted by any of their rules, as on AWS. Egress is open, as in a
//!   group's default outbound rule; the members' routes keep it inside the harness anyway;
//! - chain `endpoints` (for packets from a member to the harness namespace itself): the ECS
//!   agent endpoint if the table has one, IMDS for the `imds` set, nothing else;
//! - a `bridge` table that drops IPv4 frames whose source address is not the one of the port
//!   they came in on (the ENI's source/destination check), so group membership by address
//!   cannot be spoofed.
//!
//! [`SecurityGroups`] is the lifecycle: check that the host can filter bridged traffic, turn
//! the bridge netfilter on for one more filter, install, follow a member that stops alone,
//! remove. Everything lives in the harness namespace and goes with it after a crash; teardown
//! removes it explicitly anyway, measured.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use isobench_core::scenario::ecs::{Protocol, ResolvedGroups, ResolvedSource};
use isobench_core::tier::TierId;

use crate::error::NetworkError;
use crate::launcher::{BRIDGE_NF, Launcher};
use crate::metadata::{ECS_AGENT_ADDR, IMDS_ADDR, METADATA_PORT};
use crate::nft;

/// Which tables a filter is, and which harness endpoints its members may reach (IMDS always,
/// for the members in its `imds` set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    /// Name of both tables (`ip` and `bridge` families).
    pub name: &'static str,
    /// The ECS agent endpoint, for every member.
    pub ecs_agent: bool,
}

/// One member as the filter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub addr: Ipv4Addr,
    /// The host end of its veth (a port of a bridge in the harness namespace).
    pub port: String,
    /// Indices into [`ResolvedGroups::groups`].
    pub groups: Vec<usize>,
    /// Whether it may reach IMDS.
    pub imds: bool,
}

fn elements<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() { String::new() } else { format!(" elements = {{ {} }};", v.join(", ")) }
}

/// The whole ruleset of `table`, replacing any earlier one of that name atomically.
pub(crate) fn ruleset(table: Table, groups: &ResolvedGroups, members: &[Member], harness: Ipv4Addr) -> String {
    let tbl = table.name;
    let mut s = String::new();
    // `add` then `delete` removes a leftover table without failing when there is none; the
    // whole script is one transaction.
    for family in ["ip", "bridge"] {
        let _ = writeln!(s, "add table {family} {tbl}\ndelete table {family} {tbl}");
    }
    let _ = writeln!(s, "table ip {tbl} {{");
    let _ = writeln!(s, "  set tasks {{ type ipv4_addr;{} }}", elements(members.iter().map(|m| m.addr)));
    // The load agents (`agent_net`) drive traffic for the harness from their own namespaces.
    let (agents, agents_prefix) = crate::agent_net::AGENT_NET;
    let _ = writeln!(
        s,
        "  set harness {{ type ipv4_addr; flags interval;{} }}",
        elements([harness.to_string(), format!("{agents}/{agents_prefix}")])
    );
    let _ =
        writeln!(s, "  set imds {{ type ipv4_addr;{} }}", elements(members.iter().filter(|m| m.imds).map(|m| m.addr)));
    for (i, g) in groups.groups.iter().enumerate() {
        let in_group = members.iter().filter(|m| m.groups.contains(&i)).map(|m| m.addr);
        let _ = writeln!(s, "  set sg{i} {{ type ipv4_addr; comment \"{}\";{} }}", g.name, elements(in_group));
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
    let _ =
        writeln!(s, "  set ports {{ type ifname;{} }}", elements(members.iter().map(|m| format!("\"{}\"", m.port))));
    let _ = writeln!(
        s,
        "  set eni {{ type ipv4_addr . ifname;{} }}",
        elements(members.iter().map(|m| format!("{} . \"{}\"", m.addr, m.port)))
    );
    let _ = writeln!(s, "  chain prerouting {{ type filter hook prerouting priority filter; policy accept;");
    let _ = writeln!(s, "    iifname @ports ip saddr . iifname != @eni counter drop comment \"source check\"");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    s
}

/// Adds (`add`) or removes (`delete`) one member's set elements: how rules follow a member
/// that starts or stops on its own.
pub(crate) fn member_elements(table: Table, op: &str, m: &Member) -> String {
    let tbl = table.name;
    let mut s = String::new();
    let _ = writeln!(s, "{op} element ip {tbl} tasks {{ {} }}", m.addr);
    for g in &m.groups {
        let _ = writeln!(s, "{op} element ip {tbl} sg{g} {{ {} }}", m.addr);
    }
    if m.imds {
        let _ = writeln!(s, "{op} element ip {tbl} imds {{ {} }}", m.addr);
    }
    let _ = writeln!(s, "{op} element bridge {tbl} ports {{ \"{}\" }}", m.port);
    let _ = writeln!(s, "{op} element bridge {tbl} eni {{ {} . \"{}\" }}", m.addr, m.port);
    s
}

/// Removes both tables (and does not fail when they are already gone).
pub(crate) fn teardown_script(table: Table) -> String {
    let tbl = table.name;
    ["ip", "bridge"].iter().map(|f| format!("add table {f} {tbl}\ndelete table {f} {tbl}\n")).collect()
}

/// A tier's security groups in the harness namespace, from [`SecurityGroups::enable`] to
/// [`SecurityGroups::remove`].
pub(crate) struct SecurityGroups {
    table: Table,
    /// How report lines name the owner (`silo-ec2`, `cluster isobench-<run>`).
    owner: String,
    nft: PathBuf,
    netns: Arc<OwnedFd>,
    /// Whether this filter holds the harness namespace's bridge netfilter switch on.
    nf_held: bool,
    /// Whether the tables may exist (a failed install may have left part of them).
    installed: bool,
    /// Every member's set elements, by instance id (to delete them when it stops alone).
    members: Vec<(String, Member)>,
}

impl SecurityGroups {
    /// Checks that this host can enforce `tier`'s security groups (`nft` is installed, the
    /// kernel has bridge netfilter) and turns the bridge netfilter of the harness namespace on
    /// for one more filter. `owner` names the groups in report lines.
    pub(crate) fn enable(
        launcher: &Launcher,
        tier: TierId,
        table: Table,
        owner: String,
    ) -> Result<SecurityGroups, NetworkError> {
        let nft = nft::find().ok_or(NetworkError::NoNft { tier })?;
        launcher.run(|h| {
            // On the launcher thread, inside the harness namespace.
            if !std::path::Path::new(BRIDGE_NF).exists() {
                return Err(NetworkError::NoBridgeNetfilter { path: BRIDGE_NF });
            }
            h.bridge_nf_acquire().map_err(NetworkError::net(format!("enable {BRIDGE_NF} in the harness namespace")))
        })??;
        let netns = launcher.netns().clone();
        Ok(SecurityGroups { table, owner, nft, netns, nf_held: true, installed: false, members: Vec::new() })
    }

    /// Installs `groups` with every member's set elements in one `nft` run (`harness`: the
    /// harness's address, as members see it). Returns the ruleset and how long the run took.
    pub(crate) fn install(
        &mut self,
        groups: &ResolvedGroups,
        members: Vec<(String, Member)>,
        harness: Ipv4Addr,
    ) -> Result<(String, Duration), NetworkError> {
        let list: Vec<Member> = members.iter().map(|(_, m)| m.clone()).collect();
        let script = ruleset(self.table, groups, &list, harness);
        self.members = members;
        self.installed = true; // a failed run may have left part of it: removal deletes it either way
        let took = nft::apply(&self.nft, &self.netns, &script).map_err(NetworkError::Filter)?;
        Ok((script, took))
    }

    /// Forgets member `id`, which stopped on its own: deletes its set elements (one `nft` run),
    /// so no group admits or matches its address any more. Returns how long the run took;
    /// `None` if there is no such member.
    pub(crate) fn remove_member(&mut self, id: &str) -> Option<Result<Duration, NetworkError>> {
        let i = self.members.iter().position(|(m, _)| m == id)?;
        let (_, m) = self.members.remove(i);
        let script = member_elements(self.table, "delete", &m);
        Some(nft::apply(&self.nft, &self.netns, &script).map_err(NetworkError::Filter))
    }

    /// Removes the tables and releases the bridge netfilter switch (the members must be stopped
    /// first). Idempotent. Returns what was removed and what was left behind.
    pub(crate) fn remove(&mut self, launcher: Option<&Launcher>) -> (Vec<String>, Vec<String>) {
        let (mut removed, mut left) = (Vec::new(), Vec::new());
        let (owner, table) = (&self.owner, self.table.name);
        if self.installed {
            match nft::apply(&self.nft, &self.netns, &teardown_script(self.table)) {
                Ok(d) => {
                    self.installed = false;
                    removed.push(format!(
                        "{owner}: security groups (nftables tables ip and bridge {table}, {:.1} ms)",
                        d.as_secs_f64() * 1e3
                    ));
                }
                Err(e) => left.push(format!("{owner}: nftables tables {table}: failed to {e}")),
            }
        }
        if self.nf_held {
            let r = match launcher {
                Some(l) => l.run(|h| h.bridge_nf_release()).map_err(|e| e.to_string()),
                None => Err("the launcher thread has stopped (it goes with the harness namespace)".into()),
            };
            match r {
                Ok(()) => self.nf_held = false,
                Err(e) => left.push(format!("{owner}: bridge netfilter switch: failed to release it: {e}")),
            }
        }
        (removed, left)
    }
}
#[cfg(test)]
mod tests {
    use isobench_core::scenario::ecs::{ResolvedGroup, ResolvedRule};

    use super::*;

    const ECS: Table = Table { name: "isobench_ecs", ecs_agent: true };

    #[test]
    fn rules_per_group_and_elements_per_member() {
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
        let tasks = [Member { addr: Ipv4Addr::new(10, 213, 0, 2), port: "v7".into(), groups: vec![0], imds: true }];
        let s = ruleset(ECS, &groups, &tasks, Ipv4Addr::new(10, 213, 0, 1));
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
        let add = member_elements(ECS, "add", &tasks[0]);
        assert!(add.contains("add element ip isobench_ecs sg0 { 10.213.0.2 }"), "{add}");
        assert!(teardown_script(ECS).contains("delete table bridge isobench_ecs"));
    }
}
