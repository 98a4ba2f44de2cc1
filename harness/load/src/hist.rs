//! [`Hist`]: a latency histogram that costs nothing until it is recorded into, and little while
//! it holds few samples.
//!
//! An auto-resizing HdrHistogram at 3 significant figures allocates one counter per
//! distinguishable value up to its largest value: about 150 KB once it holds a millisecond
//! latency. A run keeps nine per (tenant, operation), so 1,000 tenants would need gigabytes for
//! cells that each hold a few dozen samples. A `Hist` therefore starts empty (no allocation),
//! keeps its raw samples while they are few, and turns into a real histogram past
//! [`SAMPLE_LIMIT`]. Reading it builds the histogram the samples would have made; recording is
//! order-independent, so every figure is exactly what a histogram recorded from the start gives.

use std::borrow::Cow;
use std::sync::LazyLock;

use hdrhistogram::Histogram;

/// Significant figures of every histogram (0.1% relative precision).
pub const SIGFIG: u8 = 3;

/// Samples kept raw before switching to a histogram: 32 KiB of samples, against the ~150 KB
/// of a histogram that holds millisecond values.
pub const SAMPLE_LIMIT: usize = 4096;

/// An empty auto-resizing histogram at [`SIGFIG`] significant figures.
pub fn new_histogram() -> Histogram<u64> {
    // Auto-resizing: any latency up to u64::MAX ns is recorded without clipping.
    Histogram::new(SIGFIG).expect("3 significant figures is a valid histogram precision")
}

/// Records a value, growing the histogram as needed (`saturating_record` would clamp to the
/// current range instead of growing it).
#[inline]
pub(crate) fn rec(h: &mut Histogram<u64>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// The shared empty histogram an empty [`Hist`] reads as.
static EMPTY: LazyLock<Histogram<u64>> = LazyLock::new(new_histogram);

/// A histogram of nanosecond values, allocated on first record and compact while small.
#[derive(Debug, Clone, Default)]
pub struct Hist {
    repr: Repr,
}

#[derive(Debug, Clone, Default)]
enum Repr {
    #[default]
    Empty,
    Samples(Vec<u64>),
    Full(Box<Histogram<u64>>),
}

impl Hist {
    pub fn new() -> Hist {
        Hist::default()
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        match &mut self.repr {
            Repr::Empty => self.repr = Repr::Samples(vec![v]),
            Repr::Samples(s) if s.len() < SAMPLE_LIMIT => s.push(v),
            Repr::Samples(s) => {
                let mut h = to_histogram(s);
                rec(&mut h, v);
                self.repr = Repr::Full(Box::new(h));
            }
            Repr::Full(h) => rec(h, v),
        }
    }

    /// Adds every value of `other`.
    pub fn add(&mut self, other: &Hist) {
        match (&mut self.repr, &other.repr) {
            (_, Repr::Empty) => {}
            (Repr::Empty, _) => self.repr = other.repr.clone(),
            (Repr::Samples(a), Repr::Samples(b)) if a.len() + b.len() <= SAMPLE_LIMIT => a.extend_from_slice(b),
            (Repr::Full(a), Repr::Full(b)) => a.add(&**b).expect("auto-resizing histograms merge"),
            (Repr::Full(a), Repr::Samples(b)) => b.iter().for_each(|v| rec(a, *v)),
            (Repr::Samples(a), _) => {
                let mut h = to_histogram(a);
                h.add(&*other.histogram()).expect("auto-resizing histograms merge");
                self.repr = Repr::Full(Box::new(h));
            }
        }
    }

    /// Adds every value of a histogram (one decoded from an agent's stream).
    pub fn add_histogram(&mut self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        let mut full = self.histogram().into_owned();
        full.add(h).expect("auto-resizing histograms merge");
        self.repr = Repr::Full(Box::new(full));
    }

    /// The histogram these values make: borrowed when there is one, built from the samples
    /// otherwise (read it once per figure set, not once per figure).
    pub fn histogram(&self) -> Cow<'_, Histogram<u64>> {
        match &self.repr {
            Repr::Empty => Cow::Borrowed(&EMPTY),
            Repr::Samples(s) => Cow::Owned(to_histogram(s)),
            Repr::Full(h) => Cow::Borrowed(h),
        }
    }

    /// Number of values recorded.
    pub fn len(&self) -> u64 {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Samples(s) => s.len() as u64,
            Repr::Full(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn value_at_quantile(&self, q: f64) -> u64 {
        self.histogram().value_at_quantile(q)
    }

    pub fn max(&self) -> u64 {
        self.histogram().max()
    }

    pub fn min(&self) -> u64 {
        self.histogram().min()
    }

    pub fn mean(&self) -> f64 {
        self.histogram().mean()
    }

    /// The lowest value equivalent to `v` at this precision (independent of the contents).
    pub fn lowest_equivalent(&self, v: u64) -> u64 {
        EMPTY.lowest_equivalent(v)
    }

    /// The highest value equivalent to `v` at this precision (independent of the contents).
    pub fn highest_equivalent(&self, v: u64) -> u64 {
        EMPTY.highest_equivalent(v)
    }

    /// Bytes this holds on the heap (for memory accounting and its tests).
    pub fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Samples(s) => s.capacity() * size_of::<u64>(),
            Repr::Full(h) => size_of::<Histogram<u64>>() + h.distinct_values() * size_of::<u64>(),
        }
    }
}

