//! The launcher thread: one long-lived thread per backend that owns the harness network
//! namespace and starts every instance.
//!
//! Why one thread: `PR_SET_PDEATHSIG` fires when the *thread* that forked a process exits, not
//! the process; spawning sandboxes from a pool thread that later retires would kill them. And a
//! network namespace belongs to a thread: this one moves into the harness namespace once, and
//! only leaves it briefly to create an instance's namespace (then returns), so its readiness
//! checks reach instance addresses that the host itself has no route to.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::error::InstanceError;
use crate::netlink::{self, Netlink};
use crate::netns;

/// Name of the harness bridge.
pub const BRIDGE: &str = "br0";
/// Interface index requested for the bridge in the harness namespace (`lo` is 1).
const BRIDGE_INDEX: i32 = 2;
/// Name and requested index of an instance's interface in its own namespace.
pub const INSTANCE_IF: &str = "eth0";
const INSTANCE_IF_INDEX: i32 = 2;

type Job = Box<dyn FnOnce(&mut Harness) + Send>;

/// A bridge in the harness namespace other than [`BRIDGE`] (an ECS cluster's), which holds its
/// subnet's gateway as a /32 only: each instance on it gets a host route there instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BridgeRef {
    pub index: i32,
    pub mac: [u8; 6],
}

/// A route inside an instance's namespace, beside its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstanceRoute {
    /// `dst/32` through the subnet's gateway (the harness).
    ViaGateway(Ipv4Addr),
    /// `dst/32` dropped inside the instance.
    Blackhole(Ipv4Addr),
}

/// Where an instance's veth goes and what its namespace routes besides its subnet; the
/// default is the harness bridge and no extra route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attach {
    pub bridge: Option<BridgeRef>,
    pub routes: Vec<InstanceRoute>,
    /// A node that routes for the instance instead of a bridge (an EKS pod): see
    /// [`Harness::add_node`].
    pub node: Option<NodeRef>,
}

/// A node namespace [`Harness::add_node`] made: a router between a cluster bridge and its
/// pods, as an EKS node's host namespace is with the VPC CNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeRef {
    pub id: u32,
    /// Its primary address, on the cluster bridge.
    pub addr: Ipv4Addr,
    /// The cluster bridge's index in the harness namespace.
    pub bridge: i32,
}

/// A node the launcher holds: its namespace, a netlink socket in it, its `eth0`.
struct Node {
    netns: Arc<OwnedFd>,
    nl: Netlink,
    eth: i32,
    addr: Ipv4Addr,
    mac: [u8; 6],
    bridge: i32,
    /// The harness end of its veth, on the cluster bridge.
    host_if: i32,
}

/// What a node routes besides its subnet and its pods: `dst/32` through the gateway (the
/// harness) or dropped.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    pub bridge: BridgeRef,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub routes: Vec<InstanceRoute>,
}

/// The gateway address every pod routes through, answered by its node's end of the veth (a
/// static neighbour entry in the pod), as the VPC CNI does.
pub const POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The launcher thread's state: the harness namespace, a netlink socket in it, the bridge.
pub(crate) struct Harness {
    pub netns: Arc<OwnedFd>,
    nl: Netlink,
    bridge: i32,
    bridge_mac: [u8; 6],
    subnets: Vec<(Ipv4Addr, u8)>,
    /// Packet filters that need bridged frames passed through netfilter, and the switch's value
    /// before the first of them set it (see [`Harness::bridge_nf_acquire`]).
    bridge_nf: (u32, Option<String>),
    /// Node namespaces, by id, until [`Harness::remove_node`].
    nodes: std::collections::BTreeMap<u32, Node>,
    next_node: u32,
}

/// The bridge netfilter switch of the harness namespace (per namespace since Linux 5.3).
pub(crate) const BRIDGE_NF: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// The MAC the harness gives instance `index`'s `eth0`: locally administered, "ib", the index.
pub(crate) fn instance_mac(index: u32) -> [u8; 6] {
    let [_, a, b, c] = index.to_be_bytes();
    [0x02, 0x69, 0x62, a, b, c]
}

