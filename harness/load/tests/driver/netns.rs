use std::fs::File;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sched::{CloneFlags, unshare};

use crate::util::{Behaviour, TestServer, check_invariants, planned, spec, targets};

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
        Ok(unsafe { <std::net::UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) })
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

/// A fresh network namespace with `lo` up, and a listener bound to 127.0.0.1 inside it.
/// `None` when this process may not create namespaces (not root).
fn namespace_with_listener() -> Option<(OwnedFd, TcpListener)> {
    std::thread::spawn(|| {
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
            eprintln!("skipping: cannot create a network namespace ({e}); run as root to test this");
            return None;
        }
        loopback_up().expect("bring lo up in the new namespace");
        let ns: OwnedFd = File::open("/proc/thread-self/ns/net").expect("open the namespace").into();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind inside the namespace");
        Some((ns, listener))
    })
    .join()
    .unwrap()
}

#[test]
fn connections_are_opened_inside_the_given_namespace() {
    let Some((ns, listener)) = namespace_with_listener() else { return };
    let server = TestServer::on(listener, Behaviour::Healthy, 64);
    let s = spec(500.0, 400, 3);
    let t = targets(&s, server.addr);
    let cancel = AtomicBool::new(false);

    let r = isobench_load::run(&s, &t, Some(&ns), &cancel, &mut |_| {}).unwrap();
    check_invariants(&r);
    assert_eq!(r.totals.ok, planned(&s), "{:?}", r.totals);
    assert_eq!(server.stats.requests.load(Ordering::Relaxed), planned(&s));

    // Negative control: from the host namespace the same address does not reach the server.
    let r = isobench_load::run(&s, &t, None, &cancel, &mut |_| {}).unwrap();
    check_invariants(&r);
    assert_eq!(server.stats.requests.load(Ordering::Relaxed), planned(&s), "the host reached the namespace");
    // The calling thread itself never moved.
    let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let init = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(own, init);
}
