//! The push-latency chart: commit -> client latency (p50, p99) against subscriber count, as a
//! PNG drawn with plotters' bitmap backend. Text uses a font shipped inside a crate
//! (`epaint_default_fonts`), so no system font is needed.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{BenchError, BenchResult};
use crate::scenarios::push::PushResult;

const FONT: &str = "sans-serif";

fn register_font() -> BenchResult<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(BenchError::Chart("the embedded font did not load".into()))
    }
}

fn chart_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Chart(e.to_string())
}

/// Draws p50 and p99 latency against subscribers (log-log), one pair of lines per diff rate.
pub fn push_latency(results: &[PushResult], path: &Path) -> BenchResult<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let max_n = results
        .iter()
        .map(|r| r.subscribers)
        .max()
        .unwrap_or(10)
        .max(10) as f64;
    let max_ms = results
        .iter()
        .map(|r| r.latency.p99_ms)
        .fold(20.0_f64, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption("gantry: commit -> client latency on one topic", (FONT, 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((0.8..max_n * 1.5).log_scale(), (0.1..max_ms).log_scale())
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc("subscribers on the topic")
        .y_desc("latency (ms)")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(chart_error)?;
    // The target: p99 <= 10 ms at 1,000 subscribers.
    chart
        .draw_series(LineSeries::new(
            vec![(0.8, 10.0), (max_n * 1.5, 10.0)],
            // Red, so that it does not vanish into the 10 ms grid line.
            ShapeStyle::from(&RGBColor(200, 40, 40)).stroke_width(2),
        ))
        .map_err(chart_error)?
        .label("target p99 (10 ms)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(200, 40, 40)));
    let mut by_rate: BTreeMap<usize, Vec<&PushResult>> = BTreeMap::new();
    for r in results {
        by_rate.entry(r.rate).or_default().push(r);
    }
    let palette = [BLUE, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (rate, mut rs)) in by_rate.into_iter().enumerate() {
        rs.sort_by_key(|r| r.subscribers);
        let color = palette[i % palette.len()];
        for (label, pick, width) in [
            (
                "p50",
                (|r: &PushResult| r.latency.p50_ms) as fn(&PushResult) -> f64,
                1,
            ),
            ("p99", |r: &PushResult| r.latency.p99_ms, 3),
        ] {
            let points: Vec<(f64, f64)> = rs
                .iter()
                .map(|r| (r.subscribers as f64, pick(r).max(0.1)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))
                .map_err(chart_error)?
                .label(format!("{label}, {rate} diffs/s"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
                });
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(chart_error)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error)?;
    root.present().map_err(chart_error)?;
    Ok(())
}
