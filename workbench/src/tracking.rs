//! The tracking files of a sweep trial (`runs/sweeps/<name>/trials/<id>/`), one typed record
//! each: written by [`crate::sweep`], read by [`crate::promote`] and [`crate::mlflow`].
//!
//! - `trial.json`: [`TrialRecord`], what `experiment promote` bundles (the resolved detector,
//!   its alert threshold, the dataset it was evaluated on);
//! - `tags.json`: [`TrialTags`] (sweep, dataset, detector, times, status, git commit);
//! - `params.json`: the swept parameters, `{"name": "value"}`;
//! - `metrics.jsonl`: one [`MetricPoint`] per line, MLflow's `{"key","value","step","timestamp"}`.
//!
//! A forecaster run (`experiment forecast train`, `runs/forecasts/<name>/<id>/`) has
//! `forecast.json` ([`ForecastRun`]) instead of `trial.json` and `tags.json`, and the same
//! `params.json` and `metrics.jsonl`.
//!
//! ```
//! use workbench::tracking::{TrackedFile, TrialRecord, TrialTags};
//! let dir = std::env::temp_dir().join(format!("tracking-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let record = TrialRecord { detector: Default::default(), threshold: 0.6, dataset: workbench::sweep::Dataset::Nab };
//! record.write(&dir).unwrap();
//! assert_eq!(TrialRecord::read(&dir).unwrap(), record);
//! assert!(TrialTags::read(&dir).unwrap_err().to_string().contains("tags.json"));
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::detectors::AnyDetector;
use crate::sweep::Dataset;

/// A tracking file that cannot be read, parsed or written (names the file).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TrackingError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

fn read<T: DeserializeOwned>(path: &Path) -> Result<T, TrackingError> {
    parse(path, &read_text(path)?)
}

fn read_text(path: &Path) -> Result<String, TrackingError> {
    std::fs::read_to_string(path).map_err(|e| TrackingError { path: path.display().to_string(), reason: e.to_string() })
}

fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, TrackingError> {
    serde_json::from_str(text).map_err(|e| TrackingError { path: path.display().to_string(), reason: e.to_string() })
}

fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), TrackingError> {
    let err = |reason: String| TrackingError { path: path.display().to_string(), reason };
    let text = serde_json::to_string_pretty(value).map_err(|e| err(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| err(e.to_string()))
}

/// A record kept as one JSON file in a run folder.
pub trait TrackedFile: Serialize + DeserializeOwned {
    /// Its file name in the folder.
    const FILE: &'static str;

    /// Read `dir/FILE`.
    fn read(dir: &Path) -> Result<Self, TrackingError> {
        read(&dir.join(Self::FILE))
    }

    /// Write `dir/FILE`.
    fn write(&self, dir: &Path) -> Result<(), TrackingError> {
        write(&dir.join(Self::FILE), self)
    }
}

/// `trial.json`: what a trial evaluated, and what its promotion ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialRecord {
    /// The resolved detector (base settings with the trial's parameters).
    pub detector: AnyDetector,
    /// Alert threshold.
    pub threshold: f64,
    /// The dataset the trial was evaluated on.
    pub dataset: Dataset,
}

impl TrackedFile for TrialRecord {
    const FILE: &'static str = "trial.json";
}

/// `forecast.json`: a tracked forecaster run, what its promotion ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastRun {
    /// The forecaster the runtime fits per server (`[forecast] model = "registry"`).
    pub forecaster: runtime::predict::StatisticalForecast,
    /// The series it was evaluated on: the file and the column.
    pub input: String,
    /// Column.
    pub column: String,
    /// SHA-256 of the input file.
    pub input_sha256: String,
    /// Rows of the series.
    pub rows: u64,
    /// First and last row times, milliseconds.
    pub start_ms: Option<i64>,
    /// Last row time.
    pub end_ms: Option<i64>,
    /// When the run started and ended, milliseconds since the epoch.
    pub start_time: i64,
    /// End.
    pub end_time: i64,
    /// The git commit of the workbench that ran it, when known.
    pub git_commit: Option<String>,
}

impl TrackedFile for ForecastRun {
    const FILE: &'static str = "forecast.json";

    /// Read `dir/forecast.json`; a forecaster written before a setting existed keeps the value
    /// it was evaluated with ([`runtime::predict::StatisticalForecast::keep_stored`]).
    fn read(dir: &Path) -> Result<Self, TrackingError> {
        let path = dir.join(Self::FILE);
        let text = read_text(&path)?;
        let mut run: Self = parse(&path, &text)?;
        run.forecaster.keep_stored(&parse::<serde_json::Value>(&path, &text)?["forecaster"]);
        Ok(run)
    }
}

/// How a tracked run ended (MLflow's run statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Evaluated and recorded.
    Finished,
    /// Failed.
    Failed,
}

impl RunStatus {
    /// MLflow's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
        }
    }
}

