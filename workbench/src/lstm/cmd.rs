//! What `experiment lstm train|predict|evaluate` and `experiment bench lstm` do, as library
//! calls (the binary only parses arguments).

use std::path::{Path, PathBuf};

use runtime::forecast::{ForecastError, Forecaster, LstmConfig, ScalingAdvice, default_threshold, scaling_advice};

use super::{Engine, LstmTraining};
use serde_json::json;

use super::ForecastSeries;
use crate::frames::{self, FrameError};

/// Errors of the LSTM commands.
#[derive(Debug, thiserror::Error)]
pub enum LstmCmdError {
    /// Reading the data.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Training, loading or forecasting.
    #[error(transparent)]
    Forecast(#[from] ForecastError),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

/// Where metric history comes from: `sim` (the shipped simulator dataset, default), a metrics
/// file (`.parquet`/`.csv`, wide or long, with a `server` column or not), `nab:<category/file.csv>`,
/// `smd:<machine>` (train + test rows) or `influxdb` (the last `hours`, `INFLUXDB_*` settings).
pub fn load_series(source: &str, server: &str, inputs: &[String], hours: f64) -> Result<ForecastSeries, LstmCmdError> {
    load_series_with(source, server, inputs, hours, &runtime::sources::influxdb::InfluxConfig::from_env())
}

/// [`load_series`] with explicit InfluxDB settings.
pub fn load_series_with(
    source: &str,
    server: &str,
    inputs: &[String],
    hours: f64,
    influx: &runtime::sources::influxdb::InfluxConfig,
) -> Result<ForecastSeries, LstmCmdError> {
    let (name, df) = if source == "sim" {
        ("sim".to_string(), frames::read_parquet(&frames::shipped_sim_dir()?.join("metrics.parquet"))?)
    } else if let Some(key) = source.strip_prefix("nab:") {
        let s = frames::nab::NabCorpus::open(&frames::datasets_root().join("nab"))?.load(key)?;
        (source.to_string(), s.frame)
    } else if let Some(m) = source.strip_prefix("smd:") {
        // Train then test rows of one machine (1-minute steps, server = the machine name).
        let machine = frames::smd::SmdMachine::load(&frames::datasets_root().join("smd"), m)?;
        let mut df = machine.train.clone();
        df.vstack_mut(&machine.test).map_err(|e| LstmCmdError::Other(format!("{source}: {e}")))?;
        (source.to_string(), df)
    } else if source == "influxdb" {
        let cfg = influx;
        let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let (df, _dups) = frames::remote::read_influx(cfg, inputs, end - (hours * 3_600_000.0) as i64, end)?;
        (format!("influxdb {}", cfg.database), df)
    } else {
        (source.to_string(), frames::read_metrics_file(Path::new(source))?)
    };
    let ts_all = frames::timestamps_ms(&df)?;
    let servers = frames::server_column(&df, server)?;
    let server = if source.starts_with("smd:") { servers.first().map_or(server, String::as_str) } else { server };
    let present = frames::metric_columns(&df);
    let cols: Vec<Vec<Option<f64>>> = inputs
        .iter()
        .map(|m| {
            if present.contains(m) {
                frames::f64_column(&df, m).map_err(LstmCmdError::from)
            } else {
                Err(LstmCmdError::Other(format!("{name}: no metric `{m}` (has: {})", present.join(", "))))
            }
        })
        .collect::<Result<_, _>>()?;
    let keep: Vec<usize> = (0..ts_all.len()).filter(|&r| servers[r] == server).collect();
    if keep.is_empty() {
        let mut known: Vec<&String> = servers.iter().collect();
        known.sort();
        known.dedup();
        let shown: Vec<&str> = known.iter().take(10).map(|s| s.as_str()).collect();
        return Err(LstmCmdError::Other(format!("{name}: no rows for server `{server}` (servers: {})", shown.join(", "))));
    }
    let rows: Vec<Vec<f64>> = keep.iter().map(|&r| cols.iter().map(|c| c[r].unwrap_or(f64::NAN)).collect()).collect();
    let ts: Vec<i64> = keep.iter().map(|&r| ts_all[r]).collect();
    if ts.windows(2).any(|w| w[1] <= w[0]) {
        return Err(LstmCmdError::Other(format!("{name}: timestamps of `{server}` are not strictly increasing (clean the data first)")));
    }
    Ok(ForecastSeries::new(&format!("{name} {server}"), inputs.to_vec(), ts, &rows)?)
}

/// Columns by name or 0-based index.
fn pick_columns(columns: &[String], wanted: &[String], source: &str) -> Result<Vec<usize>, LstmCmdError> {
    wanted
        .iter()
        .map(|w| {
            columns.iter().position(|c| c == w).or_else(|| w.parse::<usize>().ok().filter(|i| *i < columns.len())).ok_or_else(|| {
                LstmCmdError::Other(format!("{source}: no column `{w}` (columns {} to {})", columns[0], columns[columns.len() - 1]))
            })
        })
        .collect()
}

/// A single-column series from an `experiment detect`-style input (NAB CSV or SMD `.txt`);
/// `column` is a name or a 0-based index (default: the first numeric column).
pub fn series_from_file(path: &Path, column: Option<&str>) -> Result<ForecastSeries, LstmCmdError> {
    series_from_file_for(path, column, None)
}

/// [`series_from_file`] of one server's rows of a fleet file (a `server` column, as
/// `experiment simulate` writes; [`crate::detect::read_input_for`]).
pub fn series_from_file_for(path: &Path, column: Option<&str>, server: Option<&str>) -> Result<ForecastSeries, LstmCmdError> {
    let input = crate::detect::read_input_for(path, server)?;
    if input.columns.is_empty() {
        return Err(LstmCmdError::Other(format!("{}: no numeric column", path.display())));
    }
    let j = match column {
        None => 0,
        Some(c) => pick_columns(&input.columns, &[c.to_string()], &path.display().to_string())?[0],
    };
    let rows: Vec<Vec<f64>> = input.rows.iter().map(|r| vec![r[j]]).collect();
    let name = match server {
        Some(server) => format!("{} {server}", path.display()),
        None => path.display().to_string(),
    };
    Ok(ForecastSeries::new(&name, vec![input.columns[j].clone()], input.times(), &rows)?)
}

/// The default bundle folder of a server's metric.
pub fn model_dir(root: &Path, server: &str, metric: &str) -> PathBuf {
    root.join(format!("{server}_{metric}"))
}

/// What `experiment lstm train` says before training: the series read and the Keras-style
/// model summary.
pub fn training_preamble(series: &ForecastSeries, cfg: &LstmTraining) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "Loaded {} samples ({:.1} hours) from {}\n",
        series.len(),
        series.len() as f64 * series.interval_secs / 3600.0,
        series.name
    );
    if series.filled > 0 {
        let _ = writeln!(out, "Filled {} missing values with the previous value of their metric", series.filled);
    }
    let _ = writeln!(out, "Model Architecture:\n{:<30}{:<22}{:>10}", "Layer (type)", "Output Shape", "Param #");
    let mut total = 0;
    for (name, shape, params) in super::summary(cfg, series.columns.len()) {
        let _ = writeln!(out, "{name:<30}{shape:<22}{params:>10}");
        total += params;
    }
    let _ = write!(out, "Total params: {total}");
    out
}

