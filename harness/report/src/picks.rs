//! Picks: three ways to choose a tier from one run's figures, as AWS Lambda Power Tuning offers
//! cost, speed and balanced: the **cheapest** tier meeting a p99 bound, the **fastest** within a
//! budget per tenant-month, and the **strongest isolation** within that budget. Each pick says
//! the numbers it rests on and, for every other tier, why it was ruled out.
//!
//! Every number in a pick is a field of `summary.json`: p99 is `tiers[].latency.corrected.p99_us`,
//! the cost per tenant-month `tiers[].cost.per_tenant_usd`, per million requests
//! `tiers[].cost.per_million_requests_usd` (both modelled), the bounds `picks.p99_us` and
//! `picks.budget_per_tenant_month_usd`; leak findings are `tiers[].probes[]` ids by verdict.
//!
//! Isolation strength is ranked by what this run observed, nothing else: fewer observed leaks
//! is stronger; at equal leaks, fewer risks (resources shared by design); then fewer
//! inconclusive cells. Emulator-limit and not-applicable cells do not count (they say nothing
//! about the tier). Tiers equal on all three are equally strong, and the pick says so; it then
//! takes the cheaper. A tier without probe cells is not ranked (its isolation is unknown).
//!
//! [`candidates`] and [`pick`] take plain figures, so a sweep can pick over its own runs.

use isobench_results::{Summary, Verdict};

use crate::text::ms;
use crate::verdict::usd;

/// A tier's figures, as the picks compare them.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub tier: String,
    /// `latency.corrected.p99_us`.
    pub p99_us: f64,
    /// `cost.per_tenant_usd` (modelled).
    pub per_tenant_month_usd: f64,
    /// `cost.per_million_requests_usd` (modelled).
    pub per_million_usd: f64,
    /// Probe ids whose verdict is `leak`, `risk`, `inconclusive`.
    pub leaks: Vec<String>,
    pub risks: Vec<String>,
    pub inconclusive: Vec<String>,
    /// Whether any probe ran on the tier; an unprobed tier is never the strongest.
    pub probed: bool,
}

/// How to choose; `None` bounds range over every tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Cheapest { p99_bound_us: Option<f64> },
    Fastest { budget_per_tenant_month_usd: Option<f64> },
    Strongest { budget_per_tenant_month_usd: Option<f64> },
}

/// A choice with its reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub strategy: Strategy,
    pub chosen: Option<String>,
    /// The chosen tier's figures, or why nothing was chosen.
    pub because: String,
    /// Every other tier and why it lost.
    pub ruled_out: Vec<(String, String)>,
}

/// The run's tiers that can be compared: those with a cost and ok requests, in run order.
pub fn candidates(s: &Summary) -> Vec<Candidate> {
    s.tiers
        .iter()
        .filter(|t| t.latency.corrected.count > 0)
        .filter_map(|t| {
            let c = t.cost.as_ref()?;
            let ids = |v: Verdict| t.probes.iter().filter(|p| p.verdict == v).map(|p| p.probe.clone()).collect();
            Some(Candidate {
                tier: t.tier.clone(),
                p99_us: t.latency.corrected.p99_us,
                per_tenant_month_usd: c.per_tenant_usd,
                per_million_usd: c.per_million_requests_usd,
                leaks: ids(Verdict::Leak),
                risks: ids(Verdict::Risk),
                inconclusive: ids(Verdict::Inconclusive),
                probed: !t.probes.is_empty(),
            })
        })
        .collect()
}

/// The three picks of a run, under its `[picks]` bounds; tiers that could not be compared are
/// ruled out with the reason.
pub fn picks(s: &Summary) -> Vec<Pick> {
    let cands = candidates(s);
    let bounds = s.picks.unwrap_or_default();
    let budget = bounds.budget_per_tenant_month_usd;
    let strategies = [
        Strategy::Cheapest { p99_bound_us: bounds.p99_us },
        Strategy::Fastest { budget_per_tenant_month_usd: budget },
        Strategy::Strongest { budget_per_tenant_month_usd: budget },
    ];
    let left_out: Vec<(String, String)> = s
        .tiers
        .iter()
        .filter(|t| !cands.iter().any(|c| c.tier == t.tier))
        .map(|t| {
            let why = if t.cost.is_none() { "not costed" } else { "no ok request, so no latency" };
            (t.tier.clone(), why.to_string())
        })
        .collect();
    strategies
        .iter()
        .map(|st| {
            let mut p = pick(&cands, st);
            p.ruled_out.extend(left_out.iter().cloned());
            p
        })
        .collect()
}

