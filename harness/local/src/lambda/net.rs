//! The network of Lambda execution environments: egress only, as on Lambda.
//!
//! - **A bridge per tier** (`lambda-<abbr>`, [`TierNet`]) in the harness namespace holds the
//!   subnet's gateway as a /32 and a route to the tier's block of addresses (an aligned block
//!   of the run's subnet, reserved at deploy). Each environment gets a veth (`l<addr in hex>`)
//!   into it, `eth0` inside with its address as a /32, and a default route via the gateway, so
//!   everything it sends is routed by the harness (never bridged to another environment).
//!   Wiring an environment is two netlink batches on the spawner thread (no `ip`, no `nft`).
//! - **Inbound is blocked** ([`tier_ruleset`], one `nft` run per tier deploy): a table of the
//!   tier's own drops every new connection towards the block, from the harness or anything it
//!   routes, and lets replies to the environments' own connections pass. On Lambda a function
//!   runs in a VPC the service owns, under its network rules, and a VPC configuration gives it
//!   outbound access only (Lambda developer guide, "Private networking with VPC",
//!   <https://docs.aws.amazon.com/lambda/latest/dg/foundation-networking.html>, and "Connecting
//!   outbound networking to resources in a VPC",
//!   <https://docs.aws.amazon.com/lambda/latest/dg/vpc.html>).
//! - **Egress** without VPC settings reaches only the run's emulated internet ([`Internet`]):
//!   a network namespace of the run's own (pinned at `/run/netns/isobench-<run>@internet`, so
//!   `sweep` finds it) holding an HTTP responder at [`INTERNET_ADDR`]:[`INTERNET_PORT`],
//!   behind a veth `inet0` of the harness namespace. Nothing leaves the host: the harness
//!   namespace has no route out and the host's own routes are never touched.
//!
//! The harness namespace forwards IPv4 once the internet exists (a sysctl of that namespace
//! only). Only Lambda environments send it packets that are not for itself (other tiers route
//! only their subnet on-link and the harness's own /32s), and the tables here decide what
//! crosses: the run's table ([`internet_ruleset`]) lets only Lambda bridges reach `inet0` and
//! nothing open a connection from it; each tier's table confines its environments' egress.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isobench_core::backend::TeardownReport;
use isobench_core::security_groups::{EgressRule, Protocol};
use isobench_core::tier::TierId;

use crate::error::NetworkError;
use crate::launcher::{BridgeRef, Launcher};
use crate::metadata::http::{Handler, Request, Response, Server};
use crate::netlink::{self, Netlink, Via};
use crate::netns;
use crate::nft;

/// The run's emulated internet: an HTTP responder at this address (the top of the emulator's
/// range `10.213.0.0/16`, which instance and task addresses, handed out from the bottom, never
/// reach in practice).
pub const INTERNET_ADDR: Ipv4Addr = Ipv4Addr::new(10, 213, 255, 254);
pub const INTERNET_PORT: u16 = 80;
/// The harness end of the veth to the internet namespace.
pub const INTERNET_LINK: &str = "inet0";
/// Prefix of every Lambda tier's bridge.
pub const BRIDGE_PREFIX: &str = "lambda-";
/// The run's nftables table for the internet link.
const INTERNET_TABLE: &str = "isobench_internet";
/// The environment's interface.
const ENV_IF: &str = "eth0";
const ENV_IF_INDEX: i32 = 2;

/// The MAC of the environment holding `addr`: fixed per address, so the bridge's permanent
/// neighbour entry stays right when an address is used again.
fn env_mac(addr: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = addr.octets();
    [0x02, 0x6c, a, b, c, d]
}

/// The bridge of a Lambda tier: `lambda-` and the initials of the rest of its id.
pub(crate) fn bridge_name(tier: TierId) -> String {
    let rest = tier.as_str().strip_prefix("lambda-").unwrap_or(tier.as_str());
    let abbr: String = rest.split('-').filter_map(|w| w.chars().next()).collect();
    format!("{BRIDGE_PREFIX}{abbr}")
}

fn table_name(bridge: &str) -> String {
    format!("isobench_{}", bridge.replace('-', "_"))
}