fn to_histogram(samples: &[u64]) -> Histogram<u64> {
    let mut h = new_histogram();
    for v in samples {
        rec(&mut h, *v);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Latency-like values spread over four decades, deterministic.
    fn values(n: usize) -> impl Iterator<Item = u64> {
        (0..n as u64).map(|i| 20_000 + (i * 7_919 % 1_000) * (1 + i % 97) * 1_000)
    }

    fn reference(n: usize) -> Histogram<u64> {
        let mut h = new_histogram();
        values(n).for_each(|v| rec(&mut h, v));
        h
    }

    #[test]
    fn an_untouched_hist_allocates_nothing() {
        let h = Hist::new();
        assert_eq!(h.heap_bytes(), 0);
        assert!(h.is_empty());
        assert_eq!(h.histogram().len(), 0);
        let mut m = Hist::new();
        m.add(&h);
        assert_eq!(m.heap_bytes(), 0, "merging an empty one allocates nothing either");
    }

    #[test]
    fn figures_equal_a_histogram_recorded_from_the_start() {
        for n in [1, 10, SAMPLE_LIMIT, SAMPLE_LIMIT + 1, 3 * SAMPLE_LIMIT] {
            let mut h = Hist::new();
            values(n).for_each(|v| h.record(v));
            let r = reference(n);
            assert_eq!(*h.histogram(), r, "n = {n}");
            assert_eq!((h.len(), h.max(), h.min()), (r.len(), r.max(), r.min()), "n = {n}");
            for q in [0.5, 0.9, 0.99, 0.999] {
                assert_eq!(h.value_at_quantile(q), r.value_at_quantile(q), "n = {n}, q = {q}");
            }
        }
    }

    #[test]
    fn small_cells_stay_far_below_a_histogram() {
        let mut h = Hist::new();
        values(50).for_each(|v| h.record(v));
        let full = reference(50);
        let full_bytes = full.distinct_values() * size_of::<u64>();
        assert!(h.heap_bytes() * 50 < full_bytes, "{} B raw vs {full_bytes} B as a histogram", h.heap_bytes());
    }

    #[test]
    fn merges_are_exact_in_every_combination() {
        for (a, b) in [(3, 5), (SAMPLE_LIMIT - 2, 5), (SAMPLE_LIMIT + 3, 7), (9, 2 * SAMPLE_LIMIT), (0, 4)] {
            let mut x = Hist::new();
            let mut y = Hist::new();
            values(a + b).take(a).for_each(|v| x.record(v));
            values(a + b).skip(a).for_each(|v| y.record(v));
            x.add(&y);
            assert_eq!(*x.histogram(), reference(a + b), "{a} + {b}");
            assert_eq!(x.len(), (a + b) as u64);
        }
    }
}
