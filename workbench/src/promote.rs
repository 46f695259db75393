//! Promotion: a tracked sweep trial becomes a model bundle in a registry (local folder or S3),
//! and an alias (default `champion`) moves to it. See [`runtime::registry`] for the layout and
//! the guarantees (immutable versions, compare-and-swap aliases, verified loads).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use runtime::registry::{AliasPointer, Bundle, Manifest, Registry, RegistryError, TrainingData};
use sha2::{Digest, Sha256};

use crate::detectors::AnyDetector;
use crate::sweep::Dataset;
use crate::tracking::{ForecastRun, TrackedFile, TrackingError, TrialRecord, TrialTags};

/// Registry used when none is given: `$AIOPS_REGISTRY` or `file://models`.
pub fn default_registry() -> String {
    std::env::var("AIOPS_REGISTRY").unwrap_or_else(|_| "file://models".to_string())
}

/// Promotion failures.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// The run cannot be found or is ambiguous.
    #[error("run `{run}`: {reason}")]
    Run {
        /// Run id as given.
        run: String,
        /// Why.
        reason: String,
    },
    /// A tracked file is unreadable.
    #[error("{path}: {reason}")]
    Tracked {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
    /// Registry failure.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Whether `dir` is a tracked sweep trial, forecaster run or LSTM bundle folder.
fn is_run(dir: &Path) -> bool {
    dir.join(TrialRecord::FILE).is_file() || dir.join(ForecastRun::FILE).is_file() || is_lstm_bundle(dir)
}

/// Whether `dir` is an LSTM bundle folder (`experiment lstm train`: `forecaster.json` and
/// `weights.bpk`).
pub fn is_lstm_bundle(dir: &Path) -> bool {
    dir.join(runtime::forecast::WEIGHTS_FILE).is_file() && dir.join(runtime::forecast::META_FILE).is_file()
}

/// The loss history of an LSTM bundle folder (`history.csv`: epoch, loss, val_loss).
pub fn lstm_history(dir: &Path) -> Vec<(i64, f64, Option<f64>)> {
    std::fs::read_to_string(dir.join("history.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next().and_then(|v| v.parse().ok())))
        })
        .collect()
}

/// Build the bundle of an LSTM bundle folder (`model`, e.g. `forecaster`): its files, the
/// inputs as metrics, the last losses as the evaluation.
pub fn bundle_from_lstm_dir(dir: &Path, model: &str) -> Result<Bundle, PromoteError> {
    let tracked = |reason: String| PromoteError::Tracked { path: dir.display().to_string(), reason };
    let fc = runtime::forecast::Forecaster::load_dir(dir).map_err(|e| tracked(e.to_string()))?;
    let meta = &fc.meta;
    let mut evaluation = BTreeMap::from([("epochs_run".to_string(), meta.epochs_run as f64)]);
    if let Some(v) = meta.val_loss {
        evaluation.insert("val_loss".to_string(), v);
    }
    if let Some((_, loss, _)) = lstm_history(dir).last() {
        evaluation.insert("loss".to_string(), *loss);
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let training =
        TrainingData { dataset: meta.server.clone(), sha256: meta.weights_sha256.clone(), rows: 0, start_ms: None, end_ms: None };
    let manifest =
        Manifest { evaluation, ..Manifest::new(model, meta.config.inputs(), Default::default(), training, &format!("lstm/{name}")) };
    Bundle::for_lstm(manifest, dir).map_err(|e| tracked(e.to_string()))
}

/// Whether `dir` is a forecaster run (`experiment forecast train`).
pub fn is_forecast_run(dir: &Path) -> bool {
    dir.join(ForecastRun::FILE).is_file()
}

/// Find a tracked trial or forecaster run: `ID` (or a unique prefix of at least 6 characters),
/// `SWEEP/ID` (or `NAME/ID` of a forecaster run), or the run's folder. Ids are looked up under
/// `runs` (the sweeps, `runs/sweeps`) and under its sibling `forecasts` (`runs/forecasts`).
pub fn find_run(runs: &Path, run: &str) -> Result<PathBuf, PromoteError> {
    let err = |reason: String| PromoteError::Run { run: run.to_string(), reason };
    let direct = PathBuf::from(run);
    if is_run(&direct) {
        return Ok(direct);
    }
    let (sweep, id) = run.split_once('/').map_or((None, run), |(s, i)| (Some(s), i));
    if id.len() < 6 {
        return Err(err("give at least 6 characters of the trial id".into()));
    }
    let mut found = Vec::new();
    let forecasts = runs.parent().map(|p| p.join("forecasts")).filter(|p| p.is_dir());
    if !runs.is_dir() && forecasts.is_none() {
        return Err(err(format!("cannot read {}: no such folder", runs.display())));
    }
    let groups = [(Some(runs.to_path_buf()), "trials"), (forecasts, "")];
    for (root, sub) in groups.iter().filter_map(|(r, sub)| r.as_ref().map(|r| (r, *sub))) {
        for s in std::fs::read_dir(root).into_iter().flatten().flatten() {
            if sweep.is_some_and(|name| s.file_name() != name) {
                continue;
            }
            for t in std::fs::read_dir(s.path().join(sub)).into_iter().flatten().flatten() {
                if t.file_name().to_string_lossy().starts_with(id) && t.path().is_dir() {
                    found.push(t.path());
                }
            }
        }
    }
    match found.len() {
        0 => Err(err(format!("no trial under {} (run `experiment sweep` first; ids are in its leaderboard)", runs.display()))),
        1 => {
            let dir = found.remove(0);
            if is_run(&dir) {
                Ok(dir)
            } else {
                Err(err(format!("{} has no trial.json (tracked by an older workbench: re-run the sweep)", dir.display())))
            }
        }
        _ => Err(err(format!(
            "ambiguous: {}",
            found.iter().map(|p| p.strip_prefix(runs).unwrap_or(p).display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

impl From<TrackingError> for PromoteError {
    fn from(e: TrackingError) -> Self {
        Self::Tracked { path: e.path, reason: e.reason }
    }
}

/// SHA-256 over every file under `dir` (relative name and content, in name order).
pub fn hash_dir(dir: &Path) -> std::io::Result<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() { walk(&p, out)? } else { out.push(p) }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.strip_prefix(dir).unwrap_or(&f).to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&f)?);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Columns of the SMD machines: the fields of the first train file's first line (0 when none).
fn smd_columns(dir: &Path) -> usize {
    let first = std::fs::read_dir(dir.join("train")).ok().and_then(|d| d.filter_map(Result::ok).map(|e| e.path()).min());
    let mut csv = first.and_then(|p| runtime::csv_file::CsvReader::open(&p, false).ok());
    csv.as_mut().and_then(|c| c.next_row().ok().flatten().map(|r| r.len())).unwrap_or(0)
}

/// Metric columns and training data of a sweep dataset.
fn dataset_info(dataset: Dataset) -> Result<(Vec<String>, TrainingData), PromoteError> {
    let dir = crate::sweep::dataset_dir(dataset).map_err(|e| PromoteError::Tracked { path: dataset.to_string(), reason: e.to_string() })?;
    let metrics = match dataset {
        Dataset::Nab => vec!["value".to_string()],
        // As many columns as the machines' files have (SMD: 38), named m01, m02, …
        Dataset::Smd => (1..=smd_columns(&dir)).map(|i| format!("m{i:02}")).collect(),
        Dataset::Sim => runtime::BASE_METRICS.iter().map(|m| m.to_string()).collect(),
    };
    let tracked = |reason: String| PromoteError::Tracked { path: dir.display().to_string(), reason };
    let sha256 = hash_dir(&dir).map_err(|e| tracked(e.to_string()))?;
    let (mut rows, mut start_ms, mut end_ms) = (0, None, None);
    if dataset == Dataset::Sim {
        let df = crate::frames::read_parquet(&dir.join("metrics.parquet")).map_err(|e| tracked(e.to_string()))?;
        let ts = crate::frames::timestamps_ms(&df).map_err(|e| tracked(e.to_string()))?;
        rows = ts.len() as u64;
        start_ms = ts.iter().min().copied();
        end_ms = ts.iter().max().copied();
    }
    Ok((metrics, TrainingData { dataset: dataset.to_string(), sha256, rows, start_ms, end_ms }))
}

/// Build the bundle of a tracked trial (`model` is the registered model name).
pub fn bundle_from_run(dir: &Path, model: &str) -> Result<Bundle, PromoteError> {
    let trial = TrialRecord::read(dir)?;
    let trial_path = dir.join(TrialRecord::FILE).display().to_string();
    let tracked = |reason: String| PromoteError::Tracked { path: trial_path.clone(), reason };
    let AnyDetector::Runtime(detector) = trial.detector else {
        return Err(tracked(format!(
            "`{}` is a workbench-only detector; the runtime serves {}",
            trial.detector.name(),
            runtime::models::detectors::DetectorConfig::KINDS.join(", ")
        )));
    };
    let threshold = trial.threshold;
    let params = crate::tracking::read_params(dir)?;
    let tags = TrialTags::read(dir)?;
    let evaluation: BTreeMap<String, f64> = crate::tracking::read_metrics(dir).into_iter().map(|m| (m.key, m.value)).collect();
    let (metrics, training) = dataset_info(trial.dataset)?;
    let sweep = &tags.sweep;
    let run_id = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    // The bundle alerts exactly as the sweep evaluated the trial (its AlertDecider settings).
    let decisions = crate::sweep::trial_decisions(threshold);
    let manifest = Manifest {
        evaluation,
        params,
        git_commit: tags.git_commit.clone(),
        ..Manifest::new(model, metrics, decisions, training, &format!("{sweep}/{run_id}"))
    };
    Ok(Bundle::for_detector(manifest, &detector))
}

/// Build the bundle of a tracked forecaster run (`model` is the registered model name, e.g.
/// `forecaster`): the forecaster's settings, its metric, the input it was evaluated on and the
/// evaluation.
pub fn bundle_from_forecast_run(dir: &Path, model: &str) -> Result<Bundle, PromoteError> {
    let run = ForecastRun::read(dir)?;
    let evaluation: BTreeMap<String, f64> = crate::tracking::read_metrics(dir).into_iter().map(|m| (m.key, m.value)).collect();
    let name = dir.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let id = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let training = TrainingData {
        dataset: run.input.clone(),
        sha256: run.input_sha256.clone(),
        rows: run.rows,
        start_ms: run.start_ms,
        end_ms: run.end_ms,
    };
    let manifest = Manifest {
        evaluation,
        params: crate::tracking::read_params(dir)?,
        git_commit: run.git_commit.clone(),
        ..Manifest::new(model, vec![run.forecaster.metric.clone()], Default::default(), training, &format!("forecasts/{name}/{id}"))
    };
    Ok(Bundle::for_forecaster(manifest, &run.forecaster))
}

/// What a promotion did.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// The published version.
    pub version: u64,
    /// The alias after the move.
    pub alias: AliasPointer,
    /// Where the alias pointed before (None: it was new).
    pub previous: Option<u64>,
    /// The manifest as published.
    pub manifest: Manifest,
}

/// Publish `bundle` as the next version of its model and move `alias` to it. The alias moves
/// only if nobody moved it since this call read it (compare-and-swap); otherwise
/// [`RegistryError::AliasConflict`] and the new version stays published without the alias.
pub async fn promote(registry: &Registry, bundle: &Bundle, alias: &str) -> Result<Promotion, PromoteError> {
    let model = bundle.manifest.model.clone();
    let before = registry.read_alias(&model, alias).await?;
    let (version, _) = registry.publish(bundle).await?;
    let pointer = registry.set_alias(&model, alias, version, before.as_ref()).await?;
    let mut manifest = bundle.manifest.clone();
    manifest.version = version;
    Ok(Promotion { version, alias: pointer, previous: before.map(|b| b.pointer.version), manifest })
}

/// A current-thread tokio runtime for the CLI's registry calls.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(f)
}
