//! `experiment`: the workbench CLI (a thin layer over the `workbench` library).

use runtime::registry::Registry;
use std::path::PathBuf;
use workbench::promote;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use runtime::collector::simulate::SimConfig;
use runtime::features::FeatureSpec;
use workbench::clean::{CleanConfig, clean};
use workbench::frames::{self, nab::NabCorpus, smd::SmdMachine};

#[derive(Parser, Debug)]
#[command(
    name = "experiment",
    version,
    about = "AIOps workbench: load metric history, simulate fleets, detect and evaluate anomalies (NAB, SMD, simulator at alert level), sweep and track (MLflow), forecast, promote models, benchmark",
    after_help = "Environment (each also a flag): AIOPS_DATASETS (--datasets: folder of nab/ and smd/; default ../shared/datasets), AIOPS_REGISTRY (--to / --registry of promote, models, rollback), MLFLOW_TRACKING_URI (--mlflow: MLflow server for sweep and promote)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Folder of the labelled datasets (nab/, smd/); default ../shared/datasets.
    #[arg(long, global = true, env = "AIOPS_DATASETS", value_name = "DIR")]
    datasets: Option<PathBuf>,
    /// MLflow tracking server (http://HOST:PORT) for sweep and promote; unset: tracking stays local.
    #[arg(long, global = true, env = "MLFLOW_TRACKING_URI", value_name = "URI", hide_env_values = true)]
    mlflow: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate a fleet with labelled incidents (Parquet or CSV + labels.csv).
    Simulate(SimulateArgs),
    /// Load metric history, clean it, build the feature matrix and write it (the main job today).
    Features(FeaturesArgs),
    /// Load a source and report its shape and quirks.
    Load {
        /// `nab:<category/file.csv>`, `smd:<machine>`, or a file path.
        source: String,
    },
    /// Score every row of a file with an online, causal detector.
    Detect(DetectArgs),
    /// Evaluate a detector on the labelled datasets: NAB score (3 profiles), AUC, F1, MTTD, FP/day.
    Evaluate(EvaluateArgs),
    /// Run a sweep (default: experiments/default.toml on the shipped data), track every trial
    /// locally and print the leaderboard.
    Sweep(SweepArgs),
    /// Publish a tracked trial as the next version of a model in a registry and move an alias
    /// to it (compare-and-swap: a concurrent promotion never corrupts it).
    Promote(PromoteArgs),
    /// MLflow tracking (MLFLOW_TRACKING_URI).
    Mlflow {
        #[command(subcommand)]
        which: MlflowCmd,
    },
    /// The model registry: list versions and aliases.
    Models {
        #[command(subcommand)]
        which: ModelsCmd,
    },
    /// Move an alias back to the version it pointed to before (or to `--to VERSION`).
    Rollback(RollbackArgs),
    /// LSTM forecaster: train, predict (predictive scaling), evaluate against baselines.
    Lstm {
        #[command(subcommand)]
        which: LstmCmd,
    },
    /// Statistical forecasters (seasonal naive, moving averages and medians, seasonal mean and
    /// median, SES, Theta, MSTL) and `auto`, their validation-weighted combination with conformal
    /// intervals.
    Forecast {
        #[command(subcommand)]
        which: ForecastCmd,
    },
    /// Benchmarks (run in release mode); one JSON line each.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
}

#[derive(clap::Args, Debug)]
struct SimulateArgs {
    /// Number of servers.
    #[arg(long, default_value_t = 5)]
    servers: usize,
    /// Days of history.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// Sampling interval.
    #[arg(long, default_value_t = 10)]
    interval_secs: u32,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Expected incidents per server-day.
    #[arg(long, default_value_t = 2.0)]
    incidents_per_day: f64,
    /// Leave out the normal events that fool naive detectors (restarts, the daily batch job,
    /// growth, counter resets, missing samples and gaps).
    #[arg(long)]
    no_confounders: bool,
    /// Output folder.
    #[arg(long, default_value = "datasets/sim")]
    out: PathBuf,
    /// File format of the metrics.
    #[arg(long, value_enum, default_value_t = DataFormat::Parquet)]
    format: DataFormat,
}

/// Metrics file formats `simulate` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DataFormat {
    /// Apache Parquet (what the workbench reads fastest).
    Parquet,
    /// CSV with a `timestamp` column.
    Csv,
}

