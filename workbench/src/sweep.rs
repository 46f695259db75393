//! Sweeps: a declarative search over detector hyperparameters, every trial evaluated and
//! tracked locally, and a leaderboard.
//!
//! Spec (TOML, see `experiments/`):
//!
//! ```toml
//! name = "sim-tail-ensemble"
//! dataset = "sim"               # sim (shipped), nab or smd ($AIOPS_DATASETS)
//! objective = "event_f1"        # nab_standard | nab_low_fp | nab_low_fn | roc_auc | best_f1 | event_f1
//! direction = "maximize"        # or "minimize"
//! search = "grid"               # or "random" (with `budget` samples and `seed`)
//! budget = 24                   # most trials
//! seed = 7
//! parallelism = 2
//! threshold = 0.5               # alert threshold for event metrics (can also be swept)
//! [detector]                    # the base detector: kind + fixed settings
//! kind = "tail_ensemble"
//! [space]                       # lists: grid values; {min, max, log} ranges: random search
//! range_weight = [1.0, 2.0, 4.0]
//! suppress_rows = { min = 50, max = 400, log = true }
//! ```
//!
//! Every trial's detector is built and validated before anything runs; errors name the key
//! and value. Tracking folder `runs/sweeps/<name>/`: `spec.toml`, and per trial
//! `trials/<id>/params.json`, `metrics.jsonl` (`{"key","value","step","timestamp"}` per line),
//! `tags.json` (sweep, dataset, detector, times, status, git commit), `trial.json` (the resolved
//! detector and threshold, what `experiment promote` bundles); `leaderboard.md` and
//! `objective.svg` after the run. A trial id is a hash of its
//! parameters, so `--resume` skips trials already recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::detectors::AnyDetector;
use crate::frames::FrameError;
use crate::tracking::{RunStatus, TrackedFile, TrialRecord, TrialTags};

/// A parameter's search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Space {
    /// Explicit values (grid, or sampled uniformly in random search).
    Values(Vec<toml::Value>),
    /// A numeric range (random search only).
    Range {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Sample log-uniformly.
        #[serde(default)]
        log: bool,
    },
}

/// The datasets a sweep evaluates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    /// The shipped simulator fleet (alert-level metrics).
    #[default]
    Sim,
    /// NAB under `$AIOPS_DATASETS/nab` (NAB scores, ROC AUC).
    Nab,
    /// SMD under `$AIOPS_DATASETS/smd` (ROC AUC, PR AUC, best F1).
    Smd,
}

impl Dataset {
    /// Its name in specs and tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Nab => "nab",
            Self::Smd => "smd",
        }
    }

    /// The objectives a sweep on it can optimize.
    pub fn objectives(self) -> &'static [Objective] {
        use Objective::*;
        match self {
            Self::Nab => &[NabStandard, NabLowFp, NabLowFn, RocAuc, BestF1],
            Self::Smd => &[RocAuc, BestF1, PrAuc],
            Self::Sim => &[EventF1, Recall, FalseAlertsPerDay],
        }
    }

    /// Metrics shown next to the objective in the leaderboard: on the simulator the
    /// alert-level recall, false alerts and hours open per server-day, so a setting that wins
    /// the objective by alerting all the time (or never) shows it.
    pub fn shown_metrics(self) -> &'static [&'static str] {
        match self {
            Self::Nab => &["nab_standard", "nab_low_fp", "nab_low_fn"],
            Self::Smd => &["roc_auc", "best_f1"],
            Self::Sim => &["event_f1", "recall", "false_alerts_per_day", "false_alert_hours_per_day"],
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sweep optimizes: a metric of its dataset ([`Dataset::objectives`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// NAB score, standard profile.
    NabStandard,
    /// NAB score, reward-low-FP profile.
    NabLowFp,
    /// NAB score, reward-low-FN profile.
    NabLowFn,
    /// Mean ROC AUC.
    RocAuc,
    /// Mean best F1 over thresholds.
    BestF1,
    /// Mean PR AUC.
    PrAuc,
    /// Event-level F1 of the alerts.
    EventF1,
    /// Alert-level recall.
    Recall,
    /// False alerts per server-day.
    FalseAlertsPerDay,
}

impl Objective {
    /// The metric's key in a trial's metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NabStandard => "nab_standard",
            Self::NabLowFp => "nab_low_fp",
            Self::NabLowFn => "nab_low_fn",
            Self::RocAuc => "roc_auc",
            Self::BestF1 => "best_f1",
            Self::PrAuc => "pr_auc",
            Self::EventF1 => "event_f1",
            Self::Recall => "recall",
            Self::FalseAlertsPerDay => "false_alerts_per_day",
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the best trial has the largest or the smallest objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Largest first.
    #[default]
    Maximize,
    /// Smallest first.
    Minimize,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Maximize => "maximize",
            Self::Minimize => "minimize",
        })
    }
}

