//! The pricing table: dated, sourced prices per region, built in for us-east-1 and overridable
//! by a file.
//!
//! ```toml
//! format_version = 1
//! region = "us-east-1"
//! as_of = "2026-11-01"          # the day the prices were checked
//! currency = "USD"
//! [ec2."t3.micro"]              # key `ec2.t3.micro`
//! usd = 0.0104
//! unit = "instance-hour"
//! source = "https://aws.amazon.com/ec2/pricing/on-demand/"
//! ```
//!
//! A `--pricing FILE` whose region has a built-in table is merged over it price by price (the
//! file wins; its header replaces the built-in one); a file for another region stands alone.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use isobench_core::diagnostics::line_col;
use isobench_results::PricingInfo;

use crate::error::PricingError;

/// The pricing format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// Built-in tables: (region, TOML text).
pub const BUILT_IN: &[(&str, &str)] = &[("us-east-1", include_str!("../pricing/us-east-1.toml"))];

/// The region used when none is asked for.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Sections of the table and the unit every price in each must carry.
const SECTIONS: &[(&str, &[(&str, &str)])] = &[
    ("ec2", &[("*", "instance-hour")]),
    ("fargate", &[("vcpu-*", "vCPU-hour"), ("gb-*", "GB-hour")]),
    ("lambda", &[("requests", "million-requests"), ("gb-second-*", "GB-second")]),
    ("eks", &[("cluster-hour", "cluster-hour")]),
];

/// One price: `usd` per `unit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    pub usd: f64,
    pub unit: String,
    pub source: String,
    /// Not yet checked against AWS's own price page; reports mark what it prices.
    pub unverified: bool,
}

/// A validated pricing table.
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    pub info: PricingInfo,
    /// Keyed `section.name`, e.g. `ec2.t3.micro`, `lambda.requests`.
    pub prices: BTreeMap<String, Price>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    format_version: Spanned<u32>,
    region: Spanned<String>,
    as_of: Spanned<String>,
    currency: Spanned<String>,
    #[serde(default)]
    ec2: BTreeMap<String, Spanned<RawPrice>>,
    #[serde(default)]
    fargate: BTreeMap<String, Spanned<RawPrice>>,
    #[serde(default)]
    lambda: BTreeMap<String, Spanned<RawPrice>>,
    #[serde(default)]
    eks: BTreeMap<String, Spanned<RawPrice>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    usd: Spanned<f64>,
    unit: Spanned<String>,
    source: String,
    #[serde(default)]
    unverified: bool,
}

