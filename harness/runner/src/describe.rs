//! A plan in words, as `isobench validate` prints it before anything is deployed.

use std::fmt::Write;
use std::path::Path;

use isobench_core::plan::Plan;
use isobench_core::scenario::lambda::PayloadContract;
use isobench_core::scenario::{Scenario, TierSettings};

/// The scenario file, its tenants, tiers, arrivals and each tier's settings, one line each.
pub fn describe_plan(path: &Path, plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}: valid (format version {})", path.display(), plan.scenario.format_version);
    let run = &plan.scenario.run;
    let _ = writeln!(
        o,
        "  {} tenants, {} tiers, {} per tier at {} req/s ({:?}), timeout {}",
        plan.scenario.tenants.len(),
        plan.tiers.len(),
        run.duration,
        run.rate.0,
        run.arrival,
        run.timeout
    );
    let _ = writeln!(o, "  arrivals: {}", describe_arrivals(&plan.scenario));
    for t in &plan.tiers {
        let _ = writeln!(o, "  tier {:<24} {}", t.name, describe(&t.settings));
    }
    o
}

/// One line on the arrivals' shape and how many requests it plans per tier.
fn describe_arrivals(s: &Scenario) -> String {
    use isobench_core::arrivals::{Shape, TenantMix, TraceMap};
    let expected = isobench_load::Schedule::new(&isobench_load::LoadSpec::from_scenario("validate", s).schedule_spec())
        .expected_len();
    let a = &s.arrivals;
    let mix = match a.tenants {
        _ if a.trace.is_some() => "tenant shares from the trace".into(),
        TenantMix::Zipf => format!("Zipf tenant mix (s = {}, {:?} order)", a.zipf_s, a.zipf_order).to_lowercase(),
        TenantMix::Weights => "weighted tenant mix".into(),
    };
    let shape = match s.shape() {
        Shape::Steady => "steady rate".to_string(),
        Shape::Cycle { phases, burst } => format!(
            "{} phase(s) repeating{}",
            phases.len(),
            burst.map_or(String::new(), |b| format!(", bursts x{} for {} every {}", b.multiplier, b.length, b.period))
        ),
        Shape::Trace { minute, .. } => {
            let t = a.trace.as_ref().expect("a trace shape has a trace");
            let map = match t.map {
                TraceMap::Top => "top",
                TraceMap::RoundRobin => "round-robin",
            };
            format!("trace {} ({map} map, {} per trace minute)", t.file.display(), humantime::format_duration(minute))
        }
    };
    format!("{mix}, {shape}; {expected} requests expected per tier")
}

/// One line on a tier's settings.
fn describe(s: &TierSettings) -> String {
    match s {
        TierSettings::Ec2(e) => {
            let t = &e.instance_type;
            format!("instance type {} ({} vCPU, {} MiB)", t.name, t.vcpus, t.memory_mib)
        }
        TierSettings::Ecs(e) => format!(
            "{} launch type, task {} CPU units / {} MiB, {} security group template(s), IMDS {}",
            e.launch_type.as_str(),
            e.task_definition.cpu,
            e.task_definition.memory,
            e.network.security_groups.len(),
            if e.imds_reachable() { "reachable" } else { "unreachable" }
        ),
        TierSettings::Lambda(l) => format!(
            "{} MB, timeout {}, keep-alive {}{}, concurrency {}{}, code {}, {}",
            l.memory,
            l.timeout,
            l.keep_alive,
            l.max_lifetime.map_or(String::new(), |m| format!(", max lifetime {m}")),
            l.concurrency,
            l.reserved_concurrency.map_or(String::new(), |r| format!(", reserved {r}")),
            l.code.as_ref().map_or("the sample workload".into(), |c| c.display().to_string()),
            match l.response() {
                PayloadContract::WorkloadStatus => "response workload",
                PayloadContract::Opaque => "response any",
            }
        ),
        TierSettings::Eks(e) => format!(
            "{}, network policy {}, {}, pod {}m / {} MiB on {} nodes ({}), IMDS tokens {:?} hop limit {} (node role {}), \
             {}",
            e.pattern.as_str(),
            e.network_policy.as_str(),
            e.credentials.as_str(),
            e.pod.cpu_millis,
            e.pod.memory_mib,
            e.node.instance_type.name,
            e.node.count.map_or("as many as the pods need".to_string(), |n| format!("at least {n}")),
            e.node.http_tokens,
            e.node.http_put_response_hop_limit,
            if e.imds_reachable() { "reachable from pods" } else { "unreachable from pods" },
            match &e.security_groups {
                Some(n) => format!("{} security group template(s) for pods", n.security_groups.len()),
                None => "no security groups for pods".to_string(),
            }
        ),
    }
}
