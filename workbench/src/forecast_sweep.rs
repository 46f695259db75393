//! Forecast sweeps (`experiment forecast sweep`): a grid over the statistical forecaster's
//! settings ([`ForecasterParams`]), every trial scored on every series of a corpus with the
//! protocol of [`crate::forecasting::evaluate`], tracked like detector sweeps, ranked, and the
//! leave-one-series-out figure next to the in-sample one: for each series, the trial that is
//! best on the *other* series, scored on it — what choosing settings this way gives on a series
//! it did not see.
//!
//! Spec (TOML, see `experiments/forecast/sweep.toml`): `name`, `nab` (NAB categories: every
//! file in each), `smd_columns` (those columns of every SMD machine's train split), `horizon`,
//! `max_origins`, `[base]` (settings held fixed) and `[space]` (lists; every combination).
//! Tracking folder `runs/forecast-sweeps/<name>/`: `spec.toml`, per trial `trials/<id>/`
//! (`params.json`, `metrics.jsonl`, `series.jsonl`: the ratio per series), `leaderboard.md`.
//!
//! ```
//! let spec = workbench::forecast_sweep::ForecastSweepSpec::parse("name = \"x\"\n[space]\ncombine = [2, 3]\n", "x.toml").unwrap();
//! assert_eq!(spec.trials().unwrap().len(), 2);
//! let e = workbench::forecast_sweep::ForecastSweepSpec::parse("name = \"x\"\n[space]\ncombin = [2]\n", "x.toml").unwrap_err();
//! assert!(e.to_string().contains("combin"), "{e}");
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use runtime::models::forecasters::ForecasterParams;
use serde::{Deserialize, Serialize};

use crate::forecasting::{EvalProtocol, evaluate};
use crate::lstm::ForecastSeries;

/// The built-in spec (`experiments/forecast/sweep.toml`).
pub const DEFAULT_SPEC: &str = include_str!("../../experiments/forecast/sweep.toml");

/// A forecast sweep spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastSweepSpec {
    /// Name (also the tracking folder).
    pub name: String,
    /// NAB categories (every `.csv` in each) under `$AIOPS_DATASETS/nab`.
    #[serde(default = "default_nab")]
    pub nab: Vec<String>,
    /// Columns of every SMD machine's train split.
    #[serde(default = "default_smd_columns")]
    pub smd_columns: Vec<usize>,
    /// Forecast steps.
    #[serde(default = "default_horizon")]
    pub horizon: usize,
    /// Most origins per series.
    #[serde(default = "default_max_origins")]
    pub max_origins: usize,
    /// Settings held fixed (fields of [`ForecasterParams`]).
    #[serde(default)]
    pub base: toml::Table,
    /// Lists of values per setting.
    #[serde(default)]
    pub space: BTreeMap<String, Vec<toml::Value>>,
}

fn default_nab() -> Vec<String> {
    vec!["realAWSCloudwatch".into(), "realKnownCause".into()]
}
fn default_smd_columns() -> Vec<usize> {
    vec![0, 1, 11]
}
fn default_horizon() -> usize {
    180
}
fn default_max_origins() -> usize {
    400
}

/// A spec, series or tracking failure (names the file and the key).
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct ForecastSweepError {
    /// File or key.
    pub origin: String,
    /// Why.
    pub reason: String,
}

fn err(origin: impl std::fmt::Display, reason: impl std::fmt::Display) -> ForecastSweepError {
    ForecastSweepError { origin: origin.to_string(), reason: reason.to_string() }
}

/// One trial: its id, the swept values and the settings.
#[derive(Debug, Clone)]
pub struct ForecastTrial {
    /// 16 hex digits of the SHA-256 of the swept values.
    pub id: String,
    /// The swept values.
    pub params: BTreeMap<String, String>,
    /// The settings.
    pub forecaster: ForecasterParams,
}

/// One scored trial.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastTrialResult {
    /// Trial id.
    pub id: String,
    /// The swept values.
    pub params: BTreeMap<String, String>,
    /// MAE(auto) / MAE(best baseline) per series (series key → ratio).
    pub ratios: BTreeMap<String, f64>,
    /// Summary figures: `at_or_below`, `median_ratio`, `worst_ratio`, `mean_log_ratio`,
    /// `coverage_80`, `coverage_95`.
    pub metrics: BTreeMap<String, f64>,
}

