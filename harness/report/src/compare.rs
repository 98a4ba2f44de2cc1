//! Comparing a run with a baseline, as CI reads it: a Markdown diff (a table per tier: base,
//! new, change, threshold, verdict) and the list of failed checks.
//!
//! Thresholds: built-in defaults, then a thresholds file's `[default]`, then the caller's
//! overrides (the command's flags), then the file's `[tier.<id>]` overrides for that tier.
//! Latency changes smaller than an absolute floor (`min_latency_change`, default 50 µs) never
//! fail, since CI compares noisy runs. Always on: a tier missing from NEW, a probe cell of BASE
//! missing from NEW, a cell that is now `leak`, `risk` or `inconclusive` (was anything else or absent),
//! cost figures BASE had and NEW lost, a share of errors or timeouts in NEW above its threshold,
//! a NEW run that did not complete, and a changed scenario unless allowed. Summaries of another
//! schema version are refused: refresh the baseline (`results/baselines/README.md`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use isobench_results::{RunStatus, SUMMARY_FILE, Summary, TierSummary, Verdict};
use serde::Deserialize;

use crate::error::InputError;

/// The thresholds-file format this build reads.
pub const THRESHOLDS_VERSION: u32 = 1;

/// Thresholds for one tier; percentages as fractions (0.1 = 10 %).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub p99_increase: f64,
    pub p999_increase: f64,
    pub throughput_drop: f64,
    pub cost_increase: f64,
    pub min_latency_change_us: f64,
    /// Most errors (of any kind) may be of the requests NEW sent.
    pub error_share: f64,
    /// Most timeouts may be of the requests NEW sent.
    pub timeout_share: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            p99_increase: 0.10,
            p999_increase: 0.20,
            throughput_drop: 0.05,
            cost_increase: 0.10,
            min_latency_change_us: 50.0,
            error_share: 0.01,
            timeout_share: 0.01,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholdsFile {
    format_version: u32,
    #[serde(default)]
    default: RawThresholds,
    #[serde(default)]
    tier: BTreeMap<String, RawThresholds>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    max_p99_increase: Option<String>,
    max_p999_increase: Option<String>,
    max_throughput_drop: Option<String>,
    max_cost_increase: Option<String>,
    min_latency_change: Option<String>,
    max_error_share: Option<String>,
    max_timeout_share: Option<String>,
}

/// Per-tier thresholds after every source is applied.
#[derive(Debug, Clone, Default)]
pub struct ThresholdSet {
    pub default: Thresholds,
    pub tiers: BTreeMap<String, Thresholds>,
    /// Compare runs of different scenarios (a changed file) without failing.
    pub allow_scenario_change: bool,
}

impl ThresholdSet {
    /// The thresholds of the tier called `tier`: its own `[tier.NAME]`, else its id's.
    pub fn for_tier(&self, tier: &str) -> Thresholds {
        self.tiers.get(tier).copied().unwrap_or(self.default)
    }

    /// [`ThresholdSet::for_tier`] for a summary's tier: by its name, then by its id.
    pub fn for_summary(&self, t: &isobench_results::TierSummary) -> Thresholds {
        self.tiers.get(&t.tier).or_else(|| self.tiers.get(t.tier_id())).copied().unwrap_or(self.default)
    }
}

/// Thresholds given beside the file (the command's flags); each beats the file's `[default]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThresholdOverrides {
    pub p99_increase: Option<f64>,
    pub p999_increase: Option<f64>,
    pub throughput_drop: Option<f64>,
    pub cost_increase: Option<f64>,
    pub min_latency_change: Option<Duration>,
    pub error_share: Option<f64>,
    pub timeout_share: Option<f64>,
}

/// A thresholds file that cannot be used: where (the file, with a line when known, or a
/// table) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct ThresholdsError {
    pub at: String,
    pub problem: String,
}

