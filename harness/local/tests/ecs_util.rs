//! Helpers for the `ecs-awsvpc` tests: plans from the shipped scenarios, and reading the
//! metadata documents. The calls made from *inside* a task's (or the harness's) network
//! namespace are `isobench_testkit`'s `netns` and `http`.

#![allow(dead_code)]

use std::path::Path;

use isobench_core::plan::{Overrides, Plan, TierPlan};
use isobench_core::scenario::Scenario;
use isobench_core::tier::TierId;
use isobench_testkit::scenario::scenarios_dir;

/// The `ecs-awsvpc` tier of a scenario text, with `tenants` tenants (`t0`, `t1`, ...).
pub fn ecs_plan_from(run: &str, src: &str, tenants: usize) -> TierPlan {
    let ids: Vec<String> = (0..tenants).map(|i| format!("\"t{i}\"")).collect();
    let mut doc: Vec<String> = Vec::new();
    let mut in_tenants = false;
    for line in src.lines() {
        if line.trim_start().starts_with('[') {
            in_tenants = line.trim() == "[tenants]";
            doc.push(line.to_string());
            if in_tenants {
                doc.push(format!("count = {tenants}\nids = [{}]", ids.join(", ")));
            }
            continue;
        }
        if !in_tenants {
            doc.push(line.to_string());
        }
    }
    let scenario = Scenario::parse(&doc.join("\n"), Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::new(run.to_string(), scenario, "test".into(), &Overrides::default());
    plan.tiers.into_iter().find(|t| t.tier == TierId::EcsAwsvpc).expect("the scenario has an ecs-awsvpc tier")
}

/// The `ecs-awsvpc` tier of `scenarios/<file>`, with `tenants` tenants.
pub fn ecs_plan(run: &str, file: &str, tenants: usize) -> TierPlan {
    let src = std::fs::read_to_string(scenarios_dir().join(file)).expect("scenario file");
    ecs_plan_from(run, &src, tenants)
}

/// `scenarios/ecs.toml`'s ECS tier with its `[tier.container_instance]` and launch type
/// replaced by `launch` (a TOML fragment such as `launch_type = "fargate"`).
pub fn ecs_plan_with(run: &str, tenants: usize, launch: &str) -> TierPlan {
    let src = std::fs::read_to_string(scenarios_dir().join("ecs.toml")).unwrap();
    let (head, _) = src.split_once("launch_type = \"ec2\"").unwrap();
    let (_, groups) = src.split_once("[tier.task_definition]").unwrap();
    let (groups, _) = groups.split_once("[tier.container_instance]").unwrap();
    ecs_plan_from(run, &format!("{head}{launch}\n[tier.task_definition]{groups}"), tenants)
}

/// A string field of a flat JSON object (the metadata documents are flat).
pub fn json_field(body: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get(key)?.as_str().map(str::to_string)
}
