//! From a scenario file and the flags to a plan and its prices; every problem is bad input.

use std::path::Path;

use isobench_core::TierId;
use isobench_core::plan::{Overrides, Plan};
use isobench_core::scenario::{self, Scenario};
use isobench_cost::{Pricing, ProjectedCost};

use crate::args::PricingArgs;
use crate::errors::CliError;

/// The scenario and its text (for the summary and the hash).
pub fn load_scenario(path: &Path) -> Result<(Scenario, String), CliError> {
    Scenario::load(path).map_err(|e| CliError::BadInput(e.to_string()))
}

/// Keeps only the tiers named by `--tiers` (all when empty): a tier's name, or an id for every
/// tier with that id.
pub fn select_tiers(plan: &mut Plan, tiers: &[String], path: &Path) -> Result<(), CliError> {
    if tiers.is_empty() {
        return Ok(());
    }
    let mut wanted: Vec<String> = Vec::new();
    for name in tiers {
        let by_name = plan.tiers.iter().filter(|t| &t.name == name);
        let by_id = plan.tiers.iter().filter(|t| t.tier.as_str() == name);
        let found: Vec<String> = by_name.chain(by_id).map(|t| t.name.clone()).collect();
        if found.is_empty() {
            if name.parse::<TierId>().is_err() && plan.scenario.tier_named(name).is_none() {
                return Err(CliError::BadInput(format!(
                    "--tiers: unknown tier `{name}`; accepted: a tier name of {} or an id: {}",
                    path.display(),
                    TierId::accepted()
                )));
            }
            return Err(CliError::BadInput(format!(
                "--tiers: tier `{name}` is not in {}; it has: {}",
                path.display(),
                plan.tiers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        wanted.extend(found);
    }
    plan.tiers.retain(|t| wanted.contains(&t.name));
    Ok(())
}

/// Loads a scenario into a plan for `plan` (no run id yet: names show `{run}`), with the
/// scenario's text (to locate later problems in).
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub fn load_plan(path: &Path, tiers: &[String]) -> Result<(Plan, String), CliError> {
    let (scenario, src) = load_scenario(path)?;
    let mut plan = Plan::new("{run}".into(), scenario, scenario::hash(&src), &Overrides::default());
    select_tiers(&mut plan, tiers, path)?;
    Ok((plan, src))
}

/// The pricing table the flags ask for.
pub fn load_pricing(a: &PricingArgs) -> Result<Pricing, CliError> {
    Pricing::load(a.region.as_deref(), a.pricing.as_deref()).map_err(|e| CliError::BadInput(e.to_string()))
}

/// Projects the plan's cost, which fails, naming the tier and the key, when a price is missing:
/// called before anything is deployed.
pub fn check_prices(plan: &Plan, pricing: &Pricing) -> Result<Vec<(String, ProjectedCost)>, CliError> {
    isobench_cost::project(plan, pricing).map_err(|e| CliError::BadInput(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let src = "format_version = 1\nname = \"k\"\n[run]\nduration = \"1s\"\nrate = 10\n[tenants]\ncount = 2\n\
                   [[tier]]\nid = \"shared-ec2\"\ninstance_type = \"m5.large\"\n\
                   [[tier]]\nid = \"eks-pod\"\nname = \"eks-a\"\n[[tier]]\nid = \"eks-pod\"\nname = \"eks-b\"\n";
        let s = Scenario::parse(src, Path::new("k.toml")).unwrap();
        Plan::new("r".into(), s, "h".into(), &Overrides::default())
    }

    fn selected(args: &[&str]) -> Result<Vec<String>, CliError> {
        let mut p = plan();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        select_tiers(&mut p, &args, Path::new("k.toml"))?;
        Ok(p.tiers.into_iter().map(|t| t.name).collect())
    }

    #[test]
    fn tiers_are_selected_by_name_or_by_id() {
        assert_eq!(selected(&["eks-b"]).unwrap(), ["eks-b"]);
        assert_eq!(selected(&["eks-pod"]).unwrap(), ["eks-a", "eks-b"]);
        assert_eq!(selected(&["shared-ec2", "eks-a"]).unwrap(), ["shared-ec2", "eks-a"]);
        let e = selected(&["silo-ec2"]).unwrap_err().to_string();
        assert!(e.contains("is not in k.toml; it has: shared-ec2, eks-a, eks-b"), "{e}");
        let e = selected(&["eks-c"]).unwrap_err().to_string();
        assert!(e.contains("unknown tier `eks-c`"), "{e}");
    }
}
