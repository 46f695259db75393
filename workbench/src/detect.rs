//! Online, causal detection over files: `experiment detect` and the evaluation harness.
//!
//! Input: a CSV with a `timestamp` column and numeric columns (NAB: `timestamp,value`), or a
//! headerless comma-separated numeric `.txt` (SMD). Output: one `anomaly_score` in [0, 1] per
//! input row, same order, computed by a [`StreamingDetector`](runtime::models::detectors::StreamingDetector): row t sees rows ≤ t only.

use std::path::Path;

use crate::detectors::AnyDetector;
use runtime::decisions::DecisionConfig;

use crate::frames::{FrameError, csv::read_metrics_csv, f64_column, metric_columns, smd::read_matrix, timestamps_ms};

/// A loaded detection input: timestamps (or synthetic ones) and rows.
#[derive(Debug, Clone)]
pub struct DetectInput {
    /// Column names.
    pub columns: Vec<String>,
    /// Timestamps in ms; `None` for headerless input (then `index` is written).
    pub timestamps_ms: Option<Vec<i64>>,
    /// Row-major values.
    pub rows: Vec<Vec<f64>>,
}

impl DetectInput {
    /// Timestamps, synthetic 1-minute steps when the input had none.
    pub fn times(&self) -> Vec<i64> {
        self.timestamps_ms.clone().unwrap_or_else(|| (0..self.rows.len() as i64).map(|i| i * 60_000).collect())
    }
}

/// The detector used when none is configured, and why: with a training split (SMD-style
/// train/test) the nearest-neighbour detector `knn`, which fits on it; otherwise, for several
/// metrics (a server's CPU, memory, network, disk …) the fleet detector `fleet`, and for one
/// metric the causal univariate default `context_tail`.
///
/// ```
/// use workbench::detect::default_detector;
/// assert_eq!(default_detector(false, 1).0.name(), "context_tail");
/// assert_eq!(default_detector(false, 4).0.name(), "fleet");
/// assert_eq!(default_detector(true, 38).0.name(), "knn");
/// ```
pub fn default_detector(has_training_split: bool, n_metrics: usize) -> (AnyDetector, &'static str) {
    use runtime::models::detectors::{DetectorConfig, FleetConfig, KnnConfig};
    if has_training_split {
        (DetectorConfig::Knn(KnnConfig::default()).into(), "the default with a training split")
    } else if n_metrics >= 2 {
        (DetectorConfig::Fleet(FleetConfig::default()).into(), "the default for several metrics without a training split")
    } else {
        (DetectorConfig::default().into(), "the default for one metric without a training split")
    }
}

/// Read a detection input (see the module docs). Missing cells become NaN (skipped by detectors).
pub fn read_input(path: &Path) -> Result<DetectInput, FrameError> {
    if path.extension().is_some_and(|e| e == "parquet") {
        return from_frame(&crate::frames::read_metrics_file(path)?, path);
    }
    let text_head = std::fs::read(path).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
    let empty = |line: usize, message: &str| FrameError::Parse {
        path: path.display().to_string(),
        line,
        field: "header".into(),
        message: message.into(),
    };
    if text_head.iter().all(u8::is_ascii_whitespace) {
        return Err(empty(1, "empty file: expected a header (`timestamp,<metric>…`) or numeric rows"));
    }
    let first = text_head.split(|b| *b == b'\n').next().unwrap_or_default();
    let headerless = first.iter().all(|b| b.is_ascii_digit() || b".,-+eE \r".contains(b));
    if headerless {
        let rows = read_matrix(path)?;
        let columns = (1..=rows.first().map_or(0, Vec::len)).map(|j| format!("m{j:02}")).collect();
        return Ok(DetectInput { columns, timestamps_ms: None, rows });
    }
    from_frame(&read_metrics_csv(path)?, path)
}

/// The rows of a metrics frame (CSV with a header, or Parquet) read from `path`.
fn from_frame(df: &polars::prelude::DataFrame, path: &Path) -> Result<DetectInput, FrameError> {
    let empty = |line: usize, message: &str| FrameError::Parse {
        path: path.display().to_string(),
        line,
        field: "header".into(),
        message: message.into(),
    };
    let columns = metric_columns(df);
    if columns.is_empty() {
        return Err(empty(1, "no numeric metric column besides the timestamp"));
    }
    if df.height() == 0 {
        return Err(empty(2, "no data rows after the header"));
    }
    let ts = timestamps_ms(df)?;
    let cols: Vec<Vec<Option<f64>>> = columns.iter().map(|c| f64_column(df, c)).collect::<Result<_, _>>()?;
    let rows = (0..ts.len()).map(|r| cols.iter().map(|c| c[r].unwrap_or(f64::NAN)).collect()).collect();
    Ok(DetectInput { columns, timestamps_ms: Some(ts), rows })
}

