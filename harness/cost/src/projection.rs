//! The projected-AWS latency of a tier measured on the local emulator: its measured corrected
//! p50 and p99 with the published overheads of the tier's AWS path added ([`crate::overheads`]).
//! Modelled: the result lives in `TierSummary::projected`, is never recorded into
//! `histograms.hlog` and never merged into a measured field.
//!
//! The formula, per percentile q ∈ {p50, p99}, as ranges (lows added to lows, highs to highs):
//!
//! ```text
//! projected_q = measured_q + Σ path overheads + [cold reaches q] × cold-start placement
//! ```
//!
//! - Path overheads: EC2 tiers `vpc-hop-ec2` (client to instance in one VPC and AZ); ECS tiers
//!   `vpc-hop-awsvpc` (client to the task's ENI); function tiers `lambda-invoke-path` (the
//!   synchronous Invoke's front end and worker routing, beyond the function's duration).
//! - Cold starts (function tiers): the cold invokes are taken to be the slowest, so percentile
//!   q lies among them when the measured cold share exceeds 1 − q (over 1% for p99, over 50%
//!   for p50). Only then is `lambda-cold-placement` (placement, code fetch, microVM start,
//!   beyond INIT) added to q. The measured INIT stays in, as measured.
//! - Start: instance and task tiers take the published start range (it replaces the
//!   emulator's milliseconds); function tiers the measured INIT median plus the placement range.
//!
//! Limits, printed with every projection:
//! - The measured figure already includes the emulator's own hop (veth and bridge, tens of µs;
//!   loopback in process-only mode) and, for functions, the emulator's invoke path (about a
//!   millisecond: thaw, `/next`, freeze). Both stay in, so the projection leans high by that much.
//! - The local CPU is not AWS's CPU: handler time and INIT are as measured here, not as an
//!   instance type or a Lambda memory size would run them.
//! - Queueing on AWS (front-end load, throttles, neighbours) is not modelled.

use isobench_results::{MsRange, ProjectedComponent, ProjectedLatency, TierSummary};

use crate::TierShape;
use crate::overheads::{self, Overhead, Overheads};

/// The projection of one measured tier, or `None` when it has no corrected latency to carry.
pub fn project_latency(t: &TierSummary, shape: &TierShape, o: &Overheads) -> Option<ProjectedLatency> {
    let c = &t.latency.corrected;
    if c.count == 0 {
        return None;
    }
    let (measured_p50_ms, measured_p99_ms) = (c.p50_us / 1e3, c.p99_us / 1e3);
    let path = o.get(path_id(shape));
    let mut components = vec![component(path, &["p50", "p99"])];
    let mut notes = vec![
        "modelled: the measured figure with published AWS overheads added; not a measurement".to_string(),
        limit_own_hop(shape),
        "the local CPU is not AWS's CPU: handler time and INIT are as measured here".to_string(),
        "queueing on AWS (front-end load, throttles, neighbours) is not modelled".to_string(),
    ];
    let mut formula = format!("p50 = measured p50 + {id}; p99 = measured p99 + {id}", id = path.id);
    let mut p50 = shift(measured_p50_ms, path);
    let mut p99 = shift(measured_p99_ms, path);
    let (cold_share, cold_in_p50, cold_in_p99, start);
    match shape {
        TierShape::Lambda { .. } => {
            let share = t.functions.as_ref().map_or(0.0, |f| f.cold_share);
            let placement = o.get(overheads::LAMBDA_COLD_PLACEMENT);
            cold_share = Some(share);
            cold_in_p50 = share > 0.5;
            cold_in_p99 = share > 0.01;
            let mut adds = Vec::new();
            if cold_in_p50 {
                p50 = add(p50, placement);
                formula = formula.replacen("; p99", &format!(" + {}; p99", placement.id), 1);
                adds.push("p50");
            }
            if cold_in_p99 {
                p99 = add(p99, placement);
                formula.push_str(&format!(" + {}", placement.id));
                adds.push("p99");
            }
            notes.push(cold_note(share, cold_in_p99));
            let init = t.functions.as_ref().map(|f| &f.init).filter(|i| i.count > 0);
            start = init.map(|i| shift(i.p50_us / 1e3, placement));
            if start.is_some() {
                adds.push("start");
                formula.push_str(&format!("; start = measured INIT median + {}", placement.id));
            }
            if !adds.is_empty() {
                components.push(component(placement, &adds));
            }
        }
        _ => {
            (cold_share, cold_in_p50, cold_in_p99) = (None, false, false);
            let published = o.get(start_id(shape));
            start = Some(MsRange { low_ms: published.low_ms, high_ms: published.high_ms });
            formula.push_str(&format!("; start = {} (replaces the emulator's start)", published.id));
            components.push(component(published, &["start"]));
        }
    }
    formula.push_str("; ranges add lows to lows and highs to highs");
    Some(ProjectedLatency {
        basis: "modelled".into(),
        measured_p50_ms,
        measured_p99_ms,
        cold_share,
        cold_in_p50,
        cold_in_p99,
        p50,
        p99,
        start,
        formula,
        components,
        notes,
    })
}

