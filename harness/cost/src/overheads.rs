//! The published AWS overheads: dated, sourced timing ranges for what each tier's path adds on
//! AWS (network hops, the Lambda invoke path, cold start placement) and for what each tier
//! starts (instances, tasks, INIT). Built in from `harness/cost/overheads/aws.toml`, overridable
//! entry by entry with a file. The one home for published timings: the calibration profile
//! ([`crate::calibration`]) and the projection ([`crate::projection`]) both read it.
//!
//! The file sits in `overheads/`, beside `pricing/` rather than in it, because `pricing/` holds
//! one price table per region (the file name is the region) and these timings are neither
//! prices nor per region.
//!
//! ```toml
//! format_version = 1
//! as_of = "2026-12-06"
//! [overhead.vpc-hop-ec2]
//! what = "network round trip, client to an EC2 instance in the same VPC and AZ"
//! low_ms = 0.2
//! high_ms = 0.56
//! source = "ping RTT between two instances in one AZ ..."
//! urls = ["https://..."]
//! read_on = "2026-12-06"
//! quality = "secondary"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use isobench_core::diagnostics::line_col;
use isobench_results::OverheadsInfo;

use crate::error::OverheadsError;
use crate::pricing::is_date;

/// The overheads format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// The built-in file's text.
pub const BUILT_IN: &str = include_str!("../overheads/aws.toml");

/// Every id the projection and calibration use; a file may carry no other.
pub const IDS: &[&str] = &[
    VPC_HOP_EC2,
    VPC_HOP_AWSVPC,
    LAMBDA_INVOKE_PATH,
    LAMBDA_COLD_PLACEMENT,
    LAMBDA_INIT,
    EC2_INSTANCE_START,
    FARGATE_TASK_START,
    ECS_EC2_TASK_START,
];
pub const VPC_HOP_EC2: &str = "vpc-hop-ec2";
pub const VPC_HOP_AWSVPC: &str = "vpc-hop-awsvpc";
pub const LAMBDA_INVOKE_PATH: &str = "lambda-invoke-path";
pub const LAMBDA_COLD_PLACEMENT: &str = "lambda-cold-placement";
pub const LAMBDA_INIT: &str = "lambda-init";
pub const EC2_INSTANCE_START: &str = "ec2-instance-start";
pub const FARGATE_TASK_START: &str = "fargate-task-start";
pub const ECS_EC2_TASK_START: &str = "ecs-ec2-task-start";

/// How well a figure is sourced.
const QUALITIES: &[&str] = &["primary", "secondary", "judgement"];

/// One published timing range.
#[derive(Debug, Clone, PartialEq)]
pub struct Overhead {
    pub id: String,
    pub what: String,
    pub low_ms: f64,
    pub high_ms: f64,
    pub source: String,
    pub urls: Vec<String>,
    pub read_on: String,
    pub quality: String,
    pub note: Option<String>,
}

/// A validated overheads file: every id of [`IDS`], each with its source and date.
#[derive(Debug, Clone, PartialEq)]
pub struct Overheads {
    pub info: OverheadsInfo,
    pub entries: BTreeMap<String, Overhead>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    format_version: Spanned<u32>,
    as_of: Spanned<String>,
    #[serde(default)]
    overhead: BTreeMap<String, Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    what: Spanned<String>,
    low_ms: Spanned<f64>,
    high_ms: Spanned<f64>,
    source: Spanned<String>,
    #[serde(default)]
    urls: Vec<String>,
    read_on: Spanned<String>,
    quality: Spanned<String>,
    note: Option<String>,
}

