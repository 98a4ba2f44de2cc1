//! The network of a load agent (`isobench run --agents N` on the local target): a network
//! namespace of its own, with a veth to the harness namespace and a default route through it,
//! so the agent's requests reach the tiers' networks the way the harness's do.
//!
//! Each agent `k` gets a /30 of [`AGENT_NET`]: `.4k+1` on the harness end (`ag<k>`), `.4k+2` on
//! its `eth0`. The harness namespace forwards between the two, and one nftables table
//! ([`NAT_TABLE`], one `nft -f -` per pool) masquerades the agents' traffic as the harness's
//! own address on the tier's network, so instances answer without a route back to the agents;
//! both are undone after the pool ([`AgentNat::remove`]).
//! Security groups count [`AGENT_NET`] as the harness (`security_groups::ruleset`): an agent is
//! the harness's load generator, moved out of its process.
//!
//! Nothing is bind-mounted or named on the host: an agent's namespace lives as long as its
//! descriptor and its process, and its veth goes with it; the NAT table lives in the harness
//! namespace and goes with that. A crash leaves at most agent processes, which die with their
//! parent (`PR_SET_PDEATHSIG`).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::netlink::{self, Netlink};
use crate::{netns, nft};

/// The agents' link network; must not overlap a tier's subnet.
pub const AGENT_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 255, 255, 0), 24);
/// Most agents one harness namespace can hold (one /30 each).
pub const MAX_AGENTS: u32 = 64;
/// The harness namespace's NAT table for agent traffic.
pub const NAT_TABLE: &str = "isobench_agents";

/// One agent's namespace; dropping it (after its process has exited) removes the namespace
/// and its veth.
#[derive(Debug)]
pub struct AgentNet {
    pub index: u32,
    pub netns: OwnedFd,
    pub addr: Ipv4Addr,
}

/// The harness and agent addresses of agent `index`.
fn addrs(index: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(AGENT_NET.0) + 4 * index;
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

/// Forwarding and the agents' masquerading in the harness namespace, from [`prepare`] until
/// [`AgentNat::remove`].
#[derive(Debug)]
pub struct AgentNat {
    harness: OwnedFd,
    nft: std::path::PathBuf,
    /// `ip_forward` before [`prepare`] turned it on.
    forward_before: String,
}

/// Turns on forwarding and the agents' masquerading in the harness namespace `harness`
/// (the table is replaced if there is one).
pub fn prepare(harness: &OwnedFd) -> io::Result<AgentNat> {
    let nft = nft::find().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "nft is not installed"))?;
    let (net, prefix) = AGENT_NET;
    let script = format!(
        "add table ip {NAT_TABLE}\ndelete table ip {NAT_TABLE}\ntable ip {NAT_TABLE} {{\n  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; ip saddr {net}/{prefix} oifname != \"ag*\" masquerade; }}\n}}\n"
    );
    let forward_before = in_netns(harness, || -> io::Result<String> {
        let before = std::fs::read_to_string(FORWARD)?;
        netns::sysctl(FORWARD, "1")?;
        Ok(before.trim().to_string())
    })??;
    let nat = AgentNat { harness: harness.try_clone()?, nft, forward_before };
    nft::apply(&nat.nft, harness, &script).map_err(io::Error::other)?;
    Ok(nat)
}

const FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

impl AgentNat {
    /// Removes the table and puts forwarding back as it was (other users of forwarding, the
    /// Lambda tiers' internet, turn it on for themselves).
    pub fn remove(self) -> io::Result<()> {
        let script = format!("add table ip {NAT_TABLE}\ndelete table ip {NAT_TABLE}\n");
        let removed = nft::apply(&self.nft, &self.harness, &script).map_err(io::Error::other);
        let before = self.forward_before.clone();
        in_netns(&self.harness, move || netns::sysctl(FORWARD, &before))??;
        removed.map(|_| ())
    }
}

/// Creates agent `index`'s namespace, wired to the harness namespace `harness`.
pub fn create(harness: &OwnedFd, index: u32) -> io::Result<AgentNet> {
    if index >= MAX_AGENTS {
        return Err(io::Error::other(format!("at most {MAX_AGENTS} agents")));
    }
    let (gw, addr) = addrs(index);
    let harness_fd = harness.try_clone()?;
    // A scratch thread: a namespace belongs to a thread, and this one is thrown away.
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<AgentNet> {
            let ns = netns::unshare_net()?;
            netns::sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")?;
            let mut inl = Netlink::open()?;
            netns::enter(&harness_fd)?;
            let mut nl = Netlink::open()?;
            let host_if = format!("ag{index}");
            let mac = [0x02, 0x61, 0x67, 0, 0, index as u8];
            nl.request(vec![netlink::new_veth(&host_if, 0, "eth0", 2, mac, ns.as_raw_fd())])?;
            let host = nl.link_index(&host_if)?;
            nl.request(vec![netlink::add_addr(host, gw, 30)])?;
            let eth = inl.link_index("eth0")?;
            inl.request(vec![
                netlink::link_up(1),
                netlink::link_up(eth),
                netlink::add_addr(eth, addr, 30),
                netlink::add_route(Ipv4Addr::UNSPECIFIED, 0, netlink::Via::Gateway(gw, eth)),
            ])?;
            crate::launcher::wait_running(&mut inl, "eth0")?;
            crate::launcher::wait_running(&mut nl, &host_if)?;
            Ok(AgentNet { index, netns: ns, addr })
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the agent network thread panicked")))
    })
}

/// Runs `f` on a scratch thread inside `ns`.
fn in_netns<R: Send>(ns: &OwnedFd, f: impl FnOnce() -> R + Send) -> io::Result<R> {
    std::thread::scope(|s| {
        s.spawn(|| -> io::Result<R> {
            netns::enter(ns)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}