/// How trials are drawn from the spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Search {
    /// The product of every list (truncated to `budget`).
    #[default]
    Grid,
    /// `budget` draws (lists uniformly, ranges uniformly or log-uniformly).
    Random,
}

/// A sweep spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Name (also the tracking folder).
    pub name: String,
    /// Where trials are evaluated.
    pub dataset: Dataset,
    /// Metric to optimize (one of the dataset's).
    pub objective: Objective,
    /// Best is largest or smallest.
    #[serde(default)]
    pub direction: Direction,
    /// Grid or random search.
    #[serde(default)]
    pub search: Search,
    /// Most trials.
    #[serde(default = "default_budget")]
    pub budget: usize,
    /// Seed of random search.
    #[serde(default)]
    pub seed: u64,
    /// Trials run at once.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    /// Alert threshold for event metrics.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Base detector table.
    pub detector: toml::Table,
    /// Parameter spaces.
    #[serde(default)]
    pub space: BTreeMap<String, Space>,
}

fn default_budget() -> usize {
    24
}
fn default_parallelism() -> usize {
    2
}
fn default_threshold() -> f64 {
    0.5
}

/// Per-kind recall and MTTD of a simulator trial (`kind recall/MTTD min`, `·`-separated).
pub fn kind_summary(metrics: &BTreeMap<String, f64>) -> String {
    metrics
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("recall_").map(|kind| (kind, v)))
        .map(|(kind, r)| format!("{kind} {r:.2}/{:.1}", metrics.get(&format!("mttd_minutes_{kind}")).copied().unwrap_or(f64::NAN)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Spec errors name the key and the value.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Invalid spec.
    #[error("{origin}: `{key}` = {value}: {reason}")]
    Spec {
        /// File.
        origin: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Loading or evaluating failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Tracking folder I/O.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// One planned trial.
#[derive(Debug, Clone)]
pub struct Trial {
    /// Hash of the parameters.
    pub id: String,
    /// The swept parameters.
    pub params: BTreeMap<String, toml::Value>,
    /// The detector to run.
    pub detector: AnyDetector,
    /// Alert threshold.
    pub threshold: f64,
}

/// A finished trial.
#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    /// Trial id.
    pub id: String,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// All metrics.
    pub metrics: BTreeMap<String, f64>,
    /// The objective's value.
    pub objective: f64,
}

fn bad(origin: &str, key: &str, value: impl std::fmt::Display, reason: &str) -> SweepError {
    SweepError::Spec { origin: origin.into(), key: key.into(), value: value.to_string(), reason: reason.into() }
}

impl SweepSpec {
    /// Parse and validate a spec; builds every trial's detector.
    pub fn parse(text: &str, origin: &str) -> Result<(Self, Vec<Trial>), SweepError> {
        let spec: SweepSpec = toml::from_str(text).map_err(|e| bad(origin, "toml", "", &e.to_string()))?;
        let trials = spec.plan(origin)?;
        Ok((spec, trials))
    }

    /// Check the spec and expand it into trials.
    pub fn plan(&self, origin: &str) -> Result<Vec<Trial>, SweepError> {
        let objectives = self.dataset.objectives();
        if !objectives.contains(&self.objective) {
            let names: Vec<&str> = objectives.iter().map(|o| o.as_str()).collect();
            return Err(bad(origin, "objective", self.objective, &format!("for dataset {} use one of {}", self.dataset, names.join(", "))));
        }
        if self.budget == 0 || self.parallelism == 0 {
            return Err(bad(origin, if self.budget == 0 { "budget" } else { "parallelism" }, 0, "at least 1"));
        }
        let assignments = self.assignments(origin)?;
        for (k, space) in &self.space {
            if let Space::Range { min, max, log } = space
                && (min.partial_cmp(max) != Some(std::cmp::Ordering::Less) || (*log && *min <= 0.0))
            {
                return Err(bad(origin, &format!("space.{k}"), format!("{min}..{max}"), "need min < max (and min > 0 for log)"));
            }
        }
        let mut trials = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for params in assignments {
            let mut table = self.detector.clone();
            let mut threshold = self.threshold;
            for (k, v) in &params {
                if k == "threshold" {
                    threshold = v
                        .as_float()
                        .or_else(|| v.as_integer().map(|i| i as f64))
                        .ok_or_else(|| bad(origin, "space.threshold", v, "a number"))?;
                    continue;
                }
                // Integer-valued settings sampled from ranges are rounded.
                let v = match (v, self.detector.get(k).or_else(|| integer_default(k))) {
                    (toml::Value::Float(f), Some(toml::Value::Integer(_))) => toml::Value::Integer(f.round() as i64),
                    _ => v.clone(),
                };
                table.insert(k.clone(), v);
            }
            let text = toml::to_string(&table).map_err(|e| bad(origin, "detector", "", &e.to_string()))?;
            let detector =
                AnyDetector::from_toml_str(&text, origin).map_err(|e| bad(origin, "detector", format!("{params:?}"), &e.reason))?;
            detector.build(1).map_err(|e| bad(origin, "detector", format!("{params:?}"), &e.to_string()))?;
            if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
                let key = if params.contains_key("threshold") { "space.threshold" } else { "threshold" };
                return Err(bad(origin, key, threshold, "an alert threshold in [0, 1] (scores are in [0, 1])"));
            }
            let id = trial_id(&params);
            if seen.insert(id.clone()) {
                trials.push(Trial { id, params, detector, threshold });
            }
        }
        Ok(trials)
    }

    /// The parameter assignments of the search: the grid's product (truncated to `budget`) or
    /// `budget` random draws.
    fn assignments(&self, origin: &str) -> Result<Vec<BTreeMap<String, toml::Value>>, SweepError> {
        match self.search {
            Search::Grid => {
                let mut lists = Vec::new();
                for (k, space) in &self.space {
                    let Space::Values(values) = space else {
                        return Err(bad(origin, &format!("space.{k}"), "a range", "grid search needs a list of values"));
                    };
                    if values.is_empty() {
                        return Err(bad(origin, &format!("space.{k}"), "[]", "empty list"));
                    }
                    lists.push((k, values.as_slice()));
                }
                let mut out = grid(lists);
                out.truncate(self.budget);
                Ok(out)
            }
            Search::Random => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
                Ok((0..self.budget)
                    .map(|_| {
                        self.space
                            .iter()
                            .map(|(k, space)| {
                                let v = match space {
                                    Space::Values(values) => values[rng.random_range(0..values.len().max(1))].clone(),
                                    Space::Range { min, max, log } => {
                                        let x = if *log {
                                            (min.ln() + rng.random::<f64>() * (max.ln() - min.ln())).exp()
                                        } else {
                                            min + rng.random::<f64>() * (max - min)
                                        };
                                        toml::Value::Float(x)
                                    }
                                };
                                (k.clone(), v)
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }
}

/// Every combination of one value from each list (the grid's product; one empty assignment
/// when there are no lists), in list order.
pub fn grid<'a>(lists: impl IntoIterator<Item = (&'a String, &'a [toml::Value])>) -> Vec<BTreeMap<String, toml::Value>> {
    let mut out = vec![BTreeMap::new()];
    for (k, values) in lists {
        out = out
            .into_iter()
            .flat_map(|a| {
                values.iter().map(move |v| {
                    let mut a = a.clone();
                    a.insert(k.clone(), v.clone());
                    a
                })
            })
            .collect();
    }
    out
}

/// Settings that are integers (so float samples are rounded even when the base omits them).
fn integer_default(key: &str) -> Option<&'static toml::Value> {
    static INT: toml::Value = toml::Value::Integer(0);
    key.ends_with("_rows").then_some(&INT).or_else(|| matches!(key, "short_window" | "n_clusters" | "min_points" | "top_k").then_some(&INT))
}

/// A trial's id: the first 16 hex digits of the SHA-256 of its canonical parameters (the
/// sorted `key = value` TOML of the swept settings), stable across Rust releases and machines,
/// so `--resume`, `promote` and MLflow find the same folder. (Ids before this were
/// `DefaultHasher` digests; those folders stay readable by their name, but `--resume` does not
/// match them and reruns their trials under the new ids.)
pub(crate) fn trial_id(params: &BTreeMap<String, toml::Value>) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(toml::to_string(params).unwrap_or_default().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The alert decisions a simulator trial is evaluated with, and a promotion of it ships: the
/// runtime's defaults (consecutive rows, cooldown, resolve, severity) at the trial's threshold.
pub fn trial_decisions(threshold: f64) -> runtime::decisions::DecisionConfig {
    runtime::decisions::DecisionConfig { threshold, ..Default::default() }
}

/// Evaluate one trial on the dataset: all metrics of that dataset.
pub fn evaluate_trial(dataset: Dataset, trial: &Trial) -> Result<BTreeMap<String, f64>, FrameError> {
    use crate::evaluation::report::{evaluate_nab, evaluate_smd};
    let root = crate::frames::datasets_root();
    let mut m = BTreeMap::new();
    match dataset {
        Dataset::Nab => {
            let (r, _) = evaluate_nab(&root.join("nab"), &trial.detector)?;
            for (key, p) in ["nab_standard", "nab_low_fp", "nab_low_fn"].iter().zip(&r.profiles) {
                m.insert(key.to_string(), p.score);
            }
            m.insert("roc_auc".into(), r.mean_roc_auc);
            m.insert("best_f1".into(), r.mean_best_f1);
            m.insert("false_alerts_per_day".into(), r.false_alerts_per_day);
        }
        Dataset::Smd => {
            let r = evaluate_smd(&root.join("smd"), &trial.detector)?;
            let n = r.len().max(1) as f64;
            m.insert("roc_auc".into(), r.iter().map(|x| x.roc_auc).sum::<f64>() / n);
            m.insert("pr_auc".into(), r.iter().map(|x| x.pr_auc).sum::<f64>() / n);
            m.insert("best_f1".into(), r.iter().map(|x| x.best_f1).sum::<f64>() / n);
        }
        Dataset::Sim => {
            let r = crate::evaluation::fleet::evaluate_sim(
                &crate::frames::shipped_sim_dir()?,
                &trial.detector,
                &trial_decisions(trial.threshold),
            )?;
            m.insert("recall".into(), r.recall);
            m.insert("precision".into(), r.precision);
            m.insert("false_alerts_per_day".into(), r.false_alerts_per_server_day);
            m.insert("false_alert_hours_per_day".into(), r.false_alert_hours_per_server_day);
            m.insert("event_f1".into(), r.event_f1);
            for k in &r.kinds {
                m.insert(format!("recall_{}", k.kind), k.detected as f64 / k.incidents.max(1) as f64);
                m.insert(format!("mttd_minutes_{}", k.kind), k.mttd_minutes);
            }
        }
    }
    Ok(m)
}

pub use crate::tracking::{MetricPoint, read_metrics};

/// Folder of a sweep dataset: `nab` and `smd` under `$AIOPS_DATASETS`, anything else the
/// shipped simulator fleet.
pub fn dataset_dir(dataset: Dataset) -> Result<PathBuf, FrameError> {
    match dataset {
        Dataset::Nab | Dataset::Smd => Ok(crate::frames::datasets_root().join(dataset.as_str())),
        Dataset::Sim => crate::frames::shipped_sim_dir(),
    }
}

/// The checked-out git commit, when the workbench runs inside a git work tree.
pub fn git_commit() -> Option<String> {
    static COMMIT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    COMMIT
        .get_or_init(|| {
            let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .clone()
}

fn write(path: &Path, text: &str) -> Result<(), SweepError> {
    std::fs::write(path, text).map_err(|e| SweepError::Io { path: path.display().to_string(), source: e })
}

/// Run a sweep: trials in parallel, each tracked under `dir/trials/<id>/`. Returns results of
/// every finished trial (recorded ones too with `resume`), best first.
pub fn run(
    spec: &SweepSpec,
    spec_text: &str,
    trials: Vec<Trial>,
    dir: &Path,
    resume: bool,
    stop: Arc<AtomicBool>,
) -> Result<Vec<TrialResult>, SweepError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| SweepError::Io { path: p.display().to_string(), source: e }
    };
    std::fs::create_dir_all(dir.join("trials")).map_err(io(dir))?;
    write(&dir.join("spec.toml"), spec_text)?;
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(trials.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("{msg:12} [{bar:40}] {pos}/{len} trials ({elapsed}, eta {eta})")
            .expect("template")
            .progress_chars("=> "),
    );
    overall.set_message(spec.name.chars().take(12).collect::<String>());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(spec.parallelism)
        .build()
        .map_err(|e| SweepError::Io { path: "thread pool".into(), source: std::io::Error::other(e.to_string()) })?;
    let results: Vec<Option<TrialResult>> = pool.install(|| {
        trials
            .par_iter()
            .map(|t| -> Result<Option<TrialResult>, SweepError> {
                let tdir = dir.join("trials").join(&t.id);
                let params: BTreeMap<String, String> = t.params.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
                if resume {
                    let metrics: BTreeMap<String, f64> = read_metrics(&tdir).into_iter().map(|m| (m.key, m.value)).collect();
                    if let Some(objective) = metrics.get(spec.objective.as_str()).copied() {
                        overall.inc(1);
                        return Ok(Some(TrialResult { id: t.id.clone(), params, metrics, objective }));
                    }
                }
                if stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_message(format!("trial {} {:?}", &t.id[..8], params));
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                let started = runtime::now_ms();
                let metrics = evaluate_trial(spec.dataset, t)?;
                bar.finish_and_clear();
                std::fs::create_dir_all(&tdir).map_err(io(&tdir))?;
                let tracked = |e: crate::tracking::TrackingError| SweepError::Io { path: e.path, source: std::io::Error::other(e.reason) };
                crate::tracking::write_params(&tdir, &params).map_err(tracked)?;
                let now = runtime::now_ms();
                crate::tracking::write_metrics(&tdir, &metrics, now).map_err(tracked)?;
                let tags = TrialTags {
                    sweep: spec.name.clone(),
                    dataset: spec.dataset,
                    detector: t.detector.name().to_string(),
                    start_time: started,
                    end_time: now,
                    status: RunStatus::Finished,
                    git_commit: git_commit(),
                };
                tags.write(&tdir).map_err(tracked)?;
                // What `experiment promote` turns into a bundle: the resolved detector and threshold.
                TrialRecord { detector: t.detector.clone(), threshold: t.threshold, dataset: spec.dataset }
                    .write(&tdir)
                    .map_err(tracked)?;
                overall.inc(1);
                let objective = metrics.get(spec.objective.as_str()).copied().unwrap_or(f64::NAN);
                Ok(Some(TrialResult { id: t.id.clone(), params, metrics, objective }))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    overall.finish_and_clear();
    let mut done: Vec<TrialResult> = results.into_iter().flatten().collect();
    let sign = if spec.direction == Direction::Minimize { 1.0 } else { -1.0 };
    done.sort_by(|a, b| (sign * a.objective).total_cmp(&(sign * b.objective)));
    let best_trial = done.first().and_then(|b| trials.iter().find(|t| t.id == b.id));
    write_leaderboard(spec, &done, best_trial, dir)?;
    Ok(done)
}

/// The leaderboard's first `top` rows, best first (terminal or Markdown): rank, trial id
/// (8 characters), the swept parameters, the objective, the dataset's other shown metrics, and
/// on the simulator recall / MTTD by incident kind.
pub fn leaderboard(spec: &SweepSpec, done: &[TrialResult], top: usize, markdown: bool) -> String {
    let keys: Vec<&String> = spec.space.keys().collect();
    let shown: Vec<&str> = spec.dataset.shown_metrics().iter().copied().filter(|m| *m != spec.objective.as_str()).collect();
    let by_kind = spec.dataset == Dataset::Sim;
    let mut header: Vec<&str> = vec!["rank", "trial"];
    header.extend(keys.iter().map(|k| k.as_str()));
    header.push(spec.objective.as_str());
    header.extend(&shown);
    if by_kind {
        header.push("recall / MTTD (min) by kind");
    }
    let mut t = crate::evaluation::table::TextTable::new(&header);
    for (i, r) in done.iter().enumerate().take(top) {
        let mut row = vec![(i + 1).to_string(), r.id[..8].to_string()];
        row.extend(keys.iter().map(|k| r.params.get(*k).cloned().unwrap_or_default()));
        row.push(format!("{:.4}", r.objective));
        row.extend(shown.iter().map(|m| format!("{:.3}", r.metrics.get(*m).copied().unwrap_or(f64::NAN))));
        if by_kind {
            row.push(kind_summary(&r.metrics));
        }
        t.row(row);
    }
    t.render(markdown)
}

/// `leaderboard.md`, `objective.svg` (objective per trial, in trial order of the table) and
/// `report.html` (the leaderboard with its charts inlined).
fn write_leaderboard(spec: &SweepSpec, done: &[TrialResult], best_trial: Option<&Trial>, dir: &Path) -> Result<(), SweepError> {
    use std::fmt::Write;
    let mut md = format!(
        "# Sweep `{}` on {} — objective {} ({})\n\n{}",
        spec.name,
        spec.dataset,
        spec.objective,
        spec.direction,
        leaderboard(spec, done, done.len(), true)
    );
    md.push_str("\n![objective per trial](objective.svg)\n");
    if let Some(best) = done.first()
        && spec.dataset == Dataset::Sim
        && let Some(trial) = best_trial
    {
        let server = best_trial_chart(&dir.join("best_trial.svg"), trial)?;
        let _ = writeln!(md, "\n## Best trial `{}` on {server}\n\n![best trial detection](best_trial.svg)", &best.id[..8]);
    }
    write(&dir.join("leaderboard.md"), &md)?;
    let values: Vec<f64> = done.iter().map(|r| r.objective).collect();
    crate::charts::values_chart(
        &dir.join("objective.svg"),
        &format!("sweep {}: {} by rank", spec.name, spec.objective),
        "rank",
        spec.objective.as_str(),
        &values,
    )?;
    // The same page in a browser, charts inlined (written after them).
    crate::evaluation::html::write(&md, &format!("Sweep {}", spec.name), dir).map_err(|e| SweepError::Io {
        path: dir.join("report.html").display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(())
}

/// The best trial's detection on the shipped simulator data: the server with the most incidents,
/// its incident metric (top) and the trial's score (bottom), incidents shaded, threshold drawn.
/// Returns the server charted.
fn best_trial_chart(path: &Path, trial: &Trial) -> Result<String, SweepError> {
    let data = crate::frames::shipped_sim_dir()?;
    fleet_detection_chart(path, &data, &format!("best trial {}", &trial.id[..8]), &trial.detector, trial.threshold)
}

/// A detector's scores on the simulator fleet in `data`: the server with the most incidents, its
/// incident metric (top) and the score (bottom), incidents shaded, `threshold` drawn; `label`
/// starts the title. Returns the server charted.
pub fn fleet_detection_chart(path: &Path, data: &Path, label: &str, detector: &AnyDetector, threshold: f64) -> Result<String, SweepError> {
    let fail = |e: FrameError| SweepError::Io { path: path.display().to_string(), source: std::io::Error::other(e.to_string()) };
    let fleet = crate::evaluation::fleet::SimFleet::load(data).map_err(fail)?;
    let (incidents, metrics) = (&fleet.incidents, &fleet.metrics);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in incidents {
        *counts.entry(i.server.as_str()).or_default() += 1;
    }
    let server = counts.iter().max_by_key(|(_, n)| **n).map(|(s, _)| s.to_string()).unwrap_or_else(|| fleet.servers[0].clone());
    let input = fleet.server_input(&server);
    let det = crate::detect::detect_rows(detector, &input, None)
        .map_err(|e| SweepError::Io { path: path.display().to_string(), source: std::io::Error::other(e.to_string()) })?;
    let mine: Vec<_> = incidents.iter().filter(|i| i.server == server).collect();
    let metric = mine.first().map(|i| i.metric.clone()).unwrap_or_else(|| metrics[0].clone());
    let m = metrics.iter().position(|x| *x == metric).unwrap_or(0);
    let values: Vec<f64> = input.rows.iter().map(|r| r[m]).collect();
    let t = input.timestamps_ms.clone().unwrap_or_default();
    let windows: Vec<(usize, usize)> = mine
        .iter()
        .filter_map(|i| {
            let a = t.iter().position(|&x| x >= i.start_ms)?;
            let b = t.iter().rposition(|&x| x <= i.end_ms)?;
            Some((a, b))
        })
        .collect();
    let title = format!("{label}: {server} {metric} (incidents shaded) and score");
    crate::charts::series_chart(path, &title, &values, &det.scores, &windows, threshold)?;
    Ok(server)
}

/// The default spec (`experiments/default.toml`), built into the binary so an installed
/// `experiment sweep` has it too.
pub const DEFAULT_SPEC: &str = include_str!("../../experiments/default.toml");

/// Install a Ctrl-C handler that asks running sweeps to stop after their current trials.
pub fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    // A second handler cannot be installed (e.g. in tests): the sweep then just runs to the end.
    let _ = ctrlc::set_handler(move || {
        eprintln!("\nstopping after the running trials (finished ones are kept)…");
        s.store(true, Ordering::SeqCst);
    });
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
name = "t"
dataset = "sim"
objective = "event_f1"
[detector]
kind = "tail_ensemble"
[space]
range_weight = [1.0, 2.0]
suppress_rows = [50, 100]
threshold = [0.5, 0.6]
"#;

    #[test]
    fn grid_expands_and_ids_are_stable() {
        let (_, trials) = SweepSpec::parse(SPEC, "s.toml").unwrap();
        assert_eq!(trials.len(), 8);
        let (_, again) = SweepSpec::parse(SPEC, "s.toml").unwrap();
        assert_eq!(trials.iter().map(|t| &t.id).collect::<Vec<_>>(), again.iter().map(|t| &t.id).collect::<Vec<_>>());
        assert!(trials.iter().any(|t| t.threshold == 0.6));
        // Pinned: the SHA-256 of the canonical parameters, the same on every machine and release.
        let params: BTreeMap<String, toml::Value> = [("threshold".to_string(), toml::Value::Float(0.5))].into();
        assert_eq!(trial_id(&params), "614f805f4bc21814");
    }

    #[test]
    fn spec_errors_name_key_and_value() {
        let e = SweepSpec::parse(&SPEC.replace("event_f1", "nab_standard"), "s.toml").unwrap_err().to_string();
        assert!(e.contains("`objective` = nab_standard") && e.contains("event_f1"), "{e}");
        let e = SweepSpec::parse(&SPEC.replace("suppress_rows = [50, 100]", "suppress_rowz = [50]"), "s.toml").unwrap_err().to_string();
        assert!(e.contains("suppress_rowz"), "{e}");
        let e = SweepSpec::parse(&SPEC.replace("range_weight = [1.0, 2.0]", "range_weight = { min = 2.0, max = 1.0 }"), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("space.range_weight"), "{e}");
        let e = SweepSpec::parse(&SPEC.replace("range_weight = [1.0, 2.0]", "scale_nats = [-1.0]"), "s.toml").unwrap_err().to_string();
        assert!(e.contains("scale_nats"), "{e}");
    }

    #[test]
    fn random_search_rounds_integer_settings_and_respects_budget() {
        let text = format!("search = \"random\"\nbudget = 5\nseed = 3\n{SPEC}")
            .replace("suppress_rows = [50, 100]", "suppress_rows = { min = 20, max = 400, log = true }");
        let (_, trials) = SweepSpec::parse(&text, "s.toml").unwrap();
        assert!(trials.len() <= 5 && !trials.is_empty());
        assert!(trials.iter().all(|t| t.params["suppress_rows"].is_float()));
        let (_, again) = SweepSpec::parse(&text, "s.toml").unwrap();
        assert_eq!(trials.iter().map(|t| &t.id).collect::<Vec<_>>(), again.iter().map(|t| &t.id).collect::<Vec<_>>(), "seeded");
    }

    #[test]
    fn thresholds_outside_zero_one_are_refused_before_anything_runs() {
        for (space, key) in [("threshold = [-1.0, 0.5]", "`space.threshold` = -1"), ("threshold = [0.5, nan]", "`space.threshold` = NaN")] {
            let text =
                format!("name = \"t\"\ndataset = \"sim\"\nobjective = \"event_f1\"\n[detector]\nkind = \"fleet\"\n[space]\n{space}\n");
            let e = SweepSpec::parse(&text, "t.toml").unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("[0, 1]"), "{e}");
        }
        let text = "name = \"t\"\ndataset = \"sim\"\nobjective = \"event_f1\"\nthreshold = 1.5\n[detector]\nkind = \"fleet\"\n[space]\nhalf_surprise = [12.0]\n";
        assert!(SweepSpec::parse(text, "t.toml").unwrap_err().to_string().contains("`threshold` = 1.5"));
    }

    #[test]
    fn no_degenerate_setting_ranks_above_a_useful_one() {
        // On the shipped fleet, at alert level: always alerting (threshold 0), never alerting (a
        // threshold no score reaches) and the useful default; the default sweep's spec ranks them.
        let text = "name = \"degenerate\"\ndataset = \"sim\"\nobjective = \"event_f1\"\n[detector]\nkind = \"fleet\"\n[space]\nthreshold = [0.0, 0.5, 1.0]\n";
        let (spec, trials) = SweepSpec::parse(text, "degenerate.toml").unwrap();
        let dir = std::env::temp_dir().join(format!("wb-sweep-degenerate-{}", std::process::id()));
        let done = run(&spec, text, trials, &dir, false, Arc::new(AtomicBool::new(false))).unwrap();
        let at = |t: &str| done.iter().find(|r| r.params["threshold"] == t).unwrap();
        let (always, useful, never) = (at("0.0"), at("0.5"), at("1.0"));
        assert_eq!(done[0].id, useful.id, "{done:#?}");
        assert!(useful.metrics["event_f1"] >= 0.8 && useful.metrics["false_alerts_per_day"] <= 1.0, "{:?}", useful.metrics);
        assert!(always.metrics["false_alerts_per_day"] > 50.0 && always.metrics["event_f1"] < 0.3, "{:?}", always.metrics);
        assert!(always.metrics["false_alert_hours_per_day"] > 20.0, "an alert that never stops: {:?}", always.metrics);
        assert_eq!((never.metrics["recall"], never.metrics["event_f1"]), (0.0, 0.0));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn sweep_tracks_trials_and_resume_skips_them() {
        let text = SPEC.replace("threshold = [0.5, 0.6]\n", "").replace("suppress_rows = [50, 100]", "suppress_rows = [100]");
        let (spec, trials) = SweepSpec::parse(&text, "s.toml").unwrap();
        let dir = std::env::temp_dir().join(format!("wb-sweep-{}", std::process::id()));
        let stop = Arc::new(AtomicBool::new(false));
        let done = run(&spec, &text, trials.clone(), &dir, false, Arc::clone(&stop)).unwrap();
        assert_eq!(done.len(), 2);
        assert!(done[0].objective >= done[1].objective, "best first");
        for t in &trials {
            let m = std::fs::read_to_string(dir.join("trials").join(&t.id).join("metrics.jsonl")).unwrap();
            assert!(m.contains("\"key\":\"event_f1\"") && m.contains("\"step\":0"), "{m}");
        }
        assert!(std::fs::read_to_string(dir.join("leaderboard.md")).unwrap().contains("| 1 |"));
        // With the stop flag set and --resume, recorded trials come back and nothing new runs.
        stop.store(true, Ordering::SeqCst);
        let again = run(&spec, &text, trials, &dir, true, stop).unwrap();
        assert_eq!(again.iter().map(|r| r.objective).collect::<Vec<_>>(), done.iter().map(|r| r.objective).collect::<Vec<_>>());
        std::fs::remove_dir_all(&dir).ok();
    }
}
