//! The calibration profile of a local run: the emulator's measured start times beside what the
//! same events take on AWS by published figures. The published side is modelled: it is shown
//! next to measurements, never recorded into a histogram or used as a measurement.

use isobench_core::TierId;
use isobench_results::{CalibrationEntry, Spread};

use crate::TierShape;
use crate::overheads::{self, Overheads};

/// The calibration entries of one tier of a local run. `instance_start` is the tier's measured
/// instance or task start spread; `init` the measured INIT durations of its cold starts (function
/// tiers), in milliseconds. The published side comes from the overheads file. Entries without
/// measurements are left out.
pub fn calibrate(
    _tier: TierId,
    shape: &TierShape,
    instance_start: Spread,
    init: Option<Spread>,
    published: &Overheads,
) -> Vec<CalibrationEntry> {
    let (id, measured) = match shape {
        TierShape::Lambda { .. } => (overheads::LAMBDA_INIT, init),
        TierShape::Fargate { .. } => (overheads::FARGATE_TASK_START, Some(instance_start)),
        // No published pod-start figure: a container started on a running instance is nearest.
        TierShape::EcsEc2 { .. } | TierShape::Eks { .. } => (overheads::ECS_EC2_TASK_START, Some(instance_start)),
        TierShape::Ec2 { .. } => (overheads::EC2_INSTANCE_START, Some(instance_start)),
    };
    let p = published.get(id);
    measured
        .filter(|s| s.count > 0)
        .map(|measured_ms| CalibrationEntry {
            event: p.what.clone(),
            measured_ms,
            published_low_ms: p.low_ms,
            published_high_ms: p.high_ms,
            source: format!("modelled, from published figures: {}", p.source),
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tier_gets_its_published_figure() {
        let o = Overheads::built_in().unwrap();
        let calibrate = |t, shape: &TierShape, s, i| calibrate(t, shape, s, i, &o);
        let s = Spread::of(&[5.0, 7.0]);
        let ec2 = calibrate(TierId::SiloEc2, &TierShape::Ec2 { instance_type: "t3.micro".into() }, s, None);
        assert_eq!(ec2[0].published_low_ms, 16_500.0);
        assert!(ec2[0].source.starts_with("modelled"));
        let f = calibrate(
            TierId::EcsAwsvpc,
            &TierShape::Fargate { cpu_units: 256, memory_mib: 512, arch: crate::shape::DEFAULT_ARCH },
            s,
            None,
        );
        assert_eq!(f[0].event, "task start (Fargate, to healthy)");
        let l = TierShape::Lambda { memory_mb: 128, timeout_s: 3.0, arch: crate::shape::DEFAULT_ARCH };
        assert!(calibrate(TierId::LambdaShared, &l, s, None).is_empty(), "no cold start measured");
        let init = Spread::of(&[4.0, 6.0, 9.0]);
        let e = calibrate(TierId::LambdaShared, &l, s, Some(init));
        assert_eq!(e[0].measured_ms, init);
        assert_eq!((e[0].published_low_ms, e[0].published_high_ms), (11.0, 16.0));
        assert_eq!(e[0].event, "lambda cold start (INIT)");
        assert_eq!(
            e[0].source,
            "modelled, from published figures: Rust INIT 11–16 ms, public daily init benchmark (Dec 2025); platform \
             cold start as low as ~50 ms (Brooker et al., ATC'23); Firecracker microVM start ≤125 ms (NSDI'20)",
            "the calibration text is unchanged by the move to the overheads file"
        );
        assert_eq!(ec2[0].event, "instance start (EC2 launch)");
        assert_eq!(ec2[0].published_high_ms, 26_000.0);
    }

    #[test]
    fn an_overridden_figure_reaches_the_calibration() {
        let mut o = Overheads::built_in().unwrap();
        o.entries.get_mut(overheads::EC2_INSTANCE_START).unwrap().low_ms = 9_000.0;
        let shape = TierShape::Ec2 { instance_type: "t3.micro".into() };
        let e = calibrate(TierId::SiloEc2, &shape, Spread::of(&[5.0]), None, &o);
        assert_eq!(e[0].published_low_ms, 9_000.0);
    }
}
