//! The monitor end to end, with no external service: a labelled simulator fleet replayed from a
//! file through a model bundle in a local registry, alerts delivered to local receivers that
//! check the Slack and PagerDuty payload formats; outages, `kill -9` with alerts in the outbox,
//! hot model reload and fallback to the last good model.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::receiver::Receiver;
use common::{fleet_csv, promote, runtime_cmd, sim_bundle};
use runtime::collector::simulate::SimConfig;
use runtime::decisions::Severity;
use runtime::forecast::Recommendation;
use runtime::monitor::config::RuntimeConfig;
use runtime::monitor::telemetry::Telemetry;
use runtime::monitor::{Monitor, TickReport};
use runtime::registry::{Bundle, Registry};

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rt-monitor-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}

fn config(dir: &Path, data: &Path, receiver: &Receiver) -> RuntimeConfig {
    let text = format!(
        r#"
[source]
kind = "file"
[source.file]
path = "{data}"
[model]
registry = "file://{dir}/registry"
[schedule]
interval_secs = 30
warmup_secs = 86400
settle_secs = 0
deliver_timeout_secs = 10
[outbox]
dir = "{dir}/outbox"
backoff_initial_secs = 0.05
backoff_max_secs = 0.2
[http]
listen = ""
[sinks.slack]
webhook_url = "{url}/slack/T000/B000/SECRETTOKEN"
[sinks.pagerduty]
routing_key = "{key}"
url = "{url}/pagerduty/v2/enqueue"
"#,
        data = data.display(),
        dir = dir.display(),
        url = receiver.url,
        key = "k".repeat(32)
    );
    let cfg = RuntimeConfig::from_toml_str(&text, "test.toml").unwrap();
    cfg.validate("test.toml").unwrap();
    cfg
}

fn monitor(cfg: RuntimeConfig) -> Monitor {
    Monitor::new(cfg, std::sync::Arc::new(Telemetry::new())).unwrap()
}

/// Promote `bundle`, replay the fleet from its second day (the first is the warm-up) and drain
/// the outbox: the monitor, the replay's start and end, and every tick's report (none failed).
fn replay_from_day_two(cfg: RuntimeConfig, bundle: &Bundle) -> (Monitor, i64, i64, Vec<TickReport>) {
    let registry = Registry::open(&cfg.model.registry).unwrap();
    block_on(promote(&registry, bundle));
    let mut m = monitor(cfg);
    let span = m.source().span().unwrap();
    let from = span.0 + 24 * 3_600_000;
    let mut progress = Vec::new();
    let reports: Vec<TickReport> = block_on(async {
        let r = m.replay_with_progress(from, span.1 + 1, |done, total| progress.push((done, total))).await;
        m.drain(Duration::from_secs(20)).await.unwrap();
        r
    });
    assert!(reports.iter().all(|r| r.error.is_none()), "{:?}", reports.iter().find(|r| r.error.is_some()));
    // Progress (what `runtime replay` shows on a terminal): once per tick, ending at all of them.
    assert_eq!(progress.len(), reports.len());
    assert_eq!(progress.last().copied(), Some((reports.len(), reports.len())));
    (m, from, span.1, reports)
}