/// Chooses among `cands` by `s`.
pub fn pick(cands: &[Candidate], s: &Strategy) -> Pick {
    if cands.is_empty() {
        let because = "no tier to compare: none has both a cost and ok requests".to_string();
        return Pick { strategy: *s, chosen: None, because, ruled_out: vec![] };
    }
    match *s {
        Strategy::Cheapest { p99_bound_us } => cheapest(cands, p99_bound_us, *s),
        Strategy::Fastest { budget_per_tenant_month_usd } => fastest(cands, budget_per_tenant_month_usd, *s),
        Strategy::Strongest { budget_per_tenant_month_usd } => strongest(cands, budget_per_tenant_month_usd, *s),
    }
}

impl Strategy {
    /// `cheapest with p99 ≤ 5.00ms`, or what the pick ranges over without a bound.
    pub fn label(&self) -> String {
        match *self {
            Strategy::Cheapest { p99_bound_us: Some(b) } => format!("cheapest with p99 ≤ {}", ms(b)),
            Strategy::Cheapest { p99_bound_us: None } => {
                "cheapest (no p99 bound set: the cheapest tier overall)".into()
            }
            Strategy::Fastest { budget_per_tenant_month_usd: Some(b) } => {
                format!("fastest within {} per tenant-month", usd(b))
            }
            Strategy::Fastest { budget_per_tenant_month_usd: None } => {
                "fastest (no budget set: the fastest tier overall)".into()
            }
            Strategy::Strongest { budget_per_tenant_month_usd: Some(b) } => {
                format!("strongest isolation within {} per tenant-month", usd(b))
            }
            Strategy::Strongest { budget_per_tenant_month_usd: None } => {
                "strongest isolation (no budget set: the strongest tier overall)".into()
            }
        }
    }
}

/// `$7.49 per tenant-month ($0.0385 per million requests), p99 716µs`.
fn figures(c: &Candidate) -> String {
    format!(
        "{} per tenant-month ({} per million requests, modelled), p99 {}",
        usd(c.per_tenant_month_usd),
        usd(c.per_million_usd),
        ms(c.p99_us)
    )
}

/// `leaks LK-TMP, LK-MEM observed; risks LK-PRINCIPAL`, or `no leak observed`.
fn findings(c: &Candidate) -> String {
    if !c.probed {
        return "not probed".into();
    }
    let mut parts = vec![if c.leaks.is_empty() {
        "no leak observed".to_string()
    } else {
        format!("leaks {} observed", c.leaks.join(", "))
    }];
    if !c.risks.is_empty() {
        parts.push(format!("risks {} (shared by design)", c.risks.join(", ")));
    }
    if !c.inconclusive.is_empty() {
        parts.push(format!("inconclusive {}", c.inconclusive.join(", ")));
    }
    parts.join("; ")
}

fn over_budget(c: &Candidate, budget: Option<f64>) -> Option<String> {
    let b = budget?;
    (c.per_tenant_month_usd > b)
        .then(|| format!("{} per tenant-month, over the {} budget", usd(c.per_tenant_month_usd), usd(b)))
}

/// The first of the cheapest among `eligible`, with any tier tied on cost named.
fn chosen_sentence(best: &Candidate, tied: &[&Candidate]) -> String {
    let mut because = format!("{}: {}; {}", best.tier, figures(best), findings(best));
    if tied.len() > 1 {
        let names: Vec<&str> = tied.iter().map(|c| c.tier.as_str()).collect();
        because += &format!(" (tied with {} on this figure; the first in run order is taken)", names[1..].join(", "));
    }
    because
}

