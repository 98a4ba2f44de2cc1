//! The workload's command line, from the plan's workload settings. The contract is
//! `tenant-app serve --listen ADDR [--tenant ID] --hygiene scoped|naive --tmp-dir DIR
//! --workers N [--fault-error-rate F --fault-error-body-rate F --fault-stall-rate F --fault-stall D
//! --fault-seed N]`.

use std::time::Duration;

use isobench_core::scenario::WorkloadSpec;

/// Arguments after `argv[0]`.
pub(crate) fn args(w: &WorkloadSpec, port: u16, tenant: Option<&str>, workers: u32, fault_seed: u64) -> Vec<String> {
    let mut a: Vec<String> = vec!["serve".into(), "--listen".into(), format!("0.0.0.0:{port}")];
    if let Some(t) = tenant {
        a.extend(["--tenant".into(), t.to_string()]);
    }
    a.extend([
        "--hygiene".into(),
        w.hygiene.as_str().into(),
        "--tmp-dir".into(),
        "/tmp".into(),
        "--workers".into(),
        workers.max(1).to_string(),
    ]);
    if w.probes {
        a.push("--probes".into());
    }
    if let Some(f) = &w.faults {
        a.extend([
            "--fault-error-rate".into(),
            f.error_rate.to_string(),
            "--fault-error-body-rate".into(),
            f.error_body_rate.to_string(),
            "--fault-stall-rate".into(),
            f.stall_rate.to_string(),
            "--fault-stall".into(),
            duration(f.stall.0),
            "--fault-seed".into(),
            fault_seed.to_string(),
        ]);
    }
    a
}

/// A duration as humantime reads it, without rounding.
fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// A fault seed per instance: FNV-1a of the scenario's seed and the instance number, so the
/// same scenario and seed draw the same faults.
pub(crate) fn fault_seed(seed: u64, index: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().into_iter().chain(index.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use isobench_core::scenario::{FaultSpec, Hygiene};
    use isobench_core::units::Dur;

    #[test]
    fn flags_follow_the_contract() {
        let mut w = WorkloadSpec { hygiene: Hygiene::Naive, ..WorkloadSpec::default() };
        assert_eq!(
            args(&w, 8080, Some("t1"), 2, 7).join(" "),
            "serve --listen 0.0.0.0:8080 --tenant t1 --hygiene naive --tmp-dir /tmp --workers 2"
        );
        w.faults = Some(FaultSpec {
            error_rate: 0.2,
            error_body_rate: 0.1,
            stall_rate: 0.05,
            stall: Dur(Duration::from_millis(300)),
        });
        let a = args(&w, 8080, None, 1, 7).join(" ");
        assert!(
            a.ends_with(
                "--fault-error-rate 0.2 --fault-error-body-rate 0.1 --fault-stall-rate 0.05 --fault-stall 300ms \
                 --fault-seed 7"
            ),
            "{a}"
        );
        assert!(!a.contains("--tenant"));
    }

    #[test]
    fn durations_keep_their_precision() {
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::from_micros(250)), "250us");
        assert_ne!(fault_seed(1, 0), fault_seed(1, 1));
    }
}
