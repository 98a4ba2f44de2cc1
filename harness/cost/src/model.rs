//! One formula per tier. Symbols used in every formula string:
//!
//! - `T`: the tier's measured traffic time (`duration_s`); EC2 and Fargate bill per second with a
//!   60 s minimum, so a run pays `max(T, 60 s)`.
//! - `λ`: the scenario's rate (`target_rate`, req/s), the offered load of the open-loop generator;
//!   the month is 30 days = 720 h = 2,592,000 s at that rate.
//! - `X`: the measured ok throughput (`ok_rate`: ok requests completed inside the traffic
//!   window, per second). Not the offered rate: a saturated target serves less than it is offered.
//! - `L = X × W`: requests in flight on average (Little's law), with `W` the mean
//!   uncorrected latency. For capacity-priced tiers (EC2, ECS) the share of the paid vCPUs the load
//!   kept busy is taken as `u = min(1, L / vCPUs)`; since `W` includes the network, `u` is an upper
//!   bound and the idle share `1 − u` a lower bound. Pay-per-use tiers (Lambda) have idle share 0.
//! - Per tenant = month / tenants; per million requests = month / (λ × 2,592,000) × 10⁶.
//!
//! Formulas:
//! - `ec2-silo`: one instance per tenant. run = N × max(T,60)/3600 × P(ec2.TYPE);
//!   month = N × 720 × P(ec2.TYPE).
//! - `ec2-shared`: capacity per instance `c = X / M` from the run's M instances. When the run
//!   saturated them ([`saturation`]: X < 90 % of λ, over 1 % of requests failed, or the
//!   generator's lag grew), the month needs `ceil(λ / c)` instances; otherwise the M instances
//!   carried λ and `c` is only a lower bound (said in the notes).
//!   run = M × max(T,60)/3600 × P; month = instances × 720 × P.
//!
//! Every measured tier that saturated says so in its notes, with the figures that show it.
//! - `fargate`: one task per tenant of `cpu/1024` vCPU and `memory/1024` GB.
//!   run = N × max(T,60)/3600 × (vCPU × P(fargate.vcpu-x86_64) + GB × P(fargate.gb-x86_64));
//!   month = the same with 720 h.
//! - `ecs-ec2`: one task per tenant, packed on container instances: per instance
//!   `min(⌊vCPUs × 1024 / cpu⌋, ⌊MiB / memory⌋, ENIs − 1)` tasks (awsvpc without ENI trunking),
//!   `K = ceil(N / that)` instances, priced as EC2 (ECS itself is free).
//! - `lambda`: requests `R` = billed invokes; GB-s = (Σ billed ms + INIT ms) × MB / 1024 / 1000, where
//!   INIT ms = ceil(INIT mean × INIT count) (billed since Aug 2025 for every runtime; per-INIT
//!   rounding to 1 ms is not recoverable from the summary, at most 1 ms per cold start).
//!   run = R / 10⁶ × P(lambda.requests) + GB-s × P(lambda.gb-second-x86_64);
//!   month = run × λ × 2,592,000 / R. The free tier is not deducted.

use isobench_core::plan::Plan;
use isobench_core::{TierId, instance_types};
use isobench_results::{CostItem, TierCost, TierSummary};

use crate::error::CostError;
use crate::pricing::Pricing;
use crate::shape::{TierShape, max_enis};
use isobench_core::scenario::aws::Architecture;
use isobench_core::scenario::eks::{self, Pattern};

pub const MONTH_HOURS: f64 = 720.0;
pub const MONTH_SECONDS: f64 = MONTH_HOURS * 3600.0;
/// EC2 and Fargate: per-second billing, one-minute minimum.
pub const MIN_BILLED_S: f64 = 60.0;
/// Below this share of the offered rate, a run is taken to have saturated its instances.
pub const SATURATED_BELOW: f64 = 0.9;
/// Above this share of failed requests, likewise.
pub const SATURATED_FAILED: f64 = 0.01;
/// Generator lag p99 above this share of the traffic time: the backlog grew (see [`saturation`]).
pub const SATURATED_LAG: f64 = 1.0 - SATURATED_BELOW;
/// Longest INIT phase Lambda allows, for the projection's upper bound.
pub const MAX_INIT_S: f64 = 10.0;

/// A cost projected from the plan alone, before anything is deployed.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedCost {
    /// Same fields as a measured cost; `per_*` and `monthly_*` at the scenario's rate.
    pub cost: TierCost,
    /// Whether `cost` is an upper bound (Lambda: every invoke billed its full timeout, every
    /// possible environment a 10 s INIT) rather than an estimate.
    pub upper_bound: bool,
}

/// The pricing-table keys a tier's formula reads.
pub fn required_prices(shape: &TierShape) -> Vec<String> {
    match shape {
        TierShape::Ec2 { instance_type } | TierShape::EcsEc2 { instance_type, .. } => {
            vec![format!("ec2.{instance_type}")]
        }
        TierShape::Fargate { arch, .. } => {
            let a = arch.as_str();
            vec![format!("fargate.vcpu-{a}"), format!("fargate.gb-{a}")]
        }
        TierShape::Lambda { arch, .. } => vec!["lambda.requests".into(), format!("lambda.gb-second-{}", arch.as_str())],
        TierShape::Eks { instance_type, .. } => vec![format!("ec2.{instance_type}"), EKS_CLUSTER_HOUR.into()],
    }
}