#[derive(clap::Args, Debug)]
struct FeaturesArgs {
    /// Input: a metrics file (.parquet/.csv). Default: the shipped simulator dataset.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Feature spec TOML (default: the 47-column reference family).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Resample interval (default: keep timestamps).
    #[arg(long)]
    interval_secs: Option<u32>,
    /// Output Parquet file.
    #[arg(long, default_value = "runs/features.parquet")]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
struct DetectArgs {
    /// Input: CSV with `timestamp` (NAB) or headerless numeric text (SMD .txt).
    #[arg(long)]
    input: PathBuf,
    /// Output CSV: `timestamp|index,anomaly_score`.
    #[arg(long)]
    output: PathBuf,
    /// Detector TOML (`kind = "context_tail" | "fleet" | "knn" | …` and its fields). Default:
    /// `knn` with --train, else `fleet` for several metric columns, `context_tail` for one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Learn from this file first (e.g. SMD train split); its rows are not scored.
    #[arg(long)]
    train: Option<PathBuf>,
    /// The server whose rows to score (and to learn from, with --train), in a fleet file (a
    /// `server` column, as `experiment simulate` writes); required when the file holds several.
    #[arg(long)]
    server: Option<String>,
}

#[derive(clap::Args, Debug)]
struct EvaluateArgs {
    /// Detector TOML (default: `context_tail` on NAB; `knn` on SMD, which has a training split; `fleet` on the simulator).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Shorthand for a detector with default settings (any `kind`).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(workbench::detectors::AnyDetector::KINDS))]
    detector: Option<String>,
    /// Only NAB.
    #[arg(long)]
    nab: bool,
    /// Only SMD.
    #[arg(long)]
    smd: bool,
    /// Only the simulator incidents (folder with metrics.parquet + labels.csv; default: shipped).
    #[arg(long, num_args = 0..=1, default_missing_value = "shipped")]
    sim: Option<PathBuf>,
    /// Write report.md and charts into this folder.
    #[arg(long = "report")]
    report_dir: Option<PathBuf>,
    /// Alert threshold for the simulator evaluation.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Score another detector's NAB results instead of running one: a folder in NAB's
    /// `results/<detector>/` layout (`<category>/<detector>_<file>.csv` with `timestamp` and
    /// `anomaly_score` columns), e.g. $AIOPS_DATASETS/nab-results/numenta. Implies --nab.
    #[arg(long, conflicts_with_all = ["config", "detector", "smd", "sim"])]
    scores: Option<PathBuf>,
    /// Write the detector's per-row NAB scores into this folder, in NAB's results layout
    /// (`<category>/<detector>_<file>.csv`), for NAB's own scorer or a later `--scores`.
    #[arg(long, conflicts_with = "scores")]
    write_scores: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct SweepArgs {
    /// Sweep spec (TOML).
    spec: Option<PathBuf>,
    /// Skip trials already recorded in the sweep folder.
    #[arg(long)]
    resume: bool,
    /// Tracking root.
    #[arg(long, default_value = "runs/sweeps")]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
struct PromoteArgs {
    /// Trial id from a sweep leaderboard (a unique prefix of ≥ 6 characters), SWEEP/ID, or a trial folder.
    run_id: String,
    /// Registry: file://DIR (default `file://models`) or s3://BUCKET/PREFIX.
    #[arg(long, env = "AIOPS_REGISTRY")]
    to: Option<String>,
    /// Alias to move.
    #[arg(long, default_value = "champion")]
    alias: String,
    /// Registered model name (default: `anomaly-detector` for a sweep trial, `forecaster` for a
    /// forecaster run).
    #[arg(long)]
    model: Option<String>,
    /// Tracking root of the sweeps (forecaster runs are looked up in its sibling `forecasts`).
    #[arg(long, default_value = "runs/sweeps")]
    runs: PathBuf,
}

#[derive(clap::Args, Debug)]
struct RollbackArgs {
    /// Registry (default `file://models`).
    #[arg(long, env = "AIOPS_REGISTRY")]
    registry: Option<String>,
    /// Model.
    #[arg(long, default_value = "anomaly-detector")]
    model: String,
    /// Alias.
    #[arg(long, default_value = "champion")]
    alias: String,
    /// Version to point at (default: the previous one).
    #[arg(long)]
    to: Option<u64>,
}

/// Where a server's metric history comes from (see `workbench::lstm::cmd::load_series`).
#[derive(clap::Args, Debug)]
struct SeriesArgs {
    /// Server.
    #[arg(long, default_value = "web-server-01")]
    server: String,
    /// Metric to forecast.
    #[arg(long, default_value = "cpu_usage")]
    metric: String,
    /// Extra input metrics (comma-separated; default: those of the config).
    #[arg(long, value_delimiter = ',')]
    inputs: Vec<String>,
    /// `sim` (shipped simulator data), a metrics file, `nab:<category/file.csv>`, `smd:<machine>` or `influxdb`.
    #[arg(long, default_value = "sim")]
    source: String,
    /// Hours of history to read from InfluxDB.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
}

#[derive(Subcommand, Debug)]
enum LstmCmd {
    /// Train on a server's metric history and save the bundle the runtime serves.
    Train {
        #[command(flatten)]
        series: SeriesArgs,
        /// LSTM config TOML (LOOKBACK_WINDOW, FORECAST_HORIZON, LSTM_UNITS, DROPOUT_RATE, EPOCHS, BATCH_SIZE, ...).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Bundle root; the bundle goes to OUT/SERVER_METRIC/.
        #[arg(long, default_value = "models/lstm")]
        out: PathBuf,
    },
    /// Forecast from the latest window: the predictive-scaling block and a chart.
    Predict {
        #[command(flatten)]
        series: SeriesArgs,
        /// Bundle root (as for train) or a bundle folder.
        #[arg(long, default_value = "models/lstm")]
        models: PathBuf,
        /// Level that needs capacity (default: 80 for *_usage metrics, else the 95th percentile).
        #[arg(long)]
        threshold: Option<f64>,
        /// Chart folder.
        #[arg(long, default_value = "predictions")]
        charts: PathBuf,
    },
    /// Train on the first 70 % of a series and compare forecasts over the last 30 % with baselines (one JSON line).
    Evaluate {
        #[command(flatten)]
        eval: ForecastEvalArgs,
        /// LSTM config TOML.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The series and protocol of a forecast evaluation (`lstm evaluate`, `forecast evaluate`).
#[derive(clap::Args, Debug)]
struct ForecastEvalArgs {
    /// NAB-style CSV (timestamp + columns) or SMD headerless .txt.
    #[arg(long)]
    input: PathBuf,
    /// Column name or 0-based index (default: the first).
    #[arg(long)]
    column: Option<String>,
    /// The server whose series to read, in a fleet file (a `server` column, as `experiment
    /// simulate` writes); required when the file holds several.
    #[arg(long)]
    server: Option<String>,
    /// Fraction of rows used for training (fitting).
    #[arg(long, default_value_t = 0.7)]
    train_fraction: f64,
    /// Most forecast origins evaluated (evenly spaced).
    #[arg(long, default_value_t = 400)]
    max_origins: usize,
    /// Seasonal-naive baseline period in steps (default: one day).
    #[arg(long)]
    season_steps: Option<usize>,
    /// `forecast evaluate`: refit `auto` on all history before every N-th origin, as the
    /// runtime refits at each prediction (0: fit once on the first part).
    #[arg(long, default_value_t = 0)]
    refit_every: usize,
    /// `forecast evaluate`: count steps in rows even where rows go missing (by default they are
    /// cells of time there, as the runtime buckets live samples).
    #[arg(long)]
    rows: bool,
}

/// `forecast train`: the series and the forecaster the runtime will fit per server.
#[derive(clap::Args, Debug)]
struct ForecastTrainArgs {
    /// NAB-style CSV (timestamp + columns) or SMD headerless .txt.
    #[arg(long)]
    input: PathBuf,
    /// Column name or 0-based index (default: the first).
    #[arg(long)]
    column: Option<String>,
    /// The server whose series to read, in a fleet file (a `server` column); required when the
    /// file holds several.
    #[arg(long)]
    server: Option<String>,
    /// Forecaster settings TOML (fields of `ForecasterParams`; default: the built-in ones).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The live metric the runtime forecasts with it (default: the column's name).
    #[arg(long)]
    metric: Option<String>,
    /// How far ahead, minutes.
    #[arg(long, default_value_t = 45.0)]
    horizon_minutes: f64,
    /// History the runtime reads and fits on, hours.
    #[arg(long, default_value_t = 168.0)]
    history_hours: f64,
    /// Row spacing the runtime buckets samples to, seconds (default: the input's).
    #[arg(long)]
    interval_secs: Option<f64>,
    /// The forecast the scaling decision reads.
    #[arg(long, value_enum, default_value_t = runtime::predict::Band::Probability)]
    band: runtime::predict::Band,
    /// Run name (default: the input file's name, and the server's with --server).
    #[arg(long)]
    name: Option<String>,
    /// Tracking root of forecaster runs.
    #[arg(long, default_value = "runs/forecasts")]
    runs: PathBuf,
}

#[derive(Subcommand, Debug)]
enum ForecastCmd {
    /// Evaluate the statistical `auto` forecaster on a series (as `evaluate`) and track the run
    /// (`runs/forecasts/<name>/<id>/`, and MLflow with MLFLOW_TRACKING_URI) for `experiment
    /// promote`, which publishes it as a forecaster bundle the runtime serves with
    /// `[forecast] model = "registry"`.
    Train(ForecastTrainArgs),
    /// A grid over the forecaster's settings scored on every series of a corpus (NAB
    /// categories, SMD columns), ranked, with the leave-one-series-out figure.
    Sweep {
        /// Spec (TOML; default: experiments/forecast/sweep.toml, built in).
        spec: Option<PathBuf>,
        /// Tracking root.
        #[arg(long, default_value = "runs/forecast-sweeps")]
        out: PathBuf,
    },
    /// Fit `auto` on the first 70 % of a series, forecast from origins over the rest, and compare
    /// with every family member and the three naive baselines (one JSON line).
    Evaluate {
        #[command(flatten)]
        eval: ForecastEvalArgs,
        /// Forecaster settings TOML (fields of `ForecasterParams`; default: the built-in ones).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Forecast horizon, steps.
        #[arg(long, default_value_t = 180)]
        horizon: usize,
        /// Chart of the last origin (SVG or PNG): history, `auto`'s forecast with its 80 % and
        /// 95 % intervals, the actual values, the spike threshold.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum MlflowCmd {
    /// Push a sweep folder's trials not yet in MLflow (after MLflow was down during the sweep).
    Push {
        /// Sweep folder, e.g. runs/sweeps/default.
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ModelsCmd {
    /// Every version (with its aliases, source run and evaluation) of every model, or of one.
    List {
        /// Registry (default `file://models`).
        #[arg(long, env = "AIOPS_REGISTRY")]
        registry: Option<String>,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Isolation Forest fit (100 trees, 256 samples) and scoring of a 47-feature matrix.
    Iforest {
        /// Rows to score.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// LSTM training speed (reference architecture, batch 32) and batch-1 inference latency.
    Lstm {
        /// Batches of 32 windows to time.
        #[arg(long, default_value_t = 8)]
        batches: usize,
        /// Input metrics.
        #[arg(long, default_value_t = 4)]
        inputs: usize,
        /// Gradient engine: the fused kernel or burn-autodiff.
        #[arg(long, value_enum, default_value_t = workbench::lstm::Engine::Fused)]
        engine: workbench::lstm::Engine,
    },
    /// Batch feature computation over a simulated fleet.
    Features {
        /// Servers.
        #[arg(long, default_value_t = 100)]
        servers: usize,
        /// Days.
        #[arg(long, default_value_t = 7.0)]
        days: f64,
        /// Interval.
        #[arg(long, default_value_t = 10)]
        interval_secs: u32,
    },
}

fn detector_config(path: Option<&std::path::Path>, kind: Option<&str>) -> Result<workbench::detectors::AnyDetector> {
    use runtime::models::detectors::DetectorConfig;
    use workbench::detectors::AnyDetector;
    if let Some(p) = path {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let cfg = AnyDetector::from_toml_str(&text, &p.display().to_string()).context("invalid detector config")?;
        // Validate every setting now, before any input is read.
        cfg.build(1).map_err(|e| anyhow::anyhow!("invalid detector config {}: {e}", p.display()))?;
        return Ok(cfg);
    }
    match kind {
        None => Ok(DetectorConfig::default().into()),
        Some(k) => AnyDetector::default_for(k).map_err(|e| anyhow::anyhow!("--detector {e}")),
    }
}

/// Refuse to write `output` over `input` (the same file, however it is spelled): the input
/// would be lost.
fn refuse_overwrite(input: &std::path::Path, output: &std::path::Path, flag: &str) -> Result<()> {
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(output)) {
        (Ok(a), Ok(b)) => a == b,
        _ => input == output,
    };
    if same {
        bail!("{flag} {} is the input file: choose another path (the input would be overwritten)", output.display());
    }
    Ok(())
}

fn lstm_config(path: Option<&std::path::Path>) -> Result<workbench::lstm::LstmTraining> {
    Ok(match path {
        Some(p) => workbench::lstm::LstmTraining::from_file(p)?,
        None => workbench::lstm::LstmTraining::default(),
    })
}

fn lstm_command(which: LstmCmd) -> Result<()> {
    use workbench::lstm::cmd;
    match which {
        LstmCmd::Train { series, config, out } => {
            let mut cfg = lstm_config(config.as_deref())?;
            cfg.model.target_metric = series.metric.clone();
            if !series.inputs.is_empty() {
                cfg.model.input_metrics = series.inputs.clone();
            }
            let data = cmd::load_series(&series.source, &series.server, &cfg.model.inputs(), series.hours)?;
            println!("{}", cmd::training_preamble(&data, &cfg));
            let trained = cmd::train(&data, &cfg, &series.server, &out)?;
            println!("{trained}");
            if let Some(client) = workbench::mlflow::MlflowClient::from_env() {
                match promote::block_on(workbench::mlflow::push_lstm_bundle(&client, &trained.dir)) {
                    Ok((experiment, run)) => println!("✓ MLflow experiment {experiment}, run {run} (loss per epoch) → {}", client.uri()),
                    Err(e) => eprintln!("warning: {e}\n  the bundle is kept in {}; `experiment promote` pushes it", trained.dir.display()),
                }
            }
            println!("Publish it: experiment promote {} (model forecaster)", trained.dir.display());
        }
        LstmCmd::Predict { series, models, threshold, charts } => {
            let dir = if models.join(runtime::forecast::META_FILE).exists() {
                models
            } else {
                cmd::model_dir(&models, &series.server, &series.metric)
            };
            let meta = runtime::forecast::Forecaster::load_dir(&dir)?.meta;
            let data = cmd::load_series(&series.source, &series.server, &meta.config.inputs(), series.hours)?;
            println!("{}", cmd::predict(&data, &dir, &series.server, threshold, &charts)?);
        }
        LstmCmd::Evaluate { eval, config } => {
            let cfg = lstm_config(config.as_deref())?;
            let data = cmd::series_from_file_for(&eval.input, eval.column.as_deref(), eval.server.as_deref())?;
            let (report, _) = workbench::lstm::eval::evaluate(&data, &cfg, eval.train_fraction, eval.max_origins, eval.season_steps)?;
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    // A closed stdout (`experiment load FILE | head -1`) ends the process quietly, as it does
    // for other command-line tools, instead of a panic in `println!`.
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // The libraries read these from the environment; a flag given on the command line wins.
    // SAFETY: still single-threaded (no runtime or pool started yet).
    unsafe {
        if let Some(d) = &cli.datasets {
            std::env::set_var("AIOPS_DATASETS", d);
        }
        if let Some(m) = &cli.mlflow {
            std::env::set_var("MLFLOW_TRACKING_URI", m);
        }
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", runtime::error_line(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Promote(a) => cmd_promote(a)?,
        Command::Models { which: ModelsCmd::List { registry, model } } => cmd_models_list(registry, model)?,
        Command::Rollback(a) => cmd_rollback(a)?,
        Command::Simulate(a) => cmd_simulate(a)?,
        Command::Features(a) => cmd_features(a)?,
        Command::Load { source } => cmd_load(source)?,
        Command::Detect(a) => cmd_detect(a)?,
        Command::Evaluate(a) => cmd_evaluate(a)?,
        Command::Sweep(a) => cmd_sweep(a)?,
        Command::Mlflow { which: MlflowCmd::Push { dir } } => cmd_mlflow_push(dir)?,
        Command::Bench { which: BenchCmd::Iforest { rows, threads } } => {
            println!("{}", workbench::bench::iforest(rows, threads)?);
        }
        Command::Bench { which: BenchCmd::Lstm { batches, inputs, engine } } => {
            println!("{}", workbench::lstm::cmd::bench(batches, inputs, engine)?);
        }
        Command::Forecast { which: ForecastCmd::Evaluate { eval, config, horizon, chart } } => {
            cmd_forecast_evaluate(eval, config, horizon, chart.as_deref())?
        }
        Command::Forecast { which: ForecastCmd::Train(a) } => cmd_forecast_train(a)?,
        Command::Forecast { which: ForecastCmd::Sweep { spec, out } } => cmd_forecast_sweep(spec, &out)?,
        Command::Lstm { which } => lstm_command(which)?,
        Command::Bench { which: BenchCmd::Features { servers, days, interval_secs } } => {
            println!("{}", workbench::bench::features(servers, days, interval_secs)?);
        }
    }
    Ok(())
}

fn cmd_models_list(registry: Option<String>, model: Option<String>) -> Result<()> {
    let uri = registry.unwrap_or_else(promote::default_registry);
    let reg = Registry::open(&uri)?;
    let models = match model {
        Some(m) => vec![m],
        None => promote::block_on(reg.models())?,
    };
    println!("{:<20} {:>7}  {:<16} {:<16} {:<26} {:<22} evaluation", "model", "version", "aliases", "kind", "source run", "created");
    for m in &models {
        for v in promote::block_on(reg.list(m))? {
            let figures: Vec<String> = v.manifest.evaluation.iter().map(|(k, x)| format!("{k}={x:.3}")).collect();
            println!(
                "{:<20} {:>7}  {:<16} {:<16} {:<26} {:<22} {}",
                m,
                v.version,
                v.aliases.join(","),
                v.manifest.kind,
                v.manifest.source_run,
                v.manifest.created_at,
                figures.join(" ")
            );
        }
    }
    if models.is_empty() {
        println!("(no models in {uri})");
    }
    Ok(())
}

fn cmd_load(source: String) -> Result<()> {
    if let Some(key) = source.strip_prefix("nab:") {
        let corpus = NabCorpus::open(&frames::datasets_root().join("nab"))?;
        let s = corpus.load(key)?;
        println!(
            "{}\n{} windows, {} labels, probationary rows {}\nquirks: {:?}",
            s.frame,
            s.windows.len(),
            s.labels.len(),
            s.probationary_rows(),
            s.quirks
        );
    } else if let Some(m) = source.strip_prefix("smd:") {
        let s = SmdMachine::load(&frames::datasets_root().join("smd"), m)?;
        let pos = s.test_labels.iter().filter(|l| **l == 1).count();
        println!(
            "{}: train {:?}, test {:?}, {} anomalous test rows, {} segments",
            s.name,
            s.train.shape(),
            s.test.shape(),
            pos,
            s.segments.len()
        );
    } else {
        let df = frames::read_metrics_file(std::path::Path::new(&source))?;
        println!("{df}");
    }
    Ok(())
}

fn cmd_mlflow_push(dir: PathBuf) -> Result<()> {
    let client = workbench::mlflow::MlflowClient::from_env().context("set MLFLOW_TRACKING_URI to the MLflow server (http://HOST:PORT)")?;
    let r = promote::block_on(workbench::mlflow::push_sweep(&client, &dir))?;
    print_pushed(&client, &r);
    Ok(())
}

/// The line that says a sweep reached MLflow.
fn print_pushed(client: &workbench::mlflow::MlflowClient, r: &workbench::mlflow::PushReport) {
    println!(
        "✓ MLflow {}: experiment {}, sweep run {} ({} trials pushed, {} already there)",
        client.uri(),
        r.experiment_id,
        r.parent_run_id,
        r.pushed,
        r.already
    );
}

fn cmd_forecast_evaluate(eval: ForecastEvalArgs, config: Option<PathBuf>, horizon: usize, chart: Option<&std::path::Path>) -> Result<()> {
    let ForecastEvalArgs { input, column, server, train_fraction, max_origins, season_steps, refit_every, rows } = eval;
    if !(train_fraction > 0.0 && train_fraction < 1.0) {
        bail!("--train-fraction {train_fraction}: must be in (0, 1)");
    }
    let params = forecaster_params(config.as_deref())?;
    let data = workbench::lstm::cmd::series_from_file_for(&input, column.as_deref(), server.as_deref())?;
    let protocol = workbench::forecasting::EvalProtocol {
        horizon,
        train_fraction,
        max_origins,
        season_steps,
        refit_every,
        time_grid: !rows,
        ..Default::default()
    };
    let report = workbench::forecasting::evaluate(&data, &params, &protocol).with_context(|| input.display().to_string())?;
    if let Some(path) = chart {
        workbench::forecasting::last_origin_chart(&data, &params, &protocol, path).with_context(|| path.display().to_string())?;
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn forecaster_params(config: Option<&std::path::Path>) -> Result<runtime::models::forecasters::ForecasterParams> {
    let params: runtime::models::forecasters::ForecasterParams = match config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("invalid forecaster config {}", p.display()))?
        }
        None => Default::default(),
    };
    params
        .validate()
        .with_context(|| format!("invalid forecaster config {}", config.unwrap_or(std::path::Path::new("(defaults)")).display()))?;
    Ok(params)
}

fn cmd_forecast_train(a: ForecastTrainArgs) -> Result<()> {
    let params = forecaster_params(a.config.as_deref())?;
    let data = workbench::lstm::cmd::series_from_file_for(&a.input, a.column.as_deref(), a.server.as_deref())?;
    let forecaster = runtime::predict::StatisticalForecast {
        metric: a.metric.unwrap_or_else(|| data.columns[0].clone()),
        interval_secs: a.interval_secs.unwrap_or(data.interval_secs),
        horizon_minutes: a.horizon_minutes,
        history_hours: a.history_hours,
        band: a.band,
        params,
    };
    // The file's name, and the server's for one server of a fleet file.
    let name = a.name.unwrap_or_else(|| {
        let stem = a.input.file_stem().map_or("series".into(), |s| s.to_string_lossy().to_string());
        match &a.server {
            Some(server) => format!("{stem}_{server}"),
            None => stem,
        }
    });
    let t = workbench::forecasting::train(&data, &a.input, forecaster, &a.runs, &name).with_context(|| a.input.display().to_string())?;
    let figures: Vec<String> = t.metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    println!("✓ forecaster run {} ({} of {}, {} rows): {}", t.id, t.run.column, t.run.input, t.run.rows, figures.join(", "));
    println!("✓ tracked in {}; publish it: experiment promote {}", t.dir.display(), t.dir.display());
    if let Some(client) = workbench::mlflow::MlflowClient::from_env() {
        match promote::block_on(workbench::mlflow::push_forecast_run(&client, &t.dir)) {
            Ok((experiment, run)) => println!("✓ MLflow experiment {experiment}, run {run} → {}", client.uri()),
            Err(e) => eprintln!("warning: {e}\n  the run is kept in {}; `experiment promote` pushes it", t.dir.display()),
        }
    }
    Ok(())
}

fn cmd_forecast_sweep(spec: Option<PathBuf>, out: &std::path::Path) -> Result<()> {
    use workbench::forecast_sweep as fs;
    let (text, origin) = match spec {
        Some(p) => (std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?, p.display().to_string()),
        None => (fs::DEFAULT_SPEC.to_string(), "experiments/forecast/sweep.toml (built in)".to_string()),
    };
    let spec = fs::ForecastSweepSpec::parse(&text, &origin)?;
    let corpus = spec.series(&frames::datasets_root())?;
    let dir = out.join(&spec.name);
    println!(
        "Forecast sweep {}: {} trials × {} series, horizon {} → {}",
        spec.name,
        spec.trials()?.len(),
        corpus.len(),
        spec.horizon,
        dir.display()
    );
    let t = std::time::Instant::now();
    let (results, loo) = fs::run(&spec, &text, &corpus, &dir)?;
    print!("{}", fs::leaderboard(&spec, &results, 10, false));
    println!("{}", fs::loo_line(&loo));
    println!("✓ {} trials in {:.1} s; leaderboard → {}", results.len(), t.elapsed().as_secs_f64(), dir.join("leaderboard.md").display());
    Ok(())
}

fn cmd_simulate(args_simulate: SimulateArgs) -> Result<()> {
    let SimulateArgs { servers, days, interval_secs, seed, incidents_per_day, no_confounders, out, format } = args_simulate;
    let cfg = SimConfig { servers, interval_secs, seed, incidents_per_day, confounders: !no_confounders, ..SimConfig::default() };
    let (mut df, incidents, events) = workbench::simulate::simulate_with_events(&cfg, days, true)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let data = out.join(if format == DataFormat::Csv { "metrics.csv" } else { "metrics.parquet" });
    match format {
        DataFormat::Parquet => frames::write_parquet(&mut df, &data)?,
        DataFormat::Csv => frames::write_csv(&mut df, &data)?,
    }
    workbench::simulate::write_labels(&incidents, &out.join("labels.csv"))?;
    println!("✓ {} rows ({} servers × {} rows) → {}", df.height(), servers, df.height() / servers.max(1), data.display());
    println!("✓ {} incidents → {}", incidents.len(), out.join("labels.csv").display());
    workbench::simulate::write_events(&events, &out.join("events.csv"))?;
    println!("✓ {} normal events (restarts, batch jobs, counter resets, gaps) → {}", events.len(), out.join("events.csv").display());
    Ok(())
}

fn cmd_features(args_features: FeaturesArgs) -> Result<()> {
    let FeaturesArgs { input, spec, interval_secs, out } = args_features;
    let input = match input {
        Some(i) => i,
        None => frames::shipped_sim_dir()?.join("metrics.parquet"),
    };
    refuse_overwrite(&input, &out, "--out")?;
    let df = frames::read_metrics_file(&input)?;
    println!("Loaded {} rows × {} metrics from {}", df.height(), frames::metric_columns(&df).len(), input.display());
    let cfg = CleanConfig { interval_secs, ..CleanConfig::default() };
    let (df, report) = clean(&df, &cfg)?;
    println!("Cleaning: {report}");
    let spec = match spec {
        Some(p) => FeatureSpec::from_toml_file(&p)?,
        None => {
            let metrics = frames::metric_columns(&df);
            if metrics.iter().map(String::as_str).eq(runtime::BASE_METRICS) {
                FeatureSpec::default()
            } else {
                FeatureSpec::for_metrics(&metrics)
            }
        }
    };
    let t = std::time::Instant::now();
    let mut feats = workbench::features::batch_features(&df, &spec)?;
    println!("Features: {} rows × {} columns in {:.2} s", feats.height(), spec.column_names().len(), t.elapsed().as_secs_f64());
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    frames::write_parquet(&mut feats, &out)?;
    println!("{}", feats.head(Some(5)));
    println!("✓ feature matrix → {}", out.display());
    Ok(())
}

fn cmd_detect(args_detect: DetectArgs) -> Result<()> {
    let DetectArgs { input, output, config, train, server } = args_detect;
    // Settings are checked before any input is read.
    let configured = config.as_deref().map(|p| detector_config(Some(p), None)).transpose()?;
    refuse_overwrite(&input, &output, "--output")?;
    // Each server of a fleet file on its own rows (as the runtime scores them), or the one asked for.
    let parts = match server.as_deref() {
        Some(name) => vec![(Some(name.to_string()), workbench::detect::read_input_for(&input, Some(name))?)],
        None => workbench::detect::read_fleet_input(&input)?,
    };
    let cfg = match configured {
        Some(cfg) => cfg,
        None => {
            let (cfg, why) = workbench::detect::default_detector(train.is_some(), parts[0].1.columns.len());
            eprintln!("detector: {} ({why}; --config FILE to choose)", cfg.name());
            cfg
        }
    };
    // The training file: the same server's rows when it is a fleet file too, else all of it.
    let train = train.map(|t| workbench::detect::read_fleet_input(&t).map(|groups| (t, groups))).transpose()?;
    let t = std::time::Instant::now();
    let mut detected = Vec::with_capacity(parts.len());
    for (name, data) in &parts {
        let learn =
            match &train {
                None => None,
                Some((_, groups)) if groups.len() == 1 => Some(&groups[0].1),
                Some((path, groups)) => Some(groups.iter().find(|(n, _)| n == name).map(|(_, g)| g).with_context(|| {
                    format!("{}: no rows for server `{}` to learn from", path.display(), name.as_deref().unwrap_or(""))
                })?),
            };
        let det = workbench::detect::detect_rows(&cfg, data, learn)?;
        for w in &det.warnings {
            eprintln!(
                "warning: {}{}: {w}",
                input.display(),
                name.as_ref().filter(|_| parts.len() > 1).map_or(String::new(), |n| format!(" {n}"))
            );
        }
        detected.push(det);
    }
    let decisions = runtime::decisions::DecisionConfig::default();
    let rows: usize = detected.iter().map(|d| d.scores.len()).sum();
    if parts.len() > 1 {
        let servers: Vec<(&str, &workbench::detect::DetectInput, &workbench::detect::Detection)> =
            parts.iter().zip(&detected).map(|((n, d), det)| (n.as_deref().unwrap_or(""), d, det)).collect();
        workbench::detect::write_fleet_scores(&output, &servers, &decisions)?;
    } else {
        workbench::detect::write_scores(&output, &parts[0].1, &detected[0].scores, Some((&detected[0], &decisions)))?;
    }
    let each = if parts.len() > 1 { format!(" ({} servers, each on its own rows)", parts.len()) } else { String::new() };
    eprintln!("✓ {rows} rows scored by {}{each} in {:.2} s → {}", cfg.name(), t.elapsed().as_secs_f64(), output.display());
    Ok(())
}

fn cmd_evaluate(args_evaluate: EvaluateArgs) -> Result<()> {
    let a = args_evaluate;
    let cfg = detector_config(a.config.as_deref(), a.detector.as_deref())?;
    let any = a.nab || a.smd || a.sim.is_some() || a.scores.is_some();
    let (do_nab, do_smd, do_sim) = if any { (a.nab, a.smd, a.sim.is_some()) } else { (true, true, true) };
    // A detector named on the command line runs everywhere; else each corpus gets its default.
    let configured = a.config.is_some() || a.detector.is_some();
    let mut doc = serde_json::json!({ "detector": cfg });
    let nab_out = if do_nab || a.scores.is_some() { Some(evaluate_nab_step(&a, &cfg, &mut doc)?) } else { None };
    let smd_out = if do_smd {
        let (smd_cfg, why) = if configured { (cfg.clone(), "as configured") } else { workbench::detect::default_detector(true, 0) };
        if do_nab || do_sim {
            doc["smd_detector"] = serde_json::to_value(&smd_cfg)?;
        }
        let step = step_spinner("SMD: fitting on each machine's train split, scoring its test split");
        let results = workbench::evaluation::report::evaluate_smd(&frames::datasets_root().join("smd"), &smd_cfg)?;
        step.finish_and_clear();
        if !a.json {
            print_smd_results(&results, smd_cfg.name(), why);
        }
        doc["smd"] = serde_json::to_value(&results)?;
        Some((smd_cfg.name(), results))
    } else {
        None
    };
    let sim_out = if do_sim {
        let sim_cfg = if configured { cfg.clone() } else { workbench::detect::default_detector(false, runtime::BASE_METRICS.len()).0 };
        if do_nab || do_smd {
            doc["sim_detector"] = serde_json::to_value(&sim_cfg)?;
        }
        Some(evaluate_sim_step(&a, sim_cfg, &mut doc)?)
    } else {
        None
    };
    if let Some(dir) = &a.report_dir {
        let path = workbench::evaluation::report::write_report(
            dir,
            &cfg,
            nab_out.as_ref().map(|(r, s)| (r, s.as_slice())),
            smd_out.as_ref().map(|(name, r)| (*name, r.as_slice())),
            sim_out.as_ref().map(|(r, d, c)| (r, d.as_path(), c)),
        )?;
        eprintln!("✓ report → {} and {}", path.display(), path.with_file_name("report.html").display());
    }
    if a.json {
        println!("{doc}");
    }
    Ok(())
}

/// `experiment evaluate`'s NAB part: run the detector (or score `--scores`), write `--write-scores`,
/// print the table, record it in `doc`.
fn evaluate_nab_step(
    a: &EvaluateArgs,
    cfg: &workbench::detectors::AnyDetector,
    doc: &mut serde_json::Value,
) -> Result<(workbench::evaluation::report::NabReport, Vec<workbench::evaluation::report::ScoredSeries>)> {
    let nab_dir = frames::datasets_root().join("nab");
    let step = step_spinner("NAB: detecting and scoring every file");
    let (report, series) = match &a.scores {
        Some(dir) => workbench::evaluation::report::evaluate_nab_scores(&nab_dir, dir)?,
        None => workbench::evaluation::report::evaluate_nab(&nab_dir, cfg)?,
    };
    step.finish_and_clear();
    if a.scores.is_some() {
        doc["detector"] = serde_json::json!({ "kind": report.detector });
    }
    if let Some(dir) = &a.write_scores {
        workbench::evaluation::report::write_nab_scores(dir, &report.detector, &series)?;
        eprintln!("✓ NAB scores → {}", dir.display());
    }
    if !a.json {
        print_nab_report(&report);
    }
    for s in &series {
        for w in &s.warnings {
            eprintln!("warning: {}: {w}", s.key);
        }
    }
    doc["nab"] = serde_json::to_value(&report)?;
    Ok((report, series))
}

/// `experiment evaluate`'s simulator part: every server's scores through the runtime's alert
/// decisions at `--threshold`, the table printed, recorded in `doc`.
fn evaluate_sim_step(
    a: &EvaluateArgs,
    sim_cfg: workbench::detectors::AnyDetector,
    doc: &mut serde_json::Value,
) -> Result<(workbench::evaluation::fleet::SimReport, PathBuf, workbench::detectors::AnyDetector)> {
    let dir = match a.sim.clone().filter(|p| p.as_os_str() != "shipped") {
        Some(d) => d,
        None => frames::shipped_sim_dir()?,
    };
    let decision = runtime::decisions::DecisionConfig { threshold: a.threshold, ..Default::default() };
    let step = step_spinner("simulator: scoring every server, deciding alerts");
    let report = workbench::evaluation::fleet::evaluate_sim(&dir, &sim_cfg, &decision)?;
    step.finish_and_clear();
    if !a.json {
        println!("Simulator incidents ({}), alert level: the runtime's alert decisions", dir.display());
        print!("{}", report.render(false));
    }
    doc["sim"] = serde_json::to_value(&report)?;
    Ok((report, dir, sim_cfg))
}

fn step_spinner(message: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("template"));
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// The NAB table of `experiment evaluate`.
fn print_nab_report(report: &workbench::evaluation::report::NabReport) {
    println!("NAB ({} files, detector {}, {:.2} s)", report.files, report.detector, report.detect_seconds);
    print!("{}", report.render(false));
}

/// The SMD table of `experiment evaluate` (and each machine's warnings).
fn print_smd_results(results: &[workbench::evaluation::report::SmdResult], detector: &str, why: &str) {
    println!("SMD (fit on train, score test; detector {detector}, {why})");
    print!("{}", workbench::evaluation::report::render_smd(results, false));
    for r in results {
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.machine);
        }
    }
}

fn cmd_sweep(args_sweep: SweepArgs) -> Result<()> {
    let SweepArgs { spec, resume, out } = args_sweep;
    let (text, name) = match spec {
        Some(path) => (std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?, path.display().to_string()),
        None => (workbench::sweep::DEFAULT_SPEC.to_string(), "experiments/default.toml (built in)".to_string()),
    };
    let (spec, trials) = workbench::sweep::SweepSpec::parse(&text, &name)?;
    let dir = out.join(&spec.name);
    println!(
        "Sweep {} on {}: {} trials, objective {} ({}), {} at a time → {}",
        spec.name,
        spec.dataset,
        trials.len(),
        spec.objective,
        spec.direction,
        spec.parallelism,
        dir.display()
    );
    let t = std::time::Instant::now();
    let done = workbench::sweep::run(&spec, &text, trials, &dir, resume, workbench::sweep::stop_flag())?;
    print!("{}", workbench::sweep::leaderboard(&spec, &done, 10, false));
    println!(
        "✓ {} trials in {:.1} s; leaderboard → {} (in a browser: {})",
        done.len(),
        t.elapsed().as_secs_f64(),
        dir.join("leaderboard.md").display(),
        dir.join("report.html").display()
    );
    if let Some(client) = workbench::mlflow::MlflowClient::from_env() {
        match promote::block_on(workbench::mlflow::push_sweep(&client, &dir)) {
            Ok(r) => print_pushed(&client, &r),
            Err(e) => eprintln!(
                "warning: {e}\n  every trial is kept in {}; push it later: experiment mlflow push {}",
                dir.display(),
                dir.display()
            ),
        }
    }
    Ok(())
}

fn cmd_promote(args_promote: PromoteArgs) -> Result<()> {
    let PromoteArgs { run_id, to, alias, model, runs } = args_promote;
    let to = to.unwrap_or_else(promote::default_registry);
    let dir = promote::find_run(&runs, &run_id)?;
    let (forecast_run, lstm) = (promote::is_forecast_run(&dir), promote::is_lstm_bundle(&dir));
    let model = model.unwrap_or_else(|| if forecast_run || lstm { "forecaster" } else { "anomaly-detector" }.to_string());
    let bundle = if forecast_run {
        promote::bundle_from_forecast_run(&dir, &model)?
    } else if lstm {
        promote::bundle_from_lstm_dir(&dir, &model)?
    } else {
        promote::bundle_from_run(&dir, &model)?
    };
    let registry = Registry::open(&to)?;
    let p = promote::block_on(promote::promote(&registry, &bundle, &alias))?;
    let figures: Vec<String> = p.manifest.evaluation.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    println!("✓ {} ({}; {}) published as {} v{} → {}", p.manifest.source_run, p.manifest.kind, figures.join(", "), model, p.version, to);
    match p.previous {
        Some(prev) => println!("✓ alias {alias}: v{prev} → v{}", p.version),
        None => println!("✓ alias {alias}: → v{} (new)", p.version),
    }
    if let Some(client) = workbench::mlflow::MlflowClient::from_env() {
        let source = format!("{}/{model}/versions/{}", to.trim_end_matches('/'), p.version);
        let published = runtime::registry::Bundle { manifest: p.manifest.clone(), files: bundle.files.clone() };
        let v = promote::block_on(workbench::mlflow::register_promotion(&client, &dir, &published, &source, &alias))
            .context("the bundle is promoted; recording it in the MLflow model registry failed")?;
        println!("✓ MLflow registered model {model} version {v} (alias {alias}) → {source}");
    }
    Ok(())
}

fn cmd_rollback(args_rollback: RollbackArgs) -> Result<()> {
    let RollbackArgs { registry, model, alias, to } = args_rollback;
    let uri = registry.unwrap_or_else(promote::default_registry);
    let reg = Registry::open(&uri)?;
    let before = promote::block_on(reg.read_alias(&model, &alias))?.map(|s| s.pointer.version);
    let p = promote::block_on(reg.rollback(&model, &alias, to))?;
    println!("✓ {model} alias {alias}: v{} → v{} ({uri})", before.unwrap_or(0), p.version);
    Ok(())
}
