//! Plots, drawn twice (PNG and SVG) from one description, with a bundled font so that PNGs
//! render the same on machines without system fonts.

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bundled file is valid; a failure would only lose text in PNGs.
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// Colours for groups, in order.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

/// One labelled value of a dot plot.
pub struct Dot {
    pub label: String,
    pub value: f64,
    pub group: usize,
}

/// A horizontal dot plot: one row per dot (sorted as given), coloured by group, with either a
/// black line at `reference` (e.g. SS = 50) or, without one, a line at each group's mean
/// (groups of two or more dots). Written as `<stem>.png` and `<stem>.svg`.
pub fn dot_plot(
    stem: &Path,
    title: &str,
    x_label: &str,
    dots: &[Dot],
    groups: &[String],
    reference: Option<f64>,
) -> Result<()> {
    register_font();
    let height = (110 + 22 * dots.len()).clamp(260, 3400) as u32;
    write_both(
        stem,
        (900, height),
        |root| draw_dots(root, title, x_label, dots, groups, reference),
        |root| draw_dots(root, title, x_label, dots, groups, reference),
    )
}

type Area<DB> = DrawingArea<DB, plotters::coord::Shift>;

/// Writes `<stem>.png` and `<stem>.svg` atomically (util::fs::write_atomic: a full disk leaves
/// the previous file, or none, never a truncated one). The SVG is drawn into memory; the PNG
/// into a temporary sibling (its encoder picks the format from the extension), whose bytes are
/// then written atomically and the temporary removed whatever happens.
fn write_both(
    stem: &Path,
    size: (u32, u32),
    draw_png: impl FnOnce(Area<BitMapBackend>) -> Result<()>,
    draw_svg: impl FnOnce(Area<SVGBackend>) -> Result<()>,
) -> Result<()> {
    let png = stem.with_extension("png");
    let tmp = crate::util::fs::temp_sibling(&png);
    let tmp = tmp.with_file_name(format!("{}.png", tmp.file_name().unwrap_or_default().to_string_lossy()));
    let drawn = draw_png(BitMapBackend::new(&tmp, size).into_drawing_area())
        .and_then(|()| std::fs::read(&tmp).map_err(|e| anyhow!("{}: cannot read the drawn plot: {e}", tmp.display())))
        .and_then(|bytes| crate::util::fs::write_atomic(&png, &bytes));
    let _ = std::fs::remove_file(&tmp);
    drawn?;
    let mut svg = String::new();
    draw_svg(SVGBackend::with_string(&mut svg, size).into_drawing_area())?;
    crate::util::fs::write_atomic(&stem.with_extension("svg"), svg.as_bytes())
}

/// A dot plot's coordinates: values across, one segment per dot down.
type DotChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordusize>>>;

fn drawing_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("cannot draw plot: {e:?}")
}

fn draw_dots<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    dots: &[Dot],
    groups: &[String],
    reference: Option<f64>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(drawing_error)?;
    let n = dots.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(150)
        .build_cartesian_2d(dot_range(dots, reference), (0..n).into_segmented())
        .map_err(drawing_error)?;
    draw_dot_axes(&mut chart, x_label, dots)?;
    for (g, name) in groups.iter().enumerate() {
        // Either the reference line or the group means, as `dot_plot` promises, never both.
        draw_dot_group(&mut chart, dots, g, name, reference.is_none())?;
    }
    if let Some(r) = reference {
        draw_vertical(&mut chart, r, BLACK.stroke_width(2))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 13))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(drawing_error)?;
    root.present().map_err(drawing_error)?;
    Ok(())
}

/// The span of the finite values and the reference, padded so that no dot sits on the frame;
/// [-1, 1] when there is nothing finite to span.
fn dot_range(dots: &[Dot], reference: Option<f64>) -> std::ops::Range<f64> {
    let (lo, hi) = dots
        .iter()
        .map(|d| d.value)
        .chain(reference)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.08).max(0.02);
    let (lo, hi) = if lo.is_finite() { (lo - pad, hi + pad) } else { (-1.0, 1.0) };
    lo..hi
}

