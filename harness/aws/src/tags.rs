//! The tags every resource carries, and the names that carry the run id for anything a tag
//! query cannot find.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

pub const TOOL_KEY: &str = "isobench:tool";
pub const TOOL_VALUE: &str = "isobench";
pub const RUN_KEY: &str = "isobench:run-id";
pub const EXPIRES_KEY: &str = "isobench:expires-at";
pub const TIER_KEY: &str = "isobench:tier";
/// Every name the harness gives starts with this; IAM roles and profiles also live under this path.
pub const NAME_PREFIX: &str = "isobench-";
pub const IAM_PATH: &str = "/isobench/";

/// The tags of one run's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTags {
    pub run_id: String,
    pub expires_at: String,
}

impl RunTags {
    pub fn new(run_id: &str, now: SystemTime, lifetime: Duration) -> RunTags {
        RunTags {
            run_id: run_id.to_string(),
            expires_at: humantime::format_rfc3339_seconds(now + lifetime).to_string(),
        }
    }

    /// The tags of a resource of `tier` (or of the whole run).
    pub fn pairs(&self, tier: Option<&str>) -> Vec<(String, String)> {
        let mut v = vec![
            (TOOL_KEY.to_string(), TOOL_VALUE.to_string()),
            (RUN_KEY.to_string(), self.run_id.clone()),
            (EXPIRES_KEY.to_string(), self.expires_at.clone()),
        ];
        if let Some(t) = tier {
            v.push((TIER_KEY.to_string(), t.to_string()));
        }
        v
    }
}

/// A run id as it may appear in names that allow only lowercase (S3 buckets).
pub fn name_id(run_id: &str) -> String {
    run_id.to_ascii_lowercase()
}

/// Which found resources a sweep removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every resource of this run.
    Run(String),
    /// Every resource of the tool whose expiry passed.
    Expired(SystemTime),
    /// Every resource of the tool whose expiry has not passed (or cannot be read): what a
    /// sweep of the expired leaves, and lists.
    Unexpired(SystemTime),
}

impl Selector {
    /// Whether a resource with these tags (and this name) is selected. Without tags, the run id
    /// in the name decides (`--run` only): an untagged resource's expiry is unknown.
    pub fn selects(&self, tags: &BTreeMap<String, String>, name: &str) -> bool {
        let ours = tags.get(TOOL_KEY).is_some_and(|v| v == TOOL_VALUE);
        match self {
            Selector::Run(id) => match tags.get(RUN_KEY) {
                Some(r) => ours && r == id,
                None => name.starts_with(NAME_PREFIX) && name.to_ascii_lowercase().contains(&name_id(id)),
            },
            Selector::Expired(now) => ours && expired(tags, *now),
            Selector::Unexpired(now) => ours && !expired(tags, *now),
        }
    }
}

fn expired(tags: &BTreeMap<String, String>, now: SystemTime) -> bool {
    tags.get(EXPIRES_KEY).and_then(|e| humantime::parse_rfc3339(e).ok()).is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &RunTags) -> BTreeMap<String, String> {
        t.pairs(None).into_iter().collect()
    }

    #[test]
    fn selects_by_run_and_by_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t = RunTags::new("20270115T080000Z-abc123", now, Duration::from_secs(3600));
        assert_eq!(t.expires_at, "2027-01-15T09:00:00Z");
        let tg = tags(&t);
        assert!(Selector::Run("20270115T080000Z-abc123".into()).selects(&tg, "x"));
        assert!(!Selector::Run("other".into()).selects(&tg, "x"));
        assert!(!Selector::Expired(now).selects(&tg, "x"));
        assert!(Selector::Expired(now + Duration::from_secs(3600)).selects(&tg, "x"));
        assert!(Selector::Unexpired(now).selects(&tg, "x"));
        assert!(!Selector::Unexpired(now + Duration::from_secs(3600)).selects(&tg, "x"));
        // Someone else's resource with our run id in its tags but not our tool tag.
        let mut foreign = tg.clone();
        foreign.remove(TOOL_KEY);
        assert!(!Selector::Run("20270115T080000Z-abc123".into()).selects(&foreign, "x"));
    }

    #[test]
    fn untagged_resources_are_found_by_name_only_for_a_run() {
        let none = BTreeMap::new();
        assert!(Selector::Run("20270115T080000Z-ABC".into()).selects(&none, "isobench-20270115t080000z-abc"));
        assert!(!Selector::Run("20270115T080000Z-ABC".into()).selects(&none, "someone-20270115t080000z-abc"));
        assert!(!Selector::Expired(SystemTime::now()).selects(&none, "isobench-x"));
    }
}
