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
/// A fleet file (a `server` column, as `experiment simulate` writes) must hold one server: with
/// several, [`read_input_for`] picks one and [`read_fleet_input`] splits them.
pub fn read_input(path: &Path) -> Result<DetectInput, FrameError> {
    read_input_for(path, None)
}

/// [`read_input`] of one server's rows of a fleet file (`server`: its name in the `server`
/// column). Without `server`, a file whose rows belong to several servers is refused (their rows
/// would interleave into one series), naming them; a `server` the file does not hold, or a file
/// without a `server` column, is refused too.
pub fn read_input_for(path: &Path, server: Option<&str>) -> Result<DetectInput, FrameError> {
    let mut parts = read_fleet_input(path)?;
    let names: Vec<&str> = parts.iter().filter_map(|(n, _)| n.as_deref()).collect();
    let listed = || {
        let shown = &names[..names.len().min(8)];
        format!("{}{}", shown.join(", "), if names.len() > shown.len() { ", …" } else { "" })
    };
    let refuse = |message: String| FrameError::Parse { path: path.display().to_string(), line: 1, field: "server".into(), message };
    let part = match server {
        None if parts.len() > 1 => {
            return Err(refuse(format!(
                "rows of {} servers ({}): choose one with --server (their rows would interleave into one series)",
                parts.len(),
                listed()
            )));
        }
        None => 0,
        Some(name) if names.is_empty() => {
            return Err(refuse(format!("--server {name}: the file has no `server` column (one series per file: leave --server out)")));
        }
        Some(name) => {
            names.iter().position(|n| *n == name).ok_or_else(|| refuse(format!("no rows for server `{name}` (servers: {})", listed())))?
        }
    };
    Ok(parts.swap_remove(part).1)
}

/// Every server's rows of a metrics file, each its own input (in the order the servers first
/// appear): one input without a name for a file without a `server` column, one per server for a
/// fleet file.
pub fn read_fleet_input(path: &Path) -> Result<Vec<(Option<String>, DetectInput)>, FrameError> {
    let df = match read_raw(path)? {
        Raw::Matrix(input) => return Ok(vec![(None, input)]),
        Raw::Frame(df) => df,
    };
    let named = df.column(crate::frames::SERVER).is_ok();
    let (names, groups) = server_groups(&df)?;
    let inputs = from_frame(&df, path, &groups)?;
    Ok(names.into_iter().map(|n| named.then_some(n)).zip(inputs).collect())
}

enum Raw {
    /// Headerless numeric text (SMD).
    Matrix(DetectInput),
    /// A CSV with a header, or Parquet.
    Frame(polars::prelude::DataFrame),
}

fn read_raw(path: &Path) -> Result<Raw, FrameError> {
    if path.extension().is_some_and(|e| e == "parquet") {
        return Ok(Raw::Frame(crate::frames::read_metrics_file(path)?));
    }
    let text_head = std::fs::read(path).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
    if text_head.iter().all(u8::is_ascii_whitespace) {
        return Err(FrameError::Parse {
            path: path.display().to_string(),
            line: 1,
            field: "header".into(),
            message: "empty file: expected a header (`timestamp,<metric>…`) or numeric rows".into(),
        });
    }
    let first = text_head.split(|b| *b == b'\n').next().unwrap_or_default();
    let headerless = first.iter().all(|b| b.is_ascii_digit() || b".,-+eE \r".contains(b));
    if headerless {
        let rows = read_matrix(path)?;
        let columns = (1..=rows.first().map_or(0, Vec::len)).map(|j| format!("m{j:02}")).collect();
        return Ok(Raw::Matrix(DetectInput { columns, timestamps_ms: None, rows }));
    }
    Ok(Raw::Frame(read_metrics_csv(path)?))
}

/// The servers of a frame in the order they first appear, and each one's rows (one group of
/// every row, named by the frame's `server` default, when it has no `server` column).
fn server_groups(df: &polars::prelude::DataFrame) -> Result<(Vec<String>, Vec<Vec<usize>>), FrameError> {
    let servers = crate::frames::server_column(df, "")?;
    let mut names: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (r, s) in servers.iter().enumerate() {
        let g = *index.entry(s.as_str()).or_insert_with(|| {
            names.push(s.clone());
            groups.push(Vec::new());
            names.len() - 1
        });
        groups[g].push(r);
    }
    Ok((names, groups))
}

/// The inputs of `groups` of rows of a metrics frame (CSV with a header, or Parquet) read from
/// `path`.
fn from_frame(df: &polars::prelude::DataFrame, path: &Path, groups: &[Vec<usize>]) -> Result<Vec<DetectInput>, FrameError> {
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
    Ok(groups
        .iter()
        .map(|picked| DetectInput {
            columns: columns.clone(),
            timestamps_ms: Some(picked.iter().map(|&r| ts[r]).collect()),
            rows: picked.iter().map(|&r| cols.iter().map(|c| c[r].unwrap_or(f64::NAN)).collect()).collect(),
        })
        .collect())
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
    let mut out = String::with_capacity(scores.len() * 48);
    out.push_str(if input.timestamps_ms.is_some() { "timestamp,anomaly_score" } else { "index,anomaly_score" });
    out.push_str(if decisions.is_some() { ",primary_metric,severity\n" } else { "\n" });
    score_lines(&mut out, None, input, scores, decisions);
    std::fs::write(path, out).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })
}

