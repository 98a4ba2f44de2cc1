//! The matrix a sweep runs: its dimensions from `--vary` flags or the scenario's `[explore]`
//! section, its points and their keys, and each point's scenario text.

use isobench_core::scenario::Scenario;
use isobench_core::scenario::explore::{DIMENSIONS, check_rates, check_tenants, parse_count, tenant_list_conflict};
use isobench_core::units::parse_rate;
use isobench_results::sweep::Axis;

use crate::error::ExploreError;

/// The values a sweep runs, ascending; a dimension not varied holds the scenario's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub tenants: Vec<u64>,
    pub rates: Vec<f64>,
    pub varied: Vec<Axis>,
    /// `--vary` or `[explore]`.
    pub from: &'static str,
}

/// One point of the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub tenants: u64,
    pub rate: f64,
}

impl Point {
    /// `tenants=8,rate=1k`: stable, readable, and a folder name.
    pub fn key(&self) -> String {
        format!("tenants={},rate={}", self.tenants, rate_label(self.rate))
    }
}

/// A rate as people write it: `100`, `1k`, `2.5k`, `1M`; at most three decimals.
pub fn rate_label(r: f64) -> String {
    let clean = |v: f64| ((v * 1000.0).round() - v * 1000.0).abs() < 1e-6;
    let (v, suffix) = if r >= 1e6 && clean(r / 1e6) {
        (r / 1e6, "M")
    } else if r >= 1e3 && clean(r / 1e3) {
        (r / 1e3, "k")
    } else {
        (r, "")
    };
    format!("{}{suffix}", (v * 1000.0).round() / 1000.0)
}

/// One `--vary` flag: `tenants=2,8,32` or `rate=100,1k`.
pub fn parse_vary(arg: &str) -> Result<(Axis, Vec<f64>), ExploreError> {
    let bad = |m: String| ExploreError::BadInput(format!("--vary {arg}: {m}"));
    let (name, list) = arg
        .split_once('=')
        .ok_or_else(|| bad(format!("expected DIMENSION=V1,V2,...; accepted dimensions: {DIMENSIONS}")))?;
    let values: Vec<&str> = list.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
    match name.trim() {
        "tenants" => {
            let counts = values.iter().map(|v| parse_count(v)).collect::<Result<Vec<u64>, String>>().map_err(&bad)?;
            check_tenants(&counts).map_err(|(m, a)| bad(format!("{m}; accepted: {a}")))?;
            Ok((Axis::Tenants, counts.into_iter().map(|c| c as f64).collect()))
        }
        "rate" => {
            let rates = values
                .iter()
                .map(|v| parse_rate(v).map_err(|e| e.to_string()))
                .collect::<Result<Vec<f64>, String>>()
                .map_err(&bad)?;
            check_rates(&rates).map_err(|(m, a)| bad(format!("{m}; accepted: {a}")))?;
            Ok((Axis::Rate, rates))
        }
        other => Err(bad(format!("unknown dimension `{other}`; accepted: {DIMENSIONS}"))),
    }
}

impl Matrix {
    /// The matrix of the `--vary` flags if any (they replace `[explore]` as a whole), else of
    /// the scenario's `[explore]` section. `src` is the scenario's text, to see whether it lists
    /// tenant weights or ids.
    pub fn resolve(flags: &[String], scenario: &Scenario, src: &str) -> Result<Matrix, ExploreError> {
        let mut m = Matrix {
            tenants: vec![scenario.tenants.len() as u64],
            rates: vec![scenario.run.rate.0],
            varied: Vec::new(),
            from: "--vary",
        };
        if flags.is_empty() {
            let Some(e) = &scenario.explore else {
                return Err(ExploreError::BadInput(format!(
                    "nothing to vary: the scenario has no [explore] section and no --vary was given; accepted: \
                     --vary with {DIMENSIONS}, or `[explore] vary = {{ tenants = [2, 8, 32], rate = [\"100\", \"1k\"] }}`"
                )));
            };
            m.from = "[explore]";
            if let Some(t) = &e.vary.tenants {
                m.set(Axis::Tenants, t.iter().map(|c| c.0 as f64).collect());
            }
            if let Some(r) = &e.vary.rate {
                m.set(Axis::Rate, r.iter().map(|r| r.0).collect());
            }
            return Ok(m);
        }
        for f in flags {
            let (axis, values) = parse_vary(f)?;
            if m.varied.contains(&axis) {
                return Err(ExploreError::BadInput(format!(
                    "--vary {f}: `{}` is varied twice; accepted: one --vary per dimension",
                    axis.as_str()
                )));
            }
            if axis == Axis::Tenants
                && let Some((field, message, accepted)) = tenant_list_conflict(lists(src, "weights"), lists(src, "ids"))
            {
                return Err(ExploreError::BadInput(format!(
                    "--vary {f}: the scenario's {message} ({field}); accepted: {accepted}"
                )));
            }
            m.set(axis, values);
        }
        Ok(m)
    }

    fn set(&mut self, axis: Axis, mut values: Vec<f64>) {
        values.sort_by(f64::total_cmp);
        match axis {
            Axis::Tenants => self.tenants = values.into_iter().map(|v| v as u64).collect(),
            Axis::Rate => self.rates = values,
        }
        self.varied.push(axis);
        self.varied.sort();
    }

    /// Every point, tenants outermost, each dimension ascending.
    pub fn points(&self) -> Vec<Point> {
        self.tenants.iter().flat_map(|&tenants| self.rates.iter().map(move |&rate| Point { tenants, rate })).collect()
    }
}