/// Run a detector over `input` (after learning from `train`, if given): one score per row.
pub fn detect(
    cfg: &AnyDetector,
    input: &DetectInput,
    train: Option<&DetectInput>,
) -> Result<Vec<f64>, runtime::models::detectors::DetectorError> {
    detect_warned(cfg, input, train).map(|(scores, _)| scores)
}

/// [`detect`], plus the detector's warnings (see `StreamingDetector::warnings`).
pub fn detect_warned(
    cfg: &AnyDetector,
    input: &DetectInput,
    train: Option<&DetectInput>,
) -> Result<(Vec<f64>, Vec<String>), runtime::models::detectors::DetectorError> {
    let mut det = cfg.build(input.columns.len())?;
    if let Some(train) = train {
        for (t, row) in train.times().iter().zip(&train.rows) {
            det.learn(*t, row);
        }
    }
    let scores = input.times().iter().zip(&input.rows).map(|(t, row)| det.push(*t, row)).collect();
    Ok((scores, det.warnings()))
}

/// Scores and, per row, the index of the metric contributing most (the primary issue).
#[derive(Debug, Clone)]
pub struct Detection {
    /// One score per row.
    pub scores: Vec<f64>,
    /// Column index of the primary metric per row (0 when the detector cannot tell).
    pub primary: Vec<usize>,
    /// The detector's warnings (e.g. failed fits).
    pub warnings: Vec<String>,
}

/// Run a detector over `input` (after learning from `train`, if given), keeping primary metrics.
pub fn detect_rows(
    cfg: &AnyDetector,
    input: &DetectInput,
    train: Option<&DetectInput>,
) -> Result<Detection, runtime::models::detectors::DetectorError> {
    let mut det = cfg.build(input.columns.len())?;
    if let Some(train) = train {
        for (t, row) in train.times().iter().zip(&train.rows) {
            det.learn(*t, row);
        }
    }
    let mut out =
        Detection { scores: Vec::with_capacity(input.rows.len()), primary: Vec::with_capacity(input.rows.len()), warnings: Vec::new() };
    for (t, row) in input.times().iter().zip(&input.rows) {
        out.scores.push(det.push(*t, row));
        let c = if input.columns.len() > 1 { det.contributions() } else { Vec::new() };
        out.primary.push(c.iter().enumerate().filter(|(_, v)| v.is_finite()).max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i));
    }
    out.warnings = det.warnings();
    Ok(out)
}

