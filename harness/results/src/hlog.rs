//! `histograms.hlog`: a run's full latency histograms in the standard HdrHistogram interval-log
//! encoding (V2, deflate), so other HdrHistogram tools can read them; values in nanoseconds.
//!
//! One entry per (tier, tenant, operation, measure), tagged `tier/tenant/op/measure`. The
//! writer (used by the run) and the reader (used by the reports) live here together, with the
//! tag grammar written down once as [`HlogTag`].

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

/// Latency from each request's intended start (corrected for coordinated omission).
pub const CORRECTED: &str = "corrected";
/// Latency from each request's actual send.
pub const UNCORRECTED: &str = "uncorrected";
/// The generator's scheduling lag: actual send minus intended start.
pub const LAG: &str = "lag";
/// Time to first byte of a streamed function response, from the intended start.
pub const TTFB: &str = "ttfb";

/// The tag of one histogram: which tier, tenant, operation and measure it counts.
///
/// Written `tier/tenant/op/measure`. Every (tier, tenant, op) has [`CORRECTED`],
/// [`UNCORRECTED`] and [`LAG`]; function tiers also `corrected_cold`, `corrected_warm`,
/// `uncorrected_cold`, `uncorrected_warm`, `init` and [`TTFB`] (streamed responses) where they
/// have samples.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HlogTag {
    pub tier: String,
    pub tenant: String,
    pub op: String,
    pub measure: String,
}

impl fmt::Display for HlogTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.tier, self.tenant, self.op, self.measure)
    }
}

/// A tag that is not `tier/tenant/op/measure`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tag `{tag}` is not tier/tenant/op/measure")]
pub struct TagError {
    pub tag: String,
}

impl FromStr for HlogTag {
    type Err = TagError;

    fn from_str(s: &str) -> Result<HlogTag, TagError> {
        let parts: Vec<&str> = s.split('/').collect();
        let [tier, tenant, op, measure] = parts[..] else { return Err(TagError { tag: s.to_string() }) };
        Ok(HlogTag { tier: tier.into(), tenant: tenant.into(), op: op.into(), measure: measure.into() })
    }
}

/// Why a histogram log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    #[error("failed to encode histogram {tag}: {reason}")]
    Encode { tag: String, reason: String },
    #[error("unreadable interval log line: {reason}")]
    Line { reason: String },
    #[error("histogram {tag}: {reason}")]
    Decode { tag: String, reason: String },
}

/// Writes a run's histograms, one interval (a tier's traffic) at a time. Each entry's max
/// column is in nanoseconds like its histogram: HdrHistogram's readers decode the histogram and
/// take the column as written, so no `MaxValueDivisor` is declared (the log once declared 1e6
/// in its header while every entry was written with 1).
pub struct HlogWriter {
    buf: Vec<u8>,
    start: SystemTime,
}

impl HlogWriter {
    /// A log whose intervals are timed from `start` (the run's start).
    pub fn new(start: SystemTime) -> HlogWriter {
        let mut buf = Vec::new();
        let mut ser = V2DeflateSerializer::new();
        let header = IntervalLogWriterBuilder::new()
            .add_comment("isobench latency histograms; values in nanoseconds; tag = tier/tenant/op/measure")
            .add_comment(
                "measure: corrected (from intended start), uncorrected (from actual send), lag (send - intended); functions also corrected_cold/_warm, uncorrected_cold/_warm, init, ttfb (streamed, from intended start)",
            )
            .with_start_time(start)
            .begin_log_with(&mut buf, &mut ser)
            .map(|_| ());
        debug_assert!(header.is_ok(), "writing to a Vec cannot fail");
        HlogWriter { buf, start }
    }

    /// Appends the histograms of one interval that began at `started` and lasted `length`.
    pub fn add_interval<I, H>(&mut self, started: SystemTime, length: Duration, entries: I) -> Result<(), HlogError>
    where
        I: IntoIterator<Item = (HlogTag, H)>,
        H: Borrow<Histogram<u64>>,
    {
        let offset = started.duration_since(self.start).unwrap_or_default();
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.buf, &mut ser)
            .map_err(|e| HlogError::Encode { tag: "(interval)".into(), reason: e.to_string() })?;
        for (tag, h) in entries {
            let text = tag.to_string();
            w.write_histogram(h.borrow(), offset, length, Tag::new(&text))
                .map_err(|e| HlogError::Encode { tag: text.clone(), reason: e.to_string() })?;
        }
        Ok(())
    }

    /// The log as written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// One tagged histogram of a log, decoded on demand (readers usually want a few measures).
pub struct Entry<'a> {
    pub tag: HlogTag,
    encoded: &'a str,
}

impl Entry<'_> {
    pub fn histogram(&self) -> Result<Histogram<u64>, HlogError> {
        let bad = |reason: String| HlogError::Decode { tag: self.tag.to_string(), reason };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.encoded)
            .map_err(|e| bad(format!("bad base64: {e}")))?;
        Deserializer::new().deserialize(&mut &raw[..]).map_err(|e| bad(format!("{e:?}")))
    }
}

/// Every entry of a log with an isobench tag; entries without one are skipped.
pub fn entries(bytes: &[u8]) -> impl Iterator<Item = Result<Entry<'_>, HlogError>> {
    IntervalLogIterator::new(bytes).filter_map(|entry| {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return Some(Err(HlogError::Line { reason: format!("{e:?}") })),
        };
        let LogEntry::Interval(h) = entry else { return None };
        let tag = h.tag()?.as_str().parse().ok()?;
        Some(Ok(Entry { tag, encoded: h.encoded_histogram() }))
    })
}

