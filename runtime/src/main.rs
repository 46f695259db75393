//! `runtime`: the production binary: `monitor` (daemon), `once` (one tick), `replay`
//! (recorded data on a virtual clock), `check-config`, `alert test`, `collect` (the reference
//! metric collector) and, built with `--features lambda`, the AWS Lambda handler (`runtime
//! lambda`, or no arguments inside Lambda).

use std::time::Duration;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use runtime::collector::host::HostSampler;
use runtime::collector::simulate::{SimConfig, Simulator};
use runtime::decisions::Severity;
use runtime::monitor::config::RuntimeConfig;
use runtime::monitor::telemetry::Telemetry;
use runtime::monitor::{Monitor, TickReport};
use runtime::sources::influxdb::{InfluxClient, InfluxConfig};
use runtime::{BASE_METRICS, MetricSample};

#[derive(Parser, Debug)]
#[command(name = "runtime", version, about = "AIOps runtime: collect, score and alert on live metrics")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read this host's cpu/memory/network/disk (or simulated servers) and write them to InfluxDB.
    Collect(CollectArgs),
    /// Monitor continuously: a tick every `schedule.interval_secs`, alerts delivered from the
    /// outbox, `/healthz`, `/readyz` and `/metrics` on `http.listen`.
    Monitor(ConfigArg),
    /// One tick (for cron): score what arrived since the warm-up window, queue and deliver alerts.
    Once {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the tick report as JSON.
        #[arg(long)]
        json: bool,
        /// Predictive scaling instead of anomaly detection: forecast every server with the
        /// `[forecast] bundle` (or `FORECASTER_BUNDLE`) and alert SCALE_NOW / SCALE_SOON.
        #[arg(long)]
        predict: bool,
    },
    /// Run ticks on a virtual clock over recorded data (a replay file or any source's history)
    /// and deliver the alerts, as fast as the machine goes.
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        /// First tick (RFC 3339; default: the replay file's start + warm-up).
        #[arg(long)]
        from: Option<String>,
        /// Last tick (default: the replay file's end).
        #[arg(long)]
        until: Option<String>,
    },
    /// Validate the configuration (naming bad keys), then check the model alias and the source.
    CheckConfig(ConfigArg),
    /// Alert sinks.
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Serve AWS Lambda invocations (needs the `lambda` cargo feature).
    Lambda(ConfigArg),
    /// Forecast a server's metric with a trained LSTM bundle (`experiment lstm train`) or the
    /// statistical `auto` forecaster (`--model auto`, no training) and print the
    /// predictive-scaling recommendation.
    Forecast(ForecastArgs),
    /// Benchmark the statistical forecaster on one thread: fit `auto` and forecast for many
    /// synthetic series (daily cycle, noise, level shifts); prints one JSON line.
    BenchForecast(BenchForecastArgs),
    /// Benchmark monitoring ticks over a simulated fleet on one thread; prints one JSON line
    /// (tick p50/p99, rows/s, peak RSS, binary size).
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Servers (× 4 metrics = series).
    #[arg(long, default_value_t = 25_000)]
    servers: usize,
    /// Measured ticks (after the warm-up tick).
    #[arg(long, default_value_t = 20)]
    ticks: usize,
    /// Detector: `default` (the fleet default, `fleet` with its default settings), fleet, ewma,
    /// context_tail or tail_ensemble.
    #[arg(long, value_enum, default_value_t = BenchDetector::Default)]
    detector: BenchDetector,
    /// History rows of context_tail / tail_ensemble (memory grows with it).
    #[arg(long, default_value_t = 8000)]
    history_rows: usize,
    /// History read by the warm-up tick, in seconds of 10 s data.
    #[arg(long, default_value_t = 1200)]
    warmup_secs: i64,
}

/// The detectors `bench` measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BenchDetector {
    /// The fleet default (`fleet` with its default settings).
    Default,
    /// `fleet`.
    Fleet,
    /// `ewma`.
    Ewma,
    /// `context_tail` with `--history-rows`.
    ContextTail,
    /// `tail_ensemble` with `--history-rows`.
    TailEnsemble,
}

