//! The projected-AWS chart: per tier, the measured p50 and p99 (points) beside the projected
//! ranges on AWS (bars, modelled). A child of `charts` so that it shares its layout helpers.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Area, Drawn, Layer, Log, colour, compose, log_axis, log_range, short, text};
use crate::error::ReportError;
use crate::fmt::{axis_ms, ms};

/// One tier's measured percentiles and their projected ranges, in milliseconds.
pub struct ProjectedBar {
    pub tier: String,
    pub measured_p50_ms: f64,
    pub measured_p99_ms: f64,
    pub p50_ms: (f64, f64),
    pub p99_ms: (f64, f64),
}

type Axes<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, Log>>;

fn axes<'a, 'b>(
    area: &'a Area<'b>,
    n: usize,
    y: std::ops::Range<f64>,
) -> Result<Axes<'a, 'b>, Box<dyn std::error::Error>> {
    Ok(ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, log_axis(y))?)
}

/// Per tier: p50 on the left, p99 on the right; a dot for the measured value and a bar for
/// the projected range on AWS (modelled). Log scale, since the Lambda invoke path dwarfs a VPC hop.
pub fn projected(tiers: &[ProjectedBar]) -> Result<String, ReportError> {
    let size = (960, 420);
    let n = tiers.len();
    let y = log_range(tiers.iter().flat_map(|t| [t.measured_p50_ms, t.measured_p99_ms, t.p50_ms.1, t.p99_ms.1]));
    let frame = |area: &Area| -> Drawn {
        area.fill(&WHITE)?;
        let mut chart = axes(area, n, y.clone())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| axis_ms(*v * 1e3))
            .x_desc("tier: p50 (left), p99 (right); dot measured here, bar projected on AWS (modelled)")
            .y_desc("corrected latency (log)")
            .label_style(text(16))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .axis_desc_style(text(17))
            .draw()?;
        let style = text(16).pos(Pos::new(HPos::Center, VPos::Top));
        let names = tiers
            .iter()
            .enumerate()
            .map(|(i, t)| EmptyElement::at((i as f64, y.start)) + Text::new(short(&t.tier), (0, 8), style.clone()));
        chart.draw_series(names)?;
        Ok(())
    };
    let layers = tiers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (c, y) = (colour(&t.tier, i), y.clone());
            let (m50, m99, p50, p99) = (t.measured_p50_ms, t.measured_p99_ms, t.p50_ms, t.p99_ms);
            Layer {
                attrs: vec![
                    ("tier", t.tier.clone()),
                    ("measured-p99-ms", format!("{m99:.3}")),
                    ("p99-low-ms", format!("{:.3}", p99.0)),
                    ("p99-high-ms", format!("{:.3}", p99.1)),
                ],
                title: format!(
                    "{}: measured p50 {}, p99 {}; projected on AWS (modelled) p50 {}–{}, p99 {}–{}",
                    t.tier,
                    ms(m50 * 1e3),
                    ms(m99 * 1e3),
                    ms(p50.0 * 1e3),
                    ms(p50.1 * 1e3),
                    ms(p99.0 * 1e3),
                    ms(p99.1 * 1e3)
                ),
                draw: Box::new(move |area: &Area| -> Drawn {
                    let mut chart = axes(area, n, y.clone())?;
                    for (dx, measured, (lo, hi)) in [(-0.18, m50, p50), (0.18, m99, p99)] {
                        let x = i as f64 + dx;
                        let bar = Rectangle::new([(x - 0.1, lo.max(y.start)), (x + 0.1, hi)], c.mix(0.35).filled());
                        chart.draw_series(std::iter::once(bar))?;
                        let dot = Circle::new((x, measured.max(y.start)), 6, c.filled());
                        chart.draw_series(std::iter::once(dot))?;
                    }
                    Ok(())
                }),
            }
        })
        .collect();
    compose("projected", size, frame, layers)
}