#[test]
fn replay_alerts_incidents_with_severity_and_primary_metric_and_nothing_else() {
    let dir = tmp("replay");
    let (data, incidents) = fleet_csv(&dir, SimConfig { servers: 5, seed: 42, confounders: false, ..SimConfig::default() }, 72);
    let receiver = Receiver::start();
    let (m, _, _, reports) = replay_from_day_two(config(&dir, &data, &receiver), &sim_bundle());
    assert_eq!(reports.iter().map(|r| r.rows_scored).sum::<u64>(), 5 * 48 * 360, "every live row scored once");
    let alerts: Vec<_> = reports.iter().flat_map(|r| r.alerts.clone()).collect();
    let incident_of = |a: &runtime::decisions::Alert| {
        incidents.iter().find(|i| i.server == a.server && a.timestamp_ms >= i.start_ms && a.timestamp_ms <= i.end_ms + 600_000)
    };
    // Nothing else: every alert falls in a labelled incident of its server, names the
    // incident's metric as primary issue, and has the severity its score and level give.
    for a in &alerts {
        let i = incident_of(a).unwrap_or_else(|| panic!("false alert {a:?}"));
        assert_eq!(a.primary_metric, i.metric, "{a:?} vs {i:?}");
        assert!(a.severity >= Severity::High, "an incident this clear is HIGH or worse: {a:?}");
    }
    let caught: Vec<_> = incidents.iter().filter(|i| alerts.iter().any(|a| incident_of(a) == Some(*i))).collect();
    assert!(caught.len() >= 2, "{caught:?}");
    assert!(caught.iter().all(|i| i.kind.name() == "disk_io_storm"), "{caught:?}");
    // Routing: HIGH goes to Slack and PagerDuty; each alert is resolved when normal again.
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
    let slack = receiver.accepted("/slack");
    let pd = receiver.accepted("/pagerduty");
    for a in &alerts {
        assert!(slack.iter().any(|r| r.body["text"].as_str().unwrap().contains(&a.server)), "slack got {a:?}");
        let events: Vec<&str> =
            pd.iter().filter(|r| r.body["dedup_key"] == a.dedup_key.as_str()).map(|r| r.body["event_action"].as_str().unwrap()).collect();
        assert_eq!(events, ["trigger", "resolve"], "{a:?}");
    }
    assert_eq!(slack.len(), 2 * alerts.len(), "a trigger and a resolve each");
    assert!(m.outbox().pending().unwrap().is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

/// The runtime with the fleet default and default decisions, on a fleet with restarts, batch
/// jobs, counter resets and gaps: what the monitor sends is what `experiment evaluate --sim`
/// counts — every incident after the day of warm-up alerted on its own metric, few false alerts.
#[test]
fn fleet_default_catches_incidents_among_confounders_with_few_false_alerts() {
    use runtime::decisions::DecisionConfig;
    use runtime::models::detectors::{DetectorConfig, FleetConfig};
    let dir = tmp("fleet");
    let (data, incidents) = fleet_csv(&dir, SimConfig { servers: 5, seed: 42, ..SimConfig::default() }, 72);
    let receiver = Receiver::start();
    let bundle = common::bundle(&DetectorConfig::Fleet(FleetConfig::default()), DecisionConfig::default());
    let (_, from, end, reports) = replay_from_day_two(config(&dir, &data, &receiver), &bundle);
    let alerts: Vec<_> = reports.iter().flat_map(|r| r.alerts.clone()).collect();
    let live: Vec<_> = incidents.iter().filter(|i| i.start_ms >= from && i.start_ms <= end).collect();
    let caught =
        live.iter().filter(|i| alerts.iter().any(|a| a.server == i.server && a.timestamp_ms >= i.start_ms && a.timestamp_ms <= i.end_ms));
    let right = caught.clone().filter(|i| {
        alerts.iter().find(|a| a.server == i.server && a.timestamp_ms >= i.start_ms && a.timestamp_ms <= i.end_ms).unwrap().primary_metric
            == i.metric
    });
    let (caught, right) = (caught.count(), right.count());
    let false_alerts = alerts
        .iter()
        .filter(|a| !incidents.iter().any(|i| i.server == a.server && a.timestamp_ms >= i.start_ms && a.timestamp_ms <= i.end_ms + 600_000))
        .count();
    let server_days = 5.0 * (end - from) as f64 / 86_400_000.0;
    assert!(live.len() >= 10 && caught as f64 >= 0.9 * live.len() as f64, "caught {caught} of {}", live.len());
    assert!(right as f64 >= 0.9 * caught as f64, "right primary metric {right} of {caught}");
    assert!(false_alerts as f64 <= server_days, "{false_alerts} false alerts in {server_days:.1} server-days");
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
    std::fs::remove_dir_all(dir).unwrap();
}

fn write_config(dir: &Path, data: &Path, receiver: &Receiver) -> PathBuf {
    let cfg = config(dir, data, receiver);
    let path = dir.join("runtime.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    path
}

fn pending_files(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(rd) = std::fs::read_dir(dir.join("outbox/pending")) else { return Vec::new() };
    rd.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json") && !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect()
}

/// Trigger keys `(server/metric, alert time)` PagerDuty received.
fn pd_triggers(r: &Receiver) -> std::collections::BTreeSet<(String, String)> {
    r.accepted("/pagerduty")
        .iter()
        .filter(|x| x.body["event_action"] == "trigger")
        .map(|x| (x.body["dedup_key"].as_str().unwrap().to_string(), x.body["payload"]["timestamp"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn kill_9_during_an_outage_then_restart_delivers_every_alert() {
    // The reference: the same replay, uninterrupted, sinks up.
    let ref_dir = tmp("kill-ref");
    let (data, _) = fleet_csv(&ref_dir, SimConfig { servers: 5, seed: 42, confounders: false, ..SimConfig::default() }, 72);
    let reference = Receiver::start();
    let cfg = config(&ref_dir, &data, &reference);
    let registry = Registry::open(&cfg.model.registry).unwrap();
    let bundle = sim_bundle();
    block_on(promote(&registry, &bundle));
    let out = runtime_cmd().args(["replay", "--config"]).arg(write_config(&ref_dir, &data, &reference)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = pd_triggers(&reference);
    assert!(expected.len() >= 2, "{expected:?}");

    // Sinks down; kill -9 once alerts wait in the outbox.
    let dir = tmp("kill");
    let receiver = Receiver::start();
    receiver.set_down(true);
    let registry = Registry::open(&format!("file://{}/registry", dir.display())).unwrap();
    block_on(promote(&registry, &bundle));
    let config_path = write_config(&dir, &data, &receiver);
    let mut child = runtime_cmd()
        .args(["replay", "--config"])
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while pending_files(&dir).is_empty() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let stranded = pending_files(&dir);
    assert!(!stranded.is_empty(), "alerts were waiting when the process died");
    assert!(receiver.accepted("").is_empty(), "nothing could be delivered during the outage");
    assert!(stranded.iter().all(|d| d["sink"] == "slack" || d["sink"] == "pagerduty"), "{stranded:?}");

    // Restart with the sinks back: the stranded alerts and the rest of the replay arrive.
    receiver.set_down(false);
    let out = runtime_cmd().args(["replay", "--config"]).arg(&config_path).output().unwrap();
    let logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{logs}");
    assert!(logs.contains("undelivered alerts from a previous run"), "{logs}");
    assert!(!logs.contains("SECRETTOKEN") && !logs.contains(&"k".repeat(32)), "secrets never logged");
    assert!(pending_files(&dir).is_empty());
    for d in &stranded {
        let key = d["notification"]["alert"]["dedup_key"].as_str().unwrap();
        let sink = d["sink"].as_str().unwrap();
        assert!(
            receiver.accepted(&format!("/{sink}")).iter().any(|r| r.body.to_string().contains(key)),
            "stranded {sink} alert {key} delivered after the restart"
        );
    }
    assert_eq!(pd_triggers(&receiver), expected, "every alert of the uninterrupted run, none lost");
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
    std::fs::remove_dir_all(ref_dir).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn flaky_sink_is_retried_and_bad_model_keeps_the_last_good_one() {
    let dir = tmp("flaky");
    let (data, _) = fleet_csv(&dir, SimConfig { servers: 5, seed: 42, confounders: false, ..SimConfig::default() }, 72);
    let receiver = Receiver::start();
    receiver.fail_next(3);
    let cfg = config(&dir, &data, &receiver);
    let registry = Registry::open(&cfg.model.registry).unwrap();
    let v1 = block_on(promote(&registry, &sim_bundle()));
    let mut m = monitor(cfg);
    block_on(m.refresh_model(true));
    assert_eq!(m.model().unwrap().manifest.version, v1);
    // A bundle whose detector cannot run: refused, v1 stays.
    let mut bad = sim_bundle();
    bad.files.insert(runtime::registry::DETECTOR_FILE.into(), br#"{"kind":"tail_ensemble","history_rows":0}"#.to_vec());
    let bad = Bundle::new(bad.manifest, bad.files);
    let v2 = block_on(promote(&registry, &bad));
    block_on(m.refresh_model(true));
    assert_eq!(m.model().unwrap().manifest.version, v1, "v{v2} refused");
    // A fresh process whose champion is that invalid v2 falls back to v1, the newest valid
    // version of the alias history, instead of scoring nothing.
    let mut fresh_cfg = config(&dir, &data, &receiver);
    fresh_cfg.outbox.dir = dir.join("fresh-outbox");
    let mut fresh = monitor(fresh_cfg);
    block_on(fresh.refresh_model(true));
    assert_eq!(fresh.model().map(|m| m.manifest.version), Some(v1), "cold start falls back from v{v2}");
    drop(fresh);
    let span = m.source().span().unwrap();
    let reports = block_on(async {
        let r = m.replay(span.0 + 24 * 3_600_000, span.1 + 1).await;
        m.drain(Duration::from_secs(20)).await.unwrap();
        r
    });
    let alerts: usize = reports.iter().map(|r| r.alerts.len()).sum();
    assert!(alerts >= 2);
    assert_eq!(receiver.accepted("/pagerduty").len(), 2 * alerts, "every trigger and resolve despite 3 injected 500s");
    assert!(m.outbox().pending().unwrap().is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A forecaster whose output is fixed in window-normalised units: every horizon step forecasts
/// the window mean plus `k` window standard deviations (zero weights, bias `k`).
fn fixed_forecaster(dir: &Path, k: f32) -> PathBuf {
    use runtime::forecast::{FORECASTER_FORMAT, Forecaster, ForecasterMeta, LstmConfig, LstmWeights, Scaler};
    let config = LstmConfig { lookback_window: 30, forecast_horizon: 12, lstm_units: vec![4], ..LstmConfig::default() };
    let mut w = LstmWeights::zeros(1, &config.lstm_units, config.forecast_horizon);
    w.head_b.iter_mut().for_each(|b| *b = k);
    let meta = ForecasterMeta {
        format: FORECASTER_FORMAT,
        config,
        training: None,
        scaler: Scaler { mean: vec![50.0], std: vec![10.0] },
        server: "any".into(),
        interval_secs: 10.0,
        val_loss: None,
        epochs_run: 0,
        shrinkage: Vec::new(),
        skip: Vec::new(),
        weights_sha256: String::new(),
    };
    let out = dir.join("forecaster");
    Forecaster::save_dir(&meta, &w, &out).unwrap();
    out
}

#[test]
fn predictive_scaling_alerts_the_server_whose_forecast_crosses_once_then_resolves() {
    let dir = tmp("predict");
    let receiver = Receiver::start();
    // Two servers at 10 s: `hot` around 72.5 (± 4) for 60 rows then around 50, `cool` around 40.
    let t0 = 1_700_000_000_000i64;
    let mut csv = String::from("timestamp,server,cpu_usage\n");
    for i in 0..120i64 {
        let t = t0 + i * 10_000;
        let wiggle = if i % 2 == 0 { 4.0 } else { -4.0 };
        let hot = if i < 60 { 72.5 } else { 50.0 };
        csv.push_str(&format!("{t},hot,{}\n{t},cool,{}\n", hot + wiggle, 40.0 + wiggle));
    }
    let data = dir.join("live.csv");
    std::fs::write(&data, csv).unwrap();
    let bundle = fixed_forecaster(&dir, 2.0);
    let mut cfg = config(&dir, &data, &receiver);
    cfg.forecast.bundle = bundle.display().to_string();
    let mut m = monitor(cfg);
    let fc = runtime::predict::Predictor::from_config(&m.config().forecast).unwrap().expect("a bundle is configured");
    let mut predict_at = |now: i64| {
        block_on(async {
            let a = m.predict(now, &fc).await.unwrap();
            m.drain(Duration::from_secs(10)).await.unwrap();
            a.into_iter().collect::<std::collections::HashMap<_, _>>()
        })
    };
    // Forecast = window mean + 2 window std = 72.5 + 8 for `hot`: crosses 80 at the first step
    // → SCALE_NOW (HIGH: Slack + PagerDuty); `cool` ≈ 48: NONE.
    let first = t0 + 59 * 10_000;
    let by = predict_at(first);
    assert_eq!(by["hot"].recommendation, Recommendation::ScaleNow, "{:?}", by["hot"]);
    assert!((by["hot"].predicted_peak - 80.5).abs() < 1e-3, "{:?}", by["hot"]);
    assert_eq!(by["cool"].recommendation, Recommendation::None);
    let pd = receiver.accepted("/pagerduty");
    assert_eq!(pd.len(), 1, "one trigger: {pd:?}");
    assert_eq!(pd[0].body["dedup_key"], "hot/cpu_usage/forecast");
    assert_eq!(pd[0].body["event_action"], "trigger");
    assert!(receiver.accepted("/slack").iter().any(|r| r.body["text"].as_str().unwrap_or("").contains("hot")));
    // Same forecast again: no second alert. Later `hot` has cooled down: resolved once.
    predict_at(first);
    assert_eq!(receiver.accepted("/pagerduty").len(), 1, "still one alert while it stays above");
    let by = predict_at(t0 + 119 * 10_000);
    assert!(by.values().all(|a| a.recommendation == Recommendation::None), "{by:?}");
    let pd = receiver.accepted("/pagerduty");
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[1].body["event_action"], "resolve");
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
}

/// A week of 5-minute rows in `dir/week.csv`: `hot` idles at 40 and peaks at 90 from 12:00 to
/// 14:00 every day; `cool` stays at 30 (both ± 2); ends at 11:25 on the eighth day, which is
/// returned (the peak starts 35 minutes later).
fn daily_peak_week(dir: &Path) -> (PathBuf, i64) {
    // Midnight UTC.
    let t0 = 1_700_006_400_000i64;
    let mut csv = String::from("timestamp,server,cpu_usage\n");
    for i in 0..(7 * 288 + 138) as i64 {
        let t = t0 + i * 300_000;
        let wiggle = [2.0, -1.0, 0.5, -2.0][(i % 4) as usize];
        let hot = if (144..168).contains(&(i % 288)) { 90.0 } else { 40.0 };
        csv.push_str(&format!("{t},hot,{}\n{t},cool,{}\n", hot + wiggle, 30.0 + wiggle));
    }
    let data = dir.join("week.csv");
    std::fs::write(&data, csv).unwrap();
    (data, t0 + (7 * 288 + 137) * 300_000)
}

/// The statistical `auto` forecaster needs no bundle and is the default without one: it is fitted
/// per server on the week of history the runtime reads and decides on P(crossing), so the server
/// whose daily peak is 35 minutes away gets SCALE_SOON (MEDIUM: Slack only), the quiet one
/// nothing. `model = "lstm"` without a bundle is refused, not silently off.
#[test]
fn auto_forecaster_scales_the_server_whose_daily_peak_is_ahead() {
    let dir = tmp("predict-auto");
    let receiver = Receiver::start();
    let (data, now) = daily_peak_week(&dir);
    let mut cfg = config(&dir, &data, &receiver);
    cfg.forecast.auto.horizon_minutes = 60.0;
    assert_eq!(cfg.forecast.model, None);
    assert_eq!(cfg.forecast.model(), runtime::predict::ForecastModel::Auto, "no bundle: auto");
    let lstm = runtime::monitor::config::ForecastConfig { model: Some(runtime::predict::ForecastModel::Lstm), ..cfg.forecast.clone() };
    let e = runtime::predict::Predictor::from_config(&lstm).unwrap_err().to_string();
    assert!(e.contains("needs a bundle"), "{e}");
    let with_bundle = runtime::monitor::config::ForecastConfig { bundle: "models/lstm/x".into(), ..cfg.forecast.clone() };
    assert_eq!(with_bundle.model(), runtime::predict::ForecastModel::Lstm, "a bundle given: the LSTM");
    let fc = runtime::predict::Predictor::from_config(&cfg.forecast).unwrap().expect("auto needs no bundle");
    let mut m = monitor(cfg);
    // 11:25 on the eighth day: the peak starts in 35 minutes.
    let by: std::collections::HashMap<_, _> = block_on(async {
        let a = m.predict(now, &fc).await.unwrap();
        m.drain(Duration::from_secs(10)).await.unwrap();
        a.into_iter().collect()
    });
    assert_eq!(by["hot"].recommendation, Recommendation::ScaleSoon, "{:?}", by["hot"]);
    assert!(by["hot"].predicted_peak > 80.0 && by["hot"].minutes_to_peak <= 60.0, "{:?}", by["hot"]);
    assert_eq!(by["cool"].recommendation, Recommendation::None, "{:?}", by["cool"]);
    let slack = receiver.accepted("/slack");
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert!(slack[0].body["text"].as_str().unwrap_or("").contains("hot"), "{slack:?}");
    assert!(receiver.accepted("/pagerduty").is_empty(), "MEDIUM does not page");
    // The same from the command line, as JSON with the band.
    let out =
        runtime_cmd().args(["forecast", "--server", "hot", "--horizon-minutes", "60", "--json", "--input"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["model"].as_str(), v["decided_on"].as_str()), (Some("auto"), Some("probability")), "the default without --bundle");
    assert_eq!(v["advice"]["recommendation"], "SCALE_SOON", "{v}");
    // The peak is 35 minutes ahead: the first likely crossing within the hour, not now.
    let to_crossing = v["advice"]["minutes_to_crossing"].as_f64().unwrap();
    assert!(to_crossing > 10.0 && to_crossing <= 60.0, "{v}");
    assert!(v["advice"]["crossing_probability"].as_f64().unwrap() >= 0.4, "{v}");
    assert_eq!(v["upper_95"].as_array().unwrap().len(), 12);
    let out = runtime_cmd()
        .args(["forecast", "--model", "auto", "--server", "hot", "--history-hours", "1", "--input"])
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("history_hours"), "{err}");
    let out = runtime_cmd().args(["forecast", "--model", "registry", "--server", "hot", "--input"]).arg(&data).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("once --predict"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A forecaster promoted to the registry is served (`[forecast] model = "registry"`); moving the
/// alias swaps it at the next prediction; a promotion that does not load keeps the last good one.
#[test]
fn a_promoted_forecaster_is_served_reloaded_when_the_alias_moves_and_kept_when_the_next_is_bad() {
    use runtime::predict::StatisticalForecast;
    use runtime::registry::{Manifest, TrainingData};
    let dir = tmp("predict-registry");
    let receiver = Receiver::start();
    let (data, now) = daily_peak_week(&dir);
    let mut cfg = config(&dir, &data, &receiver);
    cfg.forecast.model = Some(runtime::predict::ForecastModel::Registry);
    let registry = Registry::open(&cfg.model.registry).unwrap();
    let forecaster = |s: &StatisticalForecast| {
        let training = TrainingData { dataset: "week.csv".into(), sha256: "cd".repeat(32), rows: 2154, start_ms: None, end_ms: None };
        let manifest = Manifest::new("forecaster", vec!["cpu_usage".into()], Default::default(), training, "forecasts/week/test");
        Bundle::for_forecaster(manifest, s)
    };
    let telemetry = std::sync::Arc::new(Telemetry::new());
    let mut m = Monitor::new(cfg, telemetry.clone()).unwrap();
    let e = block_on(m.refresh_forecaster()).unwrap_err();
    assert!(e.contains("forecaster@champion"), "nothing promoted yet: {e}");
    let an_hour = StatisticalForecast { horizon_minutes: 60.0, ..StatisticalForecast::default() };
    let v1 = block_on(promote(&registry, &forecaster(&an_hour)));
    let predict = |m: &mut Monitor| {
        block_on(async {
            let (v, fc) = m.refresh_forecaster().await.unwrap();
            let a: std::collections::HashMap<_, _> = m.predict(now, &fc).await.unwrap().into_iter().collect();
            m.drain(Duration::from_secs(10)).await.unwrap();
            (v, a["hot"].recommendation)
        })
    };
    assert_eq!(predict(&mut m), (v1, Recommendation::ScaleSoon), "the peak 35 minutes ahead is within the hour");
    // A 20-minute horizon does not reach the peak: promoted, it is served from the next prediction.
    let v2 = block_on(promote(&registry, &forecaster(&StatisticalForecast { horizon_minutes: 20.0, ..an_hour.clone() })));
    assert_eq!(predict(&mut m), (v2, Recommendation::None));
    // Settings that cannot fit (an hour of history), then a detector bundle under the name: both
    // refused, v2 kept, each failure counted.
    block_on(promote(&registry, &forecaster(&StatisticalForecast { history_hours: 1.0, ..an_hour.clone() })));
    assert_eq!(predict(&mut m).0, v2);
    let mut detector = common::sim_bundle();
    detector.manifest.model = "forecaster".into();
    block_on(promote(&registry, &detector));
    assert_eq!(predict(&mut m).0, v2);
    assert!(telemetry.model_load_errors.get() >= 3, "the first read, the bad settings, the detector bundle");
    // An LSTM bundle folder goes through the registry too (kind lstm, weights verified when
    // published and when loaded); a damaged one is refused before it is published.
    let lstm_dir = fixed_forecaster(&dir, 2.0);
    let lstm = |d: &Path| {
        let training = TrainingData { dataset: "sim".into(), sha256: "ef".repeat(32), rows: 1, start_ms: None, end_ms: None };
        Bundle::for_lstm(Manifest::new("forecaster", vec!["cpu_usage".into()], Default::default(), training, "lstm/test"), d)
    };
    let v5 = block_on(promote(&registry, &lstm(&lstm_dir).unwrap()));
    let (v, fc) = block_on(m.refresh_forecaster()).unwrap();
    assert!(v == v5 && matches!(*fc, runtime::predict::Predictor::Lstm(_)), "v{v}");
    let weights = lstm_dir.join(runtime::forecast::WEIGHTS_FILE);
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    let e = lstm(&lstm_dir).unwrap_err().to_string();
    assert!(e.contains("sha256"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `check-config` gates a deploy: it fails, naming what, while the model is missing, and passes
/// once one is promoted; its log on a pipe carries no ANSI colour codes.
#[test]
fn check_config_fails_while_the_model_is_missing_and_logs_plain_text() {
    let dir = tmp("check");
    let (data, _) = fleet_csv(&dir, SimConfig { servers: 2, seed: 42, confounders: false, ..SimConfig::default() }, 2);
    let receiver = Receiver::start();
    let path = write_config(&dir, &data, &receiver);
    let out = runtime_cmd().args(["check-config", "--config"]).arg(&path).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && stdout.contains("✗ model") && stderr.contains("check-config: model failed"), "{stdout}\n{stderr}");
    let registry = Registry::open(&config(&dir, &data, &receiver).model.registry).unwrap();
    block_on(promote(&registry, &sim_bundle()));
    let out = runtime_cmd().args(["check-config", "--config"]).arg(&path).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("✓ model anomaly-detector@1"), "{stdout}\n{stderr}");
    assert!(stderr.contains("model loaded") && !stderr.contains('\u{1b}'), "plain-text log on a pipe: {stderr:?}");
    // RUNTIME_HTTP_LISTEN overrides [http] listen (a container binds 0.0.0.0); a bad one is named.
    let out = runtime_cmd().args(["check-config", "--config"]).arg(&path).env("RUNTIME_HTTP_LISTEN", "nowhere").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("http.listen") && stderr.contains("nowhere"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The shipped `runtime/examples/runtime.toml` works when copied: against a freshly promoted local
/// registry (`MODEL_URI`) `check-config` passes, with the simulator as its source, and the
/// README's predictive-scaling line (`once --predict`, no forecaster configured: `auto`) advises
/// every simulated server.
#[test]
fn the_example_runtime_config_checks_out_against_a_promoted_registry() {
    let dir = tmp("example");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/runtime.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let cfg = RuntimeConfig::from_toml_str(&text, "examples/runtime.toml").unwrap();
    cfg.validate("examples/runtime.toml").unwrap();
    let registry_uri = format!("file://{}/registry", dir.display());
    let registry = Registry::open(&registry_uri).unwrap();
    block_on(promote(&registry, &sim_bundle()));
    let out = runtime_cmd()
        .args(["check-config", "--config"])
        .arg(&example)
        .env("MODEL_URI", &registry_uri)
        .env("RUNTIME_OUTBOX_DIR", dir.join("outbox"))
        .env("RUNTIME_HTTP_LISTEN", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("✓ model anomaly-detector@1") && stdout.contains("✓ source simulator"), "{stdout}");
    let out = runtime_cmd()
        .args(["once", "--predict", "--json", "--config"])
        .arg(&example)
        .env("MODEL_URI", &registry_uri)
        .env("RUNTIME_OUTBOX_DIR", dir.join("outbox"))
        .env("RUNTIME_HTTP_LISTEN", "off")
        .env_remove("FORECAST_MODEL")
        .env_remove("FORECASTER_BUNDLE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let advice: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(advice.len(), 5, "the example's five simulated servers: {stdout}");
    // Decided on `auto`'s future paths: P(crossing) is reported (an LSTM bundle has none).
    assert!(
        advice.iter().all(|a| a["advice"]["recommendation"].is_string() && a["advice"]["crossing_probability"].as_f64().is_some()),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