/// Whether the scenario's `[tenants]` sets `key`.
fn lists(src: &str, key: &str) -> bool {
    let Ok(doc) = src.parse::<toml::Table>() else { return false };
    doc.get("tenants").and_then(|t| t.get(key)).is_some()
}

/// The point's scenario: the sweep's text with the point's values written in (only the varied
/// dimensions) and `[explore]` removed, so that `isobench run` on it would run this point.
pub fn point_source(src: &str, point: &Point, varied: &[Axis]) -> Result<String, ExploreError> {
    let mut doc: toml_edit::DocumentMut = src
        .parse()
        .map_err(|e: toml_edit::TomlError| ExploreError::BadInput(format!("the scenario is not valid TOML: {e}")))?;
    if varied.contains(&Axis::Tenants) {
        doc["tenants"]["count"] = toml_edit::value(point.tenants as i64);
    }
    if varied.contains(&Axis::Rate) {
        doc["run"]["rate"] = toml_edit::value(rate_label(point.rate));
    }
    doc.remove("explore");
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SRC: &str = "format_version = 1\nname = \"t\"\n[run]\nduration = \"1s\"\nrate = \"1k\"  # per tier\n\
                       [tenants]\ncount = 3\n[[tier]]\nid = \"silo-ec2\"\ninstance_type = \"t3.micro\"\n\
                       [explore]\nvary = { tenants = [8, 2], rate = [\"100\"] }\n";

    fn scenario(src: &str) -> Scenario {
        Scenario::parse(src, Path::new("s.toml")).unwrap()
    }

    fn flags(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rate_labels_read_as_written() {
        assert_eq!(rate_label(100.0), "100");
        assert_eq!(rate_label(1000.0), "1k");
        assert_eq!(rate_label(2500.0), "2.5k");
        assert_eq!(rate_label(1e6), "1M");
        assert_eq!(rate_label(1234.5678), "1234.568");
        assert_eq!(rate_label(0.5), "0.5");
        assert_eq!(Point { tenants: 8, rate: 1000.0 }.key(), "tenants=8,rate=1k");
    }

    #[test]
    fn vary_flags_parse_with_units_and_refuse_bad_input() {
        assert_eq!(parse_vary("tenants=2,8,1k").unwrap(), (Axis::Tenants, vec![2.0, 8.0, 1000.0]));
        assert_eq!(parse_vary("rate=100,1k").unwrap(), (Axis::Rate, vec![100.0, 1000.0]));
        let e = parse_vary("memory=1,2").unwrap_err().to_string();
        assert!(e.contains("unknown dimension `memory`") && e.contains("`tenants`"), "{e}");
        assert!(parse_vary("tenants=").unwrap_err().to_string().contains("empty"));
        assert!(parse_vary("tenants").unwrap_err().to_string().contains("DIMENSION=V1,V2"));
        assert!(parse_vary("rate=1k,1000").unwrap_err().to_string().contains("listed twice"));
        assert!(parse_vary("tenants=2.5").unwrap_err().to_string().contains("whole number"));
    }

    #[test]
    fn flags_replace_the_section_and_fixed_dimensions_keep_the_scenario_value() {
        let s = scenario(SRC);
        let m = Matrix::resolve(&[], &s, SRC).unwrap();
        assert_eq!((m.tenants.clone(), m.rates.clone(), m.from), (vec![2, 8], vec![100.0], "[explore]"));
        let m = Matrix::resolve(&flags(&["rate=2k,500"]), &s, SRC).unwrap();
        assert_eq!(
            (m.tenants.clone(), m.rates.clone(), m.varied.clone()),
            (vec![3], vec![500.0, 2000.0], vec![Axis::Rate])
        );
        let keys: Vec<String> = m.points().iter().map(Point::key).collect();
        assert_eq!(keys, ["tenants=3,rate=500", "tenants=3,rate=2k"]);
        let twice = Matrix::resolve(&flags(&["rate=1", "rate=2"]), &s, SRC).unwrap_err().to_string();
        assert!(twice.contains("varied twice"), "{twice}");
    }

    #[test]
    fn a_varied_tenant_count_refuses_explicit_weights() {
        let src = SRC.replace("count = 3", "count = 3\nweights = [1, 1, 2]").replace("tenants = [8, 2], ", "");
        let s = scenario(&src);
        let e = Matrix::resolve(&flags(&["tenants=2,4"]), &s, &src).unwrap_err().to_string();
        assert!(e.contains("tenants.weights") && e.contains("vary only `rate`"), "{e}");
        assert!(Matrix::resolve(&flags(&["rate=1,2"]), &s, &src).is_ok());
    }

    #[test]
    fn nothing_to_vary_says_what_would_be() {
        let src = SRC.split("[explore]").next().unwrap().to_string();
        let e = Matrix::resolve(&[], &scenario(&src), &src).unwrap_err().to_string();
        assert!(e.contains("nothing to vary") && e.contains("--vary"), "{e}");
    }

    #[test]
    fn a_point_scenario_carries_the_point_and_no_explore_section() {
        let p = Point { tenants: 8, rate: 1000.0 };
        let text = point_source(SRC, &p, &[Axis::Tenants]).unwrap();
        let s = scenario(&text);
        assert_eq!((s.tenants.len(), s.run.rate.0), (8, 1000.0));
        assert!(s.explore.is_none() && !text.contains("[explore]"));
        let text = point_source(SRC, &Point { tenants: 3, rate: 250.0 }, &[Axis::Rate]).unwrap();
        assert_eq!(scenario(&text).run.rate.0, 250.0);
    }
}