/// Write `timestamp|index,anomaly_score` CSV; with `decisions`, also `primary_metric` and
/// `severity` (empty below the decision threshold).
pub fn write_scores(
    path: &Path,
    input: &DetectInput,
    scores: &[f64],
    decisions: Option<(&Detection, &DecisionConfig)>,
) -> Result<(), FrameError> {
    use std::fmt::Write;
    let mut out = String::with_capacity(scores.len() * 48);
    out.push_str(if input.timestamps_ms.is_some() { "timestamp,anomaly_score" } else { "index,anomaly_score" });
    out.push_str(if decisions.is_some() { ",primary_metric,severity\n" } else { "\n" });
    for (i, s) in scores.iter().enumerate() {
        match &input.timestamps_ms {
            Some(ts) => {
                let f = runtime::format_ts(ts[i]);
                let _ = write!(out, "{} {},{s}", &f[..10], &f[11..19]);
            }
            None => {
                let _ = write!(out, "{i},{s}");
            }
        }
        if let Some((det, cfg)) = decisions {
            let p = det.primary[i];
            let metric = &input.columns[p];
            let severity = if *s >= cfg.threshold { cfg.severity(*s, metric, input.rows[i][p]).name() } else { "" };
            let _ = write!(out, ",{metric},{severity}");
        }
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::ClusterConfig;
    use crate::detectors::clustering::Reference;
    use runtime::models::detectors::{
        Combine, DetectorConfig, EnsembleConfig, IForestFeaturesConfig, KnnConfig, MahalanobisConfig, RobustZConfig, TailEnsembleConfig,
    };

    fn nab(key: &str) -> DetectInput {
        let corpus = crate::frames::nab::NabCorpus::open(&crate::frames::datasets_root().join("nab")).expect("NAB under AIOPS_DATASETS");
        let s = corpus.load(key).unwrap();
        DetectInput {
            columns: vec!["value".into()],
            timestamps_ms: Some(s.timestamps_ms),
            rows: s.values.into_iter().map(|v| vec![v]).collect(),
        }
    }

    #[test]
    fn truncating_the_input_never_changes_an_earlier_score() {
        let full = nab("realKnownCause/ec2_request_latency_system_failure.csv");
        let small_forest = runtime::models::iforest::IsolationForestParams::default().n_estimators(20);
        let small = Reference { fit_after_rows: 300, refit_every_rows: 700, max_fit_rows: 200, ..Reference::default() };
        let runtime_detectors = [
            DetectorConfig::TailEnsemble(TailEnsembleConfig::default()),
            DetectorConfig::TailEnsemble(TailEnsembleConfig { confirm_rows: 2, confirm_bypass: 0.8, ..Default::default() }),
            DetectorConfig::RobustZ(RobustZConfig::default()),
            DetectorConfig::Ewma(Default::default()),
            DetectorConfig::Mahalanobis(MahalanobisConfig::default()),
            DetectorConfig::Knn(KnnConfig { sample_rows: 500, ..Default::default() }),
            DetectorConfig::Ensemble(EnsembleConfig {
                members: vec![DetectorConfig::default(), DetectorConfig::RobustZ(RobustZConfig::default())],
                combine: Combine::Max,
                calibration_rows: 500,
            }),
            DetectorConfig::IforestFeatures(IForestFeaturesConfig {
                forest: small_forest,
                fit_after_rows: 300,
                refit_every_rows: 700,
                ..Default::default()
            }),
        ];
        let cluster_detectors = [
            ClusterConfig::Kmeans { n_clusters: 4, reference: small.clone() },
            ClusterConfig::Gmm { n_clusters: 2, reference: small.clone() },
            ClusterConfig::Dbscan { min_points: 5, eps_quantile: 0.95, reference: small },
        ];
        for cfg in runtime_detectors.into_iter().map(AnyDetector::from).chain(cluster_detectors.into_iter().map(AnyDetector::Cluster)) {
            let all = detect(&cfg, &full, None).unwrap();
            assert_eq!(all.len(), full.rows.len());
            assert!(all.iter().all(|s| (0.0..=1.0).contains(s)), "{} scores out of [0, 1]", cfg.name());
            for cut in [1, 299, 300, 301, 1000, 2500] {
                let part = DetectInput {
                    rows: full.rows[..cut].to_vec(),
                    timestamps_ms: full.timestamps_ms.as_ref().map(|t| t[..cut].to_vec()),
                    ..full.clone()
                };
                assert_eq!(detect(&cfg, &part, None).unwrap(), all[..cut], "{} changed earlier scores when cut at {cut}", cfg.name());
            }
        }
    }

    #[test]
    fn headerless_and_timestamped_inputs_round_trip_to_score_files() {
        let dir = std::env::temp_dir().join(format!("wb-detect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("m.txt"), "0.1,0.2\n0.1,0.3\n0.9,0.2\n").unwrap();
        let input = read_input(&dir.join("m.txt")).unwrap();
        assert!(input.timestamps_ms.is_none() && input.rows.len() == 3 && input.columns.len() == 2);
        let scores = detect(&AnyDetector::default(), &input, None).unwrap();
        write_scores(&dir.join("out.csv"), &input, &scores, None).unwrap();
        let text = std::fs::read_to_string(dir.join("out.csv")).unwrap();
        assert!(text.starts_with("index,anomaly_score\n0,") && text.lines().count() == 4, "{text}");
        std::fs::write(dir.join("t.csv"), "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\n").unwrap();
        let input = read_input(&dir.join("t.csv")).unwrap();
        write_scores(&dir.join("out.csv"), &input, &[0.0, 0.5], None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("out.csv")).unwrap(),
            "timestamp,anomaly_score\n2014-04-01 00:00:00,0\n2014-04-01 00:05:00,0.5\n"
        );
        let det = Detection { scores: vec![0.0, 0.95], primary: vec![0, 0], warnings: Vec::new() };
        write_scores(&dir.join("out.csv"), &input, &det.scores, Some((&det, &DecisionConfig::default()))).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("out.csv")).unwrap(),
            "timestamp,anomaly_score,primary_metric,severity\n2014-04-01 00:00:00,0,value,\n2014-04-01 00:05:00,0.95,value,CRITICAL\n"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn parquet_and_csv_of_the_same_frame_read_the_same() {
        let cfg = runtime::collector::simulate::SimConfig { servers: 1, seed: 3, ..Default::default() };
        let (mut df, _, _) = crate::simulate::simulate_with_events(&cfg, 0.05, false).unwrap();
        let dir = std::env::temp_dir().join(format!("wb-detect-parquet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        crate::frames::write_parquet(&mut df, &dir.join("m.parquet")).unwrap();
        crate::frames::write_csv(&mut df, &dir.join("m.csv")).unwrap();
        let (p, c) = (read_input(&dir.join("m.parquet")).unwrap(), read_input(&dir.join("m.csv")).unwrap());
        assert!(!p.rows.is_empty());
        assert_eq!((p.columns, p.timestamps_ms, p.rows.len()), (c.columns, c.timestamps_ms, c.rows.len()));
        std::fs::remove_dir_all(dir).ok();
    }
}
