//! PNG plots of simulation reports, one panel per system side by side: the CDF of
//! playback rate per peer class (the paper's Figures 14/16) and the received-chunk
//! ratio per layer per class (Figures 15/17), and the playback rate over time of a
//! typical peer per class (the prototype's Figures 5/9). Drawing only: the figures come
//! from `SwarmReport` and `RateSeries`; nothing here computes a metric.
//!
//! Text uses DejaVu Sans embedded in the binary (assets/, licence alongside), so
//! plotting needs no system fonts.

use layerp2p_engine::lab::experiment::RateSeries;
use layerp2p_engine::swarm::report::SwarmReport;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::Once;

const FONT: &str = "sans-serif";
const PANEL_W: u32 = 620;
const HEIGHT: u32 = 520;

/// One panel: a system's name and its report.
#[derive(Debug)]
pub struct Panel<'a> {
    pub title: String,
    pub report: &'a SwarmReport,
}

fn register_font() -> Result<(), String> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        result = plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .map_err(|_| "embedded font is invalid".to_string());
    });
    result
}

fn colour(i: usize) -> RGBColor {
    // Distinguishable on white, in class order (low upload first).
    const C: [RGBColor; 10] = [
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
        RGBColor(188, 189, 34),
        RGBColor(44, 160, 44),
        RGBColor(23, 190, 207),
        RGBColor(31, 119, 180),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(0, 0, 0),
    ];
    C[i % C.len()]
}

fn err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Sets up a white canvas split into one area per panel, with a title.
fn canvas<'a>(path: &'a Path, title: &str, panels: usize) -> Result<(Area<'a>, Vec<Area<'a>>), String> {
    register_font()?;
    let root = BitMapBackend::new(path, (PANEL_W * panels.max(1) as u32, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let body = root.titled(title, (FONT, 22)).map_err(err)?;
    let areas = body.split_evenly((1, panels.max(1)));
    Ok((root, areas))
}

type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The series legend, top left, the same on every panel.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()
        .map_err(err)
}

/// A panel with axes from 0 to `max` (x, y), described by `desc` (x, y), for lines.
fn line_chart<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    max: (f64, f64),
    desc: (&str, &str),
) -> Result<Chart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max.0, 0.0..max.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(desc.0)
        .y_desc(desc.1)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// CDF of playback rate, one line per class, one panel per system.
pub fn playback_cdf(path: &Path, title: &str, panels: &[Panel]) -> Result<(), String> {
    let (root, areas) = canvas(path, title, panels.len())?;
    for (panel, area) in panels.iter().zip(&areas) {
        let full = panel.report.full_rate_kbps as f64;
        let mut chart =
            line_chart(area, &panel.title, (full * 1.05, 1.0), ("playback rate R (kbps)", "CDF (share of peers)"))?;
        for (i, class) in panel.report.classes.iter().enumerate() {
            if class.rates.is_empty() {
                continue;
            }
            let n = class.rates.len() as f64;
            // A step CDF: 0 before the smallest rate, 1 after the largest.
            let mut pts = vec![(0.0, 0.0)];
            for (k, &r) in class.rates.iter().enumerate() {
                pts.push((r, k as f64 / n));
                pts.push((r, (k + 1) as f64 / n));
            }
            pts.push((full * 1.05, 1.0));
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(err)?
                .label(format!("{} ({} peers)", class.name, class.peers))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        legend(&mut chart)?;
    }
    root.present().map_err(err)
}

/// Received-chunk ratio alpha(l): bars per layer, grouped by class, one panel per system.
pub fn chunk_ratio(path: &Path, title: &str, panels: &[Panel]) -> Result<(), String> {
    let (root, areas) = canvas(path, title, panels.len())?;
    for (panel, area) in panels.iter().zip(&areas) {
        let classes = &panel.report.classes;
        let layers = panel.report.layers.max(1);
        let names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT, 18))
            .margin(12)
            .x_label_area_size(55)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..classes.len() as f64 - 0.5, 0.0..1.08)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(classes.len().max(1))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("peer class (upload kbps)")
            .y_desc("received chunk ratio α(l)")
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let width = 0.8 / layers as f64;
        for l in 0..layers {
            let c = layer_colour(l);
            chart
                .draw_series(classes.iter().enumerate().filter_map(|(i, class)| {
                    let a = *class.alpha.get(l)?;
                    let x0 = i as f64 - 0.4 + l as f64 * width;
                    Some(Rectangle::new([(x0, 0.0), (x0 + width * 0.9, a)], c.filled()))
                }))
                .map_err(err)?
                .label(format!("layer {}", l + 1))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        legend(&mut chart)?;
    }
    root.present().map_err(err)
}

fn layer_colour(l: usize) -> RGBColor {
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(148, 103, 189)][l % 4]
}

/// One panel of the time-series plot: a system's name, its class names and the typical
/// peer of each class (None: no such peer).
#[derive(Debug)]
pub struct SeriesPanel<'a> {
    pub title: String,
    pub classes: Vec<String>,
    pub typical: &'a [Option<RateSeries>],
    /// Top of the y axis (the full video rate, say).
    pub y_max: f64,
}

/// Playback rate (all layers) of a typical peer per class over time, one line per
/// class, one panel per system.
pub fn time_series(path: &Path, title: &str, panels: &[SeriesPanel]) -> Result<(), String> {
    let (root, areas) = canvas(path, title, panels.len())?;
    for (panel, area) in panels.iter().zip(&areas) {
        let x_max = panel.typical.iter().flatten().filter_map(|s| s.at_s.last().copied()).fold(1.0, f64::max);
        let mut chart =
            line_chart(area, &panel.title, (x_max, panel.y_max * 1.3), ("time since start (s)", "played rate (kbps)"))?;
        for (i, series) in panel.typical.iter().enumerate() {
            let Some(series) = series else { continue };
            let pts: Vec<(f64, f64)> = series.at_s.iter().copied().zip(series.played_kbps()).collect();
            let c = colour(i);
            let name = panel.classes.get(i).cloned().unwrap_or_default();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(1)))
                .map_err(err)?
                .label(format!("{name} (viewer #{})", series.index))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        legend(&mut chart)?;
    }
    root.present().map_err(err)
}