/// The first host address of `subnet`: the harness's address on it, its instances' gateway.
pub(crate) fn gateway_of(subnet: (Ipv4Addr, u8)) -> Ipv4Addr {
    Ipv4Addr::from(network(subnet.0, subnet.1) + 1)
}

fn network(addr: Ipv4Addr, prefix: u8) -> u32 {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
    u32::from(addr) & mask
}

impl Harness {
    /// Moves the calling thread into a new network namespace with `lo` and the bridge up.
    fn create() -> io::Result<Harness> {
        let netns = Arc::new(netns::unshare_net()?);
        // No IPv6 on the harness network: no router solicitations or DAD chatter between
        // tenants, and the workloads listen on IPv4 only.
        for k in ["all", "default"] {
            netns::sysctl(&format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1")?;
        }
        let mut nl = Netlink::open()?;
        let mac = random_mac();
        nl.request(vec![netlink::link_up(1), netlink::new_bridge(BRIDGE, BRIDGE_INDEX, mac)])?;
        let bridge = nl.link_index(BRIDGE)?;
        Ok(Harness {
            netns,
            nl,
            bridge,
            bridge_mac: mac,
            subnets: Vec::new(),
            bridge_nf: (0, None),
            nodes: Default::default(),
            next_node: 0,
        })
    }

    /// Gives the bridge the first host address of `subnet`, once per subnet.
    pub(crate) fn ensure_subnet(&mut self, subnet: (Ipv4Addr, u8)) -> Result<(), InstanceError> {
        let net = (Ipv4Addr::from(network(subnet.0, subnet.1)), subnet.1);
        if self.subnets.contains(&net) {
            return Ok(());
        }
        if let Some(other) = self.subnets.iter().find(|(a, p)| {
            let shorter = (*p).min(net.1);
            network(*a, shorter) == network(net.0, shorter)
        }) {
            return Err(InstanceError::net(
                format!("use subnet {}/{}", net.0, net.1),
                io::Error::other(format!("it overlaps {}/{} already used by this run", other.0, other.1)),
            ));
        }
        let gw = Ipv4Addr::from(u32::from(net.0) + 1);
        self.nl
            .request(vec![netlink::add_addr(self.bridge, gw, net.1)])
            .map_err(|e| InstanceError::net(format!("add {gw}/{} to {BRIDGE}", net.1), e))?;
        self.subnets.push(net);
        Ok(())
    }

    /// Creates an instance's network namespace with `lo` up and `eth0` (the peer of veth
    /// `v<index>`, which joins the bridge `attach` names) holding `addr/prefix`, plus the routes
    /// `attach` asks for; returns once both ends of the veth are running.
    pub(crate) fn instance_net(
        &mut self,
        index: u32,
        addr: Ipv4Addr,
        prefix: u8,
        attach: &Attach,
    ) -> Result<OwnedFd, InstanceError> {
        if let Some(node) = attach.node {
            return self.pod_net(index, addr, node, &attach.routes);
        }
        let (bridge, bridge_mac) = attach.bridge.map_or((self.bridge, self.bridge_mac), |b| (b.index, b.mac));
        let host_if = format!("v{index}");
        let mac = instance_mac(index);
        let gw = Ipv4Addr::from(network(addr, prefix) + 1);
        // In the new namespace only long enough to get its descriptor and a netlink socket.
        let inside = (|| -> io::Result<(OwnedFd, Netlink)> {
            let ns = netns::unshare_net()?;
            let r = netns::sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").and_then(|()| Netlink::open());
            Ok((ns, r?))
        })();
        if let Err(e) = netns::enter(&*self.netns) {
            // The thread would stay in the wrong namespace; the job loop retries once and
            // stops the launcher if that fails too.
            panic!("failed to return the launcher thread to the harness network namespace: {e}");
        }
        let (ns, mut inl) = inside.map_err(|e| InstanceError::net("create the instance network namespace", e))?;
        let mut host = vec![
            netlink::new_veth(&host_if, bridge, INSTANCE_IF, INSTANCE_IF_INDEX, mac, ns.as_raw_fd()),
            netlink::add_neigh(bridge, addr, mac),
        ];
        if attach.bridge.is_some() {
            host.push(netlink::add_route(addr, 32, netlink::Via::Link(bridge)));
        }
        let on = if attach.bridge.is_some() { format!("the bridge with index {bridge}") } else { BRIDGE.to_string() };
        self.nl
            .request(host)
            .map_err(|e| InstanceError::net(format!("create veth {host_if} on {on} with peer {INSTANCE_IF}"), e))?;
        // Looked up rather than trusting the requested index.
        let eth = inl
            .link_index(INSTANCE_IF)
            .map_err(|e| InstanceError::net(format!("find {INSTANCE_IF} in the instance namespace"), e))?;
        let mut inside = vec![
            netlink::link_up(1),
            netlink::link_up(eth),
            netlink::add_addr(eth, addr, prefix),
            netlink::add_neigh(eth, gw, bridge_mac),
        ];
        for r in &attach.routes {
            inside.push(match *r {
                InstanceRoute::ViaGateway(dst) => netlink::add_route(dst, 32, netlink::Via::Gateway(gw, eth)),
                InstanceRoute::Blackhole(dst) => netlink::add_route(dst, 32, netlink::Via::Blackhole),
            });
        }
        inl.request(inside).map_err(|e| {
            InstanceError::net(format!("bring lo and {INSTANCE_IF} up with {addr}/{prefix} and its routes"), e)
        })?;
        // Carrier changes are applied asynchronously (linkwatch); until then a fresh link
        // drops what it is given. Usually done by the time we ask.
        let t0 = std::time::Instant::now();
        loop {
            let running = |r: std::io::Result<(i32, u32)>| r.is_ok_and(|(_, f)| f & netlink::IFF_RUNNING != 0);
            if running(inl.link(INSTANCE_IF)) && running(self.nl.link(&host_if)) {
                break;
            }
            if t0.elapsed() > std::time::Duration::from_secs(1) {
                return Err(InstanceError::net(
                    format!("wait for {host_if} and {INSTANCE_IF} to come up"),
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "not running after 1s"),
                ));
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        Ok(ns)
    }
}

impl Harness {
    /// Creates another bridge `name` in the harness namespace, up, holding `addrs` (each a
    /// /32: instances on it get host routes, see [`Attach`]).
    pub(crate) fn add_bridge(&mut self, name: &str, addrs: &[Ipv4Addr]) -> io::Result<BridgeRef> {
        let mac = random_mac();
        self.nl.request(vec![netlink::new_bridge(name, 0, mac)])?;
        let index = self.nl.link_index(name)?;
        let r = self.nl.request(addrs.iter().map(|a| netlink::add_addr(index, *a, 32)).collect());
        if let Err(e) = r {
            let _ = self.delete_link(index);
            return Err(e);
        }
        Ok(BridgeRef { index, mac })
    }

    /// Adds `addr/32` to the harness bridge [`BRIDGE`] (an endpoint's address, such as IMDS).
    pub(crate) fn add_bridge_addr(&mut self, addr: Ipv4Addr) -> io::Result<()> {
        self.nl.request(vec![netlink::add_addr(self.bridge, addr, 32)])
    }

    /// Removes an address [`Harness::add_bridge_addr`] added.
    pub(crate) fn del_bridge_addr(&mut self, addr: Ipv4Addr) -> io::Result<()> {
        self.nl.request(vec![netlink::del_addr32(self.bridge, addr)])
    }

    /// Makes the bridges of the harness namespace pass IPv4 frames through netfilter (the
    /// `ip` hooks see traffic bridged between instances), for one more packet filter. Fails
    /// when the kernel has no bridge netfilter. Counted, so that one filter's release never
    /// turns it off under another.
    pub(crate) fn bridge_nf_acquire(&mut self) -> io::Result<()> {
        let prev = std::fs::read_to_string(BRIDGE_NF)?;
        if self.bridge_nf.0 == 0 {
            self.bridge_nf.1 = Some(prev.trim().to_string());
        }
        if prev.trim() != "1" {
            std::fs::write(BRIDGE_NF, "1")?;
        }
        self.bridge_nf.0 += 1;
        Ok(())
    }

    /// One filter fewer; the last one restores the value found before the first.
    pub(crate) fn bridge_nf_release(&mut self) {
        self.bridge_nf.0 = self.bridge_nf.0.saturating_sub(1);
        if self.bridge_nf.0 == 0
            && let Some(prev) = self.bridge_nf.1.take()
        {
            let _ = std::fs::write(BRIDGE_NF, prev);
        }
    }

    /// Deletes a link of the harness namespace (with its addresses and routes).
    pub(crate) fn delete_link(&mut self, index: i32) -> io::Result<()> {
        self.nl.request(vec![netlink::del_link(index)])
    }
}

/// The MAC of a node's end of pod `index`'s veth: locally administered, "nd", the index.
pub(crate) fn node_side_mac(index: u32) -> [u8; 6] {
    let [_, a, b, c] = index.to_be_bytes();
    [0x02, 0x6e, 0x64, a, b, c]
}

/// Moves the calling thread into a fresh namespace for a node, runs `inside` there, and
/// returns a descriptor, a netlink socket in it and what `inside` returned. The thread must be
/// returned to the harness namespace by the caller.
fn enter_new_node<T>(inside: impl FnOnce() -> io::Result<T>) -> io::Result<(OwnedFd, Netlink, T)> {
    let ns = netns::unshare_net()?;
    for k in ["all", "default"] {
        netns::sysctl(&format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1")?;
        // Strict reverse-path filtering: a pod cannot send with another's address (the ENI's
        // source check).
        netns::sysctl(&format!("/proc/sys/net/ipv4/conf/{k}/rp_filter"), "1")?;
    }
    // The node routes for its pods; this namespace's own switch, never the host's.
    netns::sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    let t = inside()?;
    Ok((ns, Netlink::open()?, t))
}

impl Harness {
    /// Creates a node: a network namespace that forwards, its `eth0` (the peer of veth
    /// `nd<id>`, a port of `spec.bridge`) holding `spec.addr/prefix`, a route to it from the
    /// harness namespace, static neighbours to and from the cluster's other nodes, and the
    /// routes `spec` asks for through the gateway. `inside` runs in the new namespace (to bind
    /// a node-local listener). The namespace lives until [`Harness::remove_node`] and the
    /// last descriptor the caller holds.
    pub(crate) fn add_node<T>(
        &mut self,
        spec: &NodeSpec,
        inside: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<(NodeRef, Arc<OwnedFd>, T)> {
        let created = enter_new_node(inside);
        if let Err(e) = netns::enter(&*self.netns) {
            panic!("failed to return the launcher thread to the harness network namespace: {e}");
        }
        let (ns, inl, t) = created?;
        let id = self.next_node;
        self.next_node += 1;
        let host_name = format!("nd{id}");
        let mac = node_mac(id);
        let (bridge, addr) = (spec.bridge.index, spec.addr);
        let created = self.nl.request(vec![
            netlink::new_veth(&host_name, bridge, INSTANCE_IF, INSTANCE_IF_INDEX, mac, ns.as_raw_fd()),
            netlink::add_neigh(bridge, addr, mac),
            netlink::add_route(addr, 32, netlink::Via::Link(bridge)),
        ]);
        if let Err(e) = created {
            // The veth may exist though a later message of the batch failed.
            if let Ok(i) = self.nl.link_index(&host_name) {
                let _ = self.nl.request(vec![netlink::del_link(i)]);
            }
            return Err(e);
        }
        let host_if = self.nl.link_index(&host_name)?;
        let mut node = Node { netns: Arc::new(ns), nl: inl, eth: 0, addr, mac, bridge, host_if };
        let r = self.wire_node(&mut node, spec, &host_name);
        if let Err(e) = r {
            let _ = self.nl.request(vec![netlink::del_link(host_if)]);
            return Err(e);
        }
        let netns = node.netns.clone();
        self.nodes.insert(id, node);
        Ok((NodeRef { id, addr, bridge }, netns, t))
    }

    /// The node side of [`Harness::add_node`]: its links, address, routes and neighbours.
    fn wire_node(&mut self, node: &mut Node, spec: &NodeSpec, host_name: &str) -> io::Result<()> {
        let eth = node.nl.link_index(INSTANCE_IF)?;
        node.eth = eth;
        let gw = Ipv4Addr::from(network(spec.addr, spec.prefix) + 1);
        let mut msgs = vec![
            netlink::link_up(1),
            netlink::link_up(eth),
            netlink::add_addr(eth, spec.addr, spec.prefix),
            netlink::add_neigh(eth, gw, spec.bridge.mac),
        ];
        for r in &spec.routes {
            msgs.push(match *r {
                InstanceRoute::ViaGateway(dst) => netlink::add_route(dst, 32, netlink::Via::Gateway(gw, eth)),
                InstanceRoute::Blackhole(dst) => netlink::add_route(dst, 32, netlink::Via::Blackhole),
            });
        }
        // The cluster's other nodes as permanent neighbours, both ways (no first ARP to lose).
        for other in self.nodes.values_mut().filter(|o| o.bridge == node.bridge) {
            msgs.push(netlink::add_neigh(eth, other.addr, other.mac));
            other.nl.request(vec![netlink::add_neigh(other.eth, node.addr, node.mac)])?;
        }
        node.nl.request(msgs)?;
        wait_running(&mut node.nl, INSTANCE_IF)?;
        wait_running(&mut self.nl, host_name)
    }

    /// Removes node `id`: the harness end of its veth now (the node's end and every pod
    /// route through it go with it), its namespace with the last descriptor to it (its pods'
    /// namespaces hold none: their veths' node ends die with it).
    pub(crate) fn remove_node(&mut self, id: u32) -> io::Result<()> {
        let Some(node) = self.nodes.remove(&id) else { return Ok(()) };
        let r = self.nl.request(vec![netlink::del_link(node.host_if)]);
        for other in self.nodes.values_mut().filter(|o| o.bridge == node.bridge) {
            let _ = other.nl.request(vec![netlink::del_neigh(other.eth, node.addr)]);
        }
        drop(node);
        r
    }

    /// A pod's namespace (see [`Harness::instance_net`]): `eth0` holding `addr/32`, the peer
    /// of veth `v<index>` in the node's namespace, a default route through [`POD_GATEWAY`]
    /// (a static neighbour: the node's end) plus `routes` (a blackhole for IMDS when blocked);
    /// the node routes `addr/32` to that veth, the harness and the other nodes route it
    /// through the node.
    fn pod_net(
        &mut self,
        index: u32,
        addr: Ipv4Addr,
        node: NodeRef,
        routes: &[InstanceRoute],
    ) -> Result<OwnedFd, InstanceError> {
        let net = |what: String| move |e: io::Error| InstanceError::net(what, e);
        let inside = (|| -> io::Result<(OwnedFd, Netlink)> {
            let ns = netns::unshare_net()?;
            let r = netns::sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").and_then(|()| Netlink::open());
            Ok((ns, r?))
        })();
        if let Err(e) = netns::enter(&*self.netns) {
            panic!("failed to return the launcher thread to the harness network namespace: {e}");
        }
        let (ns, mut inl) = inside.map_err(net("create the pod network namespace".into()))?;
        let host_if = format!("v{index}");
        let (mac, host_mac) = (instance_mac(index), node_side_mac(index));
        let n = self.nodes.get_mut(&node.id).ok_or_else(|| {
            InstanceError::net(format!("find node {}", node.id), io::Error::other("the node is gone"))
        })?;
        n.nl.request(vec![netlink::new_veth_pair(
            &host_if,
            host_mac,
            INSTANCE_IF,
            INSTANCE_IF_INDEX,
            mac,
            ns.as_raw_fd(),
        )])
        .map_err(net(format!("create veth {host_if} in node {} with peer {INSTANCE_IF}", node.id)))?;
        let hidx = n.nl.link_index(&host_if).map_err(net(format!("find {host_if} in node {}", node.id)))?;
        n.nl.request(vec![netlink::add_neigh(hidx, addr, mac), netlink::add_route(addr, 32, netlink::Via::Link(hidx))])
            .map_err(net(format!("route {addr} to {host_if} in node {}", node.id)))?;
        let eth = inl.link_index(INSTANCE_IF).map_err(net(format!("find {INSTANCE_IF} in the pod namespace")))?;
        let mut inside = vec![
            netlink::link_up(1),
            netlink::link_up(eth),
            netlink::add_addr(eth, addr, 32),
            netlink::add_route(POD_GATEWAY, 32, netlink::Via::Link(eth)),
            netlink::add_neigh(eth, POD_GATEWAY, host_mac),
            netlink::add_route(Ipv4Addr::UNSPECIFIED, 0, netlink::Via::Gateway(POD_GATEWAY, eth)),
        ];
        for r in routes {
            if let InstanceRoute::Blackhole(dst) = *r {
                inside.push(netlink::add_route(dst, 32, netlink::Via::Blackhole));
            }
        }
        inl.request(inside).map_err(net(format!("bring {INSTANCE_IF} up with {addr}/32 and its routes")))?;
        self.nl
            .request(vec![netlink::add_route(addr, 32, netlink::Via::Gateway(node.addr, node.bridge))])
            .map_err(net(format!("route {addr} through node {} in the harness namespace", node.id)))?;
        for other in self.nodes.values_mut().filter(|o| o.bridge == node.bridge && o.addr != node.addr) {
            other
                .nl
                .request(vec![netlink::add_route(addr, 32, netlink::Via::Gateway(node.addr, other.eth))])
                .map_err(net(format!("route {addr} through node {} from another node", node.id)))?;
        }
        let n = self.nodes.get_mut(&node.id).expect("looked up above");
        wait_running(&mut inl, INSTANCE_IF).map_err(net(format!("wait for the pod's {INSTANCE_IF}")))?;
        wait_running(&mut n.nl, &host_if).map_err(net(format!("wait for {host_if} in node {}", node.id)))?;
        Ok(ns)
    }
}

/// The MAC of node `id`'s `eth0`: locally administered, "nn", the id.
fn node_mac(id: u32) -> [u8; 6] {
    let [_, a, b, c] = id.to_be_bytes();
    [0x02, 0x6e, 0x6e, a, b, c]
}

/// Waits until the link `name` runs (carrier changes are applied asynchronously).
pub(crate) fn wait_running(nl: &mut Netlink, name: &str) -> io::Result<()> {
    let t0 = std::time::Instant::now();
    loop {
        if nl.link(name).is_ok_and(|(_, f)| f & netlink::IFF_RUNNING != 0) {
            return Ok(());
        }
        if t0.elapsed() > std::time::Duration::from_secs(1) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("{name} not running after 1s")));
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

fn random_mac() -> [u8; 6] {
    let mut b = [0u8; 6];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    b[0] = (b[0] & 0xfe) | 0x02; // unicast, locally administered
    b
}

/// Handle to the launcher thread.
pub(crate) struct Launcher {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    netns: Arc<OwnedFd>,
}

impl Launcher {
    /// Starts the thread and creates the harness namespace on it.
    pub(crate) fn start() -> io::Result<Launcher> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<io::Result<Arc<OwnedFd>>>(1);
        let thread = std::thread::Builder::new().name("isobench-launcher".into()).spawn(move || {
            let mut h = match Harness::create() {
                Ok(h) => {
                    let _ = ready_tx.send(Ok(h.netns.clone()));
                    h
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Ok(job) = rx.recv() {
                // A panicking job drops its reply channel (the caller sees an error); the
                // thread, and the sandboxes whose death signal is tied to it, live on, back
                // in the harness namespace. If it cannot get back there, it stops.
                if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut h))).is_err()
                    && netns::enter(&*h.netns).is_err()
                {
                    break;
                }
            }
        })?;
        match ready_rx.recv() {
            Ok(Ok(netns)) => Ok(Launcher { tx: Some(tx), thread: Some(thread), netns }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other("the launcher thread exited while starting"))
            }
        }
    }

    /// The harness network namespace.
    pub(crate) fn netns(&self) -> &Arc<OwnedFd> {
        &self.netns
    }

    /// Runs `f` on the launcher thread and returns its result.
    pub(crate) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Harness) -> R + Send + 'static,
    ) -> Result<R, InstanceError> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or(InstanceError::LauncherGone)?;
        tx.send(Box::new(move |h: &mut Harness| {
            let _ = rtx.send(f(h));
        }))
        .map_err(|_| InstanceError::LauncherGone)?;
        rrx.recv().map_err(|_| InstanceError::LauncherGone)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
