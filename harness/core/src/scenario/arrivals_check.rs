//! Checks of `[arrivals]`; the trace file is read here so that a bad row stops the run before
//! anything is deployed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::arrivals::{ArrivalsSpec, BurstSpec, PhaseSpec, TenantMix, Trace, TraceSpec};
use crate::diagnostics::Checker;

/// Most a rate multiplier (phase level, burst) may be.
const MAX_LEVEL: f64 = 1000.0;

pub(super) fn validate(a: &ArrivalsSpec, has_weights: bool, file: &Path, c: &mut Checker) -> Option<Arc<Trace>> {
    if a.tenants == TenantMix::Zipf {
        c.check(
            a.zipf_s > 0.0 && a.zipf_s <= 10.0,
            "arrivals.zipf_s",
            format!("exponent {} is out of range", a.zipf_s),
            "more than 0 and at most 10",
        );
        c.check(
            !has_weights,
            "arrivals.tenants",
            "`tenants = \"zipf\"` and `[tenants] weights` both set the tenants' shares",
            "one of them",
        );
    }
    for (i, p) in a.phases.iter().enumerate() {
        check_phase(p, &format!("arrivals.phases[{i}]"), c);
    }
    if !a.phases.is_empty() && a.phases.iter().all(|p| p.levels() == (0.0, 0.0)) {
        c.fail("arrivals.phases", "every phase has level 0: no traffic", "at least one phase above 0");
    }
    if let Some(b) = &a.burst {
        check_burst(b, c);
    }
    let t = a.trace.as_ref()?;
    let mut alone = true;
    for (set, what) in [
        (!a.phases.is_empty(), "`phases`"),
        (a.burst.is_some(), "`burst`"),
        (a.tenants == TenantMix::Zipf, "`tenants = \"zipf\"`"),
    ] {
        if set {
            alone = false;
            c.fail(
                "arrivals.trace",
                format!("a trace sets every tenant's rate; {what} cannot be combined with it"),
                "",
            );
        }
    }
    check_trace_numbers(t, c);
    let path = file.parent().unwrap_or(Path::new("")).join(&t.file);
    let trace = match Trace::load(&path) {
        Ok(trace) => trace,
        Err(e) => {
            c.fail("arrivals.trace.file", e.to_string(), "a CSV in the Azure Functions 2019 trace layout");
            return None;
        }
    };
    c.check(
        (t.first_minute as usize) <= trace.minutes,
        "arrivals.trace.first_minute",
        format!("minute {} is past the trace's {} minutes", t.first_minute, trace.minutes),
        &format!("1 to {}", trace.minutes),
    );
    alone.then(|| Arc::new(trace))
}

fn check_phase(p: &PhaseSpec, at: &str, c: &mut Checker) {
    c.check(p.duration.0 >= Duration::from_millis(1), &format!("{at}.duration"), "phase too short", "at least 1ms");
    let ramp = (p.from.is_some(), p.to.is_some());
    if p.level.is_some() == (ramp != (false, false)) || (ramp.0 != ramp.1) {
        c.fail(at, "a phase needs either `level`, or both `from` and `to`", "`level = 0.5` or `from = 0.1, to = 1.0`");
        return;
    }
    for (name, v) in [("level", p.level), ("from", p.from), ("to", p.to)] {
        if let Some(v) = v {
            c.check(
                (0.0..=MAX_LEVEL).contains(&v),
                &format!("{at}.{name}"),
                format!("multiplier {v} is out of range"),
                "0 to 1000 (a multiplier of `run.rate`)",
            );
        }
    }
}

fn check_burst(b: &BurstSpec, c: &mut Checker) {
    c.check(b.period.0 >= Duration::from_millis(10), "arrivals.burst.period", "period too short", "at least 10ms");
    c.check(
        b.length.0 > Duration::ZERO && b.length.0 < b.period.0,
        "arrivals.burst.length",
        format!("length {} does not fit the period {}", b.length, b.period),
        "more than 0s and less than `period`",
    );
    c.check(
        b.multiplier > 0.0 && b.multiplier <= MAX_LEVEL,
        "arrivals.burst.multiplier",
        format!("multiplier {} is out of range", b.multiplier),
        "more than 0 and at most 1000",
    );
}

fn check_trace_numbers(t: &TraceSpec, c: &mut Checker) {
    c.check(t.first_minute >= 1, "arrivals.trace.first_minute", "minutes count from 1", "1 to 1440");
    if let Some(m) = t.minutes {
        c.check((1..=1440).contains(&m), "arrivals.trace.minutes", format!("{m} minutes"), "1 to 1440");
    }
    c.check(
        t.minute.0 >= Duration::from_millis(10) && t.minute.0 <= Duration::from_secs(3600),
        "arrivals.trace.minute",
        format!("{} per trace minute is out of range", t.minute),
        "10ms to 1h (`60s` replays in real time)",
    );
    c.check(
        t.scale > 0.0 && t.scale <= 1e6,
        "arrivals.trace.scale",
        format!("scale {} is out of range", t.scale),
        "more than 0 and at most 1000000",
    );
}