impl Pricing {
    /// The table for `region` (default us-east-1), with `file` merged over it when given.
    /// An unknown region without a file is an error listing the built-in ones.
    pub fn load(region: Option<&str>, file: Option<&Path>) -> Result<Pricing, PricingError> {
        let Some(path) = file else {
            return Pricing::built_in(region.unwrap_or(DEFAULT_REGION));
        };
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PricingError::new(
                &name,
                None,
                "",
                format!("cannot read the file: {e}"),
                "a readable TOML pricing table, e.g. harness/cost/pricing/us-east-1.toml",
            )
        })?;
        let over = Pricing::parse(&text, &name)?;
        if let Some(r) = region
            && r != over.info.region
        {
            return Err(PricingError::new(
                &name,
                None,
                "region",
                format!("the file prices region `{}` but --region asks for `{r}`", over.info.region),
                &format!("--region {} or no --region", over.info.region),
            ));
        }
        match BUILT_IN.iter().find(|(r, _)| *r == over.info.region) {
            Some(_) => {
                let mut base = Pricing::built_in(&over.info.region)?;
                base.prices.extend(over.prices);
                base.info = PricingInfo { source: format!("{name} over built-in {}", over.info.region), ..over.info };
                Ok(base)
            }
            None => Ok(over),
        }
    }

    /// The built-in table of `region`.
    pub fn built_in(region: &str) -> Result<Pricing, PricingError> {
        let Some((_, text)) = BUILT_IN.iter().find(|(r, _)| *r == region) else {
            let built_in = BUILT_IN.iter().map(|(r, _)| format!("`{r}`")).collect::<Vec<_>>().join(", ");
            return Err(PricingError::new(
                "--region",
                None,
                "",
                format!("no built-in prices for region `{region}`"),
                &format!("{built_in}, or a table for `{region}` given with --pricing FILE"),
            ));
        };
        let mut p = Pricing::parse(text, &format!("built-in {region}"))?;
        p.info.source = "built-in".into();
        Ok(p)
    }

    /// Parses and validates a table; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Pricing, PricingError> {
        let fail = |span: Option<std::ops::Range<usize>>, field: &str, message: String, accepted: &str| {
            PricingError::new(file, span.map(|s| line_col(text, s.start).0), field, message, accepted)
        };
        let raw: RawTable = toml::from_str(text).map_err(|e| fail(e.span(), "", e.message().to_string(), ""))?;
        if *raw.format_version.get_ref() != FORMAT_VERSION {
            return Err(fail(
                Some(raw.format_version.span()),
                "format_version",
                format!("format version {} is not supported by this build", raw.format_version.get_ref()),
                &FORMAT_VERSION.to_string(),
            ));
        }
        if !is_date(raw.as_of.get_ref()) {
            return Err(fail(
                Some(raw.as_of.span()),
                "as_of",
                format!("`{}` is not a date", raw.as_of.get_ref()),
                "YYYY-MM-DD",
            ));
        }
        for (field, v) in [("region", &raw.region), ("currency", &raw.currency)] {
            if v.get_ref().trim().is_empty() {
                return Err(fail(Some(v.span()), field, "must not be empty".into(), "e.g. `us-east-1`, `USD`"));
            }
        }
        let mut prices = BTreeMap::new();
        for (section, table) in [("ec2", raw.ec2), ("fargate", raw.fargate), ("lambda", raw.lambda), ("eks", raw.eks)] {
            for (name, p) in table {
                let span = p.span();
                let p = p.into_inner();
                let field = format!("{section}.{}", quote(&name));
                let Some(unit) = expected_unit(section, &name) else {
                    return Err(fail(
                        Some(span),
                        &field,
                        format!("unknown price `{section}.{name}`"),
                        &known_keys(section),
                    ));
                };
                let usd = *p.usd.get_ref();
                if !usd.is_finite() || usd < 0.0 {
                    return Err(fail(
                        Some(p.usd.span()),
                        &format!("{field}.usd"),
                        format!("{usd} is not a price"),
                        "a finite number, 0 or more",
                    ));
                }
                if p.unit.get_ref() != unit {
                    return Err(fail(
                        Some(p.unit.span()),
                        &format!("{field}.unit"),
                        format!("unit `{}` does not fit `{section}.{name}`", p.unit.get_ref()),
                        &format!("`{unit}`"),
                    ));
                }
                if p.source.trim().is_empty() {
                    return Err(fail(
                        Some(span),
                        &format!("{field}.source"),
                        "a price needs its source".into(),
                        "a URL or citation",
                    ));
                }
                prices.insert(
                    format!("{section}.{name}"),
                    Price { usd, unit: unit.to_string(), source: p.source, unverified: p.unverified },
                );
            }
        }
        Ok(Pricing {
            info: PricingInfo {
                region: raw.region.into_inner(),
                as_of: raw.as_of.into_inner(),
                source: file.to_string(),
                currency: raw.currency.into_inner(),
            },
            prices,
        })
    }

    /// The price of `key`, or an error naming the tier that needs it.
    pub fn get(&self, key: &str, tier: &str) -> Result<&Price, crate::error::CostError> {
        self.prices.get(key).ok_or_else(|| crate::error::CostError::MissingPrice {
            tier: tier.to_string(),
            key: key.to_string(),
            table: format!("{} ({})", self.info.source, self.info.region),
        })
    }
}

/// The unit a price in `section` named `name` must carry, if the key is known.
fn expected_unit(section: &str, name: &str) -> Option<&'static str> {
    let (_, patterns) = SECTIONS.iter().find(|(s, _)| *s == section)?;
    patterns.iter().find(|(pat, _)| matches(pat, name)).map(|(_, unit)| *unit)
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix) && name.len() > prefix.len(),
        None => pattern == name,
    }
}