/// What a request crosses on AWS to reach the tier.
fn path_id(shape: &TierShape) -> &'static str {
    match shape {
        TierShape::Ec2 { .. } => overheads::VPC_HOP_EC2,
        // A pod's VPC CNI address is an address of its node's ENI: the awsvpc hop.
        TierShape::Fargate { .. } | TierShape::EcsEc2 { .. } | TierShape::Eks { .. } => overheads::VPC_HOP_AWSVPC,
        TierShape::Lambda { .. } => overheads::LAMBDA_INVOKE_PATH,
    }
}

/// What the tier starts on AWS (instance and task tiers).
fn start_id(shape: &TierShape) -> &'static str {
    match shape {
        TierShape::Ec2 { .. } => overheads::EC2_INSTANCE_START,
        TierShape::Fargate { .. } => overheads::FARGATE_TASK_START,
        // No published pod-start figure: a container started on a running instance is nearest.
        TierShape::EcsEc2 { .. } | TierShape::Eks { .. } => overheads::ECS_EC2_TASK_START,
        TierShape::Lambda { .. } => overheads::LAMBDA_INIT,
    }
}

fn shift(ms: f64, o: &Overhead) -> MsRange {
    MsRange { low_ms: ms + o.low_ms, high_ms: ms + o.high_ms }
}

fn add(r: MsRange, o: &Overhead) -> MsRange {
    MsRange { low_ms: r.low_ms + o.low_ms, high_ms: r.high_ms + o.high_ms }
}

fn component(o: &Overhead, adds_to: &[&str]) -> ProjectedComponent {
    ProjectedComponent {
        id: o.id.clone(),
        what: o.what.clone(),
        low_ms: o.low_ms,
        high_ms: o.high_ms,
        adds_to: adds_to.iter().map(|s| s.to_string()).collect(),
        source: o.source.clone(),
        quality: o.quality.clone(),
        read_on: o.read_on.clone(),
        note: o.note.clone(),
    }
}

fn limit_own_hop(shape: &TierShape) -> String {
    match shape {
        TierShape::Lambda { .. } => {
            "the measured figure keeps the emulator's own invoke path (about 1 ms: thaw, /next, \
                                     freeze, and a veth hop); the projection leans high by that much"
                .into()
        }
        _ => "the measured figure keeps the emulator's own hop (veth and bridge, tens of µs; loopback in process-only \
              mode); the projection leans high by that much"
            .into(),
    }
}

