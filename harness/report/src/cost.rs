//! The cost and calibration parts of the plain-text views (the lines after the run's table,
//! `validate`'s projection, the sections of `report.md`), apart from the rest of the report so
//! each can change on its own. Figures are rounded here only, never in the summary.

use std::fmt::Write;

use isobench_results::{PricingInfo, Summary, TierCost};

/// A tier's cost projected before deploy, as `isobench validate` shows it.
pub struct Projection<'a> {
    pub tier: &'a str,
    pub cost: &'a TierCost,
    /// Whether `cost` is an upper bound rather than an estimate.
    pub upper_bound: bool,
}

/// Dollars with enough digits that small run costs do not print as zero.
fn usd(x: f64) -> String {
    if x == 0.0 {
        "$0".into()
    } else if x.abs() >= 100.0 {
        format!("${x:.0}")
    } else if x.abs() >= 0.01 {
        format!("${x:.2}")
    } else {
        format!("${x:.6}")
    }
}

/// The price keys the costs rest on that the pricing table marks unverified, once each.
pub fn unverified_keys<'a>(costs: impl Iterator<Item = &'a TierCost>) -> Vec<&'a str> {
    let mut keys: Vec<&str> = costs.flat_map(|c| &c.items).filter(|i| i.unverified).map(|i| i.price.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// `†` after a figure that rests on an unverified price.
pub fn mark(c: &TierCost) -> &'static str {
    if c.items.iter().any(|i| i.unverified) { "†" } else { "" }
}

/// The footnote for the `†` marks, naming the prices; empty when none is unverified.
pub fn unverified_note(keys: &[&str]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    format!(
        "† priced with a price the pricing table marks unverified ({}): check it against AWS before publishing",
        keys.join(", ")
    )
}

fn pricing_line(p: &PricingInfo) -> String {
    format!("prices: {} {}, as of {}, {}", p.region, p.currency, p.as_of, p.source)
}

/// The cost lines printed after the run's table.
pub fn cost_table(s: &Summary) -> String {
    let mut o = String::new();
    if !s.tiers.iter().any(|t| t.cost.is_some()) {
        return o;
    }
    let _ = writeln!(
        o,
        "\n{:<24} {:>11} {:>11} {:>11} {:>13} {:>6}",
        "cost (modelled)", "run", "$/M req", "monthly", "tenant-month", "idle"
    );
    for t in &s.tiers {
        let Some(c) = &t.cost else { continue };
        let _ = writeln!(
            o,
            "{:<24} {:>11} {:>11} {:>11} {:>13} {:>5.0}%",
            format!("{}{}", t.tier, mark(c)),
            usd(c.run_usd),
            usd(c.per_million_requests_usd),
            usd(c.monthly_usd),
            usd(c.per_tenant_usd),
            c.idle_share * 100.0
        );
    }
    if let Some(p) = &s.pricing {
        let _ = writeln!(o, "{}; monthly = 30 days at the scenario's rate; formulas in report.md", pricing_line(p));
    }
    let note = unverified_note(&unverified_keys(s.tiers.iter().filter_map(|t| t.cost.as_ref())));
    if !note.is_empty() {
        let _ = writeln!(o, "{note}");
    }
    o
}

