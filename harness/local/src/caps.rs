//! The up-front check that this process may do what the emulator needs, so that a user
//! without root hears so in one plain sentence before anything is created.

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// The capabilities the emulator uses, with what each is for.
const NEEDED: [(u32, &str); 5] = [
    (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    (CAP_SETUID, "CAP_SETUID"),
    (CAP_SETGID, "CAP_SETGID"),
    (CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"),
];

/// Names of the needed capabilities missing from the effective set in `/proc/self/status`'s
/// `CapEff` line.
pub(crate) fn missing_from_status(status: &str) -> Vec<&'static str> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    NEEDED.iter().filter(|(bit, _)| eff & (1u64 << bit) == 0).map(|(_, name)| *name).collect()
}

/// `Err(reason)` when the calling thread lacks what the emulator needs. (Capabilities and ids
/// are per thread in Linux; the launcher thread inherits the caller's.)
pub(crate) fn check() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let missing = missing_from_status(&status);
    if missing.is_empty() {
        return Ok(());
    }
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1)?.parse::<u32>().ok())
        .unwrap_or(u32::MAX);
    let who = if euid == 0 { "root without the capabilities".to_string() } else { format!("uid {euid}") };
    Err(format!(
        "it needs root (or {}) to create namespaces and cgroups, but runs as {who} lacking {}; run it with sudo",
        NEEDED.map(|(_, n)| n).join(", "),
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_set() {
        assert!(missing_from_status("Name:\tx\nCapEff:\t000001ffffffffff\n").is_empty());
        assert_eq!(missing_from_status("CapEff:\t0000000000000000\n").len(), 5);
        let net_only = format!("CapEff:\t{:016x}\n", 1u64 << CAP_NET_ADMIN);
        assert!(!missing_from_status(&net_only).contains(&"CAP_NET_ADMIN"));
        assert!(missing_from_status(&net_only).contains(&"CAP_SYS_ADMIN"));
        assert_eq!(missing_from_status("garbage").len(), 5);
    }
}
