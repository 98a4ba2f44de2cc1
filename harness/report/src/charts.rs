//! The report's charts, drawn with `plotters` into SVG strings.
//!
//! Each chart is drawn in layers with the same layout: a frame (axes, labels, legend) and one
//! layer per data item (a tier's curve, a matrix cell). The layers are merged into one `<svg>`
//! with each data layer in its own `<g class="data" data-…>` carrying a `<title>`, so a reader
//! hovering a curve sees what it is and a test can check that every tier was drawn.

use std::error::Error;
use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::combinators::{BindKeyPoints, WithKeyPoints};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use isobench_results::{Expectation, Verdict};

use crate::error::ReportError;
use crate::fmt::{axis_ms, esc, ms};

mod projected;
pub use projected::{ProjectedBar, projected};
/// The sweep's charts (`isobench explore`), on this module's layout and helpers.
pub(crate) mod sweep;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn Error>>;
type Built<'a, 'b, X, Y> =
    Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>, DrawingAreaErrorKind<std::io::Error>>;
/// Category axis: tier i is centred on x = i, from -0.5 to n - 0.5; see [`category_names`].
type Categories = RangedCoordf64;
type Log = WithKeyPoints<LogCoord<f64>>;

/// Axes with a category per tier along x: the same layout in the frame and in every layer.
fn category_axes<'a, 'b>(
    area: &'a Area<'b>,
    n: usize,
    y: Range<f64>,
    y_label: u32,
) -> Built<'a, 'b, Categories, RangedCoordf64> {
    ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(y_label)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, y)
}

fn latency_axes<'a, 'b>(area: &'a Area<'b>, y: Range<f64>) -> Built<'a, 'b, RangedCoordf64, Log> {
    ChartBuilder::on(area)
        .margin(12)
        .margin_right(230)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..4f64, log_axis(y))
}

fn cost_axes<'a, 'b>(area: &'a Area<'b>, x: Range<f64>, y: Range<f64>) -> Built<'a, 'b, Log, Log> {
    ChartBuilder::on(area)
        .margin(12)
        .margin_right(40)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(log_axis(x), log_axis(y))
}

const FONT: &str = "sans-serif";

/// One data layer: its attributes, its hover title and how to draw it.
struct Layer<'f> {
    attrs: Vec<(&'static str, String)>,
    title: String,
    draw: Box<dyn Fn(&Area) -> Drawn + 'f>,
}

/// Renders a frame and its layers, each into its own SVG document of the same size, and merges
/// them into one `<svg data-chart=…>`.
fn compose(
    chart: &str,
    size: (u32, u32),
    frame: impl Fn(&Area) -> Drawn,
    layers: Vec<Layer>,
) -> Result<String, ReportError> {
    let frame_svg = render(size, &frame)?;
    let mut body = String::new();
    for l in &layers {
        let svg = render(size, &l.draw)?;
        body.push_str("<g class=\"data\"");
        for (k, v) in &l.attrs {
            body.push_str(&format!(" data-{k}=\"{}\"", esc(v)));
        }
        body.push_str(&format!("><title>{}</title>\n{}</g>\n", esc(&l.title), inner(&svg)));
    }
    let open = format!("<svg data-chart=\"{chart}\" role=\"img\" ");
    let merged = frame_svg.replacen("<svg ", &open, 1);
    let end = merged.rfind("</svg>").unwrap_or(merged.len());
    Ok(format!("{}{body}</svg>\n", &merged[..end]))
}

fn render(size: (u32, u32), draw: &dyn Fn(&Area) -> Drawn) -> Result<String, ReportError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        draw(&root).map_err(|e| ReportError::Chart(e.to_string()))?;
        root.present().map_err(|e| ReportError::Chart(e.to_string()))?;
    }
    Ok(buf)
}

/// The elements of an SVG document, without its `<svg>` wrapper.
fn inner(svg: &str) -> &str {
    let start = svg.find('>').map_or(0, |i| i + 1);
    let end = svg.rfind("</svg>").unwrap_or(svg.len());
    svg[start..end].trim_start_matches('\n')
}

