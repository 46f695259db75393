//! Corpus evaluations behind `experiment evaluate`: NAB (all files, three profiles, pointwise
//! and event metrics) and SMD (fit on train, score test).

use std::path::Path;

use crate::detectors::AnyDetector as DetectorConfig;
use rayon::prelude::*;
use serde::Serialize;

use super::metrics::{best_f1, best_f1_point_adjusted, event_metrics, pr_auc, roc_auc, roc_curve};
use super::nab::{NabInput, PROFILES, ProfileResult, score_corpus};
use crate::detect::{DetectInput, detect_warned};
use crate::frames::{FrameError, nab::NabCorpus, smd::SmdMachine};

/// Scores of one NAB file.
#[derive(Debug, Clone)]
pub struct ScoredSeries {
    /// Key.
    pub key: String,
    /// Timestamps.
    pub timestamps_ms: Vec<i64>,
    /// Scores.
    pub scores: Vec<f64>,
    /// Windows.
    pub windows: Vec<(i64, i64)>,
    /// Row labels.
    pub labels: Vec<bool>,
    /// Median interval.
    pub interval_secs: f64,
    /// The detector's warnings on this series (e.g. failed fits).
    pub warnings: Vec<String>,
}

impl ScoredSeries {
    /// A loaded NAB series with one score per row.
    pub fn of(s: crate::frames::nab::NabSeries, scores: Vec<f64>, warnings: Vec<String>) -> Self {
        Self {
            labels: s.row_labels(),
            key: s.key,
            timestamps_ms: s.timestamps_ms,
            scores,
            windows: s.windows,
            interval_secs: s.quirks.median_interval_secs as f64,
            warnings,
        }
    }
}

/// NAB results.
#[derive(Debug, Clone, Serialize)]
pub struct NabReport {
    /// Detector name.
    pub detector: String,
    /// Files scored.
    pub files: usize,
    /// One per profile.
    pub profiles: Vec<ProfileResult>,
    /// Mean ROC-AUC over files with both classes.
    pub mean_roc_auc: f64,
    /// Mean best pointwise F1 over files with anomalies.
    pub mean_best_f1: f64,
    /// Event recall at the standard threshold.
    pub event_recall: f64,
    /// Mean time to detect (minutes) at the standard threshold.
    pub mttd_minutes: f64,
    /// False alerts per day at the standard threshold.
    pub false_alerts_per_day: f64,
    /// Seconds spent detecting.
    pub detect_seconds: f64,
}

impl NabReport {
    /// The profiles table and the summary line (terminal or Markdown).
    pub fn render(&self, markdown: bool) -> String {
        let mut t = super::table::TextTable::new(&["profile", "score", "threshold", "TP", "FP", "FN"]);
        for p in &self.profiles {
            t.row(vec![
                p.profile.to_string(),
                format!("{:.2}", p.score),
                format!("{:.4}", p.threshold),
                p.tp.to_string(),
                p.fp.to_string(),
                p.fn_.to_string(),
            ]);
        }
        let sep = if markdown { " · " } else { "  " };
        format!(
            "{}{}mean ROC-AUC {:.3}{sep}mean best F1 {:.3}{sep}event recall {:.2}{sep}MTTD {:.0} min{sep}false alerts/day {:.3}\n",
            t.render(markdown),
            if markdown { "\n" } else { "" },
            self.mean_roc_auc,
            self.mean_best_f1,
            self.event_recall,
            self.mttd_minutes,
            self.false_alerts_per_day
        )
    }
}