#[derive(clap::Args, Debug)]
struct BenchForecastArgs {
    /// Series fitted and forecast.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Row spacing, seconds.
    #[arg(long, default_value_t = 300.0)]
    interval_secs: f64,
    /// History per series, hours.
    #[arg(long, default_value_t = 168.0)]
    history_hours: f64,
    /// Horizon, minutes.
    #[arg(long, default_value_t = 45.0)]
    horizon_minutes: f64,
}

#[derive(clap::Args, Debug)]
struct ForecastArgs {
    /// `auto` (the statistical forecaster, fitted on the server's history) or `lstm` (the
    /// bundle); unset: `lstm` with `--bundle`, else `auto`.
    #[arg(long, env = "FORECAST_MODEL", value_enum)]
    model: Option<runtime::predict::ForecastModel>,
    /// Bundle folder (`forecaster.json` + `weights.bpk`), for `--model lstm`.
    #[arg(long, env = "FORECASTER_BUNDLE")]
    bundle: Option<PathBuf>,
    /// Metric forecast by `--model auto`.
    #[arg(long, default_value = "cpu_usage")]
    metric: String,
    /// Row spacing of `--model auto`, seconds (samples are averaged per bucket).
    #[arg(long, default_value_t = 300.0)]
    interval_secs: f64,
    /// Horizon of `--model auto`, minutes.
    #[arg(long, default_value_t = 45.0)]
    horizon_minutes: f64,
    /// History `--model auto` is fitted on, hours.
    #[arg(long, default_value_t = 168.0)]
    history_hours: f64,
    /// Server.
    #[arg(long)]
    server: String,
    /// Metrics file (CSV long/wide or line protocol); default: InfluxDB (`INFLUXDB_*`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Level that needs capacity (default: 80 for *_usage metrics, else the 95th percentile of the window).
    #[arg(long)]
    threshold: Option<f64>,
    /// Print JSON (advice and forecast) instead of the block.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ConfigArg {
    /// TOML configuration (every key optional; environment variables override).
    #[arg(long, short, env = "RUNTIME_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum AlertCommand {
    /// Send a test alert to a sink, bypassing routing (the reference's test-slack / test-full).
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// slack, pagerduty, alertmanager, webhook or all (every configured sink).
        #[arg(long, default_value = "all", value_parser = parse_sink)]
        sink: SinkChoice,
        /// Severity of the test alert.
        #[arg(long, default_value = "high", value_parser = parse_severity)]
        severity: Severity,
    },
}

/// `alert test --sink`: one sink or every configured one.
#[derive(Debug, Clone, Copy)]
enum SinkChoice {
    All,
    One(runtime::sinks::SinkKind),
}

fn parse_sink(s: &str) -> Result<SinkChoice, String> {
    if s == "all" { Ok(SinkChoice::All) } else { s.parse().map(SinkChoice::One).map_err(|e| format!("{e} or all")) }
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    serde_json::from_value(serde_json::Value::String(s.to_uppercase()))
        .map_err(|_| format!("`{s}`: use info, low, medium, high or critical"))
}

fn load_config(arg: &ConfigArg) -> Result<RuntimeConfig> {
    Ok(RuntimeConfig::load(arg.config.as_deref())?)
}

fn print_alerts(r: &TickReport) {
    for a in &r.alerts {
        println!(
            "🚨 {} {} {}: {} = {} (score {:.2}) → {}",
            runtime::format_ts(a.timestamp_ms),
            a.severity.name(),
            a.server,
            a.primary_metric,
            a.primary_value,
            a.score,
            a.dedup_key
        );
    }
    for k in &r.resolved {
        println!("✅ resolved {k}");
    }
}