/// A trained and saved bundle ([`train`]).
#[derive(Debug)]
pub struct Trained {
    /// The bundle folder.
    pub dir: PathBuf,
    /// The model, its history and speed.
    pub model: super::TrainedLstm,
    /// The bundle's metadata as saved.
    pub meta: runtime::forecast::ForecasterMeta,
}

impl std::fmt::Display for Trained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "✓ Training complete! {} epochs in {:.1} s ({:.0} samples/s). Final validation loss: {}",
            self.meta.epochs_run,
            self.model.seconds,
            self.model.samples_per_s,
            self.meta.val_loss.map_or("n/a".into(), |v| format!("{v:.4}"))
        )?;
        write!(f, "Model saved to {}", self.dir.display())
    }
}

/// Trains and saves the bundle (with its `history.csv` of losses per epoch).
pub fn train(series: &ForecastSeries, cfg: &LstmTraining, server: &str, out: &Path) -> Result<Trained, LstmCmdError> {
    let trained = super::train(series, cfg, None, server, true)?;
    let dir = model_dir(out, server, &cfg.model.target_metric);
    let meta = Forecaster::save_dir(&trained.meta, &trained.weights, &dir)?;
    let history: String = std::iter::once("epoch,loss,val_loss\n".to_string())
        .chain(trained.history.iter().map(|(e, l, v)| format!("{e},{l},{}\n", v.map_or(String::new(), |v| v.to_string()))))
        .collect();
    std::fs::write(dir.join("history.csv"), history).map_err(|e| LstmCmdError::Other(format!("{}: {e}", dir.display())))?;
    Ok(Trained { dir, model: trained, meta })
}

