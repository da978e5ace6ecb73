//! SVG line plots for the CLI (BER curves, training losses, …).
//!
//! Two entry points. [`line_plot`]: a titled chart with labelled axes, linear or log-10 y axis,
//! one coloured line with markers per [`Series`], optional vertical error bars, and a legend.
//! [`histogram_plot`]: the distributions of several samples on one shared bin grid, each drawn
//! as a step outline (fraction of the sample per bin), so overlapping distributions stay legible.
//! The SVG is rendered in memory and written with [`write_atomically`], so the file on disk is
//! either the complete previous version or the complete new one, never half-written.
//!
//! On a log axis, points whose y is not strictly positive cannot be drawn: they are left out of
//! the line, and if the series has an error bar with a positive upper end, that bar is drawn
//! from the bottom of the axis up to the upper end (an upper bound, as for a BER point with
//! zero errors). Such a point gets a hollow downward triangle at its upper end, and the legend
//! explains the marker. Non-finite values are always left out.
//!
//! Colours, link names and label style are those of [`style`]: each detector kind has one
//! colour in every plot.

use std::path::Path;

use anyhow::{Context, bail};
use plotters::prelude::*;

pub mod style;

/// One curve of a [`line_plot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
    /// Optional `(low, high)` error bar for each point, same length as `points`.
    pub y_err: Option<Vec<(f64, f64)>>,
}

/// Writes `contents` to `path` with `kaq_files::write_file`: a regular file is replaced
/// atomically, a device or FIFO written straight, anything else refused. Errors name the path.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    kaq_files::write_file(path, contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Checks, before any long computation, that `path` can later be written by
/// [`write_atomically`] (`kaq_files::check_writable`). Leaves nothing behind.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    kaq_files::check_writable(path).with_context(|| format!("cannot write {}", path.display()))
}

/// Draws `series` as an SVG line plot and writes it atomically to `path`.
///
/// `log_y` selects a log-10 y axis. The axis ranges cover every drawable point and error bar,
/// with a small margin. Fails if no series has a drawable point, or if the file cannot be
/// written (the error names the path).
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    series: &[Series],
) -> anyhow::Result<()> {
    let svg = render_svg(title, x_label, y_label, log_y, series)?;
    write_atomically(path, svg.as_bytes())
}

/// One sample of a [`histogram_plot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Legend entry.
    pub name: String,
    /// The values; non-finite ones are left out.
    pub values: Vec<f64>,
}

/// Draws the histograms of `samples` on `bins` equal bins spanning every finite value, each as
/// a step outline of the fraction of its sample per bin, and writes the SVG atomically to
/// `path`. Fails if no sample has a finite value, if `bins` is 0, or if the file cannot be
/// written.
pub fn histogram_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    samples: &[Histogram],
    bins: usize,
) -> anyhow::Result<()> {
    let svg = render_histogram_svg(title, x_label, samples, bins)?;
    write_atomically(path, svg.as_bytes())
}