/// `10%` → 0.1. A bare number is refused, as durations without a unit are.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let accepted = "a percentage with `%`, 0 or more (e.g. `10%`, `2.5%`)";
    let n = s
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("`{s}` has no `%`; accepted: {accepted}"))?
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("`{s}` is not a number; accepted: {accepted}"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{s}` is out of range; accepted: {accepted}"));
    }
    Ok(n / 100.0)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    isobench_core::units::parse_duration(s).map_err(|e| e.to_string())
}

/// Applies one table of the file (`default` or `tier.<id>`); the error names the field.
fn apply(t: &mut Thresholds, r: &RawThresholds, at: &str) -> Result<(), String> {
    let pct = |v: &Option<String>, field: &str| -> Result<Option<f64>, String> {
        v.as_deref().map(parse_percent).transpose().map_err(|e| format!("{at}.{field}: {e}"))
    };
    if let Some(v) = pct(&r.max_p99_increase, "max_p99_increase")? {
        t.p99_increase = v;
    }
    if let Some(v) = pct(&r.max_p999_increase, "max_p999_increase")? {
        t.p999_increase = v;
    }
    if let Some(v) = pct(&r.max_throughput_drop, "max_throughput_drop")? {
        t.throughput_drop = v;
    }
    if let Some(v) = pct(&r.max_cost_increase, "max_cost_increase")? {
        t.cost_increase = v;
    }
    if let Some(v) = pct(&r.max_error_share, "max_error_share")? {
        t.error_share = v;
    }
    if let Some(v) = pct(&r.max_timeout_share, "max_timeout_share")? {
        t.timeout_share = v;
    }
    if let Some(v) = &r.min_latency_change {
        t.min_latency_change_us =
            parse_duration(v).map_err(|e| format!("{at}.min_latency_change: {e}"))?.as_secs_f64() * 1e6;
    }
    Ok(())
}

/// Builds the thresholds from the file (if any) and the overrides.
pub fn thresholds(file: Option<&Path>, overrides: &ThresholdOverrides) -> Result<ThresholdSet, ThresholdsError> {
    let file = file.map(|p| read_thresholds_file(p).map(|raw| (p.display().to_string(), raw))).transpose()?;
    let mut default = Thresholds::default();
    if let Some((name, raw)) = &file {
        apply(&mut default, &raw.default, "default")
            .map_err(|problem| ThresholdsError { at: name.clone(), problem })?;
    }
    apply_overrides(&mut default, overrides);
    let mut tiers = BTreeMap::new();
    if let Some((name, raw)) = &file {
        for (tier, r) in &raw.tier {
            // A tier's name (`[[tier]] name`) is a slug the file cannot check against a run.
            if tier.parse::<isobench_core::TierId>().is_err() && !is_tier_name(tier) {
                return Err(ThresholdsError {
                    at: name.clone(),
                    problem: format!(
                        "[tier.{tier}]: unknown tier; accepted: a tier id ({}) or a tier's name (lowercase letters, \
                         digits and `-`)",
                        isobench_core::TierId::accepted()
                    ),
                });
            }
            let mut t = default;
            apply(&mut t, r, &format!("tier.{tier}"))
                .map_err(|problem| ThresholdsError { at: name.clone(), problem })?;
            tiers.insert(tier.clone(), t);
        }
    }
    Ok(ThresholdSet { default, tiers, allow_scenario_change: false })
}

/// What a scenario accepts as a tier's `name`.
fn is_tier_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
}

fn read_thresholds_file(p: &Path) -> Result<RawThresholdsFile, ThresholdsError> {
    let at = p.display().to_string();
    let text = std::fs::read_to_string(p)
        .map_err(|e| ThresholdsError { at: at.clone(), problem: format!("cannot read the file: {e}") })?;
    let raw: RawThresholdsFile = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
        ThresholdsError {
            at: format!("{at}{}", line.map_or(String::new(), |l| format!(":{l}"))),
            problem: e.message().to_string(),
        }
    })?;
    if raw.format_version != THRESHOLDS_VERSION {
        return Err(ThresholdsError {
            at,
            problem: format!(
                "format version {} is not supported; accepted: format_version = {THRESHOLDS_VERSION}",
                raw.format_version
            ),
        });
    }
    Ok(raw)
}

fn apply_overrides(t: &mut Thresholds, o: &ThresholdOverrides) {
    if let Some(v) = o.p99_increase {
        t.p99_increase = v;
    }
    if let Some(v) = o.p999_increase {
        t.p999_increase = v;
    }
    if let Some(v) = o.throughput_drop {
        t.throughput_drop = v;
    }
    if let Some(v) = o.cost_increase {
        t.cost_increase = v;
    }
    if let Some(v) = o.error_share {
        t.error_share = v;
    }
    if let Some(v) = o.timeout_share {
        t.timeout_share = v;
    }
    if let Some(v) = o.min_latency_change {
        t.min_latency_change_us = v.as_secs_f64() * 1e6;
    }
}

/// Reads a results directory's or a file's summary; only this build's schema version.
pub fn read_summary(path: &Path) -> Result<Summary, InputError> {
    let file = if path.is_dir() { path.join(SUMMARY_FILE) } else { path.to_path_buf() };
    let accepted = "a results directory or its summary.json";
    let bad = |problem: String| InputError::new(&file, problem);
    let text = std::fs::read_to_string(&file).map_err(|e| bad(format!("cannot read: {e}; accepted: {accepted}")))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}; accepted: {accepted}")))?;
    // Checked before the full parse, so a summary of another layout gets the clear message.
    let version = v.get("schema_version").and_then(|s| s.as_u64());
    if version != Some(isobench_results::SCHEMA_VERSION as u64) {
        return Err(bad(format!(
            "schema version {} cannot be compared by this build (schema {}); refresh the baseline \
             (results/baselines/README.md)",
            version.map_or("missing".into(), |v| v.to_string()),
            isobench_results::SCHEMA_VERSION
        )));
    }
    serde_json::from_value(v).map_err(|e| bad(format!("not an isobench summary: {e}")))
}

/// One compared figure.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub base: String,
    pub new: String,
    pub change: String,
    pub threshold: String,
    pub failed: bool,
}

/// The outcome of a comparison: per tier rows, and every failure in one line each.
#[derive(Debug, Default)]
pub struct Comparison {
    pub tiers: Vec<(String, Vec<Row>)>,
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

fn pct_change(base: f64, new: f64) -> f64 {
    if base == 0.0 { if new == 0.0 { 0.0 } else { f64::INFINITY } } else { (new - base) / base }
}

fn fmt_pct(x: f64) -> String {
    if x.is_infinite() { "new".into() } else { format!("{:+.1}%", x * 100.0) }
}

fn fmt_us(us: f64) -> String {
    if us < 1000.0 { format!("{us:.0} µs") } else { format!("{:.2} ms", us / 1e3) }
}

fn fmt_usd(x: f64) -> String {
    if x.abs() >= 0.01 { format!("${x:.2}") } else { format!("${x:.6}") }
}

/// Compares NEW against BASE.
pub fn compare(base: &Summary, new: &Summary, th: &ThresholdSet) -> Comparison {
    let mut c = Comparison::default();
    if base.scenario.hash != new.scenario.hash {
        let what = format!(
            "the scenarios differ (base `{}` sha256 {}…, new `{}` sha256 {}…)",
            base.scenario.name,
            &base.scenario.hash[..12.min(base.scenario.hash.len())],
            new.scenario.name,
            &new.scenario.hash[..12.min(new.scenario.hash.len())]
        );
        if th.allow_scenario_change {
            c.notes.push(format!("{what}; allowed, but figures may not be comparable"));
        } else {
            c.failures.push(format!("{what}: refresh the baseline, or pass --allow-scenario-change to compare anyway"));
        }
    }
    if new.status != RunStatus::Complete {
        c.failures.push(format!("the new run did not complete ({:?})", new.status));
    }
    for b in &base.tiers {
        let Some(n) = new.tiers.iter().find(|t| t.tier == b.tier) else {
            c.failures.push(format!("{}: tier missing from the new run", b.tier));
            c.tiers.push((b.tier.clone(), Vec::new()));
            continue;
        };
        let rows = compare_tier(b, n, &th.for_summary(b));
        for r in rows.iter().filter(|r| r.failed) {
            c.failures.push(format!(
                "{}: {} {} → {} ({}; threshold {})",
                b.tier, r.metric, r.base, r.new, r.change, r.threshold
            ));
        }
        c.tiers.push((b.tier.clone(), rows));
    }
    for n in new.tiers.iter().filter(|n| !base.tiers.iter().any(|b| b.tier == n.tier)) {
        c.notes.push(format!("tier {} is new (not in the baseline); not compared", n.tier));
    }
    c
}

fn compare_tier(b: &TierSummary, n: &TierSummary, t: &Thresholds) -> Vec<Row> {
    let mut rows = Vec::new();
    for (metric, bv, nv, max) in [
        ("p99 (corrected)", b.latency.corrected.p99_us, n.latency.corrected.p99_us, t.p99_increase),
        ("p99.9 (corrected)", b.latency.corrected.p999_us, n.latency.corrected.p999_us, t.p999_increase),
    ] {
        let ch = pct_change(bv, nv);
        rows.push(Row {
            metric: metric.into(),
            base: fmt_us(bv),
            new: fmt_us(nv),
            change: fmt_pct(ch),
            threshold: format!("≤ +{:.0}% or < {}", max * 100.0, fmt_us(t.min_latency_change_us)),
            failed: ch > max && nv - bv >= t.min_latency_change_us,
        });
    }
    let rate = |s: &TierSummary| if s.duration_s > 0.0 { s.traffic.ok as f64 / s.duration_s } else { 0.0 };
    let (bt, nt) = (rate(b), rate(n));
    let ch = pct_change(bt, nt);
    rows.push(Row {
        metric: "throughput (ok req/s)".into(),
        base: format!("{bt:.1}"),
        new: format!("{nt:.1}"),
        change: fmt_pct(ch),
        threshold: format!("≥ −{:.0}%", t.throughput_drop * 100.0),
        failed: ch < -t.throughput_drop,
    });
    match (&b.cost, &n.cost) {
        (Some(bc), Some(nc)) => {
            for (metric, bv, nv) in [
                ("monthly cost", bc.monthly_usd, nc.monthly_usd),
                ("cost per M requests", bc.per_million_requests_usd, nc.per_million_requests_usd),
            ] {
                let ch = pct_change(bv, nv);
                rows.push(Row {
                    metric: metric.into(),
                    base: fmt_usd(bv),
                    new: fmt_usd(nv),
                    change: fmt_pct(ch),
                    threshold: format!("≤ +{:.0}%", t.cost_increase * 100.0),
                    failed: ch > t.cost_increase,
                });
            }
        }
        (Some(_), None) => rows.push(Row {
            metric: "cost".into(),
            base: "costed".into(),
            new: "—".into(),
            change: "lost".into(),
            threshold: "cost figures kept".into(),
            failed: true,
        }),
        (None, Some(_)) => rows.push(Row {
            metric: "cost".into(),
            base: "—".into(),
            new: "costed".into(),
            change: "not compared".into(),
            threshold: "—".into(),
            failed: false,
        }),
        (None, None) => {}
    }
    rows.extend(shares(n, t));
    for cell in b.probes.iter().filter(|c| !n.probes.iter().any(|p| p.probe == c.probe)) {
        rows.push(Row {
            metric: format!("probe {}", cell.probe),
            base: cell.verdict.to_string(),
            new: "not run".into(),
            change: "missing".into(),
            threshold: "every cell of the baseline".into(),
            failed: true,
        });
    }
    for cell in &n.probes {
        let before = b.probes.iter().find(|p| p.probe == cell.probe).map(|p| p.verdict);
        let is_new = |v: Verdict| cell.verdict == v && before != Some(v);
        let failed = is_new(Verdict::Leak) || is_new(Verdict::Risk) || is_new(Verdict::Inconclusive);
        if failed || before.is_some_and(|v| v != cell.verdict) {
            rows.push(Row {
                metric: format!("probe {}", cell.probe),
                base: before.map_or("not run", Verdict::as_str).into(),
                new: cell.verdict.to_string(),
                change: if failed { format!("new {}", cell.verdict) } else { "changed".into() },
                threshold: "no new leak, risk or inconclusive".into(),
                failed,
            });
        }
    }
    rows
}

/// NEW's share of errors and of timeouts among the requests it sent, against their limits.
fn shares(n: &TierSummary, t: &Thresholds) -> Vec<Row> {
    let sent = n.traffic.sent;
    let share = |k: u64| if sent == 0 { 0.0 } else { k as f64 / sent as f64 };
    [("error share", n.traffic.errors, t.error_share), ("timeout share", n.traffic.timeouts, t.timeout_share)]
        .into_iter()
        .map(|(metric, k, max)| Row {
            metric: metric.into(),
            base: "—".into(),
            new: format!("{k} of {sent} ({:.2}%)", share(k) * 100.0),
            change: "—".into(),
            threshold: format!("≤ {:.2}%", max * 100.0),
            failed: share(k) > max,
        })
        .collect()
}

/// The Markdown diff.
pub fn markdown(c: &Comparison, base: &Summary, new: &Summary, base_path: &Path, new_path: &Path) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# isobench compare\n");
    let _ = writeln!(
        o,
        "Base: run `{}` ({}), new: run `{}` ({}).\n",
        base.run_id,
        base_path.display(),
        new.run_id,
        new_path.display()
    );
    if c.failures.is_empty() {
        let _ = writeln!(o, "**Result: pass**\n");
    } else {
        let _ = writeln!(o, "**Result: REGRESSION** ({} check(s) failed)\n", c.failures.len());
        for f in &c.failures {
            let _ = writeln!(o, "- {f}");
        }
        o.push('\n');
    }
    for n in &c.notes {
        let _ = writeln!(o, "> {n}\n");
    }
    for (tier, rows) in &c.tiers {
        let _ = writeln!(o, "## {tier}\n");
        if rows.is_empty() {
            let _ = writeln!(o, "Missing from the new run: **REGRESSION**\n");
            continue;
        }
        let _ = writeln!(o, "| metric | base | new | change | threshold | verdict |\n|---|---|---|---|---|---|");
        for r in rows {
            let verdict = if r.failed { "**REGRESSION**" } else { "ok" };
            let _ =
                writeln!(o, "| {} | {} | {} | {} | {} | {verdict} |", r.metric, r.base, r.new, r.change, r.threshold);
        }
        o.push('\n');
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Summary {
        let text = include_str!("../../../results/bench/leakage/summary.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn percentages_need_their_sign() {
        assert_eq!(parse_percent("10%"), Ok(0.1));
        assert!(parse_percent("10").unwrap_err().contains("has no `%`"));
        assert!(parse_percent("-1%").is_err());
    }

    #[test]
    fn thresholds_file_default_then_flags_then_file_tiers() {
        let dir = std::env::temp_dir().join(format!("isobench-th-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.toml");
        let text = "format_version = 1\n[default]\nmax_p99_increase = \"30%\"\nmax_cost_increase = \"1%\"\n\
                    [tier.lambda-shared]\nmax_p99_increase = \"80%\"\nmin_latency_change = \"1ms\"\n";
        std::fs::write(&path, text).unwrap();
        let overrides = ThresholdOverrides { p99_increase: Some(0.2), ..ThresholdOverrides::default() };
        let th = thresholds(Some(&path), &overrides);
        std::fs::remove_dir_all(&dir).unwrap();
        let th = th.unwrap();
        assert_eq!(th.default.p99_increase, 0.2, "a flag beats the file's default");
        assert_eq!(th.default.cost_increase, 0.01, "the file's default beats the built-in one");
        let l = th.for_tier("lambda-shared");
        assert_eq!((l.p99_increase, l.min_latency_change_us, l.cost_increase), (0.8, 1000.0, 0.01));
        assert_eq!(th.for_tier("silo-ec2"), th.default);
    }

    #[test]
    fn identical_runs_pass() {
        let s = base();
        let c = compare(&s, &s, &ThresholdSet::default());
        assert!(c.failures.is_empty(), "{:?}", c.failures);
        assert_eq!(c.tiers.len(), 6);
    }

    #[test]
    fn small_latency_changes_are_noise() {
        let s = base();
        let mut n = s.clone();
        // +40 µs on a sub-millisecond p99 is over 10 % but under the 50 µs floor.
        n.tiers[0].latency.corrected.p99_us += 40.0;
        assert!(compare(&s, &n, &ThresholdSet::default()).failures.is_empty());
        n.tiers[0].latency.corrected.p99_us += 5000.0;
        let c = compare(&s, &n, &ThresholdSet::default());
        assert_eq!(c.failures.len(), 1, "{:?}", c.failures);
        assert!(c.failures[0].starts_with("silo-ec2: p99 (corrected)"), "{:?}", c.failures);
    }

    #[test]
    fn tiers_of_one_id_are_compared_by_name_and_take_their_ids_thresholds() {
        let mut s = base();
        let eks = |name: &str, from: &TierSummary| TierSummary {
            tier: name.into(),
            tier_id: Some("eks-pod".into()),
            ..from.clone()
        };
        s.tiers = vec![eks("eks-a", &s.tiers[0]), eks("eks-b", &s.tiers[0])];
        let mut n = s.clone();
        n.tiers[1].latency.corrected.p99_us *= 1.5;
        n.tiers[1].latency.corrected.p99_us += 100.0;
        let c = compare(&s, &n, &ThresholdSet::default());
        assert_eq!(c.failures.len(), 1, "{:?}", c.failures);
        assert!(c.failures[0].starts_with("eks-b: p99 (corrected)"), "{:?}", c.failures);
        // An id's thresholds apply to every tier of the id; a name's to that tier alone.
        let mut th = ThresholdSet::default();
        th.tiers.insert("eks-pod".into(), Thresholds { p99_increase: 1.0, ..Thresholds::default() });
        assert!(compare(&s, &n, &th).failures.is_empty());
        th.tiers.insert("eks-b".into(), Thresholds::default());
        assert_eq!(compare(&s, &n, &th).failures.len(), 1);
        assert!(is_tier_name("eks-ns-open") && !is_tier_name("Eks") && !is_tier_name("-x"));
    }

    #[test]
    fn a_per_tier_override_wins() {
        let s = base();
        let mut n = s.clone();
        n.tiers[0].latency.corrected.p99_us *= 1.5;
        n.tiers[0].latency.corrected.p99_us += 100.0;
        let mut th = ThresholdSet::default();
        th.tiers.insert("silo-ec2".into(), Thresholds { p99_increase: 1.0, ..Thresholds::default() });
        assert!(compare(&s, &n, &th).failures.is_empty());
    }

    #[test]
    fn missing_tier_and_new_inconclusive_fail() {
        let s = base();
        let mut n = s.clone();
        n.tiers.remove(1);
        n.tiers[0].probes[0].verdict = Verdict::Inconclusive;
        let f = compare(&s, &n, &ThresholdSet::default()).failures;
        assert!(f.iter().any(|f| f == "shared-ec2: tier missing from the new run"), "{f:?}");
        assert!(f.iter().any(|f| f.starts_with("silo-ec2: probe LK-TMP blocked → inconclusive")), "{f:?}");
        n.tiers[0].probes[1].verdict = Verdict::Risk;
        let f = compare(&s, &n, &ThresholdSet::default()).failures;
        assert!(f.iter().any(|f| f.starts_with("silo-ec2: probe LK-MEM blocked → risk")), "{f:?}");
    }

    #[test]
    fn a_missing_cell_and_lost_cost_fail() {
        let s = base();
        let mut n = s.clone();
        n.tiers[2].probes.retain(|c| c.probe != "LK-FD");
        let f = compare(&s, &n, &ThresholdSet::default()).failures;
        assert_eq!(f, ["ecs-awsvpc: probe LK-FD blocked → not run (missing; threshold every cell of the baseline)"]);
        let quick: Summary =
            serde_json::from_str(include_str!("../../../results/baselines/quick/summary.json")).unwrap();
        assert!(quick.tiers[1].cost.is_some());
        let mut n = quick.clone();
        n.tiers[1].cost = None;
        let f = compare(&quick, &n, &ThresholdSet::default()).failures;
        assert!(f.len() == 1 && f[0].starts_with("shared-ec2: cost costed → — (lost"), "{f:?}");
    }

    #[test]
    fn error_and_timeout_shares_above_their_limits_fail() {
        let s = base();
        let mut n = s.clone();
        let sent = n.tiers[0].traffic.sent;
        n.tiers[0].traffic.errors = sent / 50;
        n.tiers[1].traffic.timeouts = sent / 200;
        let f = compare(&s, &n, &ThresholdSet::default()).failures;
        assert_eq!(f.len(), 1, "2% errors fail, 0.5% timeouts do not: {f:?}");
        assert!(f[0].starts_with("silo-ec2: error share"), "{f:?}");
        let mut th = ThresholdSet::default();
        th.default.timeout_share = 0.001;
        th.default.error_share = 0.05;
        let f = compare(&s, &n, &th).failures;
        assert!(f.len() == 1 && f[0].starts_with("shared-ec2: timeout share"), "{f:?}");
    }

    #[test]
    fn a_changed_scenario_fails_unless_allowed() {
        let s = base();
        let mut n = s.clone();
        n.scenario.hash = "0".repeat(64);
        let f = compare(&s, &n, &ThresholdSet::default()).failures;
        assert!(f.len() == 1 && f[0].contains("--allow-scenario-change"), "{f:?}");
        let th = ThresholdSet { allow_scenario_change: true, ..ThresholdSet::default() };
        let c = compare(&s, &n, &th);
        assert!(c.failures.is_empty() && c.notes[0].contains("allowed"), "{:?}", c.notes);
    }
}