impl Overheads {
    /// The built-in file, with `file` merged over it entry by entry when given.
    pub fn load(file: Option<&Path>) -> Result<Overheads, OverheadsError> {
        let mut base = Overheads::built_in()?;
        let Some(path) = file else { return Ok(base) };
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            OverheadsError::new(
                &name,
                None,
                "",
                format!("cannot read the file: {e}"),
                "a readable TOML overheads file, e.g. harness/cost/overheads/aws.toml",
            )
        })?;
        let over = Overheads::parse(&text, &name)?;
        base.entries.extend(over.entries);
        base.info = OverheadsInfo {
            as_of: over.info.as_of,
            source: format!("{name} over built-in"),
            sha256: Some(isobench_core::scenario::hash(&text)),
        };
        Ok(base)
    }

    /// The built-in file.
    pub fn built_in() -> Result<Overheads, OverheadsError> {
        let mut o = Overheads::parse(BUILT_IN, "built-in overheads")?;
        if let Some(id) = IDS.iter().find(|id| !o.entries.contains_key(**id)) {
            return Err(OverheadsError::new("built-in overheads", None, id, "missing entry".into(), "every id"));
        }
        o.info.source = "built-in".into();
        Ok(o)
    }

    /// Parses and validates a file (any subset of [`IDS`]); `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Overheads, OverheadsError> {
        let fail = |span: std::ops::Range<usize>, field: &str, message: String, accepted: &str| {
            OverheadsError::new(file, Some(line_col(text, span.start).0), field, message, accepted)
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            OverheadsError::new(file, e.span().map(|s| line_col(text, s.start).0), "", e.message().to_string(), "")
        })?;
        if *raw.format_version.get_ref() != FORMAT_VERSION {
            return Err(fail(
                raw.format_version.span(),
                "format_version",
                format!("format version {} is not supported by this build", raw.format_version.get_ref()),
                &FORMAT_VERSION.to_string(),
            ));
        }
        if !is_date(raw.as_of.get_ref()) {
            return Err(fail(
                raw.as_of.span(),
                "as_of",
                format!("`{}` is not a date", raw.as_of.get_ref()),
                "YYYY-MM-DD",
            ));
        }
        let mut entries = BTreeMap::new();
        for (id, e) in raw.overhead {
            let span = e.span();
            let e = e.into_inner();
            let field = format!("overhead.{id}");
            if !IDS.contains(&id.as_str()) {
                let known = IDS.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ");
                return Err(fail(span, &field, format!("unknown overhead `{id}`"), &known));
            }
            let (low, high) = (*e.low_ms.get_ref(), *e.high_ms.get_ref());
            for (name, v, s) in [("low_ms", low, e.low_ms.span()), ("high_ms", high, e.high_ms.span())] {
                if !v.is_finite() || v < 0.0 {
                    return Err(fail(
                        s,
                        &format!("{field}.{name}"),
                        format!("{v} is not a duration"),
                        "a finite number of ms, 0 or more",
                    ));
                }
            }
            if low > high {
                return Err(fail(
                    e.high_ms.span(),
                    &format!("{field}.high_ms"),
                    format!("{high} is below low_ms {low}"),
                    "high_ms ≥ low_ms",
                ));
            }
            for (name, v) in [("what", &e.what), ("source", &e.source)] {
                if v.get_ref().trim().is_empty() {
                    return Err(fail(
                        v.span(),
                        &format!("{field}.{name}"),
                        "must not be empty".into(),
                        "a citation: paper or page, and what it says",
                    ));
                }
            }
            if !is_date(e.read_on.get_ref()) {
                return Err(fail(
                    e.read_on.span(),
                    &format!("{field}.read_on"),
                    format!("`{}` is not a date", e.read_on.get_ref()),
                    "YYYY-MM-DD",
                ));
            }
            if !QUALITIES.contains(&e.quality.get_ref().as_str()) {
                return Err(fail(
                    e.quality.span(),
                    &format!("{field}.quality"),
                    format!("unknown quality `{}`", e.quality.get_ref()),
                    "`primary`, `secondary`, `judgement`",
                ));
            }
            entries.insert(
                id.clone(),
                Overhead {
                    id,
                    what: e.what.into_inner(),
                    low_ms: low,
                    high_ms: high,
                    source: e.source.into_inner(),
                    urls: e.urls,
                    read_on: e.read_on.into_inner(),
                    quality: e.quality.into_inner(),
                    note: e.note,
                },
            );
        }
        Ok(Overheads {
            info: OverheadsInfo { as_of: raw.as_of.into_inner(), source: file.to_string(), sha256: None },
            entries,
        })
    }

    /// The entry `id`, one of [`IDS`] (every loaded file has them all).
    pub fn get(&self, id: &str) -> &Overhead {
        self.entries.get(id).unwrap_or_else(|| panic!("overhead `{id}` is one of IDS, checked at load"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "format_version = 1\nas_of = \"2026-12-01\"\n";

    fn entry(id: &str, low: &str, high: &str) -> String {
        format!(
            "[overhead.{id}]\nwhat = \"w\"\nlow_ms = {low}\nhigh_ms = {high}\nsource = \"s\"\nread_on = \"2026-12-01\"\nquality = \"secondary\"\n"
        )
    }

    #[test]
    fn the_built_in_file_has_every_id_each_sourced_and_dated() {
        let o = Overheads::built_in().unwrap();
        assert_eq!(o.info.source, "built-in");
        assert!(is_date(&o.info.as_of));
        assert_eq!(o.entries.len(), IDS.len());
        for id in IDS {
            let e = o.get(id);
            assert!(!e.source.trim().is_empty(), "{id} has no source");
            assert!(!e.urls.is_empty(), "{id} has no URL");
            assert!(is_date(&e.read_on), "{id}: {}", e.read_on);
            assert!(e.low_ms <= e.high_ms && e.low_ms >= 0.0, "{id}");
        }
    }

    #[test]
    fn a_bad_figure_is_located_by_line_and_field() {
        let text = format!("{HEADER}{}", entry("vpc-hop-ec2", "0.5", "0.1"));
        let e = Overheads::parse(&text, "o.toml").unwrap_err();
        assert_eq!(e.problem.line, Some(6), "{e}");
        assert_eq!(e.problem.field, "overhead.vpc-hop-ec2.high_ms");
        assert!(
            e.to_string().starts_with("invalid overheads file o.toml:6: field `overhead.vpc-hop-ec2.high_ms`"),
            "{e}"
        );
        let nan = format!("{HEADER}{}", entry("vpc-hop-ec2", "nan", "1.0"));
        assert!(Overheads::parse(&nan, "o").unwrap_err().problem.message.contains("NaN is not a duration"));
    }

    #[test]
    fn unknown_ids_missing_sources_and_bad_dates_are_refused() {
        let unknown = format!("{HEADER}{}", entry("vpc-hop", "0.1", "0.2"));
        let e = Overheads::parse(&unknown, "o").unwrap_err();
        assert!(e.problem.message.contains("unknown overhead `vpc-hop`"), "{e}");
        assert!(e.problem.accepted.as_ref().unwrap().contains("`vpc-hop-ec2`"), "{e}");
        let no_source =
            format!("{HEADER}{}", entry("vpc-hop-ec2", "0.1", "0.2")).replace("source = \"s\"", "source = \" \"");
        let e = Overheads::parse(&no_source, "o").unwrap_err();
        assert_eq!(e.problem.field, "overhead.vpc-hop-ec2.source", "{e}");
        let no_date =
            format!("{HEADER}{}", entry("vpc-hop-ec2", "0.1", "0.2")).replace("read_on = \"2026-12-01\"\n", "");
        assert!(Overheads::parse(&no_date, "o").unwrap_err().problem.message.contains("missing field `read_on`"));
        let bad_quality = format!("{HEADER}{}", entry("vpc-hop-ec2", "0.1", "0.2")).replace("secondary", "good");
        assert_eq!(Overheads::parse(&bad_quality, "o").unwrap_err().problem.line, Some(9));
    }

    #[test]
    fn a_file_replaces_built_in_entries_by_id_and_is_recorded_with_its_hash() {
        let dir = std::env::temp_dir().join(format!("isobench-overheads-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("o.toml");
        std::fs::write(&path, format!("{HEADER}{}", entry("vpc-hop-ec2", "0.05", "0.1"))).unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, format!("{HEADER}{}", entry("vpc-hop-ec2", "-1", "0.1"))).unwrap();
        let o = Overheads::load(Some(&path));
        let e = Overheads::load(Some(&bad));
        let missing = Overheads::load(Some(&dir.join("none.toml")));
        std::fs::remove_dir_all(&dir).unwrap();
        let o = o.unwrap();
        assert_eq!(o.get(VPC_HOP_EC2).high_ms, 0.1);
        assert_eq!(o.get(LAMBDA_INIT).low_ms, 11.0, "other entries keep the built-in values");
        assert_eq!(o.info.as_of, "2026-12-01");
        assert!(o.info.source.ends_with("o.toml over built-in"), "{}", o.info.source);
        assert_eq!(o.info.sha256.as_ref().map(|s| s.len()), Some(64));
        let e = e.unwrap_err().to_string();
        assert!(e.contains("bad.toml:5: field `overhead.vpc-hop-ec2.low_ms`: -1 is not a duration"), "{e}");
        assert!(missing.unwrap_err().to_string().contains("cannot read the file"));
    }
}