async fn once(config: ConfigArg, json: bool, predict: bool) -> Result<()> {
    let cfg = load_config(&config)?;
    let timeout = Duration::from_secs(cfg.schedule.deliver_timeout_secs);
    let from_registry = predict && cfg.forecast.model() == runtime::predict::ForecastModel::Registry;
    let predictor = if predict && !from_registry {
        Some(runtime::predict::Predictor::from_config(&cfg.forecast)?.context("--predict: no forecaster for this [forecast] model")?)
    } else {
        None
    };
    let mut monitor = Monitor::new(cfg, Arc::new(Telemetry::new()))?;
    let predictor = match predictor {
        None if from_registry => Some(monitor.refresh_forecaster().await.map_err(anyhow::Error::msg)?.1),
        p => p.map(Arc::new),
    };
    if let Some(fc) = predictor {
        let advice = monitor.predict(runtime::now_ms(), &fc).await.map_err(anyhow::Error::msg)?;
        let drained = monitor.drain(timeout).await?;
        for (server, a) in &advice {
            if json {
                println!("{}", serde_json::json!({"server": server, "advice": a}));
            } else {
                println!(
                    "🔮 {server} {}: current {:.1}, predicted peak {:.1} in {:.1} min (threshold {:.1}{}) → {}",
                    fc.target_metric(),
                    a.current,
                    a.predicted_peak,
                    a.minutes_to_peak,
                    a.threshold,
                    crossing_text(a),
                    a.recommendation
                );
            }
        }
        if drained.pending > 0 {
            eprintln!("deliveries: {} pending in {} (sent by the next run)", drained.pending, monitor.outbox().dir().display());
        }
        return Ok(());
    }
    let report = monitor.tick(runtime::now_ms()).await;
    let drained = monitor.drain(timeout).await?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        print_alerts(&report);
        println!(
            "tick: model {} · {} servers · {} rows scored · {} alerts · {} resolved · {:.0} ms",
            report.model.as_deref().unwrap_or("none"),
            report.servers,
            report.rows_scored,
            report.alerts.len(),
            report.resolved.len(),
            report.duration_ms
        );
    }
    let delivered: u64 = drained.delivered.values().sum();
    if delivered > 0 || drained.pending > 0 {
        eprintln!(
            "deliveries: {delivered} sent, {} pending in {} (sent by the next run)",
            drained.pending,
            monitor.outbox().dir().display()
        );
    }
    match report.error {
        Some(e) => Err(anyhow!("tick failed: {e}")),
        None => Ok(()),
    }
}

async fn replay(config: ConfigArg, from: Option<String>, until: Option<String>) -> Result<()> {
    let cfg = load_config(&config)?;
    let warmup_ms = cfg.schedule.warmup_secs * 1000;
    let settle_ms = cfg.schedule.settle_secs * 1000;
    let timeout = Duration::from_secs(cfg.schedule.deliver_timeout_secs);
    let mut monitor = Monitor::new(cfg, Arc::new(Telemetry::new()))?;
    let span = monitor.source().span();
    let ts = |t: Option<String>, what: &str, default: Option<i64>| -> Result<i64> {
        match t {
            Some(text) => runtime::parse_ts(&text).with_context(|| format!("--{what}: `{text}` is not an RFC 3339 time")),
            None => default.with_context(|| format!("--{what} is required unless the source is a replay file")),
        }
    };
    let from = ts(from, "from", span.map(|(a, b)| (a + warmup_ms).min(b) + settle_ms))?;
    let until = ts(until, "until", span.map(|(_, b)| b + settle_ms + 1))?;
    let mut bar = Progress::new("replay", "ticks");
    let reports = monitor.replay_with_progress(from, until, |done, total| bar.update(done, total)).await;
    bar.finish();
    let drained = monitor.drain(timeout).await?;
    let (mut rows, mut alerts, mut resolved, mut errors) = (0, 0, 0, 0);
    for r in &reports {
        print_alerts(r);
        rows += r.rows_scored;
        alerts += r.alerts.len();
        resolved += r.resolved.len();
        errors += usize::from(r.error.is_some());
    }
    println!(
        "replay: {} ticks · {rows} rows scored · {alerts} alerts · {resolved} resolved · {errors} failed ticks · deliveries {} sent, {} pending",
        reports.len(),
        drained.delivered.values().sum::<u64>(),
        drained.pending
    );
    if let Some(e) = reports.iter().find_map(|r| r.error.clone()) {
        bail!("{errors} ticks failed, first: {e}");
    }
    Ok(())
}