/// The SMD table: one row per machine and the mean (terminal or Markdown).
pub fn render_smd(results: &[SmdResult], markdown: bool) -> String {
    let mut t = super::table::TextTable::new(&["machine", "ROC-AUC", "PR-AUC", "best F1", "best F1 (point-adjusted)"]);
    let row = |name: &str, v: [f64; 4]| {
        vec![name.to_string(), format!("{:.3}", v[0]), format!("{:.3}", v[1]), format!("{:.3}", v[2]), format!("{:.3}", v[3])]
    };
    for r in results {
        t.row(row(&r.machine, [r.roc_auc, r.pr_auc, r.best_f1, r.best_f1_point_adjusted]));
    }
    let n = results.len().max(1) as f64;
    let mean = |f: fn(&SmdResult) -> f64| results.iter().map(f).sum::<f64>() / n;
    t.row(row("mean", [mean(|r| r.roc_auc), mean(|r| r.pr_auc), mean(|r| r.best_f1), mean(|r| r.best_f1_point_adjusted)]));
    t.render(markdown)
}

/// Run a detector over every NAB file (in parallel) and score the corpus.
pub fn evaluate_nab(root: &Path, cfg: &DetectorConfig) -> Result<(NabReport, Vec<ScoredSeries>), FrameError> {
    let corpus = NabCorpus::open(root)?;
    let t0 = std::time::Instant::now();
    let series: Vec<ScoredSeries> = corpus
        .keys()
        .par_iter()
        .map(|k| {
            let s = corpus.load(k)?;
            let input = DetectInput {
                columns: vec!["value".into()],
                timestamps_ms: Some(s.timestamps_ms.clone()),
                rows: s.values.iter().map(|v| vec![*v]).collect(),
            };
            let (scores, warnings) =
                detect_warned(cfg, &input, None).map_err(|e| FrameError::Schema { context: k.clone(), message: e.to_string() })?;
            Ok(ScoredSeries::of(s, scores, warnings))
        })
        .collect::<Result<_, FrameError>>()?;
    let detect_seconds = t0.elapsed().as_secs_f64();
    Ok((nab_report(cfg.name(), &series, detect_seconds), series))
}

/// Score a corpus of per-file results: NAB score for the three profiles, ROC-AUC, best F1, and
/// event recall / MTTD / false alerts per day at the standard profile's threshold.
pub fn nab_report(detector: &str, series: &[ScoredSeries], detect_seconds: f64) -> NabReport {
    let inputs: Vec<NabInput<'_>> =
        series.iter().map(|s| NabInput { key: &s.key, timestamps_ms: &s.timestamps_ms, scores: &s.scores, windows: &s.windows }).collect();
    let profiles: Vec<ProfileResult> = PROFILES.iter().map(|p| score_corpus(&inputs, *p)).collect();
    let aucs: Vec<f64> = series.iter().filter_map(|s| roc_auc(&s.scores, &s.labels)).collect();
    let f1s: Vec<f64> = series.iter().filter_map(|s| best_f1(&s.scores, &s.labels).map(|x| x.0)).collect();
    let threshold = profiles[0].threshold;
    let (mut events, mut detected, mut delay_min, mut false_alerts, mut days) = (0, 0, 0.0, 0, 0.0);
    for s in series {
        let probation = crate::frames::nab::probationary_rows(s.scores.len());
        let alerts: Vec<bool> = s.scores.iter().enumerate().map(|(i, v)| i >= probation && *v >= threshold).collect();
        let m = event_metrics(&alerts, &s.labels, s.interval_secs);
        events += m.events;
        detected += m.detected;
        if m.detected > 0 {
            delay_min += m.mttd_minutes * m.detected as f64;
        }
        false_alerts += m.false_alerts;
        days += s.scores.len() as f64 * s.interval_secs / 86_400.0;
    }
    let mean = |v: &[f64]| {
        if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
    };
    NabReport {
        detector: detector.into(),
        files: series.len(),
        profiles,
        mean_roc_auc: mean(&aucs),
        mean_best_f1: mean(&f1s),
        event_recall: detected as f64 / events.max(1) as f64,
        mttd_minutes: if detected > 0 { delay_min / detected as f64 } else { f64::NAN },
        false_alerts_per_day: false_alerts as f64 / days.max(1e-9),
        detect_seconds,
    }
}

