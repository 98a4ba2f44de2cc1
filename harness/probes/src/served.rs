//! `LK-NET` on functions. An execution environment is frozen between invokes, so a beacon left
//! listening there would give a finder a kernel handshake and no answer, and a broken filter
//! would read as blocked. Instead the owner's invoke *serves* its canary on its environment's
//! own address for [`SERVE`] (fetching it once through that address: the control), and while
//! that invoke runs, the finder's invoke tries every address of the environments' /24s seen so
//! far. A clean sweep counts only if the runner's own clock proves it fell inside the window and
//! it tried the owner's address; otherwise the trial is attempted again, then blind.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use isobench_core::probes::{self, Channel, Planted, Trial};
use rand::Rng;
use serde_json::{Value, json};

use super::{Action, Blind, Runner, tokens};

/// The beacon's port on the owner's environment.
pub(crate) const BEACON_PORT: u16 = 9080;
/// How long the owner serves; the finder starts [`FINDER_DELAY`] after the owner's invoke, and
/// each of its connects and exchanges gets [`FETCH_TIMEOUT_MS`].
pub(crate) const SERVE: Duration = Duration::from_millis(800);
const FINDER_DELAY: Duration = Duration::from_millis(150);
const FETCH_TIMEOUT_MS: u64 = 250;
/// Attempts at a trial whose sweep could not be shown to have met the owner's beacon.
const ATTEMPTS: u32 = 3;
/// Most addresses one sweep tries.
const MAX_SWEPT: usize = 1024;

/// Why an attempt proves nothing either way.
enum Unproven {
    NotSwept(String),
    OutsideWindow { started_ms: u128, ended_ms: u128, owner_ms: u128 },
}

impl std::fmt::Display for Unproven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unproven::NotSwept(a) => write!(f, "the owner's environment at {a} was not among the swept addresses"),
            Unproven::OutsideWindow { started_ms, ended_ms, owner_ms } => write!(
                f,
                "the finder's sweep ({started_ms}..{ended_ms} ms) did not provably fall inside the owner's \
                 {} ms window (its invoke took {owner_ms} ms)",
                SERVE.as_millis()
            ),
        }
    }
}

impl Runner<'_> {
    pub(super) async fn served_net_trial(&mut self, trial: u32, owner: usize, finder: usize) -> Result<Trial, Blind> {
        if self.net_addrs.is_empty() {
            self.learn_addresses().await?;
        }
        let mut why = None;
        for _ in 0..ATTEMPTS {
            match self.served_attempt(trial, owner, finder).await? {
                Ok(t) => return Ok(t),
                Err(u) => why = Some(u.to_string()),
            }
        }
        Err(Blind::Answer(why.unwrap_or_default()))
    }

    /// Each tenant's sweep of nobody, for the address its environment reports.
    async fn learn_addresses(&mut self) -> Result<(), Blind> {
        for who in 0..self.tenants.len() {
            let answer = self.sweep(who, Channel::Net, json!({})).await?;
            self.learn(&answer["detail"]["address"]);
        }
        if self.net_addrs.is_empty() {
            return Err(Blind::Answer("no environment reported its own address".into()));
        }
        Ok(())
    }

    fn learn(&mut self, address: &Value) {
        let ip = address
            .as_str()
            .and_then(|a| a.parse::<IpAddr>().ok().or_else(|| a.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())));
        self.net_addrs.extend(ip);
    }

    async fn served_attempt(
        &mut self,
        trial: u32,
        owner: usize,
        finder: usize,
    ) -> Result<Result<Trial, Unproven>, Blind> {
        let random: u128 = self.rng.random();
        let tenant = self.id(owner);
        let token = probes::canary(&self.spec.run_id, &tenant, Channel::Net, u64::from(trial), random);
        let at = self.at();
        self.ledger.plant(Planted { token: token.clone(), tenant, channel: Channel::Net, trial: u64::from(trial), at });
        let peers = swept(&self.net_addrs);
        let serve = json!({"canary": token, "port": BEACON_PORT, "serve_ms": SERVE.as_millis() as u64,
                           "timeout_ms": FETCH_TIMEOUT_MS});
        let sweep = json!({"peers": peers, "timeout_ms": FETCH_TIMEOUT_MS});
        let (o, f) = (&self.tenants[owner], &self.tenants[finder]);
        let r0 = Instant::now();
        let owner_call = async {
            let answer = o.t.probe(&o.id, Channel::Net, Action::Serve(serve)).await;
            (answer, r0.elapsed())
        };
        let finder_call = async {
            tokio::time::sleep(FINDER_DELAY).await;
            let f0 = r0.elapsed();
            let answer = f.t.probe(&f.id, Channel::Net, Action::Sweep(sweep)).await;
            (f0, answer, r0.elapsed())
        };
        let ((served, r1), (f0, swept_answer, f1)) = tokio::join!(owner_call, finder_call);
        let (served, swept_answer) = (served?, swept_answer?);
        if served["planted"] != true {
            return Err(Blind::Answer(format!("no beacon served: {}", served["detail"])));
        }
        if !swept_answer["found"].is_array() {
            return Err(Blind::Answer(format!("no list of found canaries in {swept_answer}")));
        }
        let address = served["address"].as_str().unwrap_or_default().to_string();
        self.learn(&served["address"]);
        self.learn(&swept_answer["detail"]["address"]);
        let control = tokens(&served).contains(&token);
        let found = tokens(&swept_answer);
        // A found canary is proof whatever the timing; a clean sweep must have met the beacon.
        if !found.contains(&token) {
            if !peers.contains(&address) {
                return Ok(Err(Unproven::NotSwept(address)));
            }
            // The beacon listened from at most r1 - SERVE to at least r0 + SERVE.
            if r1 > f0 + SERVE || f1 > SERVE {
                let ms = |d: Duration| d.as_millis();
                return Ok(Err(Unproven::OutsideWindow { started_ms: ms(f0), ended_ms: ms(f1), owner_ms: ms(r1) }));
            }
        }
        Ok(Ok(self.trial(finder, control, &found)))
    }
}

/// Every host address of the /24 around each address seen (IPv6 ones as they are), at the
/// beacon's port: the environments' own addresses first.
fn swept(seen: &BTreeSet<IpAddr>) -> Vec<String> {
    let mut out: Vec<IpAddr> = seen.iter().copied().collect();
    for ip in seen {
        if let IpAddr::V4(v4) = ip {
            let [a, b, c, _] = v4.octets();
            out.extend((1..=254).map(|d| IpAddr::V4(Ipv4Addr::new(a, b, c, d))));
        }
    }
    let mut unique = BTreeSet::new();
    out.retain(|ip| unique.insert(*ip));
    out.truncate(MAX_SWEPT);
    out.iter().map(|ip| std::net::SocketAddr::new(*ip, BEACON_PORT).to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_cover_the_neighbourhood_of_every_address_seen() {
        let seen =
            BTreeSet::from(["10.1.2.3".parse().unwrap(), "10.1.2.9".parse().unwrap(), "10.1.7.1".parse().unwrap()]);
        let s = swept(&seen);
        assert_eq!(s.len(), 2 * 254);
        assert_eq!(s[0], "10.1.2.3:9080");
        assert!(s.contains(&"10.1.2.254:9080".into()) && s.contains(&"10.1.7.200:9080".into()));
        assert!(!s.contains(&"10.1.2.0:9080".into()));
    }
}