/// The leave-one-series-out figures of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaveOneOut {
    /// Per series: the trial chosen on the others and its ratio on the series.
    pub chosen: BTreeMap<String, (String, f64)>,
    /// Share of series at or below the best baseline.
    pub at_or_below: f64,
    /// Median ratio.
    pub median_ratio: f64,
    /// Worst ratio.
    pub worst_ratio: f64,
}

impl ForecastSweepSpec {
    /// Parse and check a spec: unknown keys, and every trial's settings, are refused naming them.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ForecastSweepError> {
        let spec: Self = toml::from_str(text).map_err(|e| err(origin, e))?;
        if spec.horizon == 0 || spec.max_origins == 0 {
            return Err(err(origin, "`horizon` and `max_origins` must be at least 1"));
        }
        spec.trials().map_err(|e| err(origin, e))?;
        Ok(spec)
    }

    /// Every combination of the space over the base, each checked.
    pub fn trials(&self) -> Result<Vec<ForecastTrial>, ForecastSweepError> {
        if let Some(k) = self.space.iter().find_map(|(k, v)| v.is_empty().then_some(k)) {
            return Err(err(format!("space.{k}"), "empty list"));
        }
        crate::sweep::grid(self.space.iter().map(|(k, v)| (k, v.as_slice())))
            .into_iter()
            .map(|a| {
                let mut table = self.base.clone();
                table.extend(a.clone());
                let forecaster: ForecasterParams = toml::Value::Table(table).try_into().map_err(|e| err(format!("trial {a:?}"), e))?;
                forecaster.validate().map_err(|e| err(format!("trial {a:?}"), e))?;
                let id = crate::sweep::trial_id(&a);
                Ok(ForecastTrial { id, params: a.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(), forecaster })
            })
            .collect()
    }

    /// The corpus: `(key, series)` for every NAB file of the categories and every listed SMD
    /// column, in name order.
    pub fn series(&self, root: &Path) -> Result<Vec<(String, ForecastSeries)>, ForecastSweepError> {
        let files = |dir: PathBuf, ext: &str| -> Result<Vec<PathBuf>, ForecastSweepError> {
            let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| err(dir.display(), format!("{e} (set AIOPS_DATASETS)")))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect();
            out.sort();
            Ok(out)
        };
        let mut out = Vec::new();
        for category in &self.nab {
            for f in files(root.join("nab").join(category), "csv")? {
                let s = crate::lstm::cmd::series_from_file(&f, None).map_err(|e| err(f.display(), e))?;
                out.push((format!("{category}/{}", file_name(&f)), s));
            }
        }
        if !self.smd_columns.is_empty() {
            for f in files(root.join("smd").join("train"), "txt")? {
                for c in &self.smd_columns {
                    let s = crate::lstm::cmd::series_from_file(&f, Some(&c.to_string())).map_err(|e| err(f.display(), e))?;
                    out.push((format!("smd/{}:{c}", file_name(&f)), s));
                }
            }
        }
        Ok(out)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
}

/// Score one trial on every series (in parallel).
pub fn score_trial(
    spec: &ForecastSweepSpec,
    trial: &ForecastTrial,
    corpus: &[(String, ForecastSeries)],
) -> Result<ForecastTrialResult, ForecastSweepError> {
    let protocol = EvalProtocol { horizon: spec.horizon, max_origins: spec.max_origins, ..Default::default() };
    let reports: Vec<(String, f64, f64, f64)> = corpus
        .par_iter()
        .map(|(key, s)| {
            let r = evaluate(s, &trial.forecaster, &protocol).map_err(|e| err(key, e))?;
            Ok((key.clone(), r.auto_vs_best_baseline, r.coverage["80"], r.coverage["95"]))
        })
        .collect::<Result<_, ForecastSweepError>>()?;
    let ratios: BTreeMap<String, f64> = reports.iter().map(|(k, r, _, _)| (k.clone(), *r)).collect();
    let n = reports.len().max(1) as f64;
    let mut metrics = summary(&ratios.values().copied().collect::<Vec<_>>());
    metrics.insert("coverage_80".into(), reports.iter().map(|r| r.2).sum::<f64>() / n);
    metrics.insert("coverage_95".into(), reports.iter().map(|r| r.3).sum::<f64>() / n);
    Ok(ForecastTrialResult { id: trial.id.clone(), params: trial.params.clone(), ratios, metrics })
}