/// Score any detector's per-row results laid out as NAB's `results/` folder:
/// `<dir>/<category>/<detector>_<file>.csv` with a header naming `timestamp` and
/// `anomaly_score` (other columns, such as NAB's `value` and `label`, are ignored), one row per
/// row of the NAB file, in file order. Every file of the corpus under `root` must have exactly
/// one results file; rows are matched to the NAB file by position and their timestamps checked.
pub fn evaluate_nab_scores(root: &Path, dir: &Path) -> Result<(NabReport, Vec<ScoredSeries>), FrameError> {
    let corpus = NabCorpus::open(root)?;
    let mut detectors = std::collections::BTreeSet::new();
    let series: Vec<ScoredSeries> = corpus
        .keys()
        .iter()
        .map(|k| {
            let s = corpus.load(k)?;
            let (path, detector) = results_file(dir, k)?;
            detectors.insert(detector);
            let scores = read_results_scores(&path, &s.timestamps_ms)?;
            Ok(ScoredSeries::of(s, scores, Vec::new()))
        })
        .collect::<Result<_, FrameError>>()?;
    if detectors.len() > 1 {
        return Err(FrameError::Schema {
            context: dir.display().to_string(),
            message: format!("results of several detectors ({detectors:?}): point at one detector's folder"),
        });
    }
    let name = detectors.into_iter().next().unwrap_or_default();
    Ok((nab_report(&name, &series, 0.0), series))
}

/// Write per-row scores in NAB's `results/` layout (`<dir>/<category>/<detector>_<file>.csv`
/// with `timestamp,anomaly_score,label`), which [`evaluate_nab_scores`] and NAB's own scorer read.
pub fn write_nab_scores(dir: &Path, detector: &str, series: &[ScoredSeries]) -> Result<(), FrameError> {
    use std::fmt::Write;
    for s in series {
        let (category, name) = s.key.split_once('/').unwrap_or(("", &s.key));
        let folder = dir.join(category);
        let path = folder.join(format!("{detector}_{name}"));
        let io = |e: std::io::Error| FrameError::Io { path: path.display().to_string(), source: e };
        std::fs::create_dir_all(&folder).map_err(io)?;
        let mut text = String::from("timestamp,anomaly_score,label\n");
        for ((t, score), label) in s.timestamps_ms.iter().zip(&s.scores).zip(&s.labels) {
            let ts = runtime::format_ts(*t).replace('T', " ").replace('Z', "");
            let _ = writeln!(text, "{ts},{score},{}", u8::from(*label));
        }
        std::fs::write(&path, text).map_err(io)?;
    }
    Ok(())
}

/// The one results file of NAB key `category/name.csv` under `dir`, and the detector prefix.
fn results_file(dir: &Path, key: &str) -> Result<(std::path::PathBuf, String), FrameError> {
    let (category, name) = key.split_once('/').unwrap_or(("", key));
    let folder = dir.join(category);
    let io = |e: std::io::Error| FrameError::Io { path: folder.display().to_string(), source: e };
    let suffix = format!("_{name}");
    let mut found: Vec<(std::path::PathBuf, String)> = std::fs::read_dir(&folder)
        .map_err(io)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let detector = file.strip_suffix(&suffix)?.to_string();
            (!detector.is_empty()).then(|| (e.path(), detector))
        })
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(FrameError::Schema {
            context: folder.display().to_string(),
            message: format!("no results file `<detector>{suffix}` for NAB file {key}"),
        }),
        _ => Err(FrameError::Schema {
            context: folder.display().to_string(),
            message: format!("several results files for {key}: {:?}", found.iter().map(|f| &f.1).collect::<Vec<_>>()),
        }),
    }
}