/// Write the scores of a fleet, each server detected on its own rows
/// (`timestamp,server,anomaly_score,primary_metric,severity`, server after server).
pub fn write_fleet_scores(path: &Path, servers: &[(&str, &DetectInput, &Detection)], decisions: &DecisionConfig) -> Result<(), FrameError> {
    let rows: usize = servers.iter().map(|(_, input, _)| input.rows.len()).sum();
    let mut out = String::with_capacity(rows * 64);
    out.push_str("timestamp,server,anomaly_score,primary_metric,severity\n");
    for (server, input, det) in servers {
        score_lines(&mut out, Some(server), input, &det.scores, Some((det, decisions)));
    }
    std::fs::write(path, out).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })
}

fn score_lines(
    out: &mut String,
    server: Option<&str>,
    input: &DetectInput,
    scores: &[f64],
    decisions: Option<(&Detection, &DecisionConfig)>,
) {
    use std::fmt::Write;
    for (i, s) in scores.iter().enumerate() {
        match &input.timestamps_ms {
            Some(ts) => {
                let f = runtime::format_ts(ts[i]);
                let _ = write!(out, "{} {}", &f[..10], &f[11..19]);
            }
            None => {
                let _ = write!(out, "{i}");
            }
        }
        if let Some(server) = server {
            let _ = write!(out, ",{server}");
        }
        let _ = write!(out, ",{s}");
        if let Some((det, cfg)) = decisions {
            let p = det.primary[i];
            let metric = &input.columns[p];
            let severity = if *s >= cfg.threshold { cfg.severity(*s, metric, input.rows[i][p]).name() } else { "" };
            let _ = write!(out, ",{metric},{severity}");
        }
        out.push('\n');
    }
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

    /// A simulated fleet written as `m.parquet` and `m.csv` in a fresh folder.
    fn simulated_files(servers: usize, seed: u64, incidents: f64, tag: &str) -> (polars::prelude::DataFrame, std::path::PathBuf) {
        let cfg = runtime::collector::simulate::SimConfig { servers, seed, ..Default::default() };
        let (mut df, _, _) = crate::simulate::simulate_with_events(&cfg, incidents, false).unwrap();
        let dir = std::env::temp_dir().join(format!("wb-detect-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        crate::frames::write_parquet(&mut df, &dir.join("m.parquet")).unwrap();
        crate::frames::write_csv(&mut df, &dir.join("m.csv")).unwrap();
        (df, dir)
    }

    #[test]
    fn a_fleet_file_is_read_one_server_at_a_time() {
        let (df, dir) = simulated_files(3, 5, 0.02, "fleet");
        for file in ["m.csv", "m.parquet"] {
            let path = dir.join(file);
            // Without --server the three servers' rows would interleave: refused, naming them.
            let e = read_input(&path).unwrap_err().to_string();
            assert!(e.contains("rows of 3 servers") && e.contains("web-server-02") && e.contains("--server"), "{e}");
            let e = read_input_for(&path, Some("web-server-07")).unwrap_err().to_string();
            assert!(e.contains("no rows for server `web-server-07`") && e.contains("web-server-01"), "{e}");
            let one = read_input_for(&path, Some("web-server-02")).unwrap();
            let servers = crate::frames::server_column(&df, "").unwrap();
            let mine: Vec<usize> = (0..servers.len()).filter(|&i| servers[i] == "web-server-02").collect();
            assert_eq!(one.rows.len(), mine.len());
            let ts = crate::frames::timestamps_ms(&df).unwrap();
            assert_eq!(one.timestamps_ms.as_deref().unwrap(), mine.iter().map(|&i| ts[i]).collect::<Vec<i64>>());
            assert!(one.timestamps_ms.as_ref().unwrap().windows(2).all(|w| w[0] < w[1]), "one server's rows are in time order");
            let cpu = crate::frames::f64_column(&df, "cpu_usage").unwrap();
            let j = one.columns.iter().position(|c| c == "cpu_usage").unwrap();
            assert!(mine.iter().zip(&one.rows).all(|(&i, r)| cpu[i].map_or(r[j].is_nan(), |v| v == r[j])));
            // Split in one read: every server, in the order they first appear, each its own rows.
            let fleet = read_fleet_input(&path).unwrap();
            let names: Vec<Option<&str>> = fleet.iter().map(|(n, _)| n.as_deref()).collect();
            assert_eq!(names, [Some("web-server-01"), Some("web-server-02"), Some("web-server-03")]);
            assert_eq!(fleet[1].1.rows.len(), one.rows.len());
            assert_eq!(fleet[1].1.timestamps_ms, one.timestamps_ms);
            assert_eq!(fleet.iter().map(|(_, i)| i.rows.len()).sum::<usize>(), df.height());
        }
        // A headerless file has no server to pick.
        std::fs::write(dir.join("m.txt"), "0.1,0.2\n0.1,0.3\n").unwrap();
        let e = read_input_for(&dir.join("m.txt"), Some("web-server-01")).unwrap_err().to_string();
        assert!(e.contains("no `server` column"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn parquet_and_csv_of_the_same_frame_read_the_same() {
        let (_, dir) = simulated_files(1, 3, 0.05, "parquet");
        let (p, c) = (read_input(&dir.join("m.parquet")).unwrap(), read_input(&dir.join("m.csv")).unwrap());
        assert!(!p.rows.is_empty());
        assert_eq!((p.columns, p.timestamps_ms, p.rows.len()), (c.columns, c.timestamps_ms, c.rows.len()));
        std::fs::remove_dir_all(dir).ok();
    }
}
