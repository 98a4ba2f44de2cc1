//! Loopback ports for tests: a listener on a port the kernel picks, a port that was free a
//! moment ago, an address where nothing listens.

use std::net::{SocketAddr, TcpListener};

/// A listener on `127.0.0.1` at a port the kernel picks.
pub fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")
}

/// A loopback address where nothing listens (connections are refused): a port that was free
/// a moment ago.
pub fn closed_addr() -> SocketAddr {
    loopback_listener().local_addr().expect("the listener's address")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    closed_addr().port()
}