/// `anomaly_score` per row of a results CSV whose `timestamp` column matches `timestamps_ms`.
fn read_results_scores(path: &Path, timestamps_ms: &[i64]) -> Result<Vec<f64>, FrameError> {
    let mut csv = runtime::csv_file::CsvReader::open(path, true)?;
    let (ts_col, score_col) = (csv.column("timestamp")?, csv.column("anomaly_score")?);
    let mut scores = Vec::with_capacity(timestamps_ms.len());
    while let Some(row) = csv.next_row()? {
        let ts_ms = row.timestamp_ms(ts_col)?;
        if timestamps_ms.get(scores.len()).copied() != Some(ts_ms) {
            let message = format!("`{}` does not match row {} of the NAB file", row.cell(ts_col), scores.len() + 1);
            return Err(row.error("timestamp", message).into());
        }
        let score = row.number(score_col)?.filter(|s| s.is_finite()).ok_or_else(|| row.error("anomaly_score", "missing or not finite"))?;
        scores.push(score);
    }
    let bad =
        |line: usize, field: &str, message: String| FrameError::Parse { path: csv.path().to_string(), line, field: field.into(), message };
    if scores.len() != timestamps_ms.len() {
        return Err(bad(0, "rows", format!("{} score rows for {} NAB rows", scores.len(), timestamps_ms.len())));
    }
    Ok(scores)
}

/// SMD results for one machine.
#[derive(Debug, Clone, Serialize)]
pub struct SmdResult {
    /// Machine.
    pub machine: String,
    /// ROC-AUC on test.
    pub roc_auc: f64,
    /// PR-AUC on test.
    pub pr_auc: f64,
    /// Best pointwise F1.
    pub best_f1: f64,
    /// Best point-adjusted F1 (flattering; never alone).
    pub best_f1_point_adjusted: f64,
    /// ROC curve points for charts.
    #[serde(skip)]
    pub roc: Vec<(f64, f64)>,
    /// The detector's warnings on this machine (e.g. failed fits).
    pub warnings: Vec<String>,
}

/// Fit (learn) on each machine's train split, score its test split.
pub fn evaluate_smd(root: &Path, cfg: &DetectorConfig) -> Result<Vec<SmdResult>, FrameError> {
    if !root.join("test").is_dir() {
        return Err(FrameError::MissingDataset { name: "SMD", path: root.display().to_string() });
    }
    let machines = SmdMachine::list(root);
    if machines.is_empty() {
        return Err(FrameError::Schema {
            context: root.join("test").display().to_string(),
            message: "no SMD machine (`<machine>.txt` under test/ with train/ and test_label/ beside it): nothing to evaluate".into(),
        });
    }
    machines
        .par_iter()
        .map(|m| {
            let train = crate::frames::smd::read_matrix(&root.join("train").join(format!("{m}.txt")))?;
            let test = crate::frames::smd::read_matrix(&root.join("test").join(format!("{m}.txt")))?;
            let labels = crate::frames::smd::read_matrix(&root.join("test_label").join(format!("{m}.txt")))?;
            let labels: Vec<bool> = labels.iter().map(|r| r[0] > 0.5).collect();
            let cols: Vec<String> = (1..=train[0].len()).map(|j| format!("m{j:02}")).collect();
            let n_train = train.len() as i64;
            let tr = DetectInput { columns: cols.clone(), timestamps_ms: Some((0..n_train).map(|i| i * 60_000).collect()), rows: train };
            let te = DetectInput {
                columns: cols,
                timestamps_ms: Some((0..test.len() as i64).map(|i| (n_train + i) * 60_000).collect()),
                rows: test,
            };
            let (scores, warnings) =
                detect_warned(cfg, &te, Some(&tr)).map_err(|e| FrameError::Schema { context: m.clone(), message: e.to_string() })?;
            Ok(SmdResult {
                machine: m.clone(),
                roc_auc: roc_auc(&scores, &labels).unwrap_or(f64::NAN),
                pr_auc: pr_auc(&scores, &labels).unwrap_or(f64::NAN),
                best_f1: best_f1(&scores, &labels).map_or(f64::NAN, |x| x.0),
                best_f1_point_adjusted: best_f1_point_adjusted(&scores, &labels).map_or(f64::NAN, |x| x.0),
                roc: roc_curve(&scores, &labels, 400),
                warnings,
            })
        })
        .collect()
}