/// The fraction of `values` (finite ones only) in each of `bins` equal bins over `[lo, hi]`;
/// a value equal to `hi` falls in the last bin. All zeros when no value is finite.
pub fn bin_fractions(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut counts = vec![0u64; bins];
    let mut total = 0u64;
    let width = (hi - lo) / bins as f64;
    for &v in values.iter().filter(|v| v.is_finite()) {
        if v < lo || v > hi || bins == 0 {
            continue;
        }
        let i = if width > 0.0 {
            (((v - lo) / width) as usize).min(bins - 1)
        } else {
            0
        };
        counts[i] += 1;
        total += 1;
    }
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

/// Renders the plot of [`histogram_plot`] into an SVG string.
pub fn render_histogram_svg(
    title: &str,
    x_label: &str,
    samples: &[Histogram],
    bins: usize,
) -> anyhow::Result<String> {
    if bins == 0 {
        bail!("a histogram needs at least one bin");
    }
    let finite: Vec<f64> = samples
        .iter()
        .flat_map(|s| s.values.iter().copied().filter(|v| v.is_finite()))
        .collect();
    if finite.is_empty() {
        bail!("nothing to plot: no sample has a finite value");
    }
    let (mut lo, mut hi) = (min(&finite), max(&finite));
    if hi <= lo {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let width = (hi - lo) / bins as f64;
    let fractions: Vec<Vec<f64>> = samples
        .iter()
        .map(|s| bin_fractions(&s.values, lo, hi, bins))
        .collect();
    let top = fractions
        .iter()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-12)
        * 1.08;
    let (title, x_label) = (style::house_style(title), style::house_style(x_label));
    let (title, x_label) = (title.as_str(), x_label.as_str());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("fraction of values per bin")
            .draw()
            .map_err(plot_error)?;
        let kinds: Vec<style::Kind> = samples.iter().map(|s| style::kind_of(&s.name)).collect();
        for (index, (s, f)) in samples.iter().zip(&fractions).enumerate() {
            let nth = style::variant(&s.name).unwrap_or_else(|| {
                kinds[..index]
                    .iter()
                    .filter(|&&k| k == kinds[index])
                    .count()
            });
            let color = style::series_colour(kinds[index], nth).to_rgba();
            let mut outline = vec![(lo, 0.0)];
            for (i, &v) in f.iter().enumerate() {
                let left = lo + i as f64 * width;
                outline.push((left, v));
                outline.push((left + width, v));
            }
            outline.push((hi, 0.0));
            chart
                .draw_series(LineSeries::new(outline, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Renders the plot of [`line_plot`] into an SVG string.
pub fn render_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    series: &[Series],
) -> anyhow::Result<String> {
    for s in series {
        if let Some(err) = &s.y_err
            && err.len() != s.points.len()
        {
            bail!(
                "series `{}` has {} points but {} error bars",
                s.name,
                s.points.len(),
                err.len()
            );
        }
    }
    let drawable = |y: f64| y.is_finite() && (!log_y || y > 0.0);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for s in series {
        for (i, &(x, y)) in s.points.iter().enumerate() {
            if !x.is_finite() {
                continue;
            }
            if drawable(y) {
                xs.push(x);
                ys.push(y);
            }
            if let Some((lo, hi)) = s.y_err.as_ref().map(|e| e[i]) {
                for v in [lo, hi] {
                    if drawable(v) {
                        xs.push(x);
                        ys.push(v);
                    }
                }
            }
        }
    }
    if xs.is_empty() {
        bail!("nothing to plot: no series has a drawable point");
    }
    let (title, x_label, y_label) = (
        style::house_style(title),
        style::house_style(x_label),
        style::house_style(y_label),
    );
    let (title, x_label, y_label) = (title.as_str(), x_label.as_str(), y_label.as_str());
    let (x_min, x_max) = padded(min(&xs), max(&xs), 0.03);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(80);
        if log_y {
            // Whole decades around the data.
            let lo = 10f64.powf(min(&ys).log10().floor());
            let hi = 10f64.powf(max(&ys).log10().ceil().max(lo.log10() + 1.0));
            let mut chart = builder
                .build_cartesian_2d(
                    x_min..x_max,
                    (lo..hi).log_scale().with_key_points(log_key_points(lo, hi)),
                )
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .draw()
                .map_err(plot_error)?;
            draw_series(&mut chart, series, lo, drawable)?;
            let (l_lo, l_hi) = (lo.log10(), hi.log10());
            let place = |x: f64, y: f64| {
                (
                    (x - x_min) / (x_max - x_min),
                    (y.log10() - l_lo) / (l_hi - l_lo),
                )
            };
            legend(&mut chart, emptiest_corner(series, &drawable, place))?;
        } else {
            let (lo, hi) = padded(min(&ys), max(&ys), 0.05);
            let mut chart = builder
                .build_cartesian_2d(x_min..x_max, lo..hi)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .draw()
                .map_err(plot_error)?;
            draw_series(&mut chart, series, lo, drawable)?;
            let place = |x: f64, y: f64| ((x - x_min) / (x_max - x_min), (y - lo) / (hi - lo));
            legend(&mut chart, emptiest_corner(series, &drawable, place))?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Labelled points of a log axis from `lo` to `hi` (whole decades): 1, 2 and 5 × 10^k when the
/// axis spans at most three decades, so a curve inside one decade still has values to read
/// against; whole decades only on wider axes.
fn log_key_points(lo: f64, hi: f64) -> Vec<f64> {
    let (first, last) = (lo.log10().round() as i32, hi.log10().round() as i32);
    let mantissas: &[f64] = if last - first <= 3 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    (first..=last)
        .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
        .filter(|&v| v <= hi * (1.0 + 1e-9))
        .collect()
}

/// Draws lines, markers and error bars of every series on a chart whose y axis starts at
/// `y_floor` (where upper-bound-only bars begin).
fn draw_series<'a, Y>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    series: &[Series],
    y_floor: f64,
    drawable: impl Fn(f64) -> bool,
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    let kinds: Vec<style::Kind> = series.iter().map(|s| style::kind_of(&s.name)).collect();
    let mut zero_markers = false;
    for (index, s) in series.iter().enumerate() {
        let nth = style::variant(&s.name).unwrap_or_else(|| {
            kinds[..index]
                .iter()
                .filter(|&&k| k == kinds[index])
                .count()
        });
        let color = style::series_colour(kinds[index], nth).to_rgba();
        // Same-kind series differ by shade and by marker shape.
        let shape = if kinds[index] == style::Kind::Other {
            0
        } else {
            nth % 4
        };
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| x.is_finite() && drawable(y))
            .collect();
        let dashed = style::dashed(kinds[index], nth);
        let line = if dashed {
            chart.draw_series(DashedLineSeries::new(
                points.clone(),
                8,
                5,
                color.stroke_width(2),
            ))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
        }
        .map_err(plot_error)?
        .label(s.name.clone());
        let stroke = color.stroke_width(2);
        match shape {
            0 => {
                line.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(legend_segments(dashed)[0].clone(), stroke)
                        + PathElement::new(legend_segments(dashed)[1].clone(), stroke)
                        + Circle::new((10, 0), 4, color.filled())
                });
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(plot_error)?;
            }
            1 => {
                line.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(legend_segments(dashed)[0].clone(), stroke)
                        + PathElement::new(legend_segments(dashed)[1].clone(), stroke)
                        + Rectangle::new([(6, -4), (14, 4)], color.filled())
                });
                chart
                    .draw_series(points.iter().map(|&p| {
                        EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], color.filled())
                    }))
                    .map_err(plot_error)?;
            }
            2 => {
                line.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(legend_segments(dashed)[0].clone(), stroke)
                        + PathElement::new(legend_segments(dashed)[1].clone(), stroke)
                        + TriangleMarker::new((10, 0), 5, color.filled())
                });
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&p| TriangleMarker::new(p, 5, color.filled())),
                    )
                    .map_err(plot_error)?;
            }
            _ => {
                line.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(legend_segments(dashed)[0].clone(), stroke)
                        + PathElement::new(legend_segments(dashed)[1].clone(), stroke)
                        + Cross::new((10, 0), 4, stroke)
                });
                chart
                    .draw_series(points.iter().map(|&p| Cross::new(p, 4, stroke)))
                    .map_err(plot_error)?;
            }
        }
        if let Some(err) = &s.y_err {
            let bars = s
                .points
                .iter()
                .zip(err)
                .filter(|&(&(x, y), &(_, hi))| x.is_finite() && drawable(y) && drawable(hi))
                .map(|(&(x, y), &(lo, hi))| {
                    let lo = if drawable(lo) { lo } else { y_floor };
                    // The bar's centre mark sits on the point, hidden by its marker.
                    ErrorBar::new_vertical(x, lo, y, hi, color.stroke_width(1), 8)
                });
            chart.draw_series(bars).map_err(plot_error)?;
            // A point that cannot be drawn: a plain line from the axis up to its upper bound,
            // which the zero-error marker below marks (a centre mark or cap there would sit
            // under the marker and blur it).
            let bound_bars = s
                .points
                .iter()
                .zip(err)
                .filter(|&(&(x, y), &(_, hi))| x.is_finite() && !drawable(y) && drawable(hi))
                .map(|(&(x, _), &(lo, hi))| {
                    let lo = if drawable(lo) { lo } else { y_floor };
                    PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1))
                });
            chart.draw_series(bound_bars).map_err(plot_error)?;
            // A point that cannot be drawn (zero errors on a log axis) but has an upper bound.
            let bounds: Vec<(f64, f64)> = s
                .points
                .iter()
                .zip(err)
                .filter(|&(&(x, y), &(_, hi))| x.is_finite() && !drawable(y) && drawable(hi))
                .map(|(&(x, _), &(_, hi))| (x, hi))
                .collect();
            zero_markers |= !bounds.is_empty();
            chart
                .draw_series(
                    bounds
                        .into_iter()
                        .map(|p| EmptyElement::at(p) + zero_marker(color.stroke_width(2))),
                )
                .map_err(plot_error)?;
        }
    }
    if zero_markers {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(plot_error)?
            .label(ZERO_ERRORS_LABEL)
            .legend(|(x, y)| EmptyElement::at((x + 10, y)) + zero_marker(BLACK.stroke_width(2)));
    }
    Ok(())
}