/// The modelled AWS cost of one measured tier, from its summary, its configuration and the
/// pricing table. Errors name the tier and the missing price or figure.
pub fn cost_of_tier(t: &TierSummary, shape: &TierShape, p: &Pricing) -> Result<TierCost, CostError> {
    let tier: TierId =
        t.tier.parse().map_err(|_| CostError::Input { tier: t.tier.clone(), reason: "unknown tier id".into() })?;
    let throughput = throughput(t);
    let load = Load {
        tenants: t.tenants as u64,
        duration_s: t.duration_s,
        rate: t.target_rate,
        in_flight: throughput * t.latency.uncorrected.mean_us / 1e6,
    };
    let saturated = saturation(t);
    let mut cost = tier_cost(t, tier, shape, !saturated.is_empty(), &load, p)?;
    if !saturated.is_empty() {
        cost.notes.insert(0, format!("the tier saturated: {}", saturated.join("; ")));
    }
    Ok(cost)
}

/// The measured ok throughput, req/s. Summaries written before `ok_rate` existed have only
/// `achieved_rate`, which then meant what was sent.
pub(crate) fn throughput(t: &TierSummary) -> f64 {
    t.ok_rate.unwrap_or(t.achieved_rate)
}

/// Why a measured tier is taken to have saturated, with its figures; empty if it did not. A
/// tier saturated when its ok throughput stayed below [`SATURATED_BELOW`] of the offered rate,
/// when over [`SATURATED_FAILED`] of its requests failed, or when the generator's lag grew: an
/// open-loop backlog grows at the rate the target falls short of the offered one, so a target
/// carrying under 90 % of it ends over 10 % of the run behind ([`SATURATED_LAG`]).
pub fn saturation(t: &TierSummary) -> Vec<String> {
    let mut why = Vec::new();
    let x = throughput(t);
    if x < SATURATED_BELOW * t.target_rate {
        why.push(format!(
            "ok throughput {x:.1} req/s (achieved {:.1} on the wire) is below {:.0} % of the target {:.1} req/s",
            t.achieved_rate,
            SATURATED_BELOW * 100.0,
            t.target_rate
        ));
    }
    let failed = t.traffic.errors + t.traffic.timeouts;
    if failed as f64 > SATURATED_FAILED * t.traffic.sent.max(1) as f64 {
        why.push(format!("{failed} of {} sent requests failed or timed out", t.traffic.sent));
    }
    let lag_s = t.latency.generator_lag.p99_us / 1e6;
    if t.duration_s > 0.0 && lag_s > SATURATED_LAG * t.duration_s {
        why.push(format!(
            "the generator's lag grew: p99 {lag_s:.3} s, over {:.0} % of the {:.1} s run",
            SATURATED_LAG * 100.0,
            t.duration_s
        ));
    }
    why
}

/// The tier's cost by its model; `saturated` from [`saturation`].
fn tier_cost(
    t: &TierSummary,
    tier: TierId,
    shape: &TierShape,
    saturated: bool,
    load: &Load,
    p: &Pricing,
) -> Result<TierCost, CostError> {
    let units = t.instances.len() as u64;
    match shape {
        TierShape::Ec2 { instance_type } if tier == TierId::SharedEc2 => {
            ec2_shared(tier, instance_type, units.max(1), throughput(t), saturated, load, p)
        }
        TierShape::Ec2 { instance_type } => ec2_silo(tier, instance_type, units.max(load.tenants), load, p),
        TierShape::Fargate { cpu_units, memory_mib, arch } => {
            fargate(tier, *cpu_units, *memory_mib, *arch, units, load, p)
        }
        TierShape::EcsEc2 { cpu_units, memory_mib, instance_type } => {
            ecs_ec2(tier, *cpu_units, *memory_mib, instance_type, units, load, p)
        }
        TierShape::Eks { .. } => eks(tier, shape, load.tenants, load, p),
        TierShape::Lambda { memory_mb, arch, .. } => {
            let f = t.functions.as_ref().ok_or_else(|| CostError::Input {
                tier: t.tier.clone(),
                reason: "the summary has no function billing figures".into(),
            })?;
            let init_ms = (f.init.mean_us * f.init.count as f64 / 1000.0).ceil();
            let billed =
                Billed { invokes: f.billed_invokes as f64, invoke_mb_ms: f.billed_mb_ms_total as f64, init_ms };
            let mut c = lambda(tier, *memory_mb, *arch, &billed, load, p, false)?;
            if f.billed_invokes < t.traffic.sent {
                c.notes.push(format!(
                    "{} of {} sent requests carried no billed duration (errors, timeouts) and are not priced; \
                     the month is priced per billed invoke",
                    t.traffic.sent - f.billed_invokes,
                    t.traffic.sent
                ));
            }
            Ok(c)
        }
    }
}