fn cheapest(cands: &[Candidate], bound: Option<f64>, s: Strategy) -> Pick {
    let mut ruled_out = Vec::new();
    let mut eligible = Vec::new();
    for c in cands {
        match bound {
            Some(b) if c.p99_us > b => {
                ruled_out.push((c.tier.clone(), format!("p99 {} over the {} bound", ms(c.p99_us), ms(b))))
            }
            _ => eligible.push(c),
        }
    }
    let Some(best) = eligible.iter().copied().min_by(|a, b| a.per_tenant_month_usd.total_cmp(&b.per_tenant_month_usd))
    else {
        return Pick { strategy: s, chosen: None, because: "no tier meets the p99 bound".into(), ruled_out };
    };
    let tied: Vec<&Candidate> =
        eligible.iter().copied().filter(|c| c.per_tenant_month_usd == best.per_tenant_month_usd).collect();
    for c in eligible.iter().filter(|c| c.tier != best.tier) {
        ruled_out.push((c.tier.clone(), format!("dearer: {} per tenant-month", usd(c.per_tenant_month_usd))));
    }
    Pick { strategy: s, chosen: Some(best.tier.clone()), because: chosen_sentence(best, &tied), ruled_out }
}

fn fastest(cands: &[Candidate], budget: Option<f64>, s: Strategy) -> Pick {
    let (eligible, mut ruled_out) = within(cands, budget);
    let Some(best) = eligible.iter().copied().min_by(|a, b| a.p99_us.total_cmp(&b.p99_us)) else {
        return Pick { strategy: s, chosen: None, because: "no tier is within the budget".into(), ruled_out };
    };
    let tied: Vec<&Candidate> = eligible.iter().copied().filter(|c| c.p99_us == best.p99_us).collect();
    for c in eligible.iter().filter(|c| c.tier != best.tier) {
        ruled_out.push((c.tier.clone(), format!("slower: p99 {}", ms(c.p99_us))));
    }
    Pick { strategy: s, chosen: Some(best.tier.clone()), because: chosen_sentence(best, &tied), ruled_out }
}

/// The tiers within `budget`, and the others with why.
fn within(cands: &[Candidate], budget: Option<f64>) -> (Vec<&Candidate>, Vec<(String, String)>) {
    let mut ruled_out = Vec::new();
    let mut eligible = Vec::new();
    for c in cands {
        match over_budget(c, budget) {
            Some(why) => ruled_out.push((c.tier.clone(), why)),
            None => eligible.push(c),
        }
    }
    (eligible, ruled_out)
}

/// Isolation rank: observed leaks, then risks, then inconclusive cells; lower is stronger.
fn rank(c: &Candidate) -> (usize, usize, usize) {
    (c.leaks.len(), c.risks.len(), c.inconclusive.len())
}

fn strongest(cands: &[Candidate], budget: Option<f64>, s: Strategy) -> Pick {
    let (eligible, mut ruled_out) = within(cands, budget);
    let (probed, unprobed): (Vec<&Candidate>, Vec<&Candidate>) = eligible.into_iter().partition(|c| c.probed);
    for c in &unprobed {
        ruled_out.push((c.tier.clone(), "not probed: its isolation is unknown".into()));
    }
    let Some(best_rank) = probed.iter().map(|c| rank(c)).min() else {
        let why = if unprobed.is_empty() { "no tier is within the budget" } else { "no probe ran within the budget" };
        return Pick { strategy: s, chosen: None, because: why.into(), ruled_out };
    };
    let strongest: Vec<&Candidate> = probed.iter().copied().filter(|c| rank(c) == best_rank).collect();
    let best = strongest
        .iter()
        .copied()
        .min_by(|a, b| a.per_tenant_month_usd.total_cmp(&b.per_tenant_month_usd))
        .expect("one at least");
    let mut because = format!("{}: {}; {}", best.tier, findings(best), figures(best));
    if strongest.len() > 1 {
        let names: Vec<&str> = strongest.iter().map(|c| c.tier.as_str()).collect();
        let (last, first) = names.split_last().expect("two at least");
        because += &format!(
            ". {} and {last} are equally strong by this run's probes; the cheapest of them is taken",
            first.join(", ")
        );
    }
    for c in probed.iter().filter(|c| c.tier != best.tier) {
        let why = if c.leaks.len() > best.leaks.len() {
            format!("leaks {} observed", c.leaks.join(", "))
        } else if c.risks.len() > best.risks.len() {
            format!("risks {} (shared by design)", c.risks.join(", "))
        } else if c.inconclusive.len() > best.inconclusive.len() {
            format!("inconclusive {}", c.inconclusive.join(", "))
        } else {
            format!("equally strong, dearer: {} per tenant-month", usd(c.per_tenant_month_usd))
        };
        ruled_out.push((c.tier.clone(), why));
    }
    Pick { strategy: s, chosen: Some(best.tier.clone()), because, ruled_out }
}