/// A stable colour per tier, the same in every chart.
pub fn colour(tier: &str, index: usize) -> RGBColor {
    match tier {
        "silo-ec2" => RGBColor(0x1f, 0x77, 0xb4),
        "shared-ec2" => RGBColor(0xff, 0x7f, 0x0e),
        "ecs-awsvpc" => RGBColor(0x2c, 0xa0, 0x2c),
        "lambda-per-tenant" => RGBColor(0x94, 0x67, 0xbd),
        "lambda-shared" => RGBColor(0xd6, 0x27, 0x28),
        "lambda-tenant-isolation" => RGBColor(0x8c, 0x56, 0x4b),
        _ => {
            let (r, g, b) = Palette99::pick(index).rgb();
            RGBColor(r, g, b)
        }
    }
}

fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

fn legend(area: &Area, x: i32, items: &[(String, RGBColor)]) -> Drawn {
    for (i, (name, c)) in items.iter().enumerate() {
        let y = 24 + 24 * i as i32;
        area.draw(&PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(3)))?;
        area.draw(&Text::new(name.clone(), (x + 28, y), text(16).pos(Pos::new(HPos::Left, VPos::Center))))?;
    }
    Ok(())
}

/// One tier's corrected percentile curve: (nines, ms) points, see [`curve`].
pub struct Curve {
    pub tier: String,
    pub points: Vec<(f64, f64)>,
}

/// A percentile curve: (nines, latency in ms) with nines = −log10(1 − q), from 0 (p0) to 4
/// (p99.99); the usual HdrHistogram plot, where the tail gets as much room as the body.
pub fn curve(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
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

fn nines_label(x: &f64) -> String {
    match x.round() as i32 {
        0 => "p0".into(),
        1 => "p90".into(),
        2 => "p99".into(),
        3 => "p99.9".into(),
        n => format!("p99.{}", "9".repeat((n - 2).max(0) as usize)),
    }
}

/// A log axis ticked at 1, 2 and 5 times powers of ten (plotters' own log ticks are either
/// too few or too many over less than a decade or two).
fn log_axis(r: Range<f64>) -> Log {
    let ticks = |mults: &[f64]| -> Vec<f64> {
        let (lo, hi) = (r.start.log10().floor() as i32, r.end.log10().ceil() as i32);
        (lo..=hi).flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e))).filter(|v| r.contains(v)).collect()
    };
    let mut t = ticks(&[1.0, 2.0, 5.0]);
    if t.len() < 3 {
        t = ticks(&[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }
    r.log_scale().with_key_points(t)
}

fn log_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.filter(|v| *v > 0.0).fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi { 0.01..1.0 } else { lo / 1.5..hi * 1.5 }
}

/// Chart 1: corrected latency against percentile, one curve per tier.
pub fn latency(curves: &[Curve]) -> Result<String, ReportError> {
    let size = (960, 440);
    let y = log_range(curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)));
    let items: Vec<(String, RGBColor)> =
        curves.iter().enumerate().map(|(i, c)| (c.tier.clone(), colour(&c.tier, i))).collect();
    let frame = |area: &Area| -> Drawn {
        area.fill(&WHITE)?;
        let mut chart = latency_axes(area, y.clone())?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&nines_label)
            .y_label_formatter(&|v| axis_ms(*v * 1e3))
            .x_desc("percentile")
            .y_desc("latency from intended start (log)")
            .label_style(text(16))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .axis_desc_style(text(17))
            .draw()?;
        legend(area, size.0 as i32 - 215, &items)
    };
    let layers = curves
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let y = y.clone();
            let style = colour(&c.tier, i).stroke_width(2);
            let pts = c.points.clone();
            let p99 = c.points.iter().find(|p| (p.0 - 2.0).abs() < 1e-9).map_or(0.0, |p| p.1);
            Layer {
                attrs: vec![("tier", c.tier.clone()), ("points", c.points.len().to_string())],
                title: format!("{}: corrected p99 {}", c.tier, ms(p99 * 1e3)),
                draw: Box::new(move |area: &Area| -> Drawn {
                    latency_axes(area, y.clone())?.draw_series(LineSeries::new(pts.clone(), style))?;
                    Ok(())
                }),
            }
        })
        .collect();
    compose("latency", size, frame, layers)
}