/// The two pieces of a legend entry's line, 20 pixels long in all: a dash, a gap and a dash
/// for a dashed series (as its line is drawn), one solid line cut in two otherwise.
fn legend_segments(dashed: bool) -> [Vec<(i32, i32)>; 2] {
    let (end, start) = if dashed { (7, 13) } else { (10, 10) };
    [vec![(0, 0), (end, 0)], vec![(start, 0), (20, 0)]]
}

/// The legend entry of the zero-error marker.
pub const ZERO_ERRORS_LABEL: &str = "no errors: 95 % upper bound";

/// A hollow downward triangle, its tip on the point.
fn zero_marker(style: ShapeStyle) -> PathElement<(i32, i32)> {
    PathElement::new(vec![(-6, -10), (6, -10), (0, 0), (-6, -10)], style)
}

fn legend<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    position: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(plot_error)
}

/// The corner of the plot area that the curves cross least, for the legend: each curve is
/// sampled along its segments, `place` maps a point to axis-normalized [0, 1]² coordinates, and
/// the corner box (40 % of each axis) holding the fewest samples wins; ties prefer upper right,
/// upper left, lower left, lower right.
fn emptiest_corner(
    series: &[Series],
    drawable: &impl Fn(f64) -> bool,
    place: impl Fn(f64, f64) -> (f64, f64),
) -> SeriesLabelPosition {
    const STEPS: usize = 16;
    let mut counts = [0usize; 4]; // upper right, upper left, lower left, lower right
    let mut count = |(u, v): (f64, f64)| {
        let (right, left, upper, lower) = (u > 0.6, u < 0.4, v > 0.6, v < 0.4);
        for (i, hit) in [right && upper, left && upper, left && lower, right && lower]
            .into_iter()
            .enumerate()
        {
            counts[i] += usize::from(hit);
        }
    };
    for s in series {
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| x.is_finite() && drawable(y))
            .collect();
        if let [only] = points[..] {
            count(place(only.0, only.1));
        }
        for w in points.windows(2) {
            let (a, b) = (place(w[0].0, w[0].1), place(w[1].0, w[1].1));
            for k in 0..=STEPS {
                let t = k as f64 / STEPS as f64;
                count((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
            }
        }
    }
    let positions = [
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::LowerLeft,
        SeriesLabelPosition::LowerRight,
    ];
    let best = (0..4).min_by_key(|&i| counts[i]).unwrap_or(0);
    positions[best].clone()
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow::anyhow!("plot rendering failed: {e}")
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// `[lo, hi]` widened by `frac` of its span on each side (by 1 if the span is zero).
fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 0.0 {
        (lo - frac * span, hi + frac * span)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_goes_to_the_corner_the_curves_leave_empty() {
        let unit = |x: f64, y: f64| (x, y);
        let finite = |y: f64| y.is_finite();
        let curve = |points: Vec<(f64, f64)>| Series {
            name: "c".into(),
            points,
            y_err: None,
        };
        // A falling curve leaves the upper right empty (the usual BER plot).
        let falling = [curve(vec![(0.0, 1.0), (1.0, 0.0)])];
        assert!(matches!(
            emptiest_corner(&falling, &finite, unit),
            SeriesLabelPosition::UpperRight
        ));
        // Curves along the top and up the right side leave only the lower left.
        let top_right = [
            curve(vec![(0.0, 0.9), (1.0, 0.9)]),
            curve(vec![(0.9, 0.0), (0.9, 1.0)]),
        ];
        assert!(matches!(
            emptiest_corner(&top_right, &finite, unit),
            SeriesLabelPosition::LowerLeft
        ));
    }

    #[test]
    fn log_axes_label_one_two_five_on_narrow_ranges_and_decades_on_wide_ones() {
        let close = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x / y - 1.0).abs() < 1e-12)
        };
        let narrow = log_key_points(0.1, 1.0);
        assert!(close(&narrow, &[0.1, 0.2, 0.5, 1.0]), "{narrow:?}");
        let two = log_key_points(1e-3, 1e-1);
        assert!(
            close(&two, &[1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1]),
            "{two:?}"
        );
        let wide = log_key_points(1e-6, 1.0);
        assert!(
            close(&wide, &[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]),
            "{wide:?}"
        );
    }

    fn series(name: &str, points: Vec<(f64, f64)>, y_err: Option<Vec<(f64, f64)>>) -> Series {
        Series {
            name: name.into(),
            points,
            y_err,
        }
    }

    /// The trimmed contents of every `<text>` element.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    #[test]
    fn renders_lines_legend_and_labels() {
        let s = [
            series(
                "zf",
                vec![(0.0, 0.1), (5.0, 0.01), (10.0, 0.0)],
                Some(vec![(0.09, 0.11), (0.009, 0.011), (0.0, 0.001)]),
            ),
            series("mmse", vec![(0.0, 0.05), (5.0, 0.004)], None),
        ];
        let svg = render_svg("BER", "SNR [dB]", "BER", true, &s).unwrap();
        assert!(svg.starts_with("<svg"));
        let texts = svg_texts(&svg);
        for text in ["BER", "SNR (dB)", "zf", "mmse", ZERO_ERRORS_LABEL] {
            assert!(
                texts.iter().any(|t| t == text),
                "missing text {text} in {texts:?}"
            );
        }
        assert!(svg.contains("<polyline"));
        // The kinds' fixed colours, whatever the series order.
        let upper = svg.to_ascii_uppercase();
        assert!(upper.contains("#D55E00"), "MMSE vermillion");
        assert!(upper.contains("#CC79A7"), "ZF reddish purple");
        let linear = render_svg("loss", "epoch", "loss", false, &s[1..]).unwrap();
        let texts = svg_texts(&linear);
        assert!(texts.iter().any(|t| t == "mmse"));
        assert!(!texts.iter().any(|t| t == ZERO_ERRORS_LABEL));
        assert!(!texts.iter().any(|t| t == "zf"));
    }

    #[test]
    fn rejects_empty_and_mismatched_series() {
        assert!(render_svg("t", "x", "y", true, &[]).is_err());
        let zeros = series("z", vec![(0.0, 0.0)], None);
        assert!(render_svg("t", "x", "y", true, &[zeros]).is_err());
        let bad = series("b", vec![(0.0, 1.0)], Some(vec![]));
        let err = render_svg("t", "x", "y", false, &[bad]).unwrap_err();
        assert!(err.to_string().contains("`b`"), "{err}");
    }

    #[test]
    fn atomic_write_replaces_whole_file_and_names_bad_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // Only the target is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        check_writable(&path).unwrap();
        let missing = dir.path().join("nope").join("out.txt");
        let err = check_writable(&missing).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(write_atomically(&missing, b"x").is_err());
        assert!(check_writable(dir.path()).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn histogram_bins_and_renders_every_sample() {
        let f = bin_fractions(&[0.0, 0.1, 0.5, 1.0, f64::NAN, 2.0], 0.0, 1.0, 2);
        // 0.0 and 0.1 in the first bin; 0.5 and 1.0 (the upper edge) in the second; NaN and
        // the out-of-range 2.0 are not counted.
        assert_eq!(f, vec![0.5, 0.5]);
        let samples = [
            Histogram {
                name: "f32".into(),
                values: (0..100).map(|i| i as f64 / 10.0).collect(),
            },
            Histogram {
                name: "kaq@4".into(),
                values: (0..100).map(|i| (i / 20) as f64 * 2.0).collect(),
            },
        ];
        let svg = render_histogram_svg("layer 1", "x", &samples, 20).unwrap();
        let texts = svg_texts(&svg);
        for text in ["layer 1", "x", "f32", "kaq@4"] {
            assert!(texts.iter().any(|t| t == text), "missing {text}");
        }
        assert!(render_histogram_svg("t", "x", &samples, 0).is_err());
        let empty = Histogram {
            name: "e".into(),
            values: vec![f64::NAN],
        };
        assert!(render_histogram_svg("t", "x", &[empty], 10).is_err());
    }
}