/// The ruleset of a tier's table: nothing opens a connection to `block`; its environments
/// reach only `egress` (nftables statements, e.g. the internet's address).
pub(crate) fn tier_ruleset(table: &str, bridge: &str, block: (Ipv4Addr, u8), egress: &str) -> String {
    let (net, prefix) = block;
    let mut s = String::new();
    let _ = writeln!(s, "add table ip {table}\ndelete table ip {table}");
    let _ = writeln!(s, "table ip {table} {{");
    let _ = writeln!(
        s,
        "  chain forward {{ type filter hook forward priority filter; policy accept; ip daddr {net}/{prefix} jump inbound; iifname \"{bridge}\" jump egress; }}"
    );
    let _ = writeln!(
        s,
        "  chain output {{ type filter hook output priority filter; policy accept; ip daddr {net}/{prefix} jump inbound; }}"
    );
    let _ = writeln!(
        s,
        "  chain input {{ type filter hook input priority filter; policy accept; iifname \"{bridge}\" jump harness; }}"
    );
    let _ = writeln!(
        s,
        "  chain inbound {{ ct state established,related accept; counter drop comment \"lambda accepts no inbound connection\"; }}"
    );
    let _ = writeln!(s, "  chain egress {{");
    let _ = writeln!(s, "    ct state established,related accept");
    s.push_str(egress);
    let _ = writeln!(s, "    counter drop comment \"no other egress\"");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain harness {{ ct state established,related accept; counter drop comment \"nothing of the harness\"; }}"
    );
    let _ = writeln!(s, "}}");
    s
}

/// Egress to the run's internet only (a tier without VPC settings).
pub(crate) fn internet_egress() -> String {
    format!("    ip daddr {INTERNET_ADDR} accept comment \"the run's internet\"\n")
}

/// Egress by a VPC's security groups: one `accept` per outbound rule. The run's internet
/// responder is then an address like any other (it lies in the VPC's range), reachable only
/// where a rule allows it; there is no NAT gateway to anything beyond ("Connecting a function
/// to a public subnet doesn't give it internet access": Lambda developer guide,
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html>).
pub(crate) fn vpc_egress(rules: &[EgressRule]) -> String {
    let mut s = String::new();
    for r in rules {
        let (a, p) = r.destination;
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
        let _ = writeln!(s, "    ip daddr {a}/{p}{proto} accept comment \"security group egress\"");
    }
    s
}