/// Three short lines for the terminal.
pub fn terminal(s: &Summary) -> String {
    let mut o = String::from("\n");
    for p in picks(s) {
        o += &format!("pick, {}: {}\n", p.strategy.label(), p.because);
    }
    o
}

/// `report.md`'s section: each pick, then why each other tier lost.
pub fn markdown(o: &mut String, s: &Summary) {
    o.push_str("## Picks\n\n");
    o.push_str(
        "From this run's figures only (p99 corrected, costs modelled; `[picks]` in the scenario sets the bounds). ",
    );
    o.push_str("Isolation is ranked by observed leaks, then risks, then inconclusive cells.\n\n");
    for p in picks(s) {
        o.push_str(&format!("- **{}**: {}\n", p.strategy.label(), p.because));
        for (tier, why) in &p.ruled_out {
            o.push_str(&format!("  - ruled out {tier}: {why}\n"));
        }
    }
    o.push('\n');
}

/// The page's section.
pub fn html(o: &mut String, s: &Summary) {
    use crate::fmt::esc;
    o.push_str("<h2>Picks</h2>\n<p class=\"note\">From this run's figures only (p99 corrected, costs modelled; ");
    o.push_str("<code>[picks]</code> in the scenario sets the bounds). Isolation is ranked by observed leaks, ");
    o.push_str("then risks, then inconclusive cells.</p>\n<ul data-list=\"picks\">\n");
    for p in picks(s) {
        o.push_str(&format!("<li><b>{}</b>: {}<ul>", esc(&p.strategy.label()), esc(&p.because)));
        for (tier, why) in &p.ruled_out {
            o.push_str(&format!("<li>ruled out {}: {}</li>", esc(tier), esc(why)));
        }
        o.push_str("</ul></li>\n");
    }
    o.push_str("</ul>\n");
}

#[cfg(test)]
mod tests {
    use isobench_results::PickBounds;

    use super::*;
    use crate::verdict::tests::{cell, summary};

    fn run() -> Summary {
        let leaky = |ids: &[&str]| ids.iter().map(|id| cell(id, Verdict::Leak, 3, 3)).collect::<Vec<_>>();
        let mut shared = leaky(&["LK-TMP", "LK-MEM"]);
        shared.push(cell("LK-PRINCIPAL", Verdict::Risk, 3, 3));
        let isolated = || vec![cell("LK-TMP", Verdict::Blocked, 0, 3), cell("LK-MEM", Verdict::Blocked, 0, 3)];
        let mut risky = isolated();
        risky.push(cell("LK-PRINCIPAL", Verdict::Risk, 3, 3));
        summary(vec![
            ("silo-ec2", isolated(), 700.0, 7.49),
            ("shared-ec2", shared, 500.0, 11.52),
            ("ecs-awsvpc", risky, 600.0, 34.56),
            ("lambda-per-tenant", isolated(), 9_610.0, 26.55),
        ])
    }

    #[test]
    fn cheapest_meets_the_bound_and_says_why_others_lost() {
        let mut s = run();
        s.picks = Some(PickBounds { p99_us: Some(650.0), budget_per_tenant_month_usd: None });
        let p = &picks(&s)[0];
        assert_eq!(p.chosen.as_deref(), Some("shared-ec2"));
        assert_eq!(p.strategy.label(), "cheapest with p99 ≤ 650µs");
        assert!(p.because.starts_with("shared-ec2: $11.52 per tenant-month ($0.115 per million"), "{}", p.because);
        assert!(p.because.contains("p99 500µs; leaks LK-TMP, LK-MEM observed; risks LK-PRINCIPAL"), "{}", p.because);
        let why: Vec<(&str, &str)> = p.ruled_out.iter().map(|(t, w)| (t.as_str(), w.as_str())).collect();
        assert!(why.contains(&("silo-ec2", "p99 700µs over the 650µs bound")), "{why:?}");
        assert!(why.contains(&("ecs-awsvpc", "dearer: $34.56 per tenant-month")), "{why:?}");
        assert_eq!(why.len(), 3, "{why:?}");
        s.picks = None;
        let p = &picks(&s)[0];
        assert_eq!(p.chosen.as_deref(), Some("silo-ec2"));
        assert!(p.strategy.label().contains("no p99 bound set: the cheapest tier overall"));
    }