fn cold_note(share: f64, in_p99: bool) -> String {
    let pct = share * 100.0;
    if in_p99 {
        format!("cold share {pct:.2}% exceeds 1%: p99 is a cold invoke, so cold-start placement is added to it")
    } else {
        format!("cold share {pct:.2}% is at most 1%: cold starts sit above p99, so no placement is added to it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isobench_results::{FunctionFigures, Latency, Percentiles, Spread, Traffic};

    fn tier(p50_ms: f64, p99_ms: f64, functions: Option<FunctionFigures>) -> TierSummary {
        let corrected = Percentiles { count: 1000, p50_us: p50_ms * 1e3, p99_us: p99_ms * 1e3, ..Default::default() };
        TierSummary {
            tier: "t".into(),
            tenants: 2,
            injected_faults: None,
            duration_s: 10.0,
            target_rate: 100.0,
            achieved_rate: 100.0,
            ok_rate: Some(100.0),
            traffic: Traffic::default(),
            latency: Latency { corrected, ..Default::default() },
            functions,
            environments: None,
            instances: Vec::new(),
            instance_start_ms: Spread::default(),
            teardown_ms: 0.0,
            per_tenant: Vec::new(),
            noisy_neighbour: None,
            probes: Vec::new(),
            cost: None,
            calibration: Vec::new(),
            footprint: None,
            projected: None,
            agents: None,
        }
    }

    fn lambda(cold_share: f64, init_p50_ms: f64) -> FunctionFigures {
        let count = if init_p50_ms > 0.0 { 5 } else { 0 };
        let init = Percentiles { count, p50_us: init_p50_ms * 1e3, ..Default::default() };
        FunctionFigures { cold_share, init, ..Default::default() }
    }

    fn close(r: MsRange, low: f64, high: f64) {
        assert!((r.low_ms - low).abs() < 1e-9 && (r.high_ms - high).abs() < 1e-9, "{r:?} != {low}..{high}");
    }

    const LAMBDA: TierShape = TierShape::Lambda { memory_mb: 128, timeout_s: 3.0, arch: crate::shape::DEFAULT_ARCH };

    #[test]
    fn a_warm_only_function_tier_adds_the_invoke_path_to_both_percentiles() {
        let o = Overheads::built_in().unwrap();
        let p = project_latency(&tier(1.5, 4.0, Some(lambda(0.0, 0.0))), &LAMBDA, &o).unwrap();
        assert_eq!(p.basis, "modelled");
        close(p.p50, 1.5 + 5.0, 1.5 + 25.0);
        close(p.p99, 4.0 + 5.0, 4.0 + 25.0);
        assert!(!p.cold_in_p99 && p.start.is_none());
        assert_eq!(p.components.len(), 1, "no placement without cold starts: {:?}", p.components);
        assert_eq!(p.components[0].id, "lambda-invoke-path");
        assert!(!p.components[0].source.is_empty());
        assert_eq!(
            p.formula,
            "p50 = measured p50 + lambda-invoke-path; p99 = measured p99 + lambda-invoke-path; ranges add lows to lows and highs to highs"
        );
    }

    #[test]
    fn cold_starts_reach_p99_only_above_one_percent() {
        let o = Overheads::built_in().unwrap();
        // 0.5% cold: p99 is warm; placement only in the start figure.
        let below = project_latency(&tier(1.5, 4.0, Some(lambda(0.005, 4.5))), &LAMBDA, &o).unwrap();
        close(below.p99, 9.0, 29.0);
        assert!(!below.cold_in_p99);
        close(below.start.unwrap(), 4.5 + 50.0, 4.5 + 150.0);
        assert_eq!(below.components[1].adds_to, vec!["start"]);
        // 3% cold: p99 is a cold invoke; p50 stays warm.
        let above = project_latency(&tier(1.5, 9.0, Some(lambda(0.03, 4.5))), &LAMBDA, &o).unwrap();
        assert!(above.cold_in_p99 && !above.cold_in_p50);
        close(above.p50, 6.5, 26.5);
        close(above.p99, 9.0 + 5.0 + 50.0, 9.0 + 25.0 + 150.0);
        assert_eq!(above.components[1].id, "lambda-cold-placement");
        assert_eq!(above.components[1].adds_to, vec!["p99", "start"]);
        assert!(
            above.formula.contains("p99 = measured p99 + lambda-invoke-path + lambda-cold-placement"),
            "{}",
            above.formula
        );
        assert!(above.notes.iter().any(|n| n.starts_with("cold share 3.00% exceeds 1%")), "{:?}", above.notes);
        // Mostly cold: p50 too.
        let cold = project_latency(&tier(6.0, 9.0, Some(lambda(0.6, 4.5))), &LAMBDA, &o).unwrap();
        assert!(cold.cold_in_p50);
        close(cold.p50, 6.0 + 55.0, 6.0 + 175.0);
    }

    #[test]
    fn an_ec2_tier_adds_the_vpc_hop_and_takes_the_published_start() {
        let o = Overheads::built_in().unwrap();
        let shape = TierShape::Ec2 { instance_type: "t3.micro".into() };
        let p = project_latency(&tier(0.2, 1.0, None), &shape, &o).unwrap();
        close(p.p50, 0.2 + 0.2, 0.2 + 0.56);
        close(p.p99, 1.0 + 0.2, 1.0 + 0.56);
        close(p.start.unwrap(), 16_500.0, 26_000.0);
        assert_eq!(p.cold_share, None);
        let ids: Vec<_> = p.components.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["vpc-hop-ec2", "ec2-instance-start"]);
        assert_eq!((p.measured_p50_ms, p.measured_p99_ms), (0.2, 1.0));
        let fargate = TierShape::Fargate { cpu_units: 256, memory_mib: 512, arch: crate::shape::DEFAULT_ARCH };
        let f = project_latency(&tier(0.2, 1.0, None), &fargate, &o).unwrap();
        assert_eq!(f.components[0].id, "vpc-hop-awsvpc");
        close(f.start.unwrap(), 30_000.0, 60_000.0);
    }

    #[test]
    fn a_tier_without_latency_is_not_projected() {
        let o = Overheads::built_in().unwrap();
        let mut t = tier(1.0, 2.0, None);
        t.latency.corrected.count = 0;
        assert!(project_latency(&t, &TierShape::Ec2 { instance_type: "t3.micro".into() }, &o).is_none());
    }
}
