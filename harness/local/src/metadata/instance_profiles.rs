//! The EC2 instances' instance profiles: one IMDS per backend at `169.254.169.254:80` on the
//! harness bridge `br0` ([`Imds::per_instance`]: each caller is answered as its own instance,
//! chosen by its source address). Every EC2 tier registers its instances' identities in it; the
//! first tier to use it starts it and the last one stops it. Its listener is bound to `br0`, so
//! an ECS cluster's IMDS (bound to `ecs0`) shares the address.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::http::Server;
use super::imds::{Imds, InstanceIdentity};
use super::{IMDS_ADDR, METADATA_PORT, listen_on_device};
use crate::error::NetworkError;
use crate::launcher::{BRIDGE, Launcher};

/// The IMDS of the instances on `br0`, and how many tiers use it.
#[derive(Default)]
pub(crate) struct InstanceProfiles {
    running: Option<(Arc<Imds>, Server)>,
    users: u32,
}

impl InstanceProfiles {
    /// One more tier uses the IMDS; the first starts it (its address on `br0`, its listener,
    /// its server).
    pub(crate) fn acquire(&mut self, launcher: &Launcher) -> Result<(), NetworkError> {
        if self.running.is_none() {
            let listener = launcher.run(|h| {
                // On the launcher thread, inside the harness namespace.
                h.add_bridge_addr(IMDS_ADDR).map_err(NetworkError::net(format!("add {IMDS_ADDR}/32 to {BRIDGE}")))?;
                listen_on_device(IMDS_ADDR, BRIDGE).map_err(|e| {
                    let _ = h.del_bridge_addr(IMDS_ADDR);
                    NetworkError::net(format!("listen on {IMDS_ADDR}:{METADATA_PORT} on {BRIDGE}"))(e)
                })
            })??;
            let imds = Arc::new(Imds::per_instance());
            match Server::start("imds-ec2", listener, imds.clone()) {
                Ok(server) => self.running = Some((imds, server)),
                Err(e) => {
                    let _ = launcher.run(|h| h.del_bridge_addr(IMDS_ADDR));
                    return Err(NetworkError::net("start IMDS")(e));
                }
            }
        }
        self.users += 1;
        Ok(())
    }

    /// Answers requests from `addr` as the instance `identity` (after [`Self::acquire`]).
    pub(crate) fn register(&self, addr: Ipv4Addr, identity: InstanceIdentity) {
        if let Some((imds, _)) = &self.running {
            imds.register(addr, identity);
        }
    }

    /// Forgets the instance at `addr`.
    pub(crate) fn deregister(&self, addr: Ipv4Addr) {
        if let Some((imds, _)) = &self.running {
            imds.deregister(addr);
        }
    }

    /// Requests answered so far, while it runs.
    pub(crate) fn served(&self) -> Option<u64> {
        self.running.as_ref().map(|(_, s)| s.served())
    }

    /// One tier fewer uses the IMDS; the last stops it and removes its address. Returns what was
    /// removed and what was left behind, in lines that start with `owner`.
    pub(crate) fn release(&mut self, launcher: Option<&Launcher>, owner: &str) -> (Vec<String>, Vec<String>) {
        let (mut removed, mut left) = (Vec::new(), Vec::new());
        self.users = self.users.saturating_sub(1);
        if self.users > 0 {
            return (removed, left);
        }
        let Some((_, server)) = self.running.take() else { return (removed, left) };
        let (addr, served) = (server.local_addr(), server.served());
        server.stop();
        let stopped = format!("{owner}: IMDS {addr} on {BRIDGE} ({served} requests served)");
        let r = match launcher {
            Some(l) => l
                .run(|h| h.del_bridge_addr(IMDS_ADDR))
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            None => Err("the launcher thread has stopped (it goes with the harness namespace)".into()),
        };
        match r {
            Ok(()) => removed.push(format!("{stopped} and its address")),
            Err(e) => {
                removed.push(stopped);
                left.push(format!("{owner}: address {IMDS_ADDR}/32 on {BRIDGE}: failed to delete it: {e}"));
            }
        }
        (removed, left)
    }
}