/// A function tier's start-up figures.
#[derive(Clone)]
pub struct ColdStart {
    pub tier: String,
    pub cold_share: f64,
    pub cold: u64,
    pub ok: u64,
    pub init_p50_ms: f64,
    pub init_p99_ms: f64,
    pub init_max_ms: f64,
}

/// Short axis labels for categorical charts: the Lambda tiers without their common prefix.
fn short(tier: &str) -> String {
    tier.strip_prefix("lambda-").unwrap_or(tier).to_string()
}

/// Writes each category's name under its place on the x axis (plotters' own tick labels land on
/// round numbers, not on the categories).
fn category_names(
    chart: &mut ChartContext<SVGBackend, Cartesian2d<Categories, RangedCoordf64>>,
    names: &[String],
    y0: f64,
) -> Drawn {
    let style = text(16).pos(Pos::new(HPos::Center, VPos::Top));
    let labels = names
        .iter()
        .enumerate()
        .map(|(i, n)| EmptyElement::at((i as f64, y0)) + Text::new(n.clone(), (0, 8), style.clone()));
    chart.draw_series(labels)?;
    Ok(())
}

/// Chart 2: cold-start share (left) and INIT time p50 with a p99–max bar (right), per function tier.
pub fn cold_starts(tiers: &[ColdStart]) -> Result<String, ReportError> {
    let size = (960, 380);
    let n = tiers.len();
    let names: Vec<String> = tiers.iter().map(|t| short(&t.tier)).collect();
    let share_max = tiers.iter().map(|t| t.cold_share).fold(0.0, f64::max).max(0.01) * 1.25;
    let init_y = 0f64..tiers.iter().map(|t| t.init_max_ms).fold(0.1, f64::max) * 1.15;
    let frame = |area: &Area| -> Drawn {
        area.fill(&WHITE)?;
        let (l, r) = area.split_horizontally(size.0 / 2);
        let mut left = category_axes(&l, n, 0f64..share_max, 64)?;
        left.configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| format!("{:.1}%", v * 100.0))
            .x_desc("Lambda tier")
            .y_desc("cold starts / ok invokes")
            .label_style(text(16))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .axis_desc_style(text(17))
            .draw()?;
        category_names(&mut left, &names, 0.0)?;
        let mut right = category_axes(&r, n, init_y.clone(), 72)?;
        right
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| axis_ms(*v * 1e3))
            .x_desc("INIT: p50 (bar), tick at p99, line to max")
            .y_desc("INIT duration")
            .label_style(text(16))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .axis_desc_style(text(17))
            .draw()?;
        category_names(&mut right, &names, init_y.start)?;
        Ok(())
    };
    let layers = tiers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let c = colour(&t.tier, i);
            let init_y = init_y.clone();
            let init_lo = init_y.start;
            let (share, p50, p99, max) = (t.cold_share, t.init_p50_ms, t.init_p99_ms, t.init_max_ms);
            Layer {
                attrs: vec![
                    ("tier", t.tier.clone()),
                    ("cold-share", format!("{share:.4}")),
                    ("init-p50-ms", format!("{p50:.3}")),
                ],
                title: format!(
                    "{}: {} cold of {} ok ({:.1}%), INIT p50 {}, p99 {}, max {}",
                    t.tier,
                    t.cold,
                    t.ok,
                    share * 100.0,
                    ms(p50 * 1e3),
                    ms(p99 * 1e3),
                    ms(max * 1e3)
                ),
                draw: Box::new(move |area: &Area| -> Drawn {
                    let (l, r) = area.split_horizontally(size.0 / 2);
                    let x = i as f64;
                    let bar = |lo: f64, hi: f64| Rectangle::new([(x - 0.35, lo), (x + 0.35, hi)], c.filled());
                    category_axes(&l, n, 0f64..share_max, 64)?.draw_series(std::iter::once(bar(0.0, share)))?;
                    let mut rc = category_axes(&r, n, init_y.clone(), 72)?;
                    if p50 > 0.0 {
                        rc.draw_series(std::iter::once(bar(init_lo, p50)))?;
                        // The tail: a line from p50 up to max, with a tick at p99.
                        let tail = vec![(x, p50), (x, max.max(p50))];
                        let tick = vec![(x - 0.12, p99), (x + 0.12, p99)];
                        rc.draw_series([tail, tick].into_iter().map(|l| PathElement::new(l, BLACK.stroke_width(2))))?;
                    }
                    Ok(())
                }),
            }
        })
        .collect();
    compose("cold-starts", size, frame, layers)
}