    #[test]
    fn fastest_within_a_budget() {
        let c = candidates(&run());
        let p = pick(&c, &Strategy::Fastest { budget_per_tenant_month_usd: Some(10.0) });
        assert_eq!(p.chosen.as_deref(), Some("silo-ec2"));
        assert!(p.ruled_out.contains(&("shared-ec2".into(), "$11.52 per tenant-month, over the $10.00 budget".into())));
        let p = pick(&c, &Strategy::Fastest { budget_per_tenant_month_usd: None });
        assert_eq!(p.chosen.as_deref(), Some("shared-ec2"));
        assert!(p.ruled_out.contains(&("lambda-per-tenant".into(), "slower: p99 9.61ms".into())), "{:?}", p.ruled_out);
        let p = pick(&c, &Strategy::Fastest { budget_per_tenant_month_usd: Some(1.0) });
        assert_eq!((p.chosen, p.because.as_str()), (None, "no tier is within the budget"));
    }

    #[test]
    fn strongest_ranks_leaks_then_risks_and_says_ties() {
        let c = candidates(&run());
        let p = pick(&c, &Strategy::Strongest { budget_per_tenant_month_usd: None });
        assert_eq!(p.chosen.as_deref(), Some("silo-ec2"), "cheaper of two equally strong");
        assert!(
            p.because.contains("silo-ec2 and lambda-per-tenant are equally strong by this run's probes"),
            "{}",
            p.because
        );
        let why: Vec<(&str, &str)> = p.ruled_out.iter().map(|(t, w)| (t.as_str(), w.as_str())).collect();
        assert!(why.contains(&("shared-ec2", "leaks LK-TMP, LK-MEM observed")), "{why:?}");
        assert!(why.contains(&("ecs-awsvpc", "risks LK-PRINCIPAL (shared by design)")), "{why:?}");
        assert!(why.contains(&("lambda-per-tenant", "equally strong, dearer: $26.55 per tenant-month")), "{why:?}");
        let p = pick(&c, &Strategy::Strongest { budget_per_tenant_month_usd: Some(20.0) });
        assert_eq!(p.chosen.as_deref(), Some("silo-ec2"));
        assert!(!p.because.contains("equally strong"), "the other is over budget: {}", p.because);
        let mut c = c;
        c[0].inconclusive.push("LK-FD".into());
        let p = pick(&c, &Strategy::Strongest { budget_per_tenant_month_usd: None });
        assert_eq!(p.chosen.as_deref(), Some("lambda-per-tenant"), "an inconclusive cell weakens silo-ec2");
        assert!(p.ruled_out.contains(&("silo-ec2".into(), "inconclusive LK-FD".into())));
    }

    #[test]
    fn an_unprobed_or_uncosted_tier_is_never_picked_and_says_why() {
        let mut s = run();
        s.tiers.retain(|t| t.tier == "shared-ec2" || t.tier == "silo-ec2");
        s.tiers[0].probes.clear();
        s.tiers[1].cost = None;
        let p = &picks(&s)[2];
        assert_eq!((p.chosen.as_deref(), p.because.as_str()), (None, "no probe ran within the budget"));
        assert!(p.ruled_out.contains(&("silo-ec2".into(), "not probed: its isolation is unknown".into())));
        assert!(p.ruled_out.contains(&("shared-ec2".into(), "not costed".into())));
        s.tiers[0].cost = None;
        for p in picks(&s) {
            assert_eq!(p.chosen, None);
            assert_eq!(p.because, "no tier to compare: none has both a cost and ok requests");
            assert_eq!(p.ruled_out.len(), 2, "{:?}", p.ruled_out);
        }
    }
}
