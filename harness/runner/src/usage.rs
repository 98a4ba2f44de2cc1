//! The harness's own memory, from `/proc/self/status` (two fields; a crate for all of procfs
//! would be more than this needs).

use isobench_results::HarnessUsage;

/// `/proc/self/status`; empty where there is no such file (not Linux), so every field reads 0.
fn status() -> String {
    std::fs::read_to_string("/proc/self/status").unwrap_or_default()
}

fn parse_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resident set size now.
pub fn rss_bytes() -> u64 {
    parse_field(&status(), "VmRSS")
}

/// Peak and current resident set size, from one reading (so the peak is never below the
/// current size).
pub fn harness_usage() -> HarnessUsage {
    let text = status();
    HarnessUsage { peak_rss_bytes: parse_field(&text, "VmHWM"), rss_at_end_bytes: parse_field(&text, "VmRSS") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_bytes() {
        let text = "Name:\tisobench\nVmHWM:\t   95048 kB\nVmRSS:\t   80000 kB\n";
        assert_eq!(parse_field(text, "VmHWM"), 95_048 * 1024);
        assert_eq!(parse_field(text, "VmRSS"), 80_000 * 1024);
        assert_eq!(parse_field(text, "VmSwap"), 0);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_has_a_peak_at_least_its_current_size() {
        let u = harness_usage();
        assert!(u.rss_at_end_bytes > 0 && u.peak_rss_bytes >= u.rss_at_end_bytes, "{u:?}");
    }
}
