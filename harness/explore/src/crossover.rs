//! Where two sampled curves cross: the sign of their difference changes between two samples,
//! or is zero at one. Pure arithmetic on samples; [`crate::analysis`] samples the cost model
//! and refines the crossing with the model itself.

/// A change of which curve is lower.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    /// Where the difference is zero: a sample's x when `exact`, else interpolated linearly
    /// between samples `left` and `right`.
    pub x: f64,
    pub left: usize,
    pub right: usize,
    /// The difference is zero at a sample (`left == right`).
    pub exact: bool,
    /// Curve `a` is the lower one before the crossing.
    pub a_lower_before: bool,
}

/// Every crossing of `a` and `b` sampled at ascending `xs`. Samples within a relative
/// `1e-9` of each other count as equal; equal stretches that do not change the order are
/// touches, not crossings.
pub fn crossings(xs: &[f64], a: &[f64], b: &[f64]) -> Vec<Crossing> {
    let n = xs.len().min(a.len()).min(b.len());
    let sign = |i: usize| {
        let d = a[i] - b[i];
        let scale = a[i].abs().max(b[i].abs()).max(f64::MIN_POSITIVE);
        if d.abs() <= 1e-9 * scale { 0 } else { d.signum() as i8 }
    };
    let mut out = Vec::new();
    let mut last: Option<(usize, i8)> = None;
    for i in 0..n {
        let s = sign(i);
        if s == 0 {
            continue;
        }
        if let Some((j, prev)) = last
            && prev != s
        {
            out.push(if i == j + 1 {
                let (dj, di) = (a[j] - b[j], a[i] - b[i]);
                let x = xs[j] + (xs[i] - xs[j]) * dj / (dj - di);
                Crossing { x, left: j, right: i, exact: false, a_lower_before: prev < 0 }
            } else {
                // Equal at the samples between: the first of them is where the order changes.
                let k = j + 1;
                Crossing { x: xs[k], left: k, right: k, exact: true, a_lower_before: prev < 0 }
            });
        }
        last = Some((i, s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_straight_lines_cross_where_they_are_equal() {
        // a = 2x, b = 100 - x: equal at x = 33.33.
        let xs: Vec<f64> = (0..=10).map(|i| f64::from(i) * 10.0).collect();
        let a: Vec<f64> = xs.iter().map(|x| 2.0 * x).collect();
        let b: Vec<f64> = xs.iter().map(|x| 100.0 - x).collect();
        let c = crossings(&xs, &a, &b);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!((c[0].x - 100.0 / 3.0).abs() < 1e-9, "{c:?}");
        assert_eq!((c[0].left, c[0].right, c[0].exact, c[0].a_lower_before), (3, 4, false, true));
    }

    #[test]
    fn parallel_lines_do_not_cross() {
        let xs = [1.0, 2.0, 3.0];
        assert!(crossings(&xs, &[1.0, 2.0, 3.0], &[2.0, 3.0, 4.0]).is_empty());
        // Touching without changing the order is not a crossing either.
        assert!(crossings(&xs, &[1.0, 3.0, 1.0], &[2.0, 3.0, 2.0]).is_empty());
    }

    #[test]
    fn a_crossing_exactly_at_a_sample_is_that_sample() {
        let xs = [8.0, 32.0, 128.0];
        let c = crossings(&xs, &[1.0, 5.0, 9.0], &[5.0, 5.0, 5.0]);
        assert_eq!(c, [Crossing { x: 32.0, left: 1, right: 1, exact: true, a_lower_before: true }]);
    }

    #[test]
    fn several_crossings_are_all_found() {
        let xs = [0.0, 1.0, 2.0, 3.0];
        let c = crossings(&xs, &[0.0, 2.0, 0.0, 2.0], &[1.0, 1.0, 1.0, 1.0]);
        assert_eq!(c.len(), 3);
        assert_eq!(c.iter().map(|c| c.a_lower_before).collect::<Vec<_>>(), [true, false, true]);
    }
}
