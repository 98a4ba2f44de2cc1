//! Reads `histograms.hlog` back: the corrected-latency histograms of each tier, merged over its
//! tenants and operations, so the report can draw full percentile curves rather than the five
//! percentiles kept in the summary.

use std::collections::BTreeMap;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use crate::ReportError;

/// Corrected latency per tier (values in nanoseconds), merged over tenants and operations.
#[derive(Debug, Default)]
pub struct Histograms {
    pub corrected: BTreeMap<String, Histogram<u64>>,
}

/// Parses an interval log written by `isobench run` (tags `tier/tenant/op/measure`).
pub fn read(bytes: &[u8]) -> Result<Histograms, ReportError> {
    let mut out = Histograms::default();
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| ReportError::Histograms(format!("unreadable interval log line: {e:?}")))?;
        let LogEntry::Interval(h) = entry else { continue };
        let Some(tag) = h.tag() else { continue };
        let parts: Vec<&str> = tag.as_str().split('/').collect();
        let [tier, _tenant, _op, "corrected"] = parts[..] else { continue };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.encoded_histogram())
            .map_err(|e| ReportError::Histograms(format!("histogram {}: bad base64: {e}", tag.as_str())))?;
        let hist: Histogram<u64> = de
            .deserialize(&mut &raw[..])
            .map_err(|e| ReportError::Histograms(format!("histogram {}: {e:?}", tag.as_str())))?;
        let merged = match out.corrected.entry(tier.to_string()) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            // Auto-resizing, so tenants with different ranges merge without loss.
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Histogram::new(3).expect("3 significant figures"))
            }
        };
        merged.add(&hist).map_err(|e| ReportError::Histograms(format!("histogram {}: {e:?}", tag.as_str())))?;
    }
    Ok(out)
}

/// A percentile curve: (nines, latency in ms) with nines = −log10(1 − q), from 0 (p0) to 4
/// (p99.99); the usual HdrHistogram plot, where the tail gets as much room as the body.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    (0..=200)
        .map(|i| {
            let nines = f64::from(i) * 0.02;
            let q = 1.0 - 10f64.powf(-nines);
            (nines, h.value_at_quantile(q) as f64 / 1e6)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_reaches_the_tail() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let c = curve(&h);
        assert_eq!(c.len(), 201);
        assert!((c[0].1 - 0.001).abs() < 1e-4, "p0 is the minimum: {:?}", c[0]);
        let p99 = c.iter().find(|(n, _)| (*n - 2.0).abs() < 1e-9).unwrap().1;
        assert!((p99 - 9.9).abs() < 0.05, "p99 of 1..10ms is 9.9ms: {p99}");
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1), "monotone");
    }
}