/// Write `report.md` and charts (`nab/<file>.svg`: series, score, windows, threshold;
/// `smd_roc.svg`) into `dir`. `smd` carries the name of the detector it ran (SMD may run a
/// different default than NAB).
pub fn write_report(
    dir: &Path,
    detector: &DetectorConfig,
    nab: Option<(&NabReport, &[ScoredSeries])>,
    smd: Option<(&str, &[SmdResult])>,
    sim: Option<(&super::fleet::SimReport, &Path, &DetectorConfig)>,
) -> Result<std::path::PathBuf, FrameError> {
    use std::fmt::Write;
    let io = |e: std::io::Error| FrameError::Io { path: dir.display().to_string(), source: e };
    std::fs::create_dir_all(dir.join("nab")).map_err(io)?;
    let mut md = String::new();
    let _ = writeln!(md, "# Evaluation: `{}`\n\n```toml\n{}```\n", detector.name(), toml::to_string(detector).unwrap_or_default());
    if let Some((report, series)) = nab {
        let _ = writeln!(
            md,
            "## NAB ({} files)\n\n{}\n| file | raw score (standard) | chart |\n|---|---:|---|",
            report.files,
            report.render(true)
        );
        let threshold = report.profiles[0].threshold;
        let raw: std::collections::HashMap<&str, f64> = report.profiles[0].per_file.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let corpus = NabCorpus::open(&crate::frames::datasets_root().join("nab"))?;
        for s in series {
            let name = s.key.replace('/', "__").replace(".csv", ".svg");
            let values = corpus.load(&s.key)?.values;
            let windows: Vec<(usize, usize)> = s
                .windows
                .iter()
                .filter_map(|(a, b)| Some((s.timestamps_ms.iter().position(|t| t == a)?, s.timestamps_ms.iter().position(|t| t == b)?)))
                .collect();
            crate::charts::series_chart(&dir.join("nab").join(&name), &s.key, &values, &s.scores, &windows, threshold)?;
            let _ = writeln!(md, "| {} | {:.3} | ![](nab/{name}) |", s.key, raw.get(s.key.as_str()).copied().unwrap_or(f64::NAN));
        }
    }
    if let Some((smd_detector, results)) = smd {
        let _ = writeln!(md, "\n## SMD (fit on train, score test; detector `{smd_detector}`)\n\n{}", render_smd(results, true));
        let curves: Vec<(String, Vec<(f64, f64)>)> =
            results.iter().map(|r| (format!("{} (AUC {:.3})", r.machine, r.roc_auc), r.roc.clone())).collect();
        crate::charts::roc_chart(&dir.join("smd_roc.svg"), "SMD ROC", &curves)?;
        let _ = writeln!(md, "\n![SMD ROC](smd_roc.svg)");
    }
    if let Some((sim, data, sim_detector)) = sim {
        let _ = write!(md, "\n## Simulator incidents, alert level\n\n{}", sim.render(true));
        let chart = dir.join("sim_detection.svg");
        let server = crate::sweep::fleet_detection_chart(&chart, data, &sim.detector, sim_detector, sim.threshold)
            .map_err(|e| FrameError::Io { path: chart.display().to_string(), source: std::io::Error::other(e.to_string()) })?;
        let _ = writeln!(md, "\n### {server}: the incident metric and the score\n\n![detection](sim_detection.svg)");
    }
    let path = dir.join("report.md");
    std::fs::write(&path, &md).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
    super::html::write(&md, &format!("Evaluation: {}", detector.name()), dir)?;
    Ok(path)
}