/// Projects every tier's cost from the plan alone (before deploy), for cost guard rails and to
/// check that the pricing table has every price the run will need. EC2 and ECS are estimates
/// (one instance or task per tenant, one shared instance; utilisation unknown, so the idle
/// share is reported as 0); Lambda is an upper bound (see [`ProjectedCost::upper_bound`]).
/// Fails on the first tier whose price is missing, naming the tier and the key.
pub fn project(plan: &Plan, p: &Pricing) -> Result<Vec<(TierId, ProjectedCost)>, CostError> {
    let run = &plan.scenario.run;
    let mut out = Vec::new();
    for tp in &plan.tiers {
        let shape = TierShape::from_settings(&tp.settings);
        let tenants = tp.tenants.len() as u64;
        let load = Load { tenants, duration_s: run.duration.0.as_secs_f64(), rate: run.rate.0, in_flight: 0.0 };
        let (cost, upper_bound) = match &shape {
            TierShape::Ec2 { instance_type } if tp.tier == TierId::SharedEc2 => {
                (ec2_shared(tp.tier, instance_type, 1, load.rate, false, &load, p)?, false)
            }
            TierShape::Ec2 { instance_type } => (ec2_silo(tp.tier, instance_type, tenants, &load, p)?, false),
            TierShape::Fargate { cpu_units, memory_mib, arch } => {
                (fargate(tp.tier, *cpu_units, *memory_mib, *arch, tenants, &load, p)?, false)
            }
            TierShape::EcsEc2 { cpu_units, memory_mib, instance_type } => {
                (ecs_ec2(tp.tier, *cpu_units, *memory_mib, instance_type, tenants, &load, p)?, false)
            }
            TierShape::Eks { .. } => (eks(tp.tier, &shape, tenants, &load, p)?, false),
            TierShape::Lambda { memory_mb, timeout_s, arch } => {
                let invokes = (load.rate * load.duration_s).ceil();
                let concurrency = match &tp.settings {
                    isobench_core::scenario::TierSettings::Lambda(l) => l.concurrency as f64,
                    _ => 1.0,
                };
                let functions = if tp.tier == TierId::LambdaPerTenant { tenants as f64 } else { 1.0 };
                let environments = invokes.min(functions * concurrency);
                let billed = Billed {
                    invokes,
                    invoke_mb_ms: invokes * (timeout_s * 1000.0).ceil() * *memory_mb as f64,
                    init_ms: environments * MAX_INIT_S * 1000.0,
                };
                (lambda(tp.tier, *memory_mb, *arch, &billed, &load, p, true)?, true)
            }
        };
        out.push((tp.tier, ProjectedCost { cost, upper_bound }));
    }
    Ok(out)
}

/// The load a formula sees.
pub(crate) struct Load {
    pub(crate) tenants: u64,
    pub(crate) duration_s: f64,
    /// Offered rate, req/s; the month is projected at it.
    pub(crate) rate: f64,
    /// Mean requests in flight (Little's law); 0 when unknown (projection).
    pub(crate) in_flight: f64,
}

impl Load {
    fn billed_hours(&self) -> f64 {
        self.duration_s.max(MIN_BILLED_S) / 3600.0
    }
}

/// A Lambda tier's billed quantities.
pub(crate) struct Billed {
    pub(crate) invokes: f64,
    /// Σ billed ms × MB over invokes.
    pub(crate) invoke_mb_ms: f64,
    pub(crate) init_ms: f64,
}

fn item(p: &Pricing, tier: TierId, key: &str, quantity: f64) -> Result<CostItem, CostError> {
    let price = p.get(key, tier.as_str())?;
    Ok(CostItem {
        price: key.to_string(),
        quantity,
        unit: price.unit.clone(),
        unit_price_usd: price.usd,
        usd: quantity * price.usd,
        unverified: price.unverified,
    })
}

/// Sums the items and derives the per-tenant, per-request and idle figures.
fn finish(
    model: &str,
    formula: String,
    items: Vec<CostItem>,
    monthly_usd: f64,
    utilisation: f64,
    load: &Load,
    notes: Vec<String>,
) -> TierCost {
    let run_usd = items.iter().map(|i| i.usd).sum();
    let monthly_idle_usd = monthly_usd * (1.0 - utilisation.clamp(0.0, 1.0));
    let month_requests = load.rate * MONTH_SECONDS;
    TierCost {
        model: model.to_string(),
        formula,
        items,
        run_usd,
        per_tenant_usd: if load.tenants == 0 { 0.0 } else { monthly_usd / load.tenants as f64 },
        per_million_requests_usd: if month_requests > 0.0 { monthly_usd / month_requests * 1e6 } else { 0.0 },
        monthly_usd,
        monthly_idle_usd,
        idle_share: if monthly_usd > 0.0 { monthly_idle_usd / monthly_usd } else { 0.0 },
        notes,
    }
}

/// `u = min(1, L / vCPUs)`; with no measured load (a projection) nothing is known to be idle.
fn utilisation(load: &Load, vcpus: f64) -> f64 {
    if load.in_flight <= 0.0 || vcpus <= 0.0 { 1.0 } else { (load.in_flight / vcpus).min(1.0) }
}

fn common_notes(load: &Load) -> Vec<String> {
    let mut notes = Vec::new();
    if load.duration_s < MIN_BILLED_S {
        notes.push(format!(
            "the run ({:.1} s) is shorter than the 60 s billing minimum, so its cost is that of 60 s",
            load.duration_s
        ));
    }
    if load.in_flight > 0.0 {
        notes.push("idle share: u = min(1, L / vCPUs), L = ok throughput × mean latency (Little's law); latency includes the network, so the idle share is a lower bound".into());
    }
    notes
}

