//! MLflow tracking against a real MLflow server (started by `tests/run`, sqlite backend,
//! `--serve-artifacts`): a sweep's parent and nested trial runs, params, metric history,
//! artifacts and the registry alias, all read back through MLflow's own REST API; MLflow down
//! loses nothing and the trials are pushed later.

use std::path::PathBuf;
use std::time::Duration;

use aiops_tests::block_on;
use serde_json::{Value, json};
use workbench::mlflow::{MlflowClient, MlflowError, push_sweep, register_promotion, trial_run};

fn mlflow_url() -> String {
    std::env::var("MLFLOW_URL").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

fn api(path: &str, body: Option<Value>) -> Value {
    block_on(async {
        let http = reqwest::Client::new();
        let url = format!("{}{path}", mlflow_url());
        let resp = match body {
            Some(b) => http.post(url).json(&b).send().await,
            None => http.get(url).send().await,
        }
        .expect("MLflow must be running (tests/run starts it)");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json::<Value>().await.expect("json")
    })
}

/// A 2-trial sweep on the shipped simulator data, tracked locally in a temp folder.
fn local_sweep(tag: &str) -> (String, PathBuf) {
    let name = format!("test-{tag}-{}-{}", std::process::id(), runtime::now_ms());
    let text = format!(
        "name = \"{name}\"\ndataset = \"sim\"\nobjective = \"event_f1\"\nparallelism = 2\n[detector]\nkind = \"tail_ensemble\"\n[space]\nthreshold = [0.5, 0.6]\n"
    );
    let (spec, trials) = workbench::sweep::SweepSpec::parse(&text, "test").expect("spec");
    let dir = std::env::temp_dir().join(&name);
    let done = workbench::sweep::run(&spec, &text, trials, &dir, false, Default::default()).expect("sweep");
    assert_eq!(done.len(), 2);
    (name, dir)
}

#[test]
fn sweep_runs_params_metrics_artifacts_and_alias_are_visible_in_mlflow() {
    let (name, dir) = local_sweep("sweep");
    let client = MlflowClient::new(&mlflow_url());
    let report = block_on(push_sweep(&client, &dir)).expect("MLflow must be running (tests/run starts it)");
    assert_eq!((report.pushed, report.already), (2, 0));

    let exp = api(&format!("/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}"), None);
    assert_eq!(exp["experiment"]["experiment_id"], json!(report.experiment_id));
    // Idempotent creation: the sweep run carries its client-side key, and MLflow's search finds
    // the run by it (what a retried create looks up first).
    let run = api(&format!("/api/2.0/mlflow/runs/get?run_id={}", report.parent_run_id), None);
    let tags = run["run"]["data"]["tags"].as_array().expect("tags").clone();
    let key = tags.iter().find(|t| t["key"] == workbench::mlflow::RUN_KEY_TAG).expect("run key tag")["value"].as_str().unwrap().to_string();
    let found = block_on(client.run_with_key(&report.experiment_id, &key)).expect("search by key");
    assert_eq!(found.as_deref(), Some(report.parent_run_id.as_str()));
    let filter = format!("tags.mlflow.parentRunId = '{}'", report.parent_run_id);
    let children = api("/api/2.0/mlflow/runs/search", Some(json!({"experiment_ids": [report.experiment_id], "filter": filter})));
    let runs = children["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "two nested trial runs under the sweep run");
    let mut thresholds = Vec::new();
    for run in runs {
        assert_eq!(run["info"]["status"], json!("FINISHED"));
        let params = run["data"]["params"].as_array().expect("params");
        thresholds.extend(params.iter().filter(|p| p["key"] == json!("threshold")).map(|p| p["value"].as_str().unwrap_or("").to_string()));
        let metrics = run["data"]["metrics"].as_array().expect("metrics");
        assert!(metrics.iter().any(|m| m["key"] == json!("event_f1")), "{metrics:?}");
        let tags = run["data"]["tags"].as_array().expect("tags");
        for key in ["mlflow.source.git.commit", "dataset_sha256", "trial_id"] {
            assert!(tags.iter().any(|t| t["key"] == json!(key) && !t["value"].as_str().unwrap_or("").is_empty()), "tag {key} in {tags:?}");
        }
        let run_id = run["info"]["run_id"].as_str().expect("id");
        let files = api(&format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}"), None);
        let names: Vec<&str> = files["files"].as_array().expect("files").iter().filter_map(|f| f["path"].as_str()).collect();
        assert!(names.contains(&"trial.json") && names.contains(&"params.json"), "{names:?}");
    }
    thresholds.sort();
    assert_eq!(thresholds, vec!["0.5", "0.6"]);
    // The sweep run holds the objective of every trial as a metric history (steps 0, 1).
    let history = api(&format!("/api/2.0/mlflow/metrics/get-history?run_id={}&metric_key=event_f1", report.parent_run_id), None);
    let mut steps: Vec<i64> = history["metrics"].as_array().expect("history").iter().filter_map(|m| m["step"].as_i64()).collect();
    steps.sort_unstable();
    assert_eq!(steps, vec![0, 1]);
    let files = api(&format!("/api/2.0/mlflow/artifacts/list?run_id={}", report.parent_run_id), None);
    assert!(files.to_string().contains("leaderboard.md") && files.to_string().contains("objective.svg"), "{files}");

    // Pushing again sends nothing twice.
    let again = block_on(push_sweep(&client, &dir)).expect("push again");
    assert_eq!((again.pushed, again.already, again.parent_run_id.clone()), (0, 2, report.parent_run_id.clone()));

    // Promotion recorded in the MLflow model registry, alias `champion`.
    let trial = std::fs::read_dir(dir.join("trials")).expect("trials").flatten().next().expect("a trial").path();
    let mut bundle = workbench::promote::bundle_from_run(&trial, &name).expect("bundle");
    // The bundle alerts exactly as the sweep evaluated the trial, through the same decisions.
    let threshold: f64 =
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(trial.join("trial.json")).unwrap()).unwrap()["threshold"]
            .as_f64()
            .unwrap();
    assert_eq!(bundle.manifest.decisions, workbench::sweep::trial_decisions(threshold));
    assert_eq!(bundle.manifest.decisions.consecutive, runtime::decisions::DecisionConfig::default().consecutive);
    bundle.manifest.version = 1;
    let version = block_on(register_promotion(&client, &trial, &bundle, "file://models/x/versions/1", "champion")).expect("register");
    let mv = api(&format!("/api/2.0/mlflow/registered-models/alias?name={name}&alias=champion"), None);
    assert_eq!(mv["model_version"]["version"], json!(version));
    assert_eq!(mv["model_version"]["run_id"], json!(trial_run(&trial).expect("pushed").1));
    let files = api(&format!("/api/2.0/mlflow/artifacts/list?run_id={}&path=bundle", trial_run(&trial).expect("pushed").1), None);
    assert!(files.to_string().contains("manifest.json") && files.to_string().contains("detector.json"), "{files}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `experiment forecast train`'s run in MLflow: params, metrics and `forecast.json`; promoted, the
/// forecaster bundle is registered from that run under its alias.
#[test]
fn a_forecaster_run_and_its_promotion_are_visible_in_mlflow() {
    let tag = format!("{}-{}", std::process::id(), runtime::now_ms());
    let root = std::env::temp_dir().join(format!("mlflow-forecast-{tag}"));
    std::fs::create_dir_all(&root).unwrap();
    // Eight days of 5-minute rows with a daily plateau.
    let rows: Vec<Vec<f64>> = (0..2304).map(|i| vec![if (108..204).contains(&(i % 288)) { 70.0 } else { 25.0 } + (i % 5) as f64]).collect();
    let ts: Vec<i64> = (0..rows.len() as i64).map(|i| 1_700_006_400_000 + i * 300_000).collect();
    let series = workbench::lstm::ForecastSeries::new("web-cpu", vec!["cpu_usage".into()], ts, &rows).unwrap();
    let input = root.join("web-cpu.csv");
    std::fs::write(&input, "timestamp,cpu_usage\n").unwrap();
    let name = format!("web-cpu-{tag}");
    let forecaster = runtime::predict::StatisticalForecast { horizon_minutes: 60.0, ..Default::default() };
    let t = workbench::forecasting::train(&series, &input, forecaster, &root.join("forecasts"), &name).expect("train");
    let client = MlflowClient::new(&mlflow_url());
    let (experiment_id, run_id) = block_on(workbench::mlflow::push_forecast_run(&client, &t.dir)).expect("MLflow must be running");
    assert_eq!(
        block_on(workbench::mlflow::push_forecast_run(&client, &t.dir)).unwrap(),
        (experiment_id.clone(), run_id.clone()),
        "pushed once"
    );
    let run = api(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}"), None);
    assert_eq!(run["run"]["info"]["status"], json!("FINISHED"));
    let data = &run["run"]["data"];
    assert!(data["metrics"].as_array().unwrap().iter().any(|m| m["key"] == "mae_vs_best_baseline"), "{data}");
    assert!(data["params"].as_array().unwrap().iter().any(|p| p["key"] == "horizon_minutes" && p["value"] == "60.0"), "{data}");
    let files = api(&format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}"), None);
    assert!(files.to_string().contains("forecast.json"), "{files}");
    let model = format!("forecaster-{tag}");
    let mut bundle = workbench::promote::bundle_from_forecast_run(&t.dir, &model).expect("bundle");
    bundle.manifest.version = 1;
    let version =
        block_on(register_promotion(&client, &t.dir, &bundle, "file://models/forecaster/versions/1", "champion")).expect("register");
    let mv = api(&format!("/api/2.0/mlflow/registered-models/alias?name={model}&alias=champion"), None);
    assert_eq!(mv["model_version"]["version"], json!(version));
    assert_eq!(mv["model_version"]["run_id"], json!(run_id));
    let files = api(&format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=bundle"), None);
    assert!(files.to_string().contains("forecaster.json"), "{files}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn mlflow_down_keeps_every_trial_locally_and_pushes_later() {
    let (name, dir) = local_sweep("down");
    let mut down = MlflowClient::new("http://127.0.0.1:9");
    down.attempts = 3;
    down.backoff = Duration::from_millis(10);
    let err = block_on(push_sweep(&down, &dir)).expect_err("nothing listens on port 9");
    assert!(matches!(err, MlflowError::Unavailable { attempts: 3, .. }), "{err}");
    // Nothing was lost: both trials are tracked locally, none marked as pushed.
    let trials: Vec<PathBuf> = std::fs::read_dir(dir.join("trials")).expect("trials").flatten().map(|e| e.path()).collect();
    assert_eq!(trials.len(), 2);
    assert!(trials.iter().all(|t| t.join("metrics.jsonl").is_file() && trial_run(t).is_none()));

    let up = MlflowClient::new(&mlflow_url());
    let report = block_on(push_sweep(&up, &dir)).expect("MLflow must be running (tests/run starts it)");
    assert_eq!(report.pushed, 2);
    let exp = api(&format!("/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}"), None);
    let found = api("/api/2.0/mlflow/runs/search", Some(json!({"experiment_ids": [exp["experiment"]["experiment_id"]]})));
    assert_eq!(found["runs"].as_array().map(Vec::len), Some(3), "sweep run + 2 trials");
    let _ = std::fs::remove_dir_all(&dir);
}
