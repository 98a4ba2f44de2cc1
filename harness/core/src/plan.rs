//! The plan: a validated scenario with command-line overrides applied, split into one
//! [`TierPlan`] per tier. Everything a backend and the load driver need, and nothing else.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use crate::scenario::{IsolationFault, Scenario, TenantSpec, TierSettings, WorkloadSpec};
use crate::tier::TierId;
use crate::units::{Dur, Rate};

/// Command-line values that replace the scenario's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub seed: Option<u64>,
    pub duration: Option<Duration>,
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub run_id: String,
    pub scenario: Scenario,
    pub scenario_hash: String,
    pub tiers: Vec<TierPlan>,
}

/// What one tier needs deployed.
#[derive(Debug, Clone, Serialize)]
pub struct TierPlan {
    pub run_id: String,
    pub tier: TierId,
    /// The tier's name in the scenario (its id unless `[[tier]] name` says otherwise): what
    /// results, logs and resources key the tier by.
    pub name: String,
    pub settings: TierSettings,
    pub tenants: Vec<TenantSpec>,
    pub workload: WorkloadSpec,
    /// Address range the local backend may use for this tier.
    pub subnet: (Ipv4Addr, u8),
    /// The run's seed, for anything a backend randomises (fault draws, canaries' trial order).
    pub seed: u64,
    /// Isolation the local emulator breaks on purpose in this run (`[local] break_isolation`):
    /// a test of the probes and the CI gate, never a measurement of the tier.
    pub faults: Vec<IsolationFault>,
    /// The emulated account's Lambda concurrency, shared by every function of the run
    /// (`[local] lambda_account_concurrency`).
    pub lambda_account_concurrency: u32,
}

impl Plan {
    pub fn new(run_id: String, mut scenario: Scenario, scenario_hash: String, o: &Overrides) -> Plan {
        if let Some(seed) = o.seed {
            scenario.run.seed = seed;
            scenario.reseed_weights(seed);
        }
        if let Some(d) = o.duration {
            scenario.run.duration = Dur(d);
        }
        if let Some(r) = o.rate {
            scenario.run.rate = Rate(r);
        }
        let tiers = scenario
            .tiers
            .iter()
            .map(|t| TierPlan {
                run_id: run_id.clone(),
                tier: t.id,
                name: t.name.clone(),
                settings: t.settings.clone(),
                tenants: scenario.tenants.clone(),
                workload: scenario.workload.clone(),
                subnet: scenario.local.subnet,
                seed: scenario.run.seed,
                faults: scenario.local.break_isolation.clone(),
                lambda_account_concurrency: scenario.local.lambda_account_concurrency,
            })
            .collect();
        Plan { run_id, scenario, scenario_hash, tiers }
    }

    /// Checks the overrides the scenario could not check itself.
    pub fn check_overrides(o: &Overrides) -> Result<(), String> {
        if let Some(d) = o.duration
            && d.is_zero()
        {
            return Err("--duration must be more than 0s".into());
        }
        if let Some(r) = o.rate
            && !(r > 0.0 && r <= 10e6)
        {
            return Err(format!("--rate {r} is out of range; accepted: more than 0 and at most 10M requests/s"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_tier_plan_carries_its_settings_and_the_local_faults() {
        let src = "format_version = 1\nname = \"t\"\n[run]\nduration = \"5s\"\nrate = \"1k\"\n[tenants]\ncount = 3\n\
                   [local]\nbreak_isolation = [\"shared-tmp\"]\n\
                   [[tier]]\nid = \"silo-ec2\"\ninstance_type = \"t3.micro\"\n\
                   [[tier]]\nid = \"shared-ec2\"\ninstance_type = \"m5.large\"\n";
        let s = Scenario::parse(src, Path::new("s.toml")).unwrap();
        let plan = Plan::new("r".into(), s, "h".into(), &Overrides::default());
        assert!(plan.tiers.iter().all(|t| t.faults == [IsolationFault::SharedTmp]));
        let default = crate::scenario::ec2::default_network(TierId::SiloEc2);
        assert!(matches!(&plan.tiers[0].settings, TierSettings::Ec2(e) if e.network == default));
        let json = serde_json::to_string(&plan.tiers[0]).unwrap();
        assert!(json.contains("\"faults\":[\"shared-tmp\"]"), "{json}");
    }
}