pub(crate) fn ec2_silo(
    tier: TierId,
    instance_type: &str,
    n: u64,
    load: &Load,
    p: &Pricing,
) -> Result<TierCost, CostError> {
    let key = format!("ec2.{instance_type}");
    let vcpus = TierShape::vcpus(instance_type, tier)?;
    let items = vec![item(p, tier, &key, n as f64 * load.billed_hours())?];
    let price = items[0].unit_price_usd;
    let monthly = n as f64 * MONTH_HOURS * price;
    let u = utilisation(load, (n * vcpus as u64) as f64);
    let formula = format!(
        "one instance per tenant: run = N × max(T, 60 s)/3600 × P; month = N × 720 h × P; idle = month × (1 − u), \
         u = min(1, L / (N × vCPUs)); N = {n}, T = {:.3} s, P = ${price}/instance-hour ({key}), vCPUs = {vcpus}, L = {:.4}",
        load.duration_s, load.in_flight
    );
    Ok(finish("ec2-silo", formula, items, monthly, u, load, common_notes(load)))
}

pub(crate) fn ec2_shared(
    tier: TierId,
    instance_type: &str,
    measured: u64,
    throughput: f64,
    saturated: bool,
    load: &Load,
    p: &Pricing,
) -> Result<TierCost, CostError> {
    let key = format!("ec2.{instance_type}");
    let vcpus = TierShape::vcpus(instance_type, tier)?;
    let items = vec![item(p, tier, &key, measured as f64 * load.billed_hours())?];
    let price = items[0].unit_price_usd;
    let capacity = throughput / measured as f64;
    let needed = if saturated && capacity > 0.0 { (load.rate / capacity).ceil().max(1.0) as u64 } else { measured };
    let mut notes = common_notes(load);
    if load.in_flight <= 0.0 {
        notes.push("projected before the run: one shared instance; its capacity is measured by the run".into());
    } else if saturated {
        notes.push(format!(
            "the run saturated {measured} instance(s) at {capacity:.1} req/s each; {needed} are needed for {:.1} req/s",
            load.rate
        ));
    } else {
        notes.push(format!(
            "the run did not saturate the instance: capacity ≥ {capacity:.1} req/s per instance is a lower bound, \
             and {needed} instance(s) carried the load"
        ));
    }
    let monthly = needed as f64 * MONTH_HOURS * price;
    let u = utilisation(load, (needed * vcpus as u64) as f64);
    let formula = format!(
        "instances for the peak: M = {}, c = ok throughput X / instances measured = {capacity:.3} req/s; \
         run = instances measured × max(T, 60 s)/3600 × P; month = M × 720 h × P; idle = month × (1 − u), \
         u = min(1, L / (M × vCPUs)); measured = {measured}, λ = {} req/s, T = {:.3} s, P = ${price}/instance-hour ({key}), \
         vCPUs = {vcpus}, L = {:.4}",
        if saturated { format!("ceil(λ / c) = {needed}") } else { format!("{needed} (not saturated)") },
        load.rate,
        load.duration_s,
        load.in_flight
    );
    Ok(finish("ec2-shared", formula, items, monthly, u, load, notes))
}

pub(crate) fn fargate(
    tier: TierId,
    cpu_units: u32,
    memory_mib: u32,
    arch: Architecture,
    n: u64,
    load: &Load,
    p: &Pricing,
) -> Result<TierCost, CostError> {
    let (vcpu, gb) = (cpu_units as f64 / 1024.0, memory_mib as f64 / 1024.0);
    let a = arch.as_str();
    let (kv, kg) = (format!("fargate.vcpu-{a}"), format!("fargate.gb-{a}"));
    let h = load.billed_hours();
    let items = vec![item(p, tier, &kv, n as f64 * vcpu * h)?, item(p, tier, &kg, n as f64 * gb * h)?];
    let (pv, pg) = (items[0].unit_price_usd, items[1].unit_price_usd);
    let monthly = n as f64 * MONTH_HOURS * (vcpu * pv + gb * pg);
    let u = utilisation(load, n as f64 * vcpu);
    let formula = format!(
        "one Fargate task per tenant{}: run = N × max(T, 60 s)/3600 × (vCPU × Pv + GB × Pg); month = N × 720 h × \
         (vCPU × Pv + GB × Pg); idle = month × (1 − u), u = min(1, L / (N × vCPU)); N = {n}, vCPU = {vcpu}, GB = {gb}, \
         T = {:.3} s, Pv = ${pv}/vCPU-hour ({kv}), Pg = ${pg}/GB-hour ({kg}), L = {:.4}",
        on_arch(arch),
        load.duration_s,
        load.in_flight
    );
    Ok(finish("fargate", formula, items, monthly, u, load, common_notes(load)))
}