/// Corrected latency per tier (values in nanoseconds), merged over tenants and operations.
#[derive(Debug, Default)]
pub struct Histograms {
    pub corrected: BTreeMap<String, Histogram<u64>>,
}

/// Reads the corrected-latency histograms of each tier, merged over its tenants and operations.
pub fn read(bytes: &[u8]) -> Result<Histograms, HlogError> {
    let mut out = Histograms::default();
    for entry in entries(bytes) {
        let entry = entry?;
        if entry.tag.measure != CORRECTED {
            continue;
        }
        let hist = entry.histogram()?;
        let merged = out
            .corrected
            .entry(entry.tag.tier.clone())
            // Auto-resizing, so tenants with different ranges merge without loss.
            .or_insert_with(|| Histogram::new(3).expect("3 significant figures"));
        merged.add(&hist).map_err(|e| HlogError::Decode { tag: entry.tag.to_string(), reason: format!("{e:?}") })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> HlogTag {
        s.parse().unwrap()
    }

    #[test]
    fn tags_round_trip_and_need_four_parts() {
        let t = tag("silo-ec2/t1/get/corrected");
        assert_eq!(
            (t.tier.as_str(), t.tenant.as_str(), t.op.as_str(), t.measure.as_str()),
            ("silo-ec2", "t1", "get", "corrected")
        );
        assert_eq!(t.to_string(), "silo-ec2/t1/get/corrected");
        assert!("silo-ec2/t1/get".parse::<HlogTag>().is_err());
        assert!("a/b/c/d/e".parse::<HlogTag>().is_err());
    }

    #[test]
    fn written_logs_read_back_merged_per_tier() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut w = HlogWriter::new(start);
        let mut a = Histogram::<u64>::new(3).unwrap();
        a.record(1_000).unwrap();
        let mut b = Histogram::<u64>::new(3).unwrap();
        b.record(2_000_000).unwrap();
        b.record(3_000_000).unwrap();
        let first = vec![
            (tag("silo-ec2/t1/get/corrected"), a.clone()),
            (tag("silo-ec2/t2/put/corrected"), b.clone()),
            (tag("silo-ec2/t1/get/lag"), b.clone()),
        ];
        w.add_interval(start + Duration::from_secs(2), Duration::from_secs(5), first).unwrap();
        w.add_interval(start, Duration::from_secs(1), [(tag("lambda-shared/t1/get/corrected"), &a)]).unwrap();
        let text = String::from_utf8_lossy(w.bytes()).to_string();
        assert!(text.starts_with("#isobench latency histograms"), "{text}");

        let all: Vec<HlogTag> = entries(w.bytes()).map(|e| e.unwrap().tag).collect();
        assert_eq!(all.len(), 4);
        let h = read(w.bytes()).unwrap();
        assert_eq!(h.corrected.len(), 2);
        assert_eq!(h.corrected["silo-ec2"].len(), 3, "corrected of both tenants, not the lag");
        assert_eq!(h.corrected["lambda-shared"].len(), 1);
    }

    /// Read back with the hdrhistogram crate's own interval-log reader, not ours: the same
    /// histograms, the max column equal to each histogram's max in ns, no divisor declared.
    #[test]
    fn the_hdrhistogram_log_reader_reads_back_what_was_written() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut w = HlogWriter::new(start);
        let mut written = Vec::new();
        for (i, name) in ["silo-ec2/t1/get/corrected", "shared-ec2/t2/put/lag"].iter().enumerate() {
            let mut h = Histogram::<u64>::new(3).unwrap();
            for v in [850, 12_345, 4_560_000, 1_230_000_000 + i as u64] {
                h.record_n(v, 3).unwrap();
            }
            written.push((tag(name), h));
        }
        w.add_interval(start + Duration::from_secs(3), Duration::from_secs(7), written.clone()).unwrap();

        let text = std::str::from_utf8(w.bytes()).unwrap();
        assert!(!text.contains("MaxValueDivisor"), "{text}");
        let mut read_back = Vec::new();
        for entry in IntervalLogIterator::new(w.bytes()) {
            let LogEntry::Interval(i) = entry.unwrap() else { continue };
            let raw = base64::engine::general_purpose::STANDARD.decode(i.encoded_histogram()).unwrap();
            let h: Histogram<u64> = Deserializer::new().deserialize(&mut &raw[..]).unwrap();
            assert_eq!(i.max(), h.max() as f64, "the max column is the histogram's max in ns");
            assert_eq!((i.start_timestamp(), i.duration()), (Duration::from_secs(3), Duration::from_secs(7)));
            read_back.push((i.tag().unwrap().as_str().parse::<HlogTag>().unwrap(), h));
        }
        assert_eq!(read_back.len(), written.len());
        for ((wt, wh), (rt, rh)) in written.iter().zip(&read_back) {
            assert_eq!(wt, rt);
            assert_eq!(wh, rh, "{wt}");
            assert_eq!(rh.value_at_quantile(1.0), rh.highest_equivalent(1_230_000_000), "{wt}");
            assert_eq!(rh.len(), 12);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let bad = b"Tag=a/b/c/corrected,0.000,1.000,1.0,not-base64!\n";
        assert!(read(bad).is_err());
    }
}
