//! Recomputes each tier's cost by hand from a committed `summary.json` and the built-in pricing
//! file, and checks the model's figures to the cent.

use isobench_cost::{Pricing, TierShape, cost_of_tier};
use isobench_results::Summary;

fn summary() -> Summary {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../results/bench/leakage/summary.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

/// Cost figures compared at a finer grain too, since a run's cost is a fraction of a cent.
fn assert_usd(what: &str, got: f64, want: f64) {
    assert_eq!(cents(got), cents(want), "{what}: {got} vs {want}");
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: {got} vs {want}");
}

#[test]
fn every_tier_of_a_real_run_recomputes_to_the_cent() {
    let s = summary();
    let p = Pricing::built_in("us-east-1").unwrap();
    let price = |k: &str| p.prices[k].usd;
    let month_s = 30.0 * 24.0 * 3600.0;
    assert_eq!(s.tiers.len(), 6);
    for t in &s.tiers {
        let shape = TierShape::from_effective(&s.scenario.effective, &t.tier).unwrap();
        let c = cost_of_tier(t, &shape, &p).unwrap();
        let hours = t.duration_s.max(60.0) / 3600.0;
        // Ok throughput; a summary written before `ok_rate` has only `achieved_rate`.
        let x = t.ok_rate.unwrap_or(t.achieved_rate);
        let l = x * t.latency.uncorrected.mean_us / 1e6;
        let (run, month, vcpus) = match t.tier.as_str() {
            // 4 tenants, 4 t3.micro (2 vCPU).
            "silo-ec2" => (4.0 * hours * price("ec2.t3.micro"), 4.0 * 720.0 * price("ec2.t3.micro"), 8.0),
            // One m5.large carried ~97 % of the offered rate: not saturated, one instance.
            "shared-ec2" => (hours * price("ec2.m5.large"), 720.0 * price("ec2.m5.large"), 2.0),
            // 4 tasks of 256 CPU / 512 MiB on m5.large: 2 per instance (3 ENIs − 1), 2 instances.
            "ecs-awsvpc" => (2.0 * hours * price("ec2.m5.large"), 2.0 * 720.0 * price("ec2.m5.large"), 4.0),
            _ => {
                let f = t.functions.as_ref().unwrap();
                let init_ms = (f.init.mean_us * f.init.count as f64 / 1000.0).ceil();
                let gb_s = f.gb_seconds + init_ms * 256.0 / 1024.0 / 1000.0;
                let run =
                    f.billed_invokes as f64 / 1e6 * price("lambda.requests") + gb_s * price("lambda.gb-second-x86_64");
                (run, run * t.target_rate * month_s / f.billed_invokes as f64, 0.0)
            }
        };
        let idle = if vcpus > 0.0 { month * (1.0 - (l / vcpus).min(1.0)) } else { 0.0 };
        assert_usd(&format!("{} run", t.tier), c.run_usd, run);
        assert_usd(&format!("{} month", t.tier), c.monthly_usd, month);
        assert_usd(&format!("{} idle", t.tier), c.monthly_idle_usd, idle);
        assert_usd(&format!("{} per tenant", t.tier), c.per_tenant_usd, month / 4.0);
        assert_usd(&format!("{} per M", t.tier), c.per_million_requests_usd, month / (t.target_rate * month_s) * 1e6);
        let items: f64 = c.items.iter().map(|i| i.quantity * i.unit_price_usd).sum();
        assert_usd(&format!("{} items", t.tier), items, c.run_usd);
    }
}

#[test]
fn a_missing_price_names_the_tier() {
    let s = summary();
    let mut p = Pricing::built_in("us-east-1").unwrap();
    p.prices.remove("ec2.m5.large");
    let t = s.tiers.iter().find(|t| t.tier == "shared-ec2").unwrap();
    let shape = TierShape::from_effective(&s.scenario.effective, &t.tier).unwrap();
    let e = cost_of_tier(t, &shape, &p).unwrap_err().to_string();
    assert!(e.contains("tier shared-ec2 needs the price `ec2.m5.large`"), "{e}");
}

#[test]
fn project_prices_every_tier_of_a_plan_before_deploy() {
    use isobench_core::plan::{Overrides, Plan};
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/leakage.toml"));
    let (scenario, src) = isobench_core::Scenario::load(path).unwrap();
    let plan = Plan::new("t".into(), scenario, isobench_core::scenario::hash(&src), &Overrides::default());
    let p = Pricing::built_in("us-east-1").unwrap();
    let projected = isobench_cost::project(&plan, &p).unwrap();
    assert_eq!(projected.len(), plan.tiers.len());
    for (tier, c) in &projected {
        assert!(c.cost.run_usd > 0.0 && c.cost.monthly_usd > 0.0, "{tier}: {:?}", c.cost);
        assert_eq!(c.upper_bound, tier.as_str().starts_with("lambda"), "{tier}");
    }
    let mut missing = p.clone();
    missing.prices.remove("lambda.gb-second-x86_64");
    let e = isobench_cost::project(&plan, &missing).unwrap_err().to_string();
    assert!(e.contains("tier lambda-per-tenant needs the price `lambda.gb-second-x86_64`"), "{e}");
}