/// The projection `isobench validate` prints.
pub fn projected_costs(projected: &[Projection<'_>], p: &PricingInfo) -> String {
    let mut o = format!("  projected cost before deploy ({}):\n", pricing_line(p));
    for c in projected {
        let _ = writeln!(
            o,
            "  tier {:<24} run {}{}, monthly {}{}",
            c.tier,
            if c.upper_bound { "at most " } else { "about " },
            usd(c.cost.run_usd),
            usd(c.cost.monthly_usd),
            mark(c.cost)
        );
    }
    let note = unverified_note(&unverified_keys(projected.iter().map(|c| c.cost)));
    if !note.is_empty() {
        let _ = writeln!(o, "  {note}");
    }
    o
}

/// `## Cost (modelled)` and `## Calibration (modelled)` of `report.md`.
pub fn markdown_sections(o: &mut String, s: &Summary) {
    cost_section(o, s);
    calibration_section(o, s);
}

fn cost_section(o: &mut String, s: &Summary) {
    if !s.tiers.iter().any(|t| t.cost.is_some()) {
        return;
    }
    let _ = writeln!(o, "\n## Cost (modelled)\n");
    if let Some(p) = &s.pricing {
        let _ = writeln!(o, "What each tier would cost on AWS at the measured load: {}.", pricing_line(p));
    }
    let _ = writeln!(
        o,
        "Monthly: 30 days at the scenario's rate; per tenant and per million requests from the monthly figure; \
         idle: the part of the monthly cost paid for capacity the load did not use. Each figure is the sum of the \
         items below, which `summary.json` keeps unrounded.\n"
    );
    let _ = writeln!(
        o,
        "| tier | model | run | per M requests | monthly | per tenant-month | idle |\n|---|---|---|---|---|---|---|"
    );
    for t in &s.tiers {
        if let Some(c) = &t.cost {
            let _ = writeln!(
                o,
                "| {}{} | {} | {} | {} | {} | {} | {} ({:.0}%) |",
                t.tier,
                mark(c),
                c.model,
                usd(c.run_usd),
                usd(c.per_million_requests_usd),
                usd(c.monthly_usd),
                usd(c.per_tenant_usd),
                usd(c.monthly_idle_usd),
                c.idle_share * 100.0
            );
        }
    }
    let note = unverified_note(&unverified_keys(s.tiers.iter().filter_map(|t| t.cost.as_ref())));
    if !note.is_empty() {
        let _ = writeln!(o, "\n{note}.");
    }
    for t in &s.tiers {
        if let Some(c) = &t.cost {
            cost_detail(o, &t.tier, c);
        }
    }
}

fn cost_detail(o: &mut String, tier: &str, c: &TierCost) {
    let _ = writeln!(o, "\n### Cost of {tier} ({})\n\n{}\n", c.model, c.formula);
    let _ = writeln!(o, "| price | quantity | unit | unit price | amount |\n|---|---|---|---|---|");
    for i in &c.items {
        let flag = if i.unverified { " (unverified)" } else { "" };
        let _ = writeln!(
            o,
            "| `{}`{flag} | {} | {} | ${} | {} |",
            i.price,
            i.quantity,
            i.unit,
            i.unit_price_usd,
            usd(i.usd)
        );
    }
    if !c.notes.is_empty() {
        o.push('\n');
    }
    for n in &c.notes {
        let _ = writeln!(o, "- {n}");
    }
}

fn calibration_section(o: &mut String, s: &Summary) {
    if !s.tiers.iter().any(|t| !t.calibration.is_empty()) {
        return;
    }
    let _ = writeln!(
        o,
        "\n## Calibration (modelled)\n\nThe emulator's measured start times beside what the same event takes on AWS by \
         published figures. The AWS column is modelled: it is not a measurement and is never put into histograms.\n"
    );
    let _ = writeln!(
        o,
        "| tier | event | measured here (n, min / median / max) | AWS, published (modelled) | source |\n|---|---|---|---|---|"
    );
    for t in &s.tiers {
        for c in &t.calibration {
            let m = &c.measured_ms;
            let _ = writeln!(
                o,
                "| {} | {} | n={}, {:.2} / {:.2} / {:.2} ms | {:.0}–{:.0} ms | {} |",
                t.tier, c.event, m.count, m.min, m.median, m.max, c.published_low_ms, c.published_high_ms, c.source
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cost_on_an_unverified_price_is_marked_with_its_key() {
        let mut s: Summary =
            serde_json::from_str(include_str!("../../../results/baselines/quick/summary.json")).unwrap();
        for i in s.tiers.iter_mut().filter_map(|t| t.cost.as_mut()).flat_map(|c| c.items.iter_mut()) {
            i.unverified = false;
        }
        let plain = cost_table(&s);
        assert!(!plain.contains('†'), "{plain}");
        let c = s.tiers[0].cost.as_mut().unwrap();
        c.items[0].unverified = true;
        let key = c.items[0].price.clone();
        let table = cost_table(&s);
        assert!(table.contains(&format!("{}†", s.tiers[0].tier)), "{table}");
        assert!(table.contains(&format!("unverified ({key})")), "{table}");
        let mut md = String::new();
        markdown_sections(&mut md, &s);
        assert!(md.contains(&format!("`{key}` (unverified)")), "{md}");
    }
}