/// A tier's modelled cost beside its measured p99.
pub struct CostPoint {
    pub tier: String,
    pub p99_ms: f64,
    pub per_million_usd: f64,
    pub monthly_usd: f64,
}

/// Chart 3: modelled cost per million requests against measured corrected p99, one point per tier.
pub fn cost_vs_p99(points: &[CostPoint]) -> Result<String, ReportError> {
    let size = (960, 420);
    let x = log_range(points.iter().map(|p| p.p99_ms));
    let y = log_range(points.iter().map(|p| p.per_million_usd));
    let frame = |area: &Area| -> Drawn {
        area.fill(&WHITE)?;
        cost_axes(area, x.clone(), y.clone())?
            .configure_mesh()
            .x_label_formatter(&|v| axis_ms(*v * 1e3))
            .y_label_formatter(&|v| usd(*v).trim_end_matches('0').trim_end_matches('.').to_string())
            .x_desc("corrected p99, measured (log)")
            .y_desc("USD per million requests, modelled (log)")
            .label_style(text(16))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .axis_desc_style(text(17))
            .draw()?;
        Ok(())
    };
    let layers = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (x, y, c) = (x.clone(), y.clone(), colour(&p.tier, i));
            let (px, py, name) = (p.p99_ms, p.per_million_usd.max(y.start), p.tier.clone());
            Layer {
                attrs: vec![
                    ("tier", p.tier.clone()),
                    ("p99-ms", format!("{px:.3}")),
                    ("usd-per-million", format!("{:.6}", p.per_million_usd)),
                ],
                title: format!(
                    "{}: p99 {}, {} per million requests, {} a month (modelled)",
                    p.tier,
                    ms(px * 1e3),
                    usd(p.per_million_usd),
                    usd(p.monthly_usd)
                ),
                draw: Box::new(move |area: &Area| -> Drawn {
                    let mut chart = cost_axes(area, x.clone(), y.clone())?;
                    // A point and its label, offset in pixels from the point.
                    let point = EmptyElement::at((px, py))
                        + Circle::new((0, 0), 7, c.filled())
                        + Text::new(name.clone(), (10, -18), text(16));
                    chart.draw_series(std::iter::once(point))?;
                    Ok(())
                }),
            }
        })
        .collect();
    compose("cost", size, frame, layers)
}