/// A scaling recommendation from a bundle ([`predict`]); displays as the reference's block.
#[derive(Debug, Clone)]
pub struct ScalingReport {
    /// Server.
    pub server: String,
    /// The metric forecast.
    pub metric: String,
    /// The level that needs capacity.
    pub threshold: f64,
    /// The recommendation.
    pub advice: ScalingAdvice,
    /// The chart drawn.
    pub chart: PathBuf,
}

impl std::fmt::Display for ScalingReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, u) = (&self.advice, unit(&self.metric));
        let rule = "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━";
        writeln!(
            f,
            "🔮 PREDICTIVE SCALING {}",
            if a.recommendation == runtime::forecast::Recommendation::None { "CHECK" } else { "ALERT" }
        )?;
        writeln!(f, "{rule}\nServer: {}\nMetric: {}", self.server, self.metric)?;
        writeln!(f, "Current: {:.1}{u}\nPredicted Peak: {:.1}{u}", a.current, a.predicted_peak)?;
        writeln!(f, "Time to Peak: {:.1} minutes\nThreshold: {:.1}{u}\n", a.minutes_to_peak, self.threshold)?;
        writeln!(f, "Recommendation: {}", a.recommendation)?;
        if a.scale_up_percent > 0 {
            writeln!(f, "Scale Up: {}% (to {}% capacity)", a.scale_up_percent, 100 + a.scale_up_percent)?;
        }
        write!(f, "{rule}\n\nVisualization saved to: {}", self.chart.display())
    }
}

/// Loads the bundle, forecasts from the latest window and draws the chart. `threshold`: the
/// level that needs capacity (default 80 for percentages, else the 95th percentile of the
/// history).
pub fn predict(
    series: &ForecastSeries,
    dir: &Path,
    server: &str,
    threshold: Option<f64>,
    chart_dir: &Path,
) -> Result<ScalingReport, LstmCmdError> {
    let fc = Forecaster::load_dir(dir)?;
    let cfg = &fc.meta.config;
    let d = series.columns.len();
    let t = cfg.lookback_window;
    if series.len() < t {
        return Err(LstmCmdError::Other(format!("{}: {} rows, the model needs a lookback of {t}", series.name, series.len())));
    }
    let window = &series.values[(series.len() - t) * d..];
    let forecast = fc.forecast(window)?;
    let history = series.target();
    let current = *history.last().expect("rows");
    let threshold = threshold.unwrap_or_else(|| default_threshold(&cfg.target_metric, &history));
    let advice = scaling_advice(current, &forecast, series.interval_secs, threshold, 10.0);
    std::fs::create_dir_all(chart_dir).map_err(|e| LstmCmdError::Other(format!("{}: {e}", chart_dir.display())))?;
    let path = chart_dir.join(format!("{server}_{}_prediction.png", cfg.target_metric));
    let shown = history.len().min(3 * t);
    crate::charts::forecast_chart(
        &path,
        &format!("{server} {}: {} steps ahead", cfg.target_metric, cfg.forecast_horizon),
        &history[history.len() - shown..],
        &forecast,
        threshold,
    )?;
    Ok(ScalingReport { server: server.to_string(), metric: cfg.target_metric.clone(), threshold, advice, chart: path })
}

