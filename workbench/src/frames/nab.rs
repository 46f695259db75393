//! The Numenta Anomaly Benchmark layout: `<category>/<name>.csv` (`timestamp,value`) plus
//! `labels/combined_windows.json` and `labels/combined_labels.json`.
//!
//! Rows are kept exactly as in the file (NAB scores per row): repeated and backwards timestamps
//! and gaps are counted in [`QuirkReport`], not repaired. Use [`crate::clean`] to repair.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::csv::{parse_timestamp_ms, read_metrics_csv};
use super::{FrameError, f64_column, timestamps_ms};

/// A NAB folder and its labels.
#[derive(Debug, Clone)]
pub struct NabCorpus {
    root: PathBuf,
    windows: BTreeMap<String, Vec<(i64, i64)>>,
    labels: BTreeMap<String, Vec<i64>>,
}

/// Irregularities of a series, counted (never hidden).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QuirkReport {
    /// Rows in the file.
    pub rows: usize,
    /// Rows whose timestamp equals the previous row's.
    pub repeated_timestamps: usize,
    /// Rows whose timestamp is earlier than the previous row's.
    pub backwards_steps: usize,
    /// Steps longer than 1.5 × the median step.
    pub gaps: usize,
    /// Null or non-finite values.
    pub missing_values: usize,
    /// The median step in seconds.
    pub median_interval_secs: i64,
}

/// One loaded NAB series.
#[derive(Debug, Clone)]
pub struct NabSeries {
    /// Key relative to the NAB folder, e.g. `realKnownCause/nyc_taxi.csv`.
    pub key: String,
    /// `timestamp`, `server` (the file stem), `value`; file order.
    pub frame: DataFrame,
    /// Timestamps in ms, file order.
    pub timestamps_ms: Vec<i64>,
    /// Values, file order.
    pub values: Vec<f64>,
    /// Anomaly windows `[start, end]` (inclusive, ms).
    pub windows: Vec<(i64, i64)>,
    /// Labelled anomaly instants (ms).
    pub labels: Vec<i64>,
    /// Counted irregularities.
    pub quirks: QuirkReport,
}

impl NabSeries {
    /// NAB's probationary period: the first `min(floor(0.15 N), 750)` rows.
    pub fn probationary_rows(&self) -> usize {
        probationary_rows(self.values.len())
    }

    /// Per row: inside an anomaly window?
    pub fn row_labels(&self) -> Vec<bool> {
        self.timestamps_ms.iter().map(|t| self.windows.iter().any(|(a, b)| t >= a && t <= b)).collect()
    }
}

/// `min(floor(0.15 n), 750)`.
pub fn probationary_rows(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// Count repeats, backwards steps, gaps and missing values of a time-ordered-by-file series.
pub fn quirks(ts: &[i64], values: &[Option<f64>]) -> QuirkReport {
    let mut steps: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).collect();
    steps.sort_unstable();
    let median = steps.get(steps.len() / 2).copied().unwrap_or(0);
    QuirkReport {
        rows: ts.len(),
        repeated_timestamps: ts.windows(2).filter(|w| w[1] == w[0]).count(),
        backwards_steps: ts.windows(2).filter(|w| w[1] < w[0]).count(),
        gaps: ts.windows(2).filter(|w| median > 0 && (w[1] - w[0]) * 2 > median * 3).count(),
        missing_values: values.iter().filter(|v| !v.is_some_and(f64::is_finite)).count(),
        median_interval_secs: median / 1000,
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, FrameError> {
    let text = std::fs::read_to_string(path).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
    serde_json::from_str(&text).map_err(|e| FrameError::Parse {
        path: path.display().to_string(),
        line: e.line(),
        field: "json".into(),
        message: e.to_string(),
    })
}

fn bad(path: &Path, field: &str, message: String) -> FrameError {
    FrameError::Parse { path: path.display().to_string(), line: 0, field: field.to_string(), message }
}

fn ts_or_err(path: &Path, key: &str, v: &serde_json::Value) -> Result<i64, FrameError> {
    v.as_str().and_then(parse_timestamp_ms).ok_or_else(|| bad(path, key, format!("{v} is not a timestamp")))
}

/// Parse NAB's `combined_windows.json` text.
pub fn parse_windows(path: &Path) -> Result<BTreeMap<String, Vec<(i64, i64)>>, FrameError> {
    let json = read_json(path)?;
    let obj = json.as_object().ok_or_else(|| bad(path, "json", "top level is not an object".into()))?;
    let mut out = BTreeMap::new();
    for (key, wins) in obj {
        let arr = wins.as_array().ok_or_else(|| bad(path, key, "windows are not a list".into()))?;
        let mut v = Vec::new();
        for w in arr {
            let pair = w.as_array().filter(|p| p.len() == 2).ok_or_else(|| bad(path, key, format!("window {w} is not [start, end]")))?;
            let (a, b) = (ts_or_err(path, key, &pair[0])?, ts_or_err(path, key, &pair[1])?);
            if b < a {
                return Err(bad(path, key, format!("window {w} ends before it starts")));
            }
            v.push((a, b));
        }
        out.insert(key.clone(), v);
    }
    Ok(out)
}

impl NabCorpus {
    /// Open a NAB folder (reads both label files).
    pub fn open(root: &Path) -> Result<Self, FrameError> {
        if !root.join("labels/combined_windows.json").exists() {
            return Err(FrameError::MissingDataset { name: "NAB", path: root.display().to_string() });
        }
        let windows = parse_windows(&root.join("labels/combined_windows.json"))?;
        let lp = root.join("labels/combined_labels.json");
        let json = read_json(&lp)?;
        let mut labels = BTreeMap::new();
        for (key, v) in json.as_object().ok_or_else(|| bad(&lp, "json", "top level is not an object".into()))? {
            let arr = v.as_array().ok_or_else(|| bad(&lp, key, "labels are not a list".into()))?;
            labels.insert(key.clone(), arr.iter().map(|t| ts_or_err(&lp, key, t)).collect::<Result<Vec<_>, _>>()?);
        }
        Ok(Self { root: root.to_path_buf(), windows, labels })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Keys of the series that have labels and a data file, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.windows.keys().filter(|k| self.root.join(k).is_file()).cloned().collect()
    }

    /// Windows of a key.
    pub fn windows(&self, key: &str) -> Option<&[(i64, i64)]> {
        self.windows.get(key).map(Vec::as_slice)
    }

    /// Load one series with its labels.
    pub fn load(&self, key: &str) -> Result<NabSeries, FrameError> {
        let path = self.root.join(key);
        let frame = read_metrics_csv(&path)?;
        if frame.column("value").is_err() {
            return Err(bad(&path, "header", "NAB files have a `value` column".into()));
        }
        let ts = timestamps_ms(&frame)?;
        let raw = f64_column(&frame, "value")?;
        let quirks = quirks(&ts, &raw);
        Ok(NabSeries {
            key: key.to_string(),
            frame,
            timestamps_ms: ts,
            values: raw.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
            windows: self.windows.get(key).cloned().unwrap_or_default(),
            labels: self.labels.get(key).cloned().unwrap_or_default(),
            quirks,
        })
    }
}
