//! A minimal, synchronous rtnetlink client: just the requests the emulator needs (create a
//! bridge, create a veth pair whose peer lands in another namespace, bring a link up, add an
//! address).
//!
//! Hand-written instead of a netlink crate because the needs are small and fixed, the calls
//! must be synchronous (they run on the launcher thread, not in a runtime) and the requests are
//! batched: one `send` carries several messages and the kernel answers each with an ack.
//!
//! A netlink socket talks to the network namespace it was *created* in, so a socket opened on a
//! thread that is inside an instance's namespace keeps configuring that namespace after the
//! thread has moved back.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// Values from <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/veth.h>,
// <linux/if_addr.h>. Stable kernel ABI.
const NETLINK_ROUTE: i32 = 0;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;
const SOL_NETLINK: i32 = 270;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWNEIGH: u16 = 28;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_PERMANENT: u16 = 0x80;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
pub(crate) const IFF_UP: u32 = 0x1;
pub(crate) const IFF_RUNNING: u32 = 0x40;
const NLA_F_NESTED: u16 = 1 << 15;

const HDR_LEN: usize = 16;

/// One netlink message being built: header, fixed payload, then attributes.
pub(crate) struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in `finish`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set on send
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        Msg { buf, nests: Vec::new() }
    }

    /// Appends a `struct ifinfomsg`.
    fn ifinfo(mut self, index: i32, flags: u32, change: u32) -> Msg {
        push_ifinfo(&mut self.buf, index, flags, change);
        self
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        pad4(&mut self.buf);
        self
    }

    fn attr_str(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data)
    }

    fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.attr(kind, &v.to_ne_bytes())
    }

    fn begin(&mut self, kind: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Msg {
        let start = self.nests.pop().expect("balanced nests");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn raw(&mut self, data: &[u8]) -> &mut Msg {
        self.buf.extend_from_slice(data);
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        debug_assert!(self.nests.is_empty());
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn pad4(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn push_ifinfo(buf: &mut Vec<u8>, index: i32, flags: u32, change: u32) {
    buf.push(AF_UNSPEC);
    buf.push(0);
    buf.extend_from_slice(&0u16.to_ne_bytes()); // device type
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&change.to_ne_bytes());
}

/// `RTM_NEWLINK` for a bridge named `name` with a fixed MAC (so its address does not change
/// as ports join) and, when `index` is non-zero, that interface index; created up.
pub(crate) fn new_bridge(name: &str, index: i32, mac: [u8; 6]) -> Msg {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(index, IFF_UP, IFF_UP);
    m.attr_str(IFLA_IFNAME, name).attr(IFLA_ADDRESS, &mac);
    m.begin(IFLA_LINKINFO).attr_str(IFLA_INFO_KIND, "bridge").end();
    m
}

/// `RTM_NEWLINK` for a veth pair: `name` stays in the socket's namespace, up and enslaved to
/// `master`; the peer `peer_name` is created directly in the namespace `peer_netns` with the
/// interface index `peer_index` (0: the kernel picks) and the MAC `peer_mac`, down: asking for
/// it up here fails with `ENOTCONN` (Linux 6.18), so the caller brings it up from inside its
/// namespace.
pub(crate) fn new_veth(
    name: &str,
    master: i32,
    peer_name: &str,
    peer_index: i32,
    peer_mac: [u8; 6],
    peer_netns: RawFd,
) -> Msg {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, IFF_UP, IFF_UP);
    m.attr_str(IFLA_IFNAME, name).attr_u32(IFLA_MASTER, master as u32);
    veth_peer(m, peer_name, peer_index, peer_mac, peer_netns)
}

/// The `IFLA_LINKINFO` of a veth whose peer is created in `peer_netns` (see [`new_veth`]).
fn veth_peer(mut m: Msg, peer_name: &str, peer_index: i32, peer_mac: [u8; 6], peer_netns: RawFd) -> Msg {
    m.begin(IFLA_LINKINFO).attr_str(IFLA_INFO_KIND, "veth").begin(IFLA_INFO_DATA).begin(VETH_INFO_PEER);
    let mut peer = Vec::with_capacity(16);
    push_ifinfo(&mut peer, peer_index, 0, 0);
    m.raw(&peer)
        .attr_str(IFLA_IFNAME, peer_name)
        .attr(IFLA_ADDRESS, &peer_mac)
        .attr_u32(IFLA_NET_NS_FD, peer_netns as u32);
    m.end().end().end();
    m
}

/// `RTM_NEWLINK` for a veth pair joined to no bridge: `name` (MAC `mac`, up) stays in the
/// socket's namespace, the peer as in [`new_veth`]. For a routed hop (an EKS node's side of
/// its pod's veth), whose MAC the pod's static gateway entry names.
pub(crate) fn new_veth_pair(
    name: &str,
    mac: [u8; 6],
    peer_name: &str,
    peer_index: i32,
    peer_mac: [u8; 6],
    peer_netns: RawFd,
) -> Msg {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, IFF_UP, IFF_UP);
    m.attr_str(IFLA_IFNAME, name).attr(IFLA_ADDRESS, &mac);
    veth_peer(m, peer_name, peer_index, peer_mac, peer_netns)
}

/// `RTM_NEWLINK` that sets the link with `index` up.
pub(crate) fn link_up(index: i32) -> Msg {
    Msg::new(RTM_NEWLINK, 0).ifinfo(index, IFF_UP, IFF_UP)
}

/// `RTM_GETLINK` for the link called `name`.
fn get_link(name: &str) -> Msg {
    let mut m = Msg::new(RTM_GETLINK, 0).ifinfo(0, 0, 0);
    m.attr_str(IFLA_IFNAME, name);
    m
}

/// `RTM_NEWADDR`: `addr/prefix` on the link with `index`, with the subnet's broadcast.
pub(crate) fn add_addr(index: i32, addr: Ipv4Addr, prefix: u8) -> Msg {
    let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    m.raw(&[AF_INET, prefix, 0, 0]).raw(&(index as u32).to_ne_bytes());
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
    let bcast = Ipv4Addr::from(u32::from(addr) | !mask);
    m.attr(IFA_LOCAL, &addr.octets()).attr(IFA_ADDRESS, &addr.octets());
    if prefix < 31 {
        m.attr(IFA_BROADCAST, &bcast.octets());
    }
    m
}

/// `RTM_NEWNEIGH`: a permanent neighbour entry `addr` -> `mac` on the link with `index`, so
/// that no ARP exchange (whose first request can be lost while a fresh link comes up, and is
/// then retried only after a second) stands between the harness and an instance.
pub(crate) fn add_neigh(index: i32, addr: Ipv4Addr, mac: [u8; 6]) -> Msg {
    let mut m = Msg::new(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL);
    m.raw(&[AF_INET, 0, 0, 0]).raw(&index.to_ne_bytes()).raw(&NUD_PERMANENT.to_ne_bytes()).raw(&[0, 0]);
    m.attr(NDA_DST, &addr.octets()).attr(NDA_LLADDR, &mac);
    m
}

/// [`add_neigh`], replacing an entry for `addr` if there is one.
pub(crate) fn replace_neigh(index: i32, addr: Ipv4Addr, mac: [u8; 6]) -> Msg {
    const NLM_F_REPLACE: u16 = 0x100;
    let mut m = Msg::new(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
    m.raw(&[AF_INET, 0, 0, 0]).raw(&index.to_ne_bytes()).raw(&NUD_PERMANENT.to_ne_bytes()).raw(&[0, 0]);
    m.attr(NDA_DST, &addr.octets()).attr(NDA_LLADDR, &mac);
    m
}

// Routes and link deletion, for tiers that wire instances to a bridge of their own (ECS).
const RTM_DELLINK: u16 = 17;
const RTM_NEWROUTE: u16 = 24;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;

/// Where a route sends its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// Through a gateway on the link with this index.
    Gateway(Ipv4Addr, i32),
    /// Directly on the link with this index (scope link).
    Link(i32),
    /// Nowhere: the kernel drops it and the sender sees `EINVAL`/unreachable.
    Blackhole,
}

/// `RTM_NEWROUTE`: `dst/prefix` in the main table, through `via`.
pub(crate) fn add_route(dst: Ipv4Addr, prefix: u8, via: Via) -> Msg {
    let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
    let (scope, kind) = match via {
        Via::Gateway(..) | Via::Blackhole => {
            (RT_SCOPE_UNIVERSE, if via == Via::Blackhole { RTN_BLACKHOLE } else { RTN_UNICAST })
        }
        Via::Link(_) => (RT_SCOPE_LINK, RTN_UNICAST),
    };
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    m.raw(&[AF_INET, prefix, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, scope, kind]).raw(&0u32.to_ne_bytes());
    m.attr(RTA_DST, &dst.octets());
    match via {
        Via::Gateway(gw, oif) => {
            m.attr(RTA_GATEWAY, &gw.octets()).attr_u32(RTA_OIF, oif as u32);
        }
        Via::Link(oif) => {
            m.attr_u32(RTA_OIF, oif as u32);
        }
        Via::Blackhole => {}
    }
    m
}

/// `RTM_DELADDR`: `addr/32` off the link with `index` (an address added as a /32).
pub(crate) fn del_addr32(index: i32, addr: Ipv4Addr) -> Msg {
    const RTM_DELADDR: u16 = 21;
    let mut m = Msg::new(RTM_DELADDR, 0);
    m.raw(&[AF_INET, 32, 0, 0]).raw(&(index as u32).to_ne_bytes());
    m.attr(IFA_LOCAL, &addr.octets()).attr(IFA_ADDRESS, &addr.octets());
    m
}

/// `RTM_DELNEIGH`: the neighbour entry for `addr` on the link with `index`.
pub(crate) fn del_neigh(index: i32, addr: Ipv4Addr) -> Msg {
    const RTM_DELNEIGH: u16 = 29;
    let mut m = Msg::new(RTM_DELNEIGH, 0);
    m.raw(&[AF_INET, 0, 0, 0]).raw(&index.to_ne_bytes()).raw(&0u16.to_ne_bytes()).raw(&[0, 0]);
    m.attr(NDA_DST, &addr.octets());
    m
}

/// `RTM_DELLINK` for the link with `index` (its addresses and routes go with it).
pub(crate) fn del_link(index: i32) -> Msg {
    Msg::new(RTM_DELLINK, 0).ifinfo(index, 0, 0)
}

/// A route netlink socket bound to the network namespace of the thread that opened it.
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub(crate) fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_ROUTE) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor socket(2) just returned and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        for opt in [NETLINK_CAP_ACK, NETLINK_EXT_ACK] {
            let one: libc::c_int = 1;
            // SAFETY: `fd` is a valid socket; the option value points at a live c_int of the
            // size passed. Failure only loses the kernel's error text, so it is ignored.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    opt,
                    (&one as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        Ok(Netlink { fd, seq: 0 })
    }

    /// Sends every message in one datagram and waits for each one's ack. The first error
    /// (with the kernel's explanation, when it gave one) is returned after all acks are read.
    pub(crate) fn request(&mut self, msgs: Vec<Msg>) -> io::Result<()> {
        let n = msgs.len();
        let first = self.seq.wrapping_add(1);
        let mut out = Vec::new();
        for m in msgs {
            self.seq = self.seq.wrapping_add(1);
            out.extend_from_slice(&m.finish(self.seq));
        }
        self.send(&out)?;
        let mut acked = 0;
        let mut first_err: Option<io::Error> = None;
        let mut buf = vec![0u8; 16384];
        while acked < n {
            let len = self.recv(&mut buf)?;
            for (kind, flags, seq, body) in Messages::new(&buf[..len]) {
                if kind != NLMSG_ERROR || seq.wrapping_sub(first) as usize >= n {
                    continue;
                }
                acked += 1;
                if let Some(e) = parse_error(flags, body)
                    && first_err.is_none()
                {
                    first_err = Some(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The interface index of the link called `name` in this socket's namespace.
    pub(crate) fn link_index(&mut self, name: &str) -> io::Result<i32> {
        self.link(name).map(|(i, _)| i)
    }

    /// The interface index and flags (`IFF_*`) of the link called `name`.
    pub(crate) fn link(&mut self, name: &str) -> io::Result<(i32, u32)> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send(&get_link(name).finish(seq))?;
        let mut buf = vec![0u8; 16384];
        let mut index = None;
        loop {
            let len = self.recv(&mut buf)?;
            for (kind, flags, s, body) in Messages::new(&buf[..len]) {
                if s != seq {
                    continue;
                }
                match kind {
                    RTM_NEWLINK if body.len() >= 16 => {
                        index = Some((
                            i32::from_ne_bytes(body[4..8].try_into().expect("4 bytes")),
                            u32::from_ne_bytes(body[8..12].try_into().expect("4 bytes")),
                        ));
                    }
                    NLMSG_ERROR => {
                        return match parse_error(flags, body) {
                            Some(e) => Err(e),
                            None => index.ok_or_else(|| io::Error::other(format!("no link named {name}"))),
                        };
                    }
                    NLMSG_DONE => return index.ok_or_else(|| io::Error::other(format!("no link named {name}"))),
                    _ => {}
                }
            }
        }
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_nl is valid (family set below, pid 0 = the kernel).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `data` is a live buffer of `data.len()` bytes and `addr` a valid sockaddr_nl
        // of the size passed; `fd` is an open netlink socket.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
            let r = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// The error an `NLMSG_ERROR` body carries, `None` for an ack.
fn parse_error(flags: u16, body: &[u8]) -> Option<io::Error> {
    if body.len() < 4 {
        return Some(io::Error::other("short netlink error message"));
    }
    let code = i32::from_ne_bytes(body[0..4].try_into().expect("4 bytes"));
    if code == 0 {
        return None;
    }
    let os = io::Error::from_raw_os_error(-code);
    // With NETLINK_CAP_ACK the original header (16 bytes) follows the code; then the
    // extended-ack attributes when the kernel set NLM_F_ACK_TLVS.
    if flags & NLM_F_ACK_TLVS != 0 && body.len() > 4 + HDR_LEN {
        let mut rest = &body[4 + HDR_LEN..];
        while rest.len() >= 4 {
            let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
            let kind = u16::from_ne_bytes([rest[2], rest[3]]) & !NLA_F_NESTED;
            if len < 4 || len > rest.len() {
                break;
            }
            if kind == NLMSGERR_ATTR_MSG {
                let text = String::from_utf8_lossy(&rest[4..len]).trim_end_matches('\0').to_string();
                return Some(io::Error::new(os.kind(), format!("{os}: {text}")));
            }
            rest = &rest[(len + 3) & !3..];
        }
    }
    Some(os)
}

/// Iterates over the netlink messages in one datagram: (type, flags, sequence, body).
struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Messages { rest: buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = (u16, u16, u32, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < HDR_LEN {
            return None;
        }
        let r = self.rest;
        let len = u32::from_ne_bytes(r[0..4].try_into().ok()?) as usize;
        if len < HDR_LEN || len > r.len() {
            self.rest = &[];
            return None;
        }
        let kind = u16::from_ne_bytes([r[4], r[5]]);
        let flags = u16::from_ne_bytes([r[6], r[7]]);
        let seq = u32::from_ne_bytes(r[8..12].try_into().ok()?);
        let body = &r[HDR_LEN..len];
        self.rest = &r[((len + 3) & !3).min(r.len())..];
        Some((kind, flags, seq, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_sized() {
        let m = new_veth("v1", 2, "eth0", 2, [2, 0, 0, 0, 0, 1], 7).finish(9);
        assert_eq!(m.len() % 4, 0);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 9);
        let a = add_addr(2, Ipv4Addr::new(10, 213, 0, 2), 16).finish(1);
        // header + ifaddrmsg + three 8-byte address attributes
        assert_eq!(a.len(), 16 + 8 + 3 * 8);
        assert_eq!(&a[a.len() - 4..], &[10, 213, 255, 255]);
        let n = add_neigh(2, Ipv4Addr::new(10, 213, 0, 1), [2, 0, 0, 0, 0, 1]).finish(2);
        // header + ndmsg (12) + address (8) + padded MAC (12)
        assert_eq!(n.len(), 16 + 12 + 8 + 12);
    }

    #[test]
    fn errors_carry_the_kernel_text() {
        let mut body = (-libc::EEXIST).to_ne_bytes().to_vec();
        body.extend_from_slice(&[0u8; HDR_LEN]);
        let text = b"File exists here\0";
        body.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        body.extend_from_slice(text);
        let e = parse_error(NLM_F_ACK_TLVS, &body).unwrap();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("File exists here"), "{e}");
        assert!(parse_error(0, &0i32.to_ne_bytes()).is_none());
    }
}