/// The run's table for the internet link: only Lambda bridges reach it, and it opens no
/// connection into the run.
pub(crate) fn internet_ruleset() -> String {
    let (t, l) = (INTERNET_TABLE, INTERNET_LINK);
    let mut s = String::new();
    let _ = writeln!(s, "add table ip {t}\ndelete table ip {t}");
    let _ = writeln!(s, "table ip {t} {{");
    let _ = writeln!(s, "  chain forward {{ type filter hook forward priority filter; policy accept;");
    let _ = writeln!(
        s,
        "    oifname \"{l}\" iifname != \"{BRIDGE_PREFIX}*\" counter drop comment \"only Lambda environments\""
    );
    let _ = writeln!(s, "    iifname \"{l}\" ct state established,related accept");
    let _ = writeln!(s, "    iifname \"{l}\" counter drop comment \"the internet opens no connection into the run\"");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  chain input {{ type filter hook input priority filter; policy accept;");
    let _ = writeln!(s, "    iifname \"{l}\" ct state established,related accept");
    let _ = writeln!(s, "    iifname \"{l}\" counter drop comment \"nothing of the harness\"");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    s
}

fn drop_table(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

/// A Lambda tier's network: its bridge, address block and table. Environments attach with
/// [`TierNet::attach`] on the spawner thread.
/// Why an environment could not join its tier's bridge: a Linux bridge takes at most 1,023
/// ports (`BR_MAX_PORTS`), so a tier holds at most that many environments (busy or frozen) at
/// once on the emulator, where Lambda has no such limit.
pub(crate) const BRIDGE_FULL: &str = "the tier's bridge has 1,023 environments, a Linux bridge's most ports: the emulator holds at most 1,023 environments of one tier at once";

pub(crate) struct TierNet {
    pub bridge_name: String,
    bridge: BridgeRef,
    gateway: Ipv4Addr,
    pub block: (Ipv4Addr, u8),
    /// A netlink socket of the harness namespace (it stays bound there on any thread).
    nl: Mutex<Netlink>,
    next: AtomicU32,
    harness: Arc<OwnedFd>,
    nft: PathBuf,
    table: String,
    /// The ruleset as installed.
    pub ruleset: String,
    /// Creating the bridge and route, and the one `nft` run.
    pub setup: Duration,
    removed: Mutex<bool>,
}

impl std::fmt::Debug for TierNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TierNet").field("bridge", &self.bridge_name).field("block", &self.block).finish()
    }
}

impl TierNet {
    /// Creates `tier`'s bridge (holding `gateway`), routes `block` to it and installs its
    /// table with `egress`. On error, nothing of it is left.
    pub(crate) fn create(
        launcher: &Launcher,
        tier: TierId,
        gateway: Ipv4Addr,
        block: (Ipv4Addr, u8),
        egress: &str,
    ) -> Result<TierNet, NetworkError> {
        let t0 = Instant::now();
        let nft = nft::find().ok_or(NetworkError::NoNft { tier })?;
        let name = bridge_name(tier);
        let n = name.clone();
        let (bridge, nl) = launcher.run(move |h| -> Result<(BridgeRef, Netlink), NetworkError> {
            // On the launcher thread, inside the harness namespace.
            let on = |what: &str| NetworkError::net(format!("{what} {n}"));
            let b = h.add_bridge(&n, &[gateway]).map_err(on("create the Lambda bridge"))?;
            let r = Netlink::open().and_then(|mut nl| {
                nl.request(vec![netlink::add_route(block.0, block.1, Via::Link(b.index))]).map(|()| nl)
            });
            match r {
                Ok(nl) => Ok((b, nl)),
                Err(e) => {
                    let _ = h.delete_link(b.index);
                    Err(on("route the environments' block to")(e))
                }
            }
        })??;
        let table = table_name(&name);
        let ruleset = tier_ruleset(&table, &name, block, egress);
        let mut net = TierNet {
            bridge_name: name,
            bridge,
            gateway,
            block,
            nl: Mutex::new(nl),
            next: AtomicU32::new(0),
            harness: launcher.netns().clone(),
            nft,
            table,
            ruleset,
            setup: Duration::ZERO,
            removed: Mutex::new(false),
        };
        // From here on, `remove` (on drop) undoes whatever exists.
        nft::apply(&net.nft, &net.harness, &net.ruleset).map_err(NetworkError::Filter)?;
        net.setup = t0.elapsed();
        Ok(net)
    }

    /// The next address of the block, round robin (a departed environment's address comes
    /// back only after every other one has been used; one still in use is skipped).
    fn next_addr(&self) -> Ipv4Addr {
        let size = 1u32 << (32 - u32::from(self.block.1));
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ipv4Addr::from(u32::from(self.block.0) + 1 + n % (size - 2))
    }

    /// Wires the environment namespace `ns` (whose netlink socket is `inside`, with `lo` up)
    /// into the bridge: a veth, its address and a default route via the gateway. Returns the
    /// address. Two netlink batches; no packet filter changes.
    /// Fails once the tier's bridge has [`BRIDGE_FULL`]'s 1,023 ports.
    pub(crate) fn attach(&self, ns: &OwnedFd, inside: &mut Netlink) -> io::Result<Ipv4Addr> {
        let size = 1usize << (32 - u32::from(self.block.1));
        let mut tries = 0;
        let addr = loop {
            let addr = self.next_addr();
            let host_if = format!("l{:08x}", u32::from(addr));
            let mac = env_mac(addr);
            let r = self.nl.lock().unwrap_or_else(|p| p.into_inner()).request(vec![
                netlink::new_veth(&host_if, self.bridge.index, ENV_IF, ENV_IF_INDEX, mac, ns.as_raw_fd()),
                netlink::replace_neigh(self.bridge.index, addr, mac),
            ]);
            match r {
                Ok(()) => break addr,
                // Still held by a live (or not yet reaped) environment: the next one.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && tries < size => tries += 1,
                Err(e) if e.raw_os_error() == Some(libc::EXFULL) => {
                    return Err(io::Error::new(e.kind(), format!("create veth {host_if}: {BRIDGE_FULL}")));
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("create veth {host_if}: {e}"))),
            }
        };
        let eth = inside.link_index(ENV_IF)?;
        let gw = self.gateway;
        inside.request(vec![
            netlink::link_up(eth),
            netlink::add_addr(eth, addr, 32),
            netlink::add_neigh(eth, gw, self.bridge.mac),
            netlink::add_route(gw, 32, Via::Link(eth)),
            netlink::add_route(Ipv4Addr::UNSPECIFIED, 0, Via::Gateway(gw, eth)),
        ])?;
        // A fresh veth drops what it is given until both ends carry (linkwatch, usually done
        // by now).
        let t0 = Instant::now();
        let running = |r: io::Result<(i32, u32)>| r.is_ok_and(|(_, f)| f & netlink::IFF_RUNNING != 0);
        while !running(inside.link(ENV_IF)) {
            if t0.elapsed() > Duration::from_secs(1) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("{ENV_IF} not running after 1s")));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        Ok(addr)
    }

    /// Removes the table and the bridge (the environments must be gone: their veths go with
    /// their namespaces). Idempotent.
    pub(crate) fn remove(&self) -> TeardownReport {
        let mut report = TeardownReport::default();
        let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        if *removed {
            return report;
        }
        let name = &self.bridge_name;
        match nft::apply(&self.nft, &self.harness, &drop_table(&self.table)) {
            Ok(d) => report.removed.push(format!("{name}: nftables table ip {} ({:.1} ms)", self.table, ms(d))),
            Err(e) => report.left_behind.push(format!("{name}: nftables table ip {}: failed to {e}", self.table)),
        }
        let r = self.nl.lock().unwrap_or_else(|p| p.into_inner()).request(vec![netlink::del_link(self.bridge.index)]);
        match r {
            Ok(()) => {
                report.removed.push(format!("Lambda bridge {name} with its route to {}/{}", self.block.0, self.block.1))
            }
            Err(e) => report.left_behind.push(format!("Lambda bridge {name}: failed to delete it: {e}")),
        }
        *removed = true;
        report
    }
}