pub fn usd(v: f64) -> String {
    if v >= 100.0 {
        format!("${v:.0}")
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

/// One cell of the leak matrix.
pub struct Cell {
    pub probe: String,
    pub channel: String,
    pub tier: String,
    pub verdict: Verdict,
    pub expected: Expectation,
    pub unexpected: bool,
    pub hits: u64,
    pub trials: u64,
    pub controls_passed: u64,
    pub controls: u64,
    pub blind: u64,
    /// The upper 95% bound on the per-trial leak probability, as text (`≤ 0.30%`).
    pub bound: String,
}

fn cell_fill(verdict: Verdict, unexpected: bool) -> RGBColor {
    match verdict {
        Verdict::Blocked => RGBColor(0xc8, 0xe6, 0xc9),
        Verdict::Leak | Verdict::Risk if unexpected => RGBColor(0xef, 0x9a, 0x9a),
        Verdict::Leak => RGBColor(0xff, 0xe0, 0xb2),
        Verdict::Risk => RGBColor(0xe1, 0xbe, 0xe7),
        Verdict::Inconclusive => RGBColor(0xff, 0xf5, 0x9d),
        Verdict::NotApplicable => RGBColor(0xee, 0xee, 0xee),
        Verdict::EmulatorLimit => RGBColor(0xbb, 0xde, 0xfb),
    }
}

/// Chart 4: the leak matrix, probe × tier, coloured by verdict; unexpected leaks outlined.
pub fn leak_matrix(probes: &[(String, String)], tiers: &[String], cells: &[Cell]) -> Result<String, ReportError> {
    let (label_w, head_h, cw, ch) = (190i32, 40i32, 190i32, 38i32);
    // At least as wide as the colour key under the grid.
    let width = (label_w + cw * tiers.len() as i32 + 10).max(7 * 170 + 10);
    let size = (width as u32, (head_h + ch * probes.len() as i32 + 70) as u32);
    let col = |tier: &str| tiers.iter().position(|t| t == tier).unwrap_or(0) as i32;
    let row = |probe: &str| probes.iter().position(|p| p.0 == probe).unwrap_or(0) as i32;
    let frame = |area: &Area| -> Drawn {
        area.fill(&WHITE)?;
        for (j, t) in tiers.iter().enumerate() {
            let x = label_w + cw * j as i32 + cw / 2;
            let style = text(16).pos(Pos::new(HPos::Center, VPos::Center));
            area.draw(&Text::new(t.clone(), (x, head_h / 2), style))?;
        }
        for (i, (probe, channel)) in probes.iter().enumerate() {
            let y = head_h + ch * i as i32 + ch / 2;
            let style = text(16).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&Text::new(format!("{probe} ({channel})"), (6, y), style))?;
        }
        let key = [
            ("blocked", Verdict::Blocked, false),
            ("expected leak", Verdict::Leak, false),
            ("UNEXPECTED leak", Verdict::Leak, true),
            ("risk (shared)", Verdict::Risk, false),
            ("inconclusive", Verdict::Inconclusive, false),
            ("not applicable", Verdict::NotApplicable, false),
            ("emulator limit", Verdict::EmulatorLimit, false),
        ];
        let y = head_h + ch * probes.len() as i32 + 25;
        for (k, (name, verdict, unexpected)) in key.iter().enumerate() {
            let x = 6 + 170 * k as i32;
            area.draw(&Rectangle::new([(x, y), (x + 22, y + 16)], cell_fill(*verdict, *unexpected).filled()))?;
            if *unexpected {
                area.draw(&Rectangle::new([(x, y), (x + 22, y + 16)], RED.stroke_width(3)))?;
            }
            area.draw(&Text::new(name.to_string(), (x + 28, y + 1), text(16)))?;
        }
        Ok(())
    };
    let layers = cells
        .iter()
        .map(|c| {
            let (x0, y0) = (label_w + cw * col(&c.tier), head_h + ch * row(&c.probe));
            let fill = cell_fill(c.verdict, c.unexpected);
            let label = match c.verdict {
                Verdict::NotApplicable => "n/a".to_string(),
                Verdict::EmulatorLimit => "emulator limit".to_string(),
                Verdict::Blocked => format!("blocked 0/{} {}", c.trials, c.bound),
                v => format!("{v} {}/{}", c.hits, c.trials),
            };
            let unexpected = c.unexpected;
            Layer {
                attrs: vec![
                    ("probe", c.probe.clone()),
                    ("tier", c.tier.clone()),
                    ("verdict", c.verdict.to_string()),
                    ("unexpected", c.unexpected.to_string()),
                    ("hits", c.hits.to_string()),
                    ("trials", c.trials.to_string()),
                    ("blind", c.blind.to_string()),
                ],
                title: format!(
                    "{} ({}) on {}: {} (expected {}), {} hits in {} trials, per-trial leak probability {} (95% upper \
                     bound), positive controls {}/{}, {} blind{}",
                    c.probe,
                    c.channel,
                    c.tier,
                    c.verdict,
                    c.expected,
                    c.hits,
                    c.trials,
                    c.bound,
                    c.controls_passed,
                    c.controls,
                    c.blind,
                    if c.unexpected { " — UNEXPECTED LEAK" } else { "" }
                ),
                draw: Box::new(move |area: &Area| -> Drawn {
                    let rect = [(x0 + 2, y0 + 2), (x0 + cw - 2, y0 + ch - 2)];
                    area.draw(&Rectangle::new(rect, fill.filled()))?;
                    if unexpected {
                        area.draw(&Rectangle::new(rect, RED.stroke_width(3)))?;
                    }
                    let style = text(16).pos(Pos::new(HPos::Center, VPos::Center));
                    area.draw(&Text::new(label.clone(), (x0 + cw / 2, y0 + ch / 2), style))?;
                    Ok(())
                }),
            }
        })
        .collect();
    compose("leak-matrix", size, frame, layers)
}

/// A tier's NN-CPU slowdown (contended p99 / solo p99) over victims and rounds.
pub struct Slowdown {
    pub tier: String,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub count: u64,
}

/// Chart 5: noisy-neighbour slowdown per tier, median with a min–max bar; 1× is no effect.
pub fn slowdowns(tiers: &[Slowdown]) -> Result<String, ReportError> {
    let size = (960, 380);
    let n = tiers.len();
    let names: Vec<String> = tiers.iter().map(|t| t.tier.clone()).collect();
    let top = tiers.iter().map(|t| t.max).fold(2.0, f64::max) * 1.1;
    let frame = |area: &Area| -> Drawn {
        area.fill(&WHITE)?;
        let mut chart = category_axes(area, n, 0f64..top, 64)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| format!("{v:.1}×"))
            .x_desc("tier")
            .y_desc("victims' p99 contended / solo")
            .label_style(text(16))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .axis_desc_style(text(17))
            .draw()?;
        category_names(&mut chart, &names, 0.0)?;
        let one = [(-0.5, 1.0), (n as f64 - 0.5, 1.0)];
        chart.draw_series(std::iter::once(PathElement::new(one.to_vec(), BLACK.mix(0.6).stroke_width(1))))?;
        Ok(())
    };
    let layers = tiers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let c = colour(&t.tier, i);
            let (min, med, max) = (t.min, t.median, t.max);
            Layer {
                attrs: vec![("tier", t.tier.clone()), ("median", format!("{med:.3}"))],
                title: format!(
                    "{}: slowdown median {med:.2}×, min {min:.2}×, max {max:.2}× over {} victim-rounds",
                    t.tier, t.count
                ),
                draw: Box::new(move |area: &Area| -> Drawn {
                    let mut chart = category_axes(area, n, 0f64..top, 64)?;
                    let x = i as f64;
                    chart.draw_series(std::iter::once(ErrorBar::new_vertical(
                        x,
                        min,
                        med,
                        max,
                        c.stroke_width(3),
                        18,
                    )))?;
                    let label = text(16).pos(Pos::new(HPos::Left, VPos::Center));
                    let point = EmptyElement::at((x, med))
                        + Circle::new((0, 0), 6, c.filled())
                        + Text::new(format!("{med:.2}×"), (14, 0), label);
                    chart.draw_series(std::iter::once(point))?;
                    Ok(())
                }),
            }
        })
        .collect();
    compose("noisy-neighbour", size, frame, layers)
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;

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