pub(crate) fn ecs_ec2(
    tier: TierId,
    cpu_units: u32,
    memory_mib: u32,
    instance_type: &str,
    tasks: u64,
    load: &Load,
    p: &Pricing,
) -> Result<TierCost, CostError> {
    let it = instance_types::lookup(instance_type).ok_or_else(|| CostError::Input {
        tier: tier.to_string(),
        reason: format!("unknown container instance type `{instance_type}`; accepted: {}", instance_types::accepted()),
    })?;
    let by_cpu = (it.vcpus as u64 * 1024) / cpu_units.max(1) as u64;
    let by_mem = it.memory_mib / memory_mib.max(1) as u64;
    let by_eni = max_enis(instance_type).map_or(u64::MAX, |e| e.saturating_sub(1) as u64);
    let per_instance = by_cpu.min(by_mem).min(by_eni);
    if per_instance == 0 {
        return Err(CostError::Input {
            tier: tier.to_string(),
            reason: format!("a task of {cpu_units} CPU units / {memory_mib} MiB does not fit on a {instance_type}"),
        });
    }
    let k = tasks.div_ceil(per_instance).max(1);
    let key = format!("ec2.{instance_type}");
    let items = vec![item(p, tier, &key, k as f64 * load.billed_hours())?];
    let price = items[0].unit_price_usd;
    let monthly = k as f64 * MONTH_HOURS * price;
    let u = utilisation(load, (k * it.vcpus as u64) as f64);
    let formula = format!(
        "tasks packed on EC2 container instances: per instance = min(⌊vCPUs × 1024 / cpu⌋, ⌊MiB / memory⌋, ENIs − 1) = \
         min({by_cpu}, {by_mem}, {}) = {per_instance}; K = ceil(tasks / per instance) = ceil({tasks} / {per_instance}) = {k}; \
         run = K × max(T, 60 s)/3600 × P; month = K × 720 h × P; idle = month × (1 − u), u = min(1, L / (K × vCPUs)); \
         T = {:.3} s, P = ${price}/instance-hour ({key}), vCPUs = {}, L = {:.4}",
        if by_eni == u64::MAX { "n/a".to_string() } else { by_eni.to_string() },
        load.duration_s,
        it.vcpus,
        load.in_flight
    );
    let mut notes = common_notes(load);
    notes.push("ECS adds no charge on the EC2 launch type; memory the ECS agent reserves is not deducted".into());
    Ok(finish("ecs-ec2", formula, items, monthly, u, load, notes))
}

/// The pricing key of the EKS control plane, per cluster-hour.
pub const EKS_CLUSTER_HOUR: &str = "eks.cluster-hour";

/// `eks-pod`: one pod per tenant packed on EC2 nodes by its requests (node-per-tenant: a node
/// per tenant), priced as EC2, plus one EKS control plane.
pub(crate) fn eks(
    tier: TierId,
    shape: &TierShape,
    tenants: u64,
    load: &Load,
    p: &Pricing,
) -> Result<TierCost, CostError> {
    let TierShape::Eks { cpu_millis, memory_mib, instance_type, pattern, count } = shape else {
        return Err(CostError::Input { tier: tier.to_string(), reason: "not an eks-pod shape".into() });
    };
    let it = instance_types::lookup(instance_type).ok_or_else(|| CostError::Input {
        tier: tier.to_string(),
        reason: format!("unknown node instance type `{instance_type}`; accepted: {}", instance_types::accepted()),
    })?;
    let pod = eks::PodResources { cpu_millis: *cpu_millis, memory_mib: *memory_mib };
    let (cpu, memory) = eks::allocatable(&it);
    let max_pods = eks::max_pods(&it);
    let per_node = eks::pods_per_node(&it, pod);
    if per_node == 0 {
        return Err(CostError::Input {
            tier: tier.to_string(),
            reason: format!("a pod of {cpu_millis}m / {memory_mib} MiB does not fit on a {instance_type} node"),
        });
    }
    let k = eks::nodes_for(*pattern, *count, per_node, tenants);
    let key = format!("ec2.{instance_type}");
    let h = load.billed_hours();
    let items = vec![item(p, tier, &key, k as f64 * h)?, item(p, tier, EKS_CLUSTER_HOUR, h)?];
    let (price, control) = (items[0].unit_price_usd, items[1].unit_price_usd);
    let monthly = MONTH_HOURS * (k as f64 * price + control);
    // The control plane serves no request: only the nodes' vCPUs are capacity.
    let u = utilisation(load, (k * it.vcpus as u64) as f64);
    let nodes = match pattern {
        Pattern::NodePerTenant => format!("one node per tenant: K = N = {k}"),
        Pattern::NamespacePerTenant => format!(
            "pods packed on shared nodes: per node = min(⌊allocatable CPU / cpu⌋, ⌊allocatable MiB / memory⌋,              max pods − 2) = min(⌊{cpu} / {cpu_millis}⌋, ⌊{memory} / {memory_mib}⌋, {max_pods} − 2) = {per_node};              K = max(ceil(N / per node), count) = max(ceil({tenants} / {per_node}), {}) = {k}",
            count.unwrap_or(1)
        ),
    };
    let formula = format!(
        "{nodes}; run = (K × P + Pc) × max(T, 60 s)/3600; month = (K × P + Pc) × 720 h; idle = nodes' month ×          (1 − u) + nothing of the control plane's, u = min(1, L / (K × vCPUs)); allocatable = vCPUs × 1000 −          kube-reserved CPU (6 % of the first core, 1 % of the second, 0.5 % of cores 3–4, 0.25 % beyond), memory −          (11 MiB × max pods + 255 MiB) − 100 MiB eviction (the EKS AMI's figures, modelled); max pods = ENIs × (IPv4          per ENI − 1) + 2 (VPC CNI); T = {:.3} s, P = ${price}/instance-hour ({key}), Pc = ${control}/cluster-hour          ({EKS_CLUSTER_HOUR}), vCPUs = {}, L = {:.4}",
        load.duration_s, it.vcpus, load.in_flight
    );
    let mut notes = common_notes(load);
    notes.push(format!(
        "modelled: nodes sized from AWS's published capacity less the EKS AMI's kubelet reservation ({}); a real          kubelet reports a little less memory; DaemonSets beyond aws-node and kube-proxy are not deducted",
        eks::RESERVATION_SOURCE
    ));
    let mut cost = finish("eks", formula, items, monthly, u, load, notes);
    // The control plane is paid whatever the load: it counts as idle, as the idle nodes do.
    cost.monthly_idle_usd = MONTH_HOURS * k as f64 * price * (1.0 - u.clamp(0.0, 1.0)) + MONTH_HOURS * control;
    cost.idle_share = if monthly > 0.0 { cost.monthly_idle_usd / monthly } else { 0.0 };
    Ok(cost)
}