impl Drop for TierNet {
    fn drop(&mut self) {
        let r = self.remove();
        if !r.left_behind.is_empty() {
            tracing::warn!(left = ?r.left_behind, "a Lambda tier's network was left behind");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The responder: answers any request with who asked.
struct Responder;

impl Handler for Responder {
    fn handle(&self, req: &Request, peer: std::net::SocketAddr) -> Response {
        Response::text(200, format!("isobench internet: {} {} from {}\n", req.method, req.target, peer.ip()))
    }

    fn server_name(&self) -> &'static str {
        "isobench-internet"
    }
}

/// The run's emulated internet (see the module docs).
pub(crate) struct Internet {
    pin: PathBuf,
    harness: Arc<OwnedFd>,
    nft: PathBuf,
    server: Option<Server>,
    table: bool,
}

impl Internet {
    /// Creates the namespace (pinned for `sweep`), its veth and routes, the run's table, turns
    /// forwarding on in the harness namespace and starts the responder. `gateway` is the
    /// harness's address as the internet sees it. On error, [`Internet::remove`] (on drop)
    /// removes what was made.
    pub(crate) fn create(
        launcher: &Launcher,
        tier: TierId,
        run_id: &str,
        gateway: Ipv4Addr,
    ) -> Result<Internet, NetworkError> {
        let nft = nft::find().ok_or(NetworkError::NoNft { tier })?;
        let pin =
            PathBuf::from(crate::sweep::NETNS_DIR).join(format!("{}{run_id}@internet", crate::sweep::NETNS_PREFIX));
        let mut me = Internet { pin: pin.clone(), harness: launcher.netns().clone(), nft, server: None, table: false };
        me.table = true;
        nft::apply(&me.nft, &me.harness, &internet_ruleset()).map_err(NetworkError::Filter)?;
        let listener = launcher
            .run(move |_h| internet_net(&pin, gateway))?
            .map_err(NetworkError::net("create the run's internet namespace"))?;
        let server = Server::start("internet", listener, Arc::new(Responder));
        me.server = Some(server.map_err(NetworkError::net("start the internet responder"))?);
        Ok(me)
    }

    /// Stops the responder and removes the namespace (its veth goes with it) and the table.
    pub(crate) fn remove(&mut self) -> TeardownReport {
        let mut report = TeardownReport::default();
        if let Some(s) = self.server.take() {
            let served = s.served();
            s.stop();
            report
                .removed
                .push(format!("internet responder {INTERNET_ADDR}:{INTERNET_PORT} ({served} requests served)"));
        }
        if self.pin.exists() {
            match unpin(&self.pin) {
                Ok(()) => report.removed.push(format!("netns {} with veth {INTERNET_LINK}", self.pin.display())),
                Err(e) => report.left_behind.push(format!("netns {}: failed to remove it: {e}", self.pin.display())),
            }
        }
        if self.table {
            match nft::apply(&self.nft, &self.harness, &drop_table(INTERNET_TABLE)) {
                Ok(_) => {
                    self.table = false;
                    report.removed.push(format!("nftables table ip {INTERNET_TABLE}"));
                }
                Err(e) => report.left_behind.push(format!("nftables table ip {INTERNET_TABLE}: failed to {e}")),
            }
        }
        report
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        self.remove();
    }
}

/// On the launcher thread (in the harness namespace): forwarding on, a new namespace pinned at
/// `pin` with `eth0` at [`INTERNET_ADDR`] (default route via `gateway`), the veth's harness end
/// [`INTERNET_LINK`] holding `gateway`/32 and a route to the internet address, and a listener
/// bound inside. Returns to the harness namespace whatever happens.
fn internet_net(pin: &std::path::Path, gateway: Ipv4Addr) -> io::Result<TcpListener> {
    let home: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")?.into();
    netns::sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    let mut hnl = Netlink::open()?;
    let inside = (|| -> io::Result<(OwnedFd, Netlink)> {
        let ns = netns::unshare_net()?;
        netns::sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")?;
        Ok((ns, Netlink::open()?))
    })();
    if let Err(e) = netns::enter(&home) {
        panic!("failed to return the launcher thread to the harness network namespace: {e}");
    }
    let (ns, mut inl) = inside?;
    pin_netns(&ns, pin)?;
    let mac = env_mac(INTERNET_ADDR);
    hnl.request(vec![netlink::new_veth(INTERNET_LINK, 0, ENV_IF, ENV_IF_INDEX, mac, ns.as_raw_fd())])?;
    let link = hnl.link_index(INTERNET_LINK)?;
    hnl.request(vec![
        netlink::add_addr(link, gateway, 32),
        netlink::add_neigh(link, INTERNET_ADDR, mac),
        netlink::add_route(INTERNET_ADDR, 32, Via::Link(link)),
    ])?;
    let eth = inl.link_index(ENV_IF)?;
    inl.request(vec![
        netlink::link_up(1),
        netlink::link_up(eth),
        netlink::add_addr(eth, INTERNET_ADDR, 32),
        netlink::add_route(gateway, 32, Via::Link(eth)),
        netlink::add_route(Ipv4Addr::UNSPECIFIED, 0, Via::Gateway(gateway, eth)),
    ])?;
    netns::enter(&ns)?;
    let l = TcpListener::bind((INTERNET_ADDR, INTERNET_PORT));
    if let Err(e) = netns::enter(&home) {
        panic!("failed to return the launcher thread to the harness network namespace: {e}");
    }
    l
}

/// Bind-mounts the namespace `ns` at `pin` (as `ip netns add` does).
fn pin_netns(ns: &OwnedFd, pin: &std::path::Path) -> io::Result<()> {
    if let Some(d) = pin.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::File::create(pin)?;
    let src = format!("/proc/self/fd/{}", ns.as_raw_fd());
    nix::mount::mount(Some(src.as_str()), pin, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).map_err(|e| {
        let _ = std::fs::remove_file(pin);
        io::Error::from(e)
    })
}

fn unpin(pin: &std::path::Path) -> io::Result<()> {
    match nix::mount::umount2(pin, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(e.into()),
    }
    std::fs::remove_file(pin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_are_named_per_tier_within_the_interface_name_limit() {
        assert_eq!(bridge_name(TierId::LambdaPerTenant), "lambda-pt");
        assert_eq!(bridge_name(TierId::LambdaShared), "lambda-s");
        assert_eq!(bridge_name(TierId::LambdaTenantIsolation), "lambda-ti");
        assert_eq!(table_name("lambda-pt"), "isobench_lambda_pt");
    }

    #[test]
    fn the_tier_table_blocks_inbound_and_confines_egress() {
        let s = tier_ruleset("t", "lambda-s", (Ipv4Addr::new(10, 213, 8, 0), 21), &internet_egress());
        for want in [
            "ip daddr 10.213.8.0/21 jump inbound",
            "iifname \"lambda-s\" jump egress",
            "ct state established,related accept; counter drop comment \"lambda accepts no inbound connection\"",
            "ip daddr 10.213.255.254 accept",
            "counter drop comment \"no other egress\"",
        ] {
            assert!(s.contains(want), "missing `{want}` in\n{s}");
        }
        assert!(internet_ruleset().contains("oifname \"inet0\" iifname != \"lambda-*\" counter drop"));
        let rules = [
            EgressRule { protocol: Protocol::Tcp, ports: Some((80, 80)), destination: (INTERNET_ADDR, 32) },
            EgressRule { protocol: Protocol::Udp, ports: Some((53, 54)), destination: (Ipv4Addr::new(10, 0, 0, 0), 8) },
            EgressRule::all(),
        ];
        let s = vpc_egress(&rules);
        for want in [
            "ip daddr 10.213.255.254/32 tcp dport 80 accept",
            "ip daddr 10.0.0.0/8 udp dport 53-54 accept",
            "ip daddr 0.0.0.0/0 accept",
        ] {
            assert!(s.contains(want), "missing `{want}` in\n{s}");
        }
    }
}
