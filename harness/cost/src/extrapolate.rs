//! A measured tier's monthly cost at another tenant count and rate: the sweep's model curves
//! between and beyond its measured runs (`isobench explore`).
//!
//! The formulas are [`crate::model`]'s, fed with what the measured run says about the tier and
//! the new (tenants, rate) in place of the run's own:
//! - `ec2-silo`, `fargate`, `ecs-ec2`: one instance or task per tenant, so the cost follows the
//!   tenant count; the rate does not enter (the measured run's utilisation is not extrapolated).
//! - `ec2-shared`: when the run saturated its `M` instances, their measured capacity
//!   `c = X / M` (ok throughput per instance) gives `ceil(λ / c)` instances at any rate. When it
//!   did not, the capacity is unknown (only `c ≥ X / M`), so the count is held at `M`: a lower
//!   bound above the measured rate, said in the notes. Tenants do not enter.
//! - `lambda`: the measured cost per billed request (duration and INIT share included) times
//!   the month's requests at λ; tenants do not enter.
//!
//! Every extrapolated cost is modelled twice over (prices, and a load that was not run) and its
//! first note says so, naming the run it came from.

use isobench_core::TierId;
use isobench_results::{TierCost, TierSummary};

use crate::error::CostError;
use crate::model::{self, Billed, Load};
use crate::pricing::Pricing;
use crate::shape::TierShape;

/// The modelled monthly cost of the tier `t` measured, at `tenants` tenants and `rate` req/s.
/// At the run's own tenant count and rate it equals [`crate::cost_of_tier`]'s month.
pub fn cost_at(
    t: &TierSummary,
    shape: &TierShape,
    p: &Pricing,
    tenants: u64,
    rate: f64,
) -> Result<TierCost, CostError> {
    let tier: TierId =
        t.tier.parse().map_err(|_| CostError::Input { tier: t.tier.clone(), reason: "unknown tier id".into() })?;
    let x = model::throughput(t);
    // Little's law at the new rate, with the measured mean latency: an assumption, only used
    // for the idle share.
    let scale = if t.target_rate > 0.0 { rate / t.target_rate } else { 1.0 };
    let load =
        Load { tenants, duration_s: t.duration_s, rate, in_flight: x * scale * t.latency.uncorrected.mean_us / 1e6 };
    let from = format!("the run at {} tenants and {} req/s", t.tenants, trim(t.target_rate));
    let (mut cost, how) = match shape {
        TierShape::Ec2 { instance_type } if tier == TierId::SharedEc2 => {
            let measured = (t.instances.len() as u64).max(1);
            let saturated = !model::saturation(t).is_empty();
            let capacity = x / measured as f64;
            let mut c = model::ec2_shared(tier, instance_type, measured, x, saturated, &load, p)?;
            c.notes.retain(|n| !n.starts_with("the run saturated") && !n.starts_with("the run did not saturate"));
            let how = if saturated {
                format!("instances = ceil(λ / c) with the measured capacity c = {capacity:.1} req/s per instance")
            } else {
                format!(
                    "the run did not saturate its {measured} instance(s), so their capacity is unknown (at least \
                     {capacity:.1} req/s each): the count is held at {measured}, a lower bound above the measured rate"
                )
            };
            (c, how)
        }
        TierShape::Ec2 { instance_type } => {
            (model::ec2_silo(tier, instance_type, tenants, &load, p)?, "one instance per tenant".to_string())
        }
        TierShape::Fargate { cpu_units, memory_mib, arch } => (
            model::fargate(tier, *cpu_units, *memory_mib, *arch, tenants, &load, p)?,
            "one task per tenant".to_string(),
        ),
        TierShape::EcsEc2 { cpu_units, memory_mib, instance_type } => (
            model::ecs_ec2(tier, *cpu_units, *memory_mib, instance_type, tenants, &load, p)?,
            "one task per tenant, packed on container instances".to_string(),
        ),
        TierShape::Eks { .. } => {
            (model::eks(tier, shape, tenants, &load, p)?, "one pod per tenant, packed on nodes".to_string())
        }
        TierShape::Lambda { memory_mb, arch, .. } => {
            let billed = billed(t)?;
            let c = model::lambda(tier, *memory_mb, *arch, &billed, &load, p, false)?;
            let per_request = if billed.invokes > 0.0 { c.run_usd / billed.invokes } else { 0.0 };
            let mut how = format!(
                "the measured cost per billed request (${per_request:.9}, INIT share included) × λ × 2,592,000 s"
            );
            if tier == TierId::LambdaPerTenant && tenants > t.tenants as u64 {
                how += "; more functions mean more cold starts than the run had, which this leaves out";
            }
            (c, how)
        }
    };
    cost.notes.insert(0, format!("extrapolated by the cost model from {from}: {how}"));
    Ok(cost)
}

