//! Small text helpers shared by the charts and the page.

/// Escapes text for HTML/SVG element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A duration given in microseconds, in the unit that reads best.
pub fn ms(us: f64) -> String {
    if us < 1.0 {
        format!("{:.0}ns", us * 1e3)
    } else if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1e6 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// An axis label in microseconds: the unit that reads best, without trailing zeros.
pub fn axis_ms(us: f64) -> String {
    let (v, unit) = if us == 0.0 {
        return "0".into();
    } else if us < 1000.0 {
        (us, "µs")
    } else if us < 1e6 {
        (us / 1e3, "ms")
    } else {
        (us / 1e6, "s")
    };
    let text = format!("{v:.2}");
    format!("{}{unit}", text.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn units() {
        assert_eq!(ms(0.5), "500ns");
        assert_eq!(ms(250.0), "250µs");
        assert_eq!(ms(1500.0), "1.50ms");
        assert_eq!(ms(2.5e6), "2.50s");
        assert_eq!(axis_ms(20_000.0), "20ms");
        assert_eq!(axis_ms(1500.0), "1.5ms");
        assert_eq!(axis_ms(500.0), "500µs");
        assert_eq!(axis_ms(0.0), "0");
    }
}

/// The commit a run's harness was built from, short, and whether its tree had uncommitted
/// changes: `abd9ac850bf3`, `abd9ac850bf3, with uncommitted changes` or `unknown commit`.
pub fn provenance(t: &isobench_results::ToolInfo) -> String {
    let Some(c) = t.commit.as_deref() else { return "unknown commit".into() };
    let short = &c[..12.min(c.len())];
    match t.dirty {
        Some(true) => format!("{short}, with uncommitted changes"),
        Some(false) => short.to_string(),
        None => format!("{short}, tree state unknown"),
    }
}

/// How busy the host was: `load average 0.52 → 1.90 (1 min, start → end)`, and whether it was
/// loaded (the 1-minute load above the host's CPUs at either end), or `None` when not recorded.
pub fn load(h: &isobench_results::HostInfo) -> Option<(String, bool)> {
    let (a, b) = (h.load_at_start?, h.load_at_end?);
    let loaded = a[0].max(b[0]) > h.cpus as f64;
    Some((format!("load average {:.2} → {:.2} (1 min, start → end)", a[0], b[0]), loaded))
}
