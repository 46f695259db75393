//! Charts people would rather see than read (plotters, SVG): a series with its anomaly score,
//! labelled windows shaded and the alert threshold; ROC curves.

use std::path::Path;

use plotters::prelude::*;

use crate::frames::FrameError;

fn err(path: &Path) -> impl Fn(String) -> FrameError + '_ {
    move |m| FrameError::Schema { context: format!("chart {}", path.display()), message: m }
}

/// Value (top) and score (bottom) over row index, windows (row ranges) shaded, threshold line.
pub fn series_chart(
    path: &Path,
    title: &str,
    values: &[f64],
    scores: &[f64],
    windows: &[(usize, usize)],
    threshold: f64,
) -> Result<(), FrameError> {
    let e = err(path);
    let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let (top, bottom) = root.split_vertically(300);
    let n = values.len().max(2);
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo < hi { (lo, hi) } else { (lo - 1.0, lo + 1.0) };
    let pad = (hi - lo) * 0.05;
    let mut c = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(20)
        .y_label_area_size(60)
        .build_cartesian_2d(0..n, (lo - pad)..(hi + pad))
        .map_err(|x| e(x.to_string()))?;
    c.configure_mesh().disable_x_mesh().y_desc("value").draw().map_err(|x| e(x.to_string()))?;
    for &(a, b) in windows {
        c.draw_series(std::iter::once(Rectangle::new([(a, lo - pad), (b, hi + pad)], RGBColor(255, 200, 200).filled())))
            .map_err(|x| e(x.to_string()))?;
    }
    c.draw_series(LineSeries::new(values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, v)| (i, *v)), &BLUE))
        .map_err(|x| e(x.to_string()))?
        .label("value");
    let mut s = ChartBuilder::on(&bottom)
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0..n, 0.0..1.0)
        .map_err(|x| e(x.to_string()))?;
    s.configure_mesh().disable_x_mesh().x_desc("row").y_desc("anomaly score").draw().map_err(|x| e(x.to_string()))?;
    for &(a, b) in windows {
        s.draw_series(std::iter::once(Rectangle::new([(a, 0.0), (b, 1.0)], RGBColor(255, 200, 200).filled())))
            .map_err(|x| e(x.to_string()))?;
    }
    s.draw_series(LineSeries::new(scores.iter().enumerate().map(|(i, v)| (i, v.clamp(0.0, 1.0))), &BLACK)).map_err(|x| e(x.to_string()))?;
    if threshold.is_finite() {
        s.draw_series(LineSeries::new([(0, threshold), (n, threshold)], RED.stroke_width(2))).map_err(|x| e(x.to_string()))?;
    }
    root.present().map_err(|x| e(x.to_string()))
}

/// One value per item (e.g. a sweep's objective per trial, best first) as points joined by a line.
pub fn values_chart(path: &Path, title: &str, x_label: &str, y_label: &str, values: &[f64]) -> Result<(), FrameError> {
    let e = err(path);
    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo < hi {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 1.0, lo + 1.0)
    } else {
        (0.0, 1.0)
    };
    let pad = (hi - lo) * 0.05;
    let n = values.len().max(1);
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0..n + 1, (lo - pad)..(hi + pad))
        .map_err(|x| e(x.to_string()))?;
    c.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(|x| e(x.to_string()))?;
    let pts: Vec<(usize, f64)> = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, v)| (i + 1, *v)).collect();
    c.draw_series(LineSeries::new(pts.iter().copied(), &BLUE)).map_err(|x| e(x.to_string()))?;
    c.draw_series(pts.iter().map(|p| Circle::new(*p, 4, BLUE.filled()))).map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))
}

/// ROC curves `(name, points (fpr, tpr))` on one chart.
pub fn roc_chart(path: &Path, title: &str, curves: &[(String, Vec<(f64, f64)>)]) -> Result<(), FrameError> {
    let e = err(path);
    let root = SVGBackend::new(path, (560, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(|x| e(x.to_string()))?;
    c.configure_mesh().x_desc("false positive rate").y_desc("true positive rate").draw().map_err(|x| e(x.to_string()))?;
    c.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3))).map_err(|x| e(x.to_string()))?;
    for (i, (name, pts)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|x| e(x.to_string()))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
    }
    c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))
}

/// The predictive-scaling chart: recent history, the forecast continuing it, and the threshold
/// line. PNG, or SVG when `path` ends in `.svg`.
pub fn forecast_chart(path: &Path, title: &str, history: &[f64], forecast: &[f64], threshold: f64) -> Result<(), FrameError> {
    forecast_band_chart(path, title, history, forecast, None, threshold)
}

/// Prediction intervals drawn around a forecast, and what happened (when known).
#[derive(Debug, Clone, Copy)]
pub struct Band<'a> {
    /// Lower and upper bounds of the 95 % interval per step.
    pub interval_95: (&'a [f64], &'a [f64]),
    /// Lower and upper bounds of the 80 % interval per step.
    pub interval_80: (&'a [f64], &'a [f64]),
    /// The actual values after the origin (evaluation), if known.
    pub actual: Option<&'a [f64]>,
}