/// A Lambda tier's billed quantities, as [`crate::cost_of_tier`] reads them.
fn billed(t: &TierSummary) -> Result<Billed, CostError> {
    let f = t.functions.as_ref().ok_or_else(|| CostError::Input {
        tier: t.tier.clone(),
        reason: "the summary has no function billing figures".into(),
    })?;
    let init_ms = (f.init.mean_us * f.init.count as f64 / 1000.0).ceil();
    Ok(Billed { invokes: f.billed_invokes as f64, invoke_mb_ms: f.billed_mb_ms_total as f64, init_ms })
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use isobench_results::Summary;

    use super::*;
    use crate::model::MONTH_HOURS;

    fn committed() -> (Summary, serde_json::Value) {
        let text = include_str!("../../../results/bench/leakage/summary.json");
        (serde_json::from_str(text).unwrap(), serde_json::from_str(text).unwrap())
    }

    fn pricing() -> Pricing {
        Pricing::built_in("us-east-1").unwrap()
    }

    fn tier<'a>(s: &'a Summary, id: &str) -> &'a TierSummary {
        s.tiers.iter().find(|t| t.tier == id).unwrap()
    }

    #[test]
    fn at_the_measured_point_it_is_the_measured_cost() {
        let (s, v) = committed();
        for t in &s.tiers {
            let shape = TierShape::from_effective(&v["scenario"]["effective"], &t.tier).unwrap();
            let measured = crate::cost_of_tier(t, &shape, &pricing()).unwrap();
            let at = cost_at(t, &shape, &pricing(), t.tenants as u64, t.target_rate).unwrap();
            assert!((at.monthly_usd - measured.monthly_usd).abs() < 1e-9, "{}: {at:?} vs {measured:?}", t.tier);
            assert!(at.notes[0].starts_with("extrapolated by the cost model from the run at"), "{:?}", at.notes);
        }
    }

    #[test]
    fn silo_follows_tenants_and_ignores_the_rate() {
        let (s, v) = committed();
        let t = tier(&s, "silo-ec2");
        let shape = TierShape::from_effective(&v["scenario"]["effective"], "silo-ec2").unwrap();
        let p = pricing();
        let price = p.get("ec2.t3.micro", "silo-ec2").unwrap().usd;
        let c = cost_at(t, &shape, &p, 140, 1.0).unwrap();
        assert!((c.monthly_usd - 140.0 * MONTH_HOURS * price).abs() < 1e-9);
        assert_eq!(c.monthly_usd, cost_at(t, &shape, &p, 140, 10_000.0).unwrap().monthly_usd);
    }

    #[test]
    fn lambda_follows_the_rate_and_ignores_tenants() {
        let (s, v) = committed();
        let t = tier(&s, "lambda-shared");
        let shape = TierShape::from_effective(&v["scenario"]["effective"], "lambda-shared").unwrap();
        let p = pricing();
        let one = cost_at(t, &shape, &p, 4, 100.0).unwrap().monthly_usd;
        let ten = cost_at(t, &shape, &p, 4, 1000.0).unwrap().monthly_usd;
        assert!(one > 0.0 && (ten - 10.0 * one).abs() < 1e-9 * ten, "{one} {ten}");
        assert_eq!(cost_at(t, &shape, &p, 400, 100.0).unwrap().monthly_usd, one);
    }

    #[test]
    fn shared_adds_instances_by_the_measured_capacity_only_when_it_was_reached() {
        let (s, v) = committed();
        let shape = TierShape::from_effective(&v["scenario"]["effective"], "shared-ec2").unwrap();
        let p = pricing();
        let price = p.get("ec2.m5.large", "shared-ec2").unwrap().usd;
        // The committed run kept up: one instance at any rate, said to be a lower bound.
        let kept_up = tier(&s, "shared-ec2");
        assert!(model::saturation(kept_up).is_empty());
        let c = cost_at(kept_up, &shape, &p, 4, 10.0 * kept_up.target_rate).unwrap();
        assert!((c.monthly_usd - MONTH_HOURS * price).abs() < 1e-9, "{c:?}");
        assert!(c.notes[0].contains("the count is held at 1, a lower bound"), "{:?}", c.notes);
        // Saturated at half the offered rate: 3.5 times what it served needs four instances.
        let mut t = kept_up.clone();
        let x = t.target_rate / 2.0;
        t.ok_rate = Some(x);
        let at = |rate: f64| cost_at(&t, &shape, &p, 4, rate).unwrap();
        assert!((at(3.5 * x).monthly_usd - 4.0 * MONTH_HOURS * price).abs() < 1e-9);
        assert!((at(x / 2.0).monthly_usd - MONTH_HOURS * price).abs() < 1e-9);
        assert!(at(3.5 * x).notes[0].contains("measured capacity"), "{:?}", at(3.5 * x).notes);
    }
}
