//! The sweep's charts: each tier's modelled monthly cost along one dimension (dashed: the cost
//! model between and beyond the runs; filled circles: the measured runs), and measured p99
//! against the offered rate.

use super::*;

/// Log-log axes with room on the right for the legend.
fn sweep_axes<'a, 'b>(area: &'a Area<'b>, x: Range<f64>, y: Range<f64>) -> Built<'a, 'b, Log, Log> {
    ChartBuilder::on(area)
        .margin(12)
        .margin_right(240)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(log_axis(x), log_axis(y))
}

/// One tier's line: (x, y, measured) points, ascending in x.
pub struct SweepLine {
    pub tier: String,
    pub points: Vec<(f64, f64, bool)>,
}

/// A log-log chart of one line per tier. `dashed`: the line is modelled (the cost model),
/// only the filled circles are measured; otherwise every point is measured.
#[allow(clippy::too_many_arguments)]
pub fn sweep_chart(
    chart: &str,
    lines: &[SweepLine],
    x_desc: &str,
    y_desc: &str,
    x_fmt: &dyn Fn(&f64) -> String,
    y_fmt: &dyn Fn(&f64) -> String,
    dashed: bool,
) -> Result<String, ReportError> {
    let size = (960, 420);
    let x = log_range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)));
    let y = log_range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let items: Vec<(String, RGBColor)> =
        lines.iter().enumerate().map(|(i, l)| (l.tier.clone(), colour(&l.tier, i))).collect();
    let frame = |area: &Area| -> Drawn {
        area.fill(&WHITE)?;
        sweep_axes(area, x.clone(), y.clone())?
            .configure_mesh()
            .x_label_formatter(x_fmt)
            .y_label_formatter(y_fmt)
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(text(16))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .axis_desc_style(text(17))
            .draw()?;
        legend(area, size.0 as i32 - 225, &items)?;
        if dashed {
            let y0 = 36 + 24 * items.len() as i32;
            let (lx, c) = (size.0 as i32 - 225, RGBColor(0x55, 0x55, 0x55));
            area.draw(&Circle::new((lx + 11, y0), 5, c.filled()))?;
            area.draw(&Text::new("measured run", (lx + 28, y0), text(14).pos(Pos::new(HPos::Left, VPos::Center))))?;
            area.draw(&PathElement::new(vec![(lx, y0 + 22), (lx + 8, y0 + 22)], c.stroke_width(2)))?;
            area.draw(&PathElement::new(vec![(lx + 13, y0 + 22), (lx + 22, y0 + 22)], c.stroke_width(2)))?;
            area.draw(&Text::new(
                "cost model (extrapolated)",
                (lx + 28, y0 + 22),
                text(14).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    };
    let layers = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (x, y, c) = (x.clone(), y.clone(), colour(&l.tier, i));
            let pts: Vec<(f64, f64)> = l.points.iter().map(|p| (p.0, p.1.max(y.start))).collect();
            let measured: Vec<(f64, f64)> = l.points.iter().filter(|p| p.2).map(|p| (p.0, p.1.max(y.start))).collect();
            Layer {
                attrs: vec![
                    ("tier", l.tier.clone()),
                    ("measured", measured.len().to_string()),
                    ("extrapolated", (pts.len() - measured.len()).to_string()),
                ],
                title: format!(
                    "{}: {} measured point(s){}",
                    l.tier,
                    measured.len(),
                    if dashed { ", the dashed line is the cost model" } else { "" }
                ),
                draw: Box::new(move |area: &Area| -> Drawn {
                    let mut chart = sweep_axes(area, x.clone(), y.clone())?;
                    if dashed {
                        chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, c.stroke_width(2)))?;
                    } else {
                        chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
                    }
                    chart.draw_series(measured.iter().map(|p| Circle::new(*p, 6, c.filled())))?;
                    Ok(())
                }),
            }
        })
        .collect();
    compose(chart, size, frame, layers)
}