impl<'a> Band<'a> {
    /// The 80 % and 95 % intervals of a statistical forecast, and the actual values if known.
    pub fn of(forecast: &'a runtime::models::forecasters::Forecast, actual: Option<&'a [f64]>) -> Self {
        Self { interval_95: (&forecast.lower_95, &forecast.upper_95), interval_80: (&forecast.lower_80, &forecast.upper_80), actual }
    }
}

/// [`forecast_chart`] with the 80 % and 95 % intervals shaded (the band predictive scaling
/// decides on) and, when evaluating, the actual values.
pub fn forecast_band_chart(
    path: &Path,
    title: &str,
    history: &[f64],
    forecast: &[f64],
    band: Option<Band<'_>>,
    threshold: f64,
) -> Result<(), FrameError> {
    if path.extension().is_some_and(|x| x == "svg") {
        draw_forecast(SVGBackend::new(path, (1100, 450)).into_drawing_area(), path, title, (history, forecast, band), threshold)
    } else {
        draw_forecast(BitMapBackend::new(path, (1100, 450)).into_drawing_area(), path, title, (history, forecast, band), threshold)
    }
}

fn draw_forecast<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    path: &Path,
    title: &str,
    (history, forecast, band): (&[f64], &[f64], Option<Band<'_>>),
    threshold: f64,
) -> Result<(), FrameError> {
    let e = err(path);
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let n = history.len() + forecast.len();
    let extra: Vec<f64> =
        band.map(|b| b.interval_95.0.iter().chain(b.interval_95.1).chain(b.actual.unwrap_or(&[])).copied().collect()).unwrap_or_default();
    let all =
        history.iter().chain(forecast).chain(&extra).copied().chain(threshold.is_finite().then_some(threshold)).filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo < hi { (lo, hi) } else { (lo - 1.0, lo + 1.0) };
    let pad = (hi - lo) * 0.08;
    let h0 = history.len() as i64;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d((1 - h0)..(n as i64 - h0), (lo - pad)..(hi + pad))
        .map_err(|x| e(x.to_string()))?;
    c.configure_mesh().disable_x_mesh().x_desc("steps from now").y_desc("value").draw().map_err(|x| e(x.to_string()))?;
    // The last row is now (step 0); the forecast's step k is k steps later.
    c.draw_series(LineSeries::new(history.iter().enumerate().map(|(i, v)| (i as i64 + 1 - h0, *v)), &BLUE))
        .map_err(|x| e(x.to_string()))?
        .label("history")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    if let Some(b) = band {
        for ((lo, up), colour, label) in
            [(b.interval_95, RGBColor(250, 215, 170), "95 % interval"), (b.interval_80, RGBColor(245, 180, 110), "80 % interval")]
        {
            let outline: Vec<(i64, f64)> = up
                .iter()
                .enumerate()
                .map(|(i, v)| (i as i64 + 1, *v))
                .chain(lo.iter().enumerate().rev().map(|(i, v)| (i as i64 + 1, *v)))
                .collect();
            c.draw_series(std::iter::once(Polygon::new(outline, colour.filled())))
                .map_err(|x| e(x.to_string()))?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], colour.filled()));
        }
        if let Some(actual) = b.actual {
            // Steps without a value (NaN: no row there) are skipped.
            let points = actual.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, v)| (i as i64 + 1, *v));
            c.draw_series(LineSeries::new(points, BLACK.stroke_width(1)))
                .map_err(|x| e(x.to_string()))?
                .label("actual")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        }
    }
    let last = history.last().copied().unwrap_or(f64::NAN);
    c.draw_series(LineSeries::new(
        std::iter::once((0i64, last)).chain(forecast.iter().enumerate().map(|(i, v)| (i as i64 + 1, *v))),
        RGBColor(230, 120, 0).stroke_width(2),
    ))
    .map_err(|x| e(x.to_string()))?
    .label("forecast")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RGBColor(230, 120, 0)));
    if threshold.is_finite() {
        c.draw_series(LineSeries::new([(1 - h0, threshold), (n as i64 - h0, threshold)], RED.stroke_width(1)))
            .map_err(|x| e(x.to_string()))?
            .label("threshold")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    }
    // Upper left: the forecast and its band on the right stay in view.
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn charts_are_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("wb-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v: Vec<f64> = (0..200).map(|i| (i as f64 / 10.0).sin()).collect();
        let s: Vec<f64> = (0..200).map(|i| if i == 120 { 0.9 } else { 0.1 }).collect();
        super::series_chart(&dir.join("s.svg"), "demo", &v, &s, &[(110, 130)], 0.5).unwrap();
        let svg = std::fs::read_to_string(dir.join("s.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("demo") && svg.contains("<polyline"), "{}", &svg[..200.min(svg.len())]);
        super::roc_chart(&dir.join("r.svg"), "roc", &[("m".into(), vec![(0.0, 0.0), (0.2, 0.8), (1.0, 1.0)])]).unwrap();
        assert!(std::fs::read_to_string(dir.join("r.svg")).unwrap().contains("true positive rate"));
        super::values_chart(&dir.join("v.svg"), "objective", "rank", "event_f1", &[0.4, 0.3, f64::NAN, 0.1]).unwrap();
        assert!(std::fs::read_to_string(dir.join("v.svg")).unwrap().contains("event_f1"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