fn known_keys(section: &str) -> String {
    let (_, patterns) = SECTIONS.iter().find(|(s, _)| *s == section).expect("sections are fixed");
    patterns.iter().map(|(p, u)| format!("`{section}.{p}` in {u}")).collect::<Vec<_>>().join(", ")
}

fn quote(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        name.to_string()
    } else {
        format!("\"{name}\"")
    }
}

/// `YYYY-MM-DD` (the pricing and overheads files' dates).
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "format_version = 1\nregion = \"eu-west-1\"\nas_of = \"2026-01-02\"\ncurrency = \"USD\"\n";

    #[test]
    fn built_in_table_is_valid() {
        let p = Pricing::built_in("us-east-1").unwrap();
        assert_eq!(p.prices["ec2.t3.micro"].usd, 0.0104);
        assert_eq!(p.prices["lambda.requests"].unit, "million-requests");
        assert_eq!(p.info.source, "built-in");
    }

    #[test]
    fn unknown_region_lists_the_built_in_ones() {
        let e = Pricing::load(Some("eu-west-9"), None).unwrap_err().to_string();
        assert!(e.contains("no built-in prices for region `eu-west-9`"), "{e}");
        assert!(e.contains("`us-east-1`"), "{e}");
    }

    #[test]
    fn negative_price_is_located() {
        let text = format!("{HEADER}[ec2.\"t3.micro\"]\nusd = -1.0\nunit = \"instance-hour\"\nsource = \"x\"\n");
        let e = Pricing::parse(&text, "p.toml").unwrap_err();
        assert_eq!(e.problem.line, Some(6));
        assert_eq!(e.problem.field, "ec2.\"t3.micro\".usd");
        assert!(e.to_string().starts_with("invalid pricing table p.toml:6: field `ec2.\"t3.micro\".usd`"), "{e}");
    }

    #[test]
    fn nan_price_and_wrong_unit_are_refused() {
        let nan = format!("{HEADER}[lambda.requests]\nusd = nan\nunit = \"million-requests\"\nsource = \"x\"\n");
        assert!(Pricing::parse(&nan, "p").unwrap_err().problem.message.contains("NaN is not a price"));
        let unit = format!("{HEADER}[lambda.requests]\nusd = 0.2\nunit = \"request\"\nsource = \"x\"\n");
        let e = Pricing::parse(&unit, "p").unwrap_err();
        assert_eq!(e.problem.line, Some(7));
        assert!(e.problem.accepted.as_ref().unwrap().contains("million-requests"), "{e}");
    }

    #[test]
    fn missing_unit_and_unknown_keys_are_refused() {
        let no_unit = format!("{HEADER}[lambda.requests]\nusd = 0.2\nsource = \"x\"\n");
        assert!(Pricing::parse(&no_unit, "p").unwrap_err().problem.message.contains("missing field `unit`"));
        let unknown = format!("{HEADER}[fargate.cpu]\nusd = 0.2\nunit = \"vCPU-hour\"\nsource = \"x\"\n");
        let e = Pricing::parse(&unknown, "p").unwrap_err();
        assert!(e.problem.message.contains("unknown price `fargate.cpu`"), "{e}");
    }

    #[test]
    fn a_file_for_a_built_in_region_is_merged_over_it() {
        let dir = std::env::temp_dir().join(format!("isobench-pricing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.toml");
        let text = HEADER.replace("eu-west-1", "us-east-1")
            + "[ec2.\"t3.micro\"]\nusd = 0.5\nunit = \"instance-hour\"\nsource = \"negotiated\"\n";
        std::fs::write(&path, text).unwrap();
        let p = Pricing::load(None, Some(&path));
        let wrong_region = Pricing::load(Some("eu-west-1"), Some(&path));
        std::fs::remove_dir_all(&dir).unwrap();
        let p = p.unwrap();
        assert_eq!(p.prices["ec2.t3.micro"].usd, 0.5);
        assert_eq!(p.prices["ec2.m5.large"].usd, 0.096, "other prices keep the built-in values");
        assert_eq!(p.info.as_of, "2026-01-02");
        assert!(p.info.source.ends_with("over built-in us-east-1"), "{}", p.info.source);
        assert!(wrong_region.unwrap_err().to_string().contains("--region asks for `eu-west-1`"));
    }
}