/// `at_or_below`, `median_ratio`, `worst_ratio`, `mean_log_ratio` of ratios.
fn summary(ratios: &[f64]) -> BTreeMap<String, f64> {
    let n = ratios.len().max(1) as f64;
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.is_empty() { f64::NAN } else { sorted[sorted.len() / 2] };
    BTreeMap::from([
        ("at_or_below".to_string(), ratios.iter().filter(|r| **r <= 1.0).count() as f64 / n),
        ("median_ratio".to_string(), median),
        ("worst_ratio".to_string(), sorted.last().copied().unwrap_or(f64::NAN)),
        ("mean_log_ratio".to_string(), ratios.iter().map(|r| r.max(1e-12).ln()).sum::<f64>() / n),
    ])
}

/// Rank key: more series at or below, then the lower mean log ratio.
fn rank_key(ratios: &mut dyn Iterator<Item = f64>) -> (usize, f64) {
    let (mut below, mut log, mut n) = (0usize, 0.0, 0usize);
    for r in ratios {
        below += usize::from(r <= 1.0);
        log += r.max(1e-12).ln();
        n += 1;
    }
    (below, -log / n.max(1) as f64)
}

fn better(a: (usize, f64), b: (usize, f64)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 > b.1)
}

/// Results best first.
pub fn rank(results: &mut [ForecastTrialResult]) {
    results.sort_by(|a, b| {
        let (ka, kb) = (rank_key(&mut a.ratios.values().copied()), rank_key(&mut b.ratios.values().copied()));
        kb.0.cmp(&ka.0).then(kb.1.total_cmp(&ka.1))
    });
}

/// For each series, the trial best on the other series (same ranking), scored on it.
pub fn leave_one_out(results: &[ForecastTrialResult]) -> LeaveOneOut {
    let keys: Vec<&String> = results.first().map(|r| r.ratios.keys().collect()).unwrap_or_default();
    let mut chosen = BTreeMap::new();
    for held in &keys {
        let mut best: Option<(&ForecastTrialResult, (usize, f64))> = None;
        for r in results {
            let k = rank_key(&mut r.ratios.iter().filter(|(s, _)| s != held).map(|(_, v)| *v));
            if best.as_ref().is_none_or(|(_, bk)| better(k, *bk)) {
                best = Some((r, k));
            }
        }
        if let Some((r, _)) = best {
            chosen.insert((*held).clone(), (r.id.clone(), r.ratios[*held]));
        }
    }
    let s = summary(&chosen.values().map(|(_, r)| *r).collect::<Vec<_>>());
    LeaveOneOut { chosen, at_or_below: s["at_or_below"], median_ratio: s["median_ratio"], worst_ratio: s["worst_ratio"] }
}

