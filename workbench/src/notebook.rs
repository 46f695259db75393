//! Rich output in Jupyter through the evcxr kernel: a value whose type has an inherent
//! `evcxr_display` method is shown by printing `EVCXR_BEGIN_CONTENT <mime>` … `EVCXR_END_CONTENT`
//! blocks (one bundle, several representations).
//!
//! - [`Table`]: a DataFrame (head and tail with its shape), any list of serializable records
//!   (evaluation reports, leaderboards, forecast reports), as a Markdown table (rendered by
//!   Jupyter) plus plain text, both formatted by comfy-table (the crate polars prints with).
//! - [`Chart`]: an SVG drawn by [`crate::charts`].
//!
//! ```
//! use workbench::notebook::Table;
//! let t = Table::records(&[serde_json::json!({"detector": "tail_ensemble", "nab_standard": 62.86})]);
//! assert!(t.markdown().contains("| tail_ensemble"));
//! ```

use std::path::Path;

use comfy_table::{ContentArrangement, Table as Comfy, presets};
use polars::prelude::DataFrame;
use serde::Serialize;

use crate::frames::FrameError;

/// A table for notebooks.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    caption: String,
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                if f.abs() >= 1e5 || (f != 0.0 && f.abs() < 1e-3) {
                    format!("{f:.4e}")
                } else {
                    format!("{f:.4}")
                }
            }
            _ => n.to_string(),
        },
        serde_json::Value::Null => "–".into(),
        other => other.to_string(),
    }
}

impl Table {
    /// The first `head` and last `tail` rows of a DataFrame, with its shape as the caption.
    pub fn frame(df: &DataFrame, head: usize, tail: usize) -> Self {
        let header: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
        let n = df.height();
        let show: Vec<usize> = if n <= head + tail { (0..n).collect() } else { (0..head).chain(n - tail..n).collect() };
        let mut rows = Vec::new();
        for (k, &r) in show.iter().enumerate() {
            if k == head && n > head + tail {
                rows.push(vec!["…".to_string(); header.len()]);
            }
            rows.push(
                df.columns().iter().map(|c| c.get(r).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_default()).collect(),
            );
        }
        Self { header, rows, caption: format!("shape: ({n}, {})", df.width()) }
    }

    /// One row per record (objects serialized with serde; nested values shown as JSON).
    pub fn records<T: Serialize>(records: &[T]) -> Self {
        let values: Vec<serde_json::Value> = records.iter().map(|r| serde_json::to_value(r).unwrap_or_default()).collect();
        let mut header: Vec<String> = Vec::new();
        for v in &values {
            if let Some(o) = v.as_object() {
                for k in o.keys() {
                    if !header.contains(k) {
                        header.push(k.clone());
                    }
                }
            }
        }
        let rows = values.iter().map(|v| header.iter().map(|k| v.get(k).map(cell).unwrap_or_default()).collect()).collect();
        Self { header, rows, caption: format!("{} rows", values.len()) }
    }

    /// Only these columns, in this order (unknown names are skipped).
    pub fn select(mut self, columns: &[&str]) -> Self {
        let idx: Vec<usize> = columns.iter().filter_map(|c| self.header.iter().position(|h| h == c)).collect();
        self.header = idx.iter().map(|&i| self.header[i].clone()).collect();
        self.rows = self.rows.iter().map(|r| idx.iter().map(|&i| r[i].clone()).collect()).collect();
        self
    }

    fn render(&self, preset: &str) -> String {
        let mut t = Comfy::new();
        t.load_preset(preset).set_content_arrangement(ContentArrangement::Disabled).set_header(self.header.clone());
        for r in &self.rows {
            t.add_row(r.clone());
        }
        t.to_string()
    }

    /// Markdown (what Jupyter renders).
    pub fn markdown(&self) -> String {
        format!("{}\n\n*{}*", self.render(presets::ASCII_MARKDOWN), self.caption)
    }

    /// Plain text.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.caption, self.render(presets::UTF8_FULL_CONDENSED))
    }

    /// evcxr's rich display hook.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/markdown\n{}\nEVCXR_END_CONTENT", self.markdown());
        println!("EVCXR_BEGIN_CONTENT text/plain\n{}\nEVCXR_END_CONTENT", self.text());
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