/// `tags.json`: where a trial came from and when it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialTags {
    /// Sweep name.
    pub sweep: String,
    /// Dataset.
    pub dataset: Dataset,
    /// Detector kind.
    pub detector: String,
    /// Start, milliseconds since the epoch.
    pub start_time: i64,
    /// End, milliseconds since the epoch.
    pub end_time: i64,
    /// How it ended.
    pub status: RunStatus,
    /// The git commit of the workbench that ran it, when known.
    pub git_commit: Option<String>,
}

impl TrackedFile for TrialTags {
    const FILE: &'static str = "tags.json";
}

/// `params.json`: the swept parameters as text (empty when the file is missing).
pub fn read_params(trial_dir: &Path) -> Result<BTreeMap<String, String>, TrackingError> {
    let path = trial_dir.join("params.json");
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    read(&path)
}

/// Write `params.json`.
pub fn write_params(trial_dir: &Path, params: &BTreeMap<String, String>) -> Result<(), TrackingError> {
    write(&trial_dir.join("params.json"), params)
}

/// One tracked metric point (a line of a trial's `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// Metric name.
    pub key: String,
    /// Value.
    pub value: f64,
    /// Step.
    #[serde(default)]
    pub step: i64,
    /// Milliseconds since the epoch (0: unknown).
    #[serde(default)]
    pub timestamp: i64,
}

/// The metric points tracked in `trial_dir/metrics.jsonl` (none when it is missing; lines that
/// are not a point are skipped).
pub fn read_metrics(trial_dir: &Path) -> Vec<MetricPoint> {
    std::fs::read_to_string(trial_dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<MetricPoint>(l).ok())
        .collect()
}

/// Write `metrics.jsonl`: every metric at step 0, time `timestamp`.
pub fn write_metrics(trial_dir: &Path, metrics: &BTreeMap<String, f64>, timestamp: i64) -> Result<(), TrackingError> {
    let path = trial_dir.join("metrics.jsonl");
    let lines: String = metrics
        .iter()
        .map(|(k, &v)| MetricPoint { key: k.clone(), value: v, step: 0, timestamp })
        .filter_map(|p| serde_json::to_string(&p).ok())
        .map(|l| l + "\n")
        .collect();
    std::fs::write(&path, lines).map_err(|e| TrackingError { path: path.display().to_string(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(std::path::PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    #[test]
    fn tags_and_metrics_round_trip_and_a_damaged_line_is_skipped() {
        let dir = std::env::temp_dir().join(format!("wb-tracking-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = Dir(dir);
        let tags = TrialTags {
            sweep: "s".into(),
            dataset: Dataset::Sim,
            detector: "fleet".into(),
            start_time: 1,
            end_time: 2,
            status: RunStatus::Finished,
            git_commit: None,
        };
        tags.write(dir.path()).unwrap();
        assert_eq!(TrialTags::read(dir.path()).unwrap(), tags);
        let text = std::fs::read_to_string(dir.path().join("tags.json")).unwrap();
        assert!(text.contains("\"status\": \"FINISHED\"") && text.contains("\"dataset\": \"sim\""), "{text}");
        let metrics = BTreeMap::from([("recall".to_string(), 0.5), ("event_f1".to_string(), 0.25)]);
        write_metrics(dir.path(), &metrics, 7).unwrap();
        let mut text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
        text.push_str("not json\n");
        std::fs::write(dir.path().join("metrics.jsonl"), text).unwrap();
        let read: BTreeMap<String, f64> = read_metrics(dir.path()).into_iter().map(|m| (m.key, m.value)).collect();
        assert_eq!(read, metrics);
        // A forecaster run written before `median_level_share` existed keeps 0 (how it was
        // evaluated); one written now reads back as written.
        let run = ForecastRun {
            forecaster: runtime::predict::StatisticalForecast::default(),
            input: "in.csv".into(),
            column: "value".into(),
            input_sha256: "00".into(),
            rows: 3,
            start_ms: None,
            end_ms: None,
            start_time: 1,
            end_time: 2,
            git_commit: None,
        };
        run.write(dir.path()).unwrap();
        assert_eq!(ForecastRun::read(dir.path()).unwrap(), run);
        let mut old: serde_json::Value = serde_json::to_value(&run).unwrap();
        old["forecaster"]["params"].as_object_mut().unwrap().remove("median_level_share");
        std::fs::write(dir.path().join("forecast.json"), old.to_string()).unwrap();
        let read = ForecastRun::read(dir.path()).unwrap();
        assert_eq!(read.forecaster.params.median_level_share, 0.0);
        assert_ne!(run.forecaster.params.median_level_share, 0.0);
        let bad = "{\"detector\": {\"kind\": \"fleet\"}, \"threshold\": 0.5, \"dataset\": \"nob\"}";
        std::fs::write(dir.path().join("trial.json"), bad).unwrap();
        let e = TrialRecord::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("trial.json") && e.contains("nob"), "{e}");
    }
}