/// Run the sweep: every trial on the corpus, tracked under `dir` (`spec.toml`, `trials/<id>/`,
/// `leaderboard.md`), with a progress bar; results best first and the leave-one-out figures.
pub fn run(
    spec: &ForecastSweepSpec,
    spec_text: &str,
    corpus: &[(String, ForecastSeries)],
    dir: &Path,
) -> Result<(Vec<ForecastTrialResult>, LeaveOneOut), ForecastSweepError> {
    let io = |p: &Path, e: std::io::Error| err(p.display(), e);
    std::fs::create_dir_all(dir.join("trials")).map_err(|e| io(dir, e))?;
    std::fs::write(dir.join("spec.toml"), spec_text).map_err(|e| io(dir, e))?;
    let trials = spec.trials()?;
    let bar = indicatif::ProgressBar::new(trials.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:12} [{bar:40}] {pos}/{len} trials ({elapsed}, eta {eta})")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message(spec.name.chars().take(12).collect::<String>());
    let mut results = Vec::with_capacity(trials.len());
    for t in &trials {
        let r = score_trial(spec, t, corpus)?;
        let tdir = dir.join("trials").join(&r.id);
        std::fs::create_dir_all(&tdir).map_err(|e| io(&tdir, e))?;
        let tracked = |e: crate::tracking::TrackingError| err(e.path, e.reason);
        crate::tracking::write_params(&tdir, &r.params).map_err(tracked)?;
        crate::tracking::write_metrics(&tdir, &r.metrics, runtime::now_ms()).map_err(tracked)?;
        let lines: String = r.ratios.iter().map(|(k, v)| serde_json::json!({"series": k, "ratio": v}).to_string() + "\n").collect();
        std::fs::write(tdir.join("series.jsonl"), lines).map_err(|e| io(&tdir, e))?;
        results.push(r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    rank(&mut results);
    let loo = leave_one_out(&results);
    let md = format!(
        "# Forecast sweep `{}` ({} series)\n\n{}\n{}\n",
        spec.name,
        corpus.len(),
        leaderboard(spec, &results, results.len(), true),
        loo_line(&loo)
    );
    std::fs::write(dir.join("leaderboard.md"), md).map_err(|e| io(dir, e))?;
    Ok((results, loo))
}

/// The leaderboard's first `top` rows (terminal or Markdown).
pub fn leaderboard(spec: &ForecastSweepSpec, results: &[ForecastTrialResult], top: usize, markdown: bool) -> String {
    let keys: Vec<&String> = spec.space.keys().collect();
    let figures = ["at_or_below", "median_ratio", "worst_ratio", "mean_log_ratio", "coverage_80", "coverage_95"];
    let mut header: Vec<&str> = vec!["rank", "trial"];
    header.extend(keys.iter().map(|k| k.as_str()));
    header.extend(figures);
    let mut t = crate::evaluation::table::TextTable::new(&header);
    for (i, r) in results.iter().enumerate().take(top) {
        let mut row = vec![(i + 1).to_string(), r.id[..8].to_string()];
        row.extend(keys.iter().map(|k| r.params.get(*k).cloned().unwrap_or_default()));
        row.extend(figures.iter().map(|f| format!("{:.3}", r.metrics.get(*f).copied().unwrap_or(f64::NAN))));
        t.row(row);
    }
    t.render(markdown)
}

/// The leave-one-series-out line of the leaderboard.
pub fn loo_line(loo: &LeaveOneOut) -> String {
    format!(
        "Leave one series out (each series scored with the trial best on the others): at or below the best baseline on {:.0} %, median ratio {:.3}, worst {:.3}",
        loo.at_or_below * 100.0,
        loo.median_ratio,
        loo.worst_ratio
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, ratios: &[(&str, f64)]) -> ForecastTrialResult {
        let ratios: BTreeMap<String, f64> = ratios.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let metrics = summary(&ratios.values().copied().collect::<Vec<_>>());
        ForecastTrialResult { id: format!("{id}00000000"), params: BTreeMap::new(), ratios, metrics }
    }

    #[test]
    fn leave_one_out_scores_each_series_with_the_trial_chosen_on_the_others() {
        // In sample `a` ranks first (2 of 3 series at or below). Held out, s1 and s2 are each
        // scored with `b` (on the two others both trials have one series below and `b` the
        // lower mean log ratio), s3 with `a`: none of the three at or below.
        let mut results =
            vec![result("b", &[("s1", 1.2), ("s2", 1.1), ("s3", 0.5)]), result("a", &[("s1", 0.9), ("s2", 0.8), ("s3", 1.3)])];
        rank(&mut results);
        assert!(results[0].id.starts_with('a'));
        let loo = leave_one_out(&results);
        assert_eq!(loo.chosen["s1"], ("b00000000".to_string(), 1.2));
        assert_eq!(loo.chosen["s2"], ("b00000000".to_string(), 1.1));
        assert_eq!(loo.chosen["s3"], ("a00000000".to_string(), 1.3));
        assert!(loo.at_or_below == 0.0 && loo.worst_ratio == 1.3 && loo.median_ratio == 1.2, "{loo:?}");
    }

    #[test]
    fn bad_trial_settings_are_refused_naming_them() {
        let e = ForecastSweepSpec::parse("name = \"x\"\n[space]\nvalidation_span = [0.5, 1.5]\n", "s.toml").unwrap_err().to_string();
        assert!(e.contains("s.toml") && e.contains("validation_span") && e.contains("1.5"), "{e}");
        let e = ForecastSweepSpec::parse("name = \"x\"\nhorizn = 3\n", "s.toml").unwrap_err().to_string();
        assert!(e.contains("horizn"), "{e}");
    }
}