async fn check_config(config: ConfigArg) -> Result<()> {
    let cfg = load_config(&config)?;
    println!("✓ configuration valid ({})", config.config.as_ref().map_or("defaults + environment".into(), |p| p.display().to_string()));
    println!(
        "  source: {:?} · model: {} {}/{} · every {} s · shard {}/{}",
        cfg.source.kind,
        cfg.model.registry,
        cfg.model.name,
        cfg.model.alias,
        cfg.schedule.interval_secs,
        cfg.selection.shard,
        cfg.selection.shards
    );
    let configured = cfg.sinks.configured();
    let names = |sinks: &[runtime::sinks::SinkKind], sep: &str| sinks.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(sep);
    println!(
        "  sinks configured: {}",
        if configured.is_empty() { "none (alerts are only logged)".into() } else { names(&configured, ", ") }
    );
    let router = runtime::sinks::AlertRouter::new(cfg.routing.clone(), &configured);
    for s in [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical] {
        let r = router.route(s);
        println!("  {:<8} → {}", s.name(), if r.is_empty() { "log only".to_string() } else { names(r, " + ") });
    }
    for w in cfg.warnings() {
        println!("⚠ {w}");
    }
    let telemetry = Arc::new(Telemetry::new());
    let mut monitor = Monitor::new(cfg, telemetry.clone())?;
    monitor.refresh_model(true).await;
    // Every check runs; the command fails (non-zero exit) when any did, naming each, so it can
    // gate a deploy.
    let mut failed = Vec::new();
    match (monitor.model(), telemetry.readiness().model_error) {
        (Some(m), _) => println!("✓ model {} ({} metrics: {})", m.label(), m.manifest.metrics.len(), m.manifest.metrics.join(", ")),
        (None, e) => {
            println!("✗ model: {}", e.clone().unwrap_or_default());
            failed.push("model");
        }
    }
    let metrics = monitor.model().map(|m| m.manifest.metrics.clone()).unwrap_or_else(|| vec!["cpu_usage".into()]);
    let now = runtime::now_ms();
    match monitor.source().read(&metrics, now - 3_600_000, now).await {
        Ok(s) => println!("✓ source {}: {} samples in the last hour", monitor.source().name(), s.len()),
        Err(e) => {
            println!("✗ source {}: {e}", monitor.source().name());
            failed.push("source");
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(anyhow!("check-config: {} failed", failed.join(" and "))) }
}

async fn alert_test(config: ConfigArg, sink: SinkChoice, severity: Severity) -> Result<()> {
    let cfg = load_config(&config)?;
    let configured = cfg.sinks.configured();
    let targets = match sink {
        SinkChoice::All => configured.clone(),
        SinkChoice::One(kind) => vec![kind],
    };
    if targets.is_empty() {
        bail!("no sink is configured (set SLACK_WEBHOOK_URL, PAGERDUTY_ROUTING_KEY, ALERTMANAGER_URL or ALERT_WEBHOOK_URL, or [sinks.*])");
    }
    let http = reqwest::Client::new();
    let n = runtime::sinks::test_notification(severity);
    let mut failed = 0;
    for t in targets {
        if !configured.contains(&t) {
            println!("✗ {t}: not configured");
            failed += 1;
            continue;
        }
        match cfg.sinks.send(&http, t, &n).await {
            Ok(()) => println!("✓ {t}: test alert sent ({})", severity.name()),
            Err(e) => {
                println!("✗ {t}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 { Err(anyhow!("{failed} sink(s) failed")) } else { Ok(()) }
}

async fn forecast(a: ForecastArgs) -> Result<()> {
    use runtime::predict::{Advised, ForecastModel, Predictor, StatisticalForecast};
    let model = ForecastModel::resolve(a.model, a.bundle.is_some());
    let fc = match model {
        ForecastModel::Auto => {
            let s = StatisticalForecast {
                metric: a.metric.clone(),
                interval_secs: a.interval_secs,
                horizon_minutes: a.horizon_minutes,
                history_hours: a.history_hours,
                ..Default::default()
            };
            s.validate()?;
            Predictor::Auto(Box::new(s))
        }
        ForecastModel::Lstm => {
            let bundle = a.bundle.as_ref().context("--model lstm needs --bundle (or FORECASTER_BUNDLE)")?;
            Predictor::Lstm(Box::new(runtime::forecast::Forecaster::load_dir(bundle)?))
        }
        ForecastModel::Registry => bail!(
            "--model registry: the registered forecaster is served by `runtime once --predict` with [forecast] model = \"registry\"; here use --model auto, or --model lstm --bundle DIR"
        ),
    };
    let inputs = fc.inputs();
    let samples = match &a.input {
        Some(p) => runtime::monitor::source::read_file(p)?,
        None => {
            let client = InfluxClient::new(InfluxConfig::from_env());
            let end = runtime::now_ms();
            let span = fc.read_span_ms();
            client.read_samples(&inputs, end - span, end).await?
        }
    };
    let Advised { at_ms: at, filled, prediction, threshold, advice, .. } = fc.advise(&samples, &a.server, a.threshold, 10.0)?;
    if a.json {
        let out = serde_json::json!({
            "server": a.server, "metric": fc.target_metric(), "model": model, "at": runtime::format_ts(at), "filled": filled,
            "decided_on": prediction.band.name(), "advice": advice, "forecast": prediction.forecast.point,
            "upper_80": prediction.forecast.upper_80, "upper_95": prediction.forecast.upper_95,
            "lower_80": prediction.forecast.lower_80, "lower_95": prediction.forecast.lower_95,
        });
        println!("{out}");
    } else {
        println!(
            "🔮 {} {}: current {:.1}, predicted peak {:.1} in {:.1} min ({}{}; threshold {:.1}) → {}{}",
            a.server,
            fc.target_metric(),
            advice.current,
            advice.predicted_peak,
            advice.minutes_to_peak,
            prediction.band.name(),
            crossing_text(&advice),
            threshold,
            advice.recommendation,
            if advice.scale_up_percent > 0 { format!(", scale up {}%", advice.scale_up_percent) } else { String::new() }
        );
    }
    Ok(())
}

/// ", P(crossing) 0.62, likely in 25.0 min" where the decision read the future paths.
fn crossing_text(a: &runtime::forecast::ScalingAdvice) -> String {
    match (a.crossing_probability, a.minutes_to_crossing) {
        (Some(p), Some(m)) => format!(", P(crossing) {p:.2}, likely in {m:.1} min"),
        (Some(p), None) => format!(", P(crossing) {p:.2}"),
        _ => String::new(),
    }
}

/// Deterministic synthetic series `i`: a daily cycle (amplitude and phase per series), noise, a
/// level shift in one series of three, a spike now and then.
fn synthetic_series(i: usize, rows: usize, interval_secs: f64) -> Vec<f64> {
    let mut state = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (level, amplitude, phase, noise) = (20.0 + 40.0 * uniform(), 25.0 * uniform(), uniform(), 1.0 + 4.0 * uniform());
    let shift_at = if i.is_multiple_of(3) { (rows as f64 * (0.5 + 0.4 * uniform())) as usize } else { usize::MAX };
    let day = 86_400.0 / interval_secs;
    (0..rows)
        .map(|t| {
            let cycle = amplitude * (std::f64::consts::TAU * (t as f64 / day + phase)).sin();
            let shift = if t >= shift_at { 15.0 } else { 0.0 };
            let spike = if uniform() < 0.005 { 30.0 } else { 0.0 };
            level + cycle + shift + spike + noise * (uniform() - 0.5)
        })
        .collect()
}

fn bench_forecast(a: &BenchForecastArgs) -> Result<()> {
    use runtime::predict::StatisticalForecast;
    let cfg = StatisticalForecast {
        interval_secs: a.interval_secs,
        history_hours: a.history_hours,
        horizon_minutes: a.horizon_minutes,
        ..Default::default()
    };
    cfg.validate()?;
    if a.series == 0 {
        bail!("--series must be at least 1");
    }
    let rows = cfg.history_rows();
    // Progress on a terminal (the slim runtime has no indicatif): a line per tenth.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (mut fit_secs, mut seasonal, mut scale, mut checksum) = (0.0, 0usize, 0usize, 0.0);
    for i in 0..a.series {
        let y = synthetic_series(i, rows, a.interval_secs);
        let threshold = runtime::forecast::default_threshold(&cfg.metric, &y);
        // As the runtime decides: fit, forecast, the future paths and the scaling advice.
        let start = std::time::Instant::now();
        let p = cfg.predict(&y)?;
        let advice = p.advice(y[y.len() - 1], cfg.interval_secs, threshold, 10.0);
        fit_secs += start.elapsed().as_secs_f64();
        seasonal += usize::from(cfg.params.detect_period(&y, cfg.interval_secs).is_some());
        scale += usize::from(advice.recommendation != runtime::forecast::Recommendation::None);
        checksum += p.forecast.point[0];
        if tty && (i + 1) % (a.series / 10).max(1) == 0 {
            eprint!("\rbench-forecast: {}/{} series, {fit_secs:.1} s", i + 1, a.series);
        }
    }
    if tty {
        eprintln!();
    }
    let per_series = fit_secs / a.series as f64;
    println!(
        "{}",
        serde_json::json!({
            "bench": "forecast_auto", "series": a.series, "rows_per_series": rows, "horizon_steps": cfg.horizon(),
            "validation_origins": cfg.params.validation_origins, "threads": 1,
            "fit_and_forecast_secs": fit_secs, "per_series_ms": per_series * 1e3, "series_per_sec": 1.0 / per_series,
            "projected_secs_for_100000": per_series * 100_000.0, "seasonal_share": seasonal as f64 / a.series as f64,
            "scale_share": scale as f64 / a.series as f64,
            "checksum": checksum,
        })
    );
    Ok(())
}

/// Progress of a long step on stderr, when it is a terminal (the slim runtime has no indicatif):
/// one line rewritten at each whole percent, with the elapsed time.
struct Progress {
    what: &'static str,
    unit: &'static str,
    tty: bool,
    started: std::time::Instant,
    shown: Option<usize>,
}

impl Progress {
    fn new(what: &'static str, unit: &'static str) -> Self {
        Self { what, unit, tty: std::io::IsTerminal::is_terminal(&std::io::stderr()), started: std::time::Instant::now(), shown: None }
    }

    fn update(&mut self, done: usize, total: usize) {
        let percent = (100 * done).checked_div(total).unwrap_or(100).min(100);
        if self.tty && self.shown != Some(percent) {
            self.shown = Some(percent);
            eprint!("\r{}: {done}/{total} {} ({percent} %, {:.0} s)", self.what, self.unit, self.started.elapsed().as_secs_f64());
        }
    }

    fn finish(&self) {
        if self.tty && self.shown.is_some() {
            eprintln!();
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn proc_status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn bench(a: BenchArgs) -> Result<()> {
    use runtime::models::detectors::{ContextTailConfig, DetectorConfig, EwmaConfig, FleetConfig, TailEnsembleConfig};
    let detector = match a.detector {
        BenchDetector::Default | BenchDetector::Fleet => DetectorConfig::Fleet(FleetConfig::default()),
        BenchDetector::Ewma => DetectorConfig::Ewma(EwmaConfig::default()),
        BenchDetector::ContextTail => DetectorConfig::ContextTail(ContextTailConfig { history_rows: a.history_rows, ..Default::default() }),
        BenchDetector::TailEnsemble => {
            DetectorConfig::TailEnsemble(TailEnsembleConfig { history_rows: a.history_rows, ..Default::default() })
        }
    };
    let dir = std::env::temp_dir().join(format!("runtime-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let registry = runtime::registry::Registry::open(&dir.join("registry").display().to_string())?;
    let manifest = runtime::registry::Manifest::new(
        "anomaly-detector",
        runtime::BASE_METRICS.iter().map(|m| m.to_string()).collect(),
        runtime::decisions::DecisionConfig::default(),
        // No training data: the digest of nothing.
        runtime::registry::TrainingData { dataset: "bench".into(), sha256: sha256_hex(b""), rows: 0, start_ms: None, end_ms: None },
        "bench",
    );
    let (v, _) = registry.publish(&runtime::registry::Bundle::for_detector(manifest, &detector)).await?;
    registry.set_alias("anomaly-detector", "champion", v, None).await?;
    let mut cfg = RuntimeConfig::default();
    cfg.source.kind = runtime::monitor::config::SourceKind::Simulator;
    cfg.source.simulator.servers = a.servers;
    cfg.model.registry = dir.join("registry").display().to_string();
    cfg.schedule.warmup_secs = a.warmup_secs;
    cfg.schedule.settle_secs = 0;
    cfg.outbox.dir = dir.join("outbox");
    cfg.http.listen = String::new();
    let rss_before = proc_status_mb("VmRSS:");
    let mut monitor = Monitor::new(cfg, Arc::new(Telemetry::new()))?;
    let step = 30_000;
    let mut now = runtime::now_ms() / step * step;
    let warm = monitor.tick(now).await;
    if let Some(e) = warm.error {
        bail!(e);
    }
    let mut ms = Vec::new();
    let (mut rows, mut alerts) = (0u64, 0usize);
    for _ in 0..a.ticks {
        now += step;
        let r = monitor.tick(now).await;
        ms.push(r.duration_ms);
        rows += r.rows_scored;
        alerts += r.alerts.len();
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let exe_mb = std::env::current_exe().ok().and_then(|p| std::fs::metadata(p).ok()).map_or(f64::NAN, |m| m.len() as f64 / 1e6);
    let out = serde_json::json!({
        "bench": "tick",
        "detector": clap::ValueEnum::to_possible_value(&a.detector).map(|v| v.get_name().to_string()),
        "servers": a.servers,
        "series": a.servers * runtime::BASE_METRICS.len(),
        "rows_per_tick": rows / a.ticks.max(1) as u64,
        "warmup_tick_ms": warm.duration_ms,
        "warmup_rows_learned": warm.rows_learned,
        "tick_p50_ms": q(0.5),
        "tick_p99_ms": q(0.99),
        "tick_max_ms": sorted.last(),
        "rows_per_s": rows as f64 / (ms.iter().sum::<f64>() / 1000.0),
        "alerts": alerts,
        "rss_mb": proc_status_mb("VmRSS:"),
        "rss_peak_mb": proc_status_mb("VmHWM:"),
        "rss_before_mb": rss_before,
        "binary_mb": exe_mb,
    });
    println!("{out}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(feature = "lambda")]
async fn lambda(config: ConfigArg) -> Result<()> {
    let cfg = load_config(&config)?;
    runtime::lambda::run(cfg).await.map_err(|e| anyhow!(e))
}

#[cfg(not(feature = "lambda"))]
async fn lambda(_config: ConfigArg) -> Result<()> {
    Err("this binary was built without the `lambda` feature (cargo build --features lambda; terraform/package-lambda.sh does)".into())
}

#[derive(clap::Args, Debug)]
struct CollectArgs {
    /// InfluxDB base URL.
    #[arg(long, env = "INFLUXDB_URL", default_value = "http://127.0.0.1:8086")]
    influx_url: String,
    /// Database (created if missing).
    #[arg(long, env = "INFLUXDB_DATABASE", default_value = "metrics")]
    database: String,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    interval_secs: u32,
    /// Stream N simulated servers instead of this host.
    #[arg(long, value_name = "N")]
    simulate: Option<usize>,
    /// Seed of the simulator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First write this much simulated history (e.g. `1h`, `2d`); needs --simulate.
    #[arg(long, value_parser = humantime::parse_duration)]
    backfill: Option<Duration>,
    /// Stop after this many live ticks (default: run until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

fn print_row(t: i64, server: &str, v: &[f64; 4]) {
    let clock = &runtime::format_ts(t)[11..19];
    println!("[{clock}] {server}: CPU={:.1}% MEM={:.1}% NET={:.1}MB/s DISK={:.0}ops/s", v[0], v[1], v[2], v[3]);
}

fn samples(t: i64, rows: &[(String, [f64; 4])]) -> Vec<MetricSample> {
    // A missing sample (NaN from the simulator) is not written, as a real exporter would skip it.
    rows.iter()
        .flat_map(|(server, v)| {
            BASE_METRICS.iter().zip(v).filter(|(_, x)| x.is_finite()).map(move |(m, x)| MetricSample::new(t, server.clone(), *m, *x))
        })
        .collect()
}

async fn collect(args: CollectArgs) -> Result<()> {
    if args.backfill.is_some() && args.simulate.is_none() {
        bail!("--backfill needs --simulate (this host has no history to backfill)");
    }
    let mut cfg = InfluxConfig::from_env();
    cfg.url = args.influx_url.clone();
    cfg.database = args.database.clone();
    let client = InfluxClient::new(cfg);
    match client.ping().await.and(client.create_database().await) {
        Ok(()) => println!("✓ InfluxDB connection: pass"),
        Err(e) => bail!("✗ InfluxDB connection: {e}"),
    }
    let interval_ms = i64::from(args.interval_secs) * 1000;
    let mut sim = args.simulate.map(|n| {
        let back = args.backfill.map_or(0, |d| d.as_millis() as i64);
        let start = (runtime::now_ms() - back) / interval_ms * interval_ms;
        Simulator::new(SimConfig {
            servers: n,
            start_ms: start,
            interval_secs: args.interval_secs,
            seed: args.seed,
            ..SimConfig::default()
        })
    });
    if let Some(d) = args.backfill {
        let sim = sim.as_mut().context("--backfill needs --simulate")?;
        println!("Generating {} of historical data...", humantime::format_duration(d));
        let mut batch = Vec::new();
        let mut written = 0;
        let (first, end) = (sim.next_timestamp_ms(), runtime::now_ms() - interval_ms);
        let mut bar = Progress::new("backfill", "minutes");
        while sim.next_timestamp_ms() < end {
            bar.update(((sim.next_timestamp_ms() - first) / 60_000) as usize, ((end - first) / 60_000).max(1) as usize);
            let (t, rows) = sim.next_row();
            batch.extend(samples(t, &rows));
            if batch.len() >= 20_000 {
                written += client.write(&batch).await?.points;
                batch.clear();
            }
        }
        written += client.write(&batch).await?.points;
        bar.finish();
        println!("✓ wrote {written} points");
    }
    let mut host = HostSampler::new();
    if sim.is_none() {
        host.sample().context("cannot read /proc")?;
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms as u64));
    ticker.tick().await;
    let mut ticks = 0;
    let server = hostname();
    loop {
        if args.count.is_some_and(|c| ticks >= c) {
            return Ok(());
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let (t, rows) = match sim.as_mut() {
            Some(sim) => sim.next_row(),
            None => {
                let v = host.sample().context("cannot read /proc")?.unwrap_or([0.0; 4]);
                (runtime::now_ms(), vec![(server.clone(), v)])
            }
        };
        for (s, v) in rows.iter().filter(|(_, v)| v.iter().all(|x| x.is_finite())) {
            print_row(t, s, v);
        }
        if let Err(e) = client.write(&samples(t, &rows)).await {
            // Keep collecting: one failed write after retries is reported, not fatal.
            eprintln!("✗ write failed: {e}");
        }
        ticks += 1;
    }
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal, and never with NO_COLOR set: log files and CloudWatch get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    // Inside AWS Lambda the bootstrap runs without arguments.
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && std::env::args_os().len() == 1;
    let cli = if in_lambda {
        Cli { command: Command::Lambda(ConfigArg { config: std::env::var_os("RUNTIME_CONFIG").map(PathBuf::from) }) }
    } else {
        Cli::parse()
    };
    // `bench` measures one core: a current-thread runtime (the tick itself is sequential).
    let rt = if matches!(cli.command, Command::Bench(_) | Command::BenchForecast(_)) {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Runtime::new()
    }
    .expect("tokio runtime");
    let result = rt.block_on(async {
        match cli.command {
            Command::Collect(a) => collect(a).await,
            Command::Monitor(c) => match load_config(&c).and_then(|cfg| {
                let t = Arc::new(Telemetry::new());
                Ok((Monitor::new(cfg, t.clone())?, t))
            }) {
                Ok((m, t)) => runtime::monitor::run_daemon(m, t).await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            },
            Command::Once { config, json, predict } => once(config, json, predict).await,
            Command::Replay { config, from, until } => replay(config, from, until).await,
            Command::CheckConfig(c) => check_config(c).await,
            Command::Alert { command: AlertCommand::Test { config, sink, severity } } => alert_test(config, sink, severity).await,
            Command::Lambda(c) => lambda(c).await,
            Command::Bench(a) => bench(a).await,
            Command::Forecast(a) => forecast(a).await,
            Command::BenchForecast(a) => bench_forecast(&a),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", runtime::error_line(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