fn unit(metric: &str) -> &'static str {
    if metric.contains("usage") || metric.contains("percent") { "%" } else { "" }
}

/// `experiment bench lstm`: training speed (windows/s through forward, backward and Adam) and
/// batch-1 inference latency of the served module, for the reference architecture.
pub fn bench(batches: usize, d_in: usize, engine: Engine) -> Result<serde_json::Value, LstmCmdError> {
    let cfg = LstmTraining {
        model: LstmConfig { target_metric: "m0".into(), ..LstmConfig::default() },
        epochs: 1,
        validation_split: 0.0,
        patience: 0,
        engine,
        max_train_windows: 32 * batches,
        ..LstmTraining::default()
    };
    let rows_n = cfg.model.lookback_window + cfg.model.forecast_horizon + 32 * batches;
    let rows: Vec<Vec<f64>> = (0..rows_n)
        .map(|i| (0..d_in).map(|j| 50.0 + 20.0 * ((i as f64) / 40.0 + j as f64).sin() + ((i * 31 + j) % 7) as f64).collect())
        .collect();
    let columns: Vec<String> = (0..d_in).map(|j| format!("m{j}")).collect();
    let series = ForecastSeries::new("bench", columns, (0..rows_n as i64).map(|i| i * 10_000).collect(), &rows)?;
    // Warm-up (allocator, thread pool), then the measured run.
    let warm = LstmTraining { max_train_windows: 32, ..cfg.clone() };
    super::train(&series, &warm, None, "bench", false)?;
    let trained = super::train(&series, &cfg, None, "bench", false)?;
    let fc = super::to_forecaster(&trained);
    let window = &series.values[..cfg.model.lookback_window * d_in];
    fc.forecast(window)?;
    let reps = 20;
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        fc.forecast(window)?;
    }
    let infer_ms = t0.elapsed().as_secs_f64() * 1000.0 / reps as f64;
    let x: Vec<f32> = window.iter().map(|v| *v as f32).collect();
    let shape = super::kernel::Shape { steps: cfg.model.lookback_window, loss_steps: 1 };
    let t1 = std::time::Instant::now();
    for _ in 0..reps {
        super::kernel::predict(&trained.weights, &x, 1, shape);
    }
    let fused_ms = t1.elapsed().as_secs_f64() * 1000.0 / reps as f64;
    let batch256: Vec<&[f64]> = (0..256).map(|_| window).collect();
    let t2 = std::time::Instant::now();
    fc.forecast_batch(&batch256)?;
    let infer256_ms = t2.elapsed().as_secs_f64() * 1000.0;
    Ok(json!({
        "bench": "lstm",
        "engine": format!("{engine:?}").to_lowercase(),
        "architecture": format!("{}x{} -> LSTM {:?} -> dense {} per step", cfg.model.lookback_window, d_in, cfg.model.lstm_units, cfg.model.forecast_horizon),
        "batch_size": cfg.batch_size,
        "threads": rayon::current_num_threads(),
        "train_samples": 32 * batches,
        "train_seconds": trained.seconds,
        "train_samples_per_s": trained.samples_per_s,
        "infer_batch1_ms": infer_ms,
        "infer_batch1_ms_fused_kernel": fused_ms,
        "infer_batch256_ms": infer256_ms,
        "serving_backend": "burn ndarray (no autodiff)",
    }))
}
