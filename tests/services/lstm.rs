//! The LSTM forecaster end to end against the real InfluxDB: history written by the simulator,
//! read by the workbench (polars) to train and predict, read again by the runtime (no polars,
//! no autodiff) to serve: both must forecast the same values from the same window.

use aiops_tests::{block_on, influx_url, unique_db};
use runtime::collector::simulate::SimConfig;
use runtime::forecast::{Forecaster, LstmConfig, latest_window};
use runtime::sources::influxdb::{InfluxClient, InfluxConfig};
use workbench::frames::wide_to_samples;
use workbench::lstm::LstmTraining;
use workbench::lstm::cmd;

#[test]
fn lstm_trained_from_influxdb_serves_the_same_forecast_in_the_runtime() {
    let db = unique_db("lstm");
    let influx = InfluxConfig { url: influx_url(), database: db.clone(), batch_size: 5000, ..InfluxConfig::default() };
    let client = InfluxClient::new(influx.clone());
    block_on(client.create_database()).expect("InfluxDB must be running (tests/run starts it)");
    // Six hours of 10 s data for one server, ending now, every sample present (no gaps: the
    // row count and the window are exact).
    let now = runtime::now_ms();
    let sim = SimConfig { servers: 1, start_ms: now - 6 * 3_600_000, confounders: false, ..SimConfig::default() };
    let (wide, _) = workbench::simulate::simulate(&sim, 0.25, false).unwrap();
    let samples = wide_to_samples(&wide, "x").unwrap();
    block_on(client.write(&samples)).unwrap();
    let server = samples[0].server.clone();

    let cfg = LstmTraining {
        model: LstmConfig {
            lookback_window: 60,
            forecast_horizon: 30,
            lstm_units: vec![16, 8],
            input_metrics: vec!["memory_usage".into()],
            ..LstmConfig::default()
        },
        epochs: 3,
        max_train_windows: 256,
        ..LstmTraining::default()
    };
    let series = cmd::load_series_with("influxdb", &server, &cfg.model.inputs(), 7.0, &influx).unwrap();
    assert_eq!(series.len(), 2160, "rows read back for {server}");
    assert_eq!(series.interval_secs, 10.0);
    let out = std::env::temp_dir().join(format!("lstm-svc-{}", std::process::id()));
    let cmd::Trained { dir, model: trained, .. } = cmd::train(&series, &cfg, &server, &out).unwrap();
    assert_eq!(trained.meta.epochs_run, 3);
    assert!(dir.join("history.csv").exists());

    // Workbench: predictive-scaling block and chart from the polars series.
    let charts = out.join("predictions");
    let cmd::ScalingReport { advice, chart, .. } = cmd::predict(&series, &dir, &server, None, &charts).unwrap();
    assert_eq!(chart.file_name().unwrap().to_str().unwrap(), format!("{server}_cpu_usage_prediction.png"));
    let png = std::fs::read(&chart).unwrap();
    assert_eq!(&png[1..4], b"PNG", "chart is a PNG");
    assert_eq!(advice.threshold, 80.0, "cpu_usage is a percentage: threshold 80");

    // Runtime: read the same window straight from InfluxDB and forecast with burn ndarray.
    let served = Forecaster::load_dir(&dir).unwrap();
    let raw = block_on(client.read_samples(&cfg.model.inputs(), now - 3_600_000, now + 60_000)).unwrap();
    let (window, _, filled) = latest_window(&raw, &server, &cfg.model.inputs(), 60).unwrap();
    assert_eq!(filled, 0);
    let runtime_fc = served.forecast(&window).unwrap();
    let wb_fc = workbench::lstm::forecast_at(&workbench::lstm::to_forecaster(&trained), &series, &[series.len()]).unwrap();
    assert_eq!(runtime_fc.len(), 30);
    for (a, b) in runtime_fc.iter().zip(&wb_fc[0]) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "runtime {a} vs workbench {b}");
    }
    let peak = runtime_fc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!((advice.predicted_peak - peak).abs() <= 1e-5 * peak.abs().max(1.0), "advice peak {} vs runtime {peak}", advice.predicted_peak);

    // Through the registry: the bundle folder promoted as model `forecaster` (kind lstm) loads
    // back as the same forecaster; its training is an MLflow run with the loss of every epoch.
    let registry = runtime::registry::Registry::open(&format!("file://{}", out.join("registry").display())).unwrap();
    let bundle = workbench::promote::bundle_from_lstm_dir(&dir, "forecaster").unwrap();
    assert_eq!((bundle.manifest.kind.as_str(), bundle.manifest.evaluation["epochs_run"]), ("lstm", 3.0));
    let p = block_on(workbench::promote::promote(&registry, &bundle, "champion")).unwrap();
    let loaded = block_on(registry.load_alias("forecaster", "champion")).unwrap().predictor().unwrap();
    let runtime::predict::Predictor::Lstm(from_registry) = loaded else { panic!("an LSTM") };
    assert_eq!(from_registry.forecast(&window).unwrap(), runtime_fc, "v{}", p.version);
    let mlflow = workbench::mlflow::MlflowClient::new(&std::env::var("MLFLOW_URL").unwrap_or_else(|_| "http://127.0.0.1:5000".into()));
    let (_, run) = block_on(workbench::mlflow::push_lstm_bundle(&mlflow, &dir)).expect("MLflow must be running (tests/run starts it)");
    let history = block_on(async {
        let url = format!("{}/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss", mlflow.uri());
        reqwest::get(url).await.unwrap().json::<serde_json::Value>().await.unwrap()
    });
    assert_eq!(history["metrics"].as_array().map(Vec::len), Some(3), "one loss per epoch: {history}");
    block_on(client.drop_database()).unwrap();
    std::fs::remove_dir_all(&out).ok();
}