/// What a formula says of the architecture: nothing on x86_64 (the default, as formulas read
/// before tiers had one), ` on arm64` otherwise.
fn on_arch(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "",
        Architecture::Arm64 => " on arm64",
    }
}

pub(crate) fn lambda(
    tier: TierId,
    memory_mb: u32,
    arch: Architecture,
    b: &Billed,
    load: &Load,
    p: &Pricing,
    bound: bool,
) -> Result<TierCost, CostError> {
    let gb = memory_mb as f64 / 1024.0;
    let invoke_gb_s = b.invoke_mb_ms / 1024.0 / 1000.0;
    let init_gb_s = b.init_ms * gb / 1000.0;
    let (kr, kd) = ("lambda.requests", format!("lambda.gb-second-{}", arch.as_str()));
    let items = vec![item(p, tier, kr, b.invokes / 1e6)?, item(p, tier, &kd, invoke_gb_s + init_gb_s)?];
    let run: f64 = items.iter().map(|i| i.usd).sum();
    let month_requests = load.rate * MONTH_SECONDS;
    let monthly = if b.invokes > 0.0 { run * month_requests / b.invokes } else { 0.0 };
    let formula = format!(
        "pay per use{}: run = R / 10⁶ × Pr + GB-s × Pd, GB-s = (Σ billed ms × MB + INIT ms × MB) / 1024 / 1000; \
         month = run × λ × 2,592,000 s / R; idle = 0; R = {}, Σ billed ms × MB = {}, INIT ms = {}, MB = {memory_mb}, \
         GB-s = {:.6}, λ = {} req/s, Pr = ${}/million-requests ({kr}), Pd = ${}/GB-second ({kd})",
        on_arch(arch),
        b.invokes,
        b.invoke_mb_ms,
        b.init_ms,
        invoke_gb_s + init_gb_s,
        load.rate,
        items[0].unit_price_usd,
        items[1].unit_price_usd
    );
    let mut notes = vec!["the free tier (1M requests, 400k GB-s a month) is not deducted".to_string()];
    if bound {
        notes.push(format!(
            "upper bound before the run: every invoke billed its full timeout, every possible environment a {MAX_INIT_S} s INIT"
        ));
    } else {
        notes.push("INIT ms = ceil(INIT mean × count), billed since Aug 2025; a month at a steady rate has fewer cold starts than a short run, so its INIT share is overstated".into());
    }
    if b.invokes == 0.0 {
        notes.push("no billed invokes: the month cannot be projected".into());
    }
    Ok(finish("lambda", formula, items, monthly, 1.0, load, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pricing() -> Pricing {
        Pricing::built_in("us-east-1").unwrap()
    }

    fn load(tenants: u64, duration_s: f64, rate: f64, in_flight: f64) -> Load {
        Load { tenants, duration_s, rate, in_flight }
    }

    #[test]
    fn silo_pays_one_instance_per_tenant_with_the_minute_minimum() {
        let c = ec2_silo(TierId::SiloEc2, "t3.micro", 4, &load(4, 8.0, 300.0, 0.4), &pricing()).unwrap();
        assert!((c.run_usd - 4.0 * 60.0 / 3600.0 * 0.0104).abs() < 1e-12);
        assert!((c.monthly_usd - 4.0 * 720.0 * 0.0104).abs() < 1e-9);
        assert!((c.idle_share - (1.0 - 0.4 / 8.0)).abs() < 1e-12);
        assert!((c.per_tenant_usd - 720.0 * 0.0104).abs() < 1e-9);
        assert!(c.notes.iter().any(|n| n.contains("60 s billing minimum")));
        let long = ec2_silo(TierId::SiloEc2, "t3.micro", 1, &load(1, 7200.0, 1.0, 0.0), &pricing()).unwrap();
        assert!((long.run_usd - 2.0 * 0.0104).abs() < 1e-12);
    }

    #[test]
    fn shared_adds_instances_only_when_saturated() {
        let p = pricing();
        let l = load(4, 100.0, 1000.0, 1.0);
        let sat = ec2_shared(TierId::SharedEc2, "m5.large", 1, 400.0, true, &l, &p).unwrap();
        assert!((sat.monthly_usd - 3.0 * 720.0 * 0.096).abs() < 1e-9, "ceil(1000/400) = 3");
        let not = ec2_shared(TierId::SharedEc2, "m5.large", 1, 990.0, false, &l, &p).unwrap();
        assert!((not.monthly_usd - 720.0 * 0.096).abs() < 1e-9);
        assert!(not.notes.iter().any(|n| n.contains("lower bound")));
    }

    /// A shared-ec2 summary: one m5.large offered `target` req/s for 10 s, of which it served
    /// `ok_rate`, with `lag_p99_s` of generator lag.
    fn shared_summary(target: f64, achieved: f64, ok_rate: f64, lag_p99_s: f64) -> TierSummary {
        use isobench_results::{InstanceSummary, Latency, Spread, Traffic};
        let sent = (achieved * 10.0) as u64;
        let mut latency = Latency::default();
        latency.uncorrected.mean_us = 20_000.0;
        latency.generator_lag.p99_us = lag_p99_s * 1e6;
        TierSummary {
            tier: "shared-ec2".into(),
            tenants: 2,
            injected_faults: None,
            duration_s: 10.0,
            target_rate: target,
            achieved_rate: achieved,
            ok_rate: Some(ok_rate),
            traffic: Traffic { dispatched: sent, sent, ok: sent, ..Default::default() },
            latency,
            functions: None,
            environments: None,
            instances: vec![InstanceSummary {
                id: "shared-ec2-1".into(),
                tenants: vec!["a".into(), "b".into()],
                address: None,
                pid: None,
                start_ms: 1.0,
                cpu_millis: None,
                memory_bytes: None,
            }],
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

    #[test]
    fn a_saturated_shared_tier_scales_instances_by_its_measured_throughput() {
        let shape = TierShape::Ec2 { instance_type: "m5.large".into() };
        // Offered 500 req/s; 90 went on the wire in the window and 80 were served ok; lag grew.
        let t = shared_summary(500.0, 90.0, 80.0, 4.0);
        let why = saturation(&t);
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why[0].contains("ok throughput 80.0 req/s (achieved 90.0 on the wire)"), "{why:?}");
        assert!(why[1].contains("lag grew: p99 4.000 s"), "{why:?}");
        let c = cost_of_tier(&t, &shape, &pricing()).unwrap();
        // c = 80 / 1 instance: ceil(500 / 80) = 7 instances for the month.
        assert!((c.monthly_usd - 7.0 * 720.0 * 0.096).abs() < 1e-9, "{}", c.monthly_usd);
        assert!(c.formula.contains("M = ceil(λ / c) = 7"), "{}", c.formula);
        assert!(c.notes[0].starts_with("the tier saturated: ok throughput 80.0"), "{:?}", c.notes);
        assert!(c.notes.iter().any(|n| n.contains("saturated 1 instance(s) at 80.0 req/s each; 7 are needed")));
        // Little's law with what was served: L = 80 × 0.02 s.
        assert!(c.formula.contains("L = 1.6000"), "{}", c.formula);

        // The same tier keeping up: one instance, no saturation note.
        let ok = shared_summary(500.0, 500.0, 499.0, 0.01);
        assert!(saturation(&ok).is_empty());
        let c = cost_of_tier(&ok, &shape, &pricing()).unwrap();
        assert!((c.monthly_usd - 720.0 * 0.096).abs() < 1e-9);
        assert!(!c.notes.iter().any(|n| n.contains("saturated:")), "{:?}", c.notes);

        // A growing lag alone (everything sent late, then served) is saturation too.
        assert_eq!(saturation(&shared_summary(500.0, 495.0, 495.0, 2.0)).len(), 1);
    }

    #[test]
    fn fargate_prices_vcpu_and_memory() {
        let c = fargate(TierId::EcsAwsvpc, 512, 1024, Architecture::X86_64, 2, &load(2, 3600.0, 10.0, 0.0), &pricing())
            .unwrap();
        assert!((c.run_usd - 2.0 * (0.5 * 0.04048 + 1.0 * 0.004445)).abs() < 1e-12);
        assert_eq!(c.idle_share, 0.0, "no load measured: nothing known to be idle");
    }

    #[test]
    fn ecs_ec2_packs_tasks_within_the_eni_limit() {
        // m5.large: 2 vCPU, 8 GiB, 3 ENIs: cpu allows 8 tasks of 256, memory 16, ENIs 2.
        let c = ecs_ec2(TierId::EcsAwsvpc, 256, 512, "m5.large", 5, &load(5, 60.0, 10.0, 0.0), &pricing()).unwrap();
        assert_eq!(c.items[0].quantity, 3.0 / 60.0, "ceil(5 / 2) = 3 instances for one minute");
        let e = ecs_ec2(TierId::EcsAwsvpc, 4096, 512, "m5.large", 1, &load(1, 60.0, 1.0, 0.0), &pricing());
        assert!(e.unwrap_err().to_string().contains("does not fit"));
    }

    #[test]
    fn lambda_bills_requests_duration_and_init() {
        let b = Billed { invokes: 2000.0, invoke_mb_ms: 2000.0 * 2.0 * 256.0, init_ms: 12.0 };
        let c =
            lambda(TierId::LambdaShared, 256, Architecture::X86_64, &b, &load(4, 10.0, 200.0, 0.0), &pricing(), false)
                .unwrap();
        let gb_s = (2000.0 * 2.0 + 12.0) * 0.25 / 1000.0;
        let run = 2000.0 / 1e6 * 0.20 + gb_s * 0.0000166667;
        assert!((c.run_usd - run).abs() < 1e-15);
        assert!((c.monthly_usd - run * 200.0 * MONTH_SECONDS / 2000.0).abs() < 1e-9);
        assert_eq!(c.idle_share, 0.0);
        assert!((c.per_million_requests_usd - run / 2000.0 * 1e6).abs() < 1e-9);
    }

    #[test]
    fn a_missing_price_names_the_tier_and_key() {
        let mut p = pricing();
        p.prices.remove("lambda.requests");
        let b = Billed { invokes: 1.0, invoke_mb_ms: 1.0, init_ms: 0.0 };
        let e = lambda(TierId::LambdaPerTenant, 128, Architecture::X86_64, &b, &load(1, 1.0, 1.0, 0.0), &p, false)
            .unwrap_err();
        assert_eq!(
            e,
            CostError::MissingPrice {
                tier: "lambda-per-tenant".into(),
                key: "lambda.requests".into(),
                table: "built-in (us-east-1)".into()
            }
        );
        assert!(e.to_string().starts_with("tier lambda-per-tenant needs the price `lambda.requests`"), "{e}");
    }
    #[test]
    fn arm64_fargate_and_lambda_use_the_arm_prices() {
        // Fargate, Linux/arm: $0.03238 per vCPU-hour, $0.00356 per GB-hour; 2 tasks of 0.5 vCPU
        // and 1 GB for an hour: 2 × (0.5 × 0.03238 + 1 × 0.00356) = $0.03950.
        let c = fargate(TierId::EcsAwsvpc, 512, 1024, Architecture::Arm64, 2, &load(2, 3600.0, 10.0, 0.0), &pricing())
            .unwrap();
        assert!((c.run_usd - 0.03950).abs() < 1e-12, "{}", c.run_usd);
        assert!((c.monthly_usd - 720.0 * 0.03950).abs() < 1e-9, "{}", c.monthly_usd);
        assert_eq!(c.items[0].price, "fargate.vcpu-arm64");
        assert_eq!(c.items[1].price, "fargate.gb-arm64");
        assert!(c.formula.starts_with("one Fargate task per tenant on arm64: "), "{}", c.formula);
        // Lambda, arm: 2,000 requests at $0.20 per million = $0.0004; (2,000 × 2 ms + 12 ms INIT)
        // × 0.25 GB = 1.003 GB-s at $0.0000133334 = $0.0000133734; run = $0.0004133734.
        let b = Billed { invokes: 2000.0, invoke_mb_ms: 2000.0 * 2.0 * 256.0, init_ms: 12.0 };
        let c =
            lambda(TierId::LambdaShared, 256, Architecture::Arm64, &b, &load(4, 10.0, 200.0, 0.0), &pricing(), false)
                .unwrap();
        assert!((c.run_usd - 0.0004133734).abs() < 1e-12, "{}", c.run_usd);
        assert_eq!(c.items[1].price, "lambda.gb-second-arm64");
        // Cheaper than the same on x86_64 (1.003 GB-s × $0.0000166667).
        let x86 =
            lambda(TierId::LambdaShared, 256, Architecture::X86_64, &b, &load(4, 10.0, 200.0, 0.0), &pricing(), false)
                .unwrap();
        assert!((x86.run_usd - c.run_usd - 1.003 * (0.0000166667 - 0.0000133334)).abs() < 1e-15);
    }

    #[test]
    fn the_plan_is_priced_at_the_tiers_architecture() {
        use std::path::Path;

        use isobench_core::plan::{Overrides, Plan};
        use isobench_core::scenario::Scenario;
        let src = |aws: &str| {
            format!(
                "format_version = 1\nname = \"a\"\n[run]\nduration = \"10s\"\nrate = 10\n[tenants]\ncount = 2\n\
                 [[tier]]\nid = \"lambda-shared\"\n[[tier]]\nid = \"ecs-awsvpc\"\nlaunch_type = \"fargate\"\n{aws}"
            )
        };
        let keys = |aws: &str| {
            let s = Scenario::parse(&src(aws), Path::new("a.toml")).unwrap();
            let plan = Plan::new("r".into(), s, "h".into(), &Overrides::default());
            let mut keys = Vec::new();
            for (_, c) in project(&plan, &pricing()).unwrap() {
                keys.extend(c.cost.items.into_iter().map(|i| i.price));
            }
            keys
        };
        assert_eq!(
            keys("[aws]\narchitecture = \"arm64\"\n"),
            ["lambda.requests", "lambda.gb-second-arm64", "fargate.vcpu-arm64", "fargate.gb-arm64"]
        );
        assert_eq!(
            keys(""),
            ["lambda.requests", "lambda.gb-second-x86_64", "fargate.vcpu-x86_64", "fargate.gb-x86_64"]
        );
    }
}
