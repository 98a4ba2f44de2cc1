//! The metadata endpoints an ECS task can reach: the ECS agent's task-credentials and task
//! metadata endpoint at `169.254.170.2` ([`agent`]) and, on the EC2 launch type, the container
//! instance's metadata service at `169.254.169.254` ([`imds`]); and the one every EC2 instance
//! reaches for its own instance profile (IMDS again, answering each instance for itself).
//!
//! An EKS pod gets its role from the EKS Pod Identity agent at `169.254.170.23`
//! ([`pod_identity`]) or through IRSA: a projected service-account token ([`sa_token`]) traded
//! at an emulated STS ([`sts`]); [`pod_credentials`] is what an EKS cluster uses of both. IMDS
//! can limit its token answers to a hop count ([`imds::InstanceIdentity::hop_limit`]).
//!
//! All are plain HTTP/1.1 servers ([`http`]) run by the harness on listeners bound inside the
//! harness network namespace, on addresses that exist only there; tasks and instances reach
//! them through a /32 route via the harness gateway, and the packet filter decides which may.
//! The two IMDS listeners share their address, each bound to its own bridge
//! ([`listen_on_device`]). The
//! credentials are fake but shaped like real ones (an `ASIA…` key id, a 40-character secret, a
//! session token, an ISO-8601 expiry, the role's ARN), so any AWS SDK parses them.

pub(crate) mod agent;
pub(crate) mod http;
pub(crate) mod imds;
pub(crate) mod instance_profiles;
pub(crate) mod pod_credentials;
pub(crate) mod pod_identity;
pub(crate) mod sa_token;
pub(crate) mod sts;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The ECS agent's endpoint address (task credentials and task metadata).
pub const ECS_AGENT_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 170, 2);
/// The instance metadata service's address.
pub const IMDS_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 169, 254);
/// The port both listen on.
pub const METADATA_PORT: u16 = 80;
/// The region the emulated account lives in (the pricing tables are us-east-1's).
pub const REGION: &str = "us-east-1";
/// The availability zone every instance, task and container instance reports.
pub(crate) const AVAILABILITY_ZONE: &str = "us-east-1a";
/// How long issued credentials are valid (ECS and EC2 hand out 6-hour sessions).
pub(crate) const CREDENTIALS_TTL: Duration = Duration::from_secs(6 * 3600);

/// A listener on `addr:`[`METADATA_PORT`] that only takes connections arriving through the
/// interface `device` (`SO_BINDTODEVICE`), so that endpoints on different bridges of one
/// namespace can share an address (IMDS for ECS tasks on `ecs0`, for EC2 instances on `br0`).
/// Call it inside the namespace that holds `addr`.
pub(crate) fn listen_on_device(addr: Ipv4Addr, device: &str) -> std::io::Result<TcpListener> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, setsockopt, socket, sockopt,
    };
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(device))?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(addr, METADATA_PORT)))?;
    listen(&fd, Backlog::new(128)?)?;
    Ok(TcpListener::from(fd))
}

/// `n` random bytes from the kernel.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        // Never expected; a weak fallback still keeps ids distinct within a run.
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    b
}

/// `n` random bytes in lowercase hex (`2n` characters).
pub(crate) fn random_hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// A random version-4 UUID, lowercase.
pub(crate) fn uuid4() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// `n` random characters of `alphabet`.
pub(crate) fn random_chars(alphabet: &[u8], n: usize) -> String {
    random_bytes(n).into_iter().map(|b| alphabet[b as usize % alphabet.len()] as char).collect()
}

const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A set of temporary credentials for one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    /// ISO-8601, UTC.
    pub expiration: String,
    pub issued: String,
}

impl Credentials {
    /// Fresh credentials for `role_arn`. The session token carries the run and the role in
    /// its (opaque-looking) base64, so a leaked token names whose it was.
    pub(crate) fn issue(run: &str, role_arn: &str) -> Credentials {
        let now = SystemTime::now();
        let mut raw = format!("isobench:{run}:{role_arn}:").into_bytes();
        raw.extend(random_bytes(96));
        Credentials {
            role_arn: role_arn.to_string(),
            access_key_id: format!("ASIA{}", random_chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
            secret_access_key: random_chars(BASE64, 40),
            token: format!("IQoJb3JpZ2luX2Vj{}", base64(&raw)),
            expiration: iso8601(now + CREDENTIALS_TTL),
            issued: iso8601(now),
        }
    }
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `s` as a JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso8601() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2026-11-29T12:34:56Z
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(1_795_955_696)), "2026-11-29T12:34:56Z");
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn credentials_look_like_sts_ones_and_differ() {
        let a = Credentials::issue("r", "arn:aws:iam::000000000000:role/x");
        let b = Credentials::issue("r", "arn:aws:iam::000000000000:role/x");
        assert_eq!(a.access_key_id.len(), 20);
        assert!(a.access_key_id.starts_with("ASIA"));
        assert_eq!(a.secret_access_key.len(), 40);
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.token, b.token);
        assert!(a.expiration.ends_with('Z') && a.expiration > a.issued);
        assert_eq!(base64(b"isobench"), "aXNvYmVuY2g=");
        let u = uuid4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(json_str("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
    }
}