/// The value axis, and each row labelled with its dot's label (no horizontal grid lines).
fn draw_dot_axes<DB: DrawingBackend>(chart: &mut DotChart<DB>, x_label: &str, dots: &[Dot]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let labels: Vec<String> = dots.iter().map(|d| d.label.clone()).collect();
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_labels(dots.len().max(1))
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style((FAMILY, 12))
        .disable_y_mesh()
        .draw()
        .map_err(drawing_error)
}

/// Group `g`'s dots in its colour with its legend entry, and, if `with_mean` and it has two
/// or more dots, a thin line at their mean.
fn draw_dot_group<DB: DrawingBackend>(
    chart: &mut DotChart<DB>,
    dots: &[Dot],
    g: usize,
    name: &str,
    with_mean: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let color = PALETTE[g % PALETTE.len()];
    let points = dots
        .iter()
        .enumerate()
        .filter(|(_, d)| d.group == g)
        .map(|(i, d)| Circle::new((d.value, SegmentValue::CenterOf(i)), 4, color.filled()));
    chart
        .draw_series(points)
        .map_err(drawing_error)?
        .label(name.to_string())
        .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
    let vals: Vec<f64> = dots.iter().filter(|d| d.group == g).map(|d| d.value).collect();
    if with_mean && vals.len() >= 2 {
        draw_vertical(chart, vals.iter().sum::<f64>() / vals.len() as f64, color.stroke_width(1))?;
    }
    Ok(())
}

/// A line across every row at value `x`.
fn draw_vertical<DB: DrawingBackend>(chart: &mut DotChart<DB>, x: f64, style: ShapeStyle) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .draw_series(LineSeries::new([(x, SegmentValue::Exact(0)), (x, SegmentValue::Last)], style))
        .map_err(drawing_error)?;
    Ok(())
}

/// A line plot of one or more series over steps, written as `<stem>.png` and `<stem>.svg`.
pub fn line_plot(stem: &Path, title: &str, y_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    register_font();
    write_both(
        stem,
        (900, 500),
        |root| draw_lines(root, title, y_label, series),
        |root| draw_lines(root, title, y_label, series),
    )
}

fn draw_lines<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("cannot draw plot: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let pts = series.iter().flat_map(|(_, s)| s.iter()).filter(|(_, y)| y.is_finite());
    let (x0, x1, y0, y1) = pts
        .fold((f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY), |(a, b, c, d), &(x, y)| {
            (a.min(x), b.max(x), c.min(y), d.max(y))
        });
    let (x0, x1) = if x0.is_finite() { (x0, x1.max(x0 + 1.0)) } else { (0.0, 1.0) };
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = if y0.is_finite() { (y0 - pad, y1 + pad) } else { (0.0, 1.0) };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart.configure_mesh().x_desc("step").y_desc(y_label).label_style((FAMILY, 12)).draw().map_err(err)?;
    for (i, (name, s)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(s.iter().copied().filter(|(_, y)| y.is_finite()), color.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 13))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// A scatter plot of (x, y) points coloured by group, written as `<stem>.png` and `<stem>.svg`.
pub fn scatter_plot(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64, usize)],
    groups: &[String],
) -> Result<()> {
    register_font();
    write_both(
        stem,
        (640, 480),
        |root| draw_scatter(root, title, x_label, y_label, points, groups),
        |root| draw_scatter(root, title, x_label, y_label, points, groups),
    )
}

fn draw_scatter<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64, usize)],
    groups: &[String],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("cannot draw plot: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let range = |f: &dyn Fn(&(f64, f64, usize)) -> f64| {
        let (lo, hi) = points
            .iter()
            .map(f)
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        if !lo.is_finite() {
            return (-1.0, 1.0);
        }
        let pad = ((hi - lo) * 0.08).max(1e-3);
        (lo - pad, hi + pad)
    };
    let (x0, x1) = range(&|p| p.0);
    let (y0, y1) = range(&|p| p.1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).label_style((FAMILY, 12)).draw().map_err(err)?;
    for (g, name) in groups.iter().enumerate() {
        let color = PALETTE[g % PALETTE.len()];
        let pts = points
            .iter()
            .filter(|p| p.2 == g && p.0.is_finite() && p.1.is_finite())
            .map(|p| Circle::new((p.0, p.1), 4, color.filled()));
        chart
            .draw_series(pts)
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 12))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
