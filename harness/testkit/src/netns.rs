//! Network namespaces from a test's side: run a closure inside one (on a fresh thread, since
//! `setns` moves only the calling thread), create one, and read what the kernel shows of one
//! (routes, interfaces, addresses, the packet filter).

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sched::{CloneFlags, setns, unshare};

/// Runs `f` on a fresh thread inside the network namespace `ns`.
pub fn in_netns<T: Send + 'static>(ns: &OwnedFd, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.try_clone().expect("duplicate the namespace descriptor");
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("the thread in the namespace panicked")
}

/// Runs `f` on a fresh thread inside the network namespace of process `pid`.
pub fn in_netns_of<T: Send + 'static>(pid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    in_netns(&of_pid(pid), f)
}

/// The network namespace of process `pid`.
pub fn of_pid(pid: u32) -> OwnedFd {
    File::open(format!("/proc/{pid}/ns/net")).unwrap_or_else(|e| panic!("netns of {pid}: {e}")).into()
}

/// A fresh network namespace with `lo` up. `Err` when this process may not create namespaces
/// (not root); a namespace whose `lo` cannot be brought up is a panic.
pub fn create() -> nix::Result<OwnedFd> {
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET)?;
        loopback_up().expect("bring lo up in the new namespace");
        Ok(File::open("/proc/thread-self/ns/net").expect("open the new namespace").into())
    })
    .join()
    .expect("the thread creating the namespace panicked")
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| {
        // A new namespace has no usable address yet; any datagram socket will do for ioctl.
        // SAFETY: plain socket(2) call; the returned descriptor is checked and owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh, valid descriptor owned by nothing else.
        Ok(unsafe { std::net::UdpSocket::from_raw_fd(fd) })
    })?;
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the `ifreq` we own, on a valid socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the `ifreq` we own, on a valid socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One route of `/proc/<...>/net/route`: (interface, destination, gateway, prefix length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub dst: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix: u32,
}

/// An address as `/proc/net/route` prints it: host-order hex of the network-order value.
fn hex_addr(s: &str) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_str_radix(s, 16).expect("hex address").to_le_bytes())
}

/// The main IPv4 routing table of the calling thread's namespace.
pub fn routes_here() -> Vec<Route> {
    let text = std::fs::read_to_string("/proc/thread-self/net/route").expect("net/route");
    parse_routes(&text)
}

fn parse_routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Route {
                iface: f[0].to_string(),
                dst: hex_addr(f[1]),
                gateway: hex_addr(f[2]),
                prefix: u32::from(hex_addr(f[7])).count_ones(),
            }
        })
        .collect()
}

/// The interfaces of the calling thread's namespace.
pub fn links_here() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev");
    text.lines().skip(2).filter_map(|l| l.split(':').next()).map(|s| s.trim().to_string()).collect()
}

/// The local IPv4 addresses of the namespace `pid` is in, other than loopback, from its
/// `/proc/<pid>/net/fib_trie` (the kernel's own table, no `ip` needed).
pub fn local_addrs(pid: u32) -> BTreeSet<Ipv4Addr> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie")).expect("fib_trie");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeSet::new();
    for w in lines.windows(2) {
        if let Some(a) = w[0].trim().strip_prefix("|-- ")
            && w[1].contains("/32 host LOCAL")
            && let Ok(a) = a.parse::<Ipv4Addr>()
            && !a.is_loopback()
        {
            out.insert(a);
        }
    }
    out
}

/// The network configuration of this process's namespace (the host's, for a test): interface
/// names and the IPv4 and IPv6 route tables.
pub fn host_network() -> (Vec<String>, String, String) {
    let mut ifs: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    ifs.sort();
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    (ifs, v4, v6)
}

/// Output of `nft ARGS` run inside the network namespace `ns` (the test's own view of the
/// packet filter, independent of the backend).
pub fn nft_in(ns: &OwnedFd, args: &[&str]) -> String {
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new("nft");
    cmd.args(args);
    // SAFETY: only setns(2), async-signal-safe, between fork and exec; `fd` is open.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The packet count of the first `counter` on a line containing `marker` in `nft` output.
pub fn counter(listing: &str, marker: &str) -> u64 {
    listing
        .lines()
        .find(|l| l.contains(marker) && l.contains("counter packets"))
        .and_then(|l| l.split("counter packets ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_read_as_the_kernel_prints_them() {
        let text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = parse_routes(text);
        assert_eq!(routes[0].gateway, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!((routes[1].dst, routes[1].prefix), (Ipv4Addr::new(192, 168, 0, 0), 24));
    }

    #[test]
    fn counter_reads_the_marked_line() {
        let listing = "ip saddr 10.0.0.1 counter packets 7 bytes 420 drop comment \"sg-a\"\n";
        assert_eq!(counter(listing, "sg-a"), 7);
        assert_eq!(counter(listing, "sg-b"), 0);
    }
}