fn unique_suffix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// An SVG chart for notebooks.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The SVG document.
    pub svg: String,
}

impl Chart {
    /// Draws with `draw` into a temporary `.svg` file and keeps its text (any chart writer of
    /// the workbench, e.g. [`crate::forecasting::last_origin_chart`]).
    pub fn draw<E: From<FrameError>>(draw: impl FnOnce(&Path) -> Result<(), E>) -> Result<Self, E> {
        let dir = std::env::temp_dir().join(format!("wb-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| FrameError::Io { path: dir.display().to_string(), source: e })?;
        let path = dir.join(format!("{}.svg", unique_suffix()));
        draw(&path)?;
        let svg = std::fs::read_to_string(&path).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
        std::fs::remove_file(&path).ok();
        Ok(Self { svg })
    }

    /// A series with its anomaly score, windows (row ranges) shaded and the threshold.
    pub fn series(title: &str, values: &[f64], scores: &[f64], windows: &[(usize, usize)], threshold: f64) -> Result<Self, FrameError> {
        Self::draw(|p| crate::charts::series_chart(p, title, values, scores, windows, threshold))
    }

    /// History, forecast and threshold.
    pub fn forecast(title: &str, history: &[f64], forecast: &[f64], threshold: f64) -> Result<Self, FrameError> {
        Self::draw(|p| crate::charts::forecast_chart(p, title, history, forecast, threshold))
    }

    /// History and a statistical forecast with its 80 % and 95 % intervals shaded (the band
    /// predictive scaling decides on), and the threshold.
    pub fn forecast_band(
        title: &str,
        history: &[f64],
        forecast: &runtime::models::forecasters::Forecast,
        threshold: f64,
    ) -> Result<Self, FrameError> {
        let band = crate::charts::Band::of(forecast, None);
        Self::draw(|p| crate::charts::forecast_band_chart(p, title, history, &forecast.point, Some(band), threshold))
    }

    /// evcxr's rich display hook.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT", self.svg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn frames_show_head_tail_and_shape_and_records_become_rows() {
        let df = df!("x" => (0..20).collect::<Vec<i32>>(), "name" => (0..20).map(|i| format!("s{i}")).collect::<Vec<_>>()).unwrap();
        let t = Table::frame(&df, 3, 2);
        let md = t.markdown();
        assert!(md.contains("| x ") && md.contains("| s0 ") && md.contains("| s19 ") && !md.contains("| s10 "), "{md}");
        assert!(md.contains("…") && md.contains("shape: (20, 2)"), "{md}");
        let r = Table::records(&[serde_json::json!({"a": 1.5, "b": "x"}), serde_json::json!({"a": 2, "c": null})]).select(&["c", "a"]);
        let text = r.text();
        assert!(text.contains("1.5000") && text.contains('–') && !text.contains(" b "), "{text}");
        let c = Chart::forecast("t", &[1.0, 2.0, 3.0], &[3.5, 4.0], 3.8).unwrap();
        assert!(c.svg.starts_with("<svg") && c.svg.contains("polyline"), "{}", &c.svg[..c.svg.len().min(200)]);
    }

    #[test]
    fn a_forecast_band_chart_shades_both_intervals() {
        let f = runtime::models::forecasters::Forecast {
            point: vec![3.5, 4.0],
            lower_95: vec![2.0, 2.2],
            lower_80: vec![2.8, 3.0],
            upper_80: vec![4.2, 5.0],
            upper_95: vec![5.0, 6.1],
        };
        let plain = Chart::forecast("t", &[1.0, 2.0, 3.0], &f.point, 3.8).unwrap();
        let band = Chart::forecast_band("t", &[1.0, 2.0, 3.0], &f, 3.8).unwrap();
        assert!(band.svg.starts_with("<svg") && band.svg.contains("polygon") && !plain.svg.contains("polygon"), "{}", band.svg);
        assert!(band.svg.contains("95 %") && band.svg.contains("80 %"), "the legend names both intervals: {}", band.svg);
    }
}
